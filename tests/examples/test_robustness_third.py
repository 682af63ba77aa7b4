"""The third study's committed results (examples/robustness/third): what its pre-registration promised.

Every figure of results.json is recomputed here from the runs it holds: the primary interval by hand (boundary
IoU over the classes both runs of a pair learned, 40 paired seeds), every comparison, the collapse rates, the
headline and results.md with nsegaug.study; and the record proves the order: the code that ran every unit is
the pre-registration commit, and no unit started before that commit was made. Until the study has finished, its
results are not committed and these tests skip, saying so.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from datetime import datetime

import pytest
from runs import ROOT

from nsegaug.study import analysis, collapse
from nsegaug.study.markdown import headline, results_markdown

EXAMPLE = ROOT / "examples" / "robustness" / "third"
RESULTS = EXAMPLE / "results" / "results.json"
METHODS = ("baseline", "nsegment+", "nsegment+online")
SEEDS = list(range(40))
T_39 = 2.022690920036761  # Student t, 39 degrees of freedom, 97.5 % quantile
PREREGISTRATION = "75b0e6bcde73f4dce362ee973dafbd44ed5636a9"
PREREGISTERED_AT = datetime.fromisoformat("2026-12-07T14:23:46+00:00")  # that commit's time
pytestmark = pytest.mark.skipif(not RESULTS.exists(), reason=f"{RESULTS} is committed when the study finishes")


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def runs_of(record: dict, method: str) -> dict[int, dict]:
    return {run["seed"]: run for run in record["runs"] if run["method"] == method}


def test_forty_seeds_of_three_methods_on_the_readers_labels(record):
    assert record["study"]["conditions"] == ["noisy"] and record["study"]["noisy_labels"] == "data/train/reader"
    for method in METHODS:
        assert sorted(runs_of(record, method)) == SEEDS, method
    assert len(record["runs"]) == 120 and all(run["condition"] == "noisy" for run in record["runs"])


def test_the_strength_came_from_the_committed_calibration(record):
    params = record["study"]["params_sources"]["generate"]
    assert params["params_file"] == "calibration/params.toml"
    committed = hashlib.sha256((EXAMPLE / "calibration" / "params.toml").read_bytes()).hexdigest()
    assert params["params_file_sha256"] == committed
    assert params["sources"] == {"alpha_sigma": "params file", "area_thresh": "params file"}


def test_every_unit_ran_the_preregistered_code_after_it_was_committed(record):
    assert record["code"]["commit"] == PREREGISTRATION and record["code"]["dirty"] is False
    assert record["code"]["units_ran_with"] == [{"nsegaug": "0.1.0", "commit": PREREGISTRATION, "dirty": False}]
    rows = [json.loads(line) for line in (EXAMPLE / "results" / "units.jsonl").read_text().splitlines()]
    assert min(datetime.fromisoformat(row["time"]) for row in rows) > PREREGISTERED_AT
    for entry in record["commands"]:
        assert datetime.fromisoformat(entry["started"]) > PREREGISTERED_AT, entry["name"]


def test_the_primary_interval_recomputed_by_hand(record):
    """Boundary IoU over the classes both runs of a pair learned (IoU above 0.05 in both), offline minus
    baseline, at the last evaluation."""
    assert record["study"]["primary"] == "boundary_miou_learned"  # named by the pre-registration
    offline, baseline = runs_of(record, "nsegment+"), runs_of(record, "baseline")
    differences = []
    for seed in SEEDS:
        kept = [c for c in range(2) if offline[seed]["iou"][c] > 0.05 and baseline[seed]["iou"][c] > 0.05]
        differences.append(
            statistics.mean(offline[seed]["boundary_iou"][c] for c in kept)
            - statistics.mean(baseline[seed]["boundary_iou"][c] for c in kept)
        )
    mean, half = statistics.mean(differences), T_39 * statistics.stdev(differences) / math.sqrt(40)
    primary = record["last"]["boundary_miou_learned"]["noisy"]["differences"]["nsegment+ - baseline"]
    assert primary["values"] == pytest.approx(differences, abs=2e-6)  # train's per-class figures have 6 decimals
    assert primary["ci95"] == pytest.approx([mean - half, mean + half], abs=2e-6)


def test_every_comparison_recomputed_from_the_runs(record):
    floor = record["study"]["collapse_iou"]
    for at in ("last", "baseline_best"):
        recomputed = json.loads(json.dumps(analysis.compare(record["runs"], METHODS, ["noisy"], at, floor)))
        assert recomputed == record[at], at
    rates = json.loads(json.dumps(collapse.collapse_rates(record["runs"], METHODS, ["noisy"], floor)))
    assert rates == record["collapse"]


def test_the_committed_write_up_is_drawn_from_the_runs(record):
    assert headline(record) == record["headline"]
    assert (RESULTS.parent / "results.md").read_text(encoding="utf-8") == results_markdown(record)
