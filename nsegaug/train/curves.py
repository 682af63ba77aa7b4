"""``curves.png`` and ``curves.svg``: training loss and the validation metrics against the step, drawn with
matplotlib (``pip install 'nsegaug[plots]'``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._plots import figure_bytes, new_figure

LOSS_COLOUR = "#1f77b4"
# The validation metrics drawn in the right panel: metrics.jsonl key, legend, colour.
METRICS = (
    ("miou", "mIoU", "#d62728"),
    ("band_miou", "band mIoU", "#2ca02c"),
    ("boundary_miou", "boundary mIoU", "#9467bd"),
)


def draw_curves(loss: Sequence[tuple[int, float]], evals: Sequence[Mapping], total_steps: int) -> dict[str, bytes]:
    """Two panels side by side, over steps 0..``total_steps``: loss (left), and the validation metrics of the
    ``evals`` rows (metrics.jsonl) that hold them (right, on their whole range 0-1); ``{"png": ..., "svg": ...}``.
    Raises ImportError (naming the extra) without matplotlib."""
    figure = new_figure((9.0, 3.4))
    left, right = figure.subplots(1, 2)
    finite = [(step, value) for step, value in loss if value == value]
    if finite:
        left.plot(*zip(*finite, strict=True), color=LOSS_COLOUR, linewidth=1.2, label="training loss")
    left.set_ylim(bottom=0.0)
    left.set_title("training loss", fontsize=10)
    for key, name, colour in METRICS:
        points = [(row["step"], row[key]) for row in evals if row.get(key) is not None and row[key] == row[key]]
        if points:
            marker = "o" if len(points) <= 50 else None
            right.plot(*zip(*points, strict=True), color=colour, linewidth=1.4, marker=marker, markersize=3, label=name)
    right.set_ylim(0.0, 1.0)
    right.set_title("validation", fontsize=10)
    if right.lines:
        right.legend(fontsize=8, loc="lower right")
    for axis in (left, right):
        axis.set_xlim(0, max(total_steps, 1))
        axis.set_xlabel("training step", fontsize=9)
        axis.grid(color="#e5e5e5", linewidth=0.6)
        axis.tick_params(labelsize=8)
    return figure_bytes(figure)
