"""``nsegaug preview``: contact sheets, alpha x sigma grids and manifest statistics."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from ..params import field_names, split_options
from ..preview.defaults import DEFAULT_OPACITY, DEFAULT_TILE_SIZE, MAX_TILE_SIZE, PICKS
from . import Command
from .options import Location, deform_options, prob_option, seed_option, storage_options_option, walk_options

EXAMPLES = """Examples:

\b
  nsegaug preview --manifest out/train --n 4 --pick most-changed
  nsegaug preview --labels examples/data/train/labels --images examples/data/train/images --copies 3
  nsegaug preview --labels examples/data/train/labels/scene_0000.png --grid --crop 150,100,96,96
  nsegaug preview --manifest out/train --stats --json
"""

# Options that decide how copies are made: a manifest's copies were made already, by its own parameters.
DEFORM_OPTIONS = (*field_names(), "prob")
WALK_OPTIONS = ("pattern", "label_suffix", "image_suffix")


class CropType(click.ParamType):
    name = "X,Y,W,H"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from ..preview.tiles import parse_crop

        try:
            return parse_crop(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


@click.command(cls=Command, epilog=EXAMPLES)
@click.option(
    "--manifest",
    type=Location(exists=True),
    default=None,
    help="manifest.jsonl of a generate run, or its folder: show the copies it wrote.",
)
@click.option(
    "--labels",
    type=Location(exists=True),
    default=None,
    help="Label map or folder: make copies here, write nothing else. With --manifest: where its sources are now.",
)
@click.option(
    "--images",
    type=Location(exists=True, file_okay=False),
    default=None,
    help="Image folder, paired as generate pairs; with --manifest: where its images are now.",
)
@click.option(
    "--n", "-n", "n", type=click.IntRange(min=1), default=None, help="Masks to show [default: 8; 1 with --grid]."
)
@click.option(
    "--pick",
    type=click.Choice(PICKS),
    default="random",
    show_default=True,
    help="Which masks: seeded random, or the highest / lowest mean changed pixels (--manifest).",
)
@seed_option
@click.option(
    "--copies",
    "-k",
    type=click.IntRange(min=1),
    default=None,
    help="Copies per mask: made with --labels [default: 4]; shown with --manifest [default: all].",
)
@prob_option
@deform_options()
@walk_options
@click.option("--grid", is_flag=True, help="Every (alpha, sigma) pair on one mask, as an alpha x sigma table.")
@click.option("--crop", type=CropType(), default=None, help="Show only this region, at full resolution.")
@click.option(
    "--tile-size",
    "tile",
    type=click.IntRange(16, MAX_TILE_SIZE),
    default=DEFAULT_TILE_SIZE,
    show_default=True,
    help="Tiles fit in a PX x PX square: larger maps shrink (nearest neighbour), smaller ones grow by whole factors.",
)
@click.option(
    "--opacity",
    type=click.FloatRange(0, 1),
    default=DEFAULT_OPACITY,
    show_default=True,
    help="Of the class colours over the photo.",
)
@click.option(
    "--out",
    type=Location(dir_okay=False),
    default=Path("preview.png"),
    show_default=True,
    help="The sheet to write: .png, .jpg/.jpeg or .tif/.tiff, as its suffix says (with --stats: only when given).",
)
@click.option("--stats", is_flag=True, help="Print per-(alpha, sigma) statistics of the manifest.")
@click.option("--json", "as_json", is_flag=True, help="The statistics as JSON (implies --stats).")
@storage_options_option
def preview(out, stats, as_json, storage_options, **options):
    """Draw source masks next to their deformed copies, to choose parameters by eye.

    Each row: the photo with the labels over it, the original, each copy, and
    a difference map (black: unchanged; grey to white: changed in some to all
    copies). Palette PNGs are drawn in their own palette; other maps in
    Cityscapes colours for 0..18, VOC colours beyond, and white for the ignore
    index (255 unless --ignore-index). With --labels, copy k of a mask is
    exactly what generate would write with the same --seed and parameters.
    """
    from .. import preview as sheets
    from .. import storage
    from ..preview.sheet import sheet_format
    from ..storage import write_file

    storage.configure(storage_options)
    # A URL's credentials join the storage options, as in every command: never in a message.
    names = [name for name in ("manifest", "labels", "images", "palette") if name in options]
    out, *clean = storage.use_credentials(out, *(options[name] for name in names))
    options.update(zip(names, clean, strict=True))
    ctx = click.get_current_context()
    given = {name for name in ctx.params if ctx.get_parameter_source(name) != ParameterSource.DEFAULT}
    _check_usage(options, stats or as_json, given)
    form = sheet_format(out)  # before any work: the file will hold what its name says
    params, rest = split_options(options)
    request = sheets.PreviewRequest(params=params, **rest)
    index = None
    if stats or as_json:
        index = sheets.read_manifest(request.manifest, _warn)
        table = sheets.manifest_stats(index)
        click.echo(sheets.stats_json(table) if as_json else sheets.format_stats(table))
        if "out" not in given:
            return
    sheet = sheets.build_preview(request, index, _warn)
    write_file(out, sheet.encoded(form))
    what = "grid of" if request.grid else "sheet of"
    size = f"{sheet.image.width}x{sheet.image.height} px"
    click.echo(f"wrote {storage.shown(out)}: {what} {sheet.masks} mask(s), {size}", err=True)


def _warn(message: str) -> None:
    click.echo(message, err=True)


def _check_usage(options: dict, stats: bool, given: set[str]) -> None:
    """Refusals that are about the flags themselves; the request checks the rest."""
    if options["manifest"] is None:
        if stats and options["labels"] is not None:
            raise click.UsageError("--stats and --json read a manifest: pass --manifest")
        return
    clashing = sorted(name for name in (*DEFORM_OPTIONS, *WALK_OPTIONS) if name in given)
    if clashing:
        names = ", ".join("--" + name.replace("_", "-") for name in clashing)
        raise click.UsageError(f"{names}: the manifest's copies were made with the parameters of its run")
