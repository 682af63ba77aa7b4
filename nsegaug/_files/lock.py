"""One run per output folder: a run holds its folder for its whole life, and a second run is refused.

On a local disk the hold is an ``flock`` on ``<folder>/.nsegaug.lock``: the
kernel drops it when the holding process ends, however it ends (SIGKILL
included), so a lock is never stale. The file names its holder, and a
refusal quotes it. The holder removes the file before it lets go, so a
finished run leaves none; a run that took the lock of a file removed in the
meantime sees that it holds a file nobody else can open, and takes the lock
again (the usual flock-and-unlink pattern). A killed run's file is taken
over by the next run.
The file is opened without following links (``O_NOFOLLOW``): a link
planted under its name is an error naming it, and its target is never
touched.

An object store has no locks. There the hold is the object
``<prefix>/.nsegaug.lock``, written by the holder with its identity (host,
pid, start time, a random token) and read back to check that this run's
token is the one that stayed; it is removed when the run ends. A run killed
outright leaves its lock object behind: a later run on the same host breaks
it when that pid is gone, and anywhere else it is refused with a line that
says how to break it (remove the object, once you know the holder is gone).

**Nested runs.** A run's clean-up removes the files its records do not
list, so a run inside another's folder would lose its outputs to it, and a
run around another's would take the inner run's files for its own. Once it
holds its folder, a run is refused ([`FolderHeld`][nsegaug.errors.FolderHeld],
naming the other folder and its holder) when a folder above its own is held
by another live run, or a folder below it is ([`refuse_held_inside`][nsegaug._files.lock.refuse_held_inside]).
Each run checks after it has taken its own hold, so of two runs starting at
once at least one sees the other. A folder above is found by looking for a
lock at each level (a few system calls; on a bucket, a request per level);
a folder below from the listing of the folder, which the job engine takes
once for all its checks. On a local disk a lock is live when its ``flock``
is held (probed with a shared lock that lasts microseconds; a run taking its
own lock retries for ``PROBE_WAIT_S`` before it calls a folder held); on
a bucket, when its lock object is there and not known stale.

A holder may let the processes it starts run inside its folder (a study
runs ``nsegaug noise``, ``generate`` and ``train`` into sub-folders of its
own): it passes them [`child_environment`][nsegaug._files.lock.child_environment] of its identity, and their
hold accepts a folder above that is held by that holder, that folder only.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .. import storage
from ..errors import FolderHeld, RunRefused, StorageError
from ..storage import Location
from .local import flock_within, open_own

LOCK_NAME = ".nsegaug.lock"
# How long a refused run waits for the holder of a local lock to write its name.
HOLDER_WAIT_S = 2.0
# How long a run taking a local lock retries while it is taken: a check by a nested run lasts microseconds.
PROBE_WAIT_S = 0.25
# The environment variable that lets a holder's child processes nest their runs in its folder.
DELEGATION_ENV = "NSEGAUG_HOLDER"


def holder_identity(command: str, folder: Location | None = None) -> dict:
    """Who holds a folder: as a refusal shows it, and (token) as a bucket's lock and a delegation are checked."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "token": secrets.token_hex(8),
        "folder": _folder_name(folder) if folder is not None else None,
    }


def describe(holder: dict) -> str:
    """A holder in words, for a refusal."""
    if not holder:
        return "another run (it has not said who it is yet)"
    return (
        f"{holder.get('command', 'a')} run on host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
        f"started {holder.get('started', '?')}"
    )


def child_environment(identity: dict) -> dict[str, str]:
    """The environment variables a holder passes to the processes it starts, so that their runs may nest inside
    its folder: their ``hold`` accepts the folder of ``identity`` (what ``hold`` yielded) above their
    own, and no other held folder. Add them to the child's environment (``{**os.environ, **child_environment(
    identity)}``)."""
    return {DELEGATION_ENV: json.dumps({"folder": identity["folder"], "token": identity["token"]})}


@contextmanager
def hold(folder: Location, command: str, *, check_inside: bool = True) -> Iterator[dict]:
    """Hold ``folder`` (which must exist, or be a bucket prefix) until the block ends; yields this run's
    identity (for [`child_environment`][nsegaug._files.lock.child_environment]).

    [`FolderHeld`][nsegaug.errors.FolderHeld] naming the holder when another run holds it, holds a folder
    above it, or (with ``check_inside``, which lists ``folder``) a folder below it; a caller that lists the
    folder anyway passes ``check_inside=False`` and calls
    [`refuse_held_inside`][nsegaug._files.lock.refuse_held_inside] with its listing.
    """
    identity = holder_identity(command, folder)
    taking = _hold_object(folder, identity) if storage.is_url(folder) else _hold_file(Path(folder), identity)
    with taking:
        # Checked once this run holds its folder: a run nesting with it a moment later sees this one.
        _refuse_held_above(folder)
        if check_inside:
            refuse_held_inside(folder, storage.walk(folder))
        yield identity


def refuse_held_inside(folder: Location, names: Iterable[str]) -> None:
    """[`FolderHeld`][nsegaug.errors.FolderHeld] when a sub-folder of ``folder`` is held by a live run;
    ``names`` are the files under ``folder`` (relative, as [`walk`][nsegaug.storage.walk] lists them), so a
    caller lists a big folder once."""
    for name in names:
        inner, _, base = name.rpartition("/")
        if base != LOCK_NAME or not inner:
            continue
        below = storage.join(folder, inner)
        holder = _live_holder(storage.join(below, LOCK_NAME))
        if holder is not None:
            raise FolderHeld(
                f"{storage.shown(folder)} contains {storage.shown(below)}, which is in use by {describe(holder)}; "
                "a run around another's would take its files: wait for it, or choose another output folder"
            )


