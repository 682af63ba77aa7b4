"""Reading a manifest: [`open_manifest`][nsegaug.manifest.open_manifest] (rows with their checked metadata) and the row
iterators."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import storage
from ..errors import ManifestError
from ..storage import Location
from .folders import find_folder
from .kinds import ROW_TYPES
from .meta import META_NAME, RunMeta, read_meta
from .rows import CopyRow, NoiseRow

MANIFEST_NAME = "manifest.jsonl"


@dataclass
class Manifest:
    """A manifest opened for reading: its path, its checked metadata (None where there is none) and its rows."""

    path: Path | str  # a local path or a URL: what messages name
    meta: RunMeta | None
    local: Path | None = None  # where the rows are read from: the file itself, or a local copy of a remote one

    def __post_init__(self) -> None:
        if self.local is None:
            self.local = Path(self.path)

    @property
    def meta_path(self) -> Path | str:
        return storage.join(self.root, META_NAME)

    @property
    def root(self) -> Path | str:
        """The folder that row outputs are relative to."""
        return storage.parent(self.path)

    @property
    def parameters(self) -> dict:
        return self.meta.parameters if self.meta is not None else {}

    def numbered_rows(self, tolerate_torn_tail: bool | None = None) -> Iterator[tuple[int, CopyRow]]:
        """``(line number, row)`` in file order, each checked, also against the run's parameters.

        A last line cut short by a killed run is dropped where the run did not
        finish (``tolerate_torn_tail=None``), or as asked.
        """
        if tolerate_torn_tail is None:
            tolerate_torn_tail = self.meta is not None and not self.meta.complete
        copies = self.parameters.get("copies")
        pairs = _pair_set(self.parameters)
        for number, row in iter_numbered_rows(self.local, tolerate_torn_tail, self.row_type, shown=self.path):
            if self.row_type is not CopyRow:
                yield number, row
                continue
            where = f"{self.path}:{number}"
            if copies is not None and row.copy > copies:
                raise ManifestError(
                    f"{where}: copy {row.copy} but the run in {self.meta_path} made {copies}: rows from another run"
                )
            if row.deformed and pairs is not None and (row.alpha, row.sigma) not in pairs:
                raise ManifestError(
                    f"{where}: alpha={row.alpha} sigma={row.sigma} is not among the (alpha, sigma) pairs "
                    f"of {self.meta_path}: rows from another run"
                )
            yield number, row

    def rows(self, tolerate_torn_tail: bool | None = None) -> Iterator[CopyRow]:
        return (row for _, row in self.numbered_rows(tolerate_torn_tail))

    def checked_rows(self) -> Iterator[tuple[int, CopyRow]]:
        """[`numbered_rows`][nsegaug.manifest.Manifest.numbered_rows], refusing rows of two runs mixed (see
        [`RowCheck`][nsegaug.manifest.RowCheck]) and a manifest without rows: what a reader that lists or draws every
        row (``preview``, ``export``) needs."""
        check = RowCheck(self.path)
        for number, row in self.numbered_rows():
            check.add(number, row)
            yield number, row
        if check.empty:
            raise ManifestError(f"{self.path}: the manifest has no rows")

    @property
    def kind(self) -> str:
        return self.meta.kind if self.meta is not None else "generate"

    @property
    def row_type(self) -> type:
        return ROW_TYPES[self.kind]

    def folder(self, name: str, override: os.PathLike | str | None = None) -> Location | None:
        """The run's ``labels``, ``images`` or ``palette``: ``override`` where given (the data moved), else
        where the record says (`nsegaug.manifest.folders.find_folder`)."""
        if override is not None:
            return storage.as_location(override)
        return find_folder(self.parameters.get(name), self.meta.locations.get(name) if self.meta else None, self.root)

    def require_kind(self, kind: str) -> None:
        """A [`ManifestError`][nsegaug.errors.ManifestError] unless the manifest was written by a run of ``kind``."""
        if self.kind != kind:
            raise ManifestError(f"{self.path}: the manifest of a {self.kind} run, where one of {kind} is needed")

    def require_complete(self) -> None:
        """A [`ManifestError`][nsegaug.errors.ManifestError] unless the run finished: an interrupted run lists only part
        of its data."""
        if self.meta is None or not self.meta.complete:
            status = repr(self.meta.status) if self.meta is not None else f"unknown: no {META_NAME}"
            raise ManifestError(
                f"{self.path}: {self.kind} did not finish (status {status}); "
                f"resume that run into {storage.shown(self.root)} first"
            )

    def label_location(self, row: CopyRow, labels_root: Location) -> Location:
        """Where a row's label is: the source (copy 0) under ``labels_root``, a copy under the manifest's folder."""
        return storage.join(labels_root, row.label) if row.output is None else storage.join(self.root, row.output)


class RowCheck:
    """The rows of one run: each (label, copy) once, and all rows of a label with one source checksum and size.

    A sorted manifest of a finished run keeps both; rows of two runs mixed
    (manifests joined by hand, a row copied in) do not, and are a
    [`ManifestError`][nsegaug.errors.ManifestError] naming the line.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.sources: dict[str, tuple[int, str, int, int]] = {}  # label -> (first line, sha256, height, width)
        self.lines: dict[tuple[str, int], int] = {}  # (label, copy) -> line

    @property
    def empty(self) -> bool:
        return not self.lines

    def add(self, number: int, row: CopyRow | NoiseRow) -> None:
        line, *source = self.sources.setdefault(row.label, (number, row.sha256_label, row.height, row.width))
        if source != [row.sha256_label, row.height, row.width]:
            raise ManifestError(
                f"{self.path}:{number}: {row.label} has another checksum or size than on line {line}: "
                "rows of two runs mixed"
            )
        first = self.lines.setdefault((row.label, row.key), number)
        if first != number:
            raise ManifestError(
                f"{self.path}:{number}: second row for {row.label} copy {row.key} "
                f"(first on line {first}): rows of two runs mixed"
            )


