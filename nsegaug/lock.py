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
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from . import storage
from .errors import FolderHeld, StorageError
from .storage import Location

LOCK_NAME = ".nsegaug.lock"
# How long a refused run waits for the holder of a local lock to write its name.
HOLDER_WAIT_S = 2.0


def holder_identity(command: str) -> dict:
    """Who holds a folder: as a refusal shows it, and (token) as a bucket's lock is checked."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "token": secrets.token_hex(8),
    }


def describe(holder: dict) -> str:
    """A holder in words, for a refusal."""
    if not holder:
        return "another run (it has not said who it is yet)"
    return (
        f"{holder.get('command', 'a')} run on host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
        f"started {holder.get('started', '?')}"
    )


@contextmanager
def hold(folder: Location, command: str) -> Iterator[dict]:
    """Hold ``folder`` (which must exist, or be a bucket prefix) until the block ends; :class:`FolderHeld`
    naming the holder when another run holds it."""
    identity = holder_identity(command)
    if storage.is_url(folder):
        with _hold_object(folder, identity):
            yield identity
    else:
        with _hold_file(Path(folder), identity):
            yield identity


@contextmanager
def _hold_file(folder: Path, identity: dict) -> Iterator[None]:
    path = folder / LOCK_NAME
    descriptor = _lock_file(path)
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (json.dumps(identity) + "\n").encode("utf-8"), 0)
        yield
    finally:
        try:
            path.unlink(missing_ok=True)  # while still held: nobody can take it over in between
        finally:
            os.close(descriptor)  # drops the flock


def _lock_file(path: Path) -> int:
    """An open descriptor of ``path`` that holds its flock, where ``path`` is still that file."""
    import fcntl

    while True:
        try:
            descriptor = storage.open_own(path, os.O_RDWR | os.O_CREAT)  # a link there: an error naming it
        except StorageError:
            raise
        except OSError as error:
            raise StorageError.from_os_error(error, path, "cannot take the output folder") from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise FolderHeld(f"{storage.shown(path.parent)} is in use by {describe(_named_holder(path))}") from None
        try:
            if os.lstat(path).st_ino == os.fstat(descriptor).st_ino:  # a link swapped in is not this file
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)  # the holder before removed it as it let go: take the new file


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
