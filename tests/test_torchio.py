"""nsegaug.torchio.NoisySegmentPlus with the real TorchIO, in a short training-free pipeline: NIfTI files loaded,
label maps deformed as NSegment+ deforms them, images untouched, and the transform replayed from its history."""

from __future__ import annotations

import numpy as np
import pytest
from nifti_cases import SPACING, write_case

nib = pytest.importorskip("nibabel")


torch = pytest.importorskip("torch")


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
