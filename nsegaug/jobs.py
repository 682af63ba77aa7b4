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

import copy
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import ClassVar

from . import lock, storage
from .dataset import LABEL_EXTENSIONS, Sample, find_image, is_inside, iter_label_files
from .errors import ManifestError, NsegaugError, OutputInUse, StorageError, UsageError, shown_path
from .lock import LOCK_NAME
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
from .storage import Location, is_url, join

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
    ``on_error``, ``storage_options``) never change a byte of the outputs.
    Any folder may be an fsspec URL (``s3://bucket/prefix``; see
    :mod:`nsegaug.storage`).
    """

    labels: Location
    out: Location
    images: Location | None = None
    seed: int = 0
    pattern: str | None = None
    label_suffix: str = ""
    image_suffix: str = ""
    palette: Location | None = None
    max_pixels: int | None = None
    jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None
    on_error: str = "skip"
    # fsspec's keyword arguments for remote locations (endpoint, credentials): never recorded nor shown.
    storage_options: dict | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("labels", "out", "images", "palette"):  # str paths from Python callers, or URLs
            if getattr(self, name) is not None:
                # Credentials typed in a URL join the storage options: never recorded, shown, or sent to Dask.
                location, options = storage.take_credentials(getattr(self, name), self.storage_options)
                object.__setattr__(self, name, storage.as_location(location))
                object.__setattr__(self, "storage_options", options)
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
        return {name: _absolute(path) for name, path in paths.items() if path is not None}


def _absolute(location: Location) -> str:
    return storage.public(location) if is_url(location) else str(Path(location).resolve())


def relative_to(path: Location | None, folder: Location) -> str | None:
    """``path`` relative to ``folder`` (both resolved), in POSIX form; absolute where no relative path exists
    (another drive, or a URL on either side)."""
    if path is None:
        return None
    if is_url(path) or is_url(folder):
        return _absolute(path)
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


# Parameters that are folders, recorded relative to the output folder.
FOLDER_PARAMETERS = ("labels", "images", "palette")


def resolved_parameters(parameters: Mapping, out: Location) -> dict:
    """The parameters with their folders as absolute paths (resolved against ``out``): comparable across runs."""
    resolved = dict(parameters)
    for name in FOLDER_PARAMETERS:
        value = resolved.get(name)
        if value and is_url(value):  # as a run records it now: s3://b/x/ and s3://b/x are one folder
            resolved[name] = str(storage.as_location(value))
        elif value and not is_url(out):
            resolved[name] = str((Path(out) / value).resolve())
    return resolved


@dataclass(frozen=True)
class Output:
    """One file a mask's job writes: its name (relative to the output folder) and bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class MaskOutcome:
    """What a worker did with one mask: its rows, or one line saying why it failed; and lines to warn with."""

    label: str
    rows: list = field(default_factory=list)
    error: str | None = None
    warnings: tuple[str, ...] = ()
    unpaired: bool = False


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

    @classmethod
    def could_write(cls, name: str, parameters: Mapping, out: Location) -> bool:
        """Whether a run of this kind with ``parameters``, into ``out``, may have written the file ``name``
        (a class method: an ``--overwrite`` judges the files of an earlier run of another kind)."""
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

    @property
    def copies_written(self) -> int:
        """The name ``generate`` gives the outputs written."""
        return self.outputs_written

    def line(self) -> str:
        return (
            f"masks: {self.masks}, {self.outputs_name}: {self.outputs_written}, skipped: {self.skipped}, "
            f"failed: {self.failed}, elapsed: {self.elapsed:.1f}s, masks/s: {self.masks_per_second:.2f}"
        )


# --------------------------------------------------------------------------- the sources


def plan(config: JobConfig, log: Log = lambda message: None) -> Iterator[Sample]:
    """The samples of the job, streamed from the label folder (images are paired by the workers)."""
    for label in iter_label_files(config.labels, config.pattern, warn=log, exclude=config.out):
        yield Sample(label, None)


