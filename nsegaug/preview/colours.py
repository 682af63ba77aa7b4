"""Class colours of label maps: the fixed colour map and the dataset's own palettes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import LabelImage
from ..palettes import CITYSCAPES, IGNORE_COLOUR

# With ignore_index=None (the reference's default), 255 still gets the ignore colour: it is the ignore
# value of Cityscapes train ids, VOC and the example data, and drawing it as a VOC colour would hide it.
DEFAULT_IGNORE_COLOUR_INDEX = 255


# --------------------------------------------------------------------------- colours


def fixed_colours(values: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """The documented colour map for masks without a palette, for any integer values.

    Cityscapes colours for 0..18, the PASCAL VOC bit pattern beyond (as
    [`nsegaug.palettes.colour_table`][nsegaug.palettes.colour_table], extended to any integer through the
    index's low 24 bits), and ``ignore_index`` (255 when None) in white.
    """
    values = np.asarray(values, dtype=np.int64)
    bits = values & 0xFFFFFF
    colours = np.zeros(values.shape + (3,), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            colours[..., channel] |= ((bits >> (3 * bit + channel)) & 1) << (7 - bit)
    colours = colours.astype(np.uint8)
    cityscapes = (values >= 0) & (values < len(CITYSCAPES))
    colours[cityscapes] = CITYSCAPES[values[cityscapes]]
    ignore = DEFAULT_IGNORE_COLOUR_INDEX if ignore_index is None else ignore_index
    colours[values == ignore] = IGNORE_COLOUR
    return colours


@dataclass(frozen=True)
class ColourMap:
    """Class index -> RGB: the dataset's own colours where known, `fixed_colours` elsewhere."""

    known_values: np.ndarray  # (k,) int64, sorted
    known_colours: np.ndarray  # (k, 3) uint8
    ignore_index: int | None = None
    source: str = "fixed"  # "palette" (palette PNG), "colour table" (--palette) or "fixed"

    @classmethod
    def fixed(cls, ignore_index: int | None = None) -> ColourMap:
        return cls(np.zeros(0, np.int64), np.zeros((0, 3), np.uint8), ignore_index, "fixed")

    @classmethod
    def for_label(cls, label: LabelImage, ignore_index: int | None = None) -> ColourMap:
        """The palette of a palette PNG, the colour table of an RGB-coded map, else the fixed map."""
        if label.colour_palette is not None:
            order = np.argsort(label.colour_palette.indices)
            return cls(
                label.colour_palette.indices[order].astype(np.int64),
                label.colour_palette.colours[order],
                ignore_index,
                "colour table",
            )
        if label.mode == "P" and label.palette:
            channels = len(label.info.get("palette_mode", "RGB"))
            entries = np.frombuffer(label.palette, dtype=np.uint8)
            entries = entries[: len(entries) // channels * channels].reshape(-1, channels)[:, :3]
            return cls(np.arange(len(entries), dtype=np.int64), entries.copy(), ignore_index, "palette")
        return cls.fixed(ignore_index)

    def colours_of(self, values: np.ndarray) -> np.ndarray:
        """``(len(values), 3)`` uint8 colours of the given class values."""
        values = np.asarray(values, dtype=np.int64)
        colours = fixed_colours(values, self.ignore_index)
        if len(self.known_values):
            position = np.clip(np.searchsorted(self.known_values, values), 0, len(self.known_values) - 1)
            known = self.known_values[position] == values
            colours[known] = self.known_colours[position[known]]
        return colours

    def paint(self, indices: np.ndarray) -> np.ndarray:
        """The ``(h, w, 3)`` uint8 colour image of a label map."""
        if indices.dtype in (np.uint8, np.bool_):
            return self.colours_of(np.arange(256))[indices.view(np.uint8)]
        values, inverse = np.unique(indices, return_inverse=True)
        return self.colours_of(values)[inverse.reshape(indices.shape)]
