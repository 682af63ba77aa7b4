"""``NoisySegmentPlus``: the method as a transform, drop-in for mmsegmentation pipelines."""

from __future__ import annotations

import os
import secrets

import numpy as np

from .deform import DeformResult, deform, deform_labels, draw_coin
from .params import MethodTransform
from .seeding import process_identity as _process_identity
from .seeding import random_state as _derived_state


class NoisySegmentPlus(MethodTransform):
    """Label-only elastic deformation with scale-aware suppression (NSegment+).

    Parameters
    ----------
    alpha_sigma_list
        The (alpha, sigma) pairs to draw from; default alpha in
        {1, 15, 30, 50, 100} x sigma in {3, 5, 10}, as in the paper.
    prob
        Chance that ``__call__`` deforms a sample (the method's p, 0.5).
    area_thresh
        Components of area <= this many pixels are protected (theta, 1000).
    ignore_index
        ``None`` reproduces the reference code, which treats every value as a
        class. With e.g. 255, ignore pixels are never taken as small objects,
        so they never suppress the deformation around them; they are still
        moved with the rest of the map, as they sit on object borders.
    variant
        ``"nsegment+"`` (default) or ``"nsegment"``, the pilot method without
        suppression, which draws the pair before the fields.
    precision
        ``"float32"`` (fast) or ``"float64"`` (bit-identical to the reference).
    seed
        Seed of the stream ``__call__`` draws from. Each process gets its own
        stream: derived from ``seed``, the distributed rank and, in a torch
        DataLoader worker, the worker's seed, which torch renews every epoch
        (so epochs differ, and a loader with a seeded generator repeats them);
        from fresh OS entropy when ``seed`` is None. The global NumPy state
        is never used.

    The deformation's parameters are held as one [`nsegaug.params.DeformParams`][nsegaug.params.DeformParams]
    (``self.deform_params``); the flat names above read it.
    """

    _state: np.random.RandomState | None = None
    _state_pid: int | None = None

    def deform(self, segment: np.ndarray, random_state: np.random.RandomState | None = None) -> DeformResult:
        """Deform ``segment`` always (no ``prob``), returning the map and its statistics."""
        return deform(segment, random_state if random_state is not None else self.random_state(), self.deform_params)

    def transform(self, segment: np.ndarray, random_state: np.random.RandomState | None = None) -> np.ndarray:
        """Deform ``segment`` always (no ``prob``) and return the new map (the statistics are not computed)."""
        state = random_state if random_state is not None else self.random_state()
        return deform_labels(segment, state, self.deform_params)

    def __call__(self, results: dict) -> dict:
        """mmseg-style: deform the label maps of ``results`` with probability ``prob``; nothing else changes.

        The maps are the keys ``results["seg_fields"]`` lists (mmseg's
        ``LoadAnnotations`` puts ``gt_seg_map`` there), or ``gt_seg_map`` where
        that list is absent or empty. They all get the same draws (noise and
        pair), each with the suppression around its own small components, so
        with one map the stream is used exactly as the method's ``__call__``
        uses it: the coin, then one deformation.
        """
        fields = results.get("seg_fields") or ["gt_seg_map"]
        missing = [field for field in fields if field not in results]
        if missing:  # checked before the coin, so a misplaced transform fails every time, not half of them
            raise KeyError(
                f"NoisySegmentPlus: no {missing[0]!r} in the results (keys: {', '.join(sorted(results))}); "
                "it deforms label maps, so put it after LoadAnnotations"
            )
        state = self.random_state()
        if not draw_coin(state, self.prob):
            return results
        start = state.get_state()
        for field in fields:
            state.set_state(start)
            results[field] = self.transform(results[field], state)
        return results

    def random_state(self) -> np.random.RandomState:
        """This process's own stream (created on first use after a fork)."""
        if self._state is None or self._state_pid != os.getpid():
            if self.seed is None:
                self._state = np.random.RandomState(np.frombuffer(secrets.token_bytes(32), dtype=np.uint32))
            else:
                self._state = _derived_state(self.seed, _stream_key(), 0)
            self._state_pid = os.getpid()
        return self._state


def _stream_key() -> str:
    """What tells this process's stream apart from the others of the same run.

    The distributed rank, and inside a torch DataLoader worker the worker's
    seed: torch draws a new base seed for the workers every epoch (from the
    loader's generator, so a seeded loader repeats it), so each epoch gets
    new deformations instead of replaying the first one.
    """
    rank, worker_seed = _process_identity()
    key = f"online/rank{rank}"
    return key if worker_seed is None else f"{key}/worker-seed{worker_seed}"