def paired(config: JobConfig, sample: Sample) -> Sample:
    """``sample`` with its image from ``config.images`` (None where there is none, or no image folder)."""
    if config.images is None:
        return sample
    return Sample(sample.label, find_image(config.images, sample.label, config.label_suffix, config.image_suffix))


def count_masks(config: JobConfig) -> int | None:
    """How many label files the job has (None for a remote folder: not listed twice); none is a UsageError."""
    if is_url(config.labels):
        total = None if next(iter_label_files(config.labels, config.pattern), None) is not None else 0
    else:
        total = sum(1 for _ in iter_label_files(config.labels, config.pattern, exclude=config.out))
    if total == 0:
        what = f"matching {config.pattern!r}" if config.pattern else f"with a label extension {LABEL_EXTENSIONS}"
        raise UsageError(f"{storage.shown(config.labels)}: no files {what}")
    return total


def check_request(job: MaskJob, resume: bool, overwrite: bool) -> None:
    """Refuse the run before anything is written, with a message that says why."""
    config = job.config
    if not storage.is_dir(config.labels):
        raise UsageError(f"{storage.shown(config.labels)}: label folder not found")
    if config.images is not None and not storage.is_dir(config.images):
        raise UsageError(f"{storage.shown(config.images)}: image folder not found")
    if config.images is not None and next(storage.walk(config.images), None) is None:
        # No mask could have its image (a typo, a bucket prefix that merely "exists"): refused, not a warning each.
        found = "image folder not found (no object under this prefix)" if is_url(config.images) else "no image in it"
        raise UsageError(f"{storage.shown(config.images)}: {found}")
    if not is_url(config.out) and Path(config.out).exists() and not Path(config.out).is_dir():
        raise UsageError(f"{storage.shown(config.out)}: not a folder")
    for source in (config.labels, config.images):
        if source is not None and is_inside(config.out, source):
            raise UsageError(f"output folder {config.out} is inside {source}: outputs must not go among sources")
        if source is not None and is_inside(source, config.out):
            raise UsageError(f"{source} is inside the output folder {config.out}: sources must not lie among outputs")
    if config.backend == "dask":
        _check_dask(config.scheduler)
    if config.palette is not None:
        from .io import cached_colour_palette

        cached_colour_palette(config.palette)  # a bad colour table is refused before anything is written
    if resume and overwrite:
        raise UsageError("resume and overwrite exclude each other")


def check_folder(job: MaskJob, resume: bool, overwrite: bool) -> None:
    """Refuse a run that the output folder's state does not allow; called while the run holds the folder,
    so that what it sees stays true (a run that started a moment earlier cannot fill it in between)."""
    config = job.config
    used = any(name != LOCK_NAME for name in storage.walk(config.out))
    if not (resume or overwrite) and used:
        raise OutputInUse(f"{storage.shown(config.out)} is not empty")
    meta_path = join(config.out, META_NAME)
    if resume and used and not storage.exists(meta_path):
        # Without its record nothing says which parameters made the files there: they cannot be continued.
        raise UsageError(
            f"cannot resume: {storage.shown(meta_path)} is missing, so nothing records how the files in "
            f"{storage.shown(config.out)} were made; start again (overwrite) or choose another output folder"
        )
    if resume and used:
        old = read_meta(meta_path)
        if old.kind != job.kind:
            raise UsageError(f"cannot resume: {meta_path} is the record of a {old.kind} run, not of {job.kind}")
        differences = parameter_differences(
            resolved_parameters(old.parameters, config.out), resolved_parameters(job.parameters(), config.out)
        )
        if differences:
            raise UsageError("cannot resume with different parameters:\n  " + "\n  ".join(differences))


# --------------------------------------------------------------------------- the manifest of a run


