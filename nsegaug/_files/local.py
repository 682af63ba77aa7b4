"""Bytes on this machine's disk: written whole or not at all, and never through a link where nsegaug keeps a file.

`atomic_writer` writes a temporary file beside the target and renames
it into place; the temporary file is created new (``O_EXCL``, which never
follows a link). `open_own` opens a file nsegaug keeps for itself in
an output folder (its lock, a manifest it appends to, a training log) with
``O_NOFOLLOW``. A link found under such a name is a
[`StorageError`][nsegaug.errors.StorageError] naming it, and its target is
never touched: a link planted in an output folder cannot make nsegaug
overwrite a file elsewhere. [`nsegaug.storage`][nsegaug.storage] re-exports
these for its callers.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import StorageError, shown_path


def link_error(path: os.PathLike | str) -> StorageError:
    """The error of a link found where nsegaug keeps a file of its own (a lock, a record, a temporary file)."""
    try:
        target = f" (to {shown_path(os.readlink(path))})"
    except OSError:
        target = ""
    return StorageError(
        path,
        f"a link{target} where nsegaug keeps a file of its own; it never writes through a link: remove the link",
        errno.ELOOP,
    )


def open_own(path: os.PathLike | str, flags: int, mode: int = 0o644) -> int:
    """``os.open`` of a file nsegaug keeps for itself in an output folder, never through a link: a link under
    its name (planted, or left by a tool) is a [`StorageError`][nsegaug.errors.StorageError] naming it."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        # ELOOP: Linux and the BSDs; EMLINK: FreeBSD; both only when the last part of the name is a link.
        if error.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise link_error(path) from error
        raise


def make_folders(folder: Path, doing: str = "cannot create the folder") -> list[Path]:
    """Make ``folder`` and the missing folders above it one level at a time; the folders made now, the deepest
    first, so that a run refused afterwards removes just those (`remove_made_folders`). A folder another
    process makes at the same moment is theirs. [`StorageError`][nsegaug.errors.StorageError] naming the
    folder that could not be made, and ``doing``."""
    made = []
    for level in (*reversed(folder.parents), folder):
        if level.is_dir():
            continue
        try:
            level.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            remove_made_folders(made[::-1])
            raise StorageError.from_os_error(error, level, doing) from error
        made.append(level)
    return made[::-1]


def remove_made_folders(made: list[Path]) -> None:
    """Remove the folders [`make_folders`][nsegaug._files.local.make_folders] made (deepest first) while they
    are empty; one that is not (something was written after all) is kept, with those above it."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            return


@contextmanager
def atomic_writer(path: os.PathLike | str, durable: bool = True, own: bool = True) -> Iterator[BinaryIO]:
    """A binary stream whose content replaces ``path`` only when the block ends without error.

    The bytes go to ``.<name>.<pid>-<thread>.tmp`` in the same folder (same file system,
    so the rename is atomic), are flushed to disk, then renamed into place:
    ``path`` is always either absent, old or complete. The temporary file is
    created new (``O_EXCL``), never through a link; with ``own`` (a file
    nsegaug keeps for itself: a record, a checkpoint, an output) a link at
    ``path`` is an error naming it instead of being replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if own and path.is_symlink():
        raise link_error(path)
    # The thread too: threads of one process may write the same file (a cache filled by a thread pool).
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    descriptor = _new_temporary(temporary)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if _about_this_write(error, temporary):
            # A full disk raises from write() without a file name: name the file being written, not "?" nor
            # the temporary file the user never asked for.
            raise StorageError.from_os_error(error, path, "cannot write") from error
        raise


def _about_this_write(error: BaseException, temporary: Path) -> bool:
    """Whether ``error`` is an OS error of the write itself (no file named, or the temporary file), not one of
    the caller's reads inside the block (which names its own file) nor one already worded."""
    if not isinstance(error, OSError) or isinstance(error, StorageError):
        return False
    return error.filename is None or os.fspath(error.filename) == os.fspath(temporary)


def _new_temporary(temporary: Path) -> int:
    """A new file, opened for writing: one left under this name by a killed process of the same pid is removed
    first, a link under it is an error (``O_EXCL`` does not follow it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return open_own(temporary, flags)
    except FileExistsError:
        if temporary.is_symlink():
            raise link_error(temporary) from None
        temporary.unlink(missing_ok=True)
        return open_own(temporary, flags)


def write_bytes_atomic(path: os.PathLike | str, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see `atomic_writer`).

    ``durable=False`` skips the flush to disk: the rename is still atomic for a
    killed process, and only a power cut can leave an incomplete file, which
    callers that verify checksums (``generate --resume``) detect.
    """
    with atomic_writer(path, durable) as stream:
        stream.write(data)


def sha256_file(path: os.PathLike | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def flock_within(descriptor: int, seconds: float, poll_s: float) -> bool:
    """The exclusive flock of ``descriptor``, tried every ``poll_s`` for ``seconds``; False when a holder keeps it
    longer (POSIX only: the callers import it where they lock)."""
    import fcntl

    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
