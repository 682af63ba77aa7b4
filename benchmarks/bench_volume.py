"""Speed and peak memory of the 3D engine on one core, and of its labelling with cc3d against scipy.

Usage: python benchmarks/bench_volume.py [--size 512x512x300] [--rounds 2] [--oracle-size 96x96x64]

Each measurement runs in a fresh process (OpenCV on one thread), so its peak resident memory
(``VmHWM``, reset once the source volume is made) is its own: the figure printed is that peak less what
was resident before the deformation, per voxel. Rounds are interleaved between contenders, and ratios come from
one run. The volume is a synthetic abdomen: nested ellipsoids of 12 classes and 40 small structures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r"""
import json, sys, time
import cv2, numpy as np
cv2.setNumThreads(1)
sys.path.insert(0, "tests")
from nsegaug.params import DeformParams
from nsegaug.volume.engine import deform_volume
from nsegaug.volume.components import small_component_boxes_3d
shape, contender = tuple(int(v) for v in sys.argv[1].split("x")), sys.argv[2]

def phantom(shape):
    grid = np.ogrid[tuple(slice(0, size) for size in shape)]
    rng = np.random.default_rng(0)
    volume = np.zeros(shape, np.uint8)
    for value in range(1, 13):
        centre = [rng.uniform(0.25, 0.75) * size for size in shape]
        radius = [rng.uniform(0.08, 0.3) * size for size in shape]
        volume[sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radius)) <= 1] = value
    for value in range(40):
        corner = [int(rng.integers(0, size - 4)) for size in shape]
        volume[tuple(slice(c, c + 3) for c in corner)] = 13 + value % 3
    return volume

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

volume = phantom(shape)
open("/proc/self/clear_refs", "w").write("5")  # peak resident memory (VmHWM) reset to what is resident now
before = status("VmRSS")
# The threshold scales with the volume, as in 2D: 1000 voxels at 512 x 512 x 300 (40 small structures of 27).
thresh = 1000 * volume.size / (512 * 512 * 300)
params = DeformParams(((100, 5),), area_thresh=thresh, precision="float64" if contender == "float64" else "float32")
wall, cpu = time.perf_counter(), time.process_time()
if contender in ("float32", "float64"):
    result = deform_volume(volume, np.random.RandomState(0), params)
    changed = result.changed_fraction
elif contender == "oracle":
    from oracle3d import oracle_nsegment_plus_3d
    out, *_ = oracle_nsegment_plus_3d(volume, np.random.RandomState(0), params.alpha_sigma, thresh)
    changed = float(np.mean(out != volume))
else:  # a labeller
    small_component_boxes_3d(volume, thresh, labeller=contender)
    changed = None
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = status("VmHWM")
print(json.dumps({"wall": wall, "cpu": cpu, "bytes_per_voxel": (peak - before) / volume.size, "changed": changed}))
"""


def measure(size: str, contender: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, size, contender], capture_output=True, text=True, check=True, timeout=3600
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def conditions() -> str:
    import cv2
    import numpy

    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    return (
        f"CPU {model}; {len(os.sched_getaffinity(0))} CPUs available; load {os.getloadavg()}; "
        f"Python {platform.python_version()}, NumPy {numpy.__version__}, OpenCV {cv2.__version__}"
    )


def table(size: str, contenders: list[str], rounds: int) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for round_index in range(rounds):
        order = contenders[round_index % len(contenders) :] + contenders[: round_index % len(contenders)]
        for name in order:
            results[name].append(measure(size, name))
    print(f"\n{size}: seconds (wall min / median, CPU min) and peak memory added, bytes per voxel")
    for name, runs in results.items():
        walls = sorted(run["wall"] for run in runs)
        cpus = sorted(run["cpu"] for run in runs)
        peak = max(run["bytes_per_voxel"] for run in runs)
        changed = runs[0]["changed"]
        extra = f", changed {100 * changed:.3f} %" if changed is not None else ""
        times = f"{walls[0]:8.2f} / {walls[len(walls) // 2]:8.2f}  cpu {cpus[0]:8.2f}"
        print(f"  {name:8s} {times}  {peak:6.1f} B/voxel{extra}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x512x300")
    parser.add_argument("--oracle-size", default="96x96x64")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(conditions())
    big = table(args.size, ["float32", "float64", "cc3d", "scipy"], args.rounds)
    small = table(args.oracle_size, ["float32", "float64", "oracle"], args.rounds)
    minimum = {name: min(run["cpu"] for run in runs) for name, runs in {**big}.items()}
    print(
        f"\nratios at {args.size} (CPU min): float64 / float32 {minimum['float64'] / minimum['float32']:.2f}x, "
        f"scipy labelling / cc3d {minimum['scipy'] / minimum['cc3d']:.2f}x"
    )
    oracle = {name: min(run["cpu"] for run in runs) for name, runs in small.items()}
    print(
        f"ratios at {args.oracle_size} (CPU min): oracle / float64 {oracle['oracle'] / oracle['float64']:.2f}x, "
        f"oracle / float32 {oracle['oracle'] / oracle['float32']:.2f}x"
    )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
