"""The long-schedule study's committed results (examples/robustness/long): what its pre-registration promised.

Every figure of results.json is recomputed here from the runs it holds, by hand for the primary interval and
with nsegaug.study.analysis for every comparison. Until the study has finished, its results are not committed
and these tests skip, saying so.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from nsegaug.study import analysis

RESULTS = Path(__file__).resolve().parents[1] / "examples" / "robustness" / "long" / "results" / "results.json"
METHODS = ("baseline", "nsegment+", "nsegment+online")
CONDITIONS = ("noisy", "clean")
pytestmark = pytest.mark.skipif(not RESULTS.exists(), reason=f"{RESULTS} is committed when the study finishes")


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_five_seeds_for_each_of_the_six_cells(record):
    for condition in CONDITIONS:
        for method in METHODS:
            seeds = sorted(
                run["seed"] for run in record["runs"] if (run["condition"], run["method"]) == (condition, method)
            )
            assert seeds == [0, 1, 2, 3, 4], (condition, method)
    assert len(record["runs"]) == 30


def test_the_primary_interval_recomputed_by_hand(record):
    def final(method: str) -> dict[int, float]:
        return {
            run["seed"]: run["boundary_miou"]
            for run in record["runs"]
            if (run["condition"], run["method"]) == ("noisy", method)
        }

    offline, baseline = final("nsegment+"), final("baseline")
    differences = [offline[seed] - baseline[seed] for seed in range(5)]
    mean, std = statistics.mean(differences), statistics.stdev(differences)
    half = 2.7764451051977987 * std / math.sqrt(5)  # Student t, 4 degrees of freedom, 97.5 % quantile
    primary = record["last"]["boundary_miou"]["noisy"]["differences"]["nsegment+ - baseline"]
    assert primary["mean"] == pytest.approx(mean) and primary["ci95"] == pytest.approx([mean - half, mean + half])


def test_every_comparison_recomputed_from_the_runs(record):
    for at in ("last", "baseline_best"):
        recomputed = json.loads(json.dumps(analysis.compare(record["runs"], METHODS, CONDITIONS, at)))
        assert recomputed == record[at], at