PARTS = "manifest.parts"
# A remote run writes its rows in parts of at most this many masks, or at most this often.
PART_MASKS = 64
PART_SECONDS = 5.0


class ManifestLog:
    """The manifest a run writes: rows appended only once their files exist, sorted at the end.

    In a local folder the rows are appended to ``manifest.jsonl`` and
    flushed to disk mask by mask. An object store has no append: the rows go
    to numbered part objects (``manifest.parts/<run>-<n>.jsonl``), each PUT
    once all its masks' objects are written: the first after the first mask
    (a run shows it is recording from the start), then at most ``PART_MASKS``
    masks or ``PART_SECONDS`` apart, so a killed run loses at most the rows of
    its last part (those masks are redone on resume, to the same bytes). At the
    end the manifest and the parts, in order, are merged into one sorted
    ``manifest.jsonl`` and the parts removed.
    """

    def __init__(self, out: Location, row_type: type) -> None:
        self.out, self.row_type = out, row_type
        self.remote = is_url(out)
        self.manifest = join(out, MANIFEST_NAME)
        self.run = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self.pending: list = []
        self.pending_masks, self.parts_written, self.last_flush = 0, 0, time.monotonic()
        self.workspace = Path(tempfile.mkdtemp(prefix="nsegaug-manifest-")) if self.remote else None

    def rows_file(self) -> Path | None:
        """A local file holding every row written so far, in the order written (None: no rows yet)."""
        if not self.remote:
            return Path(self.manifest) if Path(self.manifest).exists() else None
        merged = self.workspace / "merged.jsonl"
        with open(merged, "wb") as target:
            for location in [self.manifest, *self._parts()]:
                try:
                    target.write(storage.read_bytes(location))
                except FileNotFoundError:
                    continue
        return merged if merged.stat().st_size else None

    def _parts(self) -> list[Location]:
        folder = join(self.out, PARTS)
        return [join(folder, key) for key in sorted(storage.walk(folder))] if storage.exists(folder) else []

    def keep(self, labels: set[str], rows: Path) -> None:
        """Keep only the rows of ``labels`` (verified by resume) of ``rows`` (:meth:`rows_file`), sorted, as
        the manifest."""
        sort_manifest(rows, self.row_type, keep=labels)
        self._publish(rows)

    def append(self, rows: list) -> None:
        if not self.remote:
            try:
                append_rows(Path(self.manifest), rows)
            except OSError as error:
                raise StorageError.from_os_error(error, self.manifest, "cannot add to the manifest") from error
            return
        self.pending += rows
        self.pending_masks += 1
        first = self.parts_written == 0
        if first or self.pending_masks >= PART_MASKS or time.monotonic() - self.last_flush >= PART_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.parts_written += 1
        part = join(join(self.out, PARTS), f"{self.run}-{self.parts_written:06d}.jsonl")
        storage.write_bytes(part, "".join(row.to_json() + "\n" for row in self.pending).encode("utf-8"))
        self.pending, self.pending_masks, self.last_flush = [], 0, time.monotonic()

    def finish(self) -> Path | None:
        """Sort the manifest (and merge the parts into it); returns a local file of the final rows."""
        self.flush()
        rows = self.rows_file()
        if rows is None:
            storage.write_bytes(self.manifest, b"")  # a run that finished no mask lists nothing, and says so
            return None
        sort_manifest(rows, self.row_type)
        if self.remote:
            self._publish(rows)
        return rows

    def _publish(self, rows: Path) -> None:
        """A remote manifest: the local rows PUT whole, then the parts they hold removed."""
        if not self.remote:
            return
        parts = self._parts()
        storage.write_bytes(self.manifest, rows.read_bytes())
        for part in parts:
            storage.remove(part)

    def discard(self) -> None:
        """Remove the manifest and every part (a fresh run)."""
        for location in [self.manifest, *(self._parts() if self.remote else [])]:
            storage.remove(location)

    def close(self) -> None:
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)


