"""Picking masks and reading them, from label folders or manifests, into views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import storage
from .._files.label_folders import find_image, iter_label_files
from ..errors import ManifestError, UsageError
from ..io import ColourPalette, LabelImage, cached_colour_palette, open_image, read_label, size_mismatch
from ..manifest import CopyRow, NoiseRow, read_listed
from ..params import DEFAULT_PARAMS, DeformParams
from .colours import ColourMap
from .defaults import DEFAULT_COPIES, DEFAULT_MASKS, PICKS
from .manifests import ManifestIndex, Warn, _as_copy
from .views import CopyView, MaskView, generated_copies

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


# --------------------------------------------------------------------------- loading views (file I/O)


def read_photo(path: Path, shape: tuple[int, int], warn: Warn, label: Path) -> np.ndarray | None:
    """The photo as (h, w, 3) uint8 at the mask's size (of ``label``); None (with a warning) if unreadable."""
    try:
        with open_image(path) as image:
            photo = image.convert("RGB")
    except (OSError, ValueError) as error:
        warn(f"warning: {path}: unreadable image ({error}); showing labels only")
        return None
    if differs := size_mismatch(label, (shape[1], shape[0]), path, photo.size):
        warn(f"warning: {differs}; resized to the label's size for the sheet")
        photo = photo.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(photo)


def label_views(
    labels: Path,
    *,
    images: Path | None = None,
    n: int = DEFAULT_MASKS,
    copies: int = DEFAULT_COPIES,
    params: DeformParams = DEFAULT_PARAMS,
    seed: int = 0,
    prob: float = 1.0,
    pattern: str | None = None,
    label_suffix: str = "",
    image_suffix: str = "",
    palette: Path | None = None,
    warn: Warn = lambda message: None,
) -> list[MaskView]:
    """Views of masks under ``labels`` (a file or a folder) with ``copies`` copies made as generate would.

    A folder is walked as generate walks it and ``n`` masks are picked at
    random with ``seed``; the seeding key of a mask is its path relative to
    the folder (for a single file: its name), as in generate. ``copies=0``
    gives the sources only (for `grid_copies`). ``params``, ``seed`` and
    ``prob`` default to generate's defaults.
    """
    labels = storage.as_location(labels)
    if storage.is_file(labels):
        root, keys = storage.parent(labels), [storage.name(labels)]
    else:
        root = labels
        keys = list(iter_label_files(root, pattern))
        if not keys:
            raise UsageError(f"{storage.shown(root)}: no label files{f' matching {pattern!r}' if pattern else ''}")
        keys = pick_labels(keys, n, "random", seed)
    colour_palette = cached_colour_palette(palette)
    views = []
    for key in keys:
        source = storage.join(root, key)
        label_image = read_label(source, colour_palette)
        segment = label_image.indices
        photo, note = None, None
        if images is not None and segment.ndim == 3:
            note = "volume: labels only"  # a scan is not drawn under its labels (yet)
        elif images is not None:
            image_name = find_image(images, key, label_suffix, image_suffix)
            if image_name is None:
                warn(
                    f"warning: {storage.shown(source)}: no image found in {storage.shown(images)}; showing labels only"
                )
                note = "no image"
            else:
                photo = read_photo(storage.join(images, image_name), segment.shape, warn, source)
                note = None if photo is not None else "image unreadable"
        made = generated_copies(segment, key, copies, params, seed, prob, label_image.spacing) if copies else ()
        colours = ColourMap.for_label(label_image, params.ignore_index)
        views.append(MaskView(key, segment, colours, photo, note, made, spacing=label_image.spacing))
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
    given (the data moved). Every file drawn must exist and, with ``verify``,
    match its recorded SHA-256; a missing image only costs the photo, with a
    warning.
    """
    manifest = index.manifest
    labels_root = manifest.folder("labels", labels_root)
    if labels_root is None:
        raise UsageError(f"{index.meta_path}: not found, so the source folder is unknown; name the label folder")
    if not storage.is_dir(labels_root):
        raise UsageError(f"{labels_root}: label folder of {index.path} not found; name where the labels are now")
    images_root = manifest.folder("images", images_root)
    palette = manifest.folder("palette", palette)
    colour_palette = cached_colour_palette(palette)
    wanted = set(labels)
    rows: dict[str, list[tuple[int, CopyRow]]] = {label: [] for label in labels}
    for number, row in manifest.numbered_rows():
        if row.label in wanted:
            rows[row.label].append((number, _as_copy(row) if isinstance(row, NoiseRow) else row))
    source = _ManifestSource(index, labels_root, images_root, colour_palette, verify, warn)
    return [source.view(label, rows[label], copies) for label in labels]


@dataclass(frozen=True)
class _ManifestSource:
    """Where one manifest's files are, and how they are read and checked."""

    index: ManifestIndex
    labels_root: Path
    images_root: Path | None
    colour_palette: ColourPalette | None
    verify: bool
    warn: Warn

    def view(self, label: str, rows: list[tuple[int, CopyRow]], copies: int | None) -> MaskView:
        entry = self.index.labels[label]
        source = storage.join(self.labels_root, label)
        label_image = self.read(entry.line, source, entry.sha256_label)
        segment = label_image.indices
        views_of_copies = []
        for number, row in sorted((pair for pair in rows if pair[1].copy > 0), key=lambda pair: pair[1].copy)[:copies]:
            output = self.index.manifest.label_location(row, self.labels_root)
            copy_segment = self.read(number, output, row.listed_sha256).indices
            if copy_segment.shape != segment.shape:
                raise ManifestError(f"{self.index.path}:{number}: {output}: size differs from its source {source}")
            alpha, sigma = (row.alpha, row.sigma) if row.deformed else (None, None)
            title = "noisy" if self.index.manifest.kind == "noise" else None
            views_of_copies.append(CopyView(copy_segment, row.copy, alpha, sigma, title))
        image_name = next((row.image for _, row in rows if row.image), None)
        if segment.ndim == 3:  # a scan is not drawn under its labels (yet)
            photo, note = None, "volume: labels only" if self.images_root is not None else None
        else:
            photo, note = self.photo(entry.line, label, image_name, segment.shape, source)
        colours = ColourMap.for_label(label_image, self.index.params.get("ignore_index"))
        views_of_copies = tuple(views_of_copies)
        return MaskView(label, segment, colours, photo, note, views_of_copies, spacing=label_image.spacing)

    def read(self, number: int, path: Path, sha256: str) -> LabelImage:
        """A file the manifest lists, after checking it is there and (with ``verify``) unchanged."""
        data = read_listed(path, sha256 if self.verify else None, f"{self.index.path}:{number}")
        return read_label(path, self.colour_palette, data=data)

    def photo(
        self, number: int, label: str, image_name: str | None, shape, source: Path
    ) -> tuple[np.ndarray | None, str | None]:
        if self.images_root is None:
            return None, None
        if image_name is None:
            self.warn(f"warning: {self.index.path}:{number}: {label} has no paired image; showing labels only")
            return None, "no image"
        image_path = storage.join(self.images_root, image_name)
        if not storage.is_file(image_path):
            self.warn(f"warning: {self.index.path}:{number}: {image_path}: image not found; showing labels only")
            return None, "image missing"
        photo = read_photo(image_path, shape, self.warn, source)
        return photo, None if photo is not None else "image missing"
