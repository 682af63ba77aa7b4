"""The output folder: what is in it, what a run may touch there, and how it is made ready and left.

Nothing outside the output folder is created, changed or deleted: every
name the engine writes or removes goes through `output_location`,
whatever a record or a link says. Before a run, `prepare_output`
recognises an earlier run's files (those its manifest lists, and those its
recorded kind may have written before it was stopped), removes them on
overwrite, verifies them on resume, and refuses a folder holding anything
else; after it, `sweep` removes what the manifest does not list.

Another run's folder inside the output folder (a sub-folder holding a lock,
a manifest or its metadata: [`other_run_folders`][nsegaug._jobs.folder.other_run_folders]) is never touched: a
run into a folder that holds one is refused, naming it, and the sweep at the
end of a run, as well as the removal of temporary files, leaves every file
under such a sub-folder alone.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from .. import storage
from .._files.label_folders import is_inside
from .._files.local import make_folders
from .._files.lock import LOCK_NAME
from ..errors import ManifestError, RunRefused, StorageError, shown_path
from ..manifest import KINDS, MANIFEST_NAME, META_NAME, RunMeta, iter_mask_groups, read_meta
from ..storage import Location, is_url, join
from .config import Log
from .job import MaskJob
from .manifest_log import PARTS, ManifestLog

# How many files a refusal names; the count covers them all.
SHOWN_FILES = 5


def output_location(out: Location, name: str) -> Location:
    """``out/name``, once ``name`` is known to stay inside ``out``: relative, without ``..``, and on a disk not
    led elsewhere by a link among its folders (planted, or left by a tool). Every file the engine writes or
    removes is reached through here, whatever a record or a link says; [`StorageError`][nsegaug.errors.StorageError]
    otherwise."""
    if not _is_relative_name(name):
        raise StorageError(name, f"not a name inside the output folder {storage.shown(out)}")
    target = join(out, name)
    if not is_url(out) and not is_inside(Path(target).parent, out):
        raise StorageError(target, f"resolves outside the output folder {shown_path(Path(out).resolve())}")
    return target


def _is_relative_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


def make_output_folder(out: Location) -> list[Path]:
    """Create a local output folder and the missing ones above it (a bucket prefix needs nothing); the folders
    made now, the deepest first, for [`remove_made_folders`][nsegaug._files.local.remove_made_folders] to take back
    when the run is refused."""
    return [] if is_url(out) else make_folders(Path(out), "cannot create the output folder")


def prepare_output(
    job: MaskJob, resume: bool, overwrite: bool, log: Log, names: list[str] | None = None
) -> tuple[set[str], ManifestLog]:
    """Make the output folder ready for this run: the labels an earlier run finished (on resume), and the log.

    Files an earlier run wrote (those its manifest lists, and those it may
    have written before being stopped) are removed with ``overwrite``, also
    when that run was of another kind or its records are damaged; a file no
    earlier nsegaug run could have written, or another run's folder inside,
    stops the run ([`RunRefused`][nsegaug.errors.RunRefused] naming it): the folder may hold
    someone's data. ``names``: the folder's listing, when the caller has it.
    """
    out = job.config.out
    # Listed once: on a bucket a listing is a request per thousand keys.
    names = list(storage.walk(out)) if names is None else names
    refuse_other_runs_inside(out, names)
    previous = previous_run(out, overwrite, log)
    manifest_log = ManifestLog(out, job.row_type)
    rows = manifest_log.rows_file() if (resume or overwrite) else None
    row_type = previous.row_type if previous else job.row_type
    listed = _listed_outputs(rows, row_type, out, overwrite, log)
    foreign = [name for name in names if not _is_ours(name, listed, previous, out)]
    if foreign:
        shown = ", ".join(shown_path(name) for name in foreign[:SHOWN_FILES])
        more = f" and {len(foreign) - SHOWN_FILES} more" if len(foreign) > SHOWN_FILES else ""
        raise RunRefused(
            f"{storage.shown(out)} holds files no nsegaug run wrote: {shown}{more}; "
            "move them away, or choose another output folder"
        )
    remove_temporary_files(out, names)
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


def other_run_folders(names: list[str]) -> list[str]:
    """The sub-folders (relative) that hold another run's records: a lock, a manifest, its metadata or a remote
    manifest's parts; ``names`` as [`walk`][nsegaug.storage.walk] lists a folder."""
    found = set()
    for name in names:
        parts = name.split("/")
        if len(parts) > 1 and parts[-1] in (LOCK_NAME, MANIFEST_NAME, META_NAME):
            found.add("/".join(parts[:-1]))
        elif PARTS in parts[1:-1]:
            found.add("/".join(parts[: parts.index(PARTS, 1)]))
    return sorted(found)


