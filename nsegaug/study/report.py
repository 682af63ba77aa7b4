"""A finished study's outputs: results.json (every run and every number), results.md (tables, readings, every
command), paired.png and curves.png."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..cpus import available_cpus
from ..storage import write_bytes_atomic
from . import analysis
from .analysis import METRIC_NAMES, METRICS
from .plan import Unit
from .run import read_unit_log
from .spec import StudySpec

OUTPUTS = ("results.json", "results.md", "paired.png", "curves.png")
EVAL_KEYS = ("step", "epoch", "miou", "boundary_miou", "band_miou", "pixel_acc", "iou", "train_loss", "elapsed_s")


def run_record(unit: Unit, log_rows: Sequence[dict]) -> dict:
    """One training's record from its run folder: final metrics, per-class IoU, curves, times, convergence."""
    metrics = json.loads((unit.out / "metrics.json").read_text(encoding="utf-8"))
    lines = (unit.out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    evals = [{key: row.get(key) for key in EVAL_KEYS} for row in map(json.loads, filter(None, lines))]
    mine = [row for row in log_rows if row["unit"] == unit.name]
    return {
        "condition": unit.condition,
        "method": unit.method,
        "seed": unit.seed,
        **{metric: metrics[metric] for metric in METRICS},
        "pixel_acc": metrics.get("pixel_acc"),
        "iou": metrics["iou"],
        "boundary_iou": metrics.get("boundary_iou"),
        "band_iou": metrics.get("band_iou"),
        "steps": metrics["steps"],
        "best": metrics.get("best"),
        "device": metrics.get("device"),
        "device_model": metrics.get("device_model"),
        "train_elapsed_s": metrics.get("train_elapsed_s"),
        # The invocation that finished it; a training resumed after a kill also ran in earlier ones.
        "wall_s": next((row["elapsed_s"] for row in reversed(mine) if row["action"] == "done"), None),
        "resumed": any(row["action"] == "resume" for row in mine),
        "evals": evals,
        "convergence": analysis.convergence(evals, metrics["iou"]),
        "run_dir": str(unit.out),
        "command": unit.shell(),
    }


def study_record(spec: StudySpec, units: Sequence[Unit], out: Path, environment: dict[str, str]) -> dict:
    """Everything results.json holds: the study, the machine, every command, every run and every comparison."""
    log_rows = read_unit_log(out / "units.jsonl")
    trains = [unit for unit in units if unit.kind == "train"]
    runs = [run_record(unit, log_rows) for unit in trains]
    record = {
        "study": spec.to_dict(),
        "machine": machine(runs),
        "environment": environment,
        "commands": [{"name": unit.name, "command": unit.shell(), "wall_s": _wall(unit, log_rows)} for unit in units],
        "definitions": {
            "interval": "95 % Student t interval of the paired differences (method minus reference, seed by seed), "
            "n - 1 degrees of freedom",
            "smallest_effect": "the interval's half-width: a true effect that large would have put the interval "
            "off 0 (about half the time)",
            "plateau": f"|final - value before the last quarter of evaluations| / value < "
            f"{analysis.PLATEAU_RELATIVE_CHANGE} (mIoU)",
            "every_class_learned": f"each class present in the validation labels ends with IoU > "
            f"{analysis.CLASS_IOU_FLOOR}",
            "baseline_best": "every run at the evaluation where the reference run of its seed and condition was "
            "best in that metric (secondary: early stopping on validation labels)",
        },
        "runs": runs,
        "last": analysis.compare(runs, spec.methods, spec.conditions, "last"),
        "baseline_best": analysis.compare(runs, spec.methods, spec.conditions, "baseline_best"),
    }
    if set(spec.conditions) == {"clean", "noisy"}:
        record["noise_cost"] = analysis.condition_effects(runs, spec.methods)
    return record


def _wall(unit: Unit, log_rows: Sequence[dict]) -> float | None:
    """The unit's wall time over the invocations that ran it to an end (a part cut by a kill is not known)."""
    times = [row["elapsed_s"] for row in log_rows if row["unit"] == unit.name and row["action"] == "done"]
    return round(sum(times), 2) if times else None


def machine(runs: Sequence[dict]) -> dict:
    import sys

    models = sorted({run["device_model"] for run in runs if run.get("device_model")})
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus_available": available_cpus(),
        "devices": models,
        "python": sys.version.split()[0],
        "torch": torch_version,
        "nsegaug": __version__,
    }


# --- results.md ---------------------------------------------------------------------------------------------------


