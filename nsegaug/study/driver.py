"""A study from start to end: the record of its description, the data units, the trainings, the outputs; and
the dry run, which prints the plan and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..storage import write_bytes_atomic
from .plan import Layout, Unit, plan_units
from .report import OUTPUTS, study_record, write_outputs
from .run import UNITS_LOG, StudyError, UnitLog, run_units, thread_environment, threads_per_run
from .spec import StudySpec

STUDY_RECORD = "study.json"


def run_study(spec: StudySpec, out: Path, parallel: int, say: Callable[[str], None]) -> dict:
    """Run every unit not finished yet (data first, then the trainings, ``parallel`` at a time), then write the
    outputs; returns results.json's record. Raises StudyError naming the units that failed."""
    out = Path(out)
    units = plan_units(spec, out, threads_per_run(parallel))
    out.mkdir(parents=True, exist_ok=True)
    record = {"study": spec.to_dict(), "commands": [unit.shell() for unit in units]}
    write_bytes_atomic(out / STUDY_RECORD, (json.dumps(record, indent=2) + "\n").encode("utf-8"), durable=False)
    layout, log = Layout(out), UnitLog(out / UNITS_LOG)
    stages = [
        [unit for unit in units if unit.kind == "noise"],
        [unit for unit in units if unit.kind == "generate"],
        [unit for unit in units if unit.kind == "train"],
    ]
    for number, stage in enumerate(stages):
        if not stage:
            continue
        failures = run_units(stage, parallel, log, layout.log, say)
        if failures:
            later = " (the later steps need it: not run)" if number < len(stages) - 1 else ""
            raise StudyError(f"{len(failures)} unit(s) failed{later}:\n" + "\n".join(failures))
    results = study_record(spec, units, out, thread_environment(threads_per_run(parallel)))
    write_outputs(out, results)
    say("wrote " + ", ".join(str(out / name) for name in OUTPUTS))
    return results


def plan_text(spec: StudySpec, units: list[Unit], parallel: int) -> str:
    """The dry run's plan: every command, in order, with the environment the trainings get."""
    trainings = [unit for unit in units if unit.kind == "train"]
    environment = " ".join(f"{key}={value}" for key, value in thread_environment(threads_per_run(parallel)).items())
    lines = [
        f"study: {', '.join(spec.methods)} x {', '.join(spec.conditions)} labels x seeds "
        f"{', '.join(map(str, spec.seeds))}",
        f"{len(units) - len(trainings)} data command(s), then {len(trainings)} training(s), {parallel} at a time, "
        f"each with {environment}:",
        "",
        *(unit.shell() for unit in units),
    ]
    return "\n".join(lines)
