"""Segmentation metrics: mIoU and the boundary metrics (boundary IoU, band mIoU), hand-computed and by property."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from nsegaug.synthetic import street_scene
from nsegaug.train.metrics import (
    boundary_band,
    boundary_counts,
    boundary_iou_per_class,
    metric_counts,
    summarize,
    summarize_counts,
)

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")


def halves(split: int, height: int = 6, width: int = 6) -> np.ndarray:
    """Class 0 left of column ``split``, class 1 from it on."""
    labels = np.zeros((height, width), dtype=np.int64)
    labels[:, split:] = 1
    return labels


def test_boundary_band_is_both_sides_of_a_label_change_and_not_the_image_border():
    band = boundary_band(halves(3), width=1)
    assert band[:, [2, 3]].all() and not band[:, [0, 1, 4, 5]].any()  # the map's edges are no contour
    assert not boundary_band(np.zeros((5, 5), np.int64), 2).any()
    wide = boundary_band(halves(3), width=2)
    assert wide[:, 1:5].all() and not wide[:, [0, 5]].any()


def test_a_one_pixel_shift_hand_computed():
    """Truth: class 0 in columns 0-2, class 1 in 3-5. Prediction: the edge one pixel to the right."""
    truth, prediction = halves(3), halves(4)
    # width 1: truth's bands are column 2 (class 0) and 3 (class 1); the prediction's 3 (class 0) and 4 (class 1).
    # No overlap for either class: boundary IoU 0. mIoU: 18/24 and 12/18.
    summary = summarize_counts(metric_counts(prediction, truth, 2, width=1))
    assert summary["boundary_iou"] == [0.0, 0.0] and summary["boundary_miou"] == 0.0
    assert summary["miou"] == pytest.approx((18 / 24 + 12 / 18) / 2, abs=1e-6)
    # Band mIoU: the band is columns 2-3; column 2 right (class 0), column 3 wrong: class 0 6/12, class 1 0/6.
    assert summary["band_iou"] == [0.5, 0.0] and summary["band_miou"] == 0.25 and summary["band_pixels"] == 12
    # width 2: truth's bands are columns 1-2 and 3-4, the prediction's 2-3 and 4-5: 6 of 18 pixels for each class.
    wide = summarize_counts(metric_counts(prediction, truth, 2, width=2))
    assert wide["boundary_iou"] == pytest.approx([1 / 3, 1 / 3], abs=1e-6)
    np.testing.assert_array_equal(boundary_counts(prediction, truth, 2, width=2), [[6, 6], [12, 12], [12, 12]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_perfect_prediction_scores_one_whatever_it_says_under_ignore(seed):
    truth = street_scene(96, 128, 25, seed=seed, ignore_band=2).astype(np.int64)
    assert (truth == 255).any()
    prediction = np.where(truth == 255, np.random.default_rng(seed).integers(0, 19, truth.shape), truth)
    summary = summarize_counts(metric_counts(prediction, truth, 19, ignore_index=255))
    assert summary["miou"] == summary["boundary_miou"] == summary["band_miou"] == 1.0


def test_ignore_pixels_are_neither_counted_nor_a_contour():
    truth = halves(3)
    truth[:, 3] = 255  # an ignore band between the classes
    prediction = halves(3)  # class 1 under the ignore band: an edge the truth cannot see
    counts = boundary_counts(prediction, truth, 2, ignore_index=255, width=1)
    # Counted pixels within 1 px of another counted label: none (the ignore column is no label to its neighbours).
    np.testing.assert_array_equal(counts, np.zeros((3, 2)))
    assert summarize(metric_counts(prediction, truth, 2, 255, width=2)["confusion"])["pixels"] == 30
    wide = summarize_counts(metric_counts(prediction, truth, 2, ignore_index=255, width=2))
    assert wide["boundary_miou"] == 1.0 and wide["band_pixels"] == 12  # columns 1-2 and 4-5 see each other


def test_a_class_in_neither_band_has_no_boundary_iou():
    ious = boundary_iou_per_class(np.array([[3, 0, 0], [4, 0, 0], [5, 0, 2]]))
    assert ious[0] == pytest.approx(3 / 6) and np.isnan(ious[1]) and ious[2] == 0.0
    assert summarize(np.eye(3, dtype=np.int64), boundary=np.array([[3, 0, 0], [4, 0, 0], [5, 0, 2]]))[
        "boundary_iou"
    ] == [0.5, None, 0.0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("axis", [0, 1])
def test_shifting_a_prediction_by_one_pixel_costs_boundary_iou_more_than_miou(seed, axis):
    truth = street_scene(128, 192, 5, seed=seed).astype(np.int64)
    summary = summarize_counts(metric_counts(np.roll(truth, 1, axis=axis), truth, 19))
    assert summary["boundary_miou"] < summary["band_miou"] < summary["miou"] < 1.0
    assert 1.0 - summary["boundary_miou"] > 1.1 * (1.0 - summary["miou"])


def test_counts_of_one_batch_equal_the_sum_over_its_images():
    rng = np.random.default_rng(3)
    truth = np.stack([street_scene(64, 96, 12, seed=index, ignore_band=1) for index in range(4)]).astype(np.int64)
    prediction = np.where(rng.random(truth.shape) < 0.1, rng.integers(0, 19, truth.shape), truth)
    prediction = np.roll(prediction, 1, axis=2) % 255  # a prediction is a class, never the ignore index
    whole = metric_counts(prediction, truth, 19, 255)
    for name, value in whole.items():
        parts = sum(metric_counts(prediction[i], truth[i], 19, 255)[name] for i in range(len(truth)))
        np.testing.assert_array_equal(value, parts, err_msg=name)


@needs_torch
def test_torch_inputs_give_the_numpy_numbers():
    import torch

    rng = np.random.default_rng(7)
    truth = np.stack([street_scene(64, 96, 12, seed=index, ignore_band=2) for index in range(3)]).astype(np.int64)
    prediction = np.roll(np.where(rng.random(truth.shape) < 0.05, 3, truth), 2, axis=1) % 255
    expected = metric_counts(prediction, truth, 19, 255, width=2)
    found = metric_counts(torch.from_numpy(prediction), torch.from_numpy(truth), 19, 255, width=2)
    for name in expected:
        assert isinstance(found[name], torch.Tensor)
        np.testing.assert_array_equal(found[name].numpy(), expected[name], err_msg=name)
    assert summarize_counts(found) == summarize_counts(expected)


def test_a_width_below_one_pixel_is_refused():
    with pytest.raises(ValueError, match="boundary width"):
        boundary_band(halves(3), width=0)
