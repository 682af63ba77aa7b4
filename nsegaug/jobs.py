"""A job over a label folder: ``generate`` and ``noise`` are two.

Each mask is read by a worker (the parent sends names, never pixels), its
outputs are written atomically, and its manifest rows are appended only
once all its files exist. The manifest is sorted at the end, so it is the
same for any number of workers or backend. A run can be interrupted (Ctrl-C,
SIGTERM, a killed process, a full disk) and resumed, and after every run the
output folder holds exactly what its manifest lists, plus the manifest and
its metadata.

A job says what it writes for one mask and what its rows are
(:class:`MaskJob`); this module owns everything else: walking the sources,
workers, the manifest's life, resume, overwrite, and how a run ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from .dataset import LABEL_EXTENSIONS, Sample, find_image, is_inside, iter_label_files
from .errors import ManifestError, OutputInUse, StorageError, UsageError, shown_path
from .manifest import (
    MANIFEST_NAME,
    META_NAME,
    RunMeta,
    append_rows,
    iter_mask_groups,
    parameter_differences,
    read_meta,
    sort_manifest,
    write_meta,
)

BACKENDS = ("loky", "dask")
Log = Callable[[str], None]
# How many files a refusal names; the count covers them all.
SHOWN_FILES = 5
# How often a worker checks that the process that started it is still there.
PARENT_CHECK_S = 0.2


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """Where a job reads and writes, how it walks the sources, and how it runs.

    ``labels`` is walked recursively (``pattern`` on file names), and each
    label is paired with an image of ``images`` by relative path and stem
    (``label_suffix`` and ``image_suffix`` as in Cityscapes). ``palette``:
    a colour table for RGB-coded maps. ``max_pixels``: the largest map
    Pillow opens (its decompression-bomb guard; None: Pillow's default).
    The execution fields (``jobs``, ``backend``, ``scheduler``,
    ``on_error``) never change a byte of the outputs.
    """

    labels: Path
    out: Path
    images: Path | None = None
    seed: int = 0
    pattern: str | None = None
    label_suffix: str = ""
    image_suffix: str = ""
    palette: Path | None = None
    max_pixels: int | None = None
    jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None
    on_error: str = "skip"

    def __post_init__(self) -> None:
        for name in ("labels", "out", "images", "palette"):  # str paths from Python callers
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if self.seed < 0:
            raise UsageError(f"seed must be >= 0, got {self.seed}")
        if self.backend not in BACKENDS:
            raise UsageError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.on_error not in ("skip", "fail"):
            raise UsageError(f"on_error must be skip or fail, got {self.on_error}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise UsageError(f"max_pixels must be >= 1, got {self.max_pixels}")

    def source_parameters(self) -> dict:
        """The parameters of the sources, as the metadata records them.

        Folders are recorded relative to the output folder, so a dataset that
        moves as a whole (another machine, a container's mount) keeps working;
        readers resolve them against the manifest's folder.
        """
        return {
            "seed": self.seed,
            "pattern": self.pattern,
            "label_suffix": self.label_suffix,
            "image_suffix": self.image_suffix,
            "palette": relative_to(self.palette, self.out),
            "labels": relative_to(self.labels, self.out),
            "images": relative_to(self.images, self.out),
        }

    def locations(self) -> dict:
        """The folders as absolute paths (the metadata's ``locations``): a fallback for a manifest moved alone."""
        paths = {"labels": self.labels, "images": self.images, "palette": self.palette, "out": self.out}
        return {name: str(path.resolve()) for name, path in paths.items() if path is not None}


def relative_to(path: Path | None, folder: Path) -> str | None:
    """``path`` relative to ``folder`` (both resolved), in POSIX form; absolute where no relative path exists."""
    if path is None:
        return None
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


# Parameters that are folders, recorded relative to the output folder.
FOLDER_PARAMETERS = ("labels", "images", "palette")


def resolved_parameters(parameters: Mapping, out: Path) -> dict:
    """The parameters with their folders as absolute paths (resolved against ``out``): comparable across runs."""
    resolved = dict(parameters)
    for name in FOLDER_PARAMETERS:
        if resolved.get(name):
            resolved[name] = str((out / resolved[name]).resolve())
    return resolved


@dataclass(frozen=True)
class Output:
    """One file a mask's job writes: its name (relative to the output folder) and bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class MaskOutcome:
    """What a worker did with one mask: its rows, or one line saying why it failed."""

    label: str
    rows: list = field(default_factory=list)
    error: str | None = None


class MaskJob:
    """What a job does with one mask; subclasses define the abstract parts.

    ``kind`` is recorded in the metadata; ``row_type`` is the manifest row
    (:mod:`nsegaug.manifest`). ``make`` runs in a worker.
    """

    kind: ClassVar[str]
    row_type: ClassVar[type]
    outputs_noun: ClassVar[str] = "outputs"  # what the summary calls the files written

    def __init__(self, config: JobConfig) -> None:
        self.config = config

    def parameters(self) -> dict:
        """Everything that decides the outputs: recorded in the metadata, compared on resume."""
        raise NotImplementedError

    def outputs(self, label: str) -> list[str]:
        """The files the job writes for ``label``, relative to the output folder."""
        raise NotImplementedError

    def could_write(self, name: str, parameters: Mapping) -> bool:
        """Whether a run with ``parameters`` (this job's kind) may have written the file ``name``."""
        raise NotImplementedError

    def make(self, sample: Sample, source: Path, data: bytes) -> tuple[list, list[Output]]:
        """The rows and output files of one mask, from its source's bytes (no file written here)."""
        raise NotImplementedError

    def is_complete(self, rows: Mapping[int, object]) -> bool:
        """Whether a mask's rows, by their ``key``, are all the rows a finished mask has."""
        raise NotImplementedError

    def observe(self, rows: list) -> None:
        """See the rows of one finished mask (for :meth:`report`)."""

    def report(self) -> tuple[dict, list[str]]:
        """Counts for the metadata and warnings for the user, from what :meth:`observe` saw."""
        return {}, []


@dataclass
class JobSummary:
    masks: int = 0  # masks done in this run
    outputs_written: int = 0
    skipped: int = 0  # masks already complete (resume)
    failed: int = 0
    unpaired: int = 0  # masks without an image (with images)
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    outputs_name: str = "outputs written"

    @property
    def masks_per_second(self) -> float:
        return self.masks / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"masks: {self.masks}, {self.outputs_name}: {self.outputs_written}, skipped: {self.skipped}, "
            f"failed: {self.failed}, elapsed: {self.elapsed:.1f}s, masks/s: {self.masks_per_second:.2f}"
        )


# --------------------------------------------------------------------------- the sources


def plan(config: JobConfig, log: Log = lambda message: None) -> Iterator[Sample]:
    """The samples of the job, streamed from the label folder."""
    for label in iter_label_files(config.labels, config.pattern, warn=log):
        image = None
        if config.images is not None:
            image = find_image(config.images, label, config.label_suffix, config.image_suffix)
            if image is None:
                log(f"warning: {shown_path(config.labels / label)}: no image found in {shown_path(config.images)}")
        yield Sample(label, image)


def count_masks(config: JobConfig) -> int:
    """How many label files the job has; none at all is a :class:`UsageError`."""
    total = sum(1 for _ in iter_label_files(config.labels, config.pattern))
    if total == 0:
        what = f"matching {config.pattern!r}" if config.pattern else f"with a label extension {LABEL_EXTENSIONS}"
        raise UsageError(f"{shown_path(config.labels)}: no files {what}")
    return total


def check_request(job: MaskJob, resume: bool, overwrite: bool) -> None:
    """Refuse the run before anything is written, with a message that says why."""
    config = job.config
    if not config.labels.is_dir():
        raise UsageError(f"{shown_path(config.labels)}: label folder not found")
    if config.images is not None and not config.images.is_dir():
        raise UsageError(f"{shown_path(config.images)}: image folder not found")
    if config.out.exists() and not config.out.is_dir():
        raise UsageError(f"{shown_path(config.out)}: not a folder")
    for source in (config.labels, config.images):
        if source is not None and is_inside(config.out, source):
            raise UsageError(
                f"output folder {config.out} is inside {source}: outputs must not be written among sources"
            )
        if source is not None and is_inside(source, config.out):
            raise UsageError(f"{source} is inside the output folder {config.out}: sources must not lie among outputs")
    if resume and overwrite:
        raise UsageError("resume and overwrite exclude each other")
    if config.out.is_dir() and any(config.out.iterdir()) and not (resume or overwrite):
        raise OutputInUse(f"{shown_path(config.out)} is not empty")
    meta_path = config.out / META_NAME
    if resume and meta_path.exists():
        old = read_meta(meta_path)
        if old.kind != job.kind:
            raise UsageError(f"cannot resume: {meta_path} is the record of a {old.kind} run, not of {job.kind}")
        differences = parameter_differences(
            resolved_parameters(old.parameters, config.out), resolved_parameters(job.parameters(), config.out)
        )
        if differences:
            raise UsageError("cannot resume with different parameters:\n  " + "\n  ".join(differences))


# --------------------------------------------------------------------------- the output folder before a run


def prepare_output(job: MaskJob, resume: bool, overwrite: bool, log: Log) -> set[str]:
    """Make the output folder ready for this run; returns the labels an earlier run finished (on resume).

    Files an earlier run wrote (those its manifest lists, and those it may
    have written before being stopped) are removed with ``overwrite``; a
    file no nsegaug run of this kind could have written stops the run
    (:class:`OutputInUse` naming it): the folder may hold someone's data.
    """
    out = job.config.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError.from_os_error(error, out, "cannot create the output folder") from error
    previous = read_meta(out / META_NAME).parameters if (out / META_NAME).exists() else {}
    listed = _listed_outputs(out / MANIFEST_NAME, job) if (resume or overwrite) else set()
    foreign = [name for name in _files(out) if not _is_ours(job, name, listed, previous)]
    if foreign:
        shown = ", ".join(shown_path(name) for name in foreign[:SHOWN_FILES])
        more = f" and {len(foreign) - SHOWN_FILES} more" if len(foreign) > SHOWN_FILES else ""
        raise OutputInUse(f"{shown_path(out)} holds files no nsegaug {job.kind} run wrote: {shown}{more}")
    remove_temporary_files(out)
    if overwrite:
        _remove(out, sorted(listed | {name for name in _files(out) if name not in (MANIFEST_NAME, META_NAME)}))
        for name in (MANIFEST_NAME, META_NAME):
            (out / name).unlink(missing_ok=True)
    done = completed_labels(job, log) if resume else set()
    manifest = out / MANIFEST_NAME
    if done:
        # Keep only verified rows: a line torn by a killed run must not end up
        # in the middle of the file once new rows are appended after it.
        sort_manifest(manifest, job.row_type, keep=done)
    else:
        manifest.unlink(missing_ok=True)
    return done


def _files(out: Path) -> Iterator[str]:
    """Every file under ``out`` (hidden ones too), relative, in POSIX form; links are not followed."""
    for folder, folders, files in os.walk(out):
        folders.sort()
        relative = Path(folder).relative_to(out)
        for name in sorted(files):
            yield (relative / name).as_posix()


def _is_ours(job: MaskJob, name: str, listed: set[str], previous: Mapping) -> bool:
    if name in (MANIFEST_NAME, META_NAME) or name in listed or _is_temporary(name):
        return True
    return job.could_write(name, job.parameters()) or (bool(previous) and job.could_write(name, previous))


def _is_temporary(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(".tmp")


def _listed_outputs(manifest: Path, job: MaskJob) -> set[str]:
    if not manifest.exists():
        return set()
    return {row.output for _, rows in iter_mask_groups(manifest, job.row_type) for row in rows.values() if row.output}


def _remove(out: Path, names) -> None:
    for name in names:
        try:
            (out / name).unlink(missing_ok=True)
        except OSError as error:
            raise StorageError.from_os_error(error, out / name, "cannot remove") from error


def remove_temporary_files(out: Path) -> None:
    """Temp files of a killed run (``.<name>.<pid>.tmp``): never outputs, safe to delete."""
    for path in out.rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def completed_labels(job: MaskJob, log: Log = lambda message: None) -> set[str]:
    """Labels of the masks that an earlier run finished, after checking their files.

    A mask counts as done when the manifest has all its rows, its source is
    unchanged and every output file is there with the recorded checksum; any
    other mask is redone. Streams the manifest one mask at a time.
    """
    config = job.config
    manifest = config.out / MANIFEST_NAME
    if not manifest.exists():
        return set()
    verdicts: dict[str, list | None] = {}
    for label, rows in iter_mask_groups(manifest, job.row_type):
        # A later run of rows for the same label (a redo) decides.
        complete = job.is_complete(rows)
        first = next(iter(rows.values()))
        if complete and not _has_checksum(config.labels / label, first.sha256_label):
            log(f"warning: {shown_path(config.labels / label)}: changed since its outputs were made; making them again")
            complete = False
        outputs_ok = all(
            _has_checksum(config.out / row.output, row.sha256_output) for row in rows.values() if row.output
        )
        verdicts[label] = list(rows.values()) if complete and outputs_ok else None
    for rows in verdicts.values():
        if rows is not None:
            job.observe(rows)
    return {label for label, rows in verdicts.items() if rows is not None}


def _has_checksum(path: Path, sha: str) -> bool:
    """Whether ``path`` is there with this SHA-256 (a missing or unreadable file is not)."""
    from .io import sha256_file

    try:
        return sha256_file(path) == sha
    except OSError:
        return False


# --------------------------------------------------------------------------- the run


def run_job(
    job: MaskJob,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    command_line: list[str] | None = None,
    log: Log = lambda message: print(message, file=sys.stderr),
) -> JobSummary:
    """Run ``job`` over its label folder; see the module docstring for the guarantees.

    Returns the summary; bad masks are counted in it (and stop the run with
    ``on_error="fail"``). Raises :class:`UsageError` (refused before anything
    is written), :class:`StorageError` (the output folder failed: the run is
    recorded as failed where the folder still takes a write) or
    ``KeyboardInterrupt`` (recorded as interrupted).
    """
    started = time.perf_counter()  # resume's checks are part of the run's time
    check_request(job, resume, overwrite)
    total = count_masks(job.config)
    done = prepare_output(job, resume, overwrite, log)
    summary = JobSummary(skipped=len(done), outputs_name=f"{job.outputs_noun} written")
    meta = RunMeta(
        kind=job.kind,
        parameters=job.parameters(),
        locations=job.config.locations(),
        command_line=command_line if command_line is not None else sys.argv,
        started=_now(),
        execution={"jobs": job.config.jobs, "backend": job.config.backend, "scheduler": job.config.scheduler},
    )
    _write_meta(job.config.out, meta)
    fault = None
    try:
        meta.status = run_masks(job, _pending(job, done, summary, log), summary, total, progress, log)
    except StorageError as error:
        meta.status, fault = "failed", error
    finally:
        summary.elapsed = time.perf_counter() - started
        fault = finish_run(job, meta, summary, total, log) or fault
    if fault is not None:
        raise fault
    return summary


def _pending(job: MaskJob, done: set[str], summary: JobSummary, log: Log) -> Iterator[Sample]:
    for sample in plan(job.config, log):
        if sample.image is None and job.config.images is not None:
            summary.unpaired += 1
        if sample.label not in done:
            yield sample


def run_masks(
    job: MaskJob, samples: Iterator[Sample], summary: JobSummary, total: int, progress: bool, log: Log
) -> str:
    """Process ``samples`` in parallel, appending each mask's rows once its files exist.

    Returns the run's status: ``complete``, or ``failed`` when a mask failed.
    An interruption propagates (the caller records ``interrupted``).
    """
    manifest = job.config.out / MANIFEST_NAME
    outcomes = _run_parallel(job, samples)
    with _progress_bar(total, progress, initial=summary.skipped) as bar, _quiet_cancellation(), closing(outcomes):
        for outcome in outcomes:
            bar.update(1)
            if outcome.error:
                summary.failed += 1
                summary.failures.append(outcome.error)
                log(f"error: {outcome.error}")
                if job.config.on_error == "fail":
                    # Masks already running may still write files; they are not in
                    # the manifest, so the end of the run removes them.
                    break
                continue
            try:
                append_rows(manifest, outcome.rows)
            except OSError as error:
                raise StorageError.from_os_error(error, manifest, "cannot add to the manifest") from error
            job.observe(outcome.rows)
            summary.masks += 1
            summary.outputs_written += sum(1 for row in outcome.rows if row.output)
    return "failed" if summary.failed else "complete"


def finish_run(job: MaskJob, meta: RunMeta, summary: JobSummary, total: int, log: Log) -> StorageError | None:
    """Sort the manifest, remove what it does not list, and record how the run ended.

    Each step is tried even when one before it failed (a full disk), and the
    first failure is returned, so the metadata says ``failed`` wherever the
    folder still takes a write.
    """
    out = job.config.out
    if meta.status == "running":
        meta.status = "interrupted"
    faults = []
    for step in (_sort, _sweep):
        try:
            step(job)
        except (OSError, ManifestError) as error:
            faults.append(error if isinstance(error, StorageError) else StorageError.from_os_error(error, out))
    if faults:
        meta.status = "failed"
    summary.counts, summary.warnings = job.report()
    for warning in summary.warnings:
        log(f"warning: {warning}")
    _record(meta, summary, total)
    try:
        _write_meta(out, meta)
    except StorageError as error:
        faults.append(error)
    return faults[0] if faults else None


def _sort(job: MaskJob) -> None:
    # Rows of this run were appended as they came; the final manifest is
    # sorted, so it is the same however the work was split.
    manifest = job.config.out / MANIFEST_NAME
    if manifest.exists():
        try:
            sort_manifest(manifest, job.row_type)
        except OSError as error:
            raise StorageError.from_os_error(error, manifest, "cannot sort the manifest") from error


def _sweep(job: MaskJob) -> None:
    """Remove what the manifest does not list: temp files of stopped workers, the files of masks whose rows
    were never appended (a failure, an interruption, a stop after the first error)."""
    out = job.config.out
    remove_temporary_files(out)
    listed = _listed_outputs(out / MANIFEST_NAME, job)
    parameters = job.parameters()
    stale = [name for name in _files(out) if name not in listed and job.could_write(name, parameters)]
    _remove(out, [name for name in stale if name not in (MANIFEST_NAME, META_NAME)])


def _record(meta: RunMeta, summary: JobSummary, total: int) -> None:
    meta.finished = _now()
    meta.elapsed_s = round(summary.elapsed, 3)
    meta.counts = {
        "masks_total": total,
        "masks_done": summary.masks,
        "masks_skipped": summary.skipped,
        "masks_failed": summary.failed,
        "masks_unpaired": summary.unpaired,
        summary.outputs_name.replace(" ", "_"): summary.outputs_written,
        **summary.counts,
    }
    meta.masks_per_second = round(summary.masks_per_second, 3)
    meta.failures = sorted(summary.failures)[:100]  # workers finish in any order; the record does not
    meta.warnings = summary.warnings


def _write_meta(out: Path, meta: RunMeta) -> None:
    try:
        write_meta(out / META_NAME, meta)
    except OSError as error:
        raise StorageError.from_os_error(error, out / META_NAME, "cannot record the run") from error


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- workers


def process_mask(job: MaskJob, sample: Sample) -> MaskOutcome:
    """Read one mask, write its outputs atomically, return its manifest rows.

    Runs in a worker: the mask is read here, not shipped from the parent.
    Every failure of this file becomes ``MaskOutcome.error``, one line that
    names the file.
    """
    _worker_setup(job.config.max_pixels)
    source = job.config.labels / sample.label
    try:
        data = source.read_bytes()
        rows, outputs = job.make(sample, source, data)
        for output in outputs:
            _write_output(job.config.out, output)
        return MaskOutcome(sample.label, rows)
    except Exception as error:  # noqa: BLE001 - every failure of one file is that file's one line
        return MaskOutcome(sample.label, [], _one_line(source, error))


def _write_output(out: Path, output: Output) -> None:
    from .io import write_bytes_atomic

    target = out / output.name
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    # A link inside the output folder (planted, or left by a tool) must not send outputs elsewhere.
    if not is_inside(folder, out):
        raise StorageError(target, f"resolves outside the output folder {shown_path(out.resolve())}")
    # Not flushed to disk one by one: an OS crash can only leave a damaged
    # copy, and resume checks every output's checksum.
    write_bytes_atomic(target, output.data, durable=False)


def _one_line(source: Path, error: BaseException) -> str:
    """A worker's failure as one line naming the file (the error's own file where it names one)."""
    from .errors import NsegaugError

    if isinstance(error, NsegaugError):
        return str(error)
    if isinstance(error, OSError):
        where = error.filename or source
        return f"{shown_path(where)}: {error.strerror or error}"
    if isinstance(error, MemoryError):
        return f"{shown_path(source)}: out of memory"
    reason = " ".join(str(error).split()) or type(error).__name__
    if type(error).__module__.startswith("cv2"):
        # OpenCV's limits (e.g. on map size) are about this file; the other masks can still be done.
        return f"{shown_path(source)}: OpenCV refused it ({reason})"
    return f"{shown_path(source)}: {reason}"


@lru_cache(maxsize=1)
def _worker_setup(max_pixels: int | None) -> None:
    """Once per process: one OpenCV thread, Pillow's size guard, and a watch on the parent."""
    import cv2
    from PIL import Image

    # Parallelism comes from the worker processes; OpenCV's own threads would only fight them for the cores.
    cv2.setNumThreads(1)
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = max_pixels
    if os.getpid() != _parent_pid():
        _watch_parent()


def _parent_pid() -> int:
    return int(os.environ.get("NSEGAUG_PARENT_PID", os.getpid()))


def _watch_parent() -> None:
    """Leave at once when the process that started this worker is gone (killed, or stopped by a signal).

    A worker of a dead parent would finish its masks, write files no manifest
    lists, and idle for minutes; the next run would have to clean up after it.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="nsegaug-parent-watch", daemon=True).start()


def _run_parallel(job: MaskJob, samples: Iterator[Sample]) -> Iterator[MaskOutcome]:
    from joblib import Parallel, delayed

    # Workers know the parent by pid: in the parent itself (jobs=1 runs in process) no watch is needed.
    os.environ["NSEGAUG_PARENT_PID"] = str(os.getpid())
    tasks = (delayed(process_mask)(job, sample) for sample in samples)
    if job.config.backend == "dask":
        with _dask_backend(job.config):
            yield from Parallel(n_jobs=-1, return_as="generator_unordered")(tasks)
        return
    # A bounded number of tasks in flight keeps memory flat on huge datasets.
    yield from Parallel(n_jobs=job.config.jobs, return_as="generator_unordered", pre_dispatch="2*n_jobs")(tasks)


@contextmanager
def _quiet_cancellation():
    # Stopping early (on_error fail, Ctrl-C) cancels queued tasks on
    # purpose; joblib would warn about it on the user's terminal.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tasks which were still being processed", category=UserWarning)
        yield


@contextmanager
def _dask_backend(config: JobConfig):
    try:
        from dask.distributed import Client, LocalCluster
        from joblib import parallel_config
    except ImportError as error:
        raise UsageError("the dask backend needs the dask extra: pip install 'nsegaug[dask]'") from error
    if config.scheduler:
        client = Client(config.scheduler)
        cluster = None
    else:
        # The cluster's processes inherit an ignored SIGINT: Ctrl-C is the parent's to handle, which closes
        # the cluster; otherwise every worker prints its own KeyboardInterrupt traceback.
        with _sigint_ignored():
            cluster = LocalCluster(n_workers=config.jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        with parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def _sigint_ignored():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _progress_bar(total: int, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    with tqdm(
        total=total, initial=initial, disable=not enabled, unit="mask", file=sys.stderr, dynamic_ncols=True
    ) as bar:
        yield bar