def _pair_set(parameters: Mapping) -> set[tuple[float, float]] | None:
    if "alpha_sigma" not in parameters:
        return None
    return {(float(alpha), float(sigma)) for alpha, sigma in parameters["alpha_sigma"]}


def manifest_path(path: os.PathLike | str) -> Path | str:
    """The manifest itself, given it or the output folder holding it (a local path or a URL)."""
    if storage.is_url(path):
        return path if str(path).endswith(".jsonl") else storage.join(path, MANIFEST_NAME)
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def open_manifest(path: os.PathLike | str, require_meta: bool = True) -> Manifest:
    """Open a manifest (or the folder holding it) for reading; its metadata is read and checked once.

    ``require_meta=False`` accepts a manifest without ``manifest.meta.json``
    (rows only, as a user may have copied it). Raises [`ManifestError`][nsegaug.errors.ManifestError].
    """
    path = manifest_path(path)
    if not storage.is_file(path):
        raise ManifestError(f"{storage.shown(path)}: manifest not found")
    meta_path = storage.join(storage.parent(path), META_NAME)
    meta = read_meta(meta_path) if require_meta or storage.exists(meta_path) else None
    return Manifest(path, meta, storage.local_copy(path) if storage.is_url(path) else None)


def iter_rows(path: Path, tolerate_torn_tail: bool = False, row_type: type = CopyRow) -> Iterator:
    """Rows of a manifest file, in file order, checked one by one (not against a run: see
    [`Manifest`][nsegaug.manifest.Manifest]).

    With ``tolerate_torn_tail``, a last line cut short by a killed run is
    dropped instead of being an error (its outputs are checked again anyway).
    """
    return (row for _, row in iter_numbered_rows(path, tolerate_torn_tail, row_type))


def iter_numbered_rows(
    path: Path, tolerate_torn_tail: bool = False, row_type: type = CopyRow, shown: Path | str | None = None
) -> Iterator[tuple]:
    """``(line number, row)`` of a manifest file, for messages that name the line (as ``shown``, where the
    file is a local copy); see [`iter_rows`][nsegaug.manifest.iter_rows]."""
    shown = shown if shown is not None else path
    try:
        handle = open(path, encoding="utf-8")
    except OSError as error:
        raise ManifestError(f"{shown}: cannot read manifest ({error.strerror})") from error
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                # Only the file's last line can lack its newline: a run killed mid-append.
                torn = tolerate_torn_tail and not line.endswith("\n")
                row = _parse_line(shown, number, line, torn, row_type)
                if row is None:
                    return
                yield number, row
        except UnicodeDecodeError as error:
            raise ManifestError(f"{shown}: not a text file ({error.reason})") from error


def iter_mask_groups(path: Path, row_type: type = CopyRow) -> Iterator[tuple[str, dict[int, object]]]:
    """``(label, {key: row})`` for each run of consecutive rows of one label (``key``: a generate row's copy).

    A mask's rows are appended in one write once all its files are in place,
    so a run is one finished mask; a label seen again later was redone.
    Tolerates a torn last line. Holds one mask's rows at a time.
    """
    label, copies = None, {}
    for row in iter_rows(path, True, row_type):
        if row.label != label and copies:
            yield label, copies
            copies = {}
        label = row.label
        copies[row.key] = row
    if copies:
        yield label, copies


def _parse_line(path: Path, number: int, line: bytes | str, last: bool, row_type: type = CopyRow):
    """The row on a line; None for a torn last line (a run killed mid-append)."""
    try:
        values = json.loads(line)
    except json.JSONDecodeError as error:
        if last:
            return None
        raise ManifestError(f"{path}:{number}: not a JSON object ({error.msg})") from error
    except UnicodeDecodeError as error:
        raise ManifestError(f"{path}: not a text file ({error.reason})") from error
    return row_type.from_dict(values, f"{path}:{number}")
