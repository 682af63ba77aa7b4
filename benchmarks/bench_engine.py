"""Engine speed and agreement, all contenders in one run on the same maps, seeds and (alpha, sigma).

Contenders, interleaved (each seed is deformed by every contender in turn, in
an order that rotates each round):

- ``naive reference``: ``tests/oracle.py``, the reference code re-implemented
  plainly (every class labelled on its own); the results engines 1 and 2 are
  compared with (``--no-oracle``: float64, bit-identical to it, stands in);
- ``float64``: nsegaug with ``precision="float64"`` (``cv2.GaussianBlur`` as the
  reference calls it): must be bit-identical to the naive reference;
- ``engine 1``: float32, the reference stream, ``cv2.GaussianBlur``;
- ``engine 2``: float32, the reference stream, the same kernel as two row passes
  (``cv2.filter2D``) with a transpose between them: the default;
- ``engine 3``: engine 2's arithmetic on its own stream (the pair first, then
  16-bit levels from PCG64); compared with the reference code's arithmetic on
  that stream (float64 on the noise it drew), since its noise is its own;
- ``engine 2 map``, ``engine 3 map``: the same maps without their statistics
  (``nsegaug.deform.deform_labels``, what the transforms call): the mask path,
  comparable with albumentations';
- ``albumentations``: ``ElasticTransform``'s mask path with uniform noise (the
  field drawn and the mask warped; no small-object suppression at all), where
  albumentations is installed.

Each seed is deformed with one (alpha, sigma) pair by every contender: the pair
the paper's list gives that seed in the reference's order (or ``--pair``), so
that sigma, which sets the blur's cost, is the same for all. Times are ms per
map (the mean over the seeds), min and median over the rounds, wall and CPU
time of the process (CPU counts the labelling thread that wall time overlaps
with the draws; the speed-ups are of CPU time). Agreement is the smallest
share, over the seeds, of pixels equal to the reference's map. OpenCV runs on
``--threads`` threads (1 unless told). The CPU model is printed first: the
figures differ by CPU.

    python benchmarks/bench_engine.py --seeds 5 --rounds 3   # the docs' table; writes benchmarks/results/engine.json
    python benchmarks/bench_engine.py --quick                # 512x512 only
    python benchmarks/bench_engine.py --sizes 1024x2048 --pair 30:5 --no-oracle
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

from nsegaug.deform import (  # noqa: E402
    apply_deformation,
    deform,
    deform_labels,
    draw_deformation,
    small_component_boxes,
)
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
ORACLE = "naive reference"
DEFAULT = "engine 2 (default)"
FAST = "engine 3"
MAPS = {"engine 2 map": 2, "engine 3 map": 3}
# Contender -> (precision, engine) of nsegaug.
ENGINES = {"float64": ("float64", 2), "engine 1": ("float32", 1), DEFAULT: ("float32", 2), FAST: ("float32", 3)}


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


def contenders(segment: np.ndarray, seeds: list[int], pairs: dict[int, tuple], oracle: bool, albu: bool) -> dict:
    """name -> a function of the round that deforms ``segment`` once per seed and returns the maps."""

    def nsegaug(precision: str, engine: int):
        params = {seed: DeformParams((pairs[seed],), precision=precision, engine=engine) for seed in seeds}
        return lambda _: [deform(segment, np.random.RandomState(seed), params[seed]).segment for seed in seeds]

    found = {}
    if oracle:
        found[ORACLE] = lambda _: [
            oracle_nsegment_plus(segment, np.random.RandomState(seed), [pairs[seed]])[0] for seed in seeds
        ]
    found.update({name: nsegaug(*engine) for name, engine in ENGINES.items()})
    for name, engine in MAPS.items():
        params = {seed: DeformParams((pairs[seed],), engine=engine) for seed in seeds}
        found[name] = lambda _, params=params: [
            deform_labels(segment, np.random.RandomState(seed), params[seed]) for seed in seeds
        ]
    if albu:
        found["albumentations"] = lambda _: [albumentations_mask(segment, *pairs[seed], seed) for seed in seeds]
    return found


def seed_pairs(seeds: list[int], shape: tuple[int, int], pair: tuple[float, float] | None) -> dict[int, tuple]:
    """The pair each seed deforms with: ``pair``, or the one the paper's list gives it in the reference's order."""
    if pair is not None:
        return dict.fromkeys(seeds, pair)
    pairs = {}
    for seed in seeds:
        state = np.random.RandomState(seed)
        state.rand(*shape), state.rand(*shape)
        pairs[seed] = DEFAULT_ALPHA_SIGMA[state.randint(0, len(DEFAULT_ALPHA_SIGMA))]
    return pairs


def agreement(segment: np.ndarray, results: dict, seeds: list[int], pairs: dict, oracle: bool) -> dict:
    """The smallest share over the seeds of pixels equal to the reference's map, per contender."""
    reference = results[ORACLE if oracle else "float64"]
    found = {
        name: min(float(np.mean(mine == theirs)) for mine, theirs in zip(results[name], reference, strict=True))
        for name in ("engine 1", DEFAULT)
    }
    fast_reference = []  # the reference's arithmetic (float64) on the noise engine 3 drew
    for seed in seeds:
        params = DeformParams((pairs[seed],), engine=3)
        draw = draw_deformation(np.random.RandomState(seed), segment.shape, params)
        fast_reference.append(apply_deformation(segment, draw, params.replace(precision="float64")).segment)
    found[FAST] = min(float(np.mean(a == b)) for a, b in zip(results[FAST], fast_reference, strict=True))
    for name, engine in MAPS.items():  # the same bytes as deform's maps
        full = FAST if engine == 3 else DEFAULT
        same = all(np.array_equal(a, b) for a, b in zip(results[name], results[full], strict=True))
        found[name] = found[full] if same else -1.0
    return found


