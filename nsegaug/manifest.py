"""The manifest of a generated dataset: the one owner of its file format.

An output folder holds ``manifest.jsonl``, one :class:`CopyRow` per label
map it lists (the source as copy 0, then its copies), and
``manifest.meta.json``, the :class:`RunMeta` of the run that wrote it (tool,
version, schema, parameters, status, counts). This module defines both,
their JSON round trip and their checks; :func:`open_manifest` is the one way
to read a manifest (it checks the tool and the schema version once), used by
``generate --resume``, ``preview``, ``train`` and the examples. Adding a
column means editing :class:`CopyRow` and the README's "Manifest" section.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import storage
from ._version import __version__
from .errors import ManifestError
from .io import atomic_writer
from .storage import Location

MANIFEST_NAME = "manifest.jsonl"
META_NAME = "manifest.meta.json"
# 2: the metadata records its run's kind, and folders relative to the manifest's folder.
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
TOOL = "nsegaug"
# A run's status in its metadata: only a complete run lists every mask.
STATUSES = ("running", "complete", "failed", "interrupted")


@dataclass(frozen=True)
class CopyRow:
    """One line of ``manifest.jsonl``: a source label map (copy 0) or one of its copies."""

    label: str  # source label, relative to the run's label folder
    image: str | None  # paired image, relative to the run's image folder, or None
    output: str | None  # this copy, relative to the manifest's folder; None for copy 0 (the source itself)
    copy: int  # 0 for the original, 1..K for the deformed copies
    deformed: bool  # False for copy 0 and for copies that the prob coin left as they were
    alpha: float | None
    sigma: float | None
    changed_fraction: float
    suppressed_fraction: float
    mean_displacement: float
    max_displacement: float
    height: int
    width: int
    sha256_label: str
    sha256_output: str

    @property
    def key(self) -> int:
        """The row's place among its mask's rows."""
        return self.copy

    def to_json(self) -> str:
        """The row as one JSON line (keys sorted, no newline): what ``append_rows`` writes."""
        return _row_json(self)

    @classmethod
    def from_dict(cls, values: object, where: str) -> CopyRow:
        """The row a parsed JSON line holds, checked; :class:`ManifestError` naming ``where`` (file:line) if not."""
        return _from_dict(cls, values, where)

    def check(self, where: str) -> None:
        """The types and the rules every row keeps, whatever run wrote it."""
        copy = self.copy
        if not isinstance(self.label, str) or not _is_int(copy) or copy < 0:
            raise ManifestError(f"{where}: not a manifest row (label must be a path, copy an integer >= 0)")
        if copy > 0 and not isinstance(self.output, str):
            raise ManifestError(f"{where}: copy {copy} of {self.label} names no output file")
        numbers = [name for name in _NUMBER_KEYS if not _is_number(getattr(self, name))]
        numbers += [
            name
            for name in ("alpha", "sigma")
            if getattr(self, name) is not None and not _is_number(getattr(self, name))
        ]
        if numbers:
            raise ManifestError(f"{where}: not a manifest row ({', '.join(numbers)}: not a number)")
        if self.deformed and (self.alpha is None or self.sigma is None):
            raise ManifestError(f"{where}: deformed copy without alpha and sigma")


ROW_KEYS = tuple(spec.name for spec in dataclasses.fields(CopyRow))


@dataclass(frozen=True)
class NoiseRow:
    """One line of a ``nsegaug noise`` manifest: a source label map and its noisy version."""

    label: str  # source label, relative to the run's label folder
    image: str | None  # paired image, relative to the run's image folder, or None
    output: str  # the noisy map, relative to the manifest's folder (the source's own relative path)
    changed_fraction: float  # share of the map's pixels whose class the noise changed
    height: int
    width: int
    sha256_label: str
    sha256_output: str

    @property
    def key(self) -> int:
        return 0

    def to_json(self) -> str:
        return _row_json(self)

    @classmethod
    def from_dict(cls, values: object, where: str) -> NoiseRow:
        return _from_dict(cls, values, where)

    def check(self, where: str) -> None:
        if not isinstance(self.label, str) or not isinstance(self.output, str):
            raise ManifestError(f"{where}: not a noise manifest row (label and output must be paths)")
        numbers = [name for name in ("changed_fraction", "height", "width") if not _is_number(getattr(self, name))]
        if numbers:
            raise ManifestError(f"{where}: not a manifest row ({', '.join(numbers)}: not a number)")


# The row type of each kind of run.
ROW_TYPES = {"generate": CopyRow, "noise": NoiseRow}


def _row_json(row) -> str:
    return json.dumps(dataclasses.asdict(row), sort_keys=True)


def _from_dict(row_type: type, values: object, where: str):
    keys = tuple(spec.name for spec in dataclasses.fields(row_type))
    if not isinstance(values, dict):
        raise ManifestError(f"{where}: not a manifest row (a JSON object is expected)")
    missing = sorted(set(keys) - set(values))
    if missing:
        raise ManifestError(f"{where}: not a manifest row (missing {', '.join(missing)})")
    extra = sorted(set(values) - set(keys))
    if extra:
        raise ManifestError(
            f"{where}: keys {', '.join(extra)} are not in manifest schema {SCHEMA_VERSION}: "
            "rows written by another nsegaug version, or by another kind of run"
        )
    row = row_type(**values)
    row.check(where)
    return row


_NUMBER_KEYS = ("changed_fraction", "suppressed_fraction", "mean_displacement", "max_displacement", "height", "width")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class RunMeta:
    """``manifest.meta.json``: who wrote the manifest, with which parameters, and how the run went."""

    parameters: dict
    kind: str = "generate"  # which command wrote the manifest: generate or noise (schema 1: generate)
    tool: str = TOOL
    version: str = __version__
    schema: int = SCHEMA_VERSION
    command_line: list[str] = field(default_factory=list)
    started: str | None = None
    status: str = "running"
    execution: dict = field(default_factory=dict)
    finished: str | None = None
    elapsed_s: float | None = None
    counts: dict = field(default_factory=dict)
    masks_per_second: float | None = None
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Where the folders of ``parameters`` were, as absolute paths: found again when only the output moved.
    locations: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        # The keys a run has not reached yet are left out, as before this was a class.
        return {key: value for key, value in values.items() if value is not None or key in ("parameters", "status")}

    @classmethod
    def from_dict(cls, values: object, path: os.PathLike | str) -> RunMeta:
        if not isinstance(values, dict) or not isinstance(values.get("parameters"), dict):
            raise ManifestError(f"{path}: not an nsegaug manifest metadata file (no 'parameters')")
        known = {spec.name for spec in dataclasses.fields(cls)}
        # Keys of a newer version are kept out, not refused: check() decides by tool and schema.
        return cls(**{key: value for key, value in values.items() if key in known})

    def check(self, path: os.PathLike | str) -> None:
        """Refuse metadata that this version cannot read, naming the version that wrote it."""
        if self.tool != TOOL:
            raise ManifestError(f"{path}: written by {self.tool!r}, not nsegaug")
        if self.schema not in READABLE_SCHEMAS:
            raise ManifestError(
                f"{path}: manifest schema {self.schema!r} (nsegaug {self.version}); "
                f"nsegaug {__version__} reads schema {SCHEMA_VERSION}"
            )

        if self.kind not in ROW_TYPES:
            raise ManifestError(f"{path}: a manifest of an unknown kind of run ({self.kind!r})")

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def row_type(self) -> type:
        return ROW_TYPES[self.kind]


# --------------------------------------------------------------------------- reading


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
        """:meth:`numbered_rows`, refusing rows of two runs mixed (see :class:`RowCheck`) and a manifest without
        rows: what a reader that lists or draws every row (``preview``, ``export``) needs."""
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

    def folder(self, name: str, override: os.PathLike | str | None = None) -> Path | None:
        """The run's ``labels``, ``images`` or ``palette``: ``override`` where given (the data moved), else as
        recorded: relative to the manifest's folder (found when the data and the output moved together), or
        where it was when the run wrote it (found when only the output moved). Schema 1 recorded absolute paths.
        Where neither exists, the relative place, for the message that says so."""
        if override is not None:
            return storage.as_location(override)
        recorded = self.parameters.get(name)
        if not recorded:
            return None
        if storage.is_url(recorded) or os.path.isabs(recorded):
            if storage.is_url(self.root) or storage.is_url(recorded):
                return storage.as_location(recorded)
        elif storage.is_url(self.root):  # a tree made on a disk, then copied into a bucket as a whole
            protocol, _, path = self.root.partition("://")
            return f"{protocol}://{posixpath.normpath(posixpath.join(path, recorded))}"
        relative = Path(os.path.normpath(Path(self.root).resolve() / recorded))
        absolute = self.meta.locations.get(name) if self.meta is not None else None
        if not relative.exists() and absolute and storage.exists(storage.as_location(absolute)):
            return storage.as_location(absolute)
        return relative

    def require_kind(self, kind: str) -> None:
        """A :class:`ManifestError` unless the manifest was written by a run of ``kind``."""
        if self.kind != kind:
            raise ManifestError(f"{self.path}: the manifest of a {self.kind} run, where one of {kind} is needed")

    def require_complete(self) -> None:
        """A :class:`ManifestError` unless the run finished: an interrupted run lists only part of its data."""
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
    :class:`ManifestError` naming the line.
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
    (rows only, as a user may have copied it). Raises :class:`ManifestError`.
    """
    path = manifest_path(path)
    if not storage.is_file(path):
        raise ManifestError(f"{storage.shown(path)}: manifest not found")
    meta_path = storage.join(storage.parent(path), META_NAME)
    meta = read_meta(meta_path) if require_meta or storage.exists(meta_path) else None
    return Manifest(path, meta, storage.local_copy(path) if storage.is_url(path) else None)


