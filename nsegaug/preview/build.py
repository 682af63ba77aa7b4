"""A whole preview from a request: read the masks (a manifest's, or a folder's deformed here), then draw them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import storage
from .._resources.memory import check_fits
from ..errors import ManifestError, UsageError
from ..params import DEFAULT_PARAMS, DeformParams, check_copies
from .defaults import DEFAULT_COPIES, DEFAULT_MASKS, DEFAULT_OPACITY, DEFAULT_TILE_SIZE, MAX_TILE_SIZE
from .manifests import ManifestIndex, Warn, read_manifest
from .sheet import Sheet, preview_grid, preview_sheet
from .sources import label_views, manifest_views, pick_labels
from .tiles import sheet_memory


@dataclass(frozen=True)
class PreviewRequest:
    """What to show: a manifest's copies (``manifest``) or copies made here of ``labels`` (a file or folder).

    With a manifest, ``labels`` and ``images`` say where its sources are now
    (the data moved), and the copies are those it lists, made with its own
    parameters; ``pick`` ranks its masks by changed pixels. Without one,
    ``params``, ``seed`` and ``prob`` make the copies exactly as ``generate``
    would. ``grid`` shows every (alpha, sigma) pair on each mask instead.
    """

    manifest: Path | None = None
    labels: Path | None = None
    images: Path | None = None
    n: int | None = None
    pick: str = "random"
    seed: int = 0
    copies: int | None = None
    params: DeformParams = DEFAULT_PARAMS
    prob: float = 1.0
    pattern: str | None = None
    label_suffix: str = ""
    image_suffix: str = ""
    palette: Path | None = None
    grid: bool = False
    crop: tuple[int, int, int, int] | None = None
    tile: int = DEFAULT_TILE_SIZE
    opacity: float = DEFAULT_OPACITY

    def __post_init__(self) -> None:
        if self.manifest is None and self.labels is None:
            raise UsageError("a preview needs a manifest (the copies of a generate run) or a label map or folder")
        if self.manifest is None and self.pick != "random":
            raise UsageError(f"pick {self.pick!r} ranks the copies of a manifest: give a manifest")
        if self.manifest is not None and self.labels is not None and not storage.is_dir(self.labels):
            raise UsageError("with a manifest, the labels are the folder holding the manifest's sources")
        if not 16 <= self.tile <= MAX_TILE_SIZE:
            raise UsageError(f"tile size must be in [16, {MAX_TILE_SIZE}] px, got {self.tile}")
        if self.copies is not None:
            check_copies(self.copies)

    @property
    def masks(self) -> int:
        return self.n or (1 if self.grid else DEFAULT_MASKS)


def build_preview(request: PreviewRequest, index: ManifestIndex | None = None, warn: Warn = lambda m: None) -> Sheet:
    """The sheet (or grid) the request asks for; ``index``: the manifest, when the caller has read it already."""
    if request.manifest is not None:
        index = index or read_manifest(request.manifest, warn)
    check_memory(request, index)
    if request.manifest is None:
        views = label_views(
            request.labels,
            images=request.images,
            n=request.masks,
            copies=0 if request.grid else (request.copies or DEFAULT_COPIES),
            params=request.params,
            seed=request.seed,
            prob=request.prob,
            pattern=request.pattern,
            label_suffix=request.label_suffix,
            image_suffix=request.image_suffix,
            palette=request.palette,
            warn=warn,
        )
        params, seed = request.params, request.seed
    else:
        scores = {label: entry.score for label, entry in index.labels.items()}
        picked = pick_labels(list(index.labels), request.masks, request.pick, request.seed, scores)
        views = manifest_views(
            index,
            picked,
            copies=0 if request.grid else request.copies,
            labels_root=request.labels,
            images_root=request.images,
            palette=request.palette,
            warn=warn,
        )
        params, seed = (_run_params(index), index.params.get("seed", 0)) if request.grid else (None, 0)
    if request.grid:
        return preview_grid(views, params, seed, crop=request.crop, tile=request.tile, opacity=request.opacity)
    return preview_sheet(views, crop=request.crop, tile=request.tile, opacity=request.opacity)


def check_memory(request: PreviewRequest, index: ManifestIndex | None) -> None:
    """Refuse a sheet that cannot fit in memory (a [`UsageError`][nsegaug.errors.UsageError]), before any map is read or
    tile drawn."""
    if request.grid:
        pairs = request.params.alpha_sigma if index is None else _run_params(index).alpha_sigma
        alphas, sigmas = len({alpha for alpha, _ in pairs}), len({sigma for _, sigma in pairs})
        rows, columns = request.masks * (1 + alphas), max(2, sigmas)
    else:
        copies = request.copies or (DEFAULT_COPIES if index is None else -(-index.copies // max(1, len(index.labels))))
        rows, columns = request.masks, copies + 3  # the photo, the original, the copies, the difference
    if index is not None:
        rows = min(rows, len(index.labels) * (rows // request.masks))
    what = f"a preview of {rows} x {columns} tiles of up to {request.tile} px a side"
    check_fits(sheet_memory(rows, columns, request.tile), what)


def _run_params(index: ManifestIndex) -> DeformParams:
    if not index.params:
        raise ManifestError(f"{index.meta_path}: not found; a grid needs the run's parameters")
    try:
        return DeformParams.from_dict(index.params)
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestError(f"{index.meta_path}: bad parameters ({error})") from error
