"""nsegaug.monai.NoisySegmentPlusd with the real MONAI, in short training-free pipelines: load NIfTI files,
transform, check labels changed as NSegment+ changes them, images untouched, randomness as MONAI does it."""

from __future__ import annotations

import numpy as np
import pytest
from nifti_cases import SPACING, write_case

pytest.importorskip("nibabel")  # the cases are NIfTI files
torch = pytest.importorskip("torch")


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
