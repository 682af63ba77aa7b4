"""``nsegaug evaluate``: the metrics of a saved model on a labelled folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..train import require_torch
from . import Command
from .train import device_option, existing_file, existing_folder, workers_option

EXAMPLE = (
    "nsegaug evaluate --checkpoint runs/nsp/best.pt --labels examples/data/val/labels --images examples/data/val/images"
)


@click.command(cls=Command, epilog=f"Example:\n\n  {EXAMPLE}")
@click.option("--checkpoint", type=existing_file, required=True, help="best.pt or last.pt of a training run.")
@click.option("--labels", type=existing_folder, required=True, help="Label folder.")
@click.option("--images", type=existing_folder, required=True, help="Image folder, paired by name.")
@device_option
@workers_option
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the metrics as JSON."
)
def evaluate(checkpoint, labels, images, device, workers, out) -> None:
    """Recompute mIoU, per-class IoU and pixel accuracy of a saved model."""
    try:
        require_torch("nsegaug evaluate")
    except ImportError as error:
        raise click.ClickException(str(error)) from error
    from ..io import write_bytes_atomic
    from ..train.loop import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, labels, images, device=device, workers=workers)
    click.echo(
        f"{result['images']} images, step {result['step']}: mIoU {_show(result['miou'])}, "
        f"pixel acc {_show(result['pixel_acc'])}, mean acc {_show(result['mean_acc'])}"
    )
    click.echo("class  IoU")
    for index, iou in enumerate(result["iou"]):
        click.echo(f"{index:>5}  {_show(iou)}")
    if out is not None:
        write_bytes_atomic(out, (json.dumps(result, indent=2) + "\n").encode("utf-8"))
        click.echo(f"wrote {out}", err=True)


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
