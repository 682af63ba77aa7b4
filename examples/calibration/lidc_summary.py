"""The LIDC pairs' disagreement in pixels and in millimetres, and the nodules' sizes, for OUT/summary.json.

Displacements are measured as ``nsegaug calibrate`` measures them
([`compare`][nsegaug.calibrate.compare]: both ways, every boundary pixel of either
reader, nodule and background alike), and turned into millimetres with each
scan's pixel spacing.
"""

from __future__ import annotations

import numpy as np

from nsegaug.calibrate import BIN_PX, Disagreement, compare

MM_BIN = 0.05


class Summary:
    """Adds up pairs of masks: the disagreement (px and mm), the nodules' areas, the Dice overlaps."""

    def __init__(self) -> None:
        self.total = Disagreement()
        self.mm_sum = 0.0
        self.mm_counts = np.zeros(int(64 / MM_BIN) + 1)
        self.areas: list[int] = []
        self.dice: list[float] = []
        self.spacings: list[float] = []

    def add(self, first: np.ndarray, second: np.ndarray, spacing: float) -> None:
        measured = compare(first.astype(np.uint8), second.astype(np.uint8))
        self.total.add(measured)
        pooled = measured.pooled().sum(axis=0)
        self.mm_sum += sum(sums.sum() for sums in measured.sums.values()) * spacing
        bins = np.minimum((np.arange(pooled.size) * BIN_PX * spacing / MM_BIN).astype(int), self.mm_counts.size - 1)
        np.add.at(self.mm_counts, bins, pooled)
        self.areas += [int(first.sum()), int(second.sum())]
        self.dice.append(2 * float((first & second).sum()) / float(first.sum() + second.sum()))
        self.spacings.append(spacing)

    def record(self) -> dict:
        pooled = self.total.pooled().sum(axis=0)
        boundary = pooled.sum()
        areas = np.array(self.areas)
        return {
            "disagreement": {
                "boundary_pixels": int(boundary),
                "changed_pixels_per_boundary_pixel": round(self.total.changed_per_boundary, 4),
                "mean_px": round(self.total.overall_mean, 4),
                "median_px": _quantile(pooled, 0.5, BIN_PX),
                "p90_px": _quantile(pooled, 0.9, BIN_PX),
                "mean_mm": round(self.mm_sum / boundary, 4),
                "median_mm": _quantile(self.mm_counts, 0.5, MM_BIN),
                "p90_mm": _quantile(self.mm_counts, 0.9, MM_BIN),
                "share_moved": round(1 - pooled[0] / boundary, 4),
                "mean_dice": round(float(np.mean(self.dice)), 4),
            },
            "pixel_spacing_mm": {
                "min": min(self.spacings),
                "median": float(np.median(self.spacings)),
                "max": max(self.spacings),
            },
            "nodule_area_px_per_slice": {
                "median": float(np.median(areas)),
                "p90": float(np.percentile(areas, 90)),
                "max": int(areas.max()),
                "share_at_most_1000": round(float((areas <= 1000).mean()), 4),
                "share_at_most_256": round(float((areas <= 256).mean()), 4),
            },
        }


def _quantile(counts: np.ndarray, q: float, width: float) -> float:
    return round(float(np.searchsorted(np.cumsum(counts), q * counts.sum(), side="left") * width), 4)
