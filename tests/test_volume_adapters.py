"""The MONAI and TorchIO transforms with the real libraries, in short training-free pipelines: load NIfTI files,
transform, check labels changed as NSegment+ changes them, images untouched, randomness as each library does it."""

from __future__ import annotations

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
torch = pytest.importorskip("torch")

SPACING = (0.7, 0.7, 2.5)


def write_case(folder, name: str, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.zeros((40, 44, 20), np.uint8)
    labels[6:34, 8:36, 3:17] = 1
    labels[12:24, 14:26, 6:12] = 2
    labels[30:32, 2:4, 2:4] = 3  # 8 voxels: protected
    scan = rng.normal(size=labels.shape).astype(np.float32)
    affine = np.diag([*SPACING, 1.0])
    nib.save(nib.Nifti1Image(labels, affine), folder / f"{name}_seg.nii.gz")
    nib.save(nib.Nifti1Image(scan, affine), folder / f"{name}_ct.nii.gz")
    return {"image": str(folder / f"{name}_ct.nii.gz"), "label": str(folder / f"{name}_seg.nii.gz")}, labels


def test_monai_dictionary_pipeline_deforms_label_keys_only(tmp_path):
    monai = pytest.importorskip("monai")
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from nsegaug.monai import NoisySegmentPlusd

    case, labels = write_case(tmp_path, "a", 0)
    pipeline = Compose(
        [
            LoadImaged(keys=["image", "label"]),
            EnsureChannelFirstd(keys=["image", "label"]),
            NoisySegmentPlusd(keys=["label"], alpha_sigma_list=[(8, 1.5)], prob=1.0, area_thresh=20, units="mm"),
        ]
    )
    pipeline.set_random_state(seed=7)
    first = pipeline(dict(case))
    loaded = LoadImaged(keys=["image"])(dict(case))["image"]
    assert torch.equal(first["image"][0], loaded)  # the scan is left alone
    deformed = first["label"][0].numpy()
    assert isinstance(first["label"], monai.data.MetaTensor) and first["label"].shape == (1, 40, 44, 20)
    assert np.allclose(first["label"].affine.numpy(), np.diag([*SPACING, 1.0]))
    assert 0 < np.mean(deformed != labels) < 0.2
    assert set(np.unique(deformed)) <= {0, 1, 2, 3}
    assert np.array_equal(deformed == 3, labels == 3)  # the small structure never moves
    pipeline.set_random_state(seed=7)
    assert torch.equal(pipeline(dict(case))["label"], first["label"])  # MONAI's seeding repeats it
    pipeline.set_random_state(seed=8)
    assert not torch.equal(pipeline(dict(case))["label"], first["label"])


def test_monai_coin_follows_prob_and_refuses_one_hot_labels(tmp_path):
    pytest.importorskip("monai")
    from nsegaug.monai import NoisySegmentPlusd

    labels = np.zeros((1, 16, 16, 16), np.int64)
    labels[0, 4:12, 4:12, 4:12] = 1
    never = NoisySegmentPlusd(keys="label", prob=0.0)
    assert never({"label": labels})["label"] is labels
    with pytest.raises(ValueError, match="2 channels"):
        NoisySegmentPlusd(keys="label", prob=1.0)({"label": np.zeros((2, 8, 8, 8))})


def test_torchio_transform_deforms_label_maps_only_and_replays_from_history(tmp_path):
    tio = pytest.importorskip("torchio")
    from nsegaug.torchio import LabelDeformation, NoisySegmentPlus

    case, labels = write_case(tmp_path, "b", 1)
    subject = tio.Subject(ct=tio.ScalarImage(case["image"]), seg=tio.LabelMap(case["label"]))
    dataset = tio.SubjectsDataset(
        [subject], transform=NoisySegmentPlus(alpha_sigma_list=[(8, 1.5)], area_thresh=20, units="mm")
    )
    torch.manual_seed(3)
    first = dataset[0]
    assert torch.equal(first.ct.data, subject.ct.data)  # ScalarImages are left alone
    deformed = first.seg.data[0].numpy()
    assert first.seg.data.dtype == subject.seg.data.dtype and first.seg.spacing == pytest.approx(SPACING)
    assert 0 < np.mean(deformed != labels) < 0.2 and np.array_equal(deformed == 3, labels == 3)
    (applied,) = first.history
    assert isinstance(applied, LabelDeformation)
    assert torch.equal(first.get_composed_history()(subject).seg.data, first.seg.data)  # the history replays it
    torch.manual_seed(3)
    assert torch.equal(dataset[0].seg.data, first.seg.data)  # torch's seed repeats the draw
    assert not torch.equal(dataset[0].seg.data, first.seg.data)
    assert not applied.is_invertible()
