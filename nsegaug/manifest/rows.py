"""The rows of ``manifest.jsonl``: a generate run's [`CopyRow`][nsegaug.manifest.CopyRow], a noise run's
[`NoiseRow`][nsegaug.manifest.NoiseRow].

Each row type defines its fields, its JSON line and its checks; adding a
column means editing its class here and the manual's manifest page.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from ..errors import ManifestError

# 2: the metadata records its run's kind, and folders relative to the manifest's folder.
SCHEMA_VERSION = 2
# Keys a row leaves out where they are None: a 2-D map's row has no depth, and stays the row earlier versions wrote.
_OPTIONAL_KEYS = ("depth",)


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
    depth: int | None = None  # a volume's third axis (height, width: its first two); absent for a 2-D map

    @property
    def key(self) -> int:
        """The row's place among its mask's rows."""
        return self.copy

    @property
    def listed_sha256(self) -> str:
        """The SHA-256 of the label map this row lists: the source's for copy 0, the copy's own otherwise."""
        return self.sha256_output if self.copy else self.sha256_label

    def to_json(self) -> str:
        """The row as one JSON line (keys sorted, no newline): what ``append_rows`` writes."""
        return _row_json(self)

    @classmethod
    def from_dict(cls, values: object, where: str) -> CopyRow:
        """The row a parsed JSON line holds, checked; [`ManifestError`][nsegaug.errors.ManifestError] naming ``where``
        (file:line) if not."""
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
        numbers += ["depth"] if self.depth is not None and not _is_int(self.depth) else []
        if numbers:
            raise ManifestError(f"{where}: not a manifest row ({', '.join(numbers)}: not a number)")
        if self.deformed and (self.alpha is None or self.sigma is None):
            raise ManifestError(f"{where}: deformed copy without alpha and sigma")


# The keys of every row (a volume's row adds its depth).
ROW_KEYS = tuple(spec.name for spec in dataclasses.fields(CopyRow) if spec.name not in _OPTIONAL_KEYS)


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
    depth: int | None = None  # a volume's third axis (height, width: its first two); absent for a 2-D map

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
        numbers += ["depth"] if self.depth is not None and not _is_int(self.depth) else []
        if numbers:
            raise ManifestError(f"{where}: not a manifest row ({', '.join(numbers)}: not a number)")


def _row_json(row) -> str:
    values = dataclasses.asdict(row)
    for key in _OPTIONAL_KEYS:
        if values.get(key, 0) is None:
            del values[key]
    return json.dumps(values, sort_keys=True)


def _from_dict(row_type: type, values: object, where: str):
    keys = tuple(spec.name for spec in dataclasses.fields(row_type))
    if not isinstance(values, dict):
        raise ManifestError(f"{where}: not a manifest row (a JSON object is expected)")
    missing = sorted(set(keys) - set(values) - set(_OPTIONAL_KEYS))
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
