"""The CPU side of the torch engine ([`nsegaug.torch`][nsegaug.torch]): the small components' boxes, found in DataLoader
workers on each label as it will reach the device, and collated beside the batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .deform import small_component_boxes


def component_boxes(label: np.ndarray | torch.Tensor, area_thresh: float = 1000, ignore_index: int | None = None):
    """The map's small-component boxes ``(y1, x1, y2, x2)``, inclusive, as an int64 tensor (N, 4).

    The CPU engine's [`nsegaug.deform.small_component_boxes`][nsegaug.deform.small_component_boxes]; call it in
    DataLoader workers on the label exactly as it will reach
    [`deform_batch`][nsegaug.torch.deform_batch] (after any crop), and collate with
    [`collate_with_boxes`][nsegaug.torch.collate_with_boxes]. The boxes do not depend on alpha, so they can
    be found before the pair is drawn.
    """
    segment = label.numpy(force=True) if isinstance(label, torch.Tensor) else np.asarray(label)
    return torch.from_numpy(small_component_boxes(segment, area_thresh, ignore_index))


def batch_boxes(labels: torch.Tensor, area_thresh: float = 1000, ignore_index: int | None = None) -> list:
    """[`component_boxes`][nsegaug.torch.component_boxes] of every map of ``labels`` (B, H, W), copied to the CPU
    first."""
    return [component_boxes(label, area_thresh, ignore_index) for label in labels.cpu()]


def collate_with_boxes(batch: Sequence[tuple]) -> tuple:
    """``collate_fn`` for items ``(..., boxes)``: the rest collated as usual, the boxes kept as a list.

    Box tables differ in length from map to map, so they cannot be stacked.
    """
    from torch.utils.data import default_collate

    rest = default_collate([item[:-1] for item in batch])
    return (*rest, [item[-1] for item in batch])
