"""Contact sheets, alpha x sigma grids and manifest statistics for ``nsegaug preview`` (Pillow only).

`build_preview` makes a whole preview from a `PreviewRequest`.
The sheet is built in three steps that know nothing of each other:

1. *views*: a source mask with its photo and its copies as full-resolution
   arrays (`MaskView`), read from a manifest or deformed here exactly as
   ``nsegaug generate`` would (same streams, same draws);
2. *cells*: each tile as display-size RGB pixels plus a two-line caption
   (`sheet_cells`, `grid_cells`), pure functions of the arrays;
3. *layout and render*: cell positions from tile and caption sizes
   (`layout_cells`) and the Pillow drawing (`render`).

Label maps are only ever resampled with nearest neighbour, so a tile never
shows a colour that is not a class colour; only the photo tile blends the
class colours over the photo.
"""

from __future__ import annotations

import importlib

# Public name -> the submodule that defines it. Loaded on first use, so that a submodule with no heavy
# imports (``defaults``) can be imported on its own by the command line.
_PUBLIC = {
    "PreviewRequest": "build",
    "build_preview": "build",
    "ColourMap": "colours",
    "ManifestIndex": "manifests",
    "format_stats": "manifests",
    "manifest_stats": "manifests",
    "read_manifest": "manifests",
    "stats_json": "manifests",
    "Sheet": "sheet",
    "preview_grid": "sheet",
    "preview_sheet": "sheet",
    "label_views": "sources",
    "manifest_views": "sources",
    "pick_labels": "sources",
    "CopyView": "views",
    "MaskView": "views",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
