"""Steps 2 to 4 of [`nsegaug.deform`][nsegaug.deform] band by band: a large map in bounded memory, with the same bytes.

A map above [`WHOLE_MAP_PX`][nsegaug.bands.WHOLE_MAP_PX] pixels is not given two whole fields
(16 bytes a pixel in float32, twice that with their float64 draws).
It is cut into bands of rows; each band's fields are drawn in order
([`nsegaug.draws`][nsegaug.draws]), suppressed, and blurred in a window that reaches
the blur's radius beyond the band (the halo), so every kept row sees the
rows the whole map's blur would; the band is then warped from the whole
label map (a displacement may reach any row) and its statistics summed.

Every output byte is the whole map's (tested on 4096x4096 maps and the
largest sigma):

- the draws fill each field's rows in the stream's order;
- OpenCV filters a row in SIMD blocks counted from its first element and
  rounds its last (length mod block) elements one by one, a little
  differently: windows start on a multiple of [`ALIGN`][nsegaug.bands.ALIGN] rows and,
  except the last, span a multiple of it, so each kept value is summed in
  the same kind of block as in the whole map;
- the mean displacement is summed exactly (in 1/256 px, integers that
  float64 adds exactly in any order), the counts are integers.

Memory beyond the label map and its copy: the window's fields, about
``16 * window`` bytes in float32 ([`window_bytes`][nsegaug.bands.window_bytes]), whatever the
number of bands.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from . import components
from .fields import _DFT_TAPS, _row_kernel, _scratch, gaussian_taps
from .warp import WarpTotals, transpose, warp_measured

# Maps up to this many pixels are deformed whole (their fields take at most ~90 MB in float32).
WHOLE_MAP_PX = 1 << 22
# The pixels of a band, halo not counted (a window is larger by twice the blur's radius).
BAND_PX = 1 << 21
# Bytes a pixel of a map deformed whole holds beyond the map and its copies (measured on street scenes: 22.8 in
# float32, 52 in float64 with its float64 draws; see benchmarks/bench_memory.py).
WHOLE_BYTES_PER_PX = {"float32": 24, "float64": 56}
# Runs a pixel assumed before a map is read: street scenes have 0.011 (6144x6144) to 0.023 (1024x2048, 700
# objects); a map of noise has one a pixel, and is counted once read.
TYPICAL_RUNS_PER_PX = 0.025
# Rows are drawn and suppressed this many pixels at a time (a block stays in the cache).
BLOCK_PX = 1 << 18
# Windows up to this many values (per field and buffer) reuse this thread's scratch arrays (32 MiB each).
SCRATCH_PX = 1 << 23
BORDER = cv2.BORDER_REFLECT_101
# Windows start on a multiple of this many rows: any SIMD width up to 16 floats, unrolled four times.
ALIGN = 64


@dataclass(frozen=True)
class Window:
    """Band rows ``[top, bottom)`` are kept from the window of rows ``[start, stop)``, blurred as a whole."""

    top: int
    bottom: int
    start: int
    stop: int


def is_banded(shape: tuple[int, int]) -> bool:
    """Whether a map of ``shape`` is deformed in bands (above [`WHOLE_MAP_PX`][nsegaug.bands.WHOLE_MAP_PX] pixels)."""
    return shape[0] * shape[1] > WHOLE_MAP_PX


def band_rows(shape: tuple[int, int], halo: int) -> int:
    """Rows per band: [`BAND_PX`][nsegaug.bands.BAND_PX] pixels, and at least four halos (a halo's rows are
    blurred twice)."""
    height, width = shape
    rows = max(BAND_PX // max(1, width), 4 * halo, ALIGN)
    return min(height, -(-rows // ALIGN) * ALIGN)


def windows(shape: tuple[int, int], halo: int, rows: int | None = None) -> Iterator[Window]:
    """The bands of a map of ``shape`` and their windows, top to bottom."""
    height = shape[0]
    rows = band_rows(shape, halo) if rows is None else rows
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        start = max(0, top - halo) // ALIGN * ALIGN
        stop = min(height, start + -(-(bottom + halo - start) // ALIGN) * ALIGN)
        yield Window(top, bottom, start, stop)


def deform_bytes(
    shape: tuple[int, int], itemsize: int, sigma: float, precision: str = "float32", runs: int | None = None
) -> int:
    """The most bytes a deformation of a map of ``shape`` holds beyond the map itself, at its peak.

    ``itemsize``: the map's bytes a pixel; ``sigma``: the largest it may
    draw; ``runs``: the map's ([`count_runs`][nsegaug.components.count_runs]), else
    a street scene's density is assumed. A map deformed whole holds two
    fields and their transposes (float32) or float64 draws: about
    [`WHOLE_BYTES_PER_PX`][nsegaug.bands.WHOLE_BYTES_PER_PX] a pixel. In bands: its output, the window's
    fields ([`window_bytes`][nsegaug.bands.window_bytes]), a band's fields in the map's layout, and
    the labelling ([`labelling_bytes`][nsegaug.components.labelling_bytes]).
    """
    pixels = shape[0] * shape[1]
    labelling = components.labelling_bytes(runs if runs is not None else round(TYPICAL_RUNS_PER_PX * pixels))
    if not is_banded(shape):
        return pixels * (WHOLE_BYTES_PER_PX[precision] + 3 * itemsize) + labelling
    field = 4 if precision == "float32" else 8
    band = band_rows(shape, gaussian_taps(sigma) // 2) * shape[1] * (2 * 4 + 1 + itemsize)
    return pixels * itemsize + window_bytes(shape, sigma, field) + band + labelling


def window_bytes(shape: tuple[int, int], sigma: float, itemsize: int = 4) -> int:
    """The bytes of a banded deformation's fields: two fields, each a window and its blurred copy."""
    halo = gaussian_taps(sigma) // 2
    longest = max(window.stop - window.start for window in windows(shape, halo))
    return 4 * longest * shape[1] * itemsize


