"""Two annotations of the same maps, paired by relative path and stem, read and checked.

A map of the labels folder pairs with the map of the reference folder in the
same relative folder with the same stem (after the suffixes given are
removed), whatever their extensions: ``A/a/x.png`` with ``B/a/x.tif``, as
``generate`` pairs labels with images. Every refusal is a
[`LabelFormatError`][nsegaug.errors.LabelFormatError] naming one file: a map without a
partner, two maps of different sizes, two maps that disagree on almost every
pixel (not two annotations of the same thing: another encoding of the
classes, another scene).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from .. import storage
from .._files.label_folders import iter_label_files, strip_suffix
from ..errors import LabelFormatError
from ..io import ColourPalette, read_label

# Two annotations of one scene that differ on more than this share of their pixels are not of the same thing.
MAX_CHANGED_FRACTION = 0.5


@dataclass(frozen=True)
class MapPair:
    """A map of the labels folder and its reference, as relative POSIX paths; ``key`` seeds the copies."""

    label: str
    reference: str

    @property
    def key(self) -> str:
        return self.reference


def _stem_key(path: str, suffix: str) -> tuple[str, str]:
    relative = PurePosixPath(path)
    return str(relative.parent), strip_suffix(relative.stem, suffix)


def pair_maps(
    labels: storage.Location,
    reference: storage.Location,
    pattern: str | None = None,
    label_suffix: str = "",
    reference_suffix: str = "",
) -> list[MapPair]:
    """Every map of ``labels`` with its reference, in sorted order; a map of either folder without its partner,
    or two of one folder with one stem, is refused."""
    found: dict[str, dict[tuple[str, str], str]] = {}
    for name, root, suffix in (("labels", labels, label_suffix), ("reference", reference, reference_suffix)):
        found[name] = {}
        for path in iter_label_files(root, pattern):
            key = _stem_key(path, suffix)
            if key in found[name]:
                other = found[name][key]
                raise LabelFormatError(storage.join(root, path), f"has the same stem as {other}: which one is meant?")
            found[name][key] = path
    lonely = sorted(set(found["labels"]) ^ set(found["reference"]))
    if lonely:
        first = lonely[0]
        side, root, other = (
            ("labels", labels, reference) if first in found["labels"] else ("reference", reference, labels)
        )
        more = f" (and {len(lonely) - 1} more map(s) without a partner)" if len(lonely) > 1 else ""
        where = storage.join(other, first[0]) if first[0] != "." else other
        raise LabelFormatError(
            storage.join(root, found[side][first]), f"no map with the stem {first[1]!r} in {storage.shown(where)}{more}"
        )
    if not found["labels"]:
        raise LabelFormatError(labels, "no label maps found")
    return [MapPair(found["labels"][key], found["reference"][key]) for key in sorted(found["labels"])]


def read_pair(
    pair: MapPair,
    labels: storage.Location,
    reference: storage.Location,
    palette: ColourPalette | None = None,
    ignore_index: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The two maps' class indices, checked to be two annotations of the same scene."""
    label_path, reference_path = storage.join(labels, pair.label), storage.join(reference, pair.reference)
    a = read_label(label_path, palette).indices
    b = read_label(reference_path, palette).indices
    if a.shape != b.shape:
        raise LabelFormatError(
            label_path, f"is {_size(a)} but its reference {storage.shown(reference_path)} is {_size(b)}"
        )
    valid = np.ones(a.shape, bool) if ignore_index is None else (a != ignore_index) & (b != ignore_index)
    compared = int(np.count_nonzero(valid))
    changed = int(np.count_nonzero((a != b) & valid))
    if compared and changed / compared > MAX_CHANGED_FRACTION:
        raise LabelFormatError(
            label_path,
            f"differs from its reference {storage.shown(reference_path)} on {changed / compared:.0%} of its pixels: "
            "not two annotations of the same scene (another class encoding, another image?)",
        )
    return a, b


def _size(segment: np.ndarray) -> str:
    return f"{segment.shape[1]}x{segment.shape[0]} px"


def read_pairs(
    pairs: list[MapPair],
    labels: storage.Location,
    reference: storage.Location,
    palette: ColourPalette | None = None,
    ignore_index: int | None = None,
) -> Iterator[tuple[MapPair, np.ndarray, np.ndarray]]:
    """Each pair with its two maps, read one pair at a time (a large dataset is never held whole)."""
    for pair in pairs:
        yield (pair, *read_pair(pair, labels, reference, palette, ignore_index))
