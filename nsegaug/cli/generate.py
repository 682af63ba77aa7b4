"""``nsegaug generate``: K deformed copies of every mask in a folder."""

from __future__ import annotations

from pathlib import Path

import click

from ..dataset import DEFAULT_NAME_TEMPLATE
from ..params import split_options
from . import Command, reporting
from .options import (
    deform_options,
    format_alpha_sigma,
    jobs_option,
    prob_option,
    quiet_option,
    seed_option,
    walk_options,
)

EXAMPLE = "nsegaug generate --labels examples/data/train/labels --copies 5 --out out/train"


@click.command(cls=Command, epilog=f"Example:\n\n  {EXAMPLE}")
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
@prob_option
@deform_options()
@walk_options
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
    from ..generate import GenerateConfig, count_masks, generate_dataset

    if options["scheduler"] and options["backend"] != "dask":
        raise click.UsageError("--scheduler needs --backend dask")
    params, rest = split_options(options)
    config = GenerateConfig(params=params, **rest)
    if dry_run:
        count_masks(config)
        _print_dry_run(config)
        return
    try:
        summary = generate_dataset(config, resume=resume, overwrite=overwrite, **reporting(quiet))
    except KeyboardInterrupt:
        click.echo(f"interrupted; finish with: nsegaug generate ... --out {config.out} --resume", err=True)
        raise
    click.echo(summary.line(), err=True)
    if summary.failed:
        raise click.exceptions.Exit(1)


def _print_dry_run(config) -> None:
    from ..generate import planned_outputs

    params = config.params
    click.echo(
        f"parameters: copies={config.copies} seed={config.seed} alpha_sigma={format_alpha_sigma(params.alpha_sigma)}"
    )
    click.echo(f"            prob={config.prob} area_thresh={params.area_thresh} ignore_index={params.ignore_index}")
    count = 0
    for sample, outputs in planned_outputs(config):
        count += 1
        image = f"  (image: {sample.image})" if sample.image else ""
        click.echo(f"{sample.label}{image}")
        for output in outputs:
            click.echo(f"  -> {config.out / output}")
    click.echo(f"{count} masks, {count * config.copies} copies would be written to {config.out}")
