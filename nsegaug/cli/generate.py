"""``nsegaug generate``: K deformed copies of every mask in a folder."""

from __future__ import annotations

import click

from .._files.params_file import DEFORM_KEYS
from ..errors import shown_path
from ..options import apply_params_file, format_alpha_sigma
from ..options.generate import generate_options
from ..params import split_options
from . import Command
from .jobs import run_job_command

EXAMPLE = "nsegaug generate --labels examples/data/train/labels --copies 5 --out out/train"


@click.command(cls=Command, epilog=f"Example:\n\n  {EXAMPLE}")
@generate_options
def generate(dry_run, quiet, resume, overwrite, **options) -> None:
    """Write K deformed copies of every label map, with a manifest.

    Copy k of LABELS/a/b/x.png goes to OUT/a/b/x_nsp{k}.png; OUT/manifest.jsonl
    lists every output (the original as copy 0) and OUT/manifest.meta.json the
    parameters. Outputs are byte-identical for any --jobs and on rerun.
    """
    from .. import storage
    from .._jobs import count_masks
    from ..generate import GenerateConfig, generate_dataset

    provenance = apply_params_file(click.get_current_context(), options, None, DEFORM_KEYS)
    params, rest = split_options(options)
    config = GenerateConfig(params=params, provenance=provenance, **rest)
    if dry_run:
        storage.configure(config.storage_options)
        count_masks(config)
        _print_dry_run(config)
        return
    run_job_command("generate", generate_dataset, config, resume, overwrite, quiet)


def _print_dry_run(config) -> None:
    from .. import storage
    from ..generate import planned_outputs

    params = config.params
    click.echo(
        f"parameters: copies={config.copies} seed={config.seed} alpha_sigma={format_alpha_sigma(params.alpha_sigma)}"
    )
    click.echo(f"            prob={config.prob} area_thresh={params.area_thresh} ignore_index={params.ignore_index}")
    count = 0
    for sample, outputs in planned_outputs(config):
        count += 1
        image = f"  (image: {shown_path(sample.image)})" if sample.image else ""
        image = f"  (no image found in {storage.shown(config.images)})" if unpaired(config, sample) else image
        click.echo(f"{shown_path(sample.label)}{image}")
        for output in outputs:
            click.echo(f"  -> {storage.shown(storage.join(config.out, output))}")
    click.echo(f"{count} masks, {count * config.copies} copies would be written to {storage.shown(config.out)}")


def unpaired(config, sample) -> bool:
    return config.images is not None and sample.image is None