def bench_case(height: int, width: int, n_objects: int, args, albu: bool) -> dict:
    segment = street_scene(height, width, n_objects, seed=height + width + n_objects)
    seeds = list(range(args.seeds))
    pairs = seed_pairs(seeds, segment.shape, args.pair)
    results: dict[str, list[np.ndarray]] = {}
    timings = interleaved(
        contenders(segment, seeds, pairs, args.oracle, albu),
        args.rounds,
        keep=lambda name, _, maps: results.setdefault(name, maps),
    )
    exact = all(np.array_equal(a, b) for a, b in zip(results["float64"], results.get(ORACLE, []), strict=False))
    return {
        "height": height,
        "width": width,
        "components": count_components(segment),
        "pairs": [list(pairs[seed]) for seed in seeds],
        "ms_per_map": {name: timing.summary(1e3 / len(seeds)) for name, timing in timings.items()},
        "agreement_min": agreement(segment, results, seeds, pairs, args.oracle),
        "float64_bit_identical": exact if args.oracle else None,
    }


def speedups(row: dict, slow: str, fast: str) -> str:
    ms = row["ms_per_map"]
    if slow not in ms:
        return f"{slow}: not run"
    parts = [f"{ms[slow][key] / ms[fast][key]:.2f}x" for key in ("cpu_min", "cpu_median", "wall_min", "wall_median")]
    return f"{slow} / {fast}: CPU {parts[0]} (min) {parts[1]} (median), wall {parts[2]} (min) {parts[3]} (median)"


def print_case(row: dict, seeds: int, rounds: int) -> None:
    pairs = ", ".join(f"{alpha:g}:{sigma:g}" for alpha, sigma in row["pairs"])
    print(
        f"\n{row['height']}x{row['width']}, {row['components']} components; ms per map over {seeds} seeds "
        f"(alpha:sigma {pairs}), {rounds} rounds"
    )
    print(f"  {'contender':<20} {'CPU min':>9} {'CPU med':>9} {'wall min':>9} {'wall med':>9}  agreement")
    for name, ms in row["ms_per_map"].items():
        if name == "float64":
            exact = row["float64_bit_identical"]
            agree = {True: "bit-identical", False: "NOT bit-identical", None: "(the reference)"}[exact]
        elif name in row["agreement_min"]:
            agree = f"{100 * row['agreement_min'][name]:.4f} %" + (" (on its own noise)" if name == FAST else "")
        else:
            agree = "(the reference)" if name == ORACLE else "-"
        print(
            f"  {name:<20} {ms['cpu_min']:>9.1f} {ms['cpu_median']:>9.1f} {ms['wall_min']:>9.1f} "
            f"{ms['wall_median']:>9.1f}  {agree}"
        )
    comparisons = [("albumentations", name) for name in (DEFAULT, FAST, *MAPS)]
    for slow, fast in [*comparisons, ("engine 1", DEFAULT), (ORACLE, DEFAULT)]:
        print("  " + speedups(row, slow, fast))


def pair_option(text: str) -> tuple[float, float]:
    alpha, sigma = text.split(":")
    return float(alpha), float(sigma)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds per case (each with its own alpha, sigma)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all contenders, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="512x512 cases only")
    parser.add_argument("--sizes", default=None, help="only these sizes, e.g. 1024x2048")
    parser.add_argument("--many", action="store_true", help="only the cases with many components")
    parser.add_argument("--pair", type=pair_option, default=None, help="one ALPHA:SIGMA for every seed")
    parser.add_argument("--no-oracle", dest="oracle", action="store_false", help="skip the naive reference")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "engine.json")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    albu = has_albumentations()
    cases = [case for case in CASES if not args.quick or case[0] == 512]
    if args.sizes:
        wanted = set(args.sizes.split(","))
        cases = [case for case in cases if f"{case[0]}x{case[1]}" in wanted]
    if args.many:
        cases = [case for case in cases if case[2] > 10]
    found = conditions(cv2=cv2.getNumThreads())
    print_conditions(found)
    rows = []
    for height, width, n_objects in cases:
        rows.append(bench_case(height, width, n_objects, args, albu))
        print_case(rows[-1], args.seeds, args.rounds)
    found["load_average_after"] = conditions()["load_average"]
    print(f"\nload average after: {', '.join(f'{value:.2f}' for value in found['load_average_after'])}")
    report = {"conditions": found, "seeds": args.seeds, "rounds": args.rounds, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
