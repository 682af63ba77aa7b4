"""Cells of the contact sheet and the alpha x sigma grid, their layout, and the Pillow drawing."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import UsageError, shown_path
from ..params import DeformParams
from .defaults import DEFAULT_OPACITY, DEFAULT_TILE_SIZE
from .tiles import (
    Cell,
    blend_tile,
    changed_fraction,
    difference_counts,
    difference_tile,
    format_pair,
    format_percent,
    label_tile,
    short_name,
    tile_size,
)
from .views import MaskView, crop_view, grid_copies, volume_planes

PAD = 6  # between cells and around the sheet
CAPTION_GAP = 2  # between a tile and its caption
CAPTION_LINES = 2
SHEET_BACKGROUND = (236, 236, 236)
TEXT_COLOUR = (0, 0, 0)


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
            title = copy.title or f"copy {copy.copy_index}: {format_pair(copy.alpha, copy.sigma)}"
            caption = (title, f"changed {format_percent(changed)}")
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
    masks: int = 0  # how many masks it shows

    def png(self) -> bytes:
        return png_bytes(self.image)

    def encoded(self, form: str = "PNG") -> bytes:
        """The sheet as a file of Pillow format ``form`` (see `sheet_format`)."""
        if form == "PNG":
            return self.png()
        buffer = io.BytesIO()
        self.image.save(buffer, form, **({"quality": 95} if form == "JPEG" else {}))
        return buffer.getvalue()


# Suffix -> the Pillow format a sheet is written in: the file holds what its name says.
SHEET_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}


def sheet_format(path: os.PathLike | str) -> str:
    """The Pillow format the suffix of ``path`` asks for; a [`UsageError`][nsegaug.errors.UsageError] for one a sheet is
    not written in."""
    suffix = Path(path).suffix.lower()
    if suffix not in SHEET_FORMATS:
        raise UsageError(
            f"{shown_path(path)}: a preview is written as {', '.join(SHEET_FORMATS)}; "
            f"{suffix or 'a name without a suffix'} is none of them"
        )
    return SHEET_FORMATS[suffix]


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


# --------------------------------------------------------------------------- the whole picture


def preview_sheet(
    views: Sequence[MaskView],
    *,
    crop: tuple[int, int, int, int] | None = None,
    tile: int = DEFAULT_TILE_SIZE,
    opacity: float = DEFAULT_OPACITY,
) -> Sheet:
    """The contact sheet of ``views``: one row per mask (three per volume: see
    `volume_planes`)."""
    masks = len(views)
    views = [planes for view in views for planes in volume_planes(view)]
    if crop is not None:
        views = [crop_view(view, crop) for view in views]
    return replace(render(sheet_cells(views, tile, opacity)), masks=masks)


def preview_grid(
    views: Sequence[MaskView],
    params: DeformParams,
    seed: int = 0,
    *,
    crop: tuple[int, int, int, int] | None = None,
    tile: int = DEFAULT_TILE_SIZE,
    opacity: float = DEFAULT_OPACITY,
) -> Sheet:
    """Each view under every (alpha, sigma) pair of ``params``, as an alpha x sigma table (the draw of copy 1 for
    ``seed``)."""
    views = [replace(view, copies=grid_copies(view.segment, view.label, params, seed, view.spacing)) for view in views]
    masks = len(views)
    views = [planes for view in views for planes in volume_planes(view)]
    if crop is not None:
        views = [crop_view(view, crop) for view in views]
    return replace(render(grid_cells(views, tile, opacity)), masks=masks)
