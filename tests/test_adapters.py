"""The adapters: nsegaug.mmseg (against stand-ins; real mmseg: test_mmseg.py) and nsegaug.albumentations."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings

import numpy as np
import pytest

from nsegaug import NoisySegmentPlus
from nsegaug.deform import deform
from nsegaug.params import DeformParams
from nsegaug.synthetic import street_scene

SEGMENT = street_scene(96, 160, 30, seed=4, ignore_band=1)
MOVING_PAIRS = [(30, 3)]  # a pair that always moves some labels of SEGMENT


def fresh_import(monkeypatch, name: str, stand_ins: dict):
    """Import ``name`` anew with ``stand_ins`` in sys.modules (None: not importable); undone after the test."""
    for module, replacement in stand_ins.items():
        monkeypatch.setitem(sys.modules, module, replacement)
    # Whether or not it was imported before, the module the test imports is not left behind.
    monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, name)
    return importlib.import_module(name)


# --- mmsegmentation ---------------------------------------------------------------------------------------------


class StandInRegistry:
    """The part of mmengine's ``Registry`` that registration and ``dict(type=...)`` building use."""

    def __init__(self) -> None:
        self.module_dict: dict[str, type] = {}

    def register_module(self, name=None, force=False, module=None):
        name = name or module.__name__
        if name in self.module_dict and not force:
            raise KeyError(f"{name} is already registered")
        self.module_dict[name] = module
        return module

    def build(self, config: dict):
        config = dict(config)
        return self.module_dict[config.pop("type")](**config)


@pytest.fixture
def stand_in_mmseg(monkeypatch) -> dict[str, StandInRegistry]:
    """mmseg.registry's TRANSFORMS and DATASETS, and mmseg.datasets' BaseSegDataset, as stand-ins."""
    registries = {"TRANSFORMS": StandInRegistry(), "DATASETS": StandInRegistry()}
    package = types.ModuleType("mmseg")
    package.__path__ = []
    registry = types.ModuleType("mmseg.registry")
    vars(registry).update(registries)
    datasets = types.ModuleType("mmseg.datasets")
    datasets.BaseSegDataset = type("BaseSegDataset", (), {})
    package.registry, package.datasets = registry, datasets
    stand_ins = {"mmseg": package, "mmseg.registry": registry, "mmseg.datasets": datasets}
    fresh_import(monkeypatch, "nsegaug.mmseg", stand_ins)
    return registries


def test_mmseg_import_registers_the_transform_for_config_dicts(stand_in_mmseg):
    transforms = stand_in_mmseg["TRANSFORMS"]
    assert transforms.module_dict["NoisySegmentPlus"] is NoisySegmentPlus
    assert (
        stand_in_mmseg["DATASETS"].module_dict["NsegaugManifestDataset"]
        is sys.modules["nsegaug.mmseg"].NsegaugManifestDataset
    )
    transform = transforms.build(
        dict(type="NoisySegmentPlus", alpha_sigma_list=MOVING_PAIRS, prob=1.0, ignore_index=255, seed=0)
    )
    results = {"img": np.zeros((96, 160, 3), np.uint8), "gt_seg_map": SEGMENT.copy()}
    for step in [transform]:  # what mmcv's Compose does with a pipeline
        results = step(results)
    assert results["gt_seg_map"].dtype == SEGMENT.dtype and not np.array_equal(results["gt_seg_map"], SEGMENT)
    assert set(np.unique(results["gt_seg_map"])) <= set(np.unique(SEGMENT))


@pytest.mark.parametrize(
    ("registry", "name"), [("TRANSFORMS", "NoisySegmentPlus"), ("DATASETS", "NsegaugManifestDataset")]
)
def test_mmseg_registration_is_idempotent_and_replaces_another_class_with_a_warning(stand_in_mmseg, registry, name):
    module = sys.modules["nsegaug.mmseg"]
    ours = stand_in_mmseg[registry].module_dict[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module.register()  # already ours: nothing happens
    stand_in_mmseg[registry].module_dict[name] = type(name, (), {})
    with pytest.warns(UserWarning, match="replaces"):
        module.register()
    assert stand_in_mmseg[registry].module_dict[name] is ours


def test_mmseg_missing_is_a_clear_import_error(monkeypatch):
    with pytest.raises(ImportError, match="pip install mmsegmentation"):
        fresh_import(monkeypatch, "nsegaug.mmseg", {"mmseg": None, "mmseg.registry": None, "mmseg.datasets": None})


@pytest.mark.mmseg
def test_mmseg_registration_with_the_real_registry():
    pytest.importorskip("mmseg.registry", reason="mmsegmentation (and a compiled mmcv) is not installed")
    from mmseg.registry import DATASETS, TRANSFORMS

    import nsegaug.mmseg

    assert TRANSFORMS.get("NoisySegmentPlus") is NoisySegmentPlus
    assert DATASETS.get("NsegaugManifestDataset") is nsegaug.mmseg.NsegaugManifestDataset


# --- albumentations ---------------------------------------------------------------------------------------------

# Only these tests need albumentations (the [albumentations] extra, in [test]); the mmseg ones run without it.
needs_albumentations = pytest.mark.skipif(
    importlib.util.find_spec("albumentations") is None, reason="albumentations is not installed"
)
IMAGE = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)


