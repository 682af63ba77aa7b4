"""Segmentation metrics from counts: per-class IoU, mIoU, pixel accuracy, and two boundary metrics.

Rows of a confusion matrix are ground-truth classes, columns predictions.
Counts of several batches, images or ranks are summed before the metrics
are taken, so the metrics of a dataset are exact (not an average of
per-image metrics). Every count function takes NumPy arrays or torch
tensors, on any device, and gives the same numbers for both.

Boundaries, ``width`` pixels wide (chessboard distance, so a square
``2 * width + 1`` window):

- **Boundary IoU** (Cheng et al., "Boundary IoU: Improving Object-Centric
  Image Segmentation Evaluation", CVPR 2021), per class of a semantic map:
  the IoU of the ground-truth pixels of class c that lie within ``width`` px
  of class c's own contour and the predicted pixels of class c within
  ``width`` px of the predicted contour (both inside the region);
- **band mIoU** (the "trimap" of semantic-segmentation papers): the mIoU of
  the pixels within ``width`` px of a ground-truth label change.

Ignore pixels (and values outside 0..C-1) are left out everywhere: they are
never counted and are no contour either, in the ground truth or in the
prediction (a contour is where two counted pixels of different labels
meet), so a prediction that equals the ground truth on every counted pixel
scores 1.0 whatever it says under the ignore bands. The image border is not
a contour: the map is extended beyond it by repeating its edge.
"""

from __future__ import annotations

import math

import numpy as np

from .config import DEFAULT_BOUNDARY_WIDTH


