"""NSegment+ on 3D label volumes (medical and volumetric segmentation).

- :mod:`nsegaug.volume.engine`: the method in 3D, step by step
  (:func:`~nsegaug.volume.engine.deform_volume`);
- :mod:`nsegaug.volume.components`: the small 26-connected components and
  their suppression boxes;
- :mod:`nsegaug.volume.nifti`: NIfTI label files read and written with
  every header byte kept (through :func:`nsegaug.io.read_label`);
- :mod:`nsegaug.volume.slices`: what works slice by slice (the noise models,
  the preview's three orthogonal planes).

The MONAI and TorchIO transforms are :mod:`nsegaug.monai` and
:mod:`nsegaug.torchio`.
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