def _cell(entry: dict, signed: bool = False) -> str:
    if not entry["n"] or math.isnan(entry["mean"]):
        return "n/a"
    return f"{entry['mean']:{'+' if signed else ''}.4f} ± {entry['std']:.4f}"


def _interval(entry: dict) -> str:
    return "n/a" if entry["ci95"] is None else f"[{entry['ci95'][0]:+.4f}, {entry['ci95'][1]:+.4f}]"


def comparison_table(summary: dict) -> str:
    """Per (metric, condition): every cell's mean ± std, then one row per paired difference."""
    order = list(next(iter(summary[METRICS[0]].values()))["cells"])
    lines = [
        f"| metric | training labels | {' | '.join(order)} | difference (paired) | mean ± std | 95 % CI | reading |",
        "|---|---|" + "---:|" * len(order) + "---|---:|---:|---|",
    ]
    for metric in METRICS:
        for condition, entry in summary[metric].items():
            cells = " | ".join(_cell(entry["cells"][method]) for method in order)
            for name, difference in entry["differences"].items():
                lines.append(
                    f"| {METRIC_NAMES[metric]} | {condition} | {cells} | {name} | {_cell(difference, True)} | "
                    f"{_interval(difference)} | {difference['reading']} |"
                )
                cells = " | ".join("" for _ in order)  # the cells once per (metric, condition)
    return "\n".join(lines) + "\n"


def convergence_table(runs: Sequence[dict]) -> str:
    lines = [
        "| run | final mIoU | change over the last quarter | plateau | every class learned |",
        "|---|---:|---:|---|---|",
    ]
    for run in runs:
        verdict = run["convergence"]
        change = verdict["relative_change"]
        classes = "yes" if verdict["every_class_learned"] else f"NO: class {verdict['unlearned_classes']}"
        plateau = {True: "yes", False: "NO", None: "n/a"}[verdict["plateau"]]
        lines.append(
            f"| {run['condition']} {run['method']} seed {run['seed']} | {run['miou']:.4f} | "
            f"{'n/a' if change is None else f'{100 * change:.2f} %'} | {plateau} | {classes} |"
        )
    return "\n".join(lines) + "\n"


def results_markdown(record: dict) -> str:
    study, definitions = record["study"], record["definitions"]
    seeds = ", ".join(map(str, study["seeds"]))
    lines = [
        "# Study: " + " vs ".join(study["methods"]),
        "",
        f"- conditions: {', '.join(study['conditions'])}; seeds {seeds}; validation labels as given",
        f"- machine: {record['machine']['processor']}, {record['machine']['cpus_available']} CPUs; devices "
        f"{', '.join(record['machine']['devices']) or 'n/a'}; torch {record['machine']['torch']}",
        f"- interval: {definitions['interval']}; smallest effect: {definitions['smallest_effect']}",
        "",
        "## At the last evaluation (primary)",
        "",
        comparison_table(record["last"]),
        "## At the reference run's best evaluation (secondary)",
        "",
        definitions["baseline_best"] + ".",
        "",
        comparison_table(record["baseline_best"]),
    ]
    if "noise_cost" in record:
        lines += ["## What the noise cost (noisy minus clean, paired by seed, last evaluation)", ""]
        lines += ["| metric | method | mean ± std | 95 % CI | reading |", "|---|---|---:|---:|---|"]
        for metric, by_method in record["noise_cost"].items():
            for method, entry in by_method.items():
                lines.append(
                    f"| {METRIC_NAMES[metric]} | {method} | {_cell(entry, True)} | {_interval(entry)} | "
                    f"{entry['reading']} |"
                )
        lines.append("")
    lines += [
        "## Convergence (reported; no run is left out)",
        "",
        f"Plateau: {definitions['plateau']}; every class learned: {definitions['every_class_learned']}.",
        "",
        convergence_table(record["runs"]),
        "## Commands, in order",
        "",
        "Environment of each: " + " ".join(f"{key}={value}" for key, value in record["environment"].items()),
        "",
        "```bash",
        *(entry["command"] for entry in record["commands"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_outputs(out: Path, record: dict) -> None:
    from .charts import curves_chart, paired_chart

    study = record["study"]
    write_bytes_atomic(out / "results.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"), durable=False)
    write_bytes_atomic(out / "results.md", results_markdown(record).encode("utf-8"), durable=False)
    methods = list(record["last"][METRICS[0]][study["conditions"][0]]["cells"])
    for name, picture in (
        ("paired.png", paired_chart(record["last"], methods, study["conditions"])),
        ("curves.png", curves_chart(record["runs"], methods, study["conditions"])),
    ):
        picture.save(out / f".{name}.tmp.png", optimize=True)
        (out / f".{name}.tmp.png").replace(out / name)
