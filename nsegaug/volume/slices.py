"""What is done to a volume slice by slice: annotation noise in the annotation plane, and the preview's planes.

Noise. Radiologists outline a structure slice by slice, in one plane (most
often axial), and their errors are those of a 2D outline on each slice,
with no agreement from one slice to the next: the staircase an outlined
volume shows across slices. So ``nsegaug noise`` on a volume applies the 2D
models of [`nsegaug.noise_models`][nsegaug.noise_models] to every slice of the annotation plane,
each with its own stream from (seed, key, slice); their sizes are in voxels
of the slice. The plane is the one across the body's head-foot axis (the
array axis whose direction the affine names S or I), else the last axis.

Preview. A volume is shown as three orthogonal slices through the place that
changed most ([`changed_centre`][nsegaug.volume.slices.changed_centre]): on each axis, the slice where the
copies changed the most voxels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..noise_models import annotation_noise
from ..params import DEFAULT_NOISE, NoiseParams

AXIS_NAMES = ("axis 0", "axis 1", "axis 2")


def annotation_axis(axis_codes: Sequence[str] | None) -> int:
    """The array axis the annotator steps through: the head-foot one (code S or I), else the last."""
    for axis, code in enumerate(axis_codes or ()):
        if code in ("S", "I"):
            return axis
    return 2


def volume_noise(
    volume: np.ndarray,
    seed: int,
    key: str,
    params: NoiseParams = DEFAULT_NOISE,
    axis_codes: Sequence[str] | None = None,
) -> np.ndarray:
    """The noisy version of a label volume: the 2D models on every slice across
    [`annotation_axis`][nsegaug.volume.slices.annotation_axis].

    Slice ``i`` draws from the streams of the key ``KEY#slice-i``, so a
    slice's noise does not depend on the others, nor on the order they are
    made in.
    """
    axis = annotation_axis(axis_codes)
    out = np.empty_like(volume)
    for index in range(volume.shape[axis]):
        plane = np.ascontiguousarray(np.take(volume, index, axis=axis))
        noisy = annotation_noise(plane, seed, f"{key}#slice-{index}", params)
        out[(slice(None),) * axis + (index,)] = noisy
    return out


def changed_centre(volume: np.ndarray, copies: Sequence[np.ndarray]) -> tuple[int, int, int]:
    """The voxel through which the preview's three planes pass: per axis, the slice with the most voxels that
    some copy changed (the middle slice where nothing changed)."""
    changed = np.zeros(volume.shape, dtype=bool)
    for copy in copies:
        changed |= copy != volume
    centre = []
    for axis in range(3):
        others = tuple(position for position in range(3) if position != axis)
        counts = changed.sum(axis=others)
        centre.append(int(np.argmax(counts)) if counts.any() else volume.shape[axis] // 2)
    return tuple(centre)


def plane(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice ``index`` across ``axis``, as a contiguous 2-D array (rows: the lower remaining axis)."""
    return np.ascontiguousarray(np.take(volume, index, axis=axis))
