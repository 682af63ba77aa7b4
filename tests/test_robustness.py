"""The robustness experiment (examples/robustness): its noise models, its report, and a test-sized run end to end."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXPERIMENT = Path(__file__).resolve().parents[1] / "examples" / "robustness"
DATA = EXPERIMENT.parent / "data"
sys.path.insert(0, str(EXPERIMENT))

import plan  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402

# --- report and plan -------------------------------------------------------------------------------------------------


def _runs(values: dict) -> list[dict]:
    return [
        {"condition": condition, "method": method, "seed": seed, "miou": miou}
        for (condition, method), by_seed in values.items()
        for seed, miou in by_seed.items()
    ]


def test_summary_pairs_runs_by_seed():
    runs = _runs(
        {
            ("clean", "baseline"): {0: 0.30, 1: 0.32, 2: 0.34},
            ("clean", "nsegment+"): {0: 0.31, 1: 0.34, 2: 0.34},
            ("noisy", "baseline"): {0: 0.20, 1: 0.25},
            ("noisy", "nsegment+"): {1: 0.26, 0: 0.22},
        }
    )
    summary = report.summarize_runs(runs)
    assert summary["clean"]["baseline"]["mean"] == pytest.approx(0.32)
    assert summary["clean"]["baseline"]["std"] == pytest.approx(0.02)
    assert summary["clean"]["difference"]["values"] == pytest.approx([0.01, 0.02, 0.0])
    assert summary["noisy"]["difference"]["values"] == pytest.approx([0.02, 0.01])
    assert summary["noisy"]["difference"]["exceeds_std"] is True
    table = report.markdown_table(summary).splitlines()
    assert len(table) == 4 and table[2].startswith("| clean | 0.3200 ± 0.0200 | 0.3300 ± 0.0173 | +0.0100 ± 0.0100")


def test_single_seed_has_zero_spread_and_chart_draws():
    summary = report.summarize_runs(_runs({("clean", "baseline"): {0: 0.1}, ("clean", "nsegment+"): {0: 0.2}}))
    assert list(summary) == ["clean"] and summary["clean"]["baseline"]["std"] == 0.0
    assert summary["clean"]["difference"]["exceeds_std"] is False
    image = report.draw_chart(summary)
    assert image.size == (640, 400) and len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 3
    assert math.isnan(report.mean_std([])[0])


def test_baseline_and_nsegment_commands_differ_only_in_the_flag(tmp_path):
    folders = plan.Folders(tmp_path / "tl", tmp_path / "ti", tmp_path / "vl", tmp_path / "vi", tmp_path / "w")
    settings = plan.PRESETS["quick"]
    baseline = plan.train_command("python", folders, settings, "noisy", "baseline", 1).argv
    method = plan.train_command("python", folders, settings, "noisy", "nsegment+", 1).argv
    # Only the flag and the run folder differ: same manifest, seed, schedule, crops and --prob.
    assert [part for part in baseline if part not in method] == ["--baseline", str(folders.run("noisy", "baseline", 1))]
    assert [part for part in method if part not in baseline] == [str(folders.run("noisy", "nsegment+", 1))]
    assert baseline[baseline.index("--val-labels") + 1] == str(tmp_path / "vl")
    generates, trains = plan.all_commands("python", folders, settings)
    assert len(generates) == 2 * 3 and len(trains) == 2 * 2 * 3
    with pytest.raises(ValueError):
        plan.parse_seeds("1,1")


def test_an_unsplit_dataset_is_split_by_seed(tmp_path):
    data = tmp_path / "data"
    for part in ("labels", "images"):
        (data / part).mkdir(parents=True)
    for index in range(8):
        Image.fromarray(np.full((4, 4), index, np.uint8)).save(data / "labels" / f"s{index}.png")
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(data / "images" / f"s{index}.jpg")
    folders = run.prepare_folders(data, tmp_path / "work", plan.Settings(val_fraction=0.25))
    train = sorted(path.name for path in folders.train_labels.iterdir())
    val = sorted(path.name for path in folders.val_labels.iterdir())
    assert len(val) == 2 and len(train) == 6 and not set(train) & set(val)
    assert sorted(path.name for path in folders.val_images.iterdir()) == [name[:-4] + ".jpg" for name in val]
    again = run.prepare_folders(data, tmp_path / "again", plan.Settings(val_fraction=0.25))
    assert sorted(path.name for path in again.val_labels.iterdir()) == val


# --- the experiment, test-sized --------------------------------------------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_experiment_runs_end_to_end(tmp_path):
    val_before = _digests(DATA / "val" / "labels")
    train_before = _digests(DATA / "train" / "labels")
    out = tmp_path / "out"
    command = [sys.executable, str(EXPERIMENT / "run.py"), "--quick", "--seeds", "0", "--iters", "2", "--width", "4"]
    command += ["--crop", "32", "32", "--batch-size", "2", "--copies", "1", "--train-images", "4", "--val-images", "2"]
    command += ["--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    record = json.loads((out / "results.json").read_text())
    assert {(r["condition"], r["method"], r["seed"]) for r in record["runs"]} == {
        (condition, method, 0) for condition in ("clean", "noisy") for method in ("baseline", "nsegment+")
    }
    assert all(0 <= r["miou"] <= 1 and r["steps"] == 2 for r in record["runs"])
    assert [r["baseline"] for r in record["runs"]] == [True, False, True, False]
    assert record["data"] | {"val_images": 2, "train_images": 4} == record["data"]
    assert 0 < record["noise"]["changed_fraction_mean"] < 0.5
    shells = [entry["shell"] for entry in record["commands"]]
    assert sum(" nsegaug generate " in line for line in shells) == 2
    assert sum(" nsegaug train " in line for line in shells) == 4
    assert all("OMP_NUM_THREADS=1" in line for line in shells)
    assert set(record["summary"]) == {"clean", "noisy"}

    table = (out / "results.md").read_text()
    assert record["table"] in table and "| noisy |" in table and all(line in table for line in shells)
    with Image.open(out / "results.png") as chart:
        assert chart.format == "PNG" and chart.size == (640, 400)
    with Image.open(out / "noise.png") as picture:
        assert picture.size == (3 * 512 + 8, 256)

    # Training used the clean validation labels, linked, never written: the sources are byte for byte as before.
    val_labels = Path(record["data"]["val_labels"])
    val_labels = val_labels if val_labels.is_absolute() else tmp_path / val_labels
    for path in val_labels.iterdir():
        assert path.resolve().parent == (DATA / "val" / "labels").resolve()
    assert _digests(DATA / "val" / "labels") == val_before
    assert _digests(DATA / "train" / "labels") == train_before
    # The noisy training labels are other files, and noisier.
    noisy = tmp_path / "out" / "work" / "labels" / "noisy"
    assert sorted(path.name for path in noisy.iterdir()) == sorted(train_before)[:4]

    again = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_committed_table_is_the_committed_runs():
    record = json.loads((EXPERIMENT / "results" / "results.json").read_text())
    readme = (EXPERIMENT / "README.md").read_text()
    assert record["table"] in readme and record["command"] in readme
    assert record["preset"] == "quick" and len(record["runs"]) == 12
    assert record["table"] == report.markdown_table(report.summarize_runs(record["runs"]))
