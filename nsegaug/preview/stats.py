"""Per (alpha, sigma) statistics of a manifest, as a text table or JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping

from .manifests import ManifestIndex, PairStats


def manifest_stats(index: ManifestIndex) -> dict:
    """Per (alpha, sigma) pair: copies, mean changed %, mean / max displacement (px), mean suppressed %."""
    total = PairStats()
    pairs = []
    for (alpha, sigma), stats in sorted(index.pairs.items()):
        pairs.append({"alpha": alpha, "sigma": sigma, **stats.summary()})
        if stats.copies:
            total.copies += stats.copies
            total.changed += stats.changed
            total.mean_displacement += stats.mean_displacement
            total.max_displacement = max(total.max_displacement, stats.max_displacement)
            total.suppressed += stats.suppressed
    return {
        "manifest": str(index.path),
        "masks": len(index.labels),
        "copies": index.copies,
        "deformed": total.copies,
        "not_deformed": index.not_deformed,
        "pairs": pairs,
        "all": total.summary(),
    }


def format_stats(stats: Mapping) -> str:
    """The statistics as an aligned text table, one line per pair and one for all deformed copies."""
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
        f"{stats['not_deformed']} left unchanged by --prob); {stats['manifest']}"
    )
    return "\n".join(lines)


def stats_json(stats: Mapping) -> str:
    return json.dumps(stats, indent=2)
