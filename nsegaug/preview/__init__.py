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

from ..copies import DeformParams
from .colours import DEFAULT_IGNORE_COLOUR_INDEX, ColourMap, fixed_colours
from .errors import PreviewError, PreviewUsageError, Warn
from .manifests import LabelEntry, ManifestIndex, PairStats, check_meta, check_row, manifest_path, read_manifest
from .sheet import (
    CAPTION_GAP,
    CAPTION_LINES,
    DEFAULT_OPACITY,
    DEFAULT_TILE_SIZE,
    PAD,
    SHEET_BACKGROUND,
    TEXT_COLOUR,
    Layout,
    Sheet,
    caption_font,
    caption_height,
    grid_cells,
    layout_cells,
    line_height,
    png_bytes,
    preview_grid,
    preview_sheet,
    render,
    sheet_cells,
    text_width,
)
from .sources import DEFAULT_COPIES, DEFAULT_MASKS, PICKS, label_views, manifest_views, pick_labels, read_photo
from .stats import format_stats, manifest_stats, stats_json
from .tiles import (
    DIFF_BACKGROUND,
    DIFF_DIMMEST,
    MAX_NAME_CHARS,
    Cell,
    blend_tile,
    changed_fraction,
    clip_crop,
    difference_counts,
    difference_tile,
    format_pair,
    format_percent,
    label_tile,
    parse_crop,
    resize_labels,
    resize_max,
    resize_photo,
    short_name,
    tile_size,
)
from .views import CopyView, MaskView, crop_view, generated_copies, grid_copies

__all__ = [
    "CAPTION_GAP",
    "CAPTION_LINES",
    "Cell",
    "ColourMap",
    "CopyView",
    "DEFAULT_COPIES",
    "DEFAULT_IGNORE_COLOUR_INDEX",
    "DEFAULT_MASKS",
    "DEFAULT_OPACITY",
    "DEFAULT_TILE_SIZE",
    "DIFF_BACKGROUND",
    "DIFF_DIMMEST",
    "DeformParams",
    "LabelEntry",
    "Layout",
    "MAX_NAME_CHARS",
    "ManifestIndex",
    "MaskView",
    "PAD",
    "PICKS",
    "PairStats",
    "PreviewError",
    "PreviewUsageError",
    "SHEET_BACKGROUND",
    "Sheet",
    "TEXT_COLOUR",
    "Warn",
    "blend_tile",
    "caption_font",
    "caption_height",
    "changed_fraction",
    "check_meta",
    "check_row",
    "clip_crop",
    "crop_view",
    "difference_counts",
    "difference_tile",
    "fixed_colours",
    "format_pair",
    "format_percent",
    "format_stats",
    "generated_copies",
    "grid_cells",
    "grid_copies",
    "label_tile",
    "label_views",
    "layout_cells",
    "line_height",
    "manifest_path",
    "manifest_stats",
    "manifest_views",
    "parse_crop",
    "pick_labels",
    "png_bytes",
    "preview_grid",
    "preview_sheet",
    "read_manifest",
    "read_photo",
    "render",
    "resize_labels",
    "resize_max",
    "resize_photo",
    "sheet_cells",
    "short_name",
    "stats_json",
    "text_width",
    "tile_size",
]
