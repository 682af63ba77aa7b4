"""Step 4 of [`nsegaug.deform`][nsegaug.deform]: sampling coordinates and the nearest-neighbour warp, as pure functions.

Shared by the whole-map engine ([`nsegaug.deform`][nsegaug.deform]), the banded one
([`nsegaug.bands`][nsegaug.bands]) and the noise models; [`nsegaug.deform`][nsegaug.deform] re-exports
the public names, where the method's steps are read.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    return _warp(segment, map_x, map_y, cv2.BORDER_CONSTANT)


def _warp(
    segment: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, border: int, out: np.ndarray | None = None
) -> np.ndarray:
    # BORDER_REPLICATE clamps the rounded coordinate to the map: what clipping it first gives (see warp_measured).
    if segment.dtype == np.bool_:
        warped = _warp(segment.view(np.uint8), map_x, map_y, border, None if out is None else out.view(np.uint8))
        return warped.view(np.bool_)
    # cv2.remap refuses maps with a side of 32767 px or more (SHRT_MAX).
    if segment.dtype in _REMAP_DTYPES and max(segment.shape) < 32767:
        return cv2.remap(segment, map_x, map_y, interpolation=cv2.INTER_NEAREST, dst=out, borderMode=border)
    rows = np.rint(map_y).astype(np.intp)
    cols = np.rint(map_x).astype(np.intp)
    if border == cv2.BORDER_REPLICATE:
        np.clip(rows, 0, segment.shape[0] - 1, out=rows)
        np.clip(cols, 0, segment.shape[1] - 1, out=cols)
    if out is None:
        return segment[rows, cols]
    out[...] = segment[rows, cols]
    return out


def transpose(array: np.ndarray) -> np.ndarray:
    """``array.T`` as a contiguous array (OpenCV's blocked transpose where it takes the dtype)."""
    if array.dtype == np.bool_:
        return transpose(array.view(np.uint8)).view(np.bool_)
    if array.dtype in _REMAP_DTYPES or array.dtype in (np.float32, np.float64):
        return cv2.transpose(array)
    return np.ascontiguousarray(array.T)


# Pixels per chunk of the warp and its statistics: the chunk's two maps (2 MiB) stay in the cache between passes.
CHUNK_PX = 1 << 18


@dataclass
class WarpTotals:
    """What [`warp_measured`][nsegaug.warp.warp_measured] adds up over chunks (and bands): exact, so any split
    gives the same figures."""

    changed: int = 0
    fixed_sum: float = 0.0  # displacements in 1/256 px: integers, which float64 adds exactly in any order
    largest: float = 0.0
    measure: bool = True  # False: the map alone (the figures stay 0)

    def figures(self, size: int) -> dict:
        """``mean_displacement``, ``max_displacement`` and ``changed_fraction`` of a map of ``size`` pixels."""
        return {
            "mean_displacement": self.fixed_sum / 256.0 / size,
            "max_displacement": self.largest,
            "changed_fraction": self.changed / size,
        }


def warp_measured(
    source: np.ndarray, fx: np.ndarray, fy: np.ndarray, top: int, out: np.ndarray, totals: WarpTotals
) -> None:
    """Warp rows ``[top, top + len(fx))`` of ``source`` into ``out`` and add their statistics to ``totals``
    (unless ``totals.measure`` is False).

    ``fx`` and ``fy`` (overwritten) displace those rows' pixels along and
    across the rows. A chunk of rows at a time: the coordinates
    ``clip(grid + d)`` in the fields' precision, one cast to float32,
    [`warp_labels`][nsegaug.warp.warp_labels], then the displacement applied after the clip, the
    largest, and its sum in 1/256 px (the manifest's figures must not depend
    on how numpy splits a float sum). The map alone needs no clip: cv2.remap
    clamps the rounded coordinate instead, which gives the same pixel (the
    clip's bounds are whole pixels, and rounding keeps order).
    """
    height, width = source.shape
    columns = _pixel_grid((1, width), fx.dtype.name)[0]
    columns32 = _pixel_grid((1, width), "float32")[0]
    step = max(1, CHUNK_PX // width)
    for first in range(0, len(fx), step):
        dx, dy = fx[first : first + step], fy[first : first + step]
        rows = np.arange(top + first, top + first + len(dx), dtype=fx.dtype)[:, None]
        dx += columns
        dy += rows
        if totals.measure:
            np.clip(dx, 0, width - 1, out=dx)
            np.clip(dy, 0, height - 1, out=dy)
        map_x, map_y = dx.astype(np.float32, copy=False), dy.astype(np.float32, copy=False)
        warped = out[first : first + len(dx)]
        result = _warp(source, map_x, map_y, cv2.BORDER_REPLICATE, warped)
        if not np.may_share_memory(result, warped):  # OpenCV wrote elsewhere (it takes only contiguous outputs)
            warped[...] = result
        if not totals.measure:
            continue
        totals.changed += int(np.count_nonzero(warped != source[top + first : top + first + len(dx)]))
        map_x -= columns32
        map_y -= rows.astype(np.float32, copy=False)
        # numpy, not cv2.magnitude: OpenCV's result varies in the last bit with
        # the arrays' memory alignment, and the manifest must not.
        np.multiply(map_x, map_x, out=map_x)
        np.multiply(map_y, map_y, out=map_y)
        magnitude = np.add(map_x, map_y, out=map_x)
        magnitude = np.sqrt(magnitude, out=magnitude)
        totals.largest = max(totals.largest, float(magnitude.max()))
        fixed = np.multiply(magnitude, np.float32(256.0), out=magnitude)
        fixed = np.rint(fixed, out=fixed)
        # OpenCV sums float32 in float64, exactly for these integers (below 2**24 each), faster than numpy.
        totals.fixed_sum += cv2.sumElems(fixed)[0]
