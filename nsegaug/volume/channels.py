"""Label volumes as MONAI and TorchIO hold them: channel-first tensors (1, X, Y, Z), often of a float type.

The adapters ([`nsegaug.monai`][nsegaug.monai], [`nsegaug.torchio`][nsegaug.torchio]) take the one
channel of class values out as an integer volume, deform it, and put the
result back in the tensor's own type and metadata.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..params import DeformParams
from .engine import VolumeDraw, apply_volume_deformation


def class_volume(values: np.ndarray, name: str) -> np.ndarray:
    """The (X, Y, Z) integer class values of a (1, X, Y, Z) or (X, Y, Z) label array, or a
    [`UsageError`][nsegaug.errors.UsageError].

    One channel only: one-hot labels would be suppressed channel by
    channel, each around its own small objects, and could come out with two
    classes in one voxel.
    """
    if values.ndim == 4:
        if values.shape[0] != 1:
            raise UsageError(
                f"{name}: {values.shape[0]} channels; label maps are deformed as one channel of class values "
                "(make one-hot labels class indices first, e.g. with an argmax)"
            )
        values = values[0]
    if values.ndim != 3:
        raise UsageError(f"{name}: shape {values.shape}; a label volume is (1, X, Y, Z) or (X, Y, Z)")
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return values
    whole = np.rint(values)
    if not np.array_equal(whole, values):
        raise UsageError(f"{name}: non-integral values in a label map (dtype {values.dtype}); labels are whole")
    return whole.astype(np.int64)


def deform_channel_first(values: np.ndarray, draw: VolumeDraw, params: DeformParams, spacing, name: str) -> np.ndarray:
    """``values`` (a label array as `class_volume` takes it) deformed by ``draw``, in its own shape and
    dtype. The draw's fields are left as they were (each label map of a sample gets the same draw)."""
    segment = class_volume(values, name)
    copy = VolumeDraw(draw.noise.copy(), draw.alpha, draw.sigma)
    deformed = apply_volume_deformation(segment, copy, params, spacing).segment
    return deformed.reshape(values.shape).astype(values.dtype, copy=False)
