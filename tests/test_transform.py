"""NoisySegmentPlus: the transform class and its mmseg-style call."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import oracle_nsegment_plus

from nsegaug import DEFAULT_ALPHA_SIGMA, NoisySegmentPlus
from nsegaug.synthetic import street_scene

SEGMENT = street_scene(128, 192, 30, seed=21, ignore_band=1)


def test_defaults_are_the_methods():
    transform = NoisySegmentPlus()
    assert len(transform.alpha_sigma_list) == 15
    assert set(transform.alpha_sigma_list) == {(a, s) for a in (1, 15, 30, 50, 100) for s in (3, 5, 10)}
    assert (transform.prob, transform.area_thresh, transform.ignore_index) == (0.5, 1000, None)


@pytest.mark.parametrize("seed", range(5))
def test_transform_reproduces_the_reference_for_a_seeded_state(seed):
    transform = NoisySegmentPlus(precision="float64")
    expected, *_ = oracle_nsegment_plus(SEGMENT, np.random.RandomState(seed), list(DEFAULT_ALPHA_SIGMA))
    np.testing.assert_array_equal(transform.transform(SEGMENT, np.random.RandomState(seed)), expected)


def test_call_with_prob_one_deforms_only_the_label():
    image = np.random.default_rng(0).integers(0, 255, (*SEGMENT.shape, 3), dtype=np.uint8)
    results = {"img": image.copy(), "gt_seg_map": SEGMENT.copy(), "seg_fields": ["gt_seg_map"]}
    out = NoisySegmentPlus(alpha_sigma_list=[(50, 3)], prob=1.0, seed=0)(results)
    assert out is results
    assert not np.array_equal(out["gt_seg_map"], SEGMENT)
    np.testing.assert_array_equal(out["img"], image)
    assert out["seg_fields"] == ["gt_seg_map"]


def test_call_deforms_every_seg_field_with_the_same_draws():
    alone = NoisySegmentPlus(prob=1.0, seed=3)({"gt_seg_map": SEGMENT.copy()})["gt_seg_map"]
    fields = ["gt_seg_map", "gt_extra_map"]
    out = NoisySegmentPlus(prob=1.0, seed=3)(
        {"gt_seg_map": SEGMENT.copy(), "gt_extra_map": SEGMENT.copy(), "seg_fields": fields}
    )
    np.testing.assert_array_equal(out["gt_seg_map"], alone)  # one map: the stream as the method uses it
    np.testing.assert_array_equal(out["gt_extra_map"], alone)  # the same noise and pair for every map
    empty_list = NoisySegmentPlus(prob=1.0, seed=3)({"gt_seg_map": SEGMENT.copy(), "seg_fields": []})
    np.testing.assert_array_equal(empty_list["gt_seg_map"], alone)


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_call_without_the_label_map_says_where_the_transform_goes(prob):
    with pytest.raises(KeyError, match="after LoadAnnotations"):
        NoisySegmentPlus(prob=prob, seed=0)({"img": np.zeros((4, 4, 3), np.uint8), "seg_fields": []})


def test_call_with_prob_zero_changes_nothing():
    results = {"gt_seg_map": SEGMENT.copy()}
    for _ in range(5):
        NoisySegmentPlus(prob=0.0, seed=1)(results)
    np.testing.assert_array_equal(results["gt_seg_map"], SEGMENT)


def test_prob_is_honoured_on_average():
    transform = NoisySegmentPlus(alpha_sigma_list=[(50, 3)], prob=0.3, area_thresh=10, seed=4)
    segment = street_scene(32, 32, 0, seed=0)
    deformed = sum(not np.array_equal(transform({"gt_seg_map": segment})["gt_seg_map"], segment) for _ in range(300))
    assert 60 <= deformed <= 120


def test_seeded_instances_repeat_and_the_global_state_is_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = [NoisySegmentPlus(prob=1.0, seed=9)({"gt_seg_map": SEGMENT})["gt_seg_map"] for _ in range(1)]
    again = [NoisySegmentPlus(prob=1.0, seed=9)({"gt_seg_map": SEGMENT})["gt_seg_map"] for _ in range(1)]
    unseeded = NoisySegmentPlus(prob=1.0)
    unseeded({"gt_seg_map": SEGMENT})
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_deform_returns_statistics():
    result = NoisySegmentPlus(alpha_sigma_list=[(30, 5)]).deform(SEGMENT, np.random.RandomState(0))
    assert (result.alpha, result.sigma) == (30, 5)
    assert 0 <= result.changed_fraction <= 1 and 0 <= result.suppressed_fraction <= 1


@pytest.mark.parametrize(
    "kwargs",
    [{"prob": 1.5}, {"variant": "other"}, {"precision": "float16"}, {"alpha_sigma_list": [(5, -1)]}],
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        NoisySegmentPlus(**kwargs)


class _Maps:
    """A torch Dataset of one label map, deformed by a seeded NoisySegmentPlus in the workers."""

    def __init__(self, transform):
        self.transform = transform
        self.segment = street_scene(64, 96, 12, seed=4)

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return self.transform({"gt_seg_map": self.segment.copy()})["gt_seg_map"]


def _epochs(seed: int, loader_seed: int, epochs: int = 2) -> list[bytes]:
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(loader_seed)
    dataset = _Maps(NoisySegmentPlus(prob=1.0, seed=seed))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=1, generator=generator)
    return [next(iter(loader)).numpy().tobytes() for _ in range(epochs)]


def test_seeded_transform_in_dataloader_workers_gives_new_deformations_each_epoch_reproducibly():
    first, second = _epochs(seed=0, loader_seed=1)
    assert first != second  # not the first epoch's deformations again
    assert _epochs(seed=0, loader_seed=1) == [first, second]  # a seeded loader repeats the run


def test_ranks_draw_different_streams(monkeypatch):
    draws = []
    for rank in ("0", "1", "0"):
        monkeypatch.setenv("RANK", rank)
        draws.append(NoisySegmentPlus(seed=0).random_state().rand(4).tolist())
    assert draws[0] != draws[1] and draws[0] == draws[2]
