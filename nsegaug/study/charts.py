"""The study's two figures, drawn with matplotlib (``pip install 'nsegaug[plots]'``), each as PNG and SVG.

- ``paired``: a panel per metric; in it, per condition and paired difference,
  every seed's difference (a dot, a colour per seed) and the mean with its
  95 % interval (a bar). The axis always holds 0 and the whole interval, so a
  difference without a verdict never looks like one; the reading is written
  under each bar.
- ``curves``: validation mIoU (solid) and boundary IoU (dashed) of every run
  against the step, a panel per (condition, method), a colour per seed, on
  the metrics' whole range 0-1.
"""

from __future__ import annotations

from .._plots import figure_bytes, new_figure
from .analysis import ALL_METRICS, METRIC_NAMES

SEED_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
VERDICT_COLOURS = {"above 0": "#1a7f37", "below 0": "#b42318", "no resolvable effect": "#333333"}
NO_VERDICT = "#9a9a9a"
TITLE = "nsegaug study: paired differences (method minus reference, seed by seed) at the last evaluation"


# A legend names each seed up to this many; beyond, one entry says what a dot (a line) is: 40 entries would
# crush the panels, and the colours repeat anyway.
SEEDS_NAMED = 10


def _seed_colour(seeds: list[int], seed: int) -> str:
    return SEED_COLOURS[seeds.index(seed) % len(SEED_COLOURS)]


def _seed_handles(seeds: list[int], **style) -> list:
    from matplotlib.lines import Line2D

    if len(seeds) > SEEDS_NAMED:
        label = f"one per seed ({len(seeds)} seeds; colours repeat)"
        return [Line2D([], [], color=SEED_COLOURS[0], label=label, **style)]
    return [Line2D([], [], color=_seed_colour(seeds, seed), label=f"seed {seed}", **style) for seed in seeds]


def paired_chart(record: dict) -> dict[str, bytes]:
    """The paired differences of ``record["last"]``: ``{"png": ..., "svg": ...}``."""
    return figure_bytes(paired_figure(record))


