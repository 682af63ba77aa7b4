"""The manifest of a generated dataset: rows (one per output), metadata, resume state."""

from __future__ import annotations

import json
import os
from collections.abc import Container, Iterable, Iterator
from pathlib import Path

from .io import atomic_writer, write_bytes_atomic

MANIFEST_NAME = "manifest.jsonl"
META_NAME = "manifest.meta.json"
SCHEMA_VERSION = 1

# Every row has these keys; see the README's "Manifest" section.
ROW_KEYS = (
    "label",  # source label, relative to meta["labels"]
    "image",  # paired image, relative to meta["images"], or null
    "output",  # this copy, relative to the manifest's folder; null for copy 0 (the source itself)
    "copy",  # 0 for the original, 1..K for the deformed copies
    "deformed",  # false for copy 0 and for copies that the --prob coin left as they were
    "alpha",
    "sigma",
    "changed_fraction",
    "suppressed_fraction",
    "mean_displacement",
    "max_displacement",
    "height",
    "width",
    "sha256_label",
    "sha256_output",
)


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and line."""


def append_rows(path: Path, rows: Iterable[dict]) -> None:
    """Append rows as JSON lines and flush them to disk before returning.

    Called only once the rows' files are in place, so a row never names a
    file that is not there.
    """
    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def iter_rows(path: Path, tolerate_torn_tail: bool = False) -> Iterator[dict]:
    """Rows of a manifest, in file order.

    With ``tolerate_torn_tail``, a last line cut short by a killed run is
    dropped instead of being an error (its outputs are checked again anyway).
    """
    return (row for _, row in iter_numbered_rows(path, tolerate_torn_tail))


def iter_numbered_rows(path: Path, tolerate_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` of a manifest, for messages that name the line; see :func:`iter_rows`."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as error:
        raise ManifestError(f"{path}: cannot read manifest ({error.strerror})") from error
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                # Only the file's last line can lack its newline: a run killed mid-append.
                torn = tolerate_torn_tail and not line.endswith("\n")
                row = _parse_line(path, number, line, last=torn)
                if row is None:
                    return
                yield number, row
        except UnicodeDecodeError as error:
            raise ManifestError(f"{path}: not a text file ({error.reason})") from error


def sort_manifest(path: Path, keep: Container[str] | None = None) -> None:
    """Rewrite the manifest atomically, sorted by (label, copy).

    Workers finish in any order; sorting makes the manifest the same for any
    number of jobs, backend, or interruption and resume. A later line for the
    same (label, copy) replaces an earlier one (a mask redone on resume), a
    line torn by a killed run is dropped, and ``keep`` limits the rows to
    those labels. Only line offsets are held in memory, not the rows, so
    this stays small on manifests of millions of lines.
    """
    index: dict[tuple[str, int], tuple[int, int]] = {}
    with open(path, "rb") as source:
        offset = 0
        for number, line in enumerate(source, start=1):
            if line.strip():
                row = _parse_line(path, number, line, last=not line.endswith(b"\n"))
                if row is None:
                    break
                if keep is None or row["label"] in keep:
                    index[(row["label"], row["copy"])] = (offset, len(line))
            offset += len(line)
        with atomic_writer(path) as target:
            for key in sorted(index):
                start, length = index[key]
                source.seek(start)
                target.write(source.read(length))


def _parse_line(path: Path, number: int, line: bytes | str, last: bool) -> dict | None:
    """The row on a line; None for a torn last line (a run killed mid-append)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        if last:
            return None
        raise ManifestError(f"{path}:{number}: not a JSON object ({error.msg})") from error
    if not isinstance(row, dict) or not set(ROW_KEYS) <= set(row):
        missing = sorted(set(ROW_KEYS) - set(row)) if isinstance(row, dict) else ROW_KEYS
        raise ManifestError(f"{path}:{number}: not a manifest row (missing {', '.join(missing)})")
    return row


def iter_mask_groups(path: Path) -> Iterator[tuple[str, dict[int, dict]]]:
    """``(label, {copy: row})`` for each run of consecutive rows of one label.

    A mask's rows are appended in one write once all its files are in place,
    so a run is one finished mask; a label seen again later was redone.
    Tolerates a torn last line. Holds one mask's rows at a time.
    """
    label, copies = None, {}
    for row in iter_rows(path, tolerate_torn_tail=True):
        if row["label"] != label and copies:
            yield label, copies
            copies = {}
        label = row["label"]
        copies[row["copy"]] = row
    if copies:
        yield label, copies


def write_meta(path: Path, meta: dict) -> None:
    write_bytes_atomic(path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ManifestError(f"{path}: cannot read ({error.strerror})") from error
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path}: not JSON ({error.msg})") from error
    if not isinstance(meta, dict) or "parameters" not in meta:
        raise ManifestError(f"{path}: not an nsegaug manifest metadata file (no 'parameters')")
    return meta


def parameter_differences(old: dict, new: dict) -> list[str]:
    """Lines ``name: old -> new`` for every parameter that differs."""
    return [
        f"{name}: {old.get(name)!r} -> {new.get(name)!r}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
