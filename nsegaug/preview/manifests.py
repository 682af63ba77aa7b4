"""Reading and checking a manifest and its metadata in one streaming pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..manifest import MANIFEST_NAME, META_NAME, ROW_KEYS, SCHEMA_VERSION, iter_numbered_rows, read_meta
from .errors import PreviewError, Warn

# --------------------------------------------------------------------------- manifests


@dataclass
class PairStats:
    """Running sums over the deformed copies of one (alpha, sigma) pair."""

    copies: int = 0
    changed: float = 0.0
    mean_displacement: float = 0.0
    max_displacement: float = 0.0
    suppressed: float = 0.0

    def add(self, row: Mapping) -> None:
        self.copies += 1
        self.changed += row["changed_fraction"]
        self.mean_displacement += row["mean_displacement"]
        self.max_displacement = max(self.max_displacement, row["max_displacement"])
        self.suppressed += row["suppressed_fraction"]

    def summary(self) -> dict:
        """Means over the copies (percent and pixels); None where there are no copies."""
        if not self.copies:
            keys = ("mean_changed_percent", "mean_displacement_px", "max_displacement_px", "mean_suppressed_percent")
            return {"copies": 0, **dict.fromkeys(keys)}
        return {
            "copies": self.copies,
            "mean_changed_percent": 100 * self.changed / self.copies,
            "mean_displacement_px": self.mean_displacement / self.copies,
            "max_displacement_px": self.max_displacement,
            "mean_suppressed_percent": 100 * self.suppressed / self.copies,
        }


@dataclass
class LabelEntry:
    """What pass 1 keeps of one source mask: enough to rank and check it, not its rows."""

    line: int  # first line that names it
    sha256_label: str
    height: int
    width: int
    copy_lines: dict[int, int] = field(default_factory=dict)  # copy -> line
    changed: float = 0.0  # summed over copies 1..K

    @property
    def score(self) -> float:
        """Mean changed fraction of its copies: what --pick ranks by."""
        copies = [copy for copy in self.copy_lines if copy > 0]
        return self.changed / len(copies) if copies else 0.0


@dataclass
class ManifestIndex:
    """A checked manifest, summarised in one streaming pass; rows are read again only for what is drawn."""

    path: Path
    meta_path: Path
    meta: dict | None
    labels: dict[str, LabelEntry]
    pairs: dict[tuple[float, float], PairStats]
    rows: int = 0
    copies: int = 0
    not_deformed: int = 0
    torn_tail: bool = False

    @property
    def root(self) -> Path:
        """The folder that row outputs are relative to."""
        return self.path.parent

    @property
    def params(self) -> dict:
        return (self.meta or {}).get("parameters", {})


def manifest_path(path: Path) -> Path:
    """The manifest itself, given it or the output folder holding it."""
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def check_meta(meta: Mapping, meta_path: Path) -> None:
    """Refuse metadata that this version cannot read, with the version that wrote it."""
    if meta.get("tool") != "nsegaug":
        raise PreviewError(f"{meta_path}: written by {meta.get('tool')!r}, not nsegaug")
    if meta.get("schema") != SCHEMA_VERSION:
        raise PreviewError(
            f"{meta_path}: manifest schema {meta.get('schema')!r} (nsegaug {meta.get('version')}); "
            f"nsegaug {__version__} reads schema {SCHEMA_VERSION}"
        )


_NUMBER_KEYS = ("changed_fraction", "suppressed_fraction", "mean_displacement", "max_displacement", "height", "width")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_row(
    path: Path, number: int, row: Mapping, params: Mapping, meta_path: Path, pairs: set | None = None
) -> None:
    """One row against the schema and the run's parameters; PreviewError naming the line otherwise.

    ``pairs``: the run's (alpha, sigma) pairs as floats, when known.
    """
    where = f"{path}:{number}"
    extra = sorted(set(row) - set(ROW_KEYS))
    if extra:
        raise PreviewError(
            f"{where}: keys {', '.join(extra)} are not in manifest schema {SCHEMA_VERSION}: "
            "rows written by another nsegaug version"
        )
    copy = row["copy"]
    if not isinstance(row["label"], str) or not isinstance(copy, int) or isinstance(copy, bool) or copy < 0:
        raise PreviewError(f"{where}: not a manifest row (label must be a path, copy an integer >= 0)")
    if copy > 0 and not isinstance(row["output"], str):
        raise PreviewError(f"{where}: copy {copy} of {row['label']} names no output file")
    numbers = [key for key in _NUMBER_KEYS if not _is_number(row[key])]
    numbers += [key for key in ("alpha", "sigma") if row[key] is not None and not _is_number(row[key])]
    if numbers:
        raise PreviewError(f"{where}: not a manifest row ({', '.join(numbers)}: not a number)")
    if row["deformed"] and (row["alpha"] is None or row["sigma"] is None):
        raise PreviewError(f"{where}: deformed copy without alpha and sigma")
    if "copies" in params and copy > params["copies"]:
        raise PreviewError(
            f"{where}: copy {copy} but the run in {meta_path} made {params['copies']}: rows from another run"
        )
    if row["deformed"] and pairs is not None and (row["alpha"], row["sigma"]) not in pairs:
        raise PreviewError(
            f"{where}: alpha={row['alpha']} sigma={row['sigma']} is not in the --alpha-sigma list "
            f"of {meta_path}: rows from another run"
        )


def read_manifest(path: Path, warn: Warn = lambda message: None) -> ManifestIndex:
    """Check a manifest and its metadata in one pass, keeping per-mask scores and per-pair sums.

    Errors (:class:`PreviewError`, :class:`~nsegaug.manifest.ManifestError`)
    are one line naming the file and, for rows, the line.
    """
    path = manifest_path(path)
    meta_path = path.parent / META_NAME
    meta = None
    if meta_path.exists():
        meta = read_meta(meta_path)
        check_meta(meta, meta_path)
        if meta.get("status") != "complete":
            warn(f"warning: {meta_path}: run status is {meta.get('status')!r}, not 'complete'; showing its rows so far")
    params = (meta or {}).get("parameters", {})
    index = ManifestIndex(path, meta_path, meta, {}, {})
    for alpha, sigma in params.get("alpha_sigma", []):
        index.pairs[(float(alpha), float(sigma))] = PairStats()
    run_pairs = set(index.pairs) if "alpha_sigma" in params else None
    # A running or killed run may have left its last line half written.
    tolerate = meta is not None and meta.get("status") != "complete"
    for number, row in iter_numbered_rows(path, tolerate_torn_tail=tolerate):
        check_row(path, number, row, params, meta_path, run_pairs)
        label, copy = row["label"], row["copy"]
        entry = index.labels.get(label)
        if entry is None:
            entry = index.labels[label] = LabelEntry(number, row["sha256_label"], row["height"], row["width"])
        elif (entry.sha256_label, entry.height, entry.width) != (row["sha256_label"], row["height"], row["width"]):
            raise PreviewError(
                f"{path}:{number}: {label} has another checksum or size than on line {entry.line}: "
                "rows of two runs mixed"
            )
        if copy in entry.copy_lines:
            raise PreviewError(
                f"{path}:{number}: second row for {label} copy {copy} (first on line {entry.copy_lines[copy]}): "
                "rows of two runs mixed"
            )
        entry.copy_lines[copy] = number
        index.rows += 1
        if copy == 0:
            continue
        index.copies += 1
        entry.changed += row["changed_fraction"]
        if row["deformed"]:
            index.pairs.setdefault((float(row["alpha"]), float(row["sigma"])), PairStats()).add(row)
        else:
            index.not_deformed += 1
    if not index.labels:
        raise PreviewError(f"{path}: the manifest has no rows")
    return index
