"""The fields of step 1 and 3 of [`nsegaug.deform`][nsegaug.deform], as the float32 engine makes them fast.

The float32 engine draws the reference's random stream a block of rows at a
time straight into float32 (`draw_noise_float32`), keeps its large
arrays per thread (`_scratch`), and blurs with OpenCV's own kernel as
two row passes (`smooth_field_transposed`); `smooth_field` is the
reference code's ``cv2.GaussianBlur``. Nothing here changes a number of the
method: the tests hold every function to the plain oracle.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import cv2
import numpy as np

from .params import VARIANTS

# Pixels per block when a field is drawn in blocks (512 KiB of float64: stays in the cache).
_BLOCK_PX = 1 << 16
# Scratch arrays of the float32 engine, kept per thread for its next map (see _scratch).
_SCRATCH = threading.local()
# OpenCV's filter2D filters kernels of this many taps or more through a DFT (slower than its direct path here).
_DFT_TAPS = 130


def draw_noise_float32(
    random_state: np.random.RandomState,
    shape: tuple[int, int],
    n_pairs: int,
    variant: str = "nsegment+",
) -> tuple[np.ndarray, np.ndarray, int]:
    """[`draw_noise`][nsegaug.deform.draw_noise]'s draws, with the fields rounded to float32 as the float32 engine uses
    them.

    The same numbers in the same order (a field filled a block of rows at a
    time continues the same stream), but the float64 fields are never held
    whole: each block is rounded into the float32 field while it is still in
    the cache, which spares two large allocations and a pass over them. The
    fields are this thread's scratch arrays: the next call overwrites them.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "nsegment":
        pair_index = int(random_state.randint(0, n_pairs))
    fields = _scratch("fields", (2, *shape))
    rows = max(1, _BLOCK_PX // shape[1])
    for field in fields:
        for top in range(0, shape[0], rows):
            block = field[top : top + rows]
            block[...] = random_state.random_sample(block.shape)
    if variant == "nsegment+":
        pair_index = int(random_state.randint(0, n_pairs))
    return fields[0], fields[1], pair_index


def _scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` for this thread's ``name``, reused by its next call of the same shape.

    A fresh array of a map's size is fresh memory: its first write faults in
    every page, which cost a quarter of a call's CPU time at 1024x2048 where
    this was measured. Kept: two fields and their transposes, 16 bytes a pixel.
    """
    arrays = _SCRATCH.__dict__.setdefault("arrays", {})
    array = arrays.get(name)
    if array is None or array.shape != shape:
        arrays[name] = array = np.empty(shape, dtype=np.float32)
    return array


def smooth_field(field: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with OpenCV's kernel for ``sigma`` and reflect-101 borders."""
    return cv2.GaussianBlur(field, (0, 0), sigma)


def gaussian_taps(sigma: float) -> int:
    """The length of ``cv2.GaussianBlur``'s kernel for ``sigma`` on a float field: 8 sigma + 1, rounded, odd."""
    return int(round(sigma * 8 + 1)) | 1


@lru_cache(maxsize=64)
def _row_kernel(sigma: float, taps: int, scale: float = 1.0) -> np.ndarray:
    # scale: each tap times it, in float64, then rounded (engine 3's row pass: levels in, displacements out).
    if scale == 1.0:
        kernel = cv2.getGaussianKernel(taps, sigma, cv2.CV_32F).reshape(1, taps)
    else:
        kernel = (cv2.getGaussianKernel(taps, sigma, cv2.CV_64F) * scale).astype(np.float32).reshape(1, taps)
    kernel.flags.writeable = False
    return kernel


def smooth_field_transposed(field: np.ndarray, sigma: float, out: np.ndarray | None = None) -> np.ndarray:
    """The Gaussian blur of a float32 ``field``, transposed: ``smooth_field(field, sigma).T``, up to rounding.

    The same kernel (OpenCV's, 8 sigma + 1 taps), the same reflect-101
    borders, the same order (rows, then columns), but both passes are row
    passes of ``cv2.filter2D``, with a transpose between them: OpenCV filters
    along a row about twice as fast as ``GaussianBlur``'s separable filter
    does, and four times as fast as it filters along a column. The sums
    are taken in another order, so values differ in the last bits of float32
    (a few 1e-6 px), which moves a nearest-neighbour sample only where a
    coordinate is that close to a pixel's half-way point. The result is
    left transposed: the caller warps in that layout rather than pay for a
    second float transpose. Overwrites ``field``; the result is written to
    ``out`` when given. From ``_DFT_TAPS`` taps (sigma above 16) filter2D
    would switch to a DFT: ``GaussianBlur`` then.
    """
    taps = gaussian_taps(sigma)
    if taps >= _DFT_TAPS or field.dtype != np.float32:
        return cv2.transpose(smooth_field(field, sigma), dst=out)
    kernel = _row_kernel(float(sigma), taps)
    cv2.filter2D(field, -1, kernel, dst=field, borderType=cv2.BORDER_REFLECT_101)
    columns = cv2.transpose(field, dst=out)
    return cv2.filter2D(columns, -1, kernel, dst=columns, borderType=cv2.BORDER_REFLECT_101)
