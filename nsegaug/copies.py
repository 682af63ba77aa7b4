"""The K deformed copies of one mask, as ``generate`` writes them and ``preview`` shows them.

Copy k of the sample with key ``key`` draws everything from
``random_state(seed, key, k)``: first the ``prob`` coin (as the method's
``__call__`` does), then the method's own draws. So a copy's pixels depend
on (parameters, key, k) only, never on which process or in which order it
is made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .deform import DEFAULT_ALPHA_SIGMA, DeformResult, check_alpha_sigma, deform, small_component_boxes
from .seeding import random_state


@dataclass(frozen=True)
class DeformParams:
    """The parameters of ``nsegaug generate`` that decide a copy's pixels."""

    seed: int = 0
    alpha_sigma: tuple[tuple[float, float], ...] = DEFAULT_ALPHA_SIGMA
    prob: float = 1.0
    area_thresh: float = 1000
    ignore_index: int | None = None
    variant: str = "nsegment+"
    precision: str = "float32"

    @classmethod
    def from_meta(cls, parameters: Mapping) -> DeformParams:
        """The parameters recorded in ``manifest.meta.json`` by ``generate``."""
        return cls(
            seed=int(parameters["seed"]),
            alpha_sigma=check_alpha_sigma([tuple(pair) for pair in parameters["alpha_sigma"]]),
            prob=float(parameters["prob"]),
            area_thresh=parameters["area_thresh"],
            ignore_index=parameters["ignore_index"],
            variant=parameters["variant"],
            precision=parameters["precision"],
        )

    def boxes(self, segment: np.ndarray) -> np.ndarray | None:
        """The map's small components, shared by all its copies; None where nothing is suppressed."""
        if self.variant != "nsegment+":
            return None
        return small_component_boxes(segment, self.area_thresh, self.ignore_index)


def deformed_copies(
    segment: np.ndarray, key: str, copies: int, params: DeformParams
) -> Iterator[tuple[int, DeformResult | None]]:
    """``(k, result)`` for k = 1..copies; ``result`` is None where the coin left copy k unchanged."""
    boxes = params.boxes(segment) if params.prob > 0 else None
    for copy_index in range(1, copies + 1):
        state = random_state(params.seed, key, copy_index)
        if state.rand() > params.prob:  # the method's coin: deform when rand() <= p
            yield copy_index, None
            continue
        yield (
            copy_index,
            deform(
                segment,
                state,
                params.alpha_sigma,
                area_thresh=params.area_thresh,
                ignore_index=params.ignore_index,
                variant=params.variant,
                precision=params.precision,
                boxes=boxes,
            ),
        )
