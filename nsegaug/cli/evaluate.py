"""``nsegaug evaluate``: the metrics of a saved model on a labelled folder."""

from __future__ import annotations

import json

import click

from ..options.train import device_option, existing_folder, local_file, threads_option, workers_option
from ..train import require_torch
from . import Command
from .options import Location, storage_options_option

EXAMPLE = (
    "nsegaug evaluate --checkpoint runs/nsp/best.pt --labels examples/data/val/labels --images examples/data/val/images"
)


@click.command(cls=Command, epilog=f"Example:\n\n  {EXAMPLE}")
@click.option("--checkpoint", type=local_file, required=True, help="best.pt or last.pt of a training run.")
@click.option("--labels", type=existing_folder, required=True, help="Label folder.")
@click.option("--images", type=existing_folder, required=True, help="Image folder, paired by name.")
@device_option
@workers_option
@threads_option
@click.option(
    "--boundary-width",
    type=click.IntRange(min=1),
    default=None,
    help="Pixels from a contour that the boundary metrics look at  [default: the training run's]",
)
@click.option(
    "--palette",
    type=Location(exists=True, dir_okay=False),
    default=None,
    help="Colour table of RGB-coded labels, if it moved  [default: the training run's]",
)
@click.option(
    "--out", type=Location(dir_okay=False), default=None, help="Also write the metrics as JSON (a file or a URL)."
)
@storage_options_option
def evaluate(
    checkpoint, labels, images, device, workers, threads, boundary_width, palette, out, storage_options
) -> None:
    """Recompute mIoU, boundary IoU, band mIoU, per-class IoU and pixel accuracy of a saved model."""
    try:
        require_torch("nsegaug evaluate")
    except ImportError as error:
        raise click.ClickException(str(error)) from error
    from .. import storage
    from ..storage import write_file
    from ..train.loop import evaluate_checkpoint

    storage.configure(storage_options)
    (out,) = storage.use_credentials(out)  # a URL's credentials join the storage options: never in a message
    result = evaluate_checkpoint(
        checkpoint,
        labels,
        images,
        device=device,
        workers=workers,
        threads=threads,
        boundary_width=boundary_width,
        palette=palette,
    )
    # The file first: a reader that stops reading the table (| head) must not cost it.
    if out is not None:
        write_file(out, (json.dumps(result, indent=2) + "\n").encode("utf-8"))
        click.echo(f"wrote {storage.shown(out)}", err=True)
    click.echo(
        f"{result['images']} images, step {result['step']}: mIoU {_show(result['miou'])}, "
        f"boundary mIoU {_show(result['boundary_miou'])}, band mIoU {_show(result['band_miou'])} "
        f"({result['boundary_width']} px), pixel acc {_show(result['pixel_acc'])}, mean acc {_show(result['mean_acc'])}"
    )
    click.echo("class     IoU  boundary IoU  band IoU")
    for index, values in enumerate(zip(result["iou"], result["boundary_iou"], result["band_iou"], strict=True)):
        cells = (f"{_show(value):>{width}}" for value, width in zip(values, (6, 12, 8), strict=True))
        click.echo(f"{index:>5}  " + "  ".join(cells))


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
