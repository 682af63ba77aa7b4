"""NSegment+ copies on full-resolution maps seen at low resolution, against scaled parameters on low-resolution maps.

python examples/robustness/pilot/downsampled_truth.py FULL/labels LOW/labels FACTOR MAPS COPIES [A_SCALE S_SCALE]

Without scales: deform the first MAPS maps of FULL with the paper's 15
(alpha, sigma) pairs and area_thresh 1000, downsample copy and original by
FACTOR (nearest neighbour) and report, per pair, the changed share of the
low-resolution pixels, the mean displacement divided by FACTOR and the
suppressed share. With scales: deform the first 8 * MAPS maps of LOW with
alpha * A_SCALE, sigma * S_SCALE and area_thresh 1000 / FACTOR**2.
The two folders must hold the same scenes (make_sample_data.py --objects N).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from nsegaug.deform import deform
from nsegaug.params import DEFAULT_ALPHA_SIGMA, DeformParams


def downsample(segment: np.ndarray, factor: int) -> np.ndarray:
    height, width = segment.shape
    return cv2.resize(segment, (width // factor, height // factor), interpolation=cv2.INTER_NEAREST)


def main(argv: list[str]) -> None:
    full, low, factor, maps, copies = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])
    scaled = len(argv) > 5
    rng = np.random.default_rng(0)
    if scaled:
        alpha_scale, sigma_scale = float(argv[5]), float(argv[6])
        pairs = [(alpha * alpha_scale, sigma * sigma_scale) for alpha, sigma in DEFAULT_ALPHA_SIGMA]
        folder, count, area, back = low, 8 * maps, 1000 / factor**2, 1.0
    else:
        pairs, folder, count, area, back = list(DEFAULT_ALPHA_SIGMA), full, maps, 1000, 1 / factor
    sums = {pair: np.zeros(3) for pair in pairs}
    for index in range(count):
        segment = np.array(Image.open(folder / f"scene_{index:04d}.png"))
        small = None if scaled else downsample(segment, factor)
        for pair in pairs:
            for _ in range(copies):
                params = DeformParams(alpha_sigma=(pair,), area_thresh=area, ignore_index=255)
                result = deform(segment, np.random.RandomState(rng.integers(2**31)), params=params)
                changed = (
                    result.changed_fraction if scaled else float((downsample(result.segment, factor) != small).mean())
                )
                sums[pair] += (changed, result.mean_displacement * back, result.suppressed_fraction)
    names = ("changed_percent", "mean_displacement_px", "suppressed_percent")
    rows = {
        f"{alpha:g}:{sigma:g}": dict(zip(names, (values / (count * copies) * (100, 1, 100)).tolist(), strict=True))
        for (alpha, sigma), values in sums.items()
    }
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
