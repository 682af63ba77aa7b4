"""The errors nsegaug raises on purpose: one base, and the few kinds a caller can act on.

Each kind is also the builtin it is (a bad value is a ``ValueError``, a
failed read or write an ``OSError``), so ``except ValueError`` keeps working
for callers that do not know nsegaug. ``str(error)`` is one line (a refused
run may add indented detail lines) naming the file and the cause; messages
speak of files and parameters, never of command-line flags: the command line
maps each kind to its own wording and exit code in one place
(``nsegaug.cli``).
"""

from __future__ import annotations

import os


class NsegaugError(Exception):
    """Base of every error nsegaug raises on purpose."""


class UsageError(NsegaugError, ValueError):
    """A request that cannot be met as asked: a parameter out of range, options that exclude each other, a
    folder named that is not there."""


class RunRefused(NsegaugError, ValueError):
    """A run refused, before it writes anything, by the state of its output or run folder: held by another run,
    holding an earlier run's files or files no nsegaug run wrote, or a run that cannot be resumed as asked.
    Not a usage mistake: the same request runs once the folder allows it (the command line's exit code 3)."""


class OutputInUse(RunRefused):
    """An output folder that holds an earlier run's files: resume that run, or overwrite it."""


class FolderHeld(RunRefused):
    """An output folder that another run holds now, or one inside or around such a folder; ``str()`` names the
    holder (host, pid, start)."""


class LabelFormatError(NsegaugError, ValueError):
    """A file that is not a usable label map; ``str()`` names the file and the reason."""

    def __init__(self, path: os.PathLike | str, reason: str) -> None:
        super().__init__(f"{shown_path(path)}: {reason}")
        self.path = str(path)
        self.reason = reason


class NotEnoughMemory(NsegaugError, MemoryError):
    """A map that needs more memory than this process may use; ``str()`` names the file and the estimate."""

    def __init__(self, path: os.PathLike | str, reason: str) -> None:
        super().__init__(f"{shown_path(path)}: {reason}")
        self.path = str(path)
        self.reason = reason


class ManifestError(NsegaugError, ValueError):
    """A manifest or its metadata that cannot be used; the message names the file and line."""


class TrainError(NsegaugError, ValueError):
    """A training run that cannot start or go on with this data, run folder or checkpoint."""


class StorageError(NsegaugError, OSError):
    """A read or write that failed (full disk, no permission, a missing folder); names the path and the cause."""

    def __init__(self, path: os.PathLike | str, reason: str, errno: int | None = None) -> None:
        super().__init__(f"{shown_path(path)}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.errno = errno

    @classmethod
    def from_os_error(cls, error: OSError, path: os.PathLike | str | None = None, doing: str = "") -> StorageError:
        """The ``OSError`` as a one-line error: the path it concerns and its cause (``doing`` says what failed)."""
        where = path if path is not None else (error.filename or "?")
        cause = error.strerror or str(error) or type(error).__name__
        return cls(where, f"{doing}: {cause}" if doing else cause, error.errno)


def shown_path(path: os.PathLike | str) -> str:
    """A path as messages show it: control characters (a newline in a file name) escaped, so messages stay one line."""
    text = os.fspath(path)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
