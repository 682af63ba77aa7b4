"""The K deformed copies of one mask, as ``generate`` writes them and ``preview`` shows them.

Copy k of the sample with key ``key`` draws everything from
``random_state(seed, key, k)``: first the ``prob`` coin (as the method's
``__call__`` does), then the method's own draws. So a copy's pixels depend
on (parameters, seed, prob, key, k) only, never on which process or in
which order it is made. The seed, ``prob`` and the number of copies are the
sampling parameters; how each copy is deformed is the [`DeformParams`][nsegaug.params.DeformParams].
A 3-D volume is deformed by the 3D engine ([`nsegaug.volume`][nsegaug.volume]), with the
same streams.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .deform import DeformResult, deform, draw_coin, small_component_boxes
from .params import DeformParams
from .seeding import random_state


def deformed_copies(
    segment: np.ndarray,
    key: str,
    copies: int,
    params: DeformParams,
    seed: int = 0,
    prob: float = 1.0,
    spacing: tuple[float, float, float] | None = None,
) -> Iterator[tuple[int, DeformResult | None]]:
    """``(k, result)`` for k = 1..copies; ``result`` is None where the coin left copy k unchanged.

    ``spacing``: a volume's voxel sides in mm (for ``params.units == "mm"``).
    """
    if segment.ndim == 3:
        from .volume.engine import deform_volume as engine
        from .volume.engine import volume_boxes as boxes_of
    else:
        engine, boxes_of = _deform_map, _map_boxes
    # The small components depend on the map only: found once for all its copies.
    boxes = boxes_of(segment, params, spacing) if params.suppresses and prob > 0 else None
    for copy_index in range(1, copies + 1):
        state = random_state(seed, key, copy_index)
        if not draw_coin(state, prob):
            yield copy_index, None
            continue
        yield copy_index, engine(segment, state, params, spacing, boxes)


def _deform_map(segment, state, params, spacing, boxes) -> DeformResult:
    return deform(segment, state, params, boxes)


def _map_boxes(segment, params, spacing) -> np.ndarray:
    return small_component_boxes(segment, params.area_thresh, params.ignore_index)
