"""Evaluation: a model's metric counts over a loader, and the metrics of a saved model (``nsegaug evaluate``).

During training the loop calls ``counts_over`` on its own validation shard
and sums the counts over the processes; ``evaluate_checkpoint`` rebuilds the
model from a checkpoint's config and runs the same function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import storage
from ..io import load_colour_palette
from ..manifest import problems_message
from .checkpoint import load_checkpoint
from .config import DEFAULT_BOUNDARY_WIDTH, TrainConfig, TrainError
from .data import SegmentationDataset, eval_loader
from .distributed import Processes, pick_device, use_threads
from .metrics import metric_counts, summarize_counts, zero_counts
from .model import build_model, logits_at
from .runlog import say_on_stderr
from .samples import check_samples, folder_samples
from .step import to_device

# One precision for every evaluation, in training and in ``nsegaug evaluate``: the best figure a run records is
# the one ``evaluate best.pt`` gives again. Recorded with the metrics.
EVAL_PRECISION = "float32"


@contextmanager
def evaluation_mode(model: nn.Module, device: torch.device) -> Iterator[None]:
    """``model.eval()``, float32 (no autocast, even inside a caller's) and no cuDNN autotuning, undone after.

    Validation runs at batch 1 on each image's own size: with
    ``cudnn.benchmark`` every new size would benchmark every convolution again.
    """
    was_training, benchmark = model.training, torch.backends.cudnn.benchmark
    model.eval()
    torch.backends.cudnn.benchmark = False
    try:
        with torch.autocast(device.type, enabled=False):
            yield
    finally:
        torch.backends.cudnn.benchmark = benchmark
        model.train(was_training)


@dataclass(frozen=True)
class TrainedModel:
    """A model as a training run saved it: the network (in eval mode, on ``device``), the run's config, its step."""

    model: nn.Module
    config: TrainConfig
    step: int
    device: torch.device

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> np.ndarray:
        """The class map (H, W) of one RGB image (H, W, 3, uint8): normalised with the run's mean and std, in
        float32, the logits at the image's size, as evaluation does. With one torch thread here
        (``torch.set_num_threads(1)``) and in `evaluate_checkpoint` (``threads=1``), on the CPU, its maps are
        the ones evaluate counts, pixel for pixel; other thread counts split a convolution's sums otherwise and
        may round a near tie the other way. Training decodes images with OpenCV; another JPEG decoder may give
        other pixels."""
        batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        images, _ = to_device(batch, torch.zeros(1), self.device, self.config.mean, self.config.std)
        with evaluation_mode(self.model, self.device):
            logits = logits_at(self.model(images), image.shape[:2])
        return logits.argmax(1)[0].cpu().numpy()


def load_model(checkpoint_path: Path | str, device: str = "cpu") -> TrainedModel:
    """The model a checkpoint of ``nsegaug train`` holds (``best.pt`` or ``last.pt``), rebuilt from its recorded
    config and weights, in eval mode on ``device`` (``auto``: CUDA where there is one)."""
    return _rebuilt(load_checkpoint(Path(checkpoint_path)), pick_device(device, Processes()))


def _rebuilt(checkpoint: dict, device: torch.device) -> TrainedModel:
    config = TrainConfig.from_dict(checkpoint["config"])
    model = build_model(config.model, config.num_classes, config.width)
    model.load_state_dict(checkpoint["model"])
    model.to(device).eval()
    return TrainedModel(model, config, checkpoint["step"], device)


@torch.no_grad()
def counts_over(
    model: nn.Module,
    loader,
    num_classes: int,
    ignore_index: int,
    device: torch.device,
    mean,
    std,
    boundary_width: int = DEFAULT_BOUNDARY_WIDTH,
) -> dict[str, torch.Tensor]:
    """The summed metric counts of ``model`` over ``loader`` (on ``device``): see ``metrics.metric_counts``.

    In ``EVAL_PRECISION`` under `evaluation_mode`, whatever the training steps use.
    """
    totals = zero_counts(num_classes, device)  # of known shape even for an empty shard
    with evaluation_mode(model, device):
        for images, labels in loader:
            images, labels = to_device(images, labels, device, mean, std)
            logits = logits_at(model(images), labels.shape[-2:])  # the labels' size, as in the loss
            counts = metric_counts(logits.argmax(1), labels, num_classes, ignore_index, boundary_width)
            for name, value in counts.items():
                totals[name] += value
    return totals


def evaluate_checkpoint(
    checkpoint_path: Path,
    labels: Path,
    images: Path,
    *,
    device: str = "auto",
    workers: int = 2,
    threads: int | None = None,
    boundary_width: int | None = None,
    palette: Path | None = None,
    log: Callable[[str], None] = say_on_stderr,
) -> dict:
    """The metrics of a saved model on a folder of labels and images (paired as ``generate`` pairs them).

    ``boundary_width``: of the boundary metrics; ``palette``: the colour table of RGB-coded labels; both by
    default the training run's. ``threads``: torch's and OpenCV's, by default the CPUs this process may use
    (said in the first line, recorded in the result).
    """
    chosen_threads = use_threads(threads)
    labels, images = storage.use_credentials(labels, images)  # as train takes them: never in the result
    checkpoint = load_checkpoint(Path(checkpoint_path))
    config = TrainConfig.from_dict(checkpoint["config"])
    pairing = checkpoint.get("data", {})
    palette_path = palette or pairing.get("palette")
    palette = load_colour_palette(palette_path) if palette_path else None
    samples, unpaired = folder_samples(
        labels, images, pairing.get("pattern"), pairing.get("label_suffix") or "", pairing.get("image_suffix") or ""
    )
    problems = unpaired + check_samples(samples, config.num_classes, config.ignore_index, palette, max(workers, 2))
    if problems:
        raise TrainError(problems_message(problems, f"the evaluation data ({labels})"))
    torch_device = pick_device(device, Processes())
    log(f"evaluating {checkpoint_path}: {len(samples)} images on {torch_device.type}, {chosen_threads.describe()}")
    model = _rebuilt(checkpoint, torch_device).model
    dataset = SegmentationDataset(
        samples, train=False, ignore_index=config.ignore_index, normalize=False, colour_palette=palette
    )
    loader = eval_loader(dataset, 0, 1, workers, torch_device.type == "cuda")
    width = boundary_width or config.boundary_width
    counts = counts_over(
        model,
        loader,
        config.num_classes,
        config.ignore_index,
        torch_device,
        config.mean,
        config.std,
        width,
    )
    result = summarize_counts(counts)
    result.update(
        checkpoint=str(checkpoint_path),
        step=checkpoint["step"],
        epoch=checkpoint["epoch"],
        images=len(samples),
        labels=str(labels),
        boundary_width=width,
        eval_precision=EVAL_PRECISION,
        threads=chosen_threads.record(),
        confusion=counts["confusion"].cpu().tolist(),
    )
    return result
