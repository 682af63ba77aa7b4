"""The dry run's time estimate: a few real training steps in a temporary folder, removed afterwards.

The probe trains the study's model with its training options on a handful of
its training maps (linked, not copied, into the temporary folder), with the
CPU threads each run would get, and reads the seconds per step from the
run's own ``metrics.json``. The estimate is steps x seconds per step; data
preparation, evaluations and the online deformation's own cost are not in it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path

from .._files.label_folders import iter_label_files
from ..train.config import DEFAULT_EPOCHS
from .plan import plan_units
from .run import UnitLog, run_unit, thread_environment, threads_per_run
from .spec import StudySpec

LENGTH_KEYS = ("epochs", "iters", "eval_every", "checkpoint_every")


def count_maps(folder: str) -> int:
    return sum(1 for _ in iter_label_files(Path(folder)))


def steps_per_training(spec: StudySpec, train_maps: int) -> int:
    """Training steps of one run: --iters, else epochs x whole batches per epoch (train drops the last part)."""
    table = dict(spec.train)
    if table.get("iters") is not None:
        return int(table["iters"])
    return int(table.get("epochs", DEFAULT_EPOCHS)) * (train_maps // int(table.get("batch_size", 8)))


def _link_subset(source: Path, target: Path, count: int) -> None:
    """The first ``count`` label files of ``source`` linked under ``target``, at the same relative paths."""
    for index, key in enumerate(iter_label_files(source)):
        if index == count:
            break
        (target / key).parent.mkdir(parents=True, exist_ok=True)
        os.symlink((source / key).resolve(), target / key)


def probe_seconds_per_step(spec: StudySpec, steps: int, parallel: int) -> float:
    """Seconds per training step of the study's first method, measured over ``steps`` steps (the first, slower
    one included: a slight overestimate)."""
    batch = int(dict(spec.train).get("batch_size", 8))
    with tempfile.TemporaryDirectory(prefix="nsegaug-study-probe-") as folder:
        root = Path(folder)
        _link_subset(Path(spec.labels), root / "labels", max(batch, 2))
        _link_subset(Path(spec.val_labels), root / "val", 1)
        train = {key: value for key, value in spec.train if key not in LENGTH_KEYS}
        probe = dataclasses.replace(
            spec,
            labels=str(root / "labels"),
            val_labels=str(root / "val"),
            methods=(spec.methods[0],),
            seeds=(spec.seeds[0],),
            conditions=("clean",),
            generate=tuple({**dict(spec.generate), "copies": 1}.items()),
            noise=None,
            train=tuple({**train, "iters": steps}.items()),
        )
        log = UnitLog(root / "units.jsonl")
        environment = thread_environment(threads_per_run(parallel))
        for unit in plan_units(probe, root / "study"):
            run_unit(unit, environment, root / f"{unit.name}.log", log)
        metrics = json.loads((unit.out / "metrics.json").read_text(encoding="utf-8"))
    return metrics["train_elapsed_s"] / max(metrics["steps"], 1)


def estimate(trainings: int, steps: int, seconds_per_step: float, parallel: int) -> float:
    """Wall seconds of the trainings, ``parallel`` at a time, in waves."""
    return math.ceil(trainings / max(parallel, 1)) * steps * seconds_per_step
