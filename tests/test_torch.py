"""The torch engine (nsegaug.torch) on the CPU: each step against OpenCV/NumPy, the whole against the CPU engine."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import LABEL_MAPS

torch = pytest.importorskip("torch")

import nsegaug.torch as nt  # noqa: E402
from nsegaug import deform as D  # noqa: E402
from nsegaug.params import DEFAULT_ALPHA_SIGMA, DeformParams  # noqa: E402

IGNORE_255 = DeformParams(ignore_index=255)
from nsegaug.synthetic import city_scene, street_scene  # noqa: E402

# The conftest maps plus larger scenes of both generators, with and without VOC-style ignore bands.
EQUIVALENCE_MAPS = {
    **LABEL_MAPS,
    "street_256x512": street_scene(256, 512, 80, seed=21),
    "city_256x512": city_scene(256, 512, 40, seed=22),
    "city_ignore_192x384": city_scene(192, 384, 30, seed=23, ignore_band=2),
}
TINY_SHAPES = [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (5, 3), (40, 60)]


def batch_of(segment: np.ndarray, copies: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.broadcast_to(segment, (copies, *segment.shape))))


# --- Blur: OpenCV's kernel and border -------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.3, 0.8, 1.5, 2.7, 3, 5, 10])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_is_opencvs_with_its_size_rule_for_float_images(sigma, dtype):
    kernel = nt.gaussian_kernel(sigma, dtype)
    assert len(kernel) == int(round(sigma * 4 * 2 + 1)) | 1
    depth = cv2.CV_32F if dtype == torch.float32 else cv2.CV_64F
    np.testing.assert_array_equal(kernel.numpy(), cv2.getGaussianKernel(len(kernel), sigma, depth).ravel())
    # ... and it is the size GaussianBlur really uses: the response to an impulse is that wide.
    impulse = np.zeros((1, 301), dtype=np.float32 if dtype == torch.float32 else np.float64)
    impulse[0, 150] = 1
    assert np.count_nonzero(cv2.GaussianBlur(impulse, (0, 0), sigma)) == len(kernel)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("radius", [0, 1, 4, 12])
def test_reflect101_index_folds_like_opencv_also_past_the_edge(size, radius):
    row = np.arange(size, dtype=np.float32)[None, :]
    expected = cv2.copyMakeBorder(row, 0, 0, radius, radius, cv2.BORDER_REFLECT_101)[0]
    np.testing.assert_array_equal(nt.reflect101_index(size, radius).numpy(), expected)


@pytest.mark.parametrize("method", nt.BLUR_METHODS)
@pytest.mark.parametrize("shape", TINY_SHAPES + [(64, 128)], ids=str)
@pytest.mark.parametrize("sigma", [0.5, 3, 10])
def test_blur_matches_cv2_gaussian_blur_on_any_size(method, shape, sigma):
    fields = np.random.default_rng(0).uniform(-50, 50, (3, *shape)).astype(np.float32)
    expected = np.stack([cv2.GaussianBlur(field, (0, 0), sigma) for field in fields])
    blurred = nt.smooth_fields(torch.from_numpy(fields), sigma, method).numpy()
    np.testing.assert_allclose(blurred, expected, rtol=0, atol=2e-5)


def test_blur_in_float64_matches_cv2_to_float64_rounding():
    field = np.random.default_rng(1).uniform(-100, 100, (50, 70))
    blurred = nt.smooth_fields(torch.from_numpy(field)[None], 10)[0].numpy()
    np.testing.assert_allclose(blurred, cv2.GaussianBlur(field, (0, 0), 10), rtol=0, atol=1e-11)


# --- Suppression and warp -------------------------------------------------------------------------------------


def test_suppression_masks_equal_the_cpu_engines_per_map():
    rng = np.random.default_rng(2)
    shape, pads = (37, 53), [0, 3, 50, 7]
    boxes = []
    for count in (5, 0, 3, 1):
        y1, x1 = rng.integers(0, 37, count), rng.integers(0, 53, count)
        boxes.append(np.stack([y1, x1, y1 + rng.integers(0, 5, count), x1 + rng.integers(0, 5, count)], axis=1))
    boxes = [np.minimum(table, [36, 52, 36, 52]) for table in boxes]
    masks = nt.suppression_masks([torch.from_numpy(table) for table in boxes], pads, shape, "cpu")
    for mask, table, pad in zip(masks, boxes, pads, strict=True):
        np.testing.assert_array_equal(mask.numpy(), D.suppression_mask(shape, table, pad))


def test_warp_rounds_half_to_even_and_never_blends():
    labels = torch.tensor([[[10, 20, 30, 40]]], dtype=torch.uint8)
    xs = torch.tensor([[[0.5, 1.5, 2.5, 2.4999]]])
    rows, cols, _ = nt.sampling_indices(xs - torch.arange(4.0), torch.zeros_like(xs))
    assert nt.warp_labels(labels, rows, cols).tolist() == [[[10, 30, 30, 30]]]


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.int8, torch.int16, torch.uint16, torch.int32, torch.uint32, torch.int64, torch.bool]
)
def test_every_integer_dtype_is_kept_and_only_source_values_appear(dtype):
    segment = street_scene(48, 64, 12, seed=5).astype(np.int64)
    values = segment % 2 if dtype == torch.bool else segment * 7 - 20 if dtype.is_signed else segment * 7
    labels = torch.from_numpy(values).to(dtype)[None]
    noise = torch.rand((2, 1, 48, 64), generator=torch.Generator().manual_seed(0))
    deformed, _ = nt.deform_batch_with_noise(labels, noise[0], noise[1], 30, 3)
    assert deformed.dtype == dtype and deformed.shape == labels.shape
    assert set(deformed.unique().tolist()) <= set(labels.unique().tolist())
    expected = D.deform_with_noise(labels[0].numpy(), noise[0, 0].double().numpy(), noise[1, 0].double().numpy(), 30, 3)
    np.testing.assert_array_equal(deformed[0].numpy(), expected.segment)


# --- Equivalence with the CPU engine ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EQUIVALENCE_MAPS))
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_same_noise_agrees_with_the_cpu_engine(name, ignore_index):
    """Every (alpha, sigma) pair of the paper on every map, both blur methods: >= 99.99 % of pixels agree."""
    segment = EQUIVALENCE_MAPS[name]
    copies = len(DEFAULT_ALPHA_SIGMA)
    rng = np.random.default_rng(sorted(EQUIVALENCE_MAPS).index(name))
    noise_x, noise_y = rng.random((copies, *segment.shape)), rng.random((copies, *segment.shape))
    alphas, sigmas = zip(*DEFAULT_ALPHA_SIGMA, strict=True)
    expected = [
        D.deform_with_noise(
            segment, noise_x[i], noise_y[i], alphas[i], sigmas[i], DeformParams(ignore_index=ignore_index)
        )
        for i in range(copies)
    ]
    for method in nt.BLUR_METHODS:
        deformed, stats = nt.deform_batch_with_noise(
            batch_of(segment, copies),
            torch.from_numpy(noise_x),
            torch.from_numpy(noise_y),
            alphas,
            sigmas,
            DeformParams(ignore_index=ignore_index),
            blur=method,
        )
        agreement = np.mean([np.mean(deformed[i].numpy() == expected[i].segment) for i in range(copies)])
        assert agreement >= 0.9999, (method, agreement)
        for row, result in zip(stats.rows(), expected, strict=True):
            assert row["suppressed_fraction"] == pytest.approx(result.suppressed_fraction, abs=1e-7)
            assert row["changed_fraction"] == pytest.approx(result.changed_fraction, abs=1e-4)
            assert row["max_displacement"] == pytest.approx(result.max_displacement, abs=1e-3)
            assert row["mean_displacement"] == pytest.approx(result.mean_displacement, abs=2 / 256)


def test_float64_fields_agree_with_the_cpu_engines_float64_precision():
    segment = city_scene(128, 256, 30, seed=24)
    rng = np.random.default_rng(3)
    noise_x, noise_y = rng.random((2, *segment.shape))
    float64 = DeformParams(precision="float64")
    expected = D.deform_with_noise(segment, noise_x, noise_y, 100, 10, float64).segment
    deformed, _ = nt.deform_batch_with_noise(
        torch.from_numpy(segment)[None],
        torch.from_numpy(noise_x)[None],
        torch.from_numpy(noise_y)[None],
        100,
        10,
        float64,
    )
    assert np.mean(deformed[0].numpy() == expected) >= 0.99999


def test_boxes_given_or_found_give_the_same_maps():
    segment = street_scene(96, 160, 40, seed=6, ignore_band=1)
    labels = batch_of(segment, 2)
    noise = torch.rand((2, 2, 96, 160), generator=torch.Generator().manual_seed(1))
    boxes = [nt.component_boxes(segment, 1000, 255)] * 2
    np.testing.assert_array_equal(boxes[0].numpy(), D.small_component_boxes(segment, 1000, 255))
    found, _ = nt.deform_batch_with_noise(labels, noise[0], noise[1], 30, 5, IGNORE_255)
    given, _ = nt.deform_batch_with_noise(labels, noise[0], noise[1], 30, 5, IGNORE_255, boxes=boxes)
    assert torch.equal(found, given)


# --- deform_batch: draws, prob, reproducibility -----------------------------------------------------------------


@pytest.fixture(scope="module")
def street_batch() -> torch.Tensor:
    return torch.from_numpy(np.stack([street_scene(64, 96, 15, seed=seed) for seed in range(6)]))


def test_deform_batch_is_deform_with_noise_of_its_draws(street_batch):
    deformed, stats = nt.deform_batch(street_batch, torch.Generator().manual_seed(7), IGNORE_255)
    coins, pair_index, noise = nt.draw_batch(torch.Generator().manual_seed(7), 6, (64, 96), len(DEFAULT_ALPHA_SIGMA))
    alphas, sigmas = zip(*(DEFAULT_ALPHA_SIGMA[i] for i in pair_index.tolist()), strict=True)
    expected, _ = nt.deform_batch_with_noise(street_batch, noise[:, 0], noise[:, 1], alphas, sigmas, IGNORE_255)
    assert torch.equal(deformed, expected)
    assert stats.alpha.tolist() == list(alphas) and stats.sigma.tolist() == list(sigmas)


def test_same_generator_seed_same_maps_other_seed_other_maps(street_batch):
    first, _ = nt.deform_batch(street_batch, torch.Generator().manual_seed(3))
    again, _ = nt.deform_batch(street_batch, torch.Generator().manual_seed(3))
    other, _ = nt.deform_batch(street_batch, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_prob_decides_per_map_and_untouched_maps_are_returned_as_they_were(street_batch):
    labels = street_batch.repeat(6, 1, 1)  # 36 maps
    before = labels.clone()
    deformed, stats = nt.deform_batch(labels, torch.Generator().manual_seed(11), prob=0.5)
    assert torch.equal(labels, before)  # the input is never modified
    chosen = stats.deformed
    assert 0 < int(chosen.sum()) < 36
    assert torch.equal(deformed[~chosen], labels[~chosen])
    assert bool((stats.changed_fraction[chosen] > 0).any())
    assert stats.alpha[~chosen].isnan().all() and (stats.changed_fraction[~chosen] == 0).all()
    rows = stats.rows()
    assert all((row["alpha"] is None) == (not row["deformed"]) for row in rows)
    assert all((row["alpha"], row["sigma"]) in DEFAULT_ALPHA_SIGMA for row in rows if row["deformed"])

    untouched, stats = nt.deform_batch(labels, torch.Generator().manual_seed(11), prob=0.0)
    assert torch.equal(untouched, labels) and not stats.deformed.any()


@pytest.mark.parametrize(
    "dtype",
    [torch.uint8, torch.int8, torch.int16, torch.uint16, torch.int32, torch.uint32, torch.int64, torch.uint64],
    ids=str,
)
def test_maps_left_alone_by_the_coin_keep_every_integer_dtype(street_batch, dtype):
    labels = (street_batch.long() * 7).to(dtype)
    deformed, stats = nt.deform_batch(labels, torch.Generator().manual_seed(11), prob=0.5)
    chosen = stats.deformed
    assert deformed.dtype == dtype and 0 < int(chosen.sum()) < len(labels)
    assert torch.equal(deformed[~chosen], labels[~chosen])
    reference, _ = nt.deform_batch(street_batch.long() * 7, torch.Generator().manual_seed(11), prob=0.5)
    assert torch.equal(deformed.long(), reference)  # the same maps as int64 labels: only the dtype differs


def test_nsegment_variant_suppresses_nothing(street_batch):
    generator_seed, pairs = 5, [(30, 3)]
    plus, plus_stats = nt.deform_batch(street_batch, torch.Generator().manual_seed(generator_seed), DeformParams(pairs))
    pilot, pilot_stats = nt.deform_batch(
        street_batch, torch.Generator().manual_seed(generator_seed), DeformParams(pairs, variant="nsegment")
    )
    assert (plus_stats.suppressed_fraction > 0).all() and (pilot_stats.suppressed_fraction == 0).all()
    assert not torch.equal(plus, pilot)


def test_batch_class_holds_parameters_and_a_seeded_generator(street_batch):
    first = nt.BatchNoisySegmentPlus(prob=1.0, seed=9, ignore_index=255)
    second = nt.BatchNoisySegmentPlus(prob=1.0, seed=9, ignore_index=255)
    assert torch.equal(first(street_batch), second(street_batch))
    assert first.last_stats.deformed.all()
    assert "prob=1.0" in repr(first)


def test_workers_find_boxes_and_collate_them_for_the_batch(street_batch):
    from torch.utils.data import DataLoader

    items = [(label, nt.component_boxes(label, 1000, 255)) for label in street_batch]
    loader = DataLoader(items, batch_size=3, collate_fn=nt.collate_with_boxes)
    labels, boxes = next(iter(loader))
    assert labels.shape == (3, 64, 96) and len(boxes) == 3
    generator_seed = 2
    with_boxes, _ = nt.deform_batch(labels, torch.Generator().manual_seed(generator_seed), IGNORE_255, boxes=boxes)
    without, _ = nt.deform_batch(labels, torch.Generator().manual_seed(generator_seed), IGNORE_255)
    assert torch.equal(with_boxes, without)


def test_a_training_loops_autocast_does_not_lower_the_blurs_precision(street_batch):
    plain, _ = nt.deform_batch(street_batch, torch.Generator().manual_seed(8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast, _ = nt.deform_batch(street_batch, torch.Generator().manual_seed(8))
    assert torch.equal(plain, autocast)


def test_the_conv_blur_runs_without_tf32_and_gives_the_caller_back_its_setting(street_batch, monkeypatch):
    seen = []
    convolve = nt.F.conv2d

    def spy(*args, **kwargs):
        seen.append(torch.backends.cudnn.conv.fp32_precision)
        return convolve(*args, **kwargs)

    monkeypatch.setattr(nt.F, "conv2d", spy)
    saved = torch.backends.cudnn.conv.fp32_precision
    try:
        torch.backends.cudnn.conv.fp32_precision = "tf32"  # torch's default: TF32 on Ampere and later
        nt.deform_batch(street_batch, torch.Generator().manual_seed(8), blur="conv")
        assert seen and set(seen) == {"ieee"}
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    finally:
        torch.backends.cudnn.conv.fp32_precision = saved


def test_with_a_host_generator_nothing_is_read_back_from_the_labels_device(street_batch):
    # A meta tensor has no data: any read of one on the host (.cpu(), .tolist(), a blocking copy back)
    # raises, so a batch that deforms on "meta" is one for which a GPU would never be waited for.
    labels = street_batch.to("meta")
    boxes = [nt.component_boxes(label, 1000, 255) for label in street_batch]
    host = torch.Generator().manual_seed(4)
    deformed, stats = nt.deform_batch(labels, None, IGNORE_255, prob=0.5, boxes=boxes, host_generator=host)
    assert deformed.device.type == "meta" and deformed.shape == labels.shape and deformed.dtype == labels.dtype
    assert {getattr(stats, name).device.type for name in ("deformed", "alpha", "changed_fraction")} == {"meta"}
    coins, pair_index, noise = nt.draw_batch(None, 6, (64, 96), 15, "meta", torch.Generator().manual_seed(4))
    assert coins.device.type == pair_index.device.type == "cpu" and noise.device.type == "meta"


def test_a_host_generator_draws_the_coins_and_pairs_the_device_generator_the_noise(street_batch):
    deformed, stats = nt.deform_batch(
        street_batch, torch.Generator().manual_seed(1), prob=0.5, host_generator=torch.Generator().manual_seed(2)
    )
    coins, pair_index, _ = nt.draw_batch(torch.Generator().manual_seed(2), 6, (64, 96), len(DEFAULT_ALPHA_SIGMA))
    noise = torch.rand((6, 2, 64, 96), generator=torch.Generator().manual_seed(1))
    assert stats.deformed.tolist() == (coins <= 0.5).tolist()
    chosen = torch.nonzero(coins <= 0.5).flatten()
    pairs = [DEFAULT_ALPHA_SIGMA[index] for index in pair_index[chosen].tolist()]
    expected, _ = nt.deform_batch_with_noise(
        street_batch[chosen], noise[chosen, 0], noise[chosen, 1], *zip(*pairs, strict=True)
    )
    assert torch.equal(deformed[chosen], expected)


def test_empty_batch_gives_empty_results():
    labels = torch.zeros((0, 4, 5), dtype=torch.uint8)
    deformed, stats = nt.deform_batch(labels, torch.Generator().manual_seed(0))
    assert deformed.shape == (0, 4, 5) and stats.rows() == []


@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.zeros((4, 5), dtype=torch.uint8), "3-D"),
        (torch.zeros((1, 4, 5), dtype=torch.float32), "integer"),
        (torch.zeros((1, 0, 5), dtype=torch.uint8), "empty"),
        (np.zeros((1, 4, 5), dtype=np.uint8), "torch tensor"),
    ],
)
def test_bad_label_batches_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        nt.deform_batch(labels)


def test_bad_arguments_are_refused():
    labels = torch.zeros((2, 4, 5), dtype=torch.uint8)
    noise = torch.rand((2, 4, 5))
    with pytest.raises(ValueError, match="do not match"):
        nt.deform_batch_with_noise(labels, noise[:1], noise, 1, 3)
    with pytest.raises(ValueError, match="boxes has 1"):
        nt.deform_batch_with_noise(labels, noise, noise, 1, 3, boxes=[torch.zeros((0, 4))])
    with pytest.raises(ValueError, match="alpha has 3"):
        nt.deform_batch_with_noise(labels, noise, noise, [1, 2, 3], 3)
    with pytest.raises(ValueError, match="boxes has 1"):
        nt.deform_batch(labels, boxes=[torch.zeros((0, 4))])
    with pytest.raises(ValueError, match="prob"):
        nt.deform_batch(labels, prob=1.5)
    with pytest.raises(ValueError, match="variant"):
        nt.BatchNoisySegmentPlus(variant="nsegment++")
    with pytest.raises(ValueError, match="method"):
        nt.smooth_fields(noise, 3, "fft")
