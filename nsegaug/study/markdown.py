"""results.md and the headline (the console's closing lines), both drawn from results.json's record."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .analysis import ALL_METRICS, METRIC_NAMES, METRICS, method_order


def figure(entry: dict) -> str:
    """A paired difference as ``+0.0253 [-0.0528, +0.1033]`` (its mean and 95 % interval)."""
    if not entry["n"] or math.isnan(entry["mean"]):
        return "n/a"
    interval = "no interval" if entry["ci95"] is None else f"[{entry['ci95'][0]:+.4f}, {entry['ci95'][1]:+.4f}]"
    return f"{entry['mean']:+.4f} {interval}"


def primary_comparison(record: dict) -> tuple[str, str] | None:
    """(condition, difference name) of the study's primary comparison: the first method after the reference,
    minus the reference, on the first condition; None with a single method."""
    study = record["study"]
    order = method_order(study["methods"])
    return (study["conditions"][0], f"{order[1]} - {order[0]}") if len(order) > 1 else None


def headline(record: dict) -> list[str]:
    """The primary comparison in one line per metric (the primary metric first), then its warnings: what the
    console ends with and results.md opens with."""
    found = primary_comparison(record)
    if found is None:
        return ["one method: nothing to compare (the cells are in results.md)"]
    condition, name = found
    primary = record["study"].get("primary", "miou")
    metrics = [primary, *(metric for metric in ALL_METRICS if metric != primary)]
    entries = {metric: record["last"][metric][condition]["differences"][name] for metric in metrics}
    seeds = entries[primary]["n"]
    lines = [f"primary comparison: {name}, {condition} labels, last evaluation, {seeds} paired seed(s)"]
    for metric, entry in entries.items():
        mark = " (primary metric)" if metric == primary else ""
        lines.append(f"  {METRIC_NAMES[metric]}{mark}: {figure(entry)}: {entry['reading']}")
    seen: list[str] = []
    for metric, entry in entries.items():
        for warning in entry["warnings"]:
            text = f"{METRIC_NAMES[metric]}: {warning}" if warning.startswith("dominated") else warning
            if text not in seen:
                seen.append(text)
    lines += [f"  warning: {text}" for text in seen]
    return lines


def _cell(entry: dict | None, signed: bool = False) -> str:
    if entry is None:
        return "(pair)"
    if not entry["n"] or math.isnan(entry["mean"]):
        return "n/a"
    return f"{entry['mean']:{'+' if signed else ''}.4f} ± {entry['std']:.4f}"


def _interval(entry: dict) -> str:
    return "n/a" if entry["ci95"] is None else f"[{entry['ci95'][0]:+.4f}, {entry['ci95'][1]:+.4f}]"


def comparison_table(summary: dict, methods: Sequence[str]) -> str:
    """Per (metric, condition): every cell's mean ± std (a collapse-robust metric has none: it exists per pair),
    then one row per paired difference; each difference's warnings listed under the table."""
    order = method_order(methods)
    lines = [
        f"| metric | training labels | {' | '.join(order)} | difference (paired) | mean ± std | 95 % CI | reading |",
        "|---|---|" + "---:|" * len(order) + "---|---:|---:|---|",
    ]
    notes = []
    for metric in ALL_METRICS:
        for condition, entry in summary[metric].items():
            cells = entry["cells"]
            shown = " | ".join(_cell(cells[method] if cells else None) for method in order)
            for name, difference in entry["differences"].items():
                lines.append(
                    f"| {METRIC_NAMES[metric]} | {condition} | {shown} | {name} | {_cell(difference, True)} | "
                    f"{_interval(difference)} | {difference['reading']} |"
                )
                shown = " | ".join("" for _ in order)  # the cells once per (metric, condition)
                notes += [f"- {METRIC_NAMES[metric]}, {condition}, {name}: {text}" for text in difference["warnings"]]
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def collapse_section(record: dict) -> list[str]:
    """Per method the collapse rate, then per run the classes it lost."""
    rates, runs = record["collapse"], record["runs"]
    conditions = list(rates["by_cell"])
    lines = [
        f"A lost class: {record['definitions']['lost_class']}.",
        "",
        "| method | " + " | ".join(f"{condition} labels" for condition in conditions) + " | all |",
        "|---|" + "---:|" * (len(conditions) + 1),
    ]
    for method, total in rates["by_method"].items():
        cells = [rates["by_cell"][condition][method] for condition in conditions]
        lines.append(f"| {method} | " + " | ".join(_rate(cell) for cell in [*cells, total]) + " |")
    lost = [run for run in runs if run["convergence"]["lost_classes"]]
    lines += ["", "Runs that lost a class:" if lost else "No run lost a class.", ""]
    if lost:
        lines += ["| run | classes lost | their IoU | mIoU |", "|---|---|---|---:|"]
        for run in lost:
            classes = run["convergence"]["lost_classes"]
            ious = ", ".join(
                f"{run['iou'][index]:.3f}" if run["iou"][index] is not None else "n/a" for index in classes
            )
            lines.append(
                f"| {run['condition']} {run['method']} seed {run['seed']} | {', '.join(map(str, classes))} | "
                f"{ious} | {run['miou']:.4f} |"
            )
        lines.append("")
    return lines


def _rate(cell: dict) -> str:
    return "n/a" if cell["rate"] is None else f"{cell['collapsed']} of {cell['runs']} runs"


