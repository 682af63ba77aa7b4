"""The labelling of step 2 of [`nsegaug.deform`][nsegaug.deform]: small components found from runs, in little memory.

The map is cut into runs (maximal stretches of one class along a row) and
the runs are joined into components as a graph (scipy's
``connected_components``), so the work and the memory grow with the number
of runs, not with the pixels: the runs are found a block of rows at a time
(no array of the map's size), and each kind of join is kept in the index
type the map needs (32 bits up to 2**31 pixels). About 80 bytes a run at
the peak; street scenes have one run in 50 to 100 pixels, a map of noise
one a pixel ([`labelling_bytes`][nsegaug.components.labelling_bytes]).
"""

from __future__ import annotations

import numpy as np

# Pixels per block of rows when the runs are found (the change mask of a block stays in the cache).
BLOCK_PX = 1 << 18
# The peak bytes of the labelling per run (measured on street scenes; see labelling_bytes).
BYTES_PER_RUN = 80


def run_starts(values: np.ndarray, index_dtype: type = np.int64) -> np.ndarray:
    """Flat indices of the first pixel of every run, ascending (a run starts each row, and at each change)."""
    height, width = values.shape
    rows = max(1, BLOCK_PX // max(1, width))
    change = np.empty((min(rows, height), width), dtype=bool)
    found = []
    for top in range(0, height, rows):
        block = values[top : top + rows]
        mask = change[: len(block)]
        mask[:, 0] = True
        np.not_equal(block[:, 1:], block[:, :-1], out=mask[:, 1:])
        starts = np.flatnonzero(mask).astype(index_dtype, copy=False)
        starts += top * width
        found.append(starts)
    return np.concatenate(found) if len(found) > 1 else found[0]


def count_runs(values: np.ndarray) -> int:
    """The number of runs of a map (what the labelling's memory grows with)."""
    height, width = values.shape
    rows = max(1, BLOCK_PX // max(1, width))
    return height + sum(
        int(np.count_nonzero(values[top : top + rows, 1:] != values[top : top + rows, :-1]))
        for top in range(0, height, rows)
    )


def labelling_bytes(runs: int) -> int:
    """The peak bytes of [`small_boxes`][nsegaug.components.small_boxes] on a map of ``runs`` runs."""
    return BYTES_PER_RUN * runs


def small_boxes(values: np.ndarray, area_thresh: float, ignore_index: int | None) -> np.ndarray:
    """[`small_component_boxes`][nsegaug.deform.small_component_boxes] on an integer map (see there)."""
    from scipy.sparse.csgraph import connected_components

    height, width = values.shape
    # Machine-size indices for small maps (numpy gathers with them directly); 32 bits spare memory on large ones.
    index = np.intp if height * width <= 1 << 23 else np.int32 if height * width < 2**31 else np.int64
    flat = values.reshape(-1)
    starts = run_starts(values, index)
    run_class = flat[starts]
    background = run_class == -1 if np.issubdtype(run_class.dtype, np.signedinteger) else np.zeros(starts.size, bool)
    if ignore_index is not None:
        background |= run_class == ignore_index
    graph = _graph(*_joins(flat, starts, run_class, background, width, height * width), starts.size)
    n_components, component = connected_components(graph, directed=False)
    del graph

    lengths = np.diff(starts, append=index(height * width))
    areas = np.bincount(component, weights=lengths, minlength=n_components)  # integers: exact in float64
    small_runs = np.flatnonzero((areas <= area_thresh)[component] & ~background)
    if small_runs.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    small_runs = small_runs[np.argsort(component[small_runs], kind="stable")]
    owner = component[small_runs]
    first = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))  # first run of each component
    run_starts_ = starts[small_runs].astype(np.int64)
    rows = run_starts_ // width
    x1 = run_starts_ - rows * width
    x2 = x1 + lengths[small_runs] - 1
    boxes = np.stack(
        [
            np.minimum.reduceat(rows, first),
            np.minimum.reduceat(x1, first),
            np.maximum.reduceat(rows, first),
            np.maximum.reduceat(x2, first),
        ],
        axis=1,
    )
    return boxes.astype(np.int64, copy=False)


def _graph(owners: np.ndarray, touched: np.ndarray, runs: int):
    """The joins as a sparse matrix of runs by runs, built row by row as scipy keeps it (CSR).

    Built here rather than from (row, column) pairs: scipy's own conversion
    costs more than the rest of the labelling on a map of a few thousand runs.
    """
    from scipy.sparse import csr_matrix

    index = np.int32 if runs < 2**31 else np.int64  # what scipy would convert the indices to
    order = np.argsort(owners, kind="stable")  # the joins come in four runs of ascending owners: merged
    columns = touched[order].astype(index, copy=False)
    del order
    first = np.zeros(runs + 1, dtype=index)
    np.cumsum(np.bincount(owners, minlength=runs), out=first[1:])
    return csr_matrix((np.ones(columns.size), columns, first), shape=(runs, runs))


def _joins(
    flat: np.ndarray, starts: np.ndarray, run_class: np.ndarray, background: np.ndarray, width: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of runs in consecutive rows that touch (8-connected) and share a class, as (run, run) indices.

    Runs in consecutive rows touch when one, widened by a pixel on each side,
    overlaps the other. For every touching pair, the lower run covers the
    pixel below the upper run's start, or below the pixel left of its start,
    or below the pixel right of its end; or else the lower run starts under
    the upper run. Probing those four pixels per run finds every touching
    pair; a probe joins two runs of the same class. Two searches find the
    runs probed: the run below each start (the run left of that pixel is the
    one before, or itself), and the run above each start; the pixel right of
    a run's end starts the next run of its row, whose run below is known.
    Runs come row by row, so the runs with a row below, and those with a row
    above, are a prefix and a suffix of them.
    """
    runs, index = starts.size, starts.dtype  # 32-bit on large maps: the memory is per run
    lower = int(np.searchsorted(starts, size - width))  # runs [0, lower) have a row below
    upper = int(np.searchsorted(starts, width))  # runs [upper, runs) have a row above
    below = starts[:lower] + width
    under = (np.searchsorted(starts, below, side="right") - 1).astype(index, copy=False)  # the run below a start
    row_start = starts[:lower] % width == 0
    # The run left of the pixel below a start is the one before, where the run below starts right there.
    left = np.flatnonzero(~row_start & (starts[under] == below)).astype(index, copy=False)
    right = np.flatnonzero(~row_start[1:]).astype(index, copy=False)  # the next run, same row: its run below
    over = (np.searchsorted(starts, starts[upper:] - width, side="right") - 1).astype(index, copy=False)
    # The four probes' (owner, run probed) pairs, as one pair of arrays: fewer calls on a map of few runs.
    owner = np.concatenate((np.arange(lower, dtype=index), left, right, np.arange(upper, runs, dtype=index)))
    hit = np.concatenate((under, under[left] - 1, under[right + 1], over))
    keep = run_class[hit] == run_class[owner]
    if background.any():
        keep &= ~background[owner]
    return owner[keep], hit[keep]
