"""Contact sheets, alpha x sigma grids and manifest statistics for ``nsegaug preview`` (Pillow only).

The sheet is built in three steps that know nothing of each other:

1. *views*: a source mask with its photo and its copies as full-resolution
   arrays (:class:`MaskView`), read from a manifest or deformed here exactly as
   ``nsegaug generate`` would (same streams, same draws);
2. *cells*: each tile as display-size RGB pixels plus a two-line caption
   (:func:`sheet_cells`, :func:`grid_cells`), pure functions of the arrays;
3. *layout and render*: cell positions from tile and caption sizes
   (:func:`layout_cells`) and the Pillow drawing (:func:`render`).

Label maps are only ever resampled with nearest neighbour, so a tile never
shows a colour that is not a class colour; only the photo tile blends the
class colours over the photo.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import __version__
from .copies import DeformParams, deformed_copies
from .dataset import find_image, iter_label_files
from .deform import (
    deform_with_noise,
    draw_noise,
)
from .io import ColourPalette, LabelFormatError, LabelImage, load_colour_palette, read_label, sha256_file
from .manifest import MANIFEST_NAME, META_NAME, ROW_KEYS, SCHEMA_VERSION, ManifestError, iter_rows, read_meta
from .palettes import CITYSCAPES, IGNORE_COLOUR
from .seeding import random_state

PICKS = ("random", "most-changed", "least-changed")
DEFAULT_TILE_SIZE = 320
DEFAULT_OPACITY = 0.5
DEFAULT_MASKS = 8
DEFAULT_COPIES = 4
# With ignore_index=None (the reference's default), 255 still gets the ignore colour: it is the ignore
# value of Cityscapes train ids, VOC and the example data, and drawing it as a VOC colour would hide it.
DEFAULT_IGNORE_COLOUR_INDEX = 255

PAD = 6  # between cells and around the sheet
CAPTION_GAP = 2  # between a tile and its caption
CAPTION_LINES = 2
MAX_NAME_CHARS = 40
SHEET_BACKGROUND = (236, 236, 236)
TEXT_COLOUR = (0, 0, 0)
DIFF_BACKGROUND = (0, 0, 0)
# A pixel changed by one copy of several is drawn dim grey, one changed by all of them white.
DIFF_DIMMEST = 96

Warn = Callable[[str], None]


class PreviewError(ValueError):
    """Input that cannot be previewed; ``str()`` is one line naming the file (and line)."""


class PreviewUsageError(PreviewError):
    """A request that cannot be met as asked (no label files, pick needs a manifest, ...)."""


# --------------------------------------------------------------------------- colours


def fixed_colours(values: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """The documented colour map for masks without a palette, for any integer values.

    Cityscapes colours for 0..18, the PASCAL VOC bit pattern beyond (as
    :func:`nsegaug.palettes.colour_table`, extended to any integer through the
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
    """Class index -> RGB: the dataset's own colours where known, :func:`fixed_colours` elsewhere."""

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


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class CopyView:
    """One deformed (or coin-skipped) copy at full resolution."""

    segment: np.ndarray
    copy_index: int  # 1..K; 0 for a grid cell, which is no copy of a generate run
    alpha: float | None  # None: not deformed (the --prob coin)
    sigma: float | None

    @property
    def deformed(self) -> bool:
        return self.alpha is not None


@dataclass(frozen=True)
class MaskView:
    """A source mask, its photo and its copies, as full-resolution arrays of one size."""

    label: str  # relative path, as in the manifest
    segment: np.ndarray
    colours: ColourMap
    image: np.ndarray | None = None  # (h, w, 3) uint8
    image_note: str | None = None  # why there is no photo ("no image", "image missing"); None: none expected
    copies: tuple[CopyView, ...] = ()
    crop: tuple[int, int, int, int] | None = None  # (x, y, w, h) in the full map, once cropped
    full_shape: tuple[int, int] | None = None  # (h, w) before the crop

    @property
    def wants_image(self) -> bool:
        return self.image is not None or self.image_note is not None


def crop_view(view: MaskView, crop: tuple[int, int, int, int]) -> MaskView:
    """The view restricted to ``crop`` (x, y, w, h), clipped to the map; PreviewError if nothing is left.

    Crops are taken after deforming the whole map, so a cropped copy shows
    exactly the pixels ``generate`` wrote there.
    """
    shape = view.segment.shape
    box = clip_crop(crop, shape)
    if box is None:
        raise PreviewError(f"{view.label}: crop {','.join(map(str, crop))} lies outside the {shape[1]}x{shape[0]} map")
    x, y, width, height = box
    window = (slice(y, y + height), slice(x, x + width))
    return replace(
        view,
        segment=view.segment[window],
        image=None if view.image is None else view.image[window],
        copies=tuple(replace(copy, segment=copy.segment[window]) for copy in view.copies),
        crop=box,
        full_shape=shape,
    )


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


def _image_cell(view: MaskView, size: tuple[int, int], opacity: float) -> Cell:
    if view.image is None:
        return Cell("image", None, (view.image_note or "no image", "labels only"), size)
    return Cell("image", blend_tile(view.image, view.segment, view.colours, size, opacity), ("image + label", ""), size)


def _original_cell(view: MaskView, size: tuple[int, int]) -> Cell:
    height, width = view.full_shape or view.segment.shape
    if view.crop is not None:
        first = "original, crop " + ",".join(map(str, view.crop))
    else:
        first = f"original, {width}x{height}"
    return Cell("original", label_tile(view.segment, view.colours, size), (first, short_name(view.label)), size)


def sheet_cells(views: Sequence[MaskView], tile: int = DEFAULT_TILE_SIZE, opacity: float = DEFAULT_OPACITY):
    """Rows of cells: [image + label], original, each copy, difference; one row per view.

    The image column is there when any view has (or should have had) a photo.
    """
    with_images = any(view.wants_image for view in views)
    rows = []
    for view in views:
        size = tile_size(*view.segment.shape, tile)
        row = [_image_cell(view, size, opacity)] if with_images else []
        row.append(_original_cell(view, size))
        for copy in view.copies:
            changed = changed_fraction(view.segment, copy.segment)
            caption = (
                f"copy {copy.copy_index}: {format_pair(copy.alpha, copy.sigma)}",
                f"changed {format_percent(changed)}",
            )
            row.append(Cell("copy", label_tile(copy.segment, view.colours, size), caption, size))
        if view.copies:
            counts = difference_counts(view.segment, [copy.segment for copy in view.copies])
            any_changed = float(np.count_nonzero(counts)) / counts.size
            title = "difference" if len(view.copies) == 1 else f"difference, {len(view.copies)} copies"
            pixels = difference_tile(counts, len(view.copies), size)
            row.append(Cell("difference", pixels, (title, f"changed {format_percent(any_changed)}"), size))
        rows.append(row)
    return rows


def grid_cells(views: Sequence[MaskView], tile: int = DEFAULT_TILE_SIZE, opacity: float = DEFAULT_OPACITY):
    """Per view: a row [image + label], original, then the alpha x sigma table of its copies.

    Table rows are the distinct alphas, columns the distinct sigmas, both
    ascending; a pair missing from the list leaves its cell empty.
    """
    rows = []
    for view in views:
        size = tile_size(*view.segment.shape, tile)
        header = [_image_cell(view, size, opacity)] if view.wants_image else []
        header.append(_original_cell(view, size))
        rows.append(header)
        by_pair = {(copy.alpha, copy.sigma): copy for copy in view.copies}
        alphas = sorted({alpha for alpha, _ in by_pair})
        sigmas = sorted({sigma for _, sigma in by_pair})
        for alpha in alphas:
            row: list[Cell | None] = []
            for sigma in sigmas:
                copy = by_pair.get((alpha, sigma))
                if copy is None:
                    row.append(None)
                    continue
                changed = changed_fraction(view.segment, copy.segment)
                caption = (format_pair(alpha, sigma), f"changed {format_percent(changed)}")
                row.append(Cell("copy", label_tile(copy.segment, view.colours, size), caption, size))
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- layout and render


@lru_cache(maxsize=1)
def caption_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font: no font files to ship or find."""
    return ImageFont.load_default()


def line_height(font) -> int:
    return font.getbbox("Agy|")[3] + 2


def caption_height(font) -> int:
    return CAPTION_LINES * line_height(font)


def text_width(font, text: str) -> int:
    return math.ceil(font.getlength(text)) if text else 0


@dataclass(frozen=True)
class Layout:
    """Where each cell goes: ``tiles[r][c]`` is the tile box (x, y, w, h), ``captions[r][c]`` its text origin."""

    width: int
    height: int
    column_widths: tuple[int, ...]
    row_heights: tuple[int, ...]
    tiles: tuple[tuple[tuple[int, int, int, int] | None, ...], ...]
    captions: tuple[tuple[tuple[int, int] | None, ...], ...]


def layout_cells(rows: Sequence[Sequence[Cell | None]], font=None) -> Layout:
    """Columns as wide as their widest tile or caption, rows as tall as their tallest tile plus a caption."""
    font = font or caption_font()
    n_columns = max((len(row) for row in rows), default=0)
    column_widths = [0] * n_columns
    tile_heights = []
    for row in rows:
        tile_heights.append(max((cell.size[0] for cell in row if cell is not None), default=0))
        for column, cell in enumerate(row):
            if cell is not None:
                widest_line = max((text_width(font, line) for line in cell.caption), default=0)
                column_widths[column] = max(column_widths[column], cell.size[1], widest_line)
    text_height = caption_height(font)
    row_heights = [height + CAPTION_GAP + text_height for height in tile_heights]
    xs = [PAD + sum(column_widths[:column]) + PAD * column for column in range(n_columns)]
    tiles, captions = [], []
    y = PAD
    for row, tile_height, row_height in zip(rows, tile_heights, row_heights, strict=True):
        tiles.append(
            tuple(None if cell is None else (xs[c], y, cell.size[1], cell.size[0]) for c, cell in enumerate(row))
        )
        captions.append(
            tuple(None if cell is None else (xs[c], y + tile_height + CAPTION_GAP) for c, cell in enumerate(row))
        )
        y += row_height + PAD
    width = PAD + sum(column_widths) + PAD * n_columns
    return Layout(width, y, tuple(column_widths), tuple(row_heights), tuple(tiles), tuple(captions))


@dataclass
class Sheet:
    """A rendered preview: the picture, where its cells are, and the cells themselves."""

    image: Image.Image
    layout: Layout
    cells: list[list[Cell | None]] = field(default_factory=list)

    def png(self) -> bytes:
        return png_bytes(self.image)


def render(rows: Sequence[Sequence[Cell | None]], font=None) -> Sheet:
    """Draw the cells: tiles pasted at their boxes, captions in black below them."""
    font = font or caption_font()
    layout = layout_cells(rows, font)
    image = Image.new("RGB", (max(layout.width, 1), max(layout.height, 1)), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(image)
    step = line_height(font)
    for row, boxes, origins in zip(rows, layout.tiles, layout.captions, strict=True):
        for cell, box, origin in zip(row, boxes, origins, strict=True):
            if cell is None:
                continue
            if cell.pixels is not None:
                image.paste(Image.fromarray(np.ascontiguousarray(cell.pixels)), box[:2])
            for number, line in enumerate(cell.caption[:CAPTION_LINES]):
                draw.text((origin[0], origin[1] + number * step), line, fill=TEXT_COLOUR, font=font)
    return Sheet(image, layout, [list(row) for row in rows])


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- deformation, as generate does it


def generated_copies(segment: np.ndarray, key: str, copies: int, params: DeformParams) -> tuple[CopyView, ...]:
    """Copies 1..``copies`` of a mask exactly as ``nsegaug generate`` writes them for sample ``key``."""
    return tuple(
        CopyView(result.segment, k, result.alpha, result.sigma) if result else CopyView(segment, k, None, None)
        for k, result in deformed_copies(segment, key, copies, params)
    )


def grid_copies(segment: np.ndarray, key: str, params: DeformParams) -> tuple[CopyView, ...]:
    """The mask under every (alpha, sigma) pair, all from one noise draw.

    One draw for all cells, so cells differ by alpha and sigma only. It is
    the draw of generate's copy 1 (coin first, then the fields), so the cell
    of the pair generate drew for copy 1 is that copy, pixel for pixel.
    """
    state = random_state(params.seed, key, 1)
    state.rand()  # generate's --prob coin; the grid deforms every cell regardless
    noise_x, noise_y, _ = draw_noise(state, segment.shape, len(params.alpha_sigma), params.variant)
    boxes = params.boxes(segment)
    suppress = params.variant == "nsegment+"
    views = []
    for alpha, sigma in params.alpha_sigma:
        result = deform_with_noise(
            segment,
            noise_x,
            noise_y,
            alpha,
            sigma,
            area_thresh=params.area_thresh if suppress else None,
            ignore_index=params.ignore_index,
            precision=params.precision,
            boxes=boxes,
        )
        views.append(CopyView(result.segment, 0, alpha, sigma))
    return tuple(views)


# --------------------------------------------------------------------------- picking


def pick_labels(
    labels: Sequence[str], n: int, pick: str = "random", seed: int = 0, scores: Mapping[str, float] | None = None
) -> list[str]:
    """``n`` labels: a seeded random sample (in path order), or the highest / lowest ``scores``.

    The random pick draws from its own ``RandomState(seed)``, never NumPy's
    global state, so the same seed picks the same masks.
    """
    if pick not in PICKS:
        raise ValueError(f"pick must be one of {PICKS}, got {pick!r}")
    ordered = sorted(labels)
    if pick == "random":
        if n >= len(ordered):
            return ordered
        chosen = np.random.RandomState(seed).permutation(len(ordered))[:n]
        return [ordered[i] for i in sorted(chosen)]
    if scores is None:
        raise ValueError(f"--pick {pick} ranks masks by changed pixels; it needs their scores")
    sign = -1 if pick == "most-changed" else 1
    return sorted(ordered, key=lambda label: (sign * scores[label], label))[:n]


# --------------------------------------------------------------------------- manifests


@dataclass
class PairStats:
    """Running sums over the deformed copies of one (alpha, sigma) pair."""

    copies: int = 0
    changed: float = 0.0
    mean_displacement: float = 0.0
    max_displacement: float = 0.0
    suppressed: float = 0.0

    def add(self, row: Mapping) -> None:
        self.copies += 1
        self.changed += row["changed_fraction"]
        self.mean_displacement += row["mean_displacement"]
        self.max_displacement = max(self.max_displacement, row["max_displacement"])
        self.suppressed += row["suppressed_fraction"]

    def summary(self) -> dict:
        """Means over the copies (percent and pixels); None where there are no copies."""
        if not self.copies:
            keys = ("mean_changed_percent", "mean_displacement_px", "max_displacement_px", "mean_suppressed_percent")
            return {"copies": 0, **dict.fromkeys(keys)}
        return {
            "copies": self.copies,
            "mean_changed_percent": 100 * self.changed / self.copies,
            "mean_displacement_px": self.mean_displacement / self.copies,
            "max_displacement_px": self.max_displacement,
            "mean_suppressed_percent": 100 * self.suppressed / self.copies,
        }


@dataclass
class LabelEntry:
    """What pass 1 keeps of one source mask: enough to rank and check it, not its rows."""

    line: int  # first line that names it
    sha256_label: str
    height: int
    width: int
    copy_lines: dict[int, int] = field(default_factory=dict)  # copy -> line
    changed: float = 0.0  # summed over copies 1..K

    @property
    def score(self) -> float:
        """Mean changed fraction of its copies: what --pick ranks by."""
        copies = [copy for copy in self.copy_lines if copy > 0]
        return self.changed / len(copies) if copies else 0.0


@dataclass
class ManifestIndex:
    """A checked manifest, summarised in one streaming pass; rows are read again only for what is drawn."""

    path: Path
    meta_path: Path
    meta: dict | None
    labels: dict[str, LabelEntry]
    pairs: dict[tuple[float, float], PairStats]
    rows: int = 0
    copies: int = 0
    not_deformed: int = 0
    torn_tail: bool = False

    @property
    def root(self) -> Path:
        """The folder that row outputs are relative to."""
        return self.path.parent

    @property
    def params(self) -> dict:
        return (self.meta or {}).get("parameters", {})


def manifest_path(path: Path) -> Path:
    """The manifest itself, given it or the output folder holding it."""
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def _numbered_rows(path: Path, tolerate_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    # iter_rows skips blank lines; counting the non-blank ones gives each row its line number for errors.
    try:
        with open(path, encoding="utf-8") as handle:
            numbers = [number for number, line in enumerate(handle, start=1) if line.strip()]
    except OSError as error:
        raise ManifestError(f"{path}: cannot read manifest ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not a text file ({error.reason})") from error
    # Not strict: a torn last line that iter_rows drops still has a number.
    return zip(numbers, iter_rows(path, tolerate_torn_tail=tolerate_torn_tail), strict=False)


def check_meta(meta: Mapping, meta_path: Path) -> None:
    """Refuse metadata that this version cannot read, with the version that wrote it."""
    if meta.get("tool") != "nsegaug":
        raise PreviewError(f"{meta_path}: written by {meta.get('tool')!r}, not nsegaug")
    if meta.get("schema") != SCHEMA_VERSION:
        raise PreviewError(
            f"{meta_path}: manifest schema {meta.get('schema')!r} (nsegaug {meta.get('version')}); "
            f"nsegaug {__version__} reads schema {SCHEMA_VERSION}"
        )


_NUMBER_KEYS = ("changed_fraction", "suppressed_fraction", "mean_displacement", "max_displacement", "height", "width")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_row(
    path: Path, number: int, row: Mapping, params: Mapping, meta_path: Path, pairs: set | None = None
) -> None:
    """One row against the schema and the run's parameters; PreviewError naming the line otherwise.

    ``pairs``: the run's (alpha, sigma) pairs as floats, when known.
    """
    where = f"{path}:{number}"
    extra = sorted(set(row) - set(ROW_KEYS))
    if extra:
        raise PreviewError(
            f"{where}: keys {', '.join(extra)} are not in manifest schema {SCHEMA_VERSION}: "
            "rows written by another nsegaug version"
        )
    copy = row["copy"]
    if not isinstance(row["label"], str) or not isinstance(copy, int) or isinstance(copy, bool) or copy < 0:
        raise PreviewError(f"{where}: not a manifest row (label must be a path, copy an integer >= 0)")
    if copy > 0 and not isinstance(row["output"], str):
        raise PreviewError(f"{where}: copy {copy} of {row['label']} names no output file")
    numbers = [key for key in _NUMBER_KEYS if not _is_number(row[key])]
    numbers += [key for key in ("alpha", "sigma") if row[key] is not None and not _is_number(row[key])]
    if numbers:
        raise PreviewError(f"{where}: not a manifest row ({', '.join(numbers)}: not a number)")
    if row["deformed"] and (row["alpha"] is None or row["sigma"] is None):
        raise PreviewError(f"{where}: deformed copy without alpha and sigma")
    if "copies" in params and copy > params["copies"]:
        raise PreviewError(
            f"{where}: copy {copy} but the run in {meta_path} made {params['copies']}: rows from another run"
        )
    if row["deformed"] and pairs is not None and (row["alpha"], row["sigma"]) not in pairs:
        raise PreviewError(
            f"{where}: alpha={row['alpha']} sigma={row['sigma']} is not in the --alpha-sigma list "
            f"of {meta_path}: rows from another run"
        )


def read_manifest(path: Path, warn: Warn = lambda message: None) -> ManifestIndex:
    """Check a manifest and its metadata in one pass, keeping per-mask scores and per-pair sums.

    Errors (:class:`PreviewError`, :class:`~nsegaug.manifest.ManifestError`)
    are one line naming the file and, for rows, the line.
    """
    path = manifest_path(path)
    meta_path = path.parent / META_NAME
    meta = None
    if meta_path.exists():
        meta = read_meta(meta_path)
        check_meta(meta, meta_path)
        if meta.get("status") != "complete":
            warn(f"warning: {meta_path}: run status is {meta.get('status')!r}, not 'complete'; showing its rows so far")
    params = (meta or {}).get("parameters", {})
    index = ManifestIndex(path, meta_path, meta, {}, {})
    for alpha, sigma in params.get("alpha_sigma", []):
        index.pairs[(float(alpha), float(sigma))] = PairStats()
    run_pairs = set(index.pairs) if "alpha_sigma" in params else None
    # A running or killed run may have left its last line half written.
    tolerate = meta is not None and meta.get("status") != "complete"
    for number, row in _numbered_rows(path, tolerate_torn_tail=tolerate):
        check_row(path, number, row, params, meta_path, run_pairs)
        label, copy = row["label"], row["copy"]
        entry = index.labels.get(label)
        if entry is None:
            entry = index.labels[label] = LabelEntry(number, row["sha256_label"], row["height"], row["width"])
        elif (entry.sha256_label, entry.height, entry.width) != (row["sha256_label"], row["height"], row["width"]):
            raise PreviewError(
                f"{path}:{number}: {label} has another checksum or size than on line {entry.line}: "
                "rows of two runs mixed"
            )
        if copy in entry.copy_lines:
            raise PreviewError(
                f"{path}:{number}: second row for {label} copy {copy} (first on line {entry.copy_lines[copy]}): "
                "rows of two runs mixed"
            )
        entry.copy_lines[copy] = number
        index.rows += 1
        if copy == 0:
            continue
        index.copies += 1
        entry.changed += row["changed_fraction"]
        if row["deformed"]:
            index.pairs.setdefault((float(row["alpha"]), float(row["sigma"])), PairStats()).add(row)
        else:
            index.not_deformed += 1
    if not index.labels:
        raise PreviewError(f"{path}: the manifest has no rows")
    return index


def manifest_stats(index: ManifestIndex) -> dict:
    """Per (alpha, sigma) pair: copies, mean changed %, mean / max displacement (px), mean suppressed %."""
    total = PairStats()
    pairs = []
    for (alpha, sigma), stats in sorted(index.pairs.items()):
        pairs.append({"alpha": alpha, "sigma": sigma, **stats.summary()})
        if stats.copies:
            total.copies += stats.copies
            total.changed += stats.changed
            total.mean_displacement += stats.mean_displacement
            total.max_displacement = max(total.max_displacement, stats.max_displacement)
            total.suppressed += stats.suppressed
    return {
        "manifest": str(index.path),
        "masks": len(index.labels),
        "copies": index.copies,
        "deformed": total.copies,
        "not_deformed": index.not_deformed,
        "pairs": pairs,
        "all": total.summary(),
    }


def format_stats(stats: Mapping) -> str:
    """The statistics as an aligned text table, one line per pair and one for all deformed copies."""
    header = ("alpha", "sigma", "copies", "changed %", "mean disp px", "max disp px", "suppressed %")

    def cells(name_alpha: str, name_sigma: str, summary: Mapping) -> list[str]:
        values = [
            summary["mean_changed_percent"],
            summary["mean_displacement_px"],
            summary["max_displacement_px"],
            summary["mean_suppressed_percent"],
        ]
        return [name_alpha, name_sigma, str(summary["copies"])] + ["-" if v is None else f"{v:.2f}" for v in values]

    table = [list(header)]
    table += [cells(f"{pair['alpha']:g}", f"{pair['sigma']:g}", pair) for pair in stats["pairs"]]
    table.append(cells("all", "", stats["all"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
    lines.append(
        f"{stats['masks']} masks, {stats['copies']} copies ({stats['deformed']} deformed, "
        f"{stats['not_deformed']} left unchanged by --prob); {stats['manifest']}"
    )
    return "\n".join(lines)


def stats_json(stats: Mapping) -> str:
    return json.dumps(stats, indent=2)


# --------------------------------------------------------------------------- loading views (file I/O)


def read_photo(path: Path, shape: tuple[int, int], warn: Warn) -> np.ndarray | None:
    """The photo as (h, w, 3) uint8 at the mask's size; None (with a warning) if unreadable."""
    try:
        with Image.open(path) as image:
            photo = image.convert("RGB")
    except (OSError, ValueError) as error:
        warn(f"warning: {path}: unreadable image ({error}); showing labels only")
        return None
    if photo.size != (shape[1], shape[0]):
        warn(f"warning: {path}: image is {photo.size[0]}x{photo.size[1]}, mask {shape[1]}x{shape[0]}; resized")
        photo = photo.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(photo)


def _colour_palette(path: Path | None) -> ColourPalette | None:
    if path is None:
        return None
    try:
        return load_colour_palette(path)
    except LabelFormatError as error:
        raise PreviewError(str(error)) from error


def label_views(
    labels: Path,
    *,
    images: Path | None = None,
    n: int = DEFAULT_MASKS,
    copies: int = DEFAULT_COPIES,
    params: DeformParams | None = None,
    pattern: str | None = None,
    label_suffix: str = "",
    image_suffix: str = "",
    palette: Path | None = None,
    warn: Warn = lambda message: None,
) -> list[MaskView]:
    """Views of masks under ``labels`` (a file or a folder) with ``copies`` copies made as generate would.

    A folder is walked as generate walks it and ``n`` masks are picked at
    random with ``params.seed``; the seeding key of a mask is its path
    relative to the folder (for a single file: its name), as in generate.
    ``copies=0`` gives the sources only (for :func:`grid_copies`). ``params``
    defaults to generate's defaults.
    """
    params = params or DeformParams()
    labels = Path(labels)
    if labels.is_file():
        root, keys = labels.parent, [labels.name]
    else:
        root = labels
        keys = list(iter_label_files(root, pattern))
        if not keys:
            raise PreviewUsageError(f"{root}: no label files{f' matching {pattern!r}' if pattern else ''}")
        keys = pick_labels(keys, n, "random", params.seed)
    colour_palette = _colour_palette(palette)
    views = []
    for key in keys:
        label_image = read_label(root / key, colour_palette)
        segment = label_image.indices
        photo, note = None, None
        if images is not None:
            image_name = find_image(images, key, label_suffix, image_suffix)
            if image_name is None:
                warn(f"warning: {root / key}: no image found in {images}; showing labels only")
                note = "no image"
            else:
                photo = read_photo(images / image_name, segment.shape, warn)
                note = None if photo is not None else "image unreadable"
        made = generated_copies(segment, key, copies, params) if copies else ()
        colours = ColourMap.for_label(label_image, params.ignore_index)
        views.append(MaskView(key, segment, colours, photo, note, made))
    return views


def manifest_views(
    index: ManifestIndex,
    labels: Sequence[str],
    *,
    copies: int | None = None,
    labels_root: Path | None = None,
    images_root: Path | None = None,
    palette: Path | None = None,
    verify: bool = True,
    warn: Warn = lambda message: None,
) -> list[MaskView]:
    """Views of ``labels`` from a manifest: the sources and the first ``copies`` copies (default all) as written.

    The label and image folders are those in ``manifest.meta.json`` unless
    given. Every file drawn must exist and, with ``verify``, match its
    recorded SHA-256; a missing image only costs the photo, with a warning.
    """
    params = index.params
    labels_root = Path(labels_root) if labels_root else (Path(params["labels"]) if params.get("labels") else None)
    if labels_root is None:
        raise PreviewError(f"{index.meta_path}: not found, so the source folder is unknown; pass --labels DIR")
    if not labels_root.is_dir():
        raise PreviewError(f"{labels_root}: label folder of {index.path} not found; pass --labels DIR")
    if images_root is None and params.get("images"):
        images_root = Path(params["images"])
    if palette is None and params.get("palette"):
        palette = Path(params["palette"])
    colour_palette = _colour_palette(palette)
    wanted = set(labels)
    rows: dict[str, list[tuple[int, dict]]] = {label: [] for label in labels}
    tolerate = index.meta is not None and index.meta.get("status") != "complete"
    for number, row in _numbered_rows(index.path, tolerate_torn_tail=tolerate):
        if row["label"] in wanted:
            rows[row["label"]].append((number, row))
    views = []
    for label in labels:
        entry = index.labels[label]
        source = labels_root / label
        _check_file(index.path, entry.line, source, entry.sha256_label if verify else None)
        label_image = _read_label_at(index.path, entry.line, source, colour_palette)
        segment = label_image.indices
        copy_rows = sorted((row["copy"], number, row) for number, row in rows[label] if row["copy"] > 0)
        views_of_copies = []
        for copy_index, number, row in copy_rows[:copies]:
            output = index.root / row["output"]
            _check_file(index.path, number, output, row["sha256_output"] if verify else None)
            copy_segment = _read_label_at(index.path, number, output, colour_palette).indices
            if copy_segment.shape != segment.shape:
                raise PreviewError(f"{index.path}:{number}: {output}: size differs from its source {source}")
            alpha, sigma = (row["alpha"], row["sigma"]) if row["deformed"] else (None, None)
            views_of_copies.append(CopyView(copy_segment, copy_index, alpha, sigma))
        photo, note = None, None
        image_name = next((row["image"] for _, row in rows[label] if row["image"]), None)
        if images_root is not None and image_name is None:
            warn(f"warning: {index.path}:{entry.line}: {label} has no paired image; showing labels only")
            note = "no image"
        elif images_root is not None:
            image_path = images_root / image_name
            if image_path.is_file():
                photo = read_photo(image_path, segment.shape, warn)
            else:
                warn(f"warning: {index.path}:{entry.line}: {image_path}: image not found; showing labels only")
            note = None if photo is not None else "image missing"
        colours = ColourMap.for_label(label_image, params.get("ignore_index"))
        views.append(MaskView(label, segment, colours, photo, note, tuple(views_of_copies)))
    return views


def _check_file(manifest: Path, number: int, path: Path, sha256: str | None) -> None:
    if not path.is_file():
        raise PreviewError(f"{manifest}:{number}: {path}: file not found")
    if sha256 is not None and sha256_file(path) != sha256:
        raise PreviewError(f"{manifest}:{number}: {path}: checksum differs from the manifest (changed since generate)")


def _read_label_at(manifest: Path, number: int, path: Path, colour_palette: ColourPalette | None) -> LabelImage:
    try:
        return read_label(path, colour_palette)
    except LabelFormatError as error:
        raise PreviewError(f"{manifest}:{number}: {error}") from error


# --------------------------------------------------------------------------- the whole picture


def preview_sheet(
    views: Sequence[MaskView],
    *,
    crop: tuple[int, int, int, int] | None = None,
    tile: int = DEFAULT_TILE_SIZE,
    opacity: float = DEFAULT_OPACITY,
) -> Sheet:
    """The contact sheet of ``views``: one row per mask."""
    if crop is not None:
        views = [crop_view(view, crop) for view in views]
    return render(sheet_cells(views, tile, opacity))


def preview_grid(
    views: Sequence[MaskView],
    params: DeformParams,
    *,
    crop: tuple[int, int, int, int] | None = None,
    tile: int = DEFAULT_TILE_SIZE,
    opacity: float = DEFAULT_OPACITY,
) -> Sheet:
    """Each view under every (alpha, sigma) pair of ``params``, as an alpha x sigma table."""
    views = [replace(view, copies=grid_copies(view.segment, view.label, params)) for view in views]
    if crop is not None:
        views = [crop_view(view, crop) for view in views]
    return render(grid_cells(views, tile, opacity))
