"""Step 4 of :mod:`nsegaug.deform`: sampling coordinates and the nearest-neighbour warp, as pure functions.

Shared by the whole-map engine (:mod:`nsegaug.deform`), the banded one
(:mod:`nsegaug.bands`) and the noise models; :mod:`nsegaug.deform` re-exports
the public names, where the method's steps are read.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# cv2.remap's nearest-neighbour path handles these; other integer types take
# the NumPy indexing path, which rounds the same way (half to even).
_REMAP_DTYPES = {np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32)}


@lru_cache(maxsize=8)
def _pixel_grid(shape: tuple[int, int], dtype: str) -> tuple[np.ndarray, np.ndarray]:
    height, width = shape
    xs = np.arange(width, dtype=dtype)[None, :]
    ys = np.arange(height, dtype=dtype)[:, None]
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


def sampling_maps(dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates ``clip(grid + d)``, in float32 as cv2.remap takes them.

    Overwrites ``dx`` and ``dy``. The sum and the clip are done in the fields'
    own precision before the single cast to float32, as in the reference.
    """
    height, width = dx.shape
    xs, ys = _pixel_grid(dx.shape, dx.dtype.name)
    dx += xs
    dy += ys
    np.clip(dx, 0, width - 1, out=dx)
    np.clip(dy, 0, height - 1, out=dy)
    return dx.astype(np.float32, copy=False), dy.astype(np.float32, copy=False)


def warp_labels(segment: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling ``out[y, x] = segment[map_y, map_x]``.

    Coordinates are rounded half to even, as cv2.remap does; labels are never
    blended.
    """
    if segment.dtype == np.bool_:
        return warp_labels(segment.view(np.uint8), map_x, map_y).view(np.bool_)
    # cv2.remap refuses maps with a side of 32767 px or more (SHRT_MAX).
    if segment.dtype in _REMAP_DTYPES and max(segment.shape) < 32767:
        return cv2.remap(segment, map_x, map_y, interpolation=cv2.INTER_NEAREST)
    rows = np.rint(map_y).astype(np.intp)
    cols = np.rint(map_x).astype(np.intp)
    return segment[rows, cols]


def transpose(array: np.ndarray) -> np.ndarray:
    """``array.T`` as a contiguous array (OpenCV's blocked transpose where it takes the dtype)."""
    if array.dtype == np.bool_:
        return transpose(array.view(np.uint8)).view(np.bool_)
    if array.dtype in _REMAP_DTYPES or array.dtype in (np.float32, np.float64):
        return cv2.transpose(array)
    return np.ascontiguousarray(array.T)


def _warp(segment: np.ndarray, dx: np.ndarray, dy: np.ndarray, scratch: bool = True) -> tuple[np.ndarray, float, float]:
    """The warped map and the mean and largest displacement applied (after clipping at the borders).

    Overwrites ``dx`` and ``dy``; ``scratch=False`` (engine 1, kept as it was for the benchmarks) takes the
    mean on new arrays, as that engine did.
    """
    map_x, map_y = sampling_maps(dx, dy)
    deformed = warp_labels(segment, map_x, map_y)
    xs, ys = _pixel_grid(segment.shape, "float32")
    map_x -= xs
    map_y -= ys
    # numpy, not cv2.magnitude: OpenCV's result varies in the last bit with
    # the arrays' memory alignment, and the manifest must not.
    np.multiply(map_x, map_x, out=map_x)
    np.multiply(map_y, map_y, out=map_y)
    magnitude = np.add(map_x, map_y, out=map_x)
    magnitude = np.sqrt(magnitude, out=magnitude)
    largest = float(magnitude.max())
    return deformed, _exact_mean(magnitude, overwrite=scratch), largest


def _exact_mean(values: np.ndarray, overwrite: bool = False) -> float:
    # A float sum's last bits depend on how numpy splits it (memory
    # alignment, SIMD width). Values fixed to 1/256 px are integers that
    # float64 adds exactly in any order, so the manifest is byte-identical
    # however the work was split. Exact for displacements below 65536 px.
    fixed = np.multiply(values, np.float32(256.0), out=values if overwrite else None)
    fixed = np.rint(fixed, out=fixed)
    return float(fixed.sum(dtype=np.float64)) / 256.0 / values.size
