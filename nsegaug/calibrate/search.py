"""Which NSegment+ strength makes copies of the reference differ from it as the annotations do.

The distance minimised ([`distance`][nsegaug.calibrate.search.distance]), in pixels:

    sum over size bins s of  w_s * W1(target_s, model_s)  +  |e_target - e_model|

``W1`` is the Wasserstein-1 distance between the two displacement
distributions of the boundary pixels of objects in size bin ``s`` (the mean
number of pixels the boundary mass must move: robust to a few far outliers,
and in pixels, so the terms add up); ``w_s`` is the target's share of boundary
pixels in that bin; ``e`` is the changed pixels per boundary pixel, the width
of the band that changed, also in pixels: it sees the area between two
outlines that the displacement of their pixels alone does not. Classes are
pooled: NSegment+ has one strength for every class, so a per-class match could
not be acted on (the report still shows each class). Size bins are kept apart
because the area threshold acts by size.

How copies are measured ([`grid_stats`][nsegaug.calibrate.search.grid_stats]), by sampling, not brute force:

- a sample of the reference maps (``sample`` of them, chosen by a hash of the
  seed and each map's path: the same maps for any order or number of maps);
- per map and copy index ``k``, the uniform noise fields are drawn once from
  [`random_state`][nsegaug.seeding.random_state] (seed, map, k), as ``generate`` draws
  them, and every grid point (alpha, sigma, area threshold) deforms the map
  with those same fields (common random numbers: grid points differ by their
  strength, not by their luck);
- a threshold that protects the same objects as a smaller one gives the same
  copy, which is measured once.

NSegment+ draws one (alpha, sigma) pair of its set per copy, so a set's
copies are the equal mixture of its pairs' copies: the search
([`recommend`][nsegaug.calibrate.search.recommend]) scores every set it tries from the grid's counts without
deforming again, by a beam search over sets of up to ``max_pairs`` pairs.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..deform import deform_with_noise, draw_deformation, small_component_boxes
from ..params import CALIBRATION_ALPHAS, CALIBRATION_SIGMAS, CALIBRATION_THRESHOLDS, DeformParams
from ..seeding import random_state
from .measure import BIN_PX, Disagreement, class_edges, compare

MODELS = ("reference", "equal-readers")
# A smaller set, or a threshold nearer the paper's, is preferred while its distance is within this of the best.
RELATIVE_TOLERANCE = 0.02
ABSOLUTE_TOLERANCE_PX = 0.005
BEAM = 8


@dataclass(frozen=True)
class Summary:
    """What the distance reads of a [`Disagreement`][nsegaug.calibrate.measure.Disagreement]: pooled counts
    (size bins x displacement bins), the
    changed pixels and the boundary pixels; a set of pairs is the mean of its pairs' summaries."""

    counts: np.ndarray
    changed: float
    boundary: float

    @classmethod
    def of(cls, disagreement: Disagreement) -> Summary:
        return cls(disagreement.pooled().astype(np.float64), disagreement.changed, disagreement.boundary_pixels)

    @classmethod
    def mixture(cls, summaries: Sequence[Summary]) -> Summary:
        n = len(summaries)
        return cls(
            sum(s.counts for s in summaries) / n,
            sum(s.changed for s in summaries) / n,
            sum(s.boundary for s in summaries) / n,
        )

    @property
    def changed_per_boundary(self) -> float:
        return self.changed / (self.boundary / 2) if self.boundary else 0.0


def distance(target: Summary, model: Summary) -> float:
    """The distance in px between a disagreement and a model of it (see the module docstring)."""
    target_totals = target.counts.sum(axis=1)
    model_totals = model.counts.sum(axis=1)
    everything = model.counts.sum(axis=0)
    overall = everything / everything.sum() if everything.sum() else np.zeros_like(everything)
    weights = target_totals / target_totals.sum() if target_totals.sum() else target_totals
    total = 0.0
    for row in np.flatnonzero(target_totals):
        p = target.counts[row] / target_totals[row]
        # A size bin the copies lack (an object only the annotation has): compared with all the copies' pixels.
        q = model.counts[row] / model_totals[row] if model_totals[row] else overall
        total += weights[row] * float(np.abs(np.cumsum(p - q)).sum()) * BIN_PX
    return float(total + abs(target.changed_per_boundary - model.changed_per_boundary))


def displacement_scale(pairs: Sequence[tuple[float, float]]) -> float:
    """The root-mean-square displacement (px) of a set's fields before rounding and suppression.

    Uniform noise in [-alpha, alpha] has variance alpha^2 / 3; a 2-D Gaussian
    blur of width sigma multiplies it by 1 / (4 pi sigma^2); a set draws each
    pair equally. One number to compare strengths by, not a statistic of copies.
    """
    return math.sqrt(sum(alpha**2 / (12 * math.pi * sigma**2) for alpha, sigma in pairs) / len(pairs))


def sample_keys(keys: Sequence[str], size: int, seed: int) -> list[str]:
    """Up to ``size`` of ``keys``: those with the smallest hash of (seed, key), in sorted order."""

    def rank(key: str) -> bytes:
        return hashlib.sha256(f"{seed}\0{key}".encode()).digest()

    return sorted(sorted(keys, key=rank)[:size])


