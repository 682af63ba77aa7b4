"""``manifest.meta.json``: the record of the run that wrote a manifest ([`RunMeta`][nsegaug.manifest.RunMeta]), read and
written."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import storage
from .._version import __version__
from ..errors import ManifestError
from .kinds import ROW_TYPES
from .rows import SCHEMA_VERSION

META_NAME = "manifest.meta.json"
READABLE_SCHEMAS = (1, 2)
TOOL = "nsegaug"
# A run's status in its metadata: only a complete run lists every mask.
STATUSES = ("running", "complete", "failed", "interrupted")


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
    # Where the parameters came from: a params file (path, sha256) and, per option, file, command line or default.
    provenance: dict | None = None

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


def read_meta(path: os.PathLike | str) -> RunMeta:
    """The metadata file (or object) as a [`RunMeta`][nsegaug.manifest.RunMeta], checked to be one this version
    reads."""
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


def write_meta(path: Path | str, meta: RunMeta) -> None:
    """Write the run's record; no URL in it keeps its user-info (credentials typed in a URL)."""
    record = storage.public_record(meta.to_dict())
    storage.write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def parameter_differences(old: Mapping, new: Mapping) -> list[str]:
    """Lines ``name: old -> new`` for every parameter that differs."""
    return [
        f"{name}: {old.get(name)!r} -> {new.get(name)!r}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