def _refuse_held_above(folder: Location) -> None:
    for above in _folders_above(folder):
        holder = _live_holder(storage.join(above, LOCK_NAME))
        if holder is not None and not _delegated_to_us(above, holder):
            raise FolderHeld(
                f"{storage.shown(folder)} is inside {storage.shown(above)}, which is in use by {describe(holder)}; "
                "its clean-up would remove this run's files: choose an output folder outside it"
            )


def _folders_above(folder: Location) -> list[Location]:
    """The folders that hold ``folder``, nearest first: on a disk up to the root (links resolved), in a bucket
    up to the bucket."""
    if storage.is_url(folder):
        scheme, _, path = str(storage.public(folder)).partition("://")
        parts = path.strip("/").split("/")
        return [f"{scheme}://{'/'.join(parts[:end])}" for end in range(len(parts) - 1, 0, -1)]
    return list(Path(folder).resolve().parents)


def _folder_name(folder: Location) -> str:
    """A folder as a lock record and a delegation name it: a URL without credentials, a resolved path."""
    return str(storage.public(folder)) if storage.is_url(folder) else str(Path(folder).resolve())


def _delegated_to_us(above: Location, holder: dict) -> bool:
    """Whether the holder of ``above`` started this process to run inside it (``child_environment``)."""
    try:
        delegation = json.loads(os.environ.get(DELEGATION_ENV, ""))
    except ValueError:
        return False
    if not isinstance(delegation, dict) or not holder.get("token"):
        return False
    return delegation.get("token") == holder["token"] and delegation.get("folder") == _folder_name(above)


def _live_holder(path: Location) -> dict | None:
    """The holder of the lock ``path`` when a live run holds it (None: no lock, or nobody holds it)."""
    if storage.is_url(path):
        if not storage.exists(path):
            return None
        holder = _read_holder(path)
        return None if _is_stale(holder) else holder
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # none there, a link (not a lock), no permission to look: not a hold this run can see
        return None
    import fcntl

    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        try:
            # A shared lock, let go at once: it fails while a run holds the file's exclusive one.
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _named_holder(Path(path))
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


@contextmanager
def _hold_file(folder: Path, identity: dict) -> Iterator[None]:
    path = folder / LOCK_NAME
    descriptor = _lock_file(path)
    try:
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, (json.dumps(identity) + "\n").encode("utf-8"), 0)
        except OSError as error:  # a full disk: the lock file is the first file a run writes
            raise StorageError.from_os_error(error, path, "cannot write the lock") from error
        yield
    finally:
        try:
            path.unlink(missing_ok=True)  # while still held: nobody can take it over in between
        finally:
            os.close(descriptor)  # drops the flock


def _lock_file(path: Path) -> int:
    """An open descriptor of ``path`` that holds its flock, where ``path`` is still that file."""
    while True:
        try:
            descriptor = open_own(path, os.O_RDWR | os.O_CREAT)
        except StorageError as error:  # a link there: the folder cannot be taken, nothing is written
            raise RunRefused(str(error)) from error
        except OSError as error:
            raise StorageError.from_os_error(error, path, "cannot take the output folder") from error
        if not _take(descriptor):
            os.close(descriptor)
            raise FolderHeld(f"{storage.shown(path.parent)} is in use by {describe(_named_holder(path))}") from None
        try:
            if os.lstat(path).st_ino == os.fstat(descriptor).st_ino:  # a link swapped in is not this file
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)  # the holder before removed it as it let go: take the new file


def _take(descriptor: int) -> bool:
    """The exclusive flock of ``descriptor``, tried for ``PROBE_WAIT_S``: another run's check of a folder above
    or below its own holds a shared lock for an instant (``_live_holder``), which must not read as a run."""
    return flock_within(descriptor, PROBE_WAIT_S, poll_s=0.005)


def _named_holder(path: Path) -> dict:
    """The holder of a local lock, waiting a moment for it to write its name: a run that took the flock an
    instant ago may not have written it yet."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while not (holder := _read_holder(path)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return holder


def _read_holder(path: Location) -> dict:
    try:
        holder = json.loads(storage.read_bytes(path).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextmanager
def _hold_object(folder: str, identity: dict) -> Iterator[None]:
    path = storage.join(folder, LOCK_NAME)
    holder = _read_holder(path) if storage.exists(path) else None
    if holder is not None and not _is_stale(holder):
        raise FolderHeld(
            f"{storage.shown(folder)} is in use by {describe(holder)}; if that run is gone, "
            f"remove {storage.shown(path)} and start again"
        )
    try:
        storage.write_bytes(path, (json.dumps(identity) + "\n").encode("utf-8"))
    except StorageError as error:  # no such bucket, no permission: about the folder, not about the lock
        raise StorageError(folder, f"cannot take the output folder: {error.reason}", error.errno) from error
    # Two runs that both found no lock both wrote one: the last write stays, and the other run sees it here.
    if _read_holder(path).get("token") != identity["token"]:
        raise FolderHeld(f"{storage.shown(folder)} is in use by {describe(_read_holder(path))}")
    try:
        yield
    finally:
        if _read_holder(path).get("token") == identity["token"]:
            storage.remove(path)


def _is_stale(holder: dict) -> bool:
    """A lock object left by a run of this host whose process is gone."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
