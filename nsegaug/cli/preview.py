"""``nsegaug preview``: contact sheets, alpha x sigma grids and manifest statistics."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from .. import preview as sheets
from ..io import LabelFormatError, write_bytes_atomic
from ..manifest import ManifestError
from . import main
from .options import (
    alpha_sigma_option,
    area_thresh_option,
    ignore_index_option,
    image_suffix_option,
    label_suffix_option,
    palette_option,
    pattern_option,
    precision_option,
    seed_option,
    variant_option,
)

EXAMPLES = """Examples:

\b
  nsegaug preview --manifest out/train --n 4 --pick most-changed
  nsegaug preview --labels examples/data/train/labels --images examples/data/train/images --copies 3
  nsegaug preview --labels examples/data/train/labels/scene_0000.png --grid --crop 150,100,96,96
  nsegaug preview --manifest out/train --stats --json
"""

# Options that decide how copies are made: a manifest's copies were made already, by its own parameters.
DEFORM_OPTIONS = ("alpha_sigma", "prob", "area_thresh", "ignore_index", "variant", "precision")
WALK_OPTIONS = ("pattern", "label_suffix", "image_suffix")


class CropType(click.ParamType):
    name = "X,Y,W,H"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return sheets.parse_crop(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


@main.command(epilog=EXAMPLES)
@click.option(
    "--manifest",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="manifest.jsonl of a generate run, or its folder: show the copies it wrote.",
)
@click.option(
    "--labels",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Label map or folder: make copies here, write nothing else. With --manifest: where its sources are now.",
)
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Image folder, paired as generate pairs; with --manifest: where its images are now.",
)
@click.option(
    "--n", "-n", "n", type=click.IntRange(min=1), default=None, help="Masks to show [default: 8; 1 with --grid]."
)
@click.option(
    "--pick",
    type=click.Choice(sheets.PICKS),
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
@alpha_sigma_option
@click.option("--prob", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="As in generate.")
@area_thresh_option
@ignore_index_option
@variant_option
@precision_option
@pattern_option
@label_suffix_option
@image_suffix_option
@palette_option
@click.option("--grid", is_flag=True, help="Every (alpha, sigma) pair on one mask, as an alpha x sigma table.")
@click.option("--crop", type=CropType(), default=None, help="Show only this region, at full resolution.")
@click.option(
    "--tile-size",
    type=click.IntRange(min=16),
    default=sheets.DEFAULT_TILE_SIZE,
    show_default=True,
    help="Tiles fit in a PX x PX square: larger maps shrink (nearest neighbour), smaller ones grow by whole factors.",
)
@click.option(
    "--opacity",
    type=click.FloatRange(0, 1),
    default=sheets.DEFAULT_OPACITY,
    show_default=True,
    help="Of the class colours over the photo.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("preview.png"),
    show_default=True,
    help="The PNG to write (with --stats: only when given).",
)
@click.option("--stats", is_flag=True, help="Print per-(alpha, sigma) statistics of the manifest.")
@click.option("--json", "as_json", is_flag=True, help="The statistics as JSON (implies --stats).")
def preview(
    manifest, labels, images, n, pick, seed, copies, grid, crop, tile_size, opacity, out, stats, as_json, **rest
):
    """Draw source masks next to their deformed copies, to choose parameters by eye.

    Each row: the photo with the labels over it, the original, each copy, and
    a difference map (black: unchanged; grey to white: changed in some to all
    copies). Palette PNGs are drawn in their own palette; other maps in
    Cityscapes colours for 0..18, VOC colours beyond, and white for the ignore
    index (255 unless --ignore-index). With --labels, copy k of a mask is
    exactly what generate would write with the same --seed and parameters.
    """
    ctx = click.get_current_context()
    given = {name for name in ctx.params if ctx.get_parameter_source(name) != ParameterSource.DEFAULT}
    _check_usage(manifest, labels, pick, stats or as_json, given)
    params = sheets.DeformParams(seed=seed, **{name: rest[name] for name in DEFORM_OPTIONS})
    try:
        if manifest is not None:
            index = sheets.read_manifest(manifest, _warn)
            if stats or as_json:
                table = sheets.manifest_stats(index)
                click.echo(sheets.stats_json(table) if as_json else sheets.format_stats(table))
                if "out" not in given:
                    return
            picked = sheets.pick_labels(
                list(index.labels), n or (1 if grid else sheets.DEFAULT_MASKS), pick, seed, _scores(index)
            )
            views = sheets.manifest_views(
                index,
                picked,
                copies=0 if grid else copies,
                labels_root=labels,
                images_root=images,
                palette=rest["palette"],
                warn=_warn,
            )
            if grid:
                params = _meta_params(index)
        else:
            views = sheets.label_views(
                labels,
                images=images,
                n=n or (1 if grid else sheets.DEFAULT_MASKS),
                copies=0 if grid else (copies or sheets.DEFAULT_COPIES),
                params=params,
                warn=_warn,
                **{name: rest[name] for name in (*WALK_OPTIONS, "palette")},
            )
        if grid:
            sheet = sheets.preview_grid(views, params, crop=crop, tile=tile_size, opacity=opacity)
        else:
            sheet = sheets.preview_sheet(views, crop=crop, tile=tile_size, opacity=opacity)
    except sheets.PreviewUsageError as error:
        raise click.UsageError(str(error)) from error
    except (sheets.PreviewError, ManifestError, LabelFormatError) as error:
        raise click.ClickException(str(error)) from error
    try:
        write_bytes_atomic(out, sheet.png())
    except OSError as error:
        raise click.ClickException(f"{out}: cannot write ({error.strerror or error})") from error
    what = "grid of" if grid else "sheet of"
    click.echo(f"wrote {out}: {what} {len(views)} mask(s), {sheet.image.width}x{sheet.image.height} px", err=True)


def _warn(message: str) -> None:
    click.echo(message, err=True)


def _check_usage(manifest, labels, pick, stats, given) -> None:
    if manifest is None and labels is None:
        raise click.UsageError("pass --manifest OUT/manifest.jsonl (copies of a generate run) or --labels FILE_OR_DIR")
    if manifest is None:
        if pick != "random":
            raise click.UsageError(f"--pick {pick} ranks the copies of a manifest: pass --manifest")
        if stats:
            raise click.UsageError("--stats and --json read a manifest: pass --manifest")
        return
    if labels is not None and not labels.is_dir():
        raise click.UsageError("with --manifest, --labels is the folder holding the manifest's sources")
    clashing = sorted(name for name in (*DEFORM_OPTIONS, *WALK_OPTIONS) if name in given)
    if clashing:
        names = ", ".join("--" + name.replace("_", "-") for name in clashing)
        raise click.UsageError(f"{names}: the manifest's copies were made with the parameters of its run")


def _scores(index: sheets.ManifestIndex) -> dict[str, float]:
    return {label: entry.score for label, entry in index.labels.items()}


def _meta_params(index: sheets.ManifestIndex) -> sheets.DeformParams:
    if not index.params:
        raise sheets.PreviewError(f"{index.meta_path}: not found; --grid needs the run's parameters")
    try:
        return sheets.DeformParams.from_meta(index.params)
    except (KeyError, TypeError, ValueError) as error:
        raise sheets.PreviewError(f"{index.meta_path}: bad parameters ({error})") from error
