"""A calibration from start to end: pair and check the maps, measure, search, confirm, fit the noise."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import storage
from ..errors import LabelFormatError, UsageError
from ..io import cached_colour_palette
from ..params import DEFAULT_PARAMS, DeformParams, check_ignore_index
from .copies import NoiseFit, deformation_disagreement, fit_noise
from .measure import Disagreement, compare
from .pairs import pair_maps, read_pairs
from .search import MODELS, Grid, Recommendation, Summary, distance, grid_stats, recommend, sample_keys

DEFAULT_SAMPLE = 24
# Resamples of the maps for the intervals; their own stream, apart from the copies'. Past BOOTSTRAP_GROUPS maps,
# the maps are dealt into that many groups (map i into group i mod BOOTSTRAP_GROUPS) and the groups resampled: the
# counts kept stay small for 100,000 maps.
BOOTSTRAP = 200
BOOTSTRAP_GROUPS = 1000
BOOTSTRAP_STREAM = 0x626F6F74  # "boot"


@dataclass(frozen=True)
class CalibrateConfig:
    """What a calibration reads and how it searches.

    ``labels`` are the annotations to imitate and ``reference`` the maps the
    copies are made from, paired by relative path and stem. ``model``:
    ``"reference"`` (the reference is the truth, the labels one noisy reading
    of it) or ``"equal-readers"`` (two readers of equal standing). ``sample``
    maps are deformed at every grid point, ``copies`` times each, and
    ``check_copies`` times with the recommended strength and the paper's to
    measure both.
    """

    labels: storage.Location
    reference: storage.Location
    model: str = "reference"
    ignore_index: int | None = None
    grid: Grid = field(default_factory=Grid)
    max_pairs: int = 4
    sample: int = DEFAULT_SAMPLE
    copies: int = 1
    check_copies: int = 4
    seed: int = 0
    pattern: str | None = None
    label_suffix: str = ""
    reference_suffix: str = ""
    palette: storage.Location | None = None
    fit_noise: bool = True

    def __post_init__(self) -> None:
        for name in ("labels", "reference", "palette"):  # str paths from Python callers, or URLs
            if getattr(self, name) is not None:
                object.__setattr__(self, name, storage.as_location(getattr(self, name)))
        # A URL's credentials join this process's storage options, as in every command: never in a message or file.
        clean = storage.use_credentials(self.labels, self.reference, self.palette)
        for name, location in zip(("labels", "reference", "palette"), clean, strict=True):
            object.__setattr__(self, name, location)
        if self.model not in MODELS:
            raise UsageError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        check_ignore_index(self.ignore_index)
        for name in ("max_pairs", "sample", "copies", "check_copies"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise UsageError(f"seed must be >= 0, got {self.seed}")
        # The grid's pairs and thresholds, checked as the method checks them.
        DeformParams(self.grid.pairs, min(self.grid.thresholds, default=0))
        if not self.grid.thresholds or min(self.grid.thresholds) < 0:
            raise UsageError("area thresholds must be numbers of pixels >= 0, at least one")

    @property
    def paper_params(self) -> DeformParams:
        """The paper's pairs and threshold, with this calibration's ignore index."""
        return DEFAULT_PARAMS.replace(ignore_index=self.ignore_index)


@dataclass(frozen=True)
class Calibration:
    """A calibration's result: the disagreement, the strength recommended, and what each strength achieves."""

    config: CalibrateConfig
    maps: int
    sampled: tuple[str, ...]
    target: Disagreement
    group_counts: np.ndarray  # (groups, size bins, displacement bins): the target's pooled counts by group of maps
    group_changed: np.ndarray  # (groups,): their changed pixels
    recommendation: Recommendation
    params: DeformParams
    achieved: Disagreement
    paper: Disagreement
    noise: NoiseFit | None
    elapsed_s: float

    def distance_of(self, measured: Disagreement) -> float:
        """[`distance`][nsegaug.calibrate.search.distance] of ``measured`` from the disagreement."""
        return distance(Summary.of(self.target), Summary.of(measured))

    def interval_of(self, measured: Disagreement, resamples: int = BOOTSTRAP, level: float = 0.95) -> tuple:
        """A bootstrap interval of ``distance_of`` over the annotated maps (the copies held fixed): how much
        the distance owes to which maps were annotated."""
        model = Summary.of(measured)
        rng = np.random.default_rng(np.random.SeedSequence([BOOTSTRAP_STREAM, self.config.seed]))
        values = []
        for _ in range(resamples):
            picked = rng.integers(0, len(self.group_changed), len(self.group_changed))
            counts = self.group_counts[picked].sum(axis=0).astype(np.float64)
            goal = Summary(counts, float(self.group_changed[picked].sum()), float(counts.sum()))
            values.append(distance(goal, model))
        tail = (1 - level) / 2
        return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def calibrate(config: CalibrateConfig, log: Callable[[str], None] = lambda message: None, progress=None) -> Calibration:
    """Measure the disagreement of ``config.labels`` with ``config.reference`` and the strength that matches it.

    ``progress(total)`` returns a callable to call once per unit of work
    (None: no progress shown). Refusals ([`LabelFormatError`][nsegaug.errors.LabelFormatError])
    come before any output could be written: the caller writes the result.
    """
    started = time.perf_counter()
    palette = cached_colour_palette(config.palette)
    pairs = pair_maps(config.labels, config.reference, config.pattern, config.label_suffix, config.reference_suffix)
    sampled = sample_keys([pair.key for pair in pairs], config.sample, config.seed)
    chosen, references, target = set(sampled), [], Disagreement()
    groups = min(len(pairs), BOOTSTRAP_GROUPS)
    group_counts = np.zeros((groups, *Disagreement().pooled().shape), dtype=np.int64)
    group_changed = np.zeros(groups, dtype=np.int64)
    tick = progress(len(pairs) + 2 * len(sampled)) if progress else (lambda: None)
    for index, (pair, a, b) in enumerate(
        read_pairs(pairs, config.labels, config.reference, palette, config.ignore_index)
    ):
        measured = compare(a, b, config.ignore_index)
        target.add(measured)
        group_counts[index % groups] += measured.pooled()
        group_changed[index % groups] += measured.changed
        if pair.key in chosen:
            references.append((pair.key, b))
        tick()
    if not target.boundary_pixels:
        raise LabelFormatError(config.labels, "no class boundary in any map: there is nothing to calibrate against")
    log(
        f"{len(pairs)} pairs of maps read; deforming {len(references)} of them at {len(config.grid.pairs)} pairs x "
        f"{len(config.grid.thresholds)} thresholds"
    )
    stats = grid_stats(
        references, config.grid, config.model, config.seed, config.copies, config.ignore_index, progress=tick
    )
    found = recommend(target, stats, config.grid, config.max_pairs, DEFAULT_PARAMS.area_thresh)
    params = DeformParams(found.pairs, found.area_thresh, config.ignore_index)
    achieved = deformation_disagreement(references, params, config.model, config.seed, config.check_copies)
    paper = deformation_disagreement(references, config.paper_params, config.model, config.seed, config.check_copies)
    noise = None
    if config.fit_noise:
        noise = fit_noise(target, references, config.model, config.seed, config.ignore_index)
    for _ in references:
        tick()
    return Calibration(
        config=config,
        maps=len(pairs),
        sampled=tuple(sampled),
        target=target,
        group_counts=group_counts,
        group_changed=group_changed,
        recommendation=found,
        params=params,
        achieved=achieved,
        paper=paper,
        noise=noise,
        elapsed_s=time.perf_counter() - started,
    )
