"""The long-schedule study's committed results (examples/robustness/long): what its pre-registration promised.

Every figure of results.json is recomputed here from the runs it holds, by hand for the primary interval, the
class collapse behind it and its collapse-robust twin, and with nsegaug.study for every comparison, the
headline and results.md (rendered again from the runs by examples/robustness/long/render.py: nothing is
trained). Until the study has finished, its results are not committed and these tests skip, saying so.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest
from runs import ROOT

from nsegaug.study import analysis, collapse
from nsegaug.study.markdown import headline, results_markdown

RESULTS = ROOT / "examples" / "robustness" / "long" / "results" / "results.json"
METHODS = ("baseline", "nsegment+", "nsegment+online")
CONDITIONS = ("noisy", "clean")
T_4 = 2.7764451051977987  # Student t, 4 degrees of freedom, 97.5 % quantile
pytestmark = pytest.mark.skipif(not RESULTS.exists(), reason=f"{RESULTS} is committed when the study finishes")


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def runs_of(record: dict, condition: str, method: str) -> dict[int, dict]:
    return {run["seed"]: run for run in record["runs"] if (run["condition"], run["method"]) == (condition, method)}


def test_five_seeds_for_each_of_the_six_cells(record):
    for condition in CONDITIONS:
        for method in METHODS:
            assert sorted(runs_of(record, condition, method)) == [0, 1, 2, 3, 4], (condition, method)
    assert len(record["runs"]) == 30


def test_the_primary_interval_recomputed_by_hand(record):
    offline, baseline = runs_of(record, "noisy", "nsegment+"), runs_of(record, "noisy", "baseline")
    differences = [offline[seed]["boundary_miou"] - baseline[seed]["boundary_miou"] for seed in range(5)]
    mean, std = statistics.mean(differences), statistics.stdev(differences)
    half = T_4 * std / math.sqrt(5)
    primary = record["last"]["boundary_miou"]["noisy"]["differences"]["nsegment+ - baseline"]
    assert primary["mean"] == pytest.approx(mean) and primary["ci95"] == pytest.approx([mean - half, mean + half])
    assert record["study"]["primary"] == "boundary_miou"  # named by the pre-registration


def test_the_primary_interval_is_one_seeds_class_collapse(record):
    """Seed 4: the baseline lost class 4 ("human"), offline NSegment+ kept it; that class is most of the pair."""
    offline, baseline = runs_of(record, "noisy", "nsegment+")[4], runs_of(record, "noisy", "baseline")[4]
    assert baseline["iou"][4] <= 0.05 < offline["iou"][4]
    others = [index for index in range(6) if index != 4]
    without = statistics.mean(offline["boundary_iou"][index] for index in others) - statistics.mean(
        baseline["boundary_iou"][index] for index in others
    )
    whole = offline["boundary_miou"] - baseline["boundary_miou"]
    primary = record["last"]["boundary_miou"]["noisy"]["differences"]["nsegment+ - baseline"]
    pair = primary["collapse"]["pairs"]["4"]
    assert pair["lost_only_by"] == {"baseline": [4]}
    assert pair["contribution"] == pytest.approx(whole - without, abs=2e-6)  # class_mean keeps 6 decimals
    assert primary["collapse"]["dominated"] and list(primary["collapse"]["pairs"]) == ["4"]
    lost = [run for run in record["runs"] if any(value <= 0.05 for value in run["iou"])]
    assert len(lost) == 11  # of 30 runs, a class at or below IoU 0.05


def test_the_collapse_robust_primary_by_hand(record):
    """Boundary IoU over the classes both runs of a pair learned (IoU above 0.05 in both)."""
    offline, baseline = runs_of(record, "noisy", "nsegment+"), runs_of(record, "noisy", "baseline")
    differences = []
    for seed in range(5):
        kept = [c for c in range(6) if offline[seed]["iou"][c] > 0.05 and baseline[seed]["iou"][c] > 0.05]
        differences.append(
            statistics.mean(offline[seed]["boundary_iou"][c] for c in kept)
            - statistics.mean(baseline[seed]["boundary_iou"][c] for c in kept)
        )
    robust = record["last"]["boundary_miou_learned"]["noisy"]["differences"]["nsegment+ - baseline"]
    mean, half = statistics.mean(differences), T_4 * statistics.stdev(differences) / math.sqrt(5)
    assert robust["values"] == pytest.approx(differences, abs=2e-6)  # train's per-class figures have 6 decimals
    assert robust["ci95"] == pytest.approx([mean - half, mean + half], abs=2e-6)


def test_every_comparison_recomputed_from_the_runs(record):
    floor = record["study"]["collapse_iou"]
    for at in ("last", "baseline_best"):
        recomputed = json.loads(json.dumps(analysis.compare(record["runs"], METHODS, CONDITIONS, at, floor)))
        assert recomputed == record[at], at
    rates = json.loads(json.dumps(collapse.collapse_rates(record["runs"], METHODS, CONDITIONS, floor)))
    assert rates == record["collapse"]


def test_the_committed_write_up_is_drawn_from_the_runs(record):
    assert headline(record) == record["headline"]
    assert (RESULTS.parent / "results.md").read_text(encoding="utf-8") == results_markdown(record)
