"""Colour maps for label maps: Cityscapes train ids, the PASCAL VOC map, and 256-entry PIL palettes."""

from __future__ import annotations

import numpy as np

CITYSCAPES_NAMES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

CITYSCAPES: np.ndarray = np.array(
    [
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    ],
    dtype=np.uint8,
)
# Module-level tables are shared by every caller; a stray in-place edit would recolour them all.
CITYSCAPES.setflags(write=False)

IGNORE_COLOUR: tuple[int, int, int] = (255, 255, 255)


def voc_colours(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: bits 0, 1, 2 of the index go to the top bits of R, G, B, then the next three, ...

    Returns an ``(n, 3)`` uint8 array; entry 0 is black, 1 is (128, 0, 0), 255 is (224, 224, 192).
    """
    if n < 0:
        raise ValueError(f"voc_colours: n must be >= 0, got {n}")
    index = np.arange(n, dtype=np.int64)
    colours = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            colours[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return colours.astype(np.uint8)


VOC: np.ndarray = voc_colours(256)
VOC.setflags(write=False)


def colour_table(n: int = 256, base: np.ndarray = CITYSCAPES, ignore_index: int | None = 255) -> np.ndarray:
    """An ``(n, 3)`` uint8 table: ``base`` for the first indices, VOC colours after, ``ignore_index`` in white.

    ``ignore_index=None`` (or one outside the table) leaves every index its own colour.
    """
    base = np.asarray(base)
    if base.ndim != 2 or base.shape[1] != 3:
        raise ValueError(f"colour_table: base must be a (k, 3) array of RGB colours, got shape {base.shape}")
    if n < 1:
        raise ValueError(f"colour_table: n must be >= 1, got {n}")
    table = voc_colours(n)
    count = min(len(base), n)
    table[:count] = base[:count]
    if ignore_index is not None and 0 <= ignore_index < n:
        table[ignore_index] = IGNORE_COLOUR
    return table


def flat_palette(table: np.ndarray) -> bytes:
    """The 768 bytes ``Image.putpalette`` takes: R, G, B of each entry, padded with black to 256 entries."""
    table = np.asarray(table)
    if table.ndim != 2 or table.shape[1] != 3 or len(table) > 256:
        raise ValueError(f"flat_palette: expected an (n <= 256, 3) colour table, got shape {table.shape}")
    if table.size and (table.min() < 0 or table.max() > 255):
        raise ValueError("flat_palette: colours must lie in 0..255; convert the table to uint8 first")
    padded = np.zeros((256, 3), dtype=np.uint8)
    padded[: len(table)] = table
    return padded.tobytes()
