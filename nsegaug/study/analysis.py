"""The study's numbers, as pure functions of the runs' records: cells, paired differences, readings, convergence.

A run record (an entry of results.json's ``runs``) holds ``condition``, ``method``,
``seed``, the final metrics (``miou``, ``boundary_miou``, ``band_miou``, with
``iou``, ``boundary_iou``, ``band_iou`` per class and ``class_pixels``) and
``evals``, the rows of its metrics.jsonl.

A reading is a verdict only where the runs behind it learned: a paired
difference of runs of which one did not learn (the study's own criterion,
[`convergence`][nsegaug.study.analysis.convergence]) is given with its numbers and **no verdict**, and says
why. Runs that did not reach a plateau, and differences made by a class that
one run of a pair lost ([`nsegaug.study.collapse`][nsegaug.study.collapse]), are given with a
warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import collapse
from .collapse import CLASS_IOU_FLOOR, ROBUST

METRICS = ("miou", "boundary_miou", "band_miou")
"""The per-run metrics compared: mIoU, boundary IoU, band mIoU (train's, in metrics.json)."""
ALL_METRICS = (*METRICS, *ROBUST)
"""Every metric a comparison is made in: the runs' own, then the collapse-robust ones (per pair)."""
METRIC_NAMES = {
    "miou": "mIoU",
    "boundary_miou": "boundary IoU",
    "band_miou": "band mIoU",
    "miou_learned": "mIoU, classes learned in both",
    "boundary_miou_learned": "boundary IoU, classes learned in both",
}
LEVEL = 0.95
"""The intervals' confidence level."""
PLATEAU_RELATIVE_CHANGE = 0.01
"""Plateau: the metric changed by less than this share of its value over the last quarter of the evaluations."""
LEARNED_SHARE = 0.5
"""A run learned (the task, not every class) when at least this share of the classes present in the validation
labels end above the IoU floor. A run below it gives no verdict to any comparison it is in."""


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


def paired_difference(values: dict[int, float], reference: dict[int, float], blocked: str | None = None) -> dict:
    """``values - reference`` seed by seed: the differences, mean, std, the 95 % interval (Student's t, n - 1
    degrees of freedom) and its half-width, the verdict and its reading. Seeds without a pair are left out.
    ``blocked``: why no verdict may be given (runs that did not learn); the numbers are still computed."""
    seeds = sorted(set(values) & set(reference))
    differences = [values[seed] - reference[seed] for seed in seeds]
    mean, std = mean_std(differences)
    entry = {"seeds": seeds, "values": differences, "mean": mean, "std": std, "n": len(seeds)}
    if len(seeds) > 1:
        half = t_quantile(len(seeds) - 1) * std / math.sqrt(len(seeds))
        entry.update(ci95=[mean - half, mean + half], half_width=half)
    else:
        entry.update(ci95=None, half_width=None)
    entry["verdict"] = None if blocked else verdict(entry)
    entry["reading"] = f"no verdict: {blocked}" if blocked else reading(entry)
    entry["warnings"] = []
    return entry


def verdict(entry: dict) -> str:
    """``above 0``, ``below 0``, ``no resolvable effect``, or ``no interval`` (fewer than 2 paired seeds)."""
    if entry.get("ci95") is None:
        return "no interval"
    low, high = entry["ci95"]
    return "above 0" if low > 0 else "below 0" if high < 0 else "no resolvable effect"


def reading(entry: dict) -> str:
    """The interval in words: above 0, below 0, or no resolvable effect and the smallest effect the study could
    have seen, which is the interval's half-width (an effect that large would have put the interval off 0
    about half the time)."""
    word = verdict(entry)
    if word == "no interval":
        return "no interval (fewer than 2 paired seeds)"
    if word != "no resolvable effect":
        return word
    return (
        f"no resolvable effect; the smallest effect this study could have seen, about half the time, is "
        f"±{entry['half_width']:.4f}"
    )


def cell(values: dict[int, float]) -> dict:
    """One (condition, method) cell: its values by seed, mean and std."""
    seeds = sorted(values)
    mean, std = mean_std([values[seed] for seed in seeds])
    return {"seeds": seeds, "values": [values[seed] for seed in seeds], "mean": mean, "std": std, "n": len(seeds)}


def eval_at(evals: Sequence[dict], step: int | None) -> dict | None:
    """The metrics.jsonl row of ``step`` (None: no evaluation there)."""
    return next((row for row in evals if row["step"] == step), None) if step is not None else None


def best_step(evals: Sequence[dict], metric: str) -> int | None:
    """The step of the evaluation with the highest ``metric`` (the first of equals)."""
    rows = [row for row in evals if row.get(metric) is not None]
    return max(rows, key=lambda row: row[metric])["step"] if rows else None


def snapshots(runs: Sequence[dict], condition: str, method: str, steps: dict | None = None) -> dict[int, dict]:
    """``{seed: snapshot}`` of one cell: the run record (its final metrics), or with ``steps`` ({seed: step})
    its metrics.jsonl row at that step; a seed without one is left out."""
    found = {}
    for run in runs:
        if (run["condition"], run["method"]) != (condition, method):
            continue
        snapshot = run if steps is None else eval_at(run.get("evals", []), steps.get(run["seed"]))
        if snapshot is not None:
            found[run["seed"]] = snapshot
    return found


def values_by_seed(runs: Sequence[dict], metric: str, condition: str, method: str, steps: dict | None = None) -> dict:
    """``{seed: value}`` of one cell: the final value, or with ``steps`` ({seed: step}) the value at that step."""
    found = snapshots(runs, condition, method, steps)
    return {seed: row[metric] for seed, row in found.items() if row.get(metric) is not None}


def reference_best_steps(runs: Sequence[dict], metric: str, condition: str, reference: str) -> dict[int, int]:
    """Per seed, the step at which the reference method's run of ``condition`` was best in ``metric``."""
    return {
        run["seed"]: step
        for run in runs
        if (run["condition"], run["method"]) == (condition, reference)
        and (step := best_step(run.get("evals", []), metric)) is not None
    }


def method_order(methods: Sequence[str]) -> list[str]:
    """The reference (baseline, or the first method) first, then the others as given."""
    reference = "baseline" if "baseline" in methods else methods[0]
    return [reference, *(method for method in methods if method != reference)]


def compare(
    runs: Sequence[dict],
    methods: Sequence[str],
    conditions: Sequence[str],
    at: str = "last",
    floor: float = CLASS_IOU_FLOOR,
) -> dict:
    """Per metric (``ALL_METRICS``) and condition: each method's cell and every method's paired difference
    against the reference (baseline, or the first method), then against each method before it. ``at``: "last"
    (the final evaluation) or "baseline_best" (every run at the step where the reference run of its seed was
    best in that metric; for a collapse-robust metric, in the metric it restricts). ``floor``: the IoU at or
    below which a class counts as lost."""
    order = method_order(methods)
    pairs = [(later, earlier) for index, later in enumerate(order) for earlier in order[:index]]
    summary: dict = {}
    for metric in ALL_METRICS:
        summary[metric] = {}
        base = ROBUST.get(metric, metric)
        for condition in conditions:
            steps = reference_best_steps(runs, base, condition, order[0]) if at == "baseline_best" else None
            cells = None
            if metric not in ROBUST:
                cells = {method: cell(values_by_seed(runs, metric, condition, method, steps)) for method in order}
            entry: dict = {"cells": cells, "differences": {}}
            if steps is not None:
                entry["steps"] = steps
            for later, earlier in pairs:
                found = [_paired_runs(runs, condition, method, steps) for method in (later, earlier)]
                difference = _difference(metric, *found, floor, (later, earlier))
                # Whether a run learned is judged at the evaluation compared: a run that learned by its end
                # may not have by the baseline's best step, and its value there supports no verdict.
                involved = [
                    (run, convergence(run, floor, snapshot=snapshot))
                    for cell_runs in found
                    for seed, (run, snapshot) in cell_runs.items()
                    if seed in difference["seeds"]
                ]
                _judge(difference, involved, at)
                entry["differences"][f"{later} - {earlier}"] = difference
            summary[metric][condition] = entry
    return summary


def _paired_runs(runs: Sequence[dict], condition: str, method: str, steps: dict | None) -> dict[int, tuple]:
    """``{seed: (run, snapshot)}`` of one cell (see [`snapshots`][nsegaug.study.analysis.snapshots])."""
    records = {run["seed"]: run for run in runs if (run["condition"], run["method"]) == (condition, method)}
    return {seed: (records[seed], snapshot) for seed, snapshot in snapshots(runs, condition, method, steps).items()}


def _difference(metric: str, later: dict, earlier: dict, floor: float, names: tuple[str, str]) -> dict:
    """One paired difference of ``metric`` between two cells (``{seed: (run, snapshot)}``); with, per pair, what
    class collapse did. The classes judged are those present in the validation labels by both runs' records."""
    seeds = sorted(set(later) & set(earlier))
    present = {
        seed: sorted(set(collapse.present_classes(later[seed][0])) & set(collapse.present_classes(earlier[seed][0])))
        for seed in seeds
    }
    first, second = {seed: later[seed][1] for seed in seeds}, {seed: earlier[seed][1] for seed in seeds}
    if metric in ROBUST:
        found = {seed: collapse.robust_pair(metric, first[seed], second[seed], present[seed], floor) for seed in seeds}
        kept = {seed: pair for seed, pair in found.items() if pair and None not in pair["values"]}
        entry = paired_difference(
            {seed: pair["values"][0] for seed, pair in kept.items()},
            {seed: pair["values"][1] for seed, pair in kept.items()},
        )
        entry["classes"] = {seed: pair["classes"] for seed, pair in kept.items()}
        unrecorded = [seed for seed in seeds if found[seed] is None]
        if unrecorded:
            entry["warnings"].append(f"seed(s) {_list(unrecorded)} left out: no per-class values recorded there")
        none_learned = [seed for seed in seeds if found[seed] is not None and seed not in kept]
        if none_learned:
            entry["warnings"].append(f"seed(s) {_list(none_learned)} left out: no class learned by both runs")
        return entry
    entry = paired_difference(
        {seed: row[metric] for seed, row in first.items() if row.get(metric) is not None},
        {seed: row[metric] for seed, row in second.items() if row.get(metric) is not None},
    )
    one_sided = {}
    for seed in entry["seeds"]:
        found = collapse.one_sided(metric, first[seed], second[seed], present[seed], floor)
        if found:
            lost = {names[0]: found.pop("lost_by_first"), names[1]: found.pop("lost_by_second")}
            one_sided[seed] = {"lost_only_by": {name: classes for name, classes in lost.items() if classes}, **found}
    entry["collapse"] = {"pairs": one_sided, "dominated": collapse.dominated(one_sided, entry["values"])}
    if entry["collapse"]["dominated"]:
        entry["warnings"].append("dominated by class collapse: " + _one_sided_words(one_sided, metric))
    return entry


def _one_sided_words(pairs: dict, metric: str) -> str:
    parts = []
    for seed, pair in sorted(pairs.items()):
        lost = " and ".join(
            f"class {_list(classes)} lost by {name} only" for name, classes in pair["lost_only_by"].items()
        )
        parts.append(f"seed {seed}: {lost}, {pair['contribution']:+.4f} of the pair's {pair['difference']:+.4f}")
    robust = {"miou": "miou_learned", "boundary_miou": "boundary_miou_learned"}.get(metric)
    return "; ".join(parts) + (f" (see {METRIC_NAMES[robust]})" if robust else "")


def _judge(entry: dict, involved: Sequence[tuple[dict, dict]], at: str = "last") -> None:
    """Withhold the verdict of ``entry`` when a run behind it did not learn, or when whether it learned cannot be
    judged (no per-class IoU recorded: a run that learned nothing could be behind the difference); warn of runs
    without a plateau. ``involved``: each run with its [`convergence`][nsegaug.study.analysis.convergence] verdict,
    judged at the evaluation compared (``at``)."""
    judged = {id(run): verdict for run, verdict in involved}
    involved = [run for run, _ in involved]
    not_learned = [run for run in involved if judged[id(run)]["learned"] is False]
    if not_learned:
        # Runs that learned nothing have no plateau or collapse worth a warning: the reading says all there is.
        where = "" if at == "last" else " by the evaluation compared"
        entry.update(verdict=None, warnings=[])
        entry["reading"] = (
            f"no verdict: {len(not_learned)} of {len(involved)} runs did not learn{where} (fewer than half of the "
            f"classes in the validation labels above IoU {judged[id(not_learned[0])]['floor']:g})"
        )
        return
    unknown = [run for run in involved if judged[id(run)]["learned"] is None]
    if unknown:
        why = f"learning not judged for {len(unknown)} of {len(involved)} runs ({_names(unknown)}: no per-class IoU)"
        entry.update(verdict=None, reading=f"no verdict: {why}")
        entry["warnings"].append(why)
    still = [run for run in involved if judged[id(run)]["plateau"] is False]
    if still:
        entry["warnings"].append(
            f"{len(still)} of {len(involved)} runs had not reached a plateau ({_names(still)}): longer training may "
            "change this difference"
        )
    unjudged = [run for run in involved if judged[id(run)]["plateau"] is None]
    if unjudged:
        entry["warnings"].append(f"convergence not judged for {len(unjudged)} runs (fewer than 2 evaluations)")


def _names(runs: Sequence[dict]) -> str:
    return ", ".join(f"{run['method']} seed {run['seed']}" for run in runs)


def _list(values: Sequence) -> str:
    return ", ".join(str(value) for value in values)


def condition_effects(runs: Sequence[dict], methods: Sequence[str], floor: float = CLASS_IOU_FLOOR) -> dict:
    """Per metric and method, noisy minus clean, paired by seed: what the noise cost that method."""
    judged = {id(run): convergence(run, floor) for run in runs}
    effects: dict = {}
    for metric in METRICS:
        effects[metric] = {}
        for method in methods:
            entry = paired_difference(
                values_by_seed(runs, metric, "noisy", method), values_by_seed(runs, metric, "clean", method)
            )
            involved = [run for run in runs if run["method"] == method and run["seed"] in entry["seeds"]]
            _judge(entry, [(run, judged[id(run)]) for run in involved])
            effects[metric][method] = entry
    return effects


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


def classes_learned(run: dict, floor: float = CLASS_IOU_FLOOR) -> dict:
    """Which classes present in the validation labels the run ends without (IoU at or below ``floor``), and
    whether it learned the task: at least ``LEARNED_SHARE`` of them above the floor (None: no class judged)."""
    present = collapse.present_classes(run)
    lost = collapse.lost_classes(run["iou"], present, floor) if run.get("iou") is not None else []
    # Without per-class IoU nothing says what was learned (not: that every class was).
    share = (len(present) - len(lost)) / len(present) if present and run.get("iou") is not None else None
    return {
        "floor": floor,
        "classes_present": len(present),
        "lost_classes": lost,
        "every_class_learned": not lost,
        "learned_share": share,
        "learned": None if share is None else share >= LEARNED_SHARE,
    }


def convergence(run: dict, floor: float = CLASS_IOU_FLOOR, metric: str = "miou", snapshot: dict | None = None) -> dict:
    """A run's convergence verdict: plateau of ``metric`` (over its whole curve), the classes it lost and whether
    it learned at all, at its end or at ``snapshot`` (one of its metrics.jsonl rows: the evaluation compared).
    A run that did not learn withholds the verdict of every comparison it is in; one without a plateau warns."""
    values = [row.get(metric) for row in run.get("evals", [])]
    at = run if snapshot is None else {**run, "iou": snapshot.get("iou")}
    return {"metric": metric, **plateau(values), **classes_learned(at, floor)}