def refuse_other_runs_inside(out: Location, names: list[str]) -> None:
    """Refuse a run into a folder that holds another run's folder: its clean-up would take that run's files for
    its own ([`RunRefused`][nsegaug.errors.RunRefused] naming them)."""
    inner = other_run_folders(names)
    if inner:
        shown = ", ".join(storage.shown(join(out, name)) for name in inner[:SHOWN_FILES])
        more = f" and {len(inner) - SHOWN_FILES} more" if len(inner) > SHOWN_FILES else ""
        raise RunRefused(
            f"{storage.shown(out)} holds the folder of another nsegaug run: {shown}{more}; nsegaug never removes "
            "another run's files nor mixes its own with them: move it away, or choose another output folder"
        )


def _outside_other_runs(names: list[str]) -> list[str]:
    """``names`` but those inside another run's folder."""
    inner = tuple(folder + "/" for folder in other_run_folders(names))
    return [name for name in names if not name.startswith(inner)] if inner else names


def previous_run(out: Location, overwrite: bool, log: Log) -> RunMeta | None:
    """The record of the run that wrote ``out`` (None: none). With ``overwrite`` a damaged record is only
    warned about: starting again is the way out of it, so it must not be refused for it."""
    meta = join(out, META_NAME)
    if not storage.exists(meta):
        return None
    try:
        return read_meta(meta)  # a kind this version does not know is a ManifestError
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
    return previous is not None and KINDS[previous.kind].could_write(name, previous.parameters, out)


def _is_temporary(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(".tmp")


def _listed_outputs(
    rows: Path | None, row_type: type, out: Location, overwrite: bool = False, log: Log | None = None
) -> set[str]:
    """The outputs ``rows`` lists; with ``overwrite``, a damaged manifest lists nothing and a row naming a file
    outside ``out`` is left out (both warned about); without, either is a
    [`ManifestError`][nsegaug.errors.ManifestError]."""
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
    """Whether a recorded output name stays inside ``out`` (as `output_location` judges), each folder
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


def remove_temporary_files(out: Location, names: list[str] | None = None) -> None:
    """Temp files of a killed run (``.<name>.<pid>.tmp``): never outputs, safe to delete (a store has none);
    ``names``: the folder's listing, when the caller has it. Those of another run's folder inside are its own."""
    if is_url(out):
        return
    names = list(storage.walk(out)) if names is None else names  # walked without following links
    for name in _outside_other_runs(names):
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


def sweep(job: MaskJob, rows: Path | None) -> None:
    """Remove what the manifest does not list: temp files of stopped workers, the files of masks whose rows
    were never appended (a failure, an interruption, a stop after the first error). A file inside another
    run's folder is never removed ([`other_run_folders`][nsegaug._jobs.folder.other_run_folders])."""
    out = job.config.out
    names = _outside_other_runs(list(storage.walk(out)))
    remove_temporary_files(out, names)
    listed = _listed_outputs(rows, job.row_type, out)
    parameters = job.parameters()
    stale = [name for name in names if not _is_record(name) and not _is_temporary(name) and name not in listed]
    could_write = KINDS[job.kind].could_write
    _remove(out, [name for name in stale if could_write(name, parameters, out)])