# --------------------------------------------------------------------------- the output folder before a run


def prepare_output(job: MaskJob, resume: bool, overwrite: bool, log: Log) -> tuple[set[str], ManifestLog]:
    """Make the output folder ready for this run: the labels an earlier run finished (on resume), and the log.

    Files an earlier run wrote (those its manifest lists, and those it may
    have written before being stopped) are removed with ``overwrite``, also
    when that run was of another kind or its records are damaged; a file no
    earlier nsegaug run could have written stops the run (:class:`UsageError`
    naming it): the folder may hold someone's data.
    """
    out = job.config.out
    previous = _previous_run(out, overwrite, log)
    manifest_log = ManifestLog(out, job.row_type)
    rows = manifest_log.rows_file() if (resume or overwrite) else None
    row_type = job_class(previous.kind).row_type if previous else job.row_type
    listed = _listed_outputs(rows, row_type, out, overwrite, log)
    names = list(storage.walk(out))  # listed once: on a bucket a listing is a request per thousand keys
    foreign = [name for name in names if not _is_ours(name, listed, previous, out)]
    if foreign:
        shown = ", ".join(shown_path(name) for name in foreign[:SHOWN_FILES])
        more = f" and {len(foreign) - SHOWN_FILES} more" if len(foreign) > SHOWN_FILES else ""
        raise UsageError(
            f"{storage.shown(out)} holds files no nsegaug run wrote: {shown}{more}; "
            "move them away, or choose another output folder"
        )
    remove_temporary_files(out)
    if overwrite:  # the manifest goes below with every run that resumes nothing
        ours = {name for name in names if not _is_record(name) and not _is_temporary(name)}
        _remove(out, sorted(listed | ours))
        storage.remove(join(out, META_NAME))
    done = completed_labels(job, rows, log) if resume and rows is not None else set()
    if done:
        # Keep only verified rows: a line torn by a killed run must not end up
        # in the middle of the file once new rows are appended after it.
        manifest_log.keep(done, rows)
    else:
        manifest_log.discard()
    return done, manifest_log


def job_class(kind: str) -> type[MaskJob]:
    """The job of a recorded ``kind`` (imported here: those modules import this one)."""
    from .generate import GenerateJob
    from .noise import NoiseJob

    kinds = {GenerateJob.kind: GenerateJob, NoiseJob.kind: NoiseJob}
    if kind not in kinds:
        raise ManifestError(f"unknown kind of run {kind!r}; this nsegaug knows {', '.join(sorted(kinds))}")
    return kinds[kind]


def _previous_run(out: Location, overwrite: bool, log: Log) -> RunMeta | None:
    """The record of the run that wrote ``out`` (None: none). With ``overwrite`` a damaged record is only
    warned about: starting again is the way out of it, so it must not be refused for it."""
    meta = join(out, META_NAME)
    if not storage.exists(meta):
        return None
    try:
        previous = read_meta(meta)
        job_class(previous.kind)
        return previous
    except ManifestError as error:
        if not overwrite:
            raise
        log(f"warning: {error}; starting again removes only the files its manifest lists")
        return None


def _is_record(name: str) -> bool:
    """The manifest, its metadata, a remote manifest's parts, and the folder's lock."""
    return name in (MANIFEST_NAME, META_NAME, LOCK_NAME) or name.startswith(PARTS + "/")


def _is_ours(name: str, listed: set[str], previous: RunMeta | None, out: Location) -> bool:
    """Whether ``name`` in ``out`` belongs to nsegaug: a record, a temporary file, a file the manifest lists,
    or one the recorded run may have written before it was stopped. Without a record nothing else is: a run
    records itself before it writes a file, so the folder is someone's (a copy of their labels)."""
    if _is_record(name) or name in listed or _is_temporary(name):
        return True
    return previous is not None and job_class(previous.kind).could_write(name, previous.parameters, out)


