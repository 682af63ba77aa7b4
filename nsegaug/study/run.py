"""Running a study's units: each one a real ``nsegaug`` process, skipped when finished, resumed when interrupted.

A unit's state is read from its own folder, never from a record of the
study: a training is finished when its ``metrics.json`` exists (and its
config is the one the study asks for), interrupted when it has ``last.pt``
(rerun with ``--resume``); a ``noise`` or ``generate`` output is finished
when its metadata says complete, interrupted otherwise (``--resume``). So a
study killed at any moment, even with SIGKILL, finishes on a rerun without
redoing a finished unit. ``OUT/units.jsonl`` logs what each invocation did
with each unit (skip, start, resume, done, failed).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from ..cpus import available_cpus
from ..errors import NsegaugError, UsageError
from ..storage import public_text
from .plan import Unit

UNITS_LOG = "units.jsonl"
METRICS = "metrics.json"
LAST = "last.pt"
TRAIN_CONFIG = "config.json"


class StudyError(NsegaugError):
    """A unit failed; the message names its log."""


# --- how a unit runs: threads, device, environment ----------------------------------------------------------------


def threads_per_run(parallel: int) -> int:
    """CPU threads each of ``parallel`` runs side by side may use: the CPUs this process may use, shared out."""
    return max(1, available_cpus() // max(1, parallel))


def thread_environment(threads: int) -> dict[str, str]:
    """How a unit's process is told its number of CPU threads. ``nsegaug train`` has no option for it, so the
    environment that torch, OpenMP and MKL read at start; the one place to change if train gains one."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def slot_environment(slot: int, parallel: int, unit: Unit) -> dict[str, str]:
    """With several CUDA trainings at once, each on a GPU of its own (slot k takes the k-th visible GPU)."""
    if parallel < 2 or unit.kind != "train" or "cuda" not in _option(unit.argv, "--device"):
        return {}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = [gpu.strip() for gpu in visible.split(",")] if visible else [str(index) for index in range(parallel)]
    return {"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]}


def _option(argv: Sequence[str], name: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else ""


def _die_with_parent() -> None:
    # Linux: a unit stops when the study process dies, even by SIGKILL, so that a rerun never meets a training
    # still running in its folder. Elsewhere it runs on, and the rerun's train refuses the held folder.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# --- a unit's state -----------------------------------------------------------------------------------------------


def unit_state(unit: Unit) -> str:
    """``done`` (skip), ``resume`` (go on from where it stopped), ``restart`` (a start that saved nothing yet)
    or ``new``; refuses a folder that holds another finished run."""
    return train_state(unit) if unit.kind == "train" else job_state(unit)


def train_state(unit: Unit) -> str:
    out = unit.out
    if (out / METRICS).is_file():
        differences = finished_differences(unit)
        if differences:
            raise UsageError(
                f"{out} holds a finished training with other settings ({'; '.join(differences)}): remove it, or "
                "give the study another output folder"
            )
        return "done"
    if (out / LAST).is_file():
        return "resume"
    return "restart" if out.is_dir() and any(out.iterdir()) else "new"


def finished_differences(unit: Unit) -> list[str]:
    """What differs between a finished training's config and the one ``unit`` asks for (its length included)."""
    import click

    from ..cli.train import config_of
    from ..train.config import read_config, result_differences

    try:
        saved, wanted = read_config(unit.out), config_of(list(unit.argv[2:]))
    except click.ClickException as error:  # its manifest is gone, say
        raise UsageError(f"{unit.out}: cannot check the finished training ({error.format_message()})") from error
    differences = result_differences(saved, wanted)
    for name in ("epochs", "iters"):
        if getattr(saved, name) != getattr(wanted, name):
            differences.append(f"{name}: {getattr(saved, name)!r} -> {getattr(wanted, name)!r}")
    return differences


def job_state(unit: Unit) -> str:
    from ..manifest import META_NAME, read_meta

    meta_path = unit.out / META_NAME
    if not meta_path.is_file():
        return "new"
    meta = read_meta(meta_path)
    if meta.command_line and comparable(meta.command_line) != comparable(unit.argv):
        raise UsageError(
            f"{unit.out} was made by another command ({' '.join(meta.command_line)}): remove it, or give the study "
            "another output folder"
        )
    return "done" if meta.complete else "resume"


def comparable(argv: Sequence[str]) -> list[str]:
    """A job's command line without what does not change its output (workers, quiet, resume)."""
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument in ("--jobs", "-j"):
            skip = True
        elif argument not in ("--quiet", "-q", "--resume"):
            kept.append(argument)
    return kept


# --- running ------------------------------------------------------------------------------------------------------


class UnitLog:
    """``OUT/units.jsonl``: one line per thing done to a unit, appended by any thread."""

    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()

    def add(self, unit: Unit, action: str, **extra) -> None:
        row = {"unit": unit.name, "action": action, "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        line = json.dumps({**row, **extra}) + "\n"
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)


def read_unit_log(path: Path) -> list[dict]:
    """The rows of a units log; a line cut short by a kill is left out."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def extra_flags(state: str) -> list[str]:
    return {"resume": ["--resume"], "restart": ["--overwrite"]}.get(state, [])


def run_unit(unit: Unit, environment: dict[str, str], log_file: Path, log: UnitLog) -> float | None:
    """Run ``unit`` unless it is done; its output appended to ``log_file``; the seconds it took (None: skipped)."""
    state = unit_state(unit)
    if state == "done":
        log.add(unit, "skip")
        return None
    argv = [*unit.argv, *extra_flags(state)]
    log.add(unit, "resume" if state == "resume" else "start", command=public_text(" ".join(argv)))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_file, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(f'{k}={v}' for k, v in environment.items())} {public_text(' '.join(argv))}\n")
        handle.flush()
        result = subprocess.run(
            [sys.executable, "-m", "nsegaug", *argv[1:]],
            env={**os.environ, **environment},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    seconds = round(time.perf_counter() - started, 2)
    if result.returncode != 0:
        log.add(unit, "failed", elapsed_s=seconds, exit=result.returncode)
        tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-6:]
        raise StudyError(f"{unit.name} failed (exit {result.returncode}); see {log_file}:\n  " + "\n  ".join(tail))
    log.add(unit, "done", elapsed_s=seconds)
    return seconds


def run_units(
    units: Sequence[Unit], parallel: int, log: UnitLog, log_file: Callable[[str], Path], say: Callable[[str], None]
) -> list[str]:
    """Run ``units`` ``parallel`` at a time, each with its share of the CPUs (and its GPU); the failures' messages.

    A failed unit does not stop the others: they are independent.
    """
    threads = threads_per_run(parallel)
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(parallel):
        slots.put(slot)
    failures: list[str] = []

    def work(unit: Unit) -> None:
        slot = slots.get()
        try:
            environment = {**thread_environment(threads), **slot_environment(slot, parallel, unit)}
            seconds = run_unit(unit, environment, log_file(unit.name), log)
            say(f"{unit.name}: " + ("finished before" if seconds is None else f"{seconds:.0f} s"))
        except NsegaugError as error:
            failures.append(str(error))
            say(f"{unit.name}: FAILED")
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max(1, parallel)) as pool:
        for future in [pool.submit(work, unit) for unit in units]:
            future.result()
    return failures
