"""nsegaug.mmseg against the real mmsegmentation: the transform in a pipeline, the manifest dataset, a Runner.

Skipped where mmsegmentation (with a compiled mmcv) is not installed; ``python -m pytest -m mmseg`` runs these
and the real-registry test of test_adapters.py only (what ``.ci/run`` does once it has installed them).
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytestmark = pytest.mark.mmseg
pytest.importorskip(
    "mmseg.registry",
    reason="mmsegmentation is not installed (pip install mmengine mmsegmentation==1.2.2 ftfy regex and an mmcv "
    "2.1 built with its ops; see examples/mmseg/README.md)",
)

import cv2  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import DATASETS, TRANSFORMS  # noqa: E402

from nsegaug import NoisySegmentPlus  # noqa: E402
from nsegaug.cli import main  # noqa: E402
from nsegaug.manifest import open_generated  # noqa: E402
from nsegaug.sampling import chosen_labels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TRAIN = EXAMPLES / "data" / "train"
IMPORTS = "custom_imports = dict(imports=['nsegaug.mmseg'], allow_failed_imports=False)\n"
CITYSCAPES_LIKE = dict(
    type="CityscapesDataset",
    data_root=str(TRAIN),
    data_prefix=dict(img_path="images", seg_map_path="labels"),
    img_suffix=".jpg",
    seg_map_suffix=".png",
    indices=3,
)


@pytest.fixture(scope="module", autouse=True)
def mmseg_scope():
    init_default_scope("mmseg")


def config_file(tmp_path: Path, text: str) -> Config:
    """A config file as a user writes one, read the way mmseg's tools read it (custom_imports included)."""
    path = tmp_path / "config.py"
    path.write_text(IMPORTS + text)
    return Config.fromfile(str(path))


def generate(out: Path, *options: str) -> Path:
    args = ["generate", "--labels", str(TRAIN / "labels"), "--out", str(out), "--pattern", "scene_000[0-3].png"]
    result = CliRunner().invoke(main, [*args, "--copies", "2", "--jobs", "1", "--quiet", *options])
    assert result.exit_code == 0, result.output
    return out / "manifest.jsonl"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """4 example images, each with 2 deformed copies of its label (ignore index 255)."""
    return generate(tmp_path_factory.mktemp("generated"), "--images", str(TRAIN / "images"), "--ignore-index", "255")


# --- the transform, online ---------------------------------------------------------------------------------------


def test_custom_imports_register_the_transform_and_the_dataset(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "nsegaug.mmseg", raising=False)
    monkeypatch.delitem(TRANSFORMS.module_dict, "NoisySegmentPlus", raising=False)
    monkeypatch.delitem(DATASETS.module_dict, "NsegaugManifestDataset", raising=False)
    config_file(tmp_path, "")
    assert TRANSFORMS.get("NoisySegmentPlus") is NoisySegmentPlus
    assert DATASETS.get("NsegaugManifestDataset") is sys.modules["nsegaug.mmseg"].NsegaugManifestDataset


PIPELINE = """
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="NoisySegmentPlus", alpha_sigma_list=[(30, 5)], prob={prob}, ignore_index=255, seed={seed}),
    dict(type="RandomResize", scale=(512, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=(128, 128)),
    dict(type="PackSegInputs"),
]
"""