@dataclass(frozen=True)
class Grid:
    """The strengths tried: every (alpha, sigma) pair of ``alphas`` x ``sigmas``, at every area threshold."""

    alphas: tuple[float, ...] = CALIBRATION_ALPHAS
    sigmas: tuple[float, ...] = CALIBRATION_SIGMAS
    thresholds: tuple[float, ...] = CALIBRATION_THRESHOLDS

    @property
    def pairs(self) -> tuple[tuple[float, float], ...]:
        return tuple(itertools.product(self.alphas, self.sigmas))


def grid_stats(
    references: Sequence[tuple[str, np.ndarray]],
    grid: Grid,
    model: str,
    seed: int,
    copies: int,
    ignore_index: int | None,
    progress: Callable[[], None] = lambda: None,
) -> dict[tuple[int, int], Disagreement]:
    """For every (pair index, threshold index) of the grid, the copies' disagreement (see the module docstring).

    ``model`` ``"reference"``: a copy against its source; ``"equal-readers"``:
    two independent copies (copy indices 2k - 1 and 2k) against each other.
    """
    stats: dict[tuple[int, int], Disagreement] = {}
    for key, segment in references:
        boxes = [small_component_boxes(segment, threshold, ignore_index) for threshold in grid.thresholds]
        edges = class_edges(segment, ignore_index)
        for k in range(1, copies + 1):
            indices = (k,) if model == "reference" else (2 * k - 1, 2 * k)
            draws = [draw_deformation(random_state(seed, key, index), segment.shape) for index in indices]
            for pair_index, (alpha, sigma) in enumerate(grid.pairs):
                _measure_pair(stats, segment, edges, draws, pair_index, alpha, sigma, boxes, ignore_index)
        progress()
    return stats


def _measure_pair(stats, segment, edges, draws, pair_index, alpha, sigma, boxes, ignore_index) -> None:
    done: dict[int, Disagreement] = {}
    for threshold_index, threshold_boxes in enumerate(boxes):
        # Thresholds that protect the same objects make the same copies: measured once.
        same = len(threshold_boxes)
        if same not in done:
            params = DeformParams(((alpha, sigma),), area_thresh=0, ignore_index=ignore_index)
            made = [
                deform_with_noise(segment, d.noise_x, d.noise_y, alpha, sigma, params, threshold_boxes).segment
                for d in draws
            ]
            if len(made) == 1:
                done[same] = compare(made[0], segment, ignore_index, edges)
            else:
                done[same] = compare(made[0], made[1], ignore_index)
        stats.setdefault((pair_index, threshold_index), Disagreement()).add(done[same])


@dataclass(frozen=True)
class Recommendation:
    """The strength whose copies match the disagreement best: a set of pairs, an area threshold, the distance
    predicted from the grid's counts."""

    pairs: tuple[tuple[float, float], ...]
    area_thresh: float
    predicted: float
    # Per threshold tried: (threshold, the best set there, its predicted distance): what the threshold changes.
    by_threshold: tuple[tuple[float, tuple[tuple[float, float], ...], float], ...] = ()


def recommend(
    target: Disagreement,
    stats: dict[tuple[int, int], Disagreement],
    grid: Grid,
    max_pairs: int = 4,
    paper_thresh: float = 1000,
) -> Recommendation:
    """The set of at most ``max_pairs`` grid pairs and the threshold of least
    [`distance`][nsegaug.calibrate.search.distance] (beam search).

    Among the candidates within ``RELATIVE_TOLERANCE`` (and
    ``ABSOLUTE_TOLERANCE_PX``) of the best, the fewest pairs win, then the
    threshold nearest the paper's (a threshold that changes nothing on these
    maps is left where the method puts it), then the distance.
    """
    goal = Summary.of(target)
    found: dict[tuple[tuple[int, ...], int], float] = {}
    for threshold_index in range(len(grid.thresholds)):
        summaries = [Summary.of(stats[(pair, threshold_index)]) for pair in range(len(grid.pairs))]

        def score(members: tuple[int, ...], summaries=summaries, threshold_index=threshold_index) -> float:
            key = (members, threshold_index)
            if key not in found:
                found[key] = distance(goal, Summary.mixture([summaries[i] for i in members]))
            return found[key]

        beam = sorted(((i,) for i in range(len(summaries))), key=score)[:BEAM]
        for _ in range(max_pairs - 1):
            grown = {tuple(sorted({*members, i})) for members in beam for i in range(len(summaries))}
            beam = sorted((members for members in grown if len(members) > len(beam[0])), key=score)[:BEAM]
            if not beam:
                break
    best = min(found.values())
    bound = best * (1 + RELATIVE_TOLERANCE) + ABSOLUTE_TOLERANCE_PX

    def preference(item):
        (members, threshold_index), value = item
        threshold = grid.thresholds[threshold_index]
        return len(members), abs(math.log1p(threshold) - math.log1p(paper_thresh)), value

    (members, threshold_index), value = min((item for item in found.items() if item[1] <= bound), key=preference)
    by_threshold = []
    for index, threshold in enumerate(grid.thresholds):
        there = min((item for item in found.items() if item[0][1] == index), key=lambda item: item[1])
        by_threshold.append((threshold, tuple(grid.pairs[i] for i in there[0][0]), float(there[1])))
    pairs = tuple(grid.pairs[i] for i in members)
    return Recommendation(pairs, grid.thresholds[threshold_index], float(value), tuple(by_threshold))
