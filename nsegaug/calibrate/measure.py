"""How one annotation differs from another where NSegment+ acts: at class boundaries, by object size and class.

For two label maps ``a`` and ``b`` of the same scene, [`compare`][nsegaug.calibrate.measure.compare] counts

- the **changed pixels**: pixels where the two give different classes (pixels
  that either gives the ignore index are left out);
- the **boundary displacement** of every boundary pixel of either map: the
  Euclidean distance, in pixels, from a boundary pixel of class ``c`` in one
  map to the nearest boundary pixel of class ``c`` in the other, both
  directions pooled (a boundary pixel is a pixel of ``c`` with a 4-neighbour of
  another value; the edge of the map is not a boundary). A class the other map
  lacks, and any distance of ``CAP_PX`` or more, counts in the last bin.

Each boundary pixel is counted in the size bin of its own object (its
8-connected component of one class, as NSegment+'s suppression finds them), so
small objects are seen apart from large ones, and by class. The counts are a
[`Disagreement`][nsegaug.calibrate.measure.Disagreement], which adds up over maps. A boundary pixel that is a
boundary pixel of its class in the other map too is at distance 0; the others
are looked up in a k-d tree of the other map's boundary pixels (exact
Euclidean distances, and only where something moved: a small disagreement
costs little). A map compared many times (the source of many copies) has its
boundaries found once ([`class_edges`][nsegaug.calibrate.measure.class_edges]).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# Displacements are binned in quarter pixels up to CAP_PX; the last bin holds the rest (and missing classes).
BIN_PX = 0.25
CAP_PX = 64.0
N_BINS = int(CAP_PX / BIN_PX) + 1
# Object areas in px that split the size bins: (0, 16], (16, 64], (64, 256], (256, 1000], (1000, 4000], > 4000.
# 1000 is the paper's area threshold, so the bins it protects are whole bins.
SIZE_EDGES = (16, 64, 256, 1000, 4000)
SIZE_LABELS = ("<=16 px", "17-64 px", "65-256 px", "257-1000 px", "1001-4000 px", ">4000 px")


def _zeros() -> np.ndarray:
    return np.zeros((len(SIZE_LABELS), N_BINS), dtype=np.int64)


@dataclass
class Disagreement:
    """Counts of boundary pixels by class, size bin and displacement bin, and of changed pixels; adds up.

    ``counts[c]`` is an array (size bins, displacement bins); ``sums[c]`` the
    exact sum of the displacements in each size bin (capped at ``CAP_PX``).
    """

    counts: dict[int, np.ndarray] = field(default_factory=dict)
    sums: dict[int, np.ndarray] = field(default_factory=dict)
    changed: int = 0
    compared: int = 0
    maps: int = 0

    def add(self, other: Disagreement) -> Disagreement:
        """Add ``other``'s counts to these (in place) and return self."""
        for value, counts in other.counts.items():
            self.counts[value] = self.counts.get(value, _zeros()) + counts
            self.sums[value] = self.sums.get(value, np.zeros(len(SIZE_LABELS))) + other.sums[value]
        self.changed += other.changed
        self.compared += other.compared
        self.maps += other.maps
        return self

    def pooled(self) -> np.ndarray:
        """The counts of all classes together: (size bins, displacement bins)."""
        return sum(self.counts.values(), _zeros())

    @property
    def boundary_pixels(self) -> int:
        """Boundary pixels counted, both maps' together."""
        return int(sum(int(counts.sum()) for counts in self.counts.values()))

    @property
    def changed_fraction(self) -> float:
        """Share of the compared pixels whose class differs."""
        return self.changed / self.compared if self.compared else 0.0

    @property
    def changed_per_boundary(self) -> float:
        """Changed pixels per boundary pixel of one map, in px: about the mean width of the band that changed."""
        per_map = self.boundary_pixels / 2
        return self.changed / per_map if per_map else 0.0

    @property
    def overall_mean(self) -> float:
        """Mean displacement of all boundary pixels, in px (NaN without any)."""
        total = self.boundary_pixels
        return float(sum(sums.sum() for sums in self.sums.values()) / total) if total else float("nan")

    def mean_displacement(self, value: int | None = None) -> np.ndarray:
        """Mean displacement per size bin in px (NaN where no pixel), of one class or of all."""
        counts = self.pooled() if value is None else self.counts.get(value, _zeros())
        sums = sum(self.sums.values(), np.zeros(len(SIZE_LABELS))) if value is None else self.sums[value]
        totals = counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, sums / np.maximum(totals, 1), np.nan)

    def to_dict(self) -> dict:
        """JSON-ready: per class, the counts of each size bin as lists (trailing zeros dropped)."""
        return {
            "changed": self.changed,
            "compared": self.compared,
            "maps": self.maps,
            "classes": {
                str(value): {
                    "counts": [_trimmed(row) for row in self.counts[value].tolist()],
                    "sums": [round(total, 6) for total in self.sums[value].tolist()],
                }
                for value in sorted(self.counts)
            },
        }

    @classmethod
    def from_dict(cls, values: dict) -> Disagreement:
        counts, sums = {}, {}
        for value, entry in values["classes"].items():
            array = _zeros()
            for row, items in enumerate(entry["counts"]):
                array[row, : len(items)] = items
            counts[int(value)] = array
            sums[int(value)] = np.asarray(entry["sums"], dtype=float)
        return cls(counts, sums, values["changed"], values["compared"], values["maps"])


def _trimmed(row: list[int]) -> list[int]:
    while row and row[-1] == 0:
        row = row[:-1]
    return row


