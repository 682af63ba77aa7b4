"""The calibration's figure: displacement histograms per object size, the annotations' beside the strengths'.

Drawn with matplotlib (``pip install 'nsegaug[plots]'``), imported here only.
One panel per size bin that holds boundary pixels of the annotations: the
share of boundary pixels at each displacement (rounded to whole pixels), the
annotations' with a 95 % band from resampling the maps, beside the
recommended strength's copies, the paper default's and, when fitted, the
noise's. Saved as PNG and SVG.
"""

from __future__ import annotations

import io

import numpy as np

from .measure import BIN_PX, SIZE_LABELS
from .report import strengths
from .run import BOOTSTRAP, BOOTSTRAP_STREAM, Calibration

# Shown rounded to whole pixels: distances between pixel centres are square roots of integers (1, 1.41, 2, 2.24,
# ...), so finer bins show gaps, not shape.
PER_PX = int(round(1 / BIN_PX))
STYLES = {
    "annotations": {"color": "black", "linewidth": 2.0},
    "recommended": {"color": "tab:blue", "linewidth": 1.6},
    "paper default": {"color": "tab:orange", "linewidth": 1.4, "linestyle": "--"},
    "noise fitted": {"color": "tab:green", "linewidth": 1.2, "linestyle": ":"},
}


def _shares(counts: np.ndarray) -> np.ndarray:
    """Shares of the counts (last axis: quarter-pixel bins) by displacement rounded to whole pixels."""
    rounded = (np.arange(counts.shape[-1]) + PER_PX // 2) // PER_PX
    merged = np.zeros((*counts.shape[:-1], rounded[-1] + 1))
    np.add.at(merged, (..., rounded), counts)
    totals = merged.sum(axis=-1, keepdims=True)
    return np.divide(merged, totals, out=np.zeros(merged.shape), where=totals > 0)


def _band(calibration: Calibration, row: int) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5 and 97.5 percentiles of the annotations' shares in size bin ``row``, resampling maps."""
    rng = np.random.default_rng(np.random.SeedSequence([BOOTSTRAP_STREAM, calibration.config.seed, row]))
    counts = calibration.group_counts[:, row, :]
    maps = len(counts)
    samples = [_shares(counts[rng.integers(0, maps, maps)].sum(axis=0)) for _ in range(BOOTSTRAP)]
    return np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)


def draw(calibration: Calibration, name: str) -> dict[str, bytes]:
    """``{name.png: bytes, name.svg: bytes}`` of the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {key: value.pooled() for key, value in strengths(calibration).items() if key in STYLES}
    target = measured["annotations"]
    rows = [row for row in range(len(SIZE_LABELS)) if target[row].sum()]
    shown_px = _shown_range(measured, rows)
    bins = int(shown_px) + 1
    x = np.arange(bins)
    columns = min(3, len(rows))
    lines = -(-len(rows) // columns)
    figure, axes = plt.subplots(
        lines, columns, figsize=(3.8 * columns + 0.4, 3.0 * lines + 0.8), squeeze=False, sharey=True
    )
    for axis, row in zip(axes.flat, rows, strict=False):
        low, high = _band(calibration, row)
        axis.fill_between(x, 100 * low[:bins], 100 * high[:bins], step="mid", color="0.8", label="annotations 95 %")
        for key, counts in measured.items():
            axis.step(x, 100 * _shares(counts[row])[:bins], where="mid", label=key, **STYLES[key])
        axis.set_title(f"objects {SIZE_LABELS[row]} ({int(target[row].sum()):,} boundary px)", fontsize=9)
        axis.set_xlabel("displacement, nearest whole px")
        axis.set_xlim(-0.5, shown_px + 0.5)
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(rows) :]:
        axis.set_visible(False)
    for axis in axes[:, 0]:
        axis.set_ylabel("share of boundary pixels (%)")
    axes.flat[0].legend(fontsize=7, loc="upper right")
    params = calibration.params
    figure.suptitle(
        f"Boundary displacement, {calibration.config.model} model: recommended alpha_sigma "
        f"{','.join(f'{a:g}:{s:g}' for a, s in params.alpha_sigma)}, area_thresh {params.area_thresh:g}",
        fontsize=10,
    )
    figure.tight_layout()
    files = {}
    for suffix in ("png", "svg"):
        buffer = io.BytesIO()
        # No date in the SVG: the same calibration gives the same bytes.
        figure.savefig(buffer, format=suffix, dpi=120, metadata={"Date": None} if suffix == "svg" else {})
        files[f"{name}.{suffix}"] = buffer.getvalue()
    plt.close(figure)
    return files


def _shown_range(measured: dict[str, np.ndarray], rows: list[int]) -> float:
    """Up to the largest 99th percentile of the curves shown, at least 4 px, at most 32."""
    largest = 4.0
    for counts in measured.values():
        for row in rows:
            cumulative = np.cumsum(counts[row])
            if cumulative[-1]:
                largest = max(largest, np.searchsorted(cumulative, 0.99 * cumulative[-1]) * BIN_PX + 1)
    return float(min(largest, 32.0))
