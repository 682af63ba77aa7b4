"""Writing a manifest: rows appended once their files exist, and the final sort."""

from __future__ import annotations

import os
from collections.abc import Container, Iterable
from pathlib import Path

from .._files.local import atomic_writer, open_own
from .reading import _parse_line
from .rows import CopyRow


def append_rows(path: Path, rows: Iterable) -> None:
    """Append rows as JSON lines and flush them to disk before returning.

    Called only once the rows' files are in place, so a row never names a
    file that is not there.
    """
    data = memoryview("".join(row.to_json() + "\n" for row in rows).encode("utf-8"))
    descriptor = open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # never appended through a link
    with os.fdopen(descriptor, "ab", buffering=0) as handle:  # unbuffered: nothing left to flush after a failure
        size = handle.tell()
        try:
            while data:  # a write may take only part of the bytes (a disk filling up) before one fails
                data = data[handle.write(data) :]
            os.fsync(handle.fileno())
        except OSError:
            # A disk that filled up mid-write keeps part of the rows: cut them off (truncating needs no
            # space), so the manifest ends with its last whole row and the mask is not listed.
            os.ftruncate(handle.fileno(), size)
            raise


def sort_manifest(path: Path, row_type: type = CopyRow, keep: Container[str] | None = None) -> None:
    """Rewrite the manifest atomically, sorted by (label, copy).

    Workers finish in any order; sorting makes the manifest the same for any
    number of jobs, backend, or interruption and resume. A later line for the
    same (label, key) replaces an earlier one (a mask redone on resume), a
    line torn by a killed run is dropped, and ``keep`` limits the rows to
    those labels. Only line offsets are held in memory, not the rows, so
    this stays small on manifests of millions of lines.
    """
    index: dict[tuple[str, int], tuple[int, int]] = {}
    with open(path, "rb") as source:
        offset = 0
        for number, line in enumerate(source, start=1):
            if line.strip():
                row = _parse_line(path, number, line, not line.endswith(b"\n"), row_type)
                if row is None:
                    break
                if keep is None or row.label in keep:
                    index[(row.label, row.key)] = (offset, len(line))
            offset += len(line)
        with atomic_writer(path) as target:
            for key in sorted(index):
                start, length = index[key]
                source.seek(start)
                # A last row whole but without its newline (a write cut short after the closing brace)
                # must not be glued to the row sorted after it.
                target.write(source.read(length).rstrip(b"\n") + b"\n")