def iter_rows(path: Path, tolerate_torn_tail: bool = False, row_type: type = CopyRow) -> Iterator:
    """Rows of a manifest file, in file order, checked one by one (not against a run: see :class:`Manifest`).

    With ``tolerate_torn_tail``, a last line cut short by a killed run is
    dropped instead of being an error (its outputs are checked again anyway).
    """
    return (row for _, row in iter_numbered_rows(path, tolerate_torn_tail, row_type))


def iter_numbered_rows(
    path: Path, tolerate_torn_tail: bool = False, row_type: type = CopyRow, shown: Path | str | None = None
) -> Iterator[tuple]:
    """``(line number, row)`` of a manifest file, for messages that name the line (as ``shown``, where the
    file is a local copy); see :func:`iter_rows`."""
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


def read_meta(path: os.PathLike | str) -> RunMeta:
    """The metadata file (or object) as a :class:`RunMeta`, checked to be one this version reads."""
    try:
        values = json.loads(storage.read_bytes(path).decode("utf-8"))
    except FileNotFoundError as error:
        raise ManifestError(f"{path}: not found") from error
    except OSError as error:
        raise ManifestError(f"{path}: cannot read ({error.strerror})") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else error.reason
        raise ManifestError(f"{path}: not JSON ({reason})") from error
    meta = RunMeta.from_dict(values, path)
    meta.check(path)
    return meta


# --------------------------------------------------------------------------- writing


def append_rows(path: Path, rows: Iterable) -> None:
    """Append rows as JSON lines and flush them to disk before returning.

    Called only once the rows' files are in place, so a row never names a
    file that is not there.
    """
    data = memoryview("".join(row.to_json() + "\n" for row in rows).encode("utf-8"))
    with open(path, "ab", buffering=0) as handle:  # unbuffered: nothing left to flush after a failure
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


def write_meta(path: Path | str, meta: RunMeta) -> None:
    """Write the run's record; no URL in it keeps its user-info (credentials typed in a URL)."""
    record = _public(meta.to_dict())
    storage.write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _public(value):
    if isinstance(value, str):
        return storage.public_text(value)
    if isinstance(value, dict):
        return {name: _public(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_public(item) for item in value]
    return value


def parameter_differences(old: Mapping, new: Mapping) -> list[str]:
    """Lines ``name: old -> new`` for every parameter that differs."""
    return [
        f"{name}: {old.get(name)!r} -> {new.get(name)!r}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
