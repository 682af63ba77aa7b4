"""NSegment+ on 3D label volumes (medical and volumetric segmentation).

- [`nsegaug.volume.engine`][nsegaug.volume.engine]: the method in 3D, step by step
  ([`deform_volume`][nsegaug.volume.deform_volume]);
- [`nsegaug.volume.components`][nsegaug.volume.components]: the small 26-connected components and
  their suppression boxes;
- [`nsegaug.volume.nifti`][nsegaug.volume.nifti]: NIfTI label files read and written with
  every header byte kept (through [`nsegaug.io.read_label`][nsegaug.io.read_label]);
- [`nsegaug.volume.slices`][nsegaug.volume.slices]: what works slice by slice (the noise models,
  the preview's three orthogonal planes).

The MONAI and TorchIO transforms are [`nsegaug.monai`][nsegaug.monai] and
[`nsegaug.torchio`][nsegaug.torchio].
"""

from __future__ import annotations

from .engine import (
    VOLUME_ENGINE_VERSION,
    VolumeDraw,
    apply_volume_deformation,
    deform_volume,
    draw_volume_deformation,
    volume_boxes,
)

__all__ = [
    "VOLUME_ENGINE_VERSION",
    "VolumeDraw",
    "apply_volume_deformation",
    "deform_volume",
    "draw_volume_deformation",
    "volume_boxes",
]