def pipeline(seed: int, p: float = 1.0, **kwargs):
    import albumentations as A

    from nsegaug.albumentations import NoisySegmentPlus as AlbuNoisySegmentPlus

    transform = AlbuNoisySegmentPlus(alpha_sigma_list=MOVING_PAIRS, ignore_index=255, p=p)
    return A.Compose([transform], seed=seed, **kwargs)


@needs_albumentations
def test_compose_changes_the_masks_only_and_reproduces_with_its_seed():
    image = IMAGE.copy()
    out = pipeline(seed=3)(image=image, mask=SEGMENT, masks=[SEGMENT, SEGMENT[::-1].copy()])
    assert np.array_equal(out["image"], IMAGE) and np.array_equal(image, IMAGE)  # bit for bit
    assert not np.array_equal(out["mask"], SEGMENT)
    assert all(
        not np.array_equal(mask, source) for mask, source in zip(out["masks"], [SEGMENT, SEGMENT[::-1]], strict=True)
    )
    assert np.array_equal(out["masks"][0], out["mask"])  # one draw for all masks of a sample

    again = pipeline(seed=3)(image=image, mask=SEGMENT)
    other = pipeline(seed=4)(image=image, mask=SEGMENT)
    assert np.array_equal(again["mask"], out["mask"]) and not np.array_equal(other["mask"], out["mask"])


@needs_albumentations
def test_the_mask_is_the_cpu_engines_result_for_the_drawn_seed():
    compose = pipeline(seed=5)
    out = compose(image=IMAGE, mask=SEGMENT)
    seed = compose.transforms[0].params["deform_seed"]
    expected = deform(SEGMENT, np.random.RandomState(seed), DeformParams(MOVING_PAIRS, ignore_index=255)).segment
    assert np.array_equal(out["mask"], expected)


@needs_albumentations
def test_p_is_the_chance_of_a_deformation():
    never, always, half = pipeline(seed=1, p=0.0), pipeline(seed=1, p=1.0), pipeline(seed=1, p=0.5)
    assert all(np.array_equal(never(image=IMAGE, mask=SEGMENT)["mask"], SEGMENT) for _ in range(5))
    assert not any(np.array_equal(always(image=IMAGE, mask=SEGMENT)["mask"], SEGMENT) for _ in range(5))
    changed = [not np.array_equal(half(image=IMAGE, mask=SEGMENT)["mask"], SEGMENT) for _ in range(30)]
    assert 0 < sum(changed) < 30


@needs_albumentations
def test_boxes_keypoints_and_channel_masks_pass_through():
    import albumentations as A

    compose = pipeline(
        seed=2, bbox_params=A.BboxParams(format="pascal_voc"), keypoint_params=A.KeypointParams(format="xy")
    )
    out = compose(image=IMAGE, mask=SEGMENT[..., None], bboxes=[[1, 2, 30, 40, 0]], keypoints=[[5, 6]])
    assert out["mask"].shape == (96, 160, 1) and not np.array_equal(out["mask"][..., 0], SEGMENT)
    # albumentations stores boxes normalised in float32, so they come back to within its rounding.
    np.testing.assert_allclose(np.asarray(out["bboxes"]), [[1, 2, 30, 40, 0]], atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["keypoints"])[:, :2], [[5, 6]])


@needs_albumentations
def test_serialises_and_refuses_bad_parameters():
    import albumentations as A

    from nsegaug.albumentations import NoisySegmentPlus as AlbuNoisySegmentPlus

    restored = A.from_dict(A.to_dict(pipeline(seed=0)))
    assert isinstance(restored.transforms[0], AlbuNoisySegmentPlus)
    assert restored.transforms[0].alpha_sigma_list == tuple(MOVING_PAIRS)
    with pytest.raises(ValueError, match="variant"):
        AlbuNoisySegmentPlus(variant="elastic")
    with pytest.raises(ValueError, match="integer"):
        pipeline(seed=0)(image=IMAGE, mask=SEGMENT.astype(np.float32))


def test_albumentations_missing_is_a_clear_import_error(monkeypatch):
    with pytest.raises(ImportError, match=r"nsegaug\[albumentations\]"):
        fresh_import(monkeypatch, "nsegaug.albumentations", {"albumentations": None})
