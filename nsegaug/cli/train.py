"""``nsegaug train``: train a segmentation model on a generated dataset (CPU, one GPU, or torchrun)."""

from __future__ import annotations

import os
import sys

import click

from ..errors import TrainError
from ..options.train import config_from_options, train_options
from ..train import require_torch
from . import Command, reporting

EXAMPLE = (
    "nsegaug train --manifest out/train/manifest.jsonl --val-labels examples/data/val/labels "
    "--val-images examples/data/val/images --num-classes 19 --epochs 50 --out runs/nsp"
)
EPILOG = (
    f"\b\nExample:\n  {EXAMPLE}\n\n"
    "\b\nMulti-GPU, one process per GPU:\n  torchrun --nproc-per-node 4 -m nsegaug train ..."
)


@click.command(cls=Command, epilog=EPILOG)
@train_options
def train(resume, overwrite, quiet, storage_options, cache, **options) -> None:
    """Train a segmentation model on a generated dataset and evaluate it.

    Each epoch, every image is trained with its original label, or with
    chance --prob with one of its deformed copies (--baseline: originals
    only; --online: the original deformed on the device in each batch).
    Writes RUN/last.pt, best.pt, metrics.jsonl (one line per evaluation),
    metrics.json (final), loss.jsonl and curves.png/svg.
    """
    config = config_from_options(click.get_current_context(), resume, options)
    try:
        require_torch("nsegaug train")
    except ImportError as error:
        raise click.ClickException(str(error)) from error
    from ..train.loop import train as run_training

    try:
        run_training(
            config,
            resume=resume,
            overwrite=overwrite,
            storage_options=storage_options,
            cache=cache,
            **reporting(quiet),
        )
    except TrainError as error:
        _fail(str(error))


def _fail(message: str) -> None:
    # Under torchrun every rank raises the same refusal; rank 0 alone says it.
    if int(os.environ.get("RANK", 0)) == 0:
        click.echo(f"Error: {message}", err=True)
    sys.exit(1)
