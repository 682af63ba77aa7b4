"""A run, from start to end: `run_job` and the state a run carries (`Run`)."""

from __future__ import annotations

import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from .. import storage
from .._files import lock
from .._files.local import remove_made_folders
from ..errors import ManifestError, NsegaugError, StorageError
from ..manifest import META_NAME, RunMeta, write_meta
from ..storage import Location, join
from .backends import run_parallel
from .checks import check_folder, check_request
from .config import Log
from .folder import make_output_folder, prepare_output, sweep
from .job import JobSummary, MaskJob
from .manifest_log import ManifestLog
from .sources import count_masks, plan


@dataclass
class Run:
    """One run of a job: the job, the manifest it writes, its record, its summary, and where it reports."""

    job: MaskJob
    manifest_log: ManifestLog
    meta: RunMeta
    summary: JobSummary
    total: int | None  # masks in the label folder (None: a bucket, not listed twice)
    log: Log
    progress: bool
    started: float  # time.perf_counter() at the start: resume's checks are part of the run's time

    @property
    def out(self) -> Location:
        return self.job.config.out


def run_job(
    job: MaskJob,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    command_line: list[str] | None = None,
    log: Log = lambda message: print(message, file=sys.stderr),
) -> JobSummary:
    """Run ``job`` over its label folder; see `nsegaug._jobs` for the guarantees.

    Returns the summary; bad masks are counted in it (and stop the run with
    ``on_error="fail"``). Raises [`UsageError`][nsegaug.errors.UsageError] (a request that cannot be
    met), [`RunRefused`][nsegaug.errors.RunRefused] (refused by the state of the output
    folder before anything is written; [`FolderHeld`][nsegaug.errors.FolderHeld] while
    another run holds it, or a folder inside or around it), [`StorageError`][nsegaug.errors.StorageError] (the output
    folder failed: the run is recorded as failed where the folder still takes a write) or
    ``KeyboardInterrupt`` (recorded as interrupted).
    """
    started = time.perf_counter()
    storage.configure(job.config.storage_options)
    check_request(job, resume, overwrite)
    total = count_masks(job.config)
    made = make_output_folder(job.config.out)
    try:
        with lock.hold(job.config.out, job.kind, check_inside=False):
            names = list(storage.walk(job.config.out))  # listed once for every check of what the folder holds
            lock.refuse_held_inside(job.config.out, names)
            check_folder(job, resume, overwrite, names)
            done, manifest_log = prepare_output(job, resume, overwrite, log, names)
            made = []  # the run starts: its folder stays, whatever happens from here
            run = Run(job, manifest_log, _start_meta(job, command_line), JobSummary(), total, log, progress, started)
            try:
                with _caller_settings_kept(), _stopped_once():
                    return execute(run, done)
            finally:
                manifest_log.close()
    finally:
        # Refused: the folders made only to be held (inside another run's, say) are not left behind.
        remove_made_folders(made)