def deform_in_bands(
    segment: np.ndarray,
    draw,
    alpha: float,
    sigma: float,
    boxes: np.ndarray | None,
    pad: int,
    dtype: np.dtype,
    blur: str,
    totals: WarpTotals,
    whole: bool = False,
) -> tuple[np.ndarray, float]:
    """The deformed map and the suppressed share, band by band (the warp's figures are added to ``totals``);
    ``draw`` fills the fields' rows in order ([`nsegaug.draws`][nsegaug.draws]; a draw of levels gives
    the rows blur levels, and their scale, which the row kernel applies).

    ``boxes``: the small components' (none: nothing suppressed), grown by
    ``pad``; ``dtype``: the fields'; ``blur``: ``"rows"`` or
    ``"reference"`` (see [`deform_with_noise`][nsegaug.deform.deform_with_noise]).
    ``whole``: one window, the map, warped in the blur's transposed layout.
    """
    height, width = segment.shape
    taps = gaussian_taps(sigma)
    rows_blur = blur == "rows" and dtype == np.float32 and taps < _DFT_TAPS
    # A draw of levels (engine 3) gives the rows blur its levels: their scale to displacements is in the row kernel.
    levels = rows_blur and hasattr(draw, "fill_levels")
    row_kernel = _row_kernel(float(sigma), taps, draw.scale(alpha) if levels else 1.0)
    plan = [Window(0, height, 0, height)] if whole else list(windows(segment.shape, taps // 2))
    longest = max(window.stop - window.start for window in plan)
    drawn = _buffer("drawn", (2, longest, width), dtype)  # the window's rows, before the column pass
    blurred = _buffer("blurred", (2, longest * width), dtype)  # the window blurred (transposed for rows)
    padded = _padded_boxes(boxes, pad, segment.shape)
    suppressed = 0
    deformed = np.empty_like(segment)
    previous = Window(0, 0, 0, 0)
    for window in plan:
        kept = previous.stop - window.start  # rows of this window the previous one drew
        top = window.start + kept  # the first row to draw
        for field in (0, 1):
            rows = drawn[field]
            if kept and previous.start != window.start:
                rows[:kept] = rows[window.start - previous.start : previous.stop - previous.start]
            if levels:
                draw.fill_levels(field, rows[kept : window.stop - window.start])
            else:
                draw.fill(field, rows[kept : window.stop - window.start], alpha)
        new = drawn[:, kept : window.stop - window.start]
        suppressed += _suppress(new, padded, top, totals.measure)
        if rows_blur and new.shape[1]:  # the row pass, once per row: kept rows had theirs in the previous window
            for rows in new:
                cv2.filter2D(rows, -1, row_kernel, dst=rows, borderType=BORDER)
        size = window.stop - window.start
        fields = [_blur_window(drawn[field][:size], blurred[field], sigma, taps, rows_blur) for field in (0, 1)]
        if whole and rows_blur:  # warped in the blur's layout: row j, column i is pixel (i, j) of the map
            segment_t = transpose(segment)
            deformed_t = np.empty_like(segment_t)
            warp_measured(segment_t, fields[1], fields[0], 0, deformed_t, totals)
            deformed = transpose(deformed_t)
            break
        lo, hi = window.top - window.start, window.bottom - window.start
        if rows_blur:  # back to the map's layout: warped from the map itself, no transposed copy of it is held
            band = [cv2.transpose(fields[field][:, lo:hi]) for field in (0, 1)]
        else:
            band = [fields[field][lo:hi] for field in (0, 1)]
        warp_measured(segment, band[0], band[1], window.top, deformed[window.top : window.bottom], totals)
        previous = window
    return deformed, suppressed / segment.size


def _buffer(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """This thread's scratch array (float32, up to [`SCRATCH_PX`][nsegaug.bands.SCRATCH_PX] values: reused,
    its pages already in), or a new one (a large window's memory is given back when the map is done)."""
    if dtype == np.float32 and math.prod(shape) <= SCRATCH_PX:
        return _scratch(f"bands.{name}", shape)
    return np.empty(shape, dtype)


def _blur_window(rows: np.ndarray, out: np.ndarray, sigma: float, taps: int, rows_blur: bool) -> np.ndarray:
    """The window blurred: with the row pass already done, transposed and filtered along its new rows; else
    OpenCV's GaussianBlur (the reference's), in the map's layout."""
    size, width = rows.shape
    if not rows_blur:
        return cv2.GaussianBlur(rows, (0, 0), sigma, dst=out[: size * width].reshape(size, width))
    columns = cv2.transpose(rows, dst=out[: size * width].reshape(width, size))
    return cv2.filter2D(columns, -1, _row_kernel(float(sigma), taps), dst=columns, borderType=BORDER)


def _padded_boxes(boxes: np.ndarray | None, pad: int, shape: tuple[int, int]) -> np.ndarray | None:
    """Boxes grown by ``pad`` and clipped, as ``(y1, x1, y2, x2)`` with exclusive ends, by first row."""
    if boxes is None or not len(boxes):
        return None
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    tops_lefts = np.maximum(boxes[:, :2] - pad, 0)
    bottoms_rights = np.minimum(boxes[:, 2:] + pad + 1, shape)
    grown = np.concatenate([tops_lefts, bottoms_rights], axis=1)
    return grown[np.argsort(grown[:, 0], kind="stable")]


def _suppress(rows: np.ndarray, padded: np.ndarray | None, top: int, count: bool) -> int:
    """Zero both fields' ``rows`` (map rows ``top`` on) inside the grown boxes; the pixels zeroed if ``count``
    (the union of the boxes, each pixel once), else 0."""
    if padded is None or not rows.shape[1]:
        return 0
    bottom = top + rows.shape[1]
    reaching = padded[: np.searchsorted(padded[:, 0], bottom, side="left")]
    reaching = reaching[reaching[:, 2] > top]
    if not len(reaching):
        return 0
    local = reaching - (top, 0, top, 0)
    np.maximum(local[:, 0], 0, out=local[:, 0])
    boxes = local.tolist()
    for y1, x1, y2, x2 in boxes:
        rows[:, y1:y2, x1:x2] = 0
    if not count:
        return 0
    mask = np.zeros(rows.shape[1:], dtype=bool)
    for y1, x1, y2, x2 in boxes:
        mask[y1:y2, x1:x2] = True
    return int(np.count_nonzero(mask))
