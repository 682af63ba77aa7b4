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

from .._files.local import open_own
from .._resources.cpus import available_cpus
from ..errors import NsegaugError, RunRefused, StorageError
from ..storage import public_text
from .plan import Unit
from .provenance import current_code

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
            raise RunRefused(
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

    from ..options.train import config_of
    from ..train.config import read_config, result_differences

    try:
        saved, wanted = read_config(unit.out), config_of(list(unit.argv[2:]))
    except click.ClickException as error:  # its manifest is gone, say
        raise RunRefused(f"{unit.out}: cannot check the finished training ({error.format_message()})") from error
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
        raise RunRefused(
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

# Exit statuses of a unit stopped by Ctrl-C or SIGTERM: nsegaug's own (130, 143), or the signal itself when it
# came before Python's handler was in place.
INTERRUPTED_EXITS = (130, 143, -signal.SIGINT, -signal.SIGTERM)
# How long a unit has to stop after Ctrl-C (a training saves nothing more, a job records its state) before it
# is terminated, then killed.
STOP_GRACE_S = 20.0


class UnitInterrupted(NsegaugError):
    """A unit stopped by Ctrl-C or SIGTERM, or not started because the study was stopping (not a failure: a
    rerun resumes it)."""

    def __init__(self, message: str, started: bool = True) -> None:
        super().__init__(message)
        self.started = started


class UnitLog:
    """``OUT/units.jsonl``: one line per thing done to a unit, appended by any thread."""

    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()

    def add(self, unit: Unit, action: str, **extra) -> None:
        row = {"unit": unit.name, "action": action, "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        line = json.dumps({**row, **extra}) + "\n"
        with self.lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with _append(self.path) as handle:
                    handle.write(line)
            except OSError as error:  # a full disk: name the log, not "?"
                raise StorageError.from_os_error(error, self.path, "cannot write the units log") from error


def _append(path: Path):
    """A text stream appending to a file of the study's own (its units log, a unit's log): never through a link."""
    return open(open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", encoding="utf-8")


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


def unit_argv(unit: Unit, state: str) -> list[str]:
    """The command that runs ``unit`` from ``state``. A training resumes with its own recorded values, which
    ``train --resume`` takes without ``--params`` (the file set them when the run started)."""
    argv = list(unit.argv)
    if unit.kind == "train" and state == "resume" and "--params" in argv:
        at = argv.index("--params")
        del argv[at : at + 2]
    return [*argv, *extra_flags(state)]


class Runner:
    """The unit processes running now, and the stop: after `stop` no unit starts, and the running ones are
    asked to stop as Ctrl-C asks them (SIGINT), then terminated, then killed."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: Sequence[str], **popen) -> subprocess.Popen | None:
        """The started process of unit ``name``, or None once a stop was asked (checked under the same lock as
        the stop, so no unit starts after it)."""
        with self._lock:
            if self.stopping.is_set():
                return None
            process = subprocess.Popen(list(argv), **popen)
            self._running[name] = process
            return process

    def done(self, name: str) -> None:
        with self._lock:
            self._running.pop(name, None)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Start nothing more; SIGINT to every running unit (a terminal's Ctrl-C reached them already; a SIGINT
        sent to the study alone did not), then SIGTERM and SIGKILL to those still running after ``grace_s``."""
        with self._lock:
            self.stopping.set()
            running = list(self._running.values())
        for sent, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, grace_s / 2), (signal.SIGKILL, None)):
            running = [process for process in running if process.poll() is None]
            for process in running:
                try:
                    process.send_signal(sent)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (wait or 0)
            try:
                for process in running:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()) if wait is not None else None)
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
                continue
            return


def run_unit(
    unit: Unit,
    environment: dict[str, str],
    log_file: Path,
    log: UnitLog,
    runner: Runner | None = None,
    delegation: dict[str, str] | None = None,
) -> float | None:
    """Run ``unit`` unless it is done; its output appended to ``log_file``; the seconds it took (None: skipped).
    ``environment`` is shown in the log with the command; ``delegation`` (the study's
    [`child_environment`][nsegaug._files.lock.child_environment], which lets the unit hold a folder inside the
    study's) is passed too, not shown.

    Raises StudyError when it fails, UnitInterrupted when Ctrl-C (or SIGTERM) stopped it or the study stopped
    before it started."""
    runner = runner or Runner()
    state = unit_state(unit)
    if state == "done":
        log.add(unit, "skip")
        return None
    argv = unit_argv(unit, state)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with _append(log_file) as handle:
        process = runner.start(
            unit.name,
            [sys.executable, "-m", "nsegaug", *argv[1:]],
            env={**os.environ, **environment, **(delegation or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        if process is None:
            raise UnitInterrupted(f"{unit.name}: not started (the study was stopped)", started=False)
        command = public_text(" ".join(argv))
        log.add(unit, "resume" if state == "resume" else "start", command=command, code=current_code())
        handle.write(f"$ {' '.join(f'{k}={v}' for k, v in environment.items())} {command}\n")
        handle.flush()
        started = time.perf_counter()
        try:
            returncode = process.wait()
        finally:
            runner.done(unit.name)
    seconds = round(time.perf_counter() - started, 2)
    if returncode in INTERRUPTED_EXITS or (returncode != 0 and runner.stopping.is_set()):
        log.add(unit, "interrupted", elapsed_s=seconds, exit=returncode)
        raise UnitInterrupted(f"{unit.name}: interrupted (exit {returncode}); see {log_file}")
    if returncode != 0:
        log.add(unit, "failed", elapsed_s=seconds, exit=returncode)
        tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-6:]
        raise StudyError(f"{unit.name} failed (exit {returncode}); see {log_file}:\n  " + "\n  ".join(tail))
    log.add(unit, "done", elapsed_s=seconds)
    return seconds


def run_units(
    units: Sequence[Unit],
    parallel: int,
    log: UnitLog,
    log_file: Callable[[str], Path],
    say: Callable[[str], None],
    delegation: dict[str, str] | None = None,
) -> list[str]:
    """Run ``units`` ``parallel`` at a time, each with its share of the CPUs (and its GPU); the failures' messages.

    A failed unit does not stop the others: they are independent. Ctrl-C (KeyboardInterrupt in this thread)
    starts no further unit, stops the running ones (recorded as interrupted) and is raised again once they
    have stopped.
    """
    threads = threads_per_run(parallel)
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(parallel):
        slots.put(slot)
    failures: list[str] = []
    runner = Runner()

    def work(unit: Unit) -> None:
        slot = slots.get()
        try:
            environment = {**thread_environment(threads), **slot_environment(slot, parallel, unit)}
            seconds = run_unit(unit, environment, log_file(unit.name), log, runner, delegation)
            say(f"{unit.name}: " + ("finished before" if seconds is None else f"{seconds:.0f} s"))
        except UnitInterrupted as error:
            if not runner.stopping.is_set():  # stopped on its own (a signal to it alone): the stage cannot finish
                failures.append(str(error))
            say(f"{unit.name}: {'interrupted' if error.started else 'not started'}")
        except NsegaugError as error:
            failures.append(str(error))
            say(f"{unit.name}: FAILED")
        finally:
            slots.put(slot)

    pool = ThreadPoolExecutor(max(1, parallel))
    try:
        for future in [pool.submit(work, unit) for unit in units]:
            future.result()
    except KeyboardInterrupt:
        runner.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return failures
