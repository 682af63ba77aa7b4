"""Crop geometry, label/photo/difference resizing, and tiles with their captions as pixels and text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .colours import ColourMap

MAX_NAME_CHARS = 40
DIFF_BACKGROUND = (0, 0, 0)
# A pixel changed by one copy of several is drawn dim grey, one changed by all of them white.
DIFF_DIMMEST = 96


# --------------------------------------------------------------------------- geometry


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` -> (x, y, w, h), with x, y >= 0 and w, h >= 1; ValueError otherwise."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        x, y, width, height = (int(part) for part in parts)
    except ValueError:
        raise ValueError(f"{text!r} is not X,Y,W,H (four integers, e.g. 100,50,128,128)") from None
    if x < 0 or y < 0 or width < 1 or height < 1:
        raise ValueError(f"{text!r}: X and Y must be >= 0, W and H >= 1")
    return x, y, width, height


def clip_crop(crop: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The part of ``crop`` (x, y, w, h) inside a map of ``shape`` (h, w), or None if there is none."""
    x, y, width, height = crop
    x1, y1 = min(x + width, shape[1]), min(y + height, shape[0])
    if x >= x1 or y >= y1:
        return None
    return x, y, x1 - x, y1 - y


def tile_size(height: int, width: int, square: int) -> tuple[int, int]:
    """Display size (h, w) of a map in a ``square`` x ``square`` tile.

    Larger maps are shrunk to fit; smaller ones (crops, above all) are
    enlarged by a whole factor, so every label pixel stays a square block.
    """
    scale = min(square / width, square / height)
    if scale < 1:
        return max(1, round(height * scale)), max(1, round(width * scale))
    factor = max(1, math.floor(scale))
    return height * factor, width * factor


# Bytes per tile pixel: the tile's RGB and the sheet's RGB under it, kept until the sheet is written.
HELD_BYTES_PER_PIXEL = 6
# Bytes per pixel of the one tile being drawn: float32 colours and photo (12 + 12), sampling indices (8), the
# difference map's counts and shades (8 + 8).
DRAWING_BYTES_PER_PIXEL = 48


def sheet_memory(rows: int, columns: int, square: int) -> int:
    """An upper bound of the bytes a sheet of ``rows`` x ``columns`` tiles of at most ``square`` px a side takes
    (every tile fits in its square: see `tile_size`), known before any map is read."""
    pixels = square * square
    return rows * columns * pixels * HELD_BYTES_PER_PIXEL + pixels * DRAWING_BYTES_PER_PIXEL


def _nearest_index(size_in: int, size_out: int) -> np.ndarray:
    # The source pixel under the centre of each output pixel.
    return np.minimum(((np.arange(size_out) + 0.5) * size_in / size_out).astype(np.intp), size_in - 1)


def resize_labels(indices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a label map (or any array) to ``size`` (h, w)."""
    if indices.shape[:2] == size:
        return indices
    rows = _nearest_index(indices.shape[0], size[0])
    cols = _nearest_index(indices.shape[1], size[1])
    return indices[rows][:, cols]


def resize_max(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resampling that keeps maxima: each output pixel is the largest value of its source block.

    For the difference map: shrinking it by nearest neighbour would drop
    most one-pixel-wide changes along boundaries, which are the point.
    """
    for axis, size_out in enumerate(size):
        size_in = values.shape[axis]
        if size_out < size_in:
            starts = (np.arange(size_out) * size_in) // size_out
            values = np.maximum.reduceat(values, starts, axis=axis)
        elif size_out > size_in:
            values = np.take(values, _nearest_index(size_in, size_out), axis=axis)
    return values


def resize_photo(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo at ``size`` (h, w): area average when shrinking, pixel blocks when enlarging.

    Blocks, not interpolation, when enlarging, so the photo's pixels line up
    with the enlarged label pixels drawn over them.
    """
    if photo.shape[:2] == size:
        return photo
    shrink = size[0] < photo.shape[0]
    resample = Image.Resampling.BOX if shrink else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(photo).resize((size[1], size[0]), resample))


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One tile of the sheet: display pixels (None: an empty box) and its caption lines."""

    kind: str  # "image", "original", "copy", "difference"
    pixels: np.ndarray | None  # (h, w, 3) uint8
    caption: tuple[str, ...]
    size: tuple[int, int] = (0, 0)  # (h, w) of the tile box, also for an empty one


def changed_fraction(original: np.ndarray, copy: np.ndarray) -> float:
    return float(np.count_nonzero(original != copy)) / original.size


def format_percent(fraction: float) -> str:
    """``2.31%``; a change too small for two decimals is ``<0.01%``, not a misleading ``0.00%``."""
    if 0 < fraction < 0.0001:
        return "<0.01%"
    return f"{fraction:.2%}"


def format_pair(alpha: float | None, sigma: float | None) -> str:
    return "not deformed" if alpha is None else f"alpha={alpha:g} sigma={sigma:g}"


def short_name(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """The end of a long path, which is the part that tells files apart."""
    return name if len(name) <= limit else "..." + name[-(limit - 3) :]


def label_tile(segment: np.ndarray, colours: ColourMap, size: tuple[int, int]) -> np.ndarray:
    """Class colours of a label map at display size; resampled before painting, so nearest neighbour only."""
    return colours.paint(resize_labels(segment, size))


def blend_tile(
    photo: np.ndarray, segment: np.ndarray, colours: ColourMap, size: tuple[int, int], opacity: float
) -> np.ndarray:
    """The class colours laid over the photo with ``opacity``."""
    painted = label_tile(segment, colours, size).astype(np.float32)
    under = resize_photo(photo, size).astype(np.float32)
    return np.rint(under * (1 - opacity) + painted * opacity).astype(np.uint8)


def difference_counts(original: np.ndarray, copies: Sequence[np.ndarray]) -> np.ndarray:
    """How many of ``copies`` changed each pixel's class."""
    counts = np.zeros(original.shape, dtype=np.uint16)
    for copy in copies:
        counts += copy != original
    return counts


def difference_tile(counts: np.ndarray, n_copies: int, size: tuple[int, int]) -> np.ndarray:
    """Black where no copy changed the class; grey (one copy) to white (all copies) elsewhere."""
    counts = resize_max(counts, size).astype(np.int64)
    shade = np.where(counts > 0, DIFF_DIMMEST + (255 - DIFF_DIMMEST) * counts // max(n_copies, 1), 0)
    tile = np.empty(size + (3,), dtype=np.uint8)
    tile[...] = np.asarray(DIFF_BACKGROUND, np.uint8)
    changed = counts > 0
    tile[changed] = shade[changed, None].astype(np.uint8)
    return tile
