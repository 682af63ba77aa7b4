"""The disagreement of whole strengths (a [`DeformParams`][nsegaug.params.DeformParams], or the noise of ``nsegaug
noise``) with their source, measured on the sampled maps exactly as ``generate`` and ``noise`` would make them.

These are the distances a calibration reports (the grid's own figures are
predictions from mixtures): copy ``k`` of a map here is byte for byte copy
``k`` of ``nsegaug generate --seed SEED`` with the same parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..copies import deformed_copies
from ..noise_models import annotation_noise
from ..params import DEFAULT_NOISE, DeformParams, NoiseParams
from .measure import Disagreement, class_edges, compare
from .search import Summary, distance

# The noise of nsegaug noise, scaled: every size of the default models times one factor (jitter's smoothness kept).
NOISE_SCALES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def deformation_disagreement(
    references: Sequence[tuple[str, np.ndarray]], params: DeformParams, model: str, seed: int, copies: int
) -> Disagreement:
    """Copies 1..copies of every map against the map (``"reference"``), or copies 2k - 1 and 2k against each
    other (``"equal-readers"``); the ignore index is the params'."""
    total = Disagreement()
    for key, segment in references:
        count = copies if model == "reference" else 2 * copies
        made = [result.segment for _, result in deformed_copies(segment, key, count, params, seed)]
        if model == "reference":
            edges = class_edges(segment, params.ignore_index)
            for copy in made:
                total.add(compare(copy, segment, params.ignore_index, edges))
        else:
            for first, second in zip(made[0::2], made[1::2], strict=True):
                total.add(compare(first, second, params.ignore_index))
    return total


def noise_disagreement(
    references: Sequence[tuple[str, np.ndarray]], params: NoiseParams, model: str, seed: int
) -> Disagreement:
    """``nsegaug noise``'s map against its source (``"reference"``), or the noisy maps of seeds ``seed`` and
    ``seed + 1`` against each other (``"equal-readers"``: two careless readers of one truth)."""
    total = Disagreement()
    for key, segment in references:
        noisy = annotation_noise(segment, seed, key, params)
        other = segment if model == "reference" else annotation_noise(segment, seed + 1, key, params)
        total.add(compare(noisy, other, params.ignore_index))
    return total


def scaled_noise(scale: float, ignore_index: int | None, base: NoiseParams = DEFAULT_NOISE) -> NoiseParams:
    """``base`` with its boundary radius, simplification tolerance and jitter amplitude times ``scale``."""
    return NoiseParams(
        models=base.models,
        max_radius=int(round(base.max_radius * scale)),
        max_epsilon=round(base.max_epsilon * scale, 4),
        jitter_amplitude=round(base.jitter_amplitude * scale, 4),
        jitter_sigma=base.jitter_sigma,
        ignore_index=ignore_index,
    )


@dataclass(frozen=True)
class NoiseFit:
    """The noise that matches the disagreement best among ``NOISE_SCALES``, and the defaults' distance."""

    params: NoiseParams
    scale: float
    distance: float
    default_distance: float
    fitted: Disagreement
    default: Disagreement


def fit_noise(
    target: Disagreement, references: Sequence[tuple[str, np.ndarray]], model: str, seed: int, ignore_index
) -> NoiseFit:
    """Try ``nsegaug noise``'s models at every scale of ``NOISE_SCALES``; keep the nearest to ``target``."""
    goal = Summary.of(target)
    tried = []
    for scale in NOISE_SCALES:
        params = scaled_noise(scale, ignore_index)
        measured = noise_disagreement(references, params, model, seed)
        tried.append((distance(goal, Summary.of(measured)), scale, params, measured))
    default = next(item for item in tried if item[1] == 1.0)
    best = min(tried, key=lambda item: (item[0], abs(item[1] - 1.0)))
    return NoiseFit(best[2], best[1], best[0], default[0], best[3], default[3])