def confusion_matrix(prediction, target, num_classes: int, ignore_index: int | None = None):
    """The (C, C) int64 count of (ground truth, prediction) pairs over the pixels that count.

    Pixels whose target is the ignore index or outside 0..C-1 are left out.
    NumPy in, NumPy out; torch in, torch out (on the tensors' device).
    """
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid &= target != ignore_index
    # In int64 before the product: label maps come as uint8, and class 14 of 19 already wraps around in it.
    if isinstance(target, np.ndarray):
        pairs = target[valid].astype(np.int64) * num_classes + prediction[valid].astype(np.int64)
        counts = np.bincount(pairs, minlength=num_classes * num_classes)
    else:
        pairs = target[valid].long() * num_classes + prediction[valid].long()
        counts = pairs.bincount(minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


# The default width (3 px) is narrow enough that the band holds an outline's annotation error (1-3 px in
# the study's maps), not the object. Cheng et al. use 2 % of the image diagonal (46 px on 1024x2048 maps):
# give a width for large maps.
BOUNDARY_ROWS = ("intersection", "ground_truth", "prediction")


def boundary_band(labels, width: int = DEFAULT_BOUNDARY_WIDTH, counted=None):
    """Where another label lies within ``width`` px (chessboard distance): both sides of every label change.

    ``labels``: (H, W) or (B, H, W), NumPy or torch (then on its device).
    ``counted``: a bool map of the pixels that count, or None for all; the
    others are neither in the band nor a label change to their neighbours.
    The image border is no label change (the map's edge is repeated beyond it).
    """
    if width < 1:
        raise ValueError(f"boundary width must be >= 1 pixel, got {width}")
    if isinstance(labels, np.ndarray):
        return _band_numpy(labels, width, counted)
    return _band_torch(labels, width, counted)


def _band_numpy(labels: np.ndarray, width: int, counted) -> np.ndarray:
    from scipy.ndimage import maximum_filter, minimum_filter

    size = (1,) * (labels.ndim - 2) + (2 * width + 1, 2 * width + 1)
    values = labels.astype(np.int64)
    if counted is None:
        counted = np.ones(labels.shape, dtype=bool)
    # A pixel that does not count takes a value that never wins the max, nor the min: just outside the
    # labels' range (not int64's extremes, which scipy's separable filters overflow on).
    low, high = (int(values.min()) - 1, int(values.max()) + 1) if values.size else (0, 0)
    highest = maximum_filter(np.where(counted, values, low), size=size, mode="nearest")
    lowest = minimum_filter(np.where(counted, values, high), size=size, mode="nearest")
    return counted & (highest != lowest)


def _band_torch(labels, width: int, counted):
    import torch
    import torch.nn.functional as F

    # float64: every int32 label is exact, and max pooling has float kernels only.
    values = labels.reshape(-1, 1, *labels.shape[-2:]).double()
    if counted is None:
        counted = torch.ones_like(labels, dtype=torch.bool)
    mask = counted.reshape(values.shape)
    pad = (width, width, width, width)
    highest = values.masked_fill(~mask, -math.inf)
    lowest = values.masked_fill(~mask, math.inf)
    highest = F.max_pool2d(F.pad(highest, pad, mode="replicate"), 2 * width + 1, stride=1)
    lowest = -F.max_pool2d(F.pad(-lowest, pad, mode="replicate"), 2 * width + 1, stride=1)
    return (mask & (highest != lowest)).reshape(labels.shape)


def _valid(target, num_classes: int, ignore_index: int | None):
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid &= target != ignore_index
    return valid


def _bincount(values, length: int):
    if isinstance(values, np.ndarray):
        return np.bincount(values.astype(np.int64), minlength=length)
    return values.long().bincount(minlength=length)


def boundary_counts(
    prediction, target, num_classes: int, ignore_index: int | None = None, width: int = DEFAULT_BOUNDARY_WIDTH
):
    """The (3, C) int64 counts of boundary IoU: per class, intersection, ground-truth band, predicted band.

    Over the counted pixels (target not ignored): ground truth's band of class
    c is ``target == c`` within ``width`` px of another target label, the
    prediction's likewise on the prediction; the IoU is
    ``intersection / (ground_truth + prediction - intersection)``.
    """
    valid = _valid(target, num_classes, ignore_index)
    truth_band = boundary_band(target, width, valid)
    predicted_band = boundary_band(prediction, width, valid) & (prediction >= 0) & (prediction < num_classes)
    both = truth_band & predicted_band & (prediction == target)
    rows = [_bincount(target[both], num_classes), _bincount(target[truth_band], num_classes)]
    rows.append(_bincount(prediction[predicted_band], num_classes))
    if isinstance(target, np.ndarray):
        return np.stack(rows)
    import torch

    return torch.stack(rows)


def band_confusion_matrix(
    prediction, target, num_classes: int, ignore_index: int | None = None, width: int = DEFAULT_BOUNDARY_WIDTH
):
    """The confusion matrix of the pixels within ``width`` px of a ground-truth label change (the trimap band)."""
    band = boundary_band(target, width, _valid(target, num_classes, ignore_index))
    return confusion_matrix(prediction[band], target[band], num_classes, ignore_index)


def metric_counts(
    prediction, target, num_classes: int, ignore_index: int | None = None, width: int = DEFAULT_BOUNDARY_WIDTH
) -> dict:
    """Everything [`summarize`][nsegaug.train.summarize] needs, as counts that add up over batches, images and ranks."""
    return {
        "confusion": confusion_matrix(prediction, target, num_classes, ignore_index),
        "band_confusion": band_confusion_matrix(prediction, target, num_classes, ignore_index, width),
        "boundary": boundary_counts(prediction, target, num_classes, ignore_index, width),
    }


def zero_counts(num_classes: int, device=None) -> dict:
    """`metric_counts` of no pixels: int64 zeros of the shapes it gives, as torch tensors on ``device``.

    A process whose validation shard is empty still adds its counts to the
    others' (the sums are collective calls, made by every rank alike).
    """
    import torch

    square = (num_classes, num_classes)
    return {
        "confusion": torch.zeros(square, dtype=torch.int64, device=device),
        "band_confusion": torch.zeros(square, dtype=torch.int64, device=device),
        "boundary": torch.zeros((len(BOUNDARY_ROWS), num_classes), dtype=torch.int64, device=device),
    }


def boundary_iou_per_class(boundary: np.ndarray) -> np.ndarray:
    """Boundary IoU of each class from `boundary_counts`; NaN where neither band holds the class."""
    intersection, truth, predicted = np.asarray(boundary, dtype=np.float64)
    union = truth + predicted - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, np.nan)


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


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def summarize(
    confusion: np.ndarray, band_confusion: np.ndarray | None = None, boundary: np.ndarray | None = None
) -> dict:
    """The metrics as JSON-ready numbers; NaN (a class never seen) becomes None.

    With the boundary counts of `metric_counts`, also ``boundary_miou``
    (mean boundary IoU) and ``band_miou``, with their per-class values.
    """
    accuracies = accuracy_per_class(confusion)
    summary = {
        "miou": _number(mean_iou(confusion)),
        "pixel_acc": _number(pixel_accuracy(confusion)),
        "mean_acc": _number(_nanmean(accuracies)),
        "iou": [_number(value) for value in iou_per_class(confusion)],
        "pixels": int(np.asarray(confusion).sum()),
        # Per class, its ground-truth pixels: 0 says the class is absent from the validation labels, so its IoU
        # (0 where it is predicted, else None) says nothing about whether it was learned.
        "class_pixels": [int(value) for value in np.asarray(confusion).sum(axis=1)],
    }
    if boundary is not None:
        ious = boundary_iou_per_class(boundary)
        summary.update(boundary_miou=_number(_nanmean(ious)), boundary_iou=[_number(value) for value in ious])
    if band_confusion is not None:
        summary.update(
            band_miou=_number(mean_iou(band_confusion)),
            band_iou=[_number(value) for value in iou_per_class(band_confusion)],
            band_pixels=int(np.asarray(band_confusion).sum()),
        )
    return summary


def class_mean(values, classes=None) -> float | None:
    """The mean of per-class ``values`` (as [`summarize`][nsegaug.train.summarize] records them, None for a class not
    seen) over ``classes`` (None: all), leaving None out, as mIoU and boundary mIoU are taken; None when none has a
    value.

    ``class_mean(summary["iou"]) == summary["miou"]``; over a subset of classes it is the same metric restricted
    to them (``nsegaug study``'s mean over the classes both runs of a pair learned).
    """
    chosen = range(len(values)) if classes is None else classes
    kept = [float(values[index]) for index in chosen if values[index] is not None]
    return _number(sum(kept) / len(kept)) if kept else None


def summarize_counts(counts: dict) -> dict:
    """[`summarize`][nsegaug.train.summarize] of `metric_counts` (NumPy arrays or torch tensors, summed as wanted)."""
    arrays = {name: _as_numpy(value) for name, value in counts.items()}
    return summarize(arrays["confusion"], arrays.get("band_confusion"), arrays.get("boundary"))


def _as_numpy(value) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else value.cpu().numpy()


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)
