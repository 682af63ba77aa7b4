"""A manifest summarised in one streaming pass for the preview: per-mask scores, per-pair statistics."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..manifest import CopyRow, Manifest, NoiseRow, open_manifest

Warn = Callable[[str], None]

# --------------------------------------------------------------------------- manifests


@dataclass
class PairStats:
    """Running sums over the deformed copies of one (alpha, sigma) pair."""

    copies: int = 0
    changed: float = 0.0
    mean_displacement: float = 0.0
    max_displacement: float = 0.0
    suppressed: float = 0.0

    def add(self, row: CopyRow) -> None:
        self.copies += 1
        self.changed += row.changed_fraction
        self.mean_displacement += row.mean_displacement
        self.max_displacement = max(self.max_displacement, row.max_displacement)
        self.suppressed += row.suppressed_fraction

    def merge(self, other: PairStats) -> None:
        self.copies += other.copies
        self.changed += other.changed
        self.mean_displacement += other.mean_displacement
        self.max_displacement = max(self.max_displacement, other.max_displacement)
        self.suppressed += other.suppressed

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

    manifest: Manifest
    labels: dict[str, LabelEntry]
    pairs: dict[tuple[float, float], PairStats]
    rows: int = 0
    copies: int = 0
    not_deformed: int = 0

    @property
    def path(self) -> Path:
        return self.manifest.path

    @property
    def meta_path(self) -> Path:
        return self.manifest.meta_path

    @property
    def root(self) -> Path:
        """The folder that row outputs are relative to."""
        return self.manifest.root

    @property
    def params(self) -> dict:
        return self.manifest.parameters


def read_manifest(path: Path, warn: Warn = lambda message: None) -> ManifestIndex:
    """Check a manifest and its metadata in one pass, keeping per-mask scores and per-pair sums.

    Errors ([`ManifestError`][nsegaug.errors.ManifestError]) are one line naming the
    file and, for rows, the line.
    """
    manifest = open_manifest(path, require_meta=False)
    if manifest.meta is not None and not manifest.meta.complete:
        warn(
            f"warning: {manifest.meta_path}: run status is {manifest.meta.status!r}, not 'complete'; "
            "showing its rows so far"
        )
    index = ManifestIndex(manifest, {}, {})
    for alpha, sigma in index.params.get("alpha_sigma", []):
        index.pairs[(float(alpha), float(sigma))] = PairStats()
    for number, row in manifest.checked_rows():  # rows of one run (the check export makes too)
        _add_row(index, number, row)
    return index


def _add_row(index: ManifestIndex, number: int, row: CopyRow | NoiseRow) -> None:
    if isinstance(row, NoiseRow):  # the source and its noisy map: an original and one copy
        row = _as_copy(row)
        _add_row(index, number, replace(row, copy=0, output=None, changed_fraction=0.0))
    entry = index.labels.get(row.label)
    if entry is None:
        entry = index.labels[row.label] = LabelEntry(number, row.sha256_label, row.height, row.width)
    entry.copy_lines[row.copy] = number
    index.rows += 1
    if row.copy == 0:
        return
    index.copies += 1
    entry.changed += row.changed_fraction
    if row.deformed:
        index.pairs.setdefault((float(row.alpha), float(row.sigma)), PairStats()).add(row)
    else:
        index.not_deformed += 1


def _as_copy(row: NoiseRow) -> CopyRow:
    """A noise row as the row of an undeformed copy 1: what the sheet draws beside the source."""
    return CopyRow(
        label=row.label,
        image=row.image,
        output=row.output,
        copy=1,
        deformed=False,
        alpha=None,
        sigma=None,
        changed_fraction=row.changed_fraction,
        suppressed_fraction=0.0,
        mean_displacement=0.0,
        max_displacement=0.0,
        height=row.height,
        width=row.width,
        sha256_label=row.sha256_label,
        sha256_output=row.sha256_output,
        depth=row.depth,
    )


# --------------------------------------------------------------------------- statistics


def manifest_stats(index: ManifestIndex) -> dict:
    """Per (alpha, sigma) pair: copies, mean changed %, mean / max displacement (px), mean suppressed %.

    For a noise manifest: the changed share of the maps (mean, least, most).
    """
    if index.manifest.kind == "noise":
        changed = [entry.changed for entry in index.labels.values()]
        return {
            "manifest": str(index.path),
            "kind": "noise",
            "masks": len(changed),
            "mean_changed_percent": 100 * sum(changed) / len(changed),
            "min_changed_percent": 100 * min(changed),
            "max_changed_percent": 100 * max(changed),
        }
    total = PairStats()
    pairs = []
    for (alpha, sigma), stats in sorted(index.pairs.items()):
        pairs.append({"alpha": alpha, "sigma": sigma, **stats.summary()})
        total.merge(stats)
    return {
        "manifest": str(index.path),
        "kind": "generate",
        "masks": len(index.labels),
        "copies": index.copies,
        "deformed": total.copies,
        "not_deformed": index.not_deformed,
        "pairs": pairs,
        "all": total.summary(),
    }


def format_stats(stats: Mapping) -> str:
    """The statistics as an aligned text table, one line per pair and one for all deformed copies."""
    if stats["kind"] == "noise":
        return (
            f"{stats['masks']} noisy maps: {stats['mean_changed_percent']:.2f}% of pixels changed on average "
            f"({stats['min_changed_percent']:.2f}-{stats['max_changed_percent']:.2f}% per map); {stats['manifest']}"
        )
    header = ("alpha", "sigma", "copies", "changed %", "mean disp px", "max disp px", "suppressed %")

    def cells(name_alpha: str, name_sigma: str, summary: Mapping) -> list[str]:
        values = [
            summary["mean_changed_percent"],
            summary["mean_displacement_px"],
            summary["max_displacement_px"],
            summary["mean_suppressed_percent"],
        ]
        return [name_alpha, name_sigma, str(summary["copies"])] + ["-" if v is None else f"{v:.2f}" for v in values]

    table = [list(header)]
    table += [cells(f"{pair['alpha']:g}", f"{pair['sigma']:g}", pair) for pair in stats["pairs"]]
    table.append(cells("all", "", stats["all"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
    lines.append(
        f"{stats['masks']} masks, {stats['copies']} copies ({stats['deformed']} deformed, "
        f"{stats['not_deformed']} left unchanged by the prob coin); {stats['manifest']}"
    )
    return "\n".join(lines)


def stats_json(stats: Mapping) -> str:
    return json.dumps(stats, indent=2)
