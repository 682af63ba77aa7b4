"""The K deformed copies of one mask, as ``generate`` writes them and ``preview`` shows them.

Copy k of the sample with key ``key`` draws everything from
``random_state(seed, key, k)``: first the ``prob`` coin (as the method's
``__call__`` does), then the method's own draws. So a copy's pixels depend
on (parameters, seed, prob, key, k) only, never on which process or in
which order it is made. The seed, ``prob`` and the number of copies are the
sampling parameters; how each copy is deformed is the :class:`DeformParams`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .deform import DeformResult, deform, draw_coin, small_component_boxes
from .params import DeformParams
from .seeding import random_state


def deformed_copies(
    segment: np.ndarray, key: str, copies: int, params: DeformParams, seed: int = 0, prob: float = 1.0
) -> Iterator[tuple[int, DeformResult | None]]:
    """``(k, result)`` for k = 1..copies; ``result`` is None where the coin left copy k unchanged."""
    # The small components depend on the map only: found once for all its copies.
    boxes = None
    if params.suppresses and prob > 0:
        boxes = small_component_boxes(segment, params.area_thresh, params.ignore_index)
    for copy_index in range(1, copies + 1):
        state = random_state(seed, key, copy_index)
        if not draw_coin(state, prob):
            yield copy_index, None
            continue
        yield copy_index, deform(segment, state, params, boxes)