def _is_temporary(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(".tmp")


def _listed_outputs(
    rows: Path | None, row_type: type, out: Location, overwrite: bool = False, log: Log | None = None
) -> set[str]:
    """The outputs ``rows`` lists; with ``overwrite``, a damaged manifest lists nothing and a row naming a file
    outside ``out`` is left out (both warned about); without, either is a :class:`ManifestError`."""
    if rows is None or not rows.exists():
        return set()
    listed, inside = set(), _InsideCheck(out)
    try:
        for label, group in iter_mask_groups(rows, row_type):
            for key, row in group.items():
                if row.output and not inside(row.output):
                    raise ManifestError(
                        f"{storage.shown(join(out, MANIFEST_NAME))}: the row of {shown_path(label)} ({key}) names "
                        f"{shown_path(row.output)}, which is not inside the output folder; nothing outside it is "
                        "touched"
                    )
                listed.update([row.output] if row.output else [])
    except ManifestError as error:
        if not overwrite:
            raise
        if log is not None:
            log(f"warning: {error}; starting again removes the files its record says the run may have written")
        return set()
    return listed


class _InsideCheck:
    """Whether a recorded output name stays inside ``out`` (as :func:`output_location` judges), each folder
    resolved once: a manifest of a million rows costs a lookup per folder, not per row."""

    def __init__(self, out: Location) -> None:
        self.out, self.folders = out, {}

    def __call__(self, name: str) -> bool:
        if not _is_relative_name(name):
            return False
        folder = PurePosixPath(name).parent.as_posix()
        if folder not in self.folders:
            self.folders[folder] = is_url(self.out) or is_inside(Path(self.out) / folder, self.out)
        return self.folders[folder]


def _remove(out: Location, names) -> None:
    """Remove ``names`` from ``out``; all are checked first, so a name leading outside removes nothing."""
    for target in [output_location(out, name) for name in names]:
        try:
            storage.remove(target)
        except StorageError:
            raise
        except OSError as error:
            raise StorageError.from_os_error(error, target, "cannot remove") from error


def remove_temporary_files(out: Location) -> None:
    """Temp files of a killed run (``.<name>.<pid>.tmp``): never outputs, safe to delete. (A store has none.)"""
    if not is_url(out):  # walked without following links: a link's target is not the folder's
        for name in storage.walk(out):
            if _is_temporary(name):
                (Path(out) / name).unlink(missing_ok=True)


def completed_labels(job: MaskJob, rows_file: Path, log: Log = lambda message: None) -> set[str]:
    """Labels of the masks that an earlier run finished, after checking their files.

    A mask counts as done when the manifest has all its rows, its source is
    unchanged and every output file is there with the recorded checksum; any
    other mask is redone. Streams the rows one mask at a time.
    """
    config = job.config
    verdicts: dict[str, list | None] = {}
    for label, rows in iter_mask_groups(rows_file, job.row_type):
        # A later run of rows for the same label (a redo) decides.
        complete = job.is_complete(rows)
        first = next(iter(rows.values()))
        source = join(config.labels, label)
        if complete and not _has_checksum(source, first.sha256_label):
            log(f"warning: {storage.shown(source)}: changed since its outputs were made; making them again")
            complete = False
        outputs = [row for row in rows.values() if row.output]
        outputs_ok = all(_has_checksum(join(config.out, row.output), row.sha256_output) for row in outputs)
        verdicts[label] = list(rows.values()) if complete and outputs_ok else None
    for rows in verdicts.values():
        if rows is not None:
            job.observe(rows)
    return {label for label, rows in verdicts.items() if rows is not None}


def _has_checksum(location: Location, sha: str) -> bool:
    """Whether the file is there with this SHA-256 (a missing or unreadable file is not)."""
    try:
        return storage.sha256(location) == sha
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
    storage.configure(job.config.storage_options)
    check_request(job, resume, overwrite)
    total = count_masks(job.config)
    make_output_folder(job.config.out)
    with lock.hold(job.config.out, job.kind):
        check_folder(job, resume, overwrite)
        done, manifest_log = prepare_output(job, resume, overwrite, log)
        try:
            with _caller_settings_kept():
                return _run(job, done, manifest_log, total, progress, command_line, log, started)
        finally:
            manifest_log.close()


def make_output_folder(out: Location) -> None:
    """Create a local output folder (a bucket prefix needs nothing)."""
    if is_url(out):
        return
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError.from_os_error(error, out, "cannot create the output folder") from error


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
        if _process_setup.cache_info().currsize and os.getpid() == _parent_pid():
            import cv2

            cv2.setNumThreads(threads)
            _process_setup.cache_clear()


def _run(job, done, manifest_log, total, progress, command_line, log, started) -> JobSummary:
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
        samples = (sample for sample in plan(job.config, log) if sample.label not in done)
        meta.status = run_masks(job, samples, manifest_log, summary, total, progress, log)
    except NsegaugError as error:  # the store failed, a scheduler went away: one line, the run failed
        meta.status, fault = "failed", error
    except Exception:
        meta.status = "failed"  # whatever it was, it was not an interruption
        raise
    finally:
        summary.elapsed = time.perf_counter() - started
        fault = finish_run(job, manifest_log, meta, summary, total, log) or fault
    if fault is not None:
        raise fault
    return summary


def run_masks(
    job: MaskJob,
    samples: Iterator[Sample],
    manifest_log: ManifestLog,
    summary: JobSummary,
    total: int | None,
    progress: bool,
    log: Log,
) -> str:
    """Process ``samples`` in parallel, adding each mask's rows to the manifest once its files exist.

    Returns the run's status: ``complete``, or ``failed`` when a mask failed.
    An interruption propagates (the caller records ``interrupted``).
    """
    outcomes = _run_parallel(job, samples, None if total is None else total - summary.skipped, log)
    with _progress_bar(total, progress, initial=summary.skipped) as bar, _quiet_cancellation(), closing(outcomes):
        for outcome in outcomes:
            bar.update(1)
            for warning in outcome.warnings:
                log(f"warning: {warning}")
            summary.unpaired += outcome.unpaired
            if outcome.error:
                summary.failed += 1
                summary.failures.append(outcome.error)
                log(f"error: {outcome.error}")
                if job.config.on_error == "fail":
                    # Masks already running may still write files; they are not in
                    # the manifest, so the end of the run removes them.
                    break
                continue
            manifest_log.append(outcome.rows)
            job.observe(outcome.rows)
            summary.masks += 1
            summary.outputs_written += sum(1 for row in outcome.rows if row.output)
    return "failed" if summary.failed else "complete"


def finish_run(
    job: MaskJob, manifest_log: ManifestLog, meta: RunMeta, summary: JobSummary, total: int | None, log: Log
) -> StorageError | None:
    """Sort the manifest, remove what it does not list, and record how the run ended.

    Each step is tried even when one before it failed (a full disk), and the
    first failure is returned, so the metadata says ``failed`` wherever the
    folder still takes a write.
    """
    out = job.config.out
    if meta.status == "running":
        meta.status = "interrupted"
    faults: list[StorageError] = []
    rows = _step(faults, manifest_log.manifest, "cannot sort the manifest", manifest_log.finish)
    # Even when the sort failed (a full disk), the unsorted manifest says what is listed; removing the rest
    # also frees the space the record of the run needs.
    listed_in = rows if rows is not None else _step(faults, out, "cannot read the manifest", manifest_log.rows_file)
    _step(faults, out, "cannot clean up", lambda: _sweep(job, listed_in))
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


def _step(faults: list[StorageError], location: Location, doing: str, action: Callable):
    """``action()``; an I/O fault is added to ``faults`` as one line instead of stopping the end of a run."""
    try:
        return action()
    except StorageError as error:
        faults.append(error)
    except (OSError, ManifestError) as error:
        faults.append(StorageError.from_os_error(error, location, doing) if isinstance(error, OSError) else error)
    return None


def _sweep(job: MaskJob, rows: Path | None) -> None:
    """Remove what the manifest does not list: temp files of stopped workers, the files of masks whose rows
    were never appended (a failure, an interruption, a stop after the first error)."""
    out = job.config.out
    remove_temporary_files(out)
    listed = _listed_outputs(rows, job.row_type, out)
    parameters = job.parameters()
    stale = [name for name in storage.walk(out) if not _is_record(name) and name not in listed]
    _remove(out, [name for name in stale if job.could_write(name, parameters, out)])


def _record(meta: RunMeta, summary: JobSummary, total: int | None) -> None:
    meta.finished = _now()
    meta.elapsed_s = round(summary.elapsed, 3)
    meta.counts = {
        "masks_total": total if total is not None else summary.masks + summary.skipped + summary.failed,
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


def _write_meta(out: Location, meta: RunMeta) -> None:
    try:
        write_meta(join(out, META_NAME), meta)
    except OSError as error:
        raise StorageError.from_os_error(error, join(out, META_NAME), "cannot record the run") from error


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- workers


def process_mask(job: MaskJob, sample: Sample) -> MaskOutcome:
    """Read one mask, pair it with its image, write its outputs whole, return its manifest rows.

    Runs in a worker: the mask is read here, not shipped from the parent,
    and the outputs go from here to their folder or bucket. Every failure of
    this file becomes ``MaskOutcome.error``, one line that names the file.
    """
    config = job.config
    _worker_setup(config.max_pixels)
    storage.configure(config.storage_options)
    source = join(config.labels, sample.label)
    warnings_of_mask: list[str] = []
    try:
        if config.images is not None:
            sample = paired(config, sample)
            if sample.image is None:
                warnings_of_mask.append(f"{storage.shown(source)}: no image found in {storage.shown(config.images)}")
        rows, outputs = job.make(sample, source, storage.read_bytes(source))
        for output in outputs:
            _write_output(config.out, output)
        return MaskOutcome(
            sample.label, rows, None, tuple(warnings_of_mask), sample.image is None and config.images is not None
        )
    except Exception as error:  # noqa: BLE001 - every failure of one file is that file's one line
        return MaskOutcome(sample.label, [], _one_line(source, error), tuple(warnings_of_mask))


def output_location(out: Location, name: str) -> Location:
    """``out/name``, once ``name`` is known to stay inside ``out``: relative, without ``..``, and on a disk not
    led elsewhere by a link among its folders (planted, or left by a tool). Every file the engine writes or
    removes is reached through here, whatever a record or a link says; :class:`StorageError` otherwise."""
    if not _is_relative_name(name):
        raise StorageError(name, f"not a name inside the output folder {storage.shown(out)}")
    target = join(out, name)
    if not is_url(out) and not is_inside(Path(target).parent, out):
        raise StorageError(target, f"resolves outside the output folder {shown_path(Path(out).resolve())}")
    return target


def _is_relative_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


def _write_output(out: Location, output: Output) -> None:
    target = output_location(out, output.name)  # before any folder is made: a link must not lead the mkdir out
    if is_url(out):
        storage.write_bytes(target, output.data)
        return
    from .io import write_bytes_atomic

    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not is_inside(folder, out):  # a link swapped in while the folders were made
            raise StorageError(target, f"resolves outside the output folder {shown_path(Path(out).resolve())}")
        # Not flushed to disk one by one: an OS crash can only leave a damaged
        # copy, and resume checks every output's checksum.
        write_bytes_atomic(target, output.data, durable=False)
    except StorageError:
        raise
    except OSError as error:  # a full disk or a refused write: the line names the output, not the source
        raise StorageError.from_os_error(error, target, "cannot write") from error


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


def _worker_setup(max_pixels: int | None) -> None:
    """Per task: Pillow's size guard (a worker may serve several runs); once per process: one OpenCV thread,
    and a watch on the parent."""
    global _PILLOW_MAX_PIXELS
    from PIL import Image

    if _PILLOW_MAX_PIXELS is None:  # Pillow's own limit, kept before any run changes it
        _PILLOW_MAX_PIXELS = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels if max_pixels is not None else _PILLOW_MAX_PIXELS
    _process_setup()


_PILLOW_MAX_PIXELS: int | None = None


@lru_cache(maxsize=1)
def _process_setup() -> None:
    import cv2

    # Parallelism comes from the worker processes; OpenCV's own threads would only fight them for the cores.
    cv2.setNumThreads(1)
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


def _run_parallel(
    job: MaskJob, samples: Iterator[Sample], work_items: int | None = None, log: Log = lambda message: None
) -> Iterator[MaskOutcome]:
    from joblib import Parallel, delayed

    from .cpus import capped_note, worker_count

    # Workers know the parent by pid: in the parent itself (jobs=1 runs in process) no watch is needed.
    os.environ["NSEGAUG_PARENT_PID"] = str(os.getpid())
    tasks = (delayed(process_mask)(job, sample) for sample in samples)
    workers = worker_count(job.config.jobs, work_items)
    if not job.config.scheduler and (note := capped_note(job.config.jobs, workers, work_items)):
        log(note)
    if job.config.backend == "dask":
        sent, secrets = _without_secrets(job)
        if secrets and job.config.scheduler:
            log(f"note: credentials in the storage options are not sent to the workers at {job.config.scheduler}")
        tasks = (delayed(process_mask)(sent, sample) for sample in samples)
        with _dask_backend(job.config, workers, secrets):
            yield from Parallel(n_jobs=-1, return_as="generator_unordered")(tasks)
        return
    # A bounded number of tasks in flight keeps memory flat on huge datasets.
    yield from Parallel(n_jobs=workers, return_as="generator_unordered", pre_dispatch="2*n_jobs")(tasks)


def _without_secrets(job: MaskJob) -> tuple[MaskJob, dict]:
    """The job as the Dask task graph carries it (its storage options without secrets), and the secrets."""
    public, secrets = storage.split_secrets(job.config.storage_options)
    if not secrets:
        return job, {}
    sent = copy.copy(job)
    sent.config = dataclasses.replace(job.config, storage_options=public)
    return sent, secrets


@contextmanager
def _quiet_cancellation():
    # Stopping early (on_error fail, Ctrl-C) cancels queued tasks on
    # purpose; joblib would warn about it on the user's terminal.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tasks which were still being processed", category=UserWarning)
        yield


def _check_dask(scheduler: str | None) -> None:
    """Refuse a dask run that cannot start before anything is written: no dask, or a scheduler nobody answers at."""
    import importlib.util
    import socket

    if importlib.util.find_spec("distributed") is None:
        raise UsageError("the dask backend needs the dask extra: pip install 'nsegaug[dask]'")
    if not scheduler:
        return
    address = scheduler.split("://", 1)[-1]
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"dask scheduler {scheduler}: not an address like tcp://host:8786")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=SCHEDULER_TIMEOUT_S).close()
    except OSError as error:
        raise UsageError(f"dask scheduler {scheduler}: cannot connect ({error.strerror or error})") from error


# How long --scheduler has to answer before a run is refused.
SCHEDULER_TIMEOUT_S = 10.0


@contextmanager
def _dask_backend(config: JobConfig, workers: int, secrets: dict):
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
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        if secrets:  # workers of this machine, started here: given the secrets apart from the graph
            from .dask_secrets import StorageSecrets

            client.register_plugin(StorageSecrets(secrets))
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
