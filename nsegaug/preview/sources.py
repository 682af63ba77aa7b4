"""Picking masks and reading them, from label folders or manifests, into views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..copies import DeformParams
from ..dataset import find_image, iter_label_files
from ..io import ColourPalette, LabelFormatError, LabelImage, load_colour_palette, read_label, sha256_file
from ..manifest import iter_numbered_rows
from .colours import ColourMap
from .errors import PreviewError, PreviewUsageError, Warn
from .manifests import ManifestIndex
from .views import CopyView, MaskView, generated_copies

PICKS = ("random", "most-changed", "least-changed")
DEFAULT_MASKS = 8
DEFAULT_COPIES = 4


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
    for number, row in iter_numbered_rows(index.path, tolerate_torn_tail=tolerate):
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
