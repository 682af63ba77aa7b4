"""A finished study's outputs: results.json (every run and every number), results.md (the headline, tables,
readings, class collapse, every command with its clock times), paired.png/svg and curves.png/svg.

results.json is the one record; results.md, the charts and the console's
closing lines are drawn from it, so the three say the same.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

from .._resources.cpus import available_cpus
from ..storage import write_bytes_atomic
from . import analysis, collapse
from .markdown import headline, results_markdown
from .plan import Unit
from .provenance import code_version, codes_seen, unit_times
from .run import read_unit_log
from .spec import DEFAULT_PRIMARY, StudySpec

OUTPUTS = ("results.json", "results.md", "paired.png", "paired.svg", "curves.png", "curves.svg")
EVAL_KEYS = (
    "step",
    "epoch",
    "miou",
    "boundary_miou",
    "band_miou",
    "pixel_acc",
    "iou",
    "boundary_iou",
    "band_iou",
    "train_loss",
    "elapsed_s",
)


def run_record(unit: Unit, log_rows: Sequence[dict], floor: float = collapse.CLASS_IOU_FLOOR) -> dict:
    """One training's record from its run folder: final metrics, per-class IoU, curves, times, convergence."""
    metrics = json.loads((unit.out / "metrics.json").read_text(encoding="utf-8"))
    lines = (unit.out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    evals = [{key: row.get(key) for key in EVAL_KEYS} for row in map(json.loads, filter(None, lines))]
    mine = [row for row in log_rows if row["unit"] == unit.name]
    record = {
        "condition": unit.condition,
        "method": unit.method,
        "seed": unit.seed,
        **{metric: metrics[metric] for metric in analysis.METRICS},
        "pixel_acc": metrics.get("pixel_acc"),
        "iou": metrics["iou"],
        "boundary_iou": metrics.get("boundary_iou"),
        "band_iou": metrics.get("band_iou"),
        "class_pixels": metrics.get("class_pixels"),
        "steps": metrics["steps"],
        "best": metrics.get("best"),
        "device": metrics.get("device"),
        "device_model": metrics.get("device_model"),
        "train_elapsed_s": metrics.get("train_elapsed_s"),
        # The invocation that finished it; a training resumed after a kill also ran in earlier ones.
        "wall_s": next((row["elapsed_s"] for row in reversed(mine) if row["action"] == "done"), None),
        "resumed": any(row["action"] == "resume" for row in mine),
        "evals": evals,
        "run_dir": str(unit.out),
        "command": unit.shell(),
    }
    record["convergence"] = analysis.convergence(record, floor)
    return record


def definitions(spec: dict) -> dict:
    """What the record's words mean, in the words results.md repeats."""
    floor = spec.get("collapse_iou", collapse.CLASS_IOU_FLOOR)
    return {
        "interval": "95 % Student t interval of the paired differences (method minus reference, seed by seed), "
        "n - 1 degrees of freedom",
        "smallest_effect": "the interval's half-width: a true effect that large would have put the interval "
        "off 0 about half the time (80 % power needs 1.25 to 1.45 times more)",
        "plateau": f"|final - value before the last quarter of evaluations| / value < "
        f"{analysis.PLATEAU_RELATIVE_CHANGE} (mIoU); a run without one warns",
        "lost_class": f"a class present in the validation labels that ends with IoU at or below {floor:g}",
        "learned": f"at least half of the classes present in the validation labels end above IoU {floor:g}; a "
        "comparison with a run that did not learn gives no verdict",
        "collapse_dominated": f"classes lost by one run of a pair only make more than "
        f"{collapse.DOMINANT_SHARE:.0%} of the paired differences (in absolute value)",
        "learned_in_both": "miou_learned and boundary_miou_learned: per pair, each run's mIoU (boundary IoU) over "
        "the classes both runs learned",
        "baseline_best": "every run at the evaluation where the reference run of its seed and condition was "
        "best in that metric, whether each run had learned judged at that evaluation too (secondary: early "
        "stopping on validation labels)",
        "primary_comparison": "the first method after the reference, minus the reference, on the first "
        "condition, at the last evaluation",
    }


def study_record(spec: StudySpec, units: Sequence[Unit], out: Path, environment: dict[str, str]) -> dict:
    """Everything results.json holds: the study, the code and machine, every command with its clock times,
    every run and every comparison."""
    log_rows = read_unit_log(out / "units.jsonl")
    runs = [run_record(unit, log_rows, spec.collapse_iou) for unit in units if unit.kind == "train"]
    commands = [{"name": unit.name, "command": unit.shell(), **unit_times(unit.name, log_rows)} for unit in units]
    code = {**code_version(), "units_ran_with": codes_seen(log_rows)}
    record = {"study": spec.to_dict(), "code": code, "machine": machine(runs), "environment": environment}
    return analyse({**record, "commands": commands, "runs": runs})


def analyse(record: dict) -> dict:
    """``record`` (study, code, machine, environment, commands, runs) with every number drawn from its runs:
    definitions, class collapse, both readings, the noise's cost and the headline. Pure: a committed
    results.json is rendered again with it, without training anything."""
    # A study recorded before it could name them ran with the defaults: say so in the record.
    study = {"primary": DEFAULT_PRIMARY, "collapse_iou": collapse.CLASS_IOU_FLOOR, **record["study"]}
    record = {**record, "study": study}
    runs, methods, conditions = record["runs"], study["methods"], study["conditions"]
    floor = study["collapse_iou"]
    for run in runs:
        run["convergence"] = analysis.convergence(run, floor)
    record = {key: value for key, value in record.items() if key not in ("last", "baseline_best", "noise_cost")}
    record["definitions"] = definitions(study)
    record["collapse"] = collapse.collapse_rates(runs, methods, conditions, floor)
    record["last"] = analysis.compare(runs, methods, conditions, "last", floor)
    record["baseline_best"] = analysis.compare(runs, methods, conditions, "baseline_best", floor)
    if set(conditions) == {"clean", "noisy"}:
        record["noise_cost"] = analysis.condition_effects(runs, methods, floor)
    record["headline"] = headline(record)
    first = ("study", "headline", "code", "rendered_by", "machine", "environment", "definitions", "commands", "runs")
    return {**{key: record[key] for key in first if key in record}, **record}


def machine(runs: Sequence[dict]) -> dict:
    import sys

    from .._version import __version__

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


def write_outputs(out: Path, record: dict, say: Callable[[str], None] | None = None) -> list[Path]:
    """results.json, results.md and the charts (where matplotlib is installed: else ``say`` says so); the
    paths written."""
    write_bytes_atomic(out / "results.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"), durable=False)
    write_bytes_atomic(out / "results.md", results_markdown(record).encode("utf-8"), durable=False)
    written = [out / "results.json", out / "results.md"]
    try:
        from .charts import curves_chart, paired_chart
    except ImportError as error:
        if say is not None:
            say(f"charts not drawn: {error}")
        return written
    for name, figure in (("paired", paired_chart(record)), ("curves", curves_chart(record))):
        for suffix, data in figure.items():
            write_bytes_atomic(out / f"{name}.{suffix}", data, durable=False)
            written.append(out / f"{name}.{suffix}")
    return written


def render_again(
    results: Path, out: Path | None = None, primary: str | None = None, code: dict | None = None
) -> list[Path]:
    """Render a study's results.json again with this version's analysis and report, from the runs it holds
    (nothing is trained): results.json, results.md and the charts, into ``out`` (default: beside it). The runs,
    commands, code and machine are kept as they were; ``rendered_by`` records the code that rendered it.

    For a study recorded before the study recorded them: ``primary``, the primary metric its pre-registration
    named; ``code``, the code version as documented at the time (with a ``source`` saying where)."""
    record = json.loads(Path(results).read_text(encoding="utf-8"))
    if primary is not None:
        record["study"] = {**record["study"], "primary": primary}
    if code is not None and not record.get("code"):
        record["code"] = code
    record = analyse({**record, "rendered_by": code_version()})
    return write_outputs(Path(out) if out is not None else Path(results).parent, record)
