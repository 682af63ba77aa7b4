"""The 3D engine (nsegaug.volume) against the plain 3D oracle, and what it promises: suppression, no new class,
units in millimetres on anisotropic voxels."""

from __future__ import annotations

import numpy as np
import pytest
from oracle3d import oracle_nsegment_plus_3d, oracle_small_component_boxes_3d

from nsegaug.errors import UsageError
from nsegaug.params import DeformParams
from nsegaug.volume import VolumeDraw, apply_volume_deformation, deform_volume
from nsegaug.volume.components import small_component_boxes_3d
from nsegaug.volume.engine import gaussian_kernel, suppression_pads, voxel_scales

PAIRS = ((12, 1.5), (16, 2), (10, 1))


def phantom(dtype=np.uint8) -> np.ndarray:
    """Organs of all sizes: a large one, one inside it, a thin oblique tube, specks, and a hole of class 0."""
    volume = np.zeros((28, 36, 44), dtype=dtype)
    volume[4:24, 6:30, 8:40] = 3
    volume[10:16, 12:20, 14:22] = 5
    volume[12:14, 15:17, 17:19] = 0  # a small hole of background inside class 5
    for step in range(20):  # a diagonal tube, 26-connected only through edges and corners
        volume[2 + step // 2, 2 + step, 30 + step // 4] = 7
    volume[25:27, 30:32, 2:4] = 2
    volume[0, 0, 0] = 9
    return volume


@pytest.mark.parametrize("spacing", [None, (0.7, 0.9, 2.5)], ids=["voxels", "mm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float64_engine_is_the_oracle_voxel_for_voxel(seed, spacing):
    volume = phantom()
    units = "voxels" if spacing is None else "mm"
    params = DeformParams(PAIRS, area_thresh=150, precision="float64", units=units)
    expected, alpha, sigma, mask = oracle_nsegment_plus_3d(
        volume, np.random.RandomState(seed), PAIRS, 150, None, spacing
    )
    result = deform_volume(volume, np.random.RandomState(seed), params, spacing)
    assert (result.alpha, result.sigma) == (alpha, sigma)
    assert np.array_equal(result.segment, expected)
    assert result.suppressed_fraction == mask.mean() > 0
    assert result.changed_fraction == np.mean(expected != volume) > 0


def test_pilot_variant_draws_the_pair_first_and_suppresses_nothing():
    volume = phantom()
    params = DeformParams(PAIRS, variant="nsegment", precision="float64")
    expected, *_ = oracle_nsegment_plus_3d(volume, np.random.RandomState(4), PAIRS, variant="nsegment")
    result = deform_volume(volume, np.random.RandomState(4), params)
    assert np.array_equal(result.segment, expected) and result.suppressed_fraction == 0


@pytest.mark.parametrize("spacing", [None, (0.7, 0.7, 2.5)], ids=["voxels", "mm"])
def test_float32_default_agrees_with_the_oracle_on_all_but_a_few_voxels(spacing):
    volume = np.zeros((40, 64, 64), dtype=np.int16)
    rng = np.random.default_rng(0)
    for value in range(1, 12):  # overlapping boxes: many boundaries
        z, y, x = rng.integers(0, 30), rng.integers(0, 50), rng.integers(0, 50)
        volume[z : z + rng.integers(3, 12), y : y + rng.integers(4, 20), x : x + rng.integers(4, 20)] = value
    units = "voxels" if spacing is None else "mm"
    agreed = total = 0
    for seed in range(4):
        params = DeformParams(((30, 3), (50, 5)), area_thresh=200, units=units)
        expected, *_ = oracle_nsegment_plus_3d(
            volume, np.random.RandomState(seed), params.alpha_sigma, 200, None, spacing
        )
        result = deform_volume(volume, np.random.RandomState(seed), params, spacing)
        assert np.mean(result.segment != volume) > 0.001  # the comparison is about real moves
        agreed += np.count_nonzero(result.segment == expected)
        total += volume.size
    assert agreed / total >= 0.9999


@pytest.mark.parametrize("labeller", ["cc3d", "scipy"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint16])
def test_small_components_are_the_plain_labellings(labeller, dtype):
    volume = phantom(dtype)
    if np.issubdtype(dtype, np.signedinteger):
        volume[20:22, 20:22, 20:22] = -1  # never a component
        volume[5, 30, 40] = -4
    for thresh in (1, 8, 150, 10**6):
        expected = oracle_small_component_boxes_3d(volume, thresh, ignore_index=2)
        found = small_component_boxes_3d(volume, thresh, ignore_index=2, labeller=labeller)
        assert [tuple(box) for box in found.tolist()] == expected


def test_a_diagonal_tube_is_one_component_by_26_connectivity():
    volume = phantom()
    boxes = small_component_boxes_3d(volume, 20)  # the tube has 20 voxels, each touching the next at an edge
    assert [2, 2, 30, 11, 21, 34] in boxes.tolist()
    assert [2, 2, 30, 11, 21, 34] not in small_component_boxes_3d(volume, 19).tolist()


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_a_small_blob_is_never_moved_and_no_class_is_invented(precision):
    volume = np.zeros((30, 40, 40), dtype=np.uint8)
    volume[:, :, 20:] = 1
    volume[12:16, 18:22, 18:22] = 4  # 64 voxels across the boundary of two large classes
    params = DeformParams(((20, 2),), area_thresh=100, precision=precision)
    for seed in range(6):
        result = deform_volume(volume, np.random.RandomState(seed), params)
        assert np.array_equal(result.segment == 4, volume == 4)
        assert set(np.unique(result.segment)) <= {0, 1, 4}
        assert result.changed_fraction > 0.001


def test_anisotropic_spacing_in_millimetres_hand_computed():
    # u = 0.75 everywhere: alpha_a * (2u - 1) = alpha_a / 2, a constant field that the blur keeps. alpha = 4 mm on
    # voxels of 1 x 2 x 8 mm moves by 4 / 2 = 2 mm along every axis: 2, 1 and 0.25 voxels, rounded to 2, 1, 0.
    volume = np.arange(10 * 12 * 6, dtype=np.int32).reshape(10, 12, 6)
    spacing = (1.0, 2.0, 8.0)
    draw = VolumeDraw(np.full((3, *volume.shape), 0.75), 4.0, 3.0)
    params = DeformParams(((4, 3),), area_thresh=0, precision="float64", units="mm")
    result = apply_volume_deformation(volume, draw, params, spacing)
    rows = np.minimum(np.arange(10) + 2, 9)[:, None, None]
    cols = np.minimum(np.arange(12) + 1, 11)[None, :, None]
    assert np.array_equal(result.segment, volume[rows, cols, np.arange(6)[None, None, :]])
    # 2 mm along each axis: 2 * sqrt(3) mm where nothing is clipped at the far borders.
    assert result.max_displacement == pytest.approx(2 * np.sqrt(3))
    # The same in voxels is a 2-voxel move along every axis.
    draw = VolumeDraw(np.full((3, *volume.shape), 0.75), 4.0, 3.0)
    voxels = apply_volume_deformation(volume, draw, params.replace(units="voxels"))
    two_on = np.minimum(np.arange(12) + 2, 11)[None, :, None], np.arange(2, 6)[None, None, :]
    assert np.array_equal(voxels.segment[:, :, :4], volume[(rows, *two_on)])


def test_millimetre_scales_thresholds_and_margins_by_hand():
    spacing = (0.5, 0.5, 2.0)
    assert voxel_scales(5, spacing, "mm") == (10.0, 10.0, 2.5)
    assert [len(gaussian_kernel(sigma)) for sigma in voxel_scales(5, spacing, "mm")] == [81, 81, 21]
    assert suppression_pads(9, spacing, "mm") == (9, 9, 2)  # 18, 18, 4.5 voxels of alpha, halved, rounded down
    volume = np.zeros((10, 10, 10), dtype=np.uint8)
    volume[2:4, 2:4, 2:4] = 1  # 8 voxels of 0.5 mm³: 4 mm³
    assert len(small_component_boxes_3d(volume, 4.0, voxel_volume=0.5)) == 1
    assert len(small_component_boxes_3d(volume, 3.9, voxel_volume=0.5)) == 0


def test_units_mm_need_a_spacing_and_volumes_need_integers():
    with pytest.raises(UsageError, match="spacing"):
        deform_volume(phantom(), np.random.RandomState(0), DeformParams(units="mm"))
    with pytest.raises(UsageError, match="integer"):
        deform_volume(phantom().astype(np.float32), np.random.RandomState(0))
    with pytest.raises(UsageError, match="units"):
        DeformParams(units="inches")
