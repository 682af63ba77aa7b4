"""``nsegaug calibrate`` on 100 label maps of 512x512, on one core: how long a calibration takes at its defaults.

The reference maps are synthetic street scenes (``nsegaug.synthetic``, 60
objects each, ignore index 255); the labels are an NSegment+ copy of each at
alpha 30, sigma 5, no threshold (another seed than the calibration's). The
process is pinned to one CPU and OpenCV to one thread, so the figure is one
core's. It prints the wall and CPU time, what was recommended, the conditions
(CPU, load) and the load after: a load above 1 per core slows the run, and
says so.

    python benchmarks/bench_calibrate.py --maps 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import conditions, print_conditions, print_load_after, timed  # noqa: E402

from nsegaug.calibrate import CalibrateConfig, calibrate_into  # noqa: E402
from nsegaug.calibrate.search import displacement_scale  # noqa: E402
from nsegaug.copies import deformed_copies  # noqa: E402
from nsegaug.params import DeformParams  # noqa: E402
from nsegaug.synthetic import street_scene  # noqa: E402

TRUTH = DeformParams(((30, 5),), 0, 255)


def make_pairs(root: Path, maps: int, size: int) -> tuple[Path, Path]:
    labels, reference = root / "labels", root / "reference"
    labels.mkdir()
    reference.mkdir()
    for index in range(maps):
        segment = street_scene(size, size, 60, seed=index).astype(np.uint8)
        ((_, copy),) = deformed_copies(segment, f"truth/{index}", 1, TRUTH, seed=7)
        Image.fromarray(segment).save(reference / f"map_{index:04d}.png")
        Image.fromarray(copy.segment).save(labels / f"map_{index:04d}.png")
    return labels, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    options = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    found = conditions(cv2=1)
    print_conditions(found)
    with tempfile.TemporaryDirectory() as folder:
        labels, reference = make_pairs(Path(folder), options.maps, options.size)
        config = CalibrateConfig(labels, reference, ignore_index=255)
        wall, cpu, (calibration, _) = timed(lambda: calibrate_into(config, Path(folder) / "out", figure=True))
    params = calibration.params
    print(
        f"calibrate: {options.maps} maps of {options.size}x{options.size}, {len(calibration.sampled)} sampled, "
        f"{len(config.grid.pairs)} pairs x {len(config.grid.thresholds)} thresholds, noise fitted: "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU on one core"
    )
    print(
        f"recommended alpha_sigma {','.join(f'{a:g}:{s:g}' for a, s in params.alpha_sigma)} area_thresh "
        f"{params.area_thresh:g} (rms {displacement_scale(params.alpha_sigma):.2f} px; truth 30:5, "
        f"rms {displacement_scale(TRUTH.alpha_sigma):.2f} px); distance "
        f"{calibration.distance_of(calibration.achieved):.3f} px, paper default "
        f"{calibration.distance_of(calibration.paper):.3f} px"
    )
    print_load_after(found)


if __name__ == "__main__":
    main()
