"""Segmentation metrics from a confusion matrix: per-class IoU, mIoU, pixel accuracy.

Rows of the matrix are ground-truth classes, columns predictions. Matrices of
several batches, images or ranks are summed before the metrics are taken, so
the metrics of a dataset are exact (not an average of per-image metrics).
``confusion_matrix`` takes NumPy arrays or torch tensors, on any device.
"""

from __future__ import annotations

import math

import numpy as np


def confusion_matrix(prediction, target, num_classes: int, ignore_index: int | None = None):
    """The (C, C) int64 count of (ground truth, prediction) pairs over the pixels that count.

    Pixels whose target is the ignore index or outside 0..C-1 are left out.
    NumPy in, NumPy out; torch in, torch out (on the tensors' device).
    """
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid &= target != ignore_index
    pairs = target[valid] * num_classes + prediction[valid]
    if isinstance(pairs, np.ndarray):
        counts = np.bincount(pairs.astype(np.int64), minlength=num_classes * num_classes)
    else:
        counts = pairs.long().bincount(minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """Intersection over union of each class; NaN for a class absent from both ground truth and predictions."""
    confusion = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes that occur in ground truth or predictions (NaN if none do)."""
    ious = iou_per_class(confusion)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else math.nan


def pixel_accuracy(confusion: np.ndarray) -> float:
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total > 0 else math.nan


def accuracy_per_class(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class absent from the ground truth."""
    confusion = np.asarray(confusion, dtype=np.float64)
    support = confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(support > 0, np.diag(confusion) / support, np.nan)


def summarize(confusion: np.ndarray) -> dict:
    """The metrics as JSON-ready numbers; NaN (a class never seen) becomes None."""
    accuracies = accuracy_per_class(confusion)
    return {
        "miou": _number(mean_iou(confusion)),
        "pixel_acc": _number(pixel_accuracy(confusion)),
        "mean_acc": _number(float(np.nanmean(accuracies)) if np.isfinite(accuracies).any() else math.nan),
        "iou": [_number(value) for value in iou_per_class(confusion)],
        "pixels": int(np.asarray(confusion).sum()),
    }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)
