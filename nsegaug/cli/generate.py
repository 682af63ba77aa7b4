"""``nsegaug generate``: K deformed copies of every mask in a folder."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..dataset import DEFAULT_NAME_TEMPLATE
from ..runner import GenerateConfig, GenerateError, count_masks, generate_dataset, planned_outputs
from . import main, reporting
from .options import (
    alpha_sigma_option,
    area_thresh_option,
    format_alpha_sigma,
    ignore_index_option,
    image_suffix_option,
    jobs_option,
    label_suffix_option,
    palette_option,
    pattern_option,
    precision_option,
    quiet_option,
    seed_option,
    variant_option,
)

EXAMPLE = "nsegaug generate --labels examples/data/train/labels --copies 5 --out out/train"


@main.command(epilog=f"Example:\n\n  {EXAMPLE}")
@click.option(
    "--labels",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder of label maps, walked recursively.",
)
@click.option("--copies", "-k", type=click.IntRange(min=1), required=True, help="Deformed copies per mask.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Image folder, paired by relative path and stem; recorded in the manifest, never touched.",
)
@seed_option
@jobs_option
@alpha_sigma_option
@click.option(
    "--prob",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Chance that a copy is deformed; an undeformed copy is written and recorded as such.",
)
@area_thresh_option
@ignore_index_option
@variant_option
@precision_option
@pattern_option
@label_suffix_option
@image_suffix_option
@palette_option
@click.option(
    "--name-template",
    default=DEFAULT_NAME_TEMPLATE,
    show_default=True,
    help="File name of each copy, from {stem}, {copy} (1..K) and {ext}.",
)
@click.option("--resume", is_flag=True, help="Finish an interrupted run; checks existing outputs by checksum.")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty --out.")
@click.option(
    "--on-error",
    type=click.Choice(["skip", "fail"]),
    default="skip",
    show_default=True,
    help="On a bad file: report it and go on, or stop.",
)
@click.option(
    "--backend",
    type=click.Choice(["loky", "dask"]),
    default="loky",
    show_default=True,
    help="loky: local processes; dask: a Dask cluster (pip install 'nsegaug[dask]').",
)
@click.option("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786 (with --backend dask).")
@click.option("--dry-run", is_flag=True, help="List what would be written, write nothing.")
@quiet_option
def generate(dry_run, quiet, resume, overwrite, **options) -> None:
    """Write K deformed copies of every label map, with a manifest.

    Copy k of LABELS/a/b/x.png goes to OUT/a/b/x_nsp{k}.png; OUT/manifest.jsonl
    lists every output (the original as copy 0) and OUT/manifest.meta.json the
    parameters. Outputs are byte-identical for any --jobs and on rerun.
    """
    if options["scheduler"] and options["backend"] != "dask":
        raise click.UsageError("--scheduler needs --backend dask")
    try:
        config = GenerateConfig(**options)
    except GenerateError as error:
        raise click.UsageError(str(error)) from error

    if dry_run:
        try:
            count_masks(config)
        except GenerateError as error:
            raise click.UsageError(str(error)) from error
        _print_dry_run(config)
        return
    try:
        summary = generate_dataset(
            config,
            resume=resume,
            overwrite=overwrite,
            **reporting(quiet),
        )
    except GenerateError as error:
        raise click.UsageError(str(error)) from error
    except KeyboardInterrupt:
        click.echo(f"interrupted; finish with: nsegaug generate ... --out {config.out} --resume", err=True)
        sys.exit(130)
    click.echo(summary.line(), err=True)
    if summary.failed:
        sys.exit(1)


def _print_dry_run(config: GenerateConfig) -> None:
    click.echo(
        f"parameters: copies={config.copies} seed={config.seed} alpha_sigma={format_alpha_sigma(config.alpha_sigma)}"
    )
    click.echo(f"            prob={config.prob} area_thresh={config.area_thresh} ignore_index={config.ignore_index}")
    count = 0
    for sample, outputs in planned_outputs(config):
        count += 1
        image = f"  (image: {sample.image})" if sample.image else ""
        click.echo(f"{sample.label}{image}")
        for output in outputs:
            click.echo(f"  -> {config.out / output}")
    click.echo(f"{count} masks, {count * config.copies} copies would be written to {config.out}")
