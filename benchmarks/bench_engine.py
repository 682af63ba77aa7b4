"""Engine speed and agreement, all contenders in one run on the same maps and seeds.

Contenders, interleaved (each seed is deformed by every contender in turn, in
an order that rotates each round):

- ``naive reference``: ``tests/oracle.py``, the reference code re-implemented
  plainly (every class labelled on its own); the results all others are
  compared with;
- ``float64``: nsegaug with ``precision="float64"`` (``cv2.GaussianBlur`` as the
  reference calls it): must be bit-identical to the naive reference;
- ``float32 engine 1``: float32 with ``blur="reference"``, the default engine
  of nsegaug up to engine 1 (``cv2.GaussianBlur``);
- ``float32 default``: today's default (``blur="rows"``: the same kernel as two
  row passes of ``cv2.filter2D`` with a transpose between them);
- ``albumentations``: ``ElasticTransform``'s mask path with uniform noise
  (no small-object suppression at all), where albumentations is installed.

Times are ms per map (the mean over the seeds, each seed drawing its own alpha
and sigma), min and median over the rounds, wall and CPU time of the process
(CPU counts the labelling thread that wall time overlaps with the draws).
Agreement is the smallest share, over the seeds, of pixels equal to the naive
reference's map. OpenCV runs on ``--threads`` threads (1 unless told).

    python benchmarks/bench_engine.py --seeds 5 --rounds 3   # the README's table; writes benchmarks/results/engine.json
    python benchmarks/bench_engine.py --quick                # 512x512 only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import conditions, interleaved, print_conditions  # noqa: E402
from oracle import oracle_nsegment_plus  # noqa: E402

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
FLOAT32 = DeformParams()
FLOAT64 = DeformParams(precision="float64")
ORACLE = "naive reference"
DEFAULT = "float32 default"


def count_components(segment: np.ndarray) -> int:
    """All 8-connected components of all classes: every component is "small" under an infinite threshold."""
    return len(small_component_boxes(segment, area_thresh=np.inf))


def albumentations_mask(segment: np.ndarray, alpha: float, sigma: float, seed: int) -> np.ndarray | None:
    """The mask path of albumentations' ElasticTransform (uniform noise, its blur), or None without it."""
    import albumentations as A

    transform = A.ElasticTransform(alpha=alpha, sigma=sigma, noise_distribution="uniform", p=1.0)
    transform.set_random_seed(seed)
    params = transform.get_params_dependent_on_data({"shape": segment.shape}, {})
    return transform.apply_to_mask(segment, **params)


def has_albumentations() -> bool:
    try:
        import albumentations  # noqa: F401
    except ImportError:
        return False
    return True


def contenders(segment: np.ndarray, seeds: list[int], pairs: dict[int, tuple], albu: bool) -> dict:
    """name -> a function of the round that deforms ``segment`` once per seed and returns the maps."""

    def nsegaug(params: DeformParams, blur: str | None):
        return lambda _: [deform(segment, np.random.RandomState(seed), params, blur=blur).segment for seed in seeds]

    found = {
        ORACLE: lambda _: [
            oracle_nsegment_plus(segment, np.random.RandomState(s), DEFAULT_ALPHA_SIGMA)[0] for s in seeds
        ],
        "float64": nsegaug(FLOAT64, None),
        "float32 engine 1": nsegaug(FLOAT32, "reference"),
        DEFAULT: nsegaug(FLOAT32, None),
    }
    if albu:
        found["albumentations"] = lambda _: [albumentations_mask(segment, *pairs[seed], seed) for seed in seeds]
    return found


def bench_case(height: int, width: int, n_objects: int, seeds: list[int], rounds: int, albu: bool) -> dict:
    segment = street_scene(height, width, n_objects, seed=height + width + n_objects)
    pairs = {}
    for seed in seeds:  # the pair each seed draws (after its two fields), for albumentations
        state = np.random.RandomState(seed)
        state.rand(height, width), state.rand(height, width)
        pairs[seed] = DEFAULT_ALPHA_SIGMA[state.randint(0, len(DEFAULT_ALPHA_SIGMA))]
    results: dict[str, list[np.ndarray]] = {}
    timings = interleaved(
        contenders(segment, seeds, pairs, albu),
        rounds,
        keep=lambda name, _, maps: results.setdefault(name, maps),
    )
    reference = results[ORACLE]
    agreement = {
        name: min(float(np.mean(mine == theirs)) for mine, theirs in zip(maps, reference, strict=True))
        for name, maps in results.items()
        if name not in (ORACLE, "albumentations")
    }
    ms = {name: timing.summary(1e3 / len(seeds)) for name, timing in timings.items()}
    return {
        "height": height,
        "width": width,
        "components": count_components(segment),
        "ms_per_map": ms,
        "agreement_min": agreement,
        "float64_bit_identical": all(np.array_equal(a, b) for a, b in zip(results["float64"], reference, strict=True)),
    }


def speedups(row: dict, against: str) -> str:
    ms = row["ms_per_map"]
    if against not in ms:
        return f"{against}: not run"
    parts = [
        f"{ms[against][key] / ms[DEFAULT][key]:.2f}x" for key in ("wall_min", "wall_median", "cpu_min", "cpu_median")
    ]
    return f"{against} / {DEFAULT}: wall {parts[0]} (min) {parts[1]} (median), CPU {parts[2]} (min) {parts[3]} (median)"


def print_case(row: dict, seeds: int, rounds: int) -> None:
    print(
        f"\n{row['height']}x{row['width']}, {row['components']} components; ms per map over {seeds} seeds, "
        f"{rounds} rounds"
    )
    print(f"  {'contender':<18} {'wall min':>9} {'wall med':>9} {'CPU min':>9} {'CPU med':>9}  agreement")
    for name, ms in row["ms_per_map"].items():
        if name == "float64":
            agree = "bit-identical" if row["float64_bit_identical"] else "NOT bit-identical"
        elif name in row["agreement_min"]:
            agree = f"{100 * row['agreement_min'][name]:.4f} %"
        else:
            agree = "(the reference)" if name == ORACLE else "-"
        print(
            f"  {name:<18} {ms['wall_min']:>9.1f} {ms['wall_median']:>9.1f} {ms['cpu_min']:>9.1f} "
            f"{ms['cpu_median']:>9.1f}  {agree}"
        )
    for against in ("float32 engine 1", "albumentations", ORACLE):
        print("  " + speedups(row, against))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds per case (each draws its own alpha, sigma)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all contenders, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="512x512 cases only")
    parser.add_argument("--sizes", default=None, help="only these sizes, e.g. 1024x2048")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "engine.json")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    albu = has_albumentations()
    cases = [case for case in CASES if not args.quick or case[0] == 512]
    if args.sizes:
        wanted = set(args.sizes.split(","))
        cases = [case for case in cases if f"{case[0]}x{case[1]}" in wanted]
    seeds = list(range(args.seeds))
    found = conditions(cv2=cv2.getNumThreads())
    print_conditions(found)
    rows = []
    for height, width, n_objects in cases:
        rows.append(bench_case(height, width, n_objects, seeds, args.rounds, albu))
        print_case(rows[-1], args.seeds, args.rounds)
    found["load_average_after"] = conditions()["load_average"]
    print(f"\nload average after: {', '.join(f'{value:.2f}' for value in found['load_average_after'])}")
    report = {"conditions": found, "seeds": seeds, "rounds": args.rounds, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