def convergence_table(runs: Sequence[dict]) -> str:
    lines = [
        "| run | final mIoU | change over the last quarter | plateau | classes learned | learned |",
        "|---|---:|---:|---|---|---|",
    ]
    for run in runs:
        verdict = run["convergence"]
        change = verdict["relative_change"]
        present, lost = verdict["classes_present"], verdict["lost_classes"]
        classes = f"{present - len(lost)} of {present}" + (f" (lost: {', '.join(map(str, lost))})" if lost else "")
        plateau = {True: "yes", False: "NO", None: "n/a"}[verdict["plateau"]]
        learned = {True: "yes", False: "NO", None: "n/a"}[verdict["learned"]]
        lines.append(
            f"| {run['condition']} {run['method']} seed {run['seed']} | {run['miou']:.4f} | "
            f"{'n/a' if change is None else f'{100 * change:.2f} %'} | {plateau} | {classes} | {learned} |"
        )
    return "\n".join(lines) + "\n"


def code_words(code: dict) -> str:
    """A code version in words: ``nsegaug 0.1.0, commit 0f2d1df4e5a6 (uncommitted changes)``."""
    commit = code.get("commit")
    where = f"commit {commit[:12]}{' (uncommitted changes)' if code.get('dirty') else ''}" if commit else "no commit"
    return f"nsegaug {code.get('nsegaug')}, {where}"


def code_line(record: dict) -> str:
    """Which code ran the units, and which wrote this report."""
    code = record.get("code")
    if not code:
        return "not recorded (the study ran before nsegaug recorded it)"
    if code.get("source"):  # documented at the time, not recorded by the study
        line = f"{code_words(code)} ({code['source']})"
    else:
        ran = "; ".join(code_words(seen) for seen in code.get("units_ran_with", [])) or "not recorded"
        line = f"units ran with {ran}; report by {code_words(code)}"
    if record.get("rendered_by"):
        line += f"; rendered again by {code_words(record['rendered_by'])}"
    return line


def units_table(commands: Sequence[dict]) -> list[str]:
    lines = ["| unit | first started (UTC) | finished (UTC) | wall s | invocations |", "|---|---|---|---:|---:|"]
    for entry in commands:
        wall = "n/a" if entry.get("wall_s") is None else f"{entry['wall_s']:.0f}"
        lines.append(
            f"| {entry['name']} | {entry.get('started') or 'n/a'} | {entry.get('finished') or 'n/a'} | {wall} | "
            f"{len(entry.get('invocations', [])) or 'n/a'} |"
        )
    return lines


def results_markdown(record: dict) -> str:
    study, definitions, methods = record["study"], record["definitions"], record["study"]["methods"]
    lines = [
        "# Study: " + " vs ".join(study["methods"]),
        "",
        f"- conditions: {', '.join(study['conditions'])}; seeds {', '.join(map(str, study['seeds']))}; "
        f"validation labels as given; primary metric {METRIC_NAMES[study.get('primary', 'miou')]}",
        *data_lines(study),
        f"- code: {code_line(record)}",
        f"- machine: {record['machine']['processor']}, {record['machine']['cpus_available']} CPUs; devices "
        f"{', '.join(record['machine']['devices']) or 'n/a'}; torch {record['machine']['torch']}",
        f"- interval: {definitions['interval']}; smallest effect: {definitions['smallest_effect']}",
        f"- a run learned when {definitions['learned']}; {definitions['plateau']}",
        "",
        "## Headline",
        "",
        f"The primary comparison ({definitions['primary_comparison']}):",
        "",
        "```text",
        *record["headline"],
        "```",
        "",
        "## At the last evaluation (primary)",
        "",
        comparison_table(record["last"], methods),
        "## Class collapse",
        "",
        *collapse_section(record),
        f"The collapse-robust metrics ({definitions['learned_in_both']}) are in the tables above; a difference "
        f"is dominated by collapse when {definitions['collapse_dominated']}.",
        "",
        "## At the reference run's best evaluation (secondary)",
        "",
        definitions["baseline_best"] + ".",
        "",
        comparison_table(record["baseline_best"], methods),
    ]
    if "noise_cost" in record:
        lines += noise_cost_section(record["noise_cost"])
    lines += [
        "## Convergence (reported; no run is left out)",
        "",
        convergence_table(record["runs"]),
        "## Units, in order, with their clock times",
        "",
        *units_table(record["commands"]),
        "",
        "Environment of each: " + " ".join(f"{key}={value}" for key, value in record["environment"].items()),
        "",
        "```bash",
        *(entry["command"] for entry in record["commands"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def data_lines(study: dict) -> list[str]:
    """Where the noisy labels and the strength came from, when the study was told (not its defaults)."""
    from .params import describe

    lines = []
    if study.get("noisy_labels"):
        lines.append(f"- noisy labels: {study['noisy_labels']} (given, not made by nsegaug noise)")
    if study.get("params_sources"):
        lines.append(f"- strength: {describe(study['params_sources'])}")
    return lines


def noise_cost_section(noise_cost: dict) -> list[str]:
    lines = ["## What the noise cost (noisy minus clean, paired by seed, last evaluation)", ""]
    lines += ["| metric | method | mean ± std | 95 % CI | reading |", "|---|---|---:|---:|---|"]
    for metric in METRICS:
        for method, entry in noise_cost[metric].items():
            figures = f"{_cell(entry, True)} | {_interval(entry)}"
            lines.append(f"| {METRIC_NAMES[metric]} | {method} | {figures} | {entry['reading']} |")
    return [*lines, ""]