def boundary(mask: np.ndarray, unknown: np.ndarray | None = None) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it and outside ``unknown`` (the ignore index's pixels: no
    class, so no edge between a class and them); the edge of the array is not a boundary."""
    within = mask if unknown is None else mask | unknown
    inner = within.copy()
    inner[1:] &= within[:-1]
    inner[:-1] &= within[1:]
    inner[:, 1:] &= within[:, :-1]
    inner[:, :-1] &= within[:, 1:]
    return mask & ~inner


def size_bins(mask: np.ndarray) -> np.ndarray:
    """The size bin of each pixel's 8-connected component in ``mask`` (0 outside it)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    bins = np.searchsorted(SIZE_EDGES, stats[:, cv2.CC_STAT_AREA], side="left")
    return bins[labels]


def _window(mask: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of ``mask`` grown by a pixel (clipped to the map): its edge is the map's edge, or
    pixels outside the mask, so the boundary found in the window is the boundary in the map."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return slice(max(rows[0] - 1, 0), min(rows[-1] + 2, height)), slice(max(cols[0] - 1, 0), min(cols[-1] + 2, width))


@dataclass(frozen=True)
class ClassEdges:
    """One class's boundary pixels in one map: flat indices (ascending), their size bins, and a k-d tree of
    their (row, column) positions, built when first asked for."""

    flat: np.ndarray
    bins: np.ndarray
    width: int
    _tree: list = field(default_factory=list, repr=False, compare=False)

    @property
    def tree(self):
        if not self._tree:
            from scipy.spatial import cKDTree

            self._tree.append(cKDTree(np.stack(np.divmod(self.flat, self.width), axis=1)))
        return self._tree[0]


def class_edges(segment: np.ndarray, ignore_index: int | None = None) -> dict[int, ClassEdges]:
    """Every class's [`ClassEdges`][nsegaug.calibrate.measure.ClassEdges] in ``segment``: its pixels with a
    4-neighbour of another class (the ignore index is none, and has none); a class without one (it fills the map,
    or all else is ignored) is left out."""
    found = {}
    width = segment.shape[1]
    values = np.unique(segment).tolist()
    for value in values:
        if ignore_index is not None and value == ignore_index:
            continue
        mask = segment == value
        rows, cols = _window(mask)
        inside = mask[rows, cols]
        ignored = segment[rows, cols] == ignore_index if ignore_index in values else None
        edge = boundary(inside, ignored)
        local = np.flatnonzero(edge)
        if local.size == 0:
            continue
        row, col = np.divmod(local, edge.shape[1])
        flat = (row + rows.start) * width + (col + cols.start)
        found[int(value)] = ClassEdges(flat, size_bins(inside).ravel()[local], width)
    return found


def _known_in(edges: dict[int, ClassEdges], other: np.ndarray, ignore_index: int) -> dict[int, ClassEdges]:
    """``edges`` less their pixels that ``other`` ignores (a class left with none is left out)."""
    known = {}
    for value, found in edges.items():
        keep = other.ravel()[found.flat] != ignore_index
        if keep.all():
            known[value] = found
        elif keep.any():
            known[value] = ClassEdges(found.flat[keep], found.bins[keep], found.width)
    return known


def _one_way(edges: ClassEdges, other: ClassEdges | None, counts: np.ndarray, sums: np.ndarray) -> None:
    """Add the displacement of every boundary pixel of ``edges`` to the nearest one of ``other``."""
    distance = np.full(edges.flat.size, CAP_PX)
    if other is not None:
        # A boundary pixel that is a boundary pixel of the class in the other map too has not moved: only the
        # others are looked up (most pixels of a small disagreement).
        moved = ~np.isin(edges.flat, other.flat, assume_unique=True)
        distance[~moved] = 0.0
        if moved.any():
            points = np.stack(np.divmod(edges.flat[moved], edges.width), axis=1)
            found, _ = other.tree.query(points, distance_upper_bound=CAP_PX)
            distance[moved] = np.minimum(found, CAP_PX)
    column = np.minimum((distance / BIN_PX).astype(np.int64), N_BINS - 1)
    counts += np.bincount(edges.bins * N_BINS + column, minlength=counts.size).reshape(counts.shape)
    sums += np.bincount(edges.bins, weights=distance, minlength=sums.size)


def compare(
    a: np.ndarray,
    b: np.ndarray,
    ignore_index: int | None = None,
    b_edges: dict[int, ClassEdges] | None = None,
) -> Disagreement:
    """How label map ``a`` differs from ``b`` (same shape): changed pixels and boundary displacement, both ways.

    ``b_edges``: ``class_edges(b, ignore_index)`` when already known (many copies of one map against it).
    """
    if a.shape != b.shape:
        raise ValueError(f"maps of different sizes: {a.shape} and {b.shape}")
    valid = None if ignore_index is None else (a != ignore_index) & (b != ignore_index)
    differ = a != b
    result = Disagreement(maps=1)
    result.compared = int(a.size if valid is None else np.count_nonzero(valid))
    result.changed = int(np.count_nonzero(differ if valid is None else differ & valid))
    edges_a = class_edges(a, ignore_index)
    edges_b = class_edges(b, ignore_index) if b_edges is None else b_edges
    if valid is not None:  # a boundary pixel that the other map ignores has nothing to be compared with
        edges_a, edges_b = _known_in(edges_a, b, ignore_index), _known_in(edges_b, a, ignore_index)
    for value in sorted(set(edges_a) | set(edges_b)):
        counts, sums = _zeros(), np.zeros(len(SIZE_LABELS))
        if value in edges_a:
            _one_way(edges_a[value], edges_b.get(value), counts, sums)
        if value in edges_b:
            _one_way(edges_b[value], edges_a.get(value), counts, sums)
        result.counts[value] = counts
        result.sums[value] = sums
    return result