def paired_figure(record: dict):
    """The paired chart as a matplotlib figure: a panel per metric of ``ALL_METRICS``, in that order."""
    summary, study = record["last"], record["study"]
    seeds = sorted(study["seeds"])
    groups = [(condition, name) for condition in study["conditions"] for name in _differences(summary, condition)]
    columns = 3 if len(groups) <= 3 else 2
    rows = -(-len(ALL_METRICS) // columns)
    figure = new_figure((max(4.0, 1.25 * len(groups)) * columns, 4.0 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, metric in zip(axes, ALL_METRICS, strict=False):
        _paired_panel(axis, summary[metric], groups, seeds)
        primary = " (primary)" if metric == study.get("primary", "miou") else ""
        axis.set_title(METRIC_NAMES[metric] + primary, fontsize=10)
    for axis in axes[len(ALL_METRICS) :]:
        axis.set_axis_off()
    _legend(figure, axes[-1] if len(axes) > len(ALL_METRICS) else None, seeds)
    figure.suptitle(TITLE, fontsize=11)
    return figure


def _differences(summary: dict, condition: str) -> list[str]:
    return list(summary[ALL_METRICS[0]][condition]["differences"])


def _paired_panel(axis, by_condition: dict, groups: list[tuple[str, str]], seeds: list[int]) -> None:
    axis.axhline(0.0, color="black", linewidth=0.8)
    for position in range(1, len(groups)):
        if groups[position][0] != groups[position - 1][0]:  # a line between the conditions
            axis.axvline(position - 0.5, color="#bbbbbb", linewidth=0.8, linestyle=":")
    spread = 0.25
    for position, (condition, name) in enumerate(groups):
        entry = by_condition[condition]["differences"][name]
        for index, (seed, value) in enumerate(zip(entry["seeds"], entry["values"], strict=True)):
            offset = spread * (index / max(len(entry["seeds"]) - 1, 1) - 0.5) if len(entry["seeds"]) > 1 else 0.0
            axis.plot(position + offset, value, "o", color=_seed_colour(seeds, seed), markersize=4, alpha=0.85)
        colour = VERDICT_COLOURS.get(entry["verdict"], NO_VERDICT)
        if entry["n"]:
            low, high = entry["ci95"] if entry["ci95"] else (entry["mean"], entry["mean"])
            axis.errorbar(
                position + spread * 0.9,
                entry["mean"],
                yerr=[[entry["mean"] - low], [high - entry["mean"]]],
                fmt="D",
                color=colour,
                markersize=6,
                capsize=5,
                linewidth=2,
                markerfacecolor=colour if entry["verdict"] else "white",
            )
    axis.set_xticks(range(len(groups)))
    axis.set_xticklabels([_group_label(condition, name, by_condition) for condition, name in groups], fontsize=7.5)
    axis.set_xlim(-0.6, len(groups) - 0.4)
    axis.set_ylabel("difference (paired)", fontsize=9)
    axis.tick_params(axis="y", labelsize=8)
    axis.grid(axis="y", color="#dddddd", linewidth=0.6)
    _honest_limits(axis, by_condition, groups)


def _group_label(condition: str, name: str, by_condition: dict) -> str:
    later, earlier = name.split(" - ")
    verdict = by_condition[condition]["differences"][name]["verdict"] or "no verdict"
    verdict = verdict.replace("no resolvable ", "no resolvable\n")  # narrower than the column
    return f"{later}\n− {earlier}\n{condition} labels\n{verdict}"


def _honest_limits(axis, by_condition: dict, groups: list[tuple[str, str]]) -> None:
    """Limits that hold 0, every seed's difference and every interval whole, with a margin."""
    values = [0.0]
    for condition, name in groups:
        entry = by_condition[condition]["differences"][name]
        values += list(entry["values"]) + (list(entry["ci95"]) if entry["ci95"] else [])
    low, high = min(values), max(values)
    margin = max((high - low) * 0.08, 1e-3)
    axis.set_ylim(low - margin, high + margin)


def _legend(figure, spare_axis, seeds: list[int]) -> None:
    from matplotlib.lines import Line2D

    handles = _seed_handles(seeds, marker="o", linestyle="")
    handles += [
        Line2D([], [], marker="D", color=colour, label=f"mean, 95 % interval: {verdict}")
        for verdict, colour in VERDICT_COLOURS.items()
    ]
    handles.append(
        Line2D([], [], marker="D", color=NO_VERDICT, markerfacecolor="white", label="no verdict (runs did not learn)")
    )
    if spare_axis is not None:
        spare_axis.legend(handles=handles, loc="center", fontsize=9, frameon=False)
    else:
        figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)


def curves_chart(record: dict) -> dict[str, bytes]:
    """Validation curves of every run: ``{"png": ..., "svg": ...}``."""
    from matplotlib.lines import Line2D

    study, runs = record["study"], record["runs"]
    seeds = sorted(study["seeds"])
    methods = [method for method in study["methods"]]
    conditions = study["conditions"]
    figure = new_figure((3.6 * len(methods), 2.9 * len(conditions) + 0.9))
    axes = figure.subplots(len(conditions), len(methods), squeeze=False, sharex=True, sharey=True)
    for row, condition in enumerate(conditions):
        for column, method in enumerate(methods):
            axis = axes[row][column]
            for run in runs:
                if (run["condition"], run["method"]) != (condition, method):
                    continue
                colour = _seed_colour(seeds, run["seed"])
                for key, style in (("miou", "-"), ("boundary_miou", "--")):
                    points = [(row_["step"], row_[key]) for row_ in run["evals"] if row_.get(key) is not None]
                    if points:
                        axis.plot(*zip(*points, strict=True), style, color=colour, linewidth=1.2)
            axis.set_title(f"{method}, {condition} labels", fontsize=9)
            axis.set_ylim(0.0, 1.0)
            axis.grid(color="#e5e5e5", linewidth=0.6)
            axis.tick_params(labelsize=8)
            if column == 0:
                axis.set_ylabel("validation", fontsize=9)
            if row == len(conditions) - 1:
                axis.set_xlabel("training step", fontsize=9)
    handles = _seed_handles(seeds)
    handles += [
        Line2D([], [], color="black", linestyle="-", label="mIoU"),
        Line2D([], [], color="black", linestyle="--", label="boundary IoU"),
    ]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    figure.suptitle("nsegaug study: validation curves of every run", fontsize=11)
    return figure_bytes(figure, bottom_legend=True)
