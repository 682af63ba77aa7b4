"""The third study's power calculation, from the long-schedule study's committed runs (PREREGISTRATION.md).

The spread is the standard deviation of the paired differences of the primary metric, boundary IoU over the
classes both runs of a pair learned (``boundary_miou_learned``), NSegment+ offline minus baseline on noisy
labels, over the long study's 5 seeds; the pilot's between-seed spread of this study's own noisy baseline is
printed beside it (its pilots trained no NSegment+ model, so they have no paired difference to offer).

    python examples/robustness/third/power.py
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from scipy import stats

from nsegaug.study.collapse import present_classes, robust_pair

LONG = Path(__file__).resolve().parents[1] / "long" / "results" / "results.json"
TARGET_HALF_WIDTH = 0.0075  # the issue's: an interval of +-0.0075, so that +-0.01 is resolved
EFFECT = 0.01
POWER = 0.8


def long_study_spread(path: Path = LONG, condition: str = "noisy") -> tuple[list[float], float]:
    """The long study's paired differences (nsegment+ - baseline, boundary IoU over classes learned in both)."""
    record = json.loads(path.read_text())
    floor = record["study"].get("collapse_iou", 0.05)
    runs = {(run["condition"], run["method"], run["seed"]): run for run in record["runs"]}
    differences = []
    for seed in record["study"]["seeds"]:
        first, second = runs[(condition, "nsegment+", seed)], runs[(condition, "baseline", seed)]
        pair = robust_pair("boundary_miou_learned", first, second, present_classes(first), floor)
        differences.append(pair["values"][0] - pair["values"][1])
    return differences, statistics.stdev(differences)


def half_width(sd: float, n: int) -> float:
    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def power(sd: float, n: int, effect: float = EFFECT) -> float:
    """Two-sided paired t test at 5 %: the chance that a true ``effect`` puts the interval off 0."""
    critical = stats.t.ppf(0.975, n - 1)
    shift = effect / (sd / math.sqrt(n))
    return float(stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift))


def seeds_for(condition, start: int = 2) -> int:
    n = start
    while not condition(n):
        n += 1
    return n


def main() -> None:
    differences, sd = long_study_spread()
    print("long study, noisy, nsegment+ - baseline, boundary IoU over classes learned in both:")
    print("  differences " + " ".join(f"{value:+.4f}" for value in differences) + f"; SD {sd:.4f} (n = 5)")
    upper = sd * math.sqrt((len(differences) - 1) / stats.chi2.ppf(0.2, len(differences) - 1))
    print(f"  the SD's one-sided 80 % upper confidence bound: {upper:.4f}")
    for label, value in (("SD 0.02 (the issue's)", 0.02), (f"SD {sd:.4f} (observed)", sd), ("SD 0.03", 0.03)):
        n_half = seeds_for(lambda n, v=value: half_width(v, n) <= TARGET_HALF_WIDTH)
        n_power = seeds_for(lambda n, v=value: power(v, n) >= POWER)
        print(
            f"{label}: half-width <= {TARGET_HALF_WIDTH} needs {n_half} seeds; 80 % power for a true {EFFECT} needs "
            f"{n_power}; with 40 seeds: half-width {half_width(value, 40):.4f}, power {power(value, 40):.2f}"
        )


if __name__ == "__main__":
    main()
