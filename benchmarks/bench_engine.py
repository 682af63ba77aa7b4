"""Engine speed and agreement: naive oracle vs nsegaug (float64, float32) vs albumentations.

Every method deforms the same street-like map with the same seeds in one run,
so the ratios hold on a shared, noisy machine; absolute times do not.

    python benchmarks/bench_engine.py              # full table, writes benchmarks/results/engine.json
    python benchmarks/bench_engine.py --quick      # small sizes only
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from oracle import oracle_nsegment_plus  # noqa: E402

from nsegaug import __version__  # noqa: E402
from nsegaug.deform import deform, small_component_boxes  # noqa: E402
from nsegaug.params import DEFAULT_ALPHA_SIGMA, DeformParams  # noqa: E402
from nsegaug.synthetic import street_scene  # noqa: E402

# (height, width, small objects): "few" and "many" per size; many ~ 700 at 1024x2048.
CASES = [
    (512, 512, 10),
    (512, 512, 90),
    (1024, 1024, 10),
    (1024, 1024, 350),
    (1024, 2048, 10),
    (1024, 2048, 700),
]

FLOAT64 = DeformParams(precision="float64")


def count_components(segment: np.ndarray) -> int:
    """All 8-connected components of all classes: every component is "small" under an infinite threshold."""
    return len(small_component_boxes(segment, area_thresh=np.inf))


def time_call(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return (time.perf_counter() - start) * 1e3, result


def albumentations_runner():
    """The mask path of albumentations' ElasticTransform (uniform noise, exact blur), or None."""
    try:
        import albumentations as A
    except ImportError:
        return None

    def run(segment: np.ndarray, alpha: float, sigma: float, seed: int) -> np.ndarray:
        transform = A.ElasticTransform(alpha=alpha, sigma=sigma, noise_distribution="uniform", p=1.0)
        transform.set_random_seed(seed)
        params = transform.get_params_dependent_on_data({"shape": segment.shape}, {})
        return transform.apply_to_mask(segment, **params)

    return run


def bench_case(height: int, width: int, n_objects: int, seeds: list[int], albu) -> dict:
    segment = street_scene(height, width, n_objects, seed=height + width + n_objects)
    times = {"oracle": [], "float64": [], "float32": [], "albumentations": []}
    agree32 = []
    identical64 = True
    for seed in seeds:
        ms, (expected, alpha, sigma, _) = time_call(
            oracle_nsegment_plus, segment, np.random.RandomState(seed), DEFAULT_ALPHA_SIGMA
        )
        times["oracle"].append(ms)
        ms, exact = time_call(deform, segment, np.random.RandomState(seed), FLOAT64)
        times["float64"].append(ms)
        identical64 &= bool(np.array_equal(exact.segment, expected))
        ms, fast = time_call(deform, segment, np.random.RandomState(seed))
        times["float32"].append(ms)
        agree32.append(float(np.mean(fast.segment == expected)))
        if albu is not None:
            ms, _ = time_call(albu, segment, alpha, sigma, seed)
            times["albumentations"].append(ms)
    mean = {name: statistics.fmean(values) for name, values in times.items() if values}
    return {
        "height": height,
        "width": width,
        "components": count_components(segment),
        "ms": mean,
        "speedup_float32_vs_oracle": mean["oracle"] / mean["float32"],
        "speedup_float64_vs_oracle": mean["oracle"] / mean["float64"],
        "speedup_float32_vs_albumentations": (mean["albumentations"] / mean["float32"]) if albu else None,
        "agreement_float32_min": min(agree32),
        "float64_bit_identical": identical64,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds per case (each draws its own alpha, sigma)")
    parser.add_argument("--threads", type=int, default=None, help="cv2 threads (default: OpenCV's choice)")
    parser.add_argument("--quick", action="store_true", help="512x512 cases only")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "engine.json")
    args = parser.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    albu = albumentations_runner()
    cases = [case for case in CASES if not args.quick or case[0] == 512]
    seeds = list(range(args.seeds))

    rows = []
    header = (
        f"{'size':>10} {'comps':>6} {'oracle ms':>10} {'f64 ms':>8} {'f32 ms':>8} {'albu ms':>8} "
        f"{'f32 x oracle':>12} {'f32 x albu':>10} {'f32 agree %':>12} {'f64 ==':>7}"
    )
    print(header)
    for height, width, n_objects in cases:
        row = bench_case(height, width, n_objects, seeds, albu)
        rows.append(row)
        ms = row["ms"]
        albu_ms = f"{ms['albumentations']:8.1f}" if albu else f"{'-':>8}"
        albu_x = f"{row['speedup_float32_vs_albumentations']:10.2f}" if albu else f"{'-':>10}"
        print(
            f"{height:>4}x{width:<5} {row['components']:>6} {ms['oracle']:>10.1f} {ms['float64']:>8.1f} "
            f"{ms['float32']:>8.1f} {albu_ms} {row['speedup_float32_vs_oracle']:>12.1f} {albu_x} "
            f"{100 * row['agreement_float32_min']:>12.4f} {str(row['float64_bit_identical']):>7}",
            flush=True,
        )
    report = {
        "nsegaug": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cv2": cv2.__version__,
        "cv2_threads": cv2.getNumThreads(),
        "seeds": seeds,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
