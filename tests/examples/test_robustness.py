"""The robustness study (examples/robustness): its plan, its statistics, and a test-sized run end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from PIL import Image
from runs import ROOT

EXPERIMENT = ROOT / "examples" / "robustness"
sys.path.insert(0, str(EXPERIMENT))

import plan  # noqa: E402
import report  # noqa: E402


def runs_of(values: dict, metric: str = "miou") -> list[dict]:
    return [
        {"condition": condition, "method": method, "seed": seed, metric: value}
        for (condition, method), by_seed in values.items()
        for seed, value in by_seed.items()
    ]


def test_paired_differences_and_their_t_interval_hand_computed():
    runs = runs_of(
        {
            ("noisy", "baseline"): {0: 0.60, 1: 0.62, 2: 0.64},
            ("noisy", "nsegment+"): {0: 0.61, 1: 0.64, 2: 0.64},
            ("clean", "baseline"): {0: 0.70},
            ("clean", "nsegment+"): {0: 0.71, 5: 0.90},  # seed 5 has no pair: not in the difference
        }
    )
    summary = report.summarize_runs(runs)
    noisy = summary["noisy"]
    assert noisy["baseline"]["mean"] == pytest.approx(0.62) and noisy["baseline"]["std"] == pytest.approx(0.02)
    difference = noisy["difference"]
    assert difference["values"] == pytest.approx([0.01, 0.02, 0.0])
    # mean 0.01, std 0.01, n 3: t(0.975, 2) = 4.3027, half-width 4.3027 * 0.01 / sqrt(3) = 0.024841.
    assert difference["mean"] == pytest.approx(0.01) and difference["std"] == pytest.approx(0.01)
    assert difference["ci95"] == pytest.approx([0.01 - 0.024841, 0.01 + 0.024841], abs=1e-6)
    assert difference["excludes_zero"] is False
    clean = summary["clean"]["difference"]
    assert clean["seeds"] == [0] and clean["ci95"] is None and clean["excludes_zero"] is False
    assert report.t_quantile(4) == pytest.approx(2.7764, abs=1e-4)


def test_an_interval_away_from_zero_is_said_to_exclude_it():
    runs = runs_of(
        {
            ("clean", "baseline"): {s: 0.5 for s in range(5)},
            ("clean", "nsegment+"): {0: 0.52, 1: 0.53, 2: 0.52, 3: 0.51, 4: 0.52},
        }
    )
    assert report.summarize_runs(runs)["clean"]["difference"]["excludes_zero"] is True


def test_convergence_reads_the_last_quarter():
    evals = [{"step": step, "miou": value} for step, value in [(10, 0.5), (20, 0.7), (30, 0.80), (40, 0.804)]]
    entry = report.convergence(evals, 40)  # 3/4 of 40 = 30: from 0.80 to 0.804
    assert entry["final"] == 0.804 and entry["last_quarter_change"] == pytest.approx(0.4)
    assert entry["last_quarter_range"] == pytest.approx(0.4)
    runs = [{"condition": "clean", "method": "baseline", "seed": 0, "convergence": entry}]
    verdict = report.convergence_verdict(runs)
    assert verdict["plateau"] and verdict["reached_min_miou"]
    rising = [{"step": step, "miou": value} for step, value in [(10, 0.5), (20, 0.6), (30, 0.7), (40, 0.8)]]
    slow = [{"condition": "clean", "method": "baseline", "seed": 1, "convergence": report.convergence(rising, 40)}]
    assert not report.convergence_verdict(slow)["plateau"]  # 0.7 -> 0.8: ten points in the last quarter


def test_nsegment_parameters_are_scaled_to_the_map_size():
    assert plan.scaled_area_thresh(128) == pytest.approx(1000 / 64)
    pairs = [tuple(map(float, pair.split(":"))) for pair in plan.scaled_alpha_sigma(128).split(",")]
    assert len(pairs) == 15 and pairs[0] == (0.125, 3.0) and pairs[-1] == (12.5, 10.0)  # alpha / 8, sigma kept
    assert plan.scaled_alpha_sigma(1024).startswith("1:3,1:5,1:10,15:3")


def test_baseline_and_nsegment_commands_differ_only_in_the_flag(tmp_path):
    folders, settings = plan.Folders(tmp_path), plan.PRESETS["cpu"]
    base = plan.train_command("python", folders, settings, "noisy", "baseline", 3).argv
    plus = plan.train_command("python", folders, settings, "noisy", "nsegment+", 3).argv
    assert [a for a in base if a != "--baseline"] == [
        a if "nsegmentplus" not in a else a.replace("nsegmentplus", "baseline") for a in plus
    ]
    assert "--baseline" in base and "--baseline" not in plus and "0.5" in plus
    generate = plan.generate_command("python", folders, settings, "noisy", 3).argv
    assert "--area-thresh" in generate and "15.625" in generate and plan.scaled_alpha_sigma(128) in generate


def test_the_study_runs_end_to_end_and_a_rerun_redoes_nothing(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    command = [
        sys.executable,
        str(EXPERIMENT / "run.py"),
        "--quick",
        "--seeds",
        "0",
        "--out",
        str(out),
        "--work",
        str(work),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_environment()})
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "results.json").read_text())
    assert record["preset"] == "quick" and len(record["runs"]) == 4
    assert {(run["condition"], run["method"]) for run in record["runs"]} == {
        (c, m) for c in plan.CONDITIONS for m in plan.METHODS
    }
    for run in record["runs"]:
        assert (
            all(0 <= run[metric] <= 1 for metric in report.METRICS)
            and run["evals"]
            and run["convergence"]["final"] is not None
        )
    assert set(record["summaries"]) == set(report.METRICS) and record["noise"]["changed_fraction_mean"] > 0
    assert record["data"]["train_images"] == 8 and len(record["data"]["train_labels_sha256"]) == 64
    names = [entry["name"] for entry in record["commands"]]
    assert names[:2] == ["data", "noise"] and sum(name.startswith("train-") for name in names) == 4
    for name in ("results.png", "curves.png", "noise.png"):
        Image.open(out / name).load()
    assert "| boundary IoU | noisy |" in (out / "results.md").read_text()
    # Again: every command was finished, so none runs; the record keeps their times and adds the invocation.
    again = subprocess.run(command, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_environment()})
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("done before") == 2 + 4  # the generate and train commands
    rerecord = json.loads((out / "results.json").read_text())
    assert len(rerecord["invocations"]) == 2 and rerecord["runs"] == record["runs"]
    assert [entry["elapsed_s"] for entry in rerecord["commands"]][2:] == [
        entry["elapsed_s"] for entry in record["commands"]
    ][2:]
    # A first invocation killed before it wrote results.json: the commands it finished keep their times,
    # which their logs record.
    assert all(entry["elapsed_s"] is not None for entry in record["commands"])
    (out / "results.json").unlink()
    third = subprocess.run(command, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_environment()})
    assert third.returncode == 0, third.stderr
    times = [entry["elapsed_s"] for entry in json.loads((out / "results.json").read_text())["commands"]]
    assert times == [entry["elapsed_s"] for entry in record["commands"]]


def _environment() -> dict:
    import os

    return dict(os.environ)


COMMITTED = EXPERIMENT / "results" / "results.json"


@pytest.mark.skipif(not COMMITTED.exists(), reason="no committed study results")
def test_committed_tables_are_the_committed_runs():
    record = json.loads(COMMITTED.read_text())
    summaries = {metric: report.summarize_runs(record["runs"], metric) for metric in report.METRICS}
    assert report.markdown_table(summaries) == record["table"]
    for metric, summary in summaries.items():
        for condition, entry in summary.items():
            for method in plan.METHODS:
                assert entry[method]["n"] == len(record["settings"]["seeds"]), (metric, condition, method)
            assert not math.isnan(entry["difference"]["mean"])
