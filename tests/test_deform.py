"""The engine against the oracle, and the method's properties."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import LABEL_MAPS
from oracle import oracle_nsegment, oracle_nsegment_plus, oracle_small_component_boxes

from nsegaug import deform as D
from nsegaug.errors import UsageError
from nsegaug.params import DEFAULT_ALPHA_SIGMA, MAX_SIGMA, DeformParams, check_alpha_sigma
from nsegaug.synthetic import street_scene

SEEDS = range(12)
# Small thresholds and strong pairs as well as the defaults, so suppression
# covers part of the map rather than all of it or nothing.
SETTINGS = [
    (DEFAULT_ALPHA_SIGMA, 1000, None),
    (((30, 3), (100, 5), (7, 2)), 20, None),
    (((50, 4), (15, 10)), 60, 255),
]


@pytest.mark.parametrize("pairs,area_thresh,ignore_index", SETTINGS)
def test_float64_path_is_bit_identical_to_the_oracle(label_map, pairs, area_thresh, ignore_index):
    for seed in SEEDS:
        expected, alpha, sigma, mask = oracle_nsegment_plus(
            label_map, np.random.RandomState(seed), pairs, area_thresh, ignore_index
        )
        params = DeformParams(pairs, area_thresh, ignore_index, precision="float64")
        result = D.deform(label_map, np.random.RandomState(seed), params)
        assert (result.alpha, result.sigma) == (alpha, sigma)
        assert result.segment.dtype == label_map.dtype
        np.testing.assert_array_equal(result.segment, expected)
        assert result.suppressed_fraction == pytest.approx(mask.mean())


@pytest.mark.parametrize("pairs,area_thresh,ignore_index", SETTINGS)
def test_float32_path_agrees_with_the_oracle(label_map, pairs, area_thresh, ignore_index):
    for seed in SEEDS:
        expected, *_ = oracle_nsegment_plus(label_map, np.random.RandomState(seed), pairs, area_thresh, ignore_index)
        result = D.deform(label_map, np.random.RandomState(seed), DeformParams(pairs, area_thresh, ignore_index))
        agreement = np.mean(result.segment == expected)
        assert agreement >= 0.99999, f"seed {seed}: {agreement:.7f}"


def test_nsegment_variant_matches_its_oracle(label_map):
    pairs = ((30, 3), (100, 5), (15, 10))
    for seed in SEEDS:
        expected, alpha, sigma = oracle_nsegment(label_map, np.random.RandomState(seed), pairs)
        params = DeformParams(pairs, variant="nsegment", precision="float64")
        result = D.deform(label_map, np.random.RandomState(seed), params)
        assert (result.alpha, result.sigma) == (alpha, sigma)
        assert result.suppressed_fraction == 0
        np.testing.assert_array_equal(result.segment, expected)


def test_variants_draw_in_different_orders():
    segment = street_scene(64, 64, 5, seed=0)
    x_plus, _, _ = D.draw_noise(np.random.RandomState(0), segment.shape, 15, "nsegment+")
    x_pilot, _, _ = D.draw_noise(np.random.RandomState(0), segment.shape, 15, "nsegment")
    assert x_plus.flat[0] == np.random.RandomState(0).rand()
    assert not np.array_equal(x_plus, x_pilot)


def test_labels_are_never_invented(label_map):
    for seed in SEEDS:
        result = D.deform(label_map, np.random.RandomState(seed), DeformParams(((100, 3), (50, 5)), area_thresh=10))
        assert set(np.unique(result.segment)) <= set(np.unique(label_map))


def test_alpha_zero_is_the_identity(label_map):
    result = D.deform(label_map, np.random.RandomState(0), DeformParams(((0, 5),)))
    np.testing.assert_array_equal(result.segment, label_map)
    assert result.changed_fraction == 0 and result.max_displacement == 0


def test_a_map_of_only_small_components_is_not_moved():
    segment = street_scene(100, 100, 0, seed=0)
    segment[:] = np.arange(100)[:, None] // 10 * 10 + np.arange(100)[None, :] // 10  # 100 tiles of 100 px
    result = D.deform(segment, np.random.RandomState(3), DeformParams(((100, 5),), area_thresh=100))
    assert result.suppressed_fraction == 1
    np.testing.assert_array_equal(result.segment, segment)


def test_large_components_are_deformed_and_statistics_are_consistent():
    segment = street_scene(200, 300, 0, seed=4)  # bands only: nothing small
    result = D.deform(segment, np.random.RandomState(1), DeformParams(((50, 3),)))
    assert result.suppressed_fraction == 0
    assert 0 < result.changed_fraction < 0.5
    assert 0 < result.mean_displacement < result.max_displacement
    assert result.changed_fraction == np.mean(result.segment != segment)
    assert set(result.stats()) == {
        "alpha",
        "sigma",
        "suppressed_fraction",
        "mean_displacement",
        "max_displacement",
        "changed_fraction",
    }


def test_small_objects_survive_where_nsegment_destroys_them():
    segment = street_scene(256, 256, 0, seed=5)
    for y in range(20, 256, 40):
        for x in range(20, 256, 40):
            segment[y : y + 4, x : x + 4] = 12  # 16-px objects
    plus = D.deform(segment, np.random.RandomState(0), DeformParams(((100, 3),), area_thresh=50))
    pilot = D.deform(segment, np.random.RandomState(0), DeformParams(((100, 3),), variant="nsegment"))
    objects = segment == 12
    assert np.array_equal(plus.segment[objects], segment[objects])
    assert np.mean(pilot.segment[objects] == 12) < 0.5


def test_ignore_index_pixels_are_not_small_objects():
    segment = street_scene(120, 160, 0, seed=6)
    segment[50:53, 70:73] = 255  # a small ignore blob
    as_class = D.deform(segment, np.random.RandomState(0), DeformParams(((30, 3),), area_thresh=100))
    ignored = D.deform(segment, np.random.RandomState(0), DeformParams(((30, 3),), area_thresh=100, ignore_index=255))
    assert as_class.suppressed_fraction > 0
    assert ignored.suppressed_fraction == 0


def test_same_state_same_result_and_different_seeds_differ():
    segment = street_scene(128, 128, 20, seed=7)
    params = DeformParams(((30, 5),))
    first = D.deform(segment, np.random.RandomState(5), params)
    again = D.deform(segment, np.random.RandomState(5), params)
    other = D.deform(segment, np.random.RandomState(6), params)
    np.testing.assert_array_equal(first.segment, again.segment)
    assert not np.array_equal(first.segment, other.segment)


def test_deform_with_noise_uses_the_given_fields():
    segment = street_scene(64, 96, 0, seed=8)
    noise = np.full(segment.shape, 1.0)  # 2u - 1 = 1: a shift of alpha to the right and down
    result = D.deform_with_noise(segment, noise, noise, alpha=3, sigma=2, params=DeformParams(variant="nsegment"))
    np.testing.assert_array_equal(result.segment[:-3, :-3], segment[3:, 3:])


def test_small_component_boxes_are_inclusive_and_eight_connected():
    segment = np.zeros((10, 10), dtype=np.uint8)
    segment[2, 2] = segment[3, 3] = 1  # diagonal neighbours: one component
    segment[7:9, 5:8] = 2
    boxes = D.small_component_boxes(segment, area_thresh=6)
    assert sorted(map(tuple, boxes.tolist())) == [(2, 2, 3, 3), (7, 5, 8, 7)]
    mask = D.suppression_mask(segment.shape, boxes, pad=1)
    assert mask[1:5, 1:5].all() and mask[6:10, 4:9].all() and mask.sum() == 16 + 20


def _random_maps():
    rng = np.random.default_rng(5)
    for index in range(40):
        height, width = rng.integers(1, 40, size=2)
        classes = int(rng.integers(1, 6))
        dtype = (np.uint8, np.int8, np.uint16, np.int32, np.int64)[index % 5]
        noise = rng.integers(0, classes, size=(height, width))
        if index % 2:  # blobs rather than salt and pepper
            noise = cv2.resize(noise.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
            noise = np.repeat(np.repeat(noise, 3, axis=0), 2, axis=1)[:height, :width]
        segment = noise.astype(dtype)
        if dtype in (np.int8, np.int32, np.int64):
            segment[rng.random(segment.shape) < 0.05] = -1  # the reference's skipped class
        yield segment


@pytest.mark.parametrize("area_thresh", [0, 1, 5, 40, 1000])
@pytest.mark.parametrize("ignore_index", [None, 2])
def test_small_component_boxes_equal_the_oracles(area_thresh, ignore_index):
    maps = [segment for _, segment in sorted(LABEL_MAPS.items())] + list(_random_maps())
    for segment in maps:
        found = sorted(map(tuple, D.small_component_boxes(segment, area_thresh, ignore_index).tolist()))
        assert found == sorted(oracle_small_component_boxes(segment, area_thresh, ignore_index))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.bool_])
def test_every_integer_dtype_is_kept(dtype):
    segment = (street_scene(60, 80, 10, seed=9) % 2).astype(dtype)
    result = D.deform(segment, np.random.RandomState(0), DeformParams(((30, 3),), precision="float64"))
    assert result.segment.dtype == segment.dtype
    expected, *_ = oracle_nsegment_plus(segment, np.random.RandomState(0), ((30, 3),))
    np.testing.assert_array_equal(result.segment, expected)


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros((4, 4, 3), np.uint8), "2-D"),
        (np.zeros(5, np.uint8), "2-D"),
        (np.zeros((0, 5), np.uint8), "empty"),
        (np.zeros((4, 4), np.float32), "integer"),
        ([[1, 2], [3, 4]], "NumPy array"),
    ],
)
def test_bad_label_maps_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        D.deform(bad, np.random.RandomState(0))


@pytest.mark.parametrize("pairs", [(), ((1,),), ((-1, 3),), ((5, 0),), ((float("nan"), 3),), ((5, 1e6),)])
def test_bad_alpha_sigma_lists_are_refused(pairs):
    with pytest.raises(UsageError):
        check_alpha_sigma(pairs)
    with pytest.raises(ValueError):  # a UsageError is a ValueError for callers that do not know nsegaug
        DeformParams(pairs)


def test_a_sigma_above_the_bound_is_refused_with_the_reason():
    with pytest.raises(UsageError, match=r"sigma 1e\+06 is above 100 px: its Gaussian kernel has 8000001 taps"):
        DeformParams(((5, 1e6),))
    assert DeformParams(((5, MAX_SIGMA),)).alpha_sigma == ((5, MAX_SIGMA),)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"area_thresh": -1}, "area_thresh"),
        ({"area_thresh": float("inf")}, "area_thresh"),
        ({"ignore_index": 2**31}, "can occur in no label map"),
        ({"ignore_index": 2.5}, "integer"),
        ({"variant": "nsegment++"}, "variant"),
        ({"precision": "float16"}, "precision"),
    ],
)
def test_the_parameter_spec_checks_itself_once(changes, message):
    with pytest.raises(UsageError, match=message):
        DeformParams(**changes)


def test_the_parameter_spec_round_trips_through_its_json_form():
    params = DeformParams(((1, 3), (15.5, 5)), area_thresh=12.5, ignore_index=np.int64(255), variant="nsegment")
    assert isinstance(params.ignore_index, int)  # NumPy integers become plain ints: the metadata is JSON
    assert DeformParams.from_dict({**params.to_dict(), "seed": 4, "copies": 2}) == params


def test_a_drawn_deformation_can_be_held_and_replayed():
    segment = street_scene(96, 128, 20, seed=10)
    params = DeformParams(((30, 5), (50, 3)), area_thresh=50)
    draw = D.draw_deformation(np.random.RandomState(4), segment.shape, params)
    replayed = D.apply_deformation(segment, draw, params)
    direct = D.deform(segment, np.random.RandomState(4), params)
    assert (draw.alpha, draw.sigma) == (direct.alpha, direct.sigma)
    np.testing.assert_array_equal(replayed.segment, direct.segment)
    np.testing.assert_array_equal(D.apply_deformation(segment, draw, params).segment, direct.segment)


def test_maps_wider_than_opencvs_remap_limit_are_deformed_like_the_oracle():
    segment = np.zeros((3, 33000), dtype=np.uint8)  # cv2.remap refuses a side of 32767 px or more
    segment[:, ::700] = 5
    segment[1, 16000:16600] = 2
    params = DeformParams(((15, 3),), area_thresh=10, precision="float64")
    result = D.deform(segment, np.random.RandomState(3), params)
    expected, *_ = oracle_nsegment_plus(segment, np.random.RandomState(3), ((15, 3),), 10)
    np.testing.assert_array_equal(result.segment, expected)
