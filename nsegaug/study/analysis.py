"""The study's numbers, as pure functions of the runs' records: cells, paired differences, readings, convergence.

A run record (see :mod:`nsegaug.study.report`) holds ``condition``, ``method``,
``seed``, the final metrics (``miou``, ``boundary_miou``, ``band_miou``, ``iou``
per class) and ``evals``, the rows of its metrics.jsonl.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METRICS = ("miou", "boundary_miou", "band_miou")
METRIC_NAMES = {"miou": "mIoU", "boundary_miou": "boundary IoU", "band_miou": "band mIoU"}
LEVEL = 0.95
# Plateau: the metric changed by less than this share of its value over the last quarter of the evaluations.
PLATEAU_RELATIVE_CHANGE = 0.01
# A class is learned when its final IoU is above this floor (a class never predicted has IoU 0; one predicted
# only here and there stays near it). Classes absent from the validation labels (IoU None) are not judged.
CLASS_IOU_FLOOR = 0.05


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 degrees of freedom); one value has spread 0, none is NaN."""
    values = [float(value) for value in values]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def t_quantile(df: int, level: float = LEVEL) -> float:
    """Student's t quantile of a two-sided ``level`` interval with ``df`` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def paired_difference(values: dict[int, float], reference: dict[int, float]) -> dict:
    """``values - reference`` seed by seed: the differences, mean, std, the 95 % interval (Student's t, n - 1
    degrees of freedom) and its half-width, and the plain reading. Seeds without a pair are left out."""
    seeds = sorted(set(values) & set(reference))
    differences = [values[seed] - reference[seed] for seed in seeds]
    mean, std = mean_std(differences)
    entry = {"seeds": seeds, "values": differences, "mean": mean, "std": std, "n": len(seeds)}
    if len(seeds) > 1:
        half = t_quantile(len(seeds) - 1) * std / math.sqrt(len(seeds))
        entry.update(ci95=[mean - half, mean + half], half_width=half)
    else:
        entry.update(ci95=None, half_width=None)
    entry["reading"] = reading(entry)
    return entry


def reading(entry: dict) -> str:
    """The interval in words: above 0, below 0, or no resolvable effect and the smallest effect the study could
    have seen, which is the interval's half-width (an effect that large would have put the interval off 0)."""
    if entry.get("ci95") is None:
        return "no interval (fewer than 2 paired seeds)"
    low, high = entry["ci95"]
    if low > 0:
        return "above 0"
    if high < 0:
        return "below 0"
    return f"no resolvable effect; the smallest effect this study could have seen is ±{entry['half_width']:.4f}"


def cell(values: dict[int, float]) -> dict:
    """One (condition, method) cell: its values by seed, mean and std."""
    seeds = sorted(values)
    mean, std = mean_std([values[seed] for seed in seeds])
    return {"seeds": seeds, "values": [values[seed] for seed in seeds], "mean": mean, "std": std, "n": len(seeds)}


def value_at(evals: Sequence[dict], step: int, metric: str) -> float | None:
    """The metric at the evaluation of ``step`` (None: no evaluation there)."""
    for row in evals:
        if row["step"] == step:
            return row.get(metric)
    return None


def best_step(evals: Sequence[dict], metric: str) -> int | None:
    """The step of the evaluation with the highest ``metric`` (the first of equals)."""
    rows = [row for row in evals if row.get(metric) is not None]
    return max(rows, key=lambda row: row[metric])["step"] if rows else None


def values_by_seed(runs: Sequence[dict], metric: str, condition: str, method: str, steps: dict | None = None) -> dict:
    """``{seed: value}`` of one cell: the final value, or with ``steps`` ({seed: step}) the value at that step."""
    values = {}
    for run in runs:
        if run["condition"] != condition or run["method"] != method:
            continue
        if steps is None:
            value = run.get(metric)
        else:
            step = steps.get(run["seed"])
            value = value_at(run.get("evals", []), step, metric) if step is not None else None
        if value is not None:
            values[run["seed"]] = value
    return values


def baseline_best_steps(runs: Sequence[dict], metric: str, condition: str, reference: str) -> dict[int, int]:
    """Per seed, the step at which the reference method's run of ``condition`` was best in ``metric``."""
    return {
        run["seed"]: best_step(run.get("evals", []), metric)
        for run in runs
        if run["condition"] == condition and run["method"] == reference and best_step(run.get("evals", []), metric)
    }


def compare(runs: Sequence[dict], methods: Sequence[str], conditions: Sequence[str], at: str = "last") -> dict:
    """Per metric and condition: each method's cell and every method's paired difference against the reference
    (baseline, or the first method), then against each method before it. ``at``: "last" (the final evaluation)
    or "baseline_best" (every run at the step where the reference run of its seed was best in that metric)."""
    reference = "baseline" if "baseline" in methods else methods[0]
    order = [reference, *(method for method in methods if method != reference)]
    pairs = [(later, earlier) for index, later in enumerate(order) for earlier in order[:index]]
    summary: dict = {}
    for metric in METRICS:
        summary[metric] = {}
        for condition in conditions:
            steps = baseline_best_steps(runs, metric, condition, reference) if at == "baseline_best" else None
            values = {method: values_by_seed(runs, metric, condition, method, steps) for method in order}
            entry = {"cells": {method: cell(values[method]) for method in order}, "differences": {}}
            if steps is not None:
                entry["steps"] = steps
            for later, earlier in pairs:
                entry["differences"][f"{later} - {earlier}"] = paired_difference(values[later], values[earlier])
            summary[metric][condition] = entry
    return summary


def condition_effects(runs: Sequence[dict], methods: Sequence[str]) -> dict:
    """Per metric and method, noisy minus clean, paired by seed: what the noise cost that method."""
    return {
        metric: {
            method: paired_difference(
                values_by_seed(runs, metric, "noisy", method), values_by_seed(runs, metric, "clean", method)
            )
            for method in methods
        }
        for metric in METRICS
    }


def plateau(values: Sequence[float], threshold: float = PLATEAU_RELATIVE_CHANGE) -> dict:
    """Whether a curve has flattened: the relative change from the last evaluation before its last quarter to
    the final one, |final - start| / |start|, below ``threshold``. Fewer than 2 evaluations: not judged (None)."""
    values = [float(value) for value in values if value is not None]
    if len(values) < 2:
        return {"relative_change": None, "plateau": None}
    quarter = max(1, math.ceil(len(values) / 4))
    start, final = values[-1 - quarter], values[-1]
    change = abs(final - start) / abs(start) if start else (0.0 if final == start else math.inf)
    return {"relative_change": change, "plateau": change < threshold}


def classes_learned(iou: Sequence[float | None], floor: float = CLASS_IOU_FLOOR) -> dict:
    """Whether every class present in the validation labels ended with IoU above ``floor``; those that did not."""
    unlearned = [index for index, value in enumerate(iou) if value is not None and value <= floor]
    return {"every_class_learned": not unlearned, "unlearned_classes": unlearned}


def convergence(evals: Sequence[dict], iou: Sequence[float | None], metric: str = "miou") -> dict:
    """A run's convergence verdict (reported, never used to leave a run out): plateau of ``metric`` and classes."""
    return {"metric": metric, **plateau([row.get(metric) for row in evals]), **classes_learned(iou)}