def pipeline_outputs(tmp_path: Path, prob: float = 1.0, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, label) of the first 3 example images, through a dataset whose pipeline comes from a config file."""
    config = config_file(tmp_path, PIPELINE.format(prob=prob, seed=seed))
    dataset = DATASETS.build(dict(CITYSCAPES_LIKE, pipeline=config.train_pipeline))
    outputs = []
    for index in range(len(dataset)):
        np.random.seed(index)  # mmcv's resize and crop draw from NumPy's global state; NoisySegmentPlus never does
        packed = dataset[index]
        outputs.append((packed["inputs"].numpy(), packed["data_samples"].gt_sem_seg.data.numpy()[0]))
    return outputs


def test_in_a_real_pipeline_only_the_label_changes_reproducibly(tmp_path):
    deformed = pipeline_outputs(tmp_path, prob=1.0)
    untouched = pipeline_outputs(tmp_path, prob=0.0)
    for index, ((image, label), (plain_image, plain_label)) in enumerate(zip(deformed, untouched, strict=True)):
        assert image.shape[1:] == label.shape == (128, 128)
        assert np.array_equal(image, plain_image)  # the same crop of the same image, bit for bit
        assert not np.array_equal(label, plain_label)
        source = np.asarray(Image.open(TRAIN / "labels" / f"scene_{index:04d}.png"))
        assert set(np.unique(label)) <= set(np.unique(source))
    again = pipeline_outputs(tmp_path, prob=1.0)
    other_seed = pipeline_outputs(tmp_path, prob=1.0, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(deformed, again, strict=True))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(deformed, other_seed, strict=True))


def test_the_transform_keeps_the_results_keys_it_was_given():
    transform = TRANSFORMS.build(dict(type="NoisySegmentPlus", prob=1.0, ignore_index=255, seed=0))
    dataset = DATASETS.build(
        dict(CITYSCAPES_LIKE, pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")])
    )
    results = dataset[0]
    before = {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in results.items()}
    after = transform(results)
    assert after.keys() == before.keys() and after["seg_fields"] == ["gt_seg_map"]
    assert np.array_equal(after["img"], before["img"])
    assert not np.array_equal(after["gt_seg_map"], before["gt_seg_map"])
    with pytest.raises(KeyError, match="after LoadAnnotations"):
        transform(DATASETS.build(dict(CITYSCAPES_LIKE, pipeline=[dict(type="LoadImageFromFile")]))[0])


# --- the manifest dataset, offline -------------------------------------------------------------------------------


def manifest_dataset(manifest: Path, **kwargs):
    return DATASETS.build(dict(type="NsegaugManifestDataset", ann_file=str(manifest), pipeline=[], **kwargs))


def loads(dataset, passes: int) -> list[list[int]]:
    """The label index of every sample, pass after pass, as a training loop without workers loads them."""
    return [[dataset[index]["label_copy"] for index in range(len(dataset))] for _ in range(passes)]


def test_manifest_dataset_lists_each_image_with_its_labels(manifest):
    dataset = manifest_dataset(manifest)
    samples = open_generated(manifest).samples()
    assert len(dataset) == len(samples) == 4
    for index, sample in enumerate(samples):
        info = dataset.get_data_info(index)
        assert info["img_path"] == str(sample.image) and Path(info["img_path"]).is_file()
        assert info["seg_map_path"] == str(sample.labels[0])  # the original, until a load chooses
        assert info["label_paths"] == [str(path) for path in sample.labels] and len(info["label_paths"]) == 3


@pytest.mark.parametrize("seed", [0, 7])
def test_pass_n_without_workers_chooses_as_nsegaug_train_does_in_epoch_n(manifest, seed):
    np.random.seed(5)
    global_state = np.random.get_state()[1].copy()
    dataset = manifest_dataset(manifest, seed=seed)
    chosen = loads(dataset, passes=8)
    samples = open_generated(manifest).samples()
    assert chosen == [chosen_labels(samples, seed, epoch, 0.5, baseline=False) for epoch in range(8)]
    assert {0, 1, 2} <= {index for row in chosen for index in row}  # originals and both copies
    assert loads(manifest_dataset(manifest, seed=seed), passes=8) == chosen  # reproducible
    assert np.array_equal(np.random.get_state()[1], global_state)  # no global randomness
    item = dataset[0]
    assert item["seg_map_path"] == item["label_paths"][item["label_copy"]]


def test_prob_and_test_mode(manifest):
    assert loads(manifest_dataset(manifest, prob=0.0, seed=0), passes=4) == [[0] * 4] * 4
    assert all(index > 0 for row in loads(manifest_dataset(manifest, prob=1.0, seed=0), passes=4) for index in row)
    in_test_mode = manifest_dataset(manifest, prob=1.0, seed=0, test_mode=True, metainfo=dict(classes=("a", "b")))
    assert [in_test_mode[index]["seg_map_path"] for index in range(4)] == [
        str(sample.labels[0]) for sample in open_generated(manifest).samples()
    ]


def test_metainfo_reduce_zero_label_and_ignore_index_come_from_the_config(manifest, tmp_path):
    config = config_file(
        tmp_path,
        f"train_dataset = dict(type='NsegaugManifestDataset', ann_file={str(manifest)!r}, prob=1.0, seed=0,\n"
        "    metainfo=dict(classes=('road', 'rest'), palette=[[128, 64, 128], [0, 0, 0]]),\n"
        "    reduce_zero_label=True, ignore_index=250, pipeline=[dict(type='LoadAnnotations')])\n",
    )
    dataset = DATASETS.build(config.train_dataset)
    assert dataset.metainfo["classes"] == ("road", "rest")
    assert dataset.metainfo["palette"] == [[128, 64, 128], [0, 0, 0]]
    assert dataset.metainfo["reduce_zero_label"] and dataset.ignore_index == 250
    results = dataset[0]
    raw = np.asarray(Image.open(results["seg_map_path"]))
    assert results["label_copy"] > 0
    np.testing.assert_array_equal(results["gt_seg_map"], np.where((raw == 0) | (raw == 255), 255, raw - 1))


def epochs_in_workers(manifest: Path, loader_seed: int, persistent: bool) -> list[list[int]]:
    dataset = manifest_dataset(manifest, seed=0)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=2,
        persistent_workers=persistent,
        generator=torch.Generator().manual_seed(loader_seed),
    )
    return [[item["label_copy"] for item in loader] for _ in range(3)]


@pytest.mark.parametrize("persistent", [False, True], ids=["new-workers", "persistent-workers"])
def test_dataloader_workers_choose_anew_each_epoch_and_a_seeded_loader_repeats(manifest, persistent):
    first = epochs_in_workers(manifest, loader_seed=1, persistent=persistent)
    assert len({tuple(epoch) for epoch in first}) > 1  # not the first epoch's choices again
    assert epochs_in_workers(manifest, loader_seed=1, persistent=persistent) == first


def test_manifest_problems_are_value_errors(tmp_path):
    without_images = generate(tmp_path / "no-images")
    with pytest.raises(ValueError, match="made without images"):
        manifest_dataset(without_images)
    with pytest.raises(ValueError, match="needs ann_file"):
        DATASETS.build(dict(type="NsegaugManifestDataset"))


# --- a real Runner on the example configs ------------------------------------------------------------------------


@pytest.fixture
def runner_side_effects_undone():
    """mmengine's Runner sets OpenCV's threads, the start method and the global seeds; give them back."""
    threads, method = cv2.getNumThreads(), multiprocessing.get_start_method(allow_none=True)
    states = np.random.get_state(), random.getstate(), torch.get_rng_state()
    yield
    cv2.setNumThreads(threads)
    multiprocessing.set_start_method(method, force=True)
    np.random.set_state(states[0])
    random.setstate(states[1])
    torch.set_rng_state(states[2])


def example_runner(config: str, work_dir: Path, *options: str):
    spec = importlib.util.spec_from_file_location("mmseg_example_train", EXAMPLES / "mmseg" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    short = ["train_cfg.max_iters=4", "train_cfg.val_interval=4", "default_hooks.checkpoint.interval=4"]
    short += ["train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False"]
    short += ["val_dataloader.dataset.indices=2", "log_level=WARNING"]
    argv = [str(EXAMPLES / "mmseg" / config), "--work-dir", str(work_dir), "--cfg-options", *short, *options]
    return module.build_runner(argv)


@pytest.mark.parametrize("config", ["nsp_online.py", "nsp_manifest.py"])
def test_a_runner_trains_and_evaluates_each_example_config(
    config, manifest, tmp_path, monkeypatch, runner_side_effects_undone
):
    monkeypatch.chdir(ROOT)  # the configs' paths are relative to the repository root
    options = [f"train_dataloader.dataset.ann_file={manifest}"] if config == "nsp_manifest.py" else []
    runner = example_runner(config, tmp_path, *options)
    runner.train()
    dataset = runner.train_dataloader.dataset
    expected = "NsegaugManifestDataset" if config == "nsp_manifest.py" else "CityscapesDataset"
    assert type(dataset).__name__ == expected
    metrics = {key: runner.message_hub.get_scalar(f"val/{key}").current() for key in ("aAcc", "mIoU", "mAcc")}
    assert all(math.isfinite(value) and 0 <= value <= 100 for value in metrics.values()), metrics
    assert (tmp_path / "iter_4.pth").is_file()
    assert (tmp_path / "last_checkpoint").read_text().strip().endswith("iter_4.pth")


def test_an_exported_split_list_builds_mmsegs_own_datasets_of_the_manifests_pairs(manifest, tmp_path):
    split_file = tmp_path / "split.txt"
    result = CliRunner().invoke(
        main, ["export", "--manifest", str(manifest), "--format", "mmseg", "--out", str(split_file)]
    )
    assert result.exit_code == 0, result.output
    config = {}
    exec(result.stdout, {"train_pipeline": []}, config)
    metainfo = dict(classes=tuple(str(index) for index in range(19)))
    for part in config["train_dataset"]["datasets"]:
        part["metainfo"] = metainfo
    dataset = DATASETS.build(config["train_dataset"])
    listed = {
        (info["img_path"], info["seg_map_path"])
        for part in dataset.datasets
        for info in (part.get_data_info(index) for index in range(len(part)))
    }
    from nsegaug.export import manifest_pairs

    assert listed == {(str(pair.image), str(pair.label)) for pair in manifest_pairs(manifest)}
    assert len(dataset) == 3 * 4