@contextmanager
def _stopped_once() -> Iterator[None]:
    """Ctrl-C stops a run once: the first press raises ``KeyboardInterrupt``; those after it, while the run ends
    (its workers or Dask cluster closing, its manifest sorted, its record written), are ignored, as cutting that
    short leaves a traceback and a record that still says "running". The caller's handler is back afterwards."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        None,
    ):
        yield
        return
    pressed = False

    def stop(signum, frame) -> None:
        nonlocal pressed
        if not pressed:
            pressed = True
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _start_meta(job: MaskJob, command_line: list[str] | None) -> RunMeta:
    config = job.config
    return RunMeta(
        kind=job.kind,
        parameters=job.parameters(),
        locations=config.locations(),
        command_line=command_line if command_line is not None else sys.argv,
        started=_now(),
        execution={"jobs": config.jobs, "backend": config.backend, "scheduler": config.scheduler},
        provenance=config.provenance,
    )


def execute(run: Run, done: set[str]) -> JobSummary:
    """Record the run, process the masks not ``done``, and end the run whatever happens (`finish_run`)."""
    run.summary.skipped = len(done)
    run.summary.outputs_name = f"{run.job.outputs_noun} written"
    _write_meta(run.out, run.meta)
    fault = None
    try:
        samples = (sample for sample in plan(run.job.config, run.log) if sample.label not in done)
        run.meta.status = run_masks(run, samples)
    except NsegaugError as error:  # the store failed, a scheduler went away: one line, the run failed
        run.meta.status, fault = "failed", error
    except Exception:
        run.meta.status = "failed"  # whatever it was, it was not an interruption
        raise
    finally:
        run.summary.elapsed = time.perf_counter() - run.started
        fault = finish_run(run) or fault
    if fault is not None:
        raise fault
    return run.summary


def run_masks(run: Run, samples) -> str:
    """Process ``samples`` in parallel, adding each mask's rows to the manifest once its files exist.

    Returns the run's status: ``complete``, or ``failed`` when a mask failed.
    An interruption propagates (the caller records ``interrupted``).
    """
    job, summary = run.job, run.summary
    to_do = None if run.total is None else run.total - summary.skipped
    outcomes = run_parallel(job, samples, to_do, run.log)
    with _progress_bar(run.total, run.progress, initial=summary.skipped) as bar, _quiet_cancellation():
        with closing(outcomes):
            for outcome in outcomes:
                bar.update(1)
                for warning in outcome.warnings:
                    run.log(f"warning: {warning}")
                summary.unpaired += outcome.unpaired
                if outcome.size_differs:
                    run.log(f"warning: {outcome.size_differs}")
                    summary.size_differs.append(outcome.size_differs)
                if outcome.error:
                    summary.failed += 1
                    summary.failures.append(outcome.error)
                    run.log(f"error: {outcome.error}")
                    if job.config.on_error == "fail":
                        # Masks already running may still write files; they are not in
                        # the manifest, so the end of the run removes them.
                        break
                    continue
                run.manifest_log.append(outcome.rows)
                job.observe(outcome.rows)
                summary.masks += 1
                summary.outputs_written += sum(1 for row in outcome.rows if row.output)
    return "failed" if summary.failed else "complete"


def finish_run(run: Run) -> StorageError | None:
    """Sort the manifest, remove what it does not list, and record how the run ended.

    Each step is tried even when one before it failed (a full disk), and the
    first failure is returned, so the metadata says ``failed`` wherever the
    folder still takes a write.
    """
    meta, manifest_log = run.meta, run.manifest_log
    if meta.status == "running":
        meta.status = "interrupted"
    faults: list[StorageError] = []
    rows = _step(faults, manifest_log.manifest, "cannot sort the manifest", manifest_log.finish)
    # Even when the sort failed (a full disk), the unsorted manifest says what is listed; removing the rest
    # also frees the space the record of the run needs.
    listed_in = rows if rows is not None else _step(faults, run.out, "cannot read the manifest", manifest_log.rows_file)
    _step(faults, run.out, "cannot clean up", lambda: sweep(run.job, listed_in))
    if faults:
        meta.status = "failed"
    run.summary.counts, run.summary.warnings = run.job.report()
    for warning in run.summary.warnings:
        run.log(f"warning: {warning}")
    if run.summary.size_differs:
        run.log(
            f"warning: {len(run.summary.size_differs)} label map(s) differ in size from their image (each named "
            f"above, and in {META_NAME}): a loader that pairs them will crop, resize or refuse them"
        )
    _record(meta, run.summary, run.total)
    try:
        _write_meta(run.out, meta)
    except StorageError as error:
        faults.append(error)
    return faults[0] if faults else None


def _step(faults: list[StorageError], location: Location, doing: str, action: Callable):
    """``action()``; an I/O fault is added to ``faults`` as one line instead of stopping the end of a run."""
    try:
        return action()
    except StorageError as error:
        faults.append(error)
    except (OSError, ManifestError) as error:
        faults.append(StorageError.from_os_error(error, location, doing) if isinstance(error, OSError) else error)
    return None


def _record(meta: RunMeta, summary: JobSummary, total: int | None) -> None:
    meta.finished = _now()
    meta.elapsed_s = round(summary.elapsed, 3)
    meta.counts = {
        "masks_total": total if total is not None else summary.masks + summary.skipped + summary.failed,
        "masks_done": summary.masks,
        "masks_skipped": summary.skipped,
        "masks_failed": summary.failed,
        "masks_unpaired": summary.unpaired,
        "masks_image_size_differs": len(summary.size_differs),
        summary.outputs_name.replace(" ", "_"): summary.outputs_written,
        **summary.counts,
    }
    meta.masks_per_second = round(summary.masks_per_second, 3)
    meta.failures = sorted(summary.failures)[:100]  # workers finish in any order; the record does not
    meta.warnings = summary.warnings + sorted(summary.size_differs)[:100]


def _write_meta(out: Location, meta: RunMeta) -> None:
    try:
        write_meta(join(out, META_NAME), meta)
    except OSError as error:
        raise StorageError.from_os_error(error, join(out, META_NAME), "cannot record the run") from error


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _caller_settings_kept():
    """Pillow's size guard and OpenCV's thread count as the caller had them: with ``jobs=1`` the masks are
    processed in this process, whose settings belong to the caller (a notebook, a training script)."""
    from PIL import Image

    pixels = Image.MAX_IMAGE_PIXELS
    threads = sys.modules["cv2"].getNumThreads() if "cv2" in sys.modules else -1  # -1: OpenCV's default
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = pixels
        if "cv2" in sys.modules:
            sys.modules["cv2"].setNumThreads(threads)


@contextmanager
def _quiet_cancellation():
    # Stopping early (on_error fail, Ctrl-C) cancels queued tasks on
    # purpose; joblib would warn about it on the user's terminal.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tasks which were still being processed", category=UserWarning)
        yield


@contextmanager
def _progress_bar(total: int, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    with tqdm(
        total=total, initial=initial, disable=not enabled, unit="mask", file=sys.stderr, dynamic_ncols=True
    ) as bar:
        yield bar
