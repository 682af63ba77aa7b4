"""The engine against the oracle, and the method's properties."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import LABEL_MAPS
from oracle import oracle_nsegment, oracle_nsegment_plus, oracle_small_component_boxes

from nsegaug import deform as D
from nsegaug import fields
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


# The float32 engine's own steps: the rows blur, the float32 draws, the scratch arrays.

BLUR_SHAPES = [(1, 1), (1, 9), (7, 1), (2, 2), (5, 40), (64, 64), (300, 90), (129, 257)]


@pytest.mark.parametrize("sigma", [0.5, 1, 2.5, 3, 5, 10, 16.1, 17])
def test_the_rows_blur_is_opencvs_gaussian_blur_transposed_up_to_float32_rounding(sigma):
    rng = np.random.default_rng(int(sigma * 10))
    for shape in BLUR_SHAPES:
        field = rng.uniform(-100, 100, size=shape)
        expected = cv2.GaussianBlur(field, (0, 0), sigma)  # float64: the reference's blur
        blurred_t = fields.smooth_field_transposed(field.astype(np.float32), sigma)
        assert blurred_t.shape == shape[::-1] and blurred_t.dtype == np.float32
        np.testing.assert_allclose(blurred_t.T, expected, rtol=0, atol=1e-4, err_msg=f"{shape}, sigma {sigma}")


def test_the_rows_blur_uses_opencvs_kernel_length():
    for sigma in (0.3, 0.5, 1, 1.3, 3, 5, 10, 16):
        kernel = cv2.getGaussianKernel(fields.gaussian_taps(sigma), sigma)
        impulse = np.zeros((1, 401))
        impulse[0, 200] = 1
        reach = np.flatnonzero(cv2.GaussianBlur(impulse, (0, 0), sigma, sigmaY=1e-9))
        assert len(kernel) == len(reach), sigma


def test_float32_draws_are_the_reference_draws_rounded(label_map):
    for variant in ("nsegment+", "nsegment"):
        for seed in range(3):
            expected_x, expected_y, expected_pair = D.draw_noise(
                np.random.RandomState(seed), label_map.shape, 15, variant
            )
            state = np.random.RandomState(seed)
            noise_x, noise_y, pair = fields.draw_noise_float32(state, label_map.shape, 15, variant)
            assert pair == expected_pair
            np.testing.assert_array_equal(noise_x, expected_x.astype(np.float32))
            np.testing.assert_array_equal(noise_y, expected_y.astype(np.float32))
            after = np.random.RandomState(seed)
            D.draw_noise(after, label_map.shape, 15, variant)
            assert state.rand() == after.rand()  # the stream goes on where the reference's does


def test_the_default_engine_is_its_drawn_deformation_applied(label_map):
    # deform() draws float32 fields in blocks into scratch arrays; a held draw is applied from float64 fields.
    # Maps of every shape in turn, so scratch arrays are reused and replaced between calls.
    params = DeformParams(((30, 3), (100, 5), (15, 10)), area_thresh=40)
    for seed in range(4):
        direct = D.deform(label_map, np.random.RandomState(seed), params)
        replayed = D.apply_deformation(
            label_map, D.draw_deformation(np.random.RandomState(seed), label_map.shape, params), params
        )
        np.testing.assert_array_equal(direct.segment, replayed.segment)
        assert direct.stats() == replayed.stats()


def test_a_result_is_not_overwritten_by_the_next_call():
    segment = street_scene(96, 128, 20, seed=13)
    first = D.deform(segment, np.random.RandomState(0))
    kept = first.segment.copy()
    D.deform(segment, np.random.RandomState(1))
    np.testing.assert_array_equal(first.segment, kept)


def test_threads_deforming_at_once_get_the_results_of_one_thread():
    from concurrent.futures import ThreadPoolExecutor

    segment = street_scene(256, 384, 40, seed=14)
    params = DeformParams(((30, 5), (50, 3)), area_thresh=100)
    alone = [D.deform(segment, np.random.RandomState(seed), params).segment for seed in range(8)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda seed: D.deform(segment, np.random.RandomState(seed), params).segment, range(8)))
    for one, other in zip(alone, together, strict=True):
        np.testing.assert_array_equal(one, other)


def test_engine_1_stays_available_as_the_reference_blur(label_map):
    pairs = ((30, 3), (100, 5), (7, 2))
    for seed in SEEDS:
        expected, *_ = oracle_nsegment_plus(label_map, np.random.RandomState(seed), pairs, 20)
        result = D.deform(label_map, np.random.RandomState(seed), DeformParams(pairs, 20), blur="reference")
        assert np.mean(result.segment == expected) >= 0.99999
    with pytest.raises(ValueError, match="blur must be one of"):
        D.deform(label_map, np.random.RandomState(0), blur="box")


@pytest.mark.parametrize("pair", [(100, 10), (50, 5), (30, 3), (15, 10)])
def test_the_default_engine_agrees_with_the_reference_on_full_size_street_scenes(pair):
    # float64 is bit-identical to the oracle (above); the oracle itself takes seconds at this size.
    segment = street_scene(1024, 2048, 700, seed=3772)
    segment[::97, ::89] = 255  # single-pixel objects: suppressed boxes all over the map
    for seed in range(2):
        params = DeformParams((pair,), area_thresh=1000)
        reference = D.deform(segment, np.random.RandomState(seed), replace(params, precision="float64"))
        result = D.deform(segment, np.random.RandomState(seed), params)
        agreement = np.mean(result.segment == reference.segment)
        assert agreement >= 0.9999, f"{pair}, seed {seed}: {agreement:.7f}"
        assert result.changed_fraction > 0
        assert result.mean_displacement == pytest.approx(reference.mean_displacement, abs=1e-5)
