"""Small NIfTI cases (a label volume and its scan, anisotropic voxels) for the MONAI and TorchIO adapters' tests."""

from __future__ import annotations

import numpy as np

SPACING = (0.7, 0.7, 2.5)


def write_case(folder, name: str, seed: int):
    """A label volume (three classes, one of 8 voxels) and a noise scan, as ``{name}_seg`` and ``{name}_ct``."""
    import nibabel as nib

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
