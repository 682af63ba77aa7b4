"""``nsegaug study``: its statistics by hand, its description, the pairing of its trainings, and whole studies
through the command line on the example scenes (killed with SIGKILL and rerun; a dry run that writes nothing)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import nsegaug
from nsegaug.cli import main
from nsegaug.errors import UsageError
from nsegaug.study import analysis
from nsegaug.study.plan import plan_units
from nsegaug.study.spec import build_spec

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
# tests/test_trust.py's tiny training; 8 maps of batch 2 are 4 steps per epoch, so 8 steps evaluate twice.
TINY = {"width": 4, "batch_size": 2, "crop": [64, 64], "workers": 0, "device": "cpu", "iters": 8}


def runs_of(values: dict, metric: str = "miou") -> list[dict]:
    return [
        {"condition": condition, "method": method, "seed": seed, metric: value, "evals": []}
        for (condition, method), by_seed in values.items()
        for seed, value in by_seed.items()
    ]


# --- analysis, by hand ---------------------------------------------------------------------------------------------


def test_the_paired_interval_and_its_reading_by_hand():
    entry = analysis.paired_difference({0: 0.61, 1: 0.64, 2: 0.64}, {0: 0.60, 1: 0.62, 2: 0.64})
    assert entry["values"] == pytest.approx([0.01, 0.02, 0.0])
    # mean 0.01, std 0.01, n 3: t(0.975, 2) = 4.302653, half-width 4.302653 * 0.01 / sqrt(3) = 0.0248414.
    assert entry["mean"] == pytest.approx(0.01) and entry["std"] == pytest.approx(0.01)
    assert entry["half_width"] == pytest.approx(0.0248414, abs=1e-6)
    assert entry["ci95"] == pytest.approx([0.01 - 0.0248414, 0.01 + 0.0248414], abs=1e-6)
    assert entry["verdict"] == "no resolvable effect"
    assert entry["reading"] == (
        "no resolvable effect; the smallest effect this study could have seen, about half the time, is ±0.0248"
    )
    above = analysis.paired_difference({0: 0.52, 1: 0.53, 2: 0.52, 3: 0.51, 4: 0.52}, dict.fromkeys(range(5), 0.5))
    assert above["reading"] == "above 0"  # differences 2, 3, 2, 1, 2 points: mean 2, half-width 0.88 points
    below = analysis.paired_difference(dict.fromkeys(range(5), 0.5), {0: 0.52, 1: 0.53, 2: 0.52, 3: 0.51, 4: 0.52})
    assert below["reading"] == "below 0"
    alone = analysis.paired_difference({0: 0.7, 5: 0.9}, {0: 0.6})  # seed 5 has no pair
    assert alone["seeds"] == [0] and alone["ci95"] is None and alone["reading"].startswith("no interval")
    assert analysis.t_quantile(4) == pytest.approx(2.7764, abs=1e-4)


def test_compare_pairs_every_method_with_the_baseline_and_with_each_other():
    runs = runs_of(
        {
            ("noisy", "baseline"): {0: 0.60, 1: 0.62},
            ("noisy", "nsegment+"): {0: 0.61, 1: 0.64},
            ("noisy", "nsegment+online"): {0: 0.62, 1: 0.62},
        }
    )
    summary = analysis.compare(runs, ["nsegment+", "baseline", "nsegment+online"], ["noisy"])["miou"]["noisy"]
    assert list(summary["cells"]) == ["baseline", "nsegment+", "nsegment+online"]  # the reference first
    assert summary["cells"]["baseline"]["mean"] == pytest.approx(0.61)
    assert summary["cells"]["baseline"]["std"] == pytest.approx(math.sqrt(2) * 0.01)
    differences = summary["differences"]
    assert list(differences) == ["nsegment+ - baseline", "nsegment+online - baseline", "nsegment+online - nsegment+"]
    assert differences["nsegment+ - baseline"]["values"] == pytest.approx([0.01, 0.02])
    assert differences["nsegment+online - nsegment+"]["values"] == pytest.approx([0.01, -0.02])


def test_at_the_baselines_best_evaluation_every_method_is_read_at_that_step():
    def run(method, seed, curve):
        evals = [{"step": step, "miou": value} for step, value in zip((10, 20, 30), curve, strict=True)]
        return {"condition": "noisy", "method": method, "seed": seed, "miou": curve[-1], "evals": evals}

    runs = [
        run("baseline", 0, (0.5, 0.7, 0.6)),  # best at step 20
        run("nsegment+", 0, (0.5, 0.66, 0.69)),
        run("baseline", 1, (0.5, 0.6, 0.65)),  # best at step 30
        run("nsegment+", 1, (0.55, 0.7, 0.66)),
    ]
    entry = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"], at="baseline_best")["miou"]["noisy"]
    assert entry["steps"] == {0: 20, 1: 30}
    assert entry["cells"]["baseline"]["values"] == [0.7, 0.65]
    assert entry["differences"]["nsegment+ - baseline"]["values"] == pytest.approx([-0.04, 0.01])
    last = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"])["miou"]["noisy"]
    assert last["differences"]["nsegment+ - baseline"]["values"] == pytest.approx([0.09, 0.01])


def test_convergence_plateau_and_classes_by_hand():
    # 8 evaluations: the last quarter is the last 2, measured from the 6th value (0.80) to the last.
    flat = analysis.plateau([0.2, 0.5, 0.6, 0.7, 0.75, 0.80, 0.803, 0.805])
    assert flat["relative_change"] == pytest.approx(0.005 / 0.80) and flat["plateau"] is True
    rising = analysis.plateau([0.2, 0.5, 0.6, 0.7, 0.75, 0.80, 0.81, 0.82])
    assert rising["relative_change"] == pytest.approx(0.025) and rising["plateau"] is False
    assert analysis.plateau([0.5])["plateau"] is None
    # 5 evaluations: a quarter rounds up to 2, from the 3rd value.
    assert analysis.plateau([0.1, 0.2, 0.4, 0.5, 0.6])["relative_change"] == pytest.approx(0.5)
    # Class 2 absent from the validation labels (0 pixels): predicted (IoU 0) or not (None), it is not judged.
    run = {"iou": [0.9, 0.06, 0.0, 0.05, 0.0], "class_pixels": [50, 20, 0, 10, 5]}
    learned = analysis.classes_learned(run)
    assert learned["lost_classes"] == [3, 4] and learned["every_class_learned"] is False
    assert learned["classes_present"] == 4 and learned["learned_share"] == 0.5 and learned["learned"] is True
    assert analysis.classes_learned(run, floor=0.07)["learned"] is False  # 1 of 4 above 0.07
    # A record made before train recorded class_pixels: the classes with an IoU are the ones judged.
    assert analysis.classes_learned({"iou": [0.9, 0.5, None]})["every_class_learned"] is True


# --- class collapse and the collapse-robust metrics, by hand ---------------------------------------------------------

# 4 classes, all in the validation labels; at seed 1 the baseline lost class 3 (IoU 0), NSegment+ kept it.
COLLAPSE_RUNS = {
    ("baseline", 0): ([0.9, 0.8, 0.6, 0.5], [0.5, 0.4, 0.3, 0.2]),
    ("nsegment+", 0): ([0.9, 0.8, 0.7, 0.5], [0.5, 0.4, 0.4, 0.2]),
    ("baseline", 1): ([0.9, 0.8, 0.6, 0.0], [0.5, 0.4, 0.3, 0.0]),
    ("nsegment+", 1): ([0.9, 0.8, 0.6, 0.6], [0.5, 0.4, 0.3, 0.3]),
    ("baseline", 2): ([0.9, 0.8, 0.6, 0.5], [0.5, 0.4, 0.3, 0.2]),
    ("nsegment+", 2): ([0.9, 0.8, 0.5, 0.5], [0.5, 0.4, 0.2, 0.2]),
}


def collapse_run(method: str, seed: int, iou: list, boundary: list) -> dict:
    final = {"miou": sum(iou) / 4, "boundary_miou": sum(boundary) / 4, "band_miou": sum(boundary) / 4}
    final.update(iou=iou, boundary_iou=boundary, band_iou=boundary)
    evals = [{"step": 10, **final}, {"step": 20, **final}]  # flat: a plateau
    return {"condition": "noisy", "method": method, "seed": seed, **final, "class_pixels": [9] * 4, "evals": evals}


def test_class_collapse_and_the_collapse_robust_metrics_by_hand():
    from nsegaug.study import collapse

    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    summary = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"])
    plain = summary["miou"]["noisy"]["differences"]["nsegment+ - baseline"]
    # mIoU: baseline 0.7, 0.575, 0.7; NSegment+ 0.725, 0.725, 0.675.
    assert plain["values"] == pytest.approx([0.025, 0.15, -0.025])
    # Seed 1's +0.15 is class 3 alone (the other classes are equal): 0.15 of the 0.2 summed |differences|.
    pair = plain["collapse"]["pairs"][1]
    assert pair["lost_only_by"] == {"baseline": [3]} and pair["contribution"] == pytest.approx(0.15)
    assert list(plain["collapse"]["pairs"]) == [1] and plain["collapse"]["dominated"] is True
    assert plain["warnings"][0].startswith("dominated by class collapse: seed 1: class 3 lost by baseline only")
    # Over the classes both runs learned: all 4 at seeds 0 and 2, classes 0-2 at seed 1 (equal there).
    robust = summary["miou_learned"]["noisy"]["differences"]["nsegment+ - baseline"]
    assert robust["classes"] == {0: [0, 1, 2, 3], 1: [0, 1, 2], 2: [0, 1, 2, 3]}
    assert robust["values"] == pytest.approx([0.025, 0.0, -0.025]) and robust["mean"] == pytest.approx(0.0)
    # std 0.025, n 3: half-width t(0.975, 2) 4.302653 x 0.025 / sqrt(3) = 0.0621033.
    assert robust["half_width"] == pytest.approx(0.0621033, abs=1e-6) and robust["verdict"] == "no resolvable effect"
    boundary = summary["boundary_miou_learned"]["noisy"]["differences"]["nsegment+ - baseline"]
    # Boundary IoU over the same classes: 0.375 - 0.35, 0.4 - 0.4, 0.325 - 0.35.
    assert boundary["values"] == pytest.approx([0.025, 0.0, -0.025])
    assert summary["miou_learned"]["noisy"]["cells"] is None  # a pair metric has no per-method cell
    rates = collapse.collapse_rates(runs, ["baseline", "nsegment+"], ["noisy"])
    assert rates["by_cell"]["noisy"]["baseline"] == {
        "runs": 3,
        "collapsed": 1,
        "rate": 1 / 3,
        "lost": {0: [], 1: [3], 2: []},
    }
    assert rates["by_method"]["nsegment+"]["collapsed"] == 0
    # A floor of 0.65 (a study file's collapse_iou): classes 2 and 3 count as lost in a run of every pair.
    higher = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"], floor=0.65)["miou_learned"]["noisy"]
    assert higher["differences"]["nsegment+ - baseline"]["classes"] == {0: [0, 1], 1: [0, 1], 2: [0, 1]}


def test_runs_that_did_not_learn_give_no_verdict_whatever_their_interval():
    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    # An online method whose runs learned 1 of 4 classes: 0.30 above the floor, the others at 0.01.
    runs += [collapse_run("nsegment+online", seed, [0.3, 0.01, 0.01, 0.01], [0.1, 0.0, 0.0, 0.0]) for seed in range(3)]
    for run in runs[-3:]:
        run["miou"] += 0.001 * run["seed"]  # a tight, nonzero spread: an interval off 0
    entry = analysis.compare(runs, ["baseline", "nsegment+", "nsegment+online"], ["noisy"])["miou"]["noisy"]
    online = entry["differences"]["nsegment+online - baseline"]
    assert online["ci95"][1] < 0 and online["verdict"] is None and online["warnings"] == []
    assert online["reading"] == (
        "no verdict: 3 of 6 runs did not learn (fewer than half of the classes in the validation labels above IoU 0.05)"
    )
    assert entry["differences"]["nsegment+ - baseline"]["verdict"] == "no resolvable effect"
    assert analysis.convergence(runs[-1])["learned"] is False and analysis.convergence(runs[0])["learned"] is True


def test_the_paired_chart_holds_zero_and_every_interval_whole():
    from nsegaug.study.charts import paired_figure
    from nsegaug.study.report import analyse

    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    study = {"methods": ["baseline", "nsegment+"], "conditions": ["noisy"], "seeds": [0, 1, 2], "primary": "miou"}
    record = analyse({"study": study, "runs": runs})
    figure = paired_figure(record)
    for axis, metric in zip(figure.axes, analysis.ALL_METRICS, strict=False):
        low, high = axis.get_ylim()
        entry = record["last"][metric]["noisy"]["differences"]["nsegment+ - baseline"]
        assert low < 0 < high and low <= min(entry["ci95"]) and max(entry["ci95"]) <= high, metric
        assert axis.get_title().startswith(analysis.METRIC_NAMES[metric])
    assert (
        record["headline"][0]
        == "primary comparison: nsegment+ - baseline, noisy labels, last evaluation, 3 paired seed(s)"
    )


# --- the description -----------------------------------------------------------------------------------------------

DATA = {
    "labels": "a",
    "images": "b",
    "val_labels": "c",
    "val_images": "d",
    "num_classes": 19,
}


def test_the_train_table_becomes_trains_own_flags_and_refuses_what_the_study_sets():
    spec = build_spec({"data": DATA, "train": {**TINY, "hflip": False, "model": "pkg.mod:factory"}})
    train = [unit for unit in plan_units(spec, Path("out")) if unit.kind == "train"]
    argv = train[0].argv
    assert argv[argv.index("--crop") : argv.index("--crop") + 3] == ("--crop", "64", "64")
    assert "--no-hflip" in argv and argv[argv.index("--model") + 1] == "pkg.mod:factory"
    with pytest.raises(UsageError, match=r"\[train\] seed: set by the study's seeds"):
        plan_units(build_spec({"data": DATA, "train": {"seed": 3}}), Path("out"))
    with pytest.raises(UsageError, match=r"\[train\] colour: not an option of nsegaug train"):
        plan_units(build_spec({"data": DATA, "train": {"colour": 3}}), Path("out"))
    with pytest.raises(UsageError, match=r"\[train\] schedule: .*linear"):
        plan_units(build_spec({"data": DATA, "train": {"schedule": "linear"}}), Path("out"))
    with pytest.raises(UsageError, match=r"\[train\] crop: 2 value\(s\) expected"):
        plan_units(build_spec({"data": DATA, "train": {"crop": 64}}), Path("out"))
    with pytest.raises(UsageError, match="unknown method"):
        build_spec({"data": DATA, "study": {"methods": ["baseline", "mixup"]}})
    with pytest.raises(UsageError, match="needs val_images"):
        build_spec({"data": {key: value for key, value in DATA.items() if key != "val_images"}})


def test_a_study_file_on_the_command_line_names_itself_in_its_refusal(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('[data]\nlabels = "a"\n[train]\nseed = 1\n')
    result = CliRunner().invoke(main, ["study", str(path), "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 2 and f"{path}: the study needs images" in result.output
    assert not (tmp_path / "out").exists()


def test_methods_read_the_same_sources_and_nsegment_turns_the_suppression_off():
    tables = {"data": DATA, "study": {"methods": ["baseline", "nsegment", "nsegment+online"], "seeds": [4]}}
    tables["generate"] = {"copies": 2, "alpha_sigma": "1:3", "area_thresh": 15}
    units = {unit.name: unit for unit in plan_units(build_spec(tables), Path("out"))}
    generate = units["generate-clean-nsegment-seed4"].argv
    assert generate[generate.index("--area-thresh") + 1] == "0" and generate.count("--area-thresh") == 1
    baseline, online = units["train-clean-baseline-seed4"].argv, units["train-clean-nsegment-plus-online-seed4"].argv
    manifest = str(Path("out/data/copies/clean/nsegment/seed4/manifest.jsonl"))
    assert baseline[baseline.index("--manifest") + 1] == online[online.index("--manifest") + 1] == manifest
    assert online[online.index("--area-thresh") + 1] == "15" and online[online.index("--alpha-sigma") + 1] == "1:3"


# --- the pairing, through train's own code -------------------------------------------------------------------------


def _scenes(root: Path, train: int = 8, val: int = 4) -> dict:
    """A study's [data] table over copies of the example scenes."""
    for split, count in (("train", train), ("val", val)):
        for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
            (root / split / kind).mkdir(parents=True)
            for index in range(count):
                name = f"scene_{index:04d}{suffix}"
                shutil.copy(SAMPLES / split / kind / name, root / split / kind / name)
    return {
        "labels": str(root / "train" / "labels"),
        "images": str(root / "train" / "images"),
        "val_labels": str(root / "val" / "labels"),
        "val_images": str(root / "val" / "images"),
        "num_classes": 19,
    }


@needs_torch
def test_the_methods_of_a_seed_share_initial_weights_batches_crops_scales_and_flips(tmp_path):
    import torch

    from nsegaug.options.train import config_of
    from nsegaug.study.run import UnitLog, run_unit
    from nsegaug.train.distributed import launched_processes, pick_device
    from nsegaug.train.runlog import RunLog
    from nsegaug.train.start import build, loaders, prepare

    methods = ["baseline", "nsegment+", "nsegment+online"]
    tables = {"data": _scenes(tmp_path / "data"), "study": {"methods": methods, "seeds": [3]}, "train": TINY}
    tables["generate"] = {"copies": 2}
    units = plan_units(build_spec(tables), tmp_path / "study")
    for unit in (unit for unit in units if unit.kind == "generate"):
        run_unit(unit, {}, tmp_path / "log", UnitLog(tmp_path / "units.jsonl"))
    processes = launched_processes()
    seen = {}
    for unit in (unit for unit in units if unit.kind == "train"):
        config = config_of(list(unit.argv[2:]))
        run_log = RunLog(config.out, lambda message: None, True)
        with ExitStack() as held:
            plan = prepare(config, processes, pick_device("cpu", processes), run_log, False, False, None, held)
            model = build(plan, run_log).model
            sampler = loaders(plan, 0)[0].batch_sampler
            batches = [sampler.epoch_batches(epoch) for epoch in (0, 1)]
            items = [plan.train_set[item] for epoch in batches for batch in epoch for item in batch]
        seen[unit.method] = (model.state_dict(), batches, [item[0] for item in items], [item[1] for item in items])
    weights, batches, images, labels = seen["baseline"]
    for method in methods[1:]:
        other_weights, other_batches, other_images, other_labels = seen[method]
        assert all(torch.equal(weights[key], other_weights[key]) for key in weights), method
        assert other_batches == batches and len(batches[0]) == 4, method
        # The same crop, scale and flip of the same image; only NSegment+'s labels differ (online: on the device).
        assert all(torch.equal(a, b) for a, b in zip(images, other_images, strict=True)), method
    assert any(not torch.equal(a, b) for a, b in zip(labels, seen["nsegment+"][3], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(labels, seen["nsegment+online"][3], strict=True))


# --- whole studies through the command line ------------------------------------------------------------------------


def _study_file(tmp_path: Path, seeds: tuple[int, ...] = (0, 1), **train) -> Path:
    data = _scenes(tmp_path / "data")
    lines = ["[data]", *(f"{key} = {json.dumps(value)}" for key, value in data.items())]
    lines += ["[study]", 'methods = ["baseline", "nsegment+"]', f"seeds = {list(seeds)}", "[generate]", "copies = 2"]
    lines += ["[train]", *(f"{key} = {json.dumps(value)}" for key, value in {**TINY, **train}.items())]
    path = tmp_path / "study.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _study(path: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nsegaug", "study", str(path), "--out", str(out), *extra]


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _wait_for(condition, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _log(out: Path) -> list[dict]:
    path = out / "units.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@needs_torch
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the study's children")
def test_a_study_killed_with_sigkill_finishes_on_a_rerun_without_redoing_a_finished_unit(tmp_path):
    path, out = _study_file(tmp_path, checkpoint_every=1), tmp_path / "out"
    process = subprocess.Popen(_study(path, out), env=_environment(), stderr=subprocess.PIPE)
    first = out / "runs" / "clean" / "baseline" / "seed0"
    second = out / "runs" / "clean" / "nsegment-plus" / "seed0"
    # Killed while the second training runs, past its first checkpoint: the first is finished.
    _wait_for(lambda: (second / "last.pt").exists() or process.poll() is not None)
    children = _children(process.pid)
    process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL and not (second / "metrics.json").exists()
    # The training it ran dies with it (no run left holding its folder).
    _wait_for(lambda: not any(Path(f"/proc/{child}").exists() for child in children), 30)
    finished = {
        path: path.stat().st_mtime_ns for path in out.rglob("*") if path.name in ("metrics.json", "manifest.jsonl")
    }
    assert first / "metrics.json" in finished and (first / "metrics.json").exists()
    killed_rows = len(_log(out))

    again = subprocess.run(_study(path, out, "--parallel", "2"), env=_environment(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    rows = _log(out)[killed_rows:]
    actions = {row["unit"]: row["action"] for row in rows if row["action"] in ("skip", "start", "resume")}
    assert actions["train-clean-baseline-seed0"] == "skip" and actions["train-clean-nsegment-plus-seed0"] == "resume"
    assert actions["generate-clean-nsegment-plus-seed0"] == "skip"
    assert {actions["train-clean-baseline-seed1"], actions["train-clean-nsegment-plus-seed1"]} == {"start"}
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())

    record = json.loads((out / "results.json").read_text())
    runs = {(run["method"], run["seed"]): run for run in record["runs"]}
    assert len(runs) == 4 and runs[("nsegment+", 0)]["resumed"] and not runs[("baseline", 0)]["resumed"]
    for run in runs.values():
        assert 0 <= run["boundary_miou"] <= 1 and len(run["iou"]) == 19 and [e["step"] for e in run["evals"]] == [4, 8]
        assert run["train_elapsed_s"] > 0 and set(run["convergence"]) >= {"plateau", "every_class_learned"}
    # The interval recomputed from the runs' own numbers.
    entry = record["last"]["boundary_miou"]["clean"]["differences"]["nsegment+ - baseline"]
    differences = [runs[("nsegment+", s)]["boundary_miou"] - runs[("baseline", s)]["boundary_miou"] for s in (0, 1)]
    mean = sum(differences) / 2
    half = 12.706205 * abs(differences[0] - differences[1]) / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1), sd, sqrt n
    assert entry["values"] == pytest.approx(differences) and entry["ci95"] == pytest.approx([mean - half, mean + half])
    assert any(value != 0 for value in differences)  # the pair did differ in its labels
    markdown = (out / "results.md").read_text()
    assert "| boundary IoU | clean |" in markdown and runs[("baseline", 1)]["command"] in markdown
    for name in ("paired.png", "curves.png"):
        Image.open(out / name).load()
        assert (out / name).with_suffix(".svg").read_bytes().startswith(b"<?xml")
    assert json.loads((out / "study.json").read_text())["study"]["seeds"] == [0, 1]

    # A third run does nothing but the report.
    third = subprocess.run(_study(path, out), env=_environment(), capture_output=True, text=True)
    assert third.returncode == 0, third.stderr
    assert {row["action"] for row in _log(out)[killed_rows + len(rows) :]} == {"skip"}


@needs_torch
def test_a_dry_run_prints_every_command_and_an_estimate_and_writes_nothing(tmp_path):
    path, out = _study_file(tmp_path), tmp_path / "out"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    result = subprocess.run(
        _study(path, out, "--dry-run", "--probe-steps", "2", "--noise-option", "max_radius=1"),
        env={**_environment(), "TMPDIR": str(temporary)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    commands = [line for line in lines if line.startswith("nsegaug ")]
    # noise, 2 conditions x 2 seeds of copies, 2 conditions x 2 methods x 2 seeds of trainings
    assert len(commands) == 1 + 4 + 8 and "8 training(s)" in result.stdout
    assert commands[0].startswith("nsegaug noise") and "--max-radius 1" in commands[0]
    assert any(line.startswith("estimate: 8 trainings x 8 steps x ") for line in lines)
    # torch may keep its own cache there; the probe's folder is gone.
    assert not out.exists() and not [path for path in temporary.iterdir() if "nsegaug-study" in path.name]


@needs_torch
def test_a_study_whose_runs_did_not_learn_gives_no_verdict_in_results_and_on_the_console(tmp_path):
    """8 training steps learn none of the 19 classes: the study says so instead of reading an interval."""
    from nsegaug.study.markdown import figure

    path, out = _study_file(tmp_path), tmp_path / "out"
    result = subprocess.run(_study(path, out), env=_environment(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "results.json").read_text())
    assert all(run["convergence"]["learned"] is False for run in record["runs"])
    for metric in analysis.ALL_METRICS:
        entry = record["last"][metric]["clean"]["differences"]["nsegment+ - baseline"]
        assert entry["verdict"] is None and entry["reading"].startswith("no verdict: "), metric
    primary = record["last"]["miou"]["clean"]["differences"]["nsegment+ - baseline"]
    assert "4 of 4 runs did not learn" in primary["reading"] and "smallest effect" not in primary["reading"]
    # The three agree: results.json's headline is results.md's, and the console ends with it.
    headline = record["headline"]
    assert headline[1] == f"  mIoU (primary metric): {figure(primary)}: {primary['reading']}"
    assert "\n".join(headline) in (out / "results.md").read_text()
    console = result.stderr.strip().splitlines()
    assert console[-len(headline) - 1 : -1] == headline and console[-1].startswith("every comparison: ")
    # What proves the order: the code and every unit's clock times.
    code = record["code"]
    assert code["nsegaug"] == nsegaug.__version__ and code["units_ran_with"] and code["commit"] == _head_commit()
    for entry in record["commands"]:
        assert entry["started"] <= entry["finished"] and entry["invocations"][0]["outcome"] == "done", entry
        datetime.fromisoformat(entry["started"])


def _head_commit() -> str | None:
    """The commit of the checkout the tests run from (None outside a git checkout), as git says it."""
    root = Path(__file__).resolve().parents[1]
    found = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if found.returncode != 0 or Path(found.stdout.strip()).resolve() != root:
        return None
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


@needs_torch
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the study's children")
def test_ctrl_c_stops_the_study_starts_no_unit_and_a_rerun_resumes(tmp_path):
    path, out = _study_file(tmp_path, seeds=(0,), iters=16, eval_every=2, checkpoint_every=1), tmp_path / "out"
    # A process group of its own, which receives the SIGINT as a terminal sends it: to every process in it.
    process = subprocess.Popen(_study(path, out), env=_environment(), stderr=subprocess.PIPE, start_new_session=True)
    running = out / "runs" / "clean" / "baseline" / "seed0"
    _wait_for(lambda: (running / "last.pt").exists() or process.poll() is not None)
    children = _children(process.pid)
    before = _log(out)
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)  # a deadline, not a measurement: the study stops within seconds
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read().decode()
    assert process.returncode == 130, stderr
    assert "interrupted: rerun the same command to resume" in stderr and "Traceback" not in stderr
    after = _log(out)[len(before) :]
    assert not [row for row in after if row["action"] in ("start", "resume")]  # no unit started after Ctrl-C
    assert [(row["unit"], row["action"]) for row in after] == [("train-clean-baseline-seed0", "interrupted")]
    assert not (running / "metrics.json").exists()
    _wait_for(lambda: not any(Path(f"/proc/{child}").exists() for child in children), 30)

    again = subprocess.run(_study(path, out), env=_environment(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    actions = {row["unit"]: row["action"] for row in _log(out)[len(before) + len(after) :] if row["action"] != "done"}
    assert actions == {
        "generate-clean-nsegment-plus-seed0": "skip",
        "train-clean-baseline-seed0": "resume",
        "train-clean-nsegment-plus-seed0": "start",
    }
    record = json.loads((out / "results.json").read_text())
    commands = {entry["name"]: entry for entry in record["commands"]}
    spans = commands["train-clean-baseline-seed0"]["invocations"]
    assert [(span["action"], span["outcome"]) for span in spans] == [("start", "interrupted"), ("resume", "done")]


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB file system (tmpfs; needs root), mounted where a study's first training writes."""
    where = tmp_path / "out" / "runs" / "clean" / "baseline" / "seed0"
    where.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@needs_torch
def test_a_full_disk_inside_a_studys_training_names_the_file(tmp_path, small_disk):
    path, out = _study_file(tmp_path, seeds=(0,)), tmp_path / "out"
    result = subprocess.run(_study(path, out), env=_environment(), capture_output=True, text=True)
    assert result.returncode == 1
    # The first checkpoint (a few hundred KiB) does not fit: named, in the training's log and the study's error.
    log = (out / "logs" / "train-clean-baseline-seed0.log").read_text()
    assert re.search(rf"{re.escape(str(small_disk))}/(best|last)\.pt: cannot write: No space left on device", log)
    assert "?: No space left" not in log and "No space left on device" in result.stderr
    assert not [name for name in os.listdir(small_disk) if name.endswith(".tmp")]  # no temporary file left


def test_a_dry_run_refuses_a_data_folder_that_does_not_exist(tmp_path):
    path = _study_file(tmp_path)
    path.write_text(path.read_text().replace(str(tmp_path / "data" / "train" / "labels"), str(tmp_path / "nowhere")))
    result = CliRunner().invoke(main, ["study", str(path), "--out", str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'nowhere'}: the study's labels folder does not exist" in result.output
    assert not (tmp_path / "out").exists()


@needs_torch
def test_a_second_study_on_a_held_folder_is_refused_at_once_naming_the_holder(tmp_path):
    path, out = _study_file(tmp_path, seeds=(0,), iters=16, checkpoint_every=1), tmp_path / "out"
    first = subprocess.Popen(_study(path, out), env=_environment(), stderr=subprocess.PIPE, start_new_session=True)
    try:
        # Held once it has started a unit (its units nest their own runs inside the held folder).
        _wait_for(lambda: any(row["action"] == "start" for row in _log(out)) or first.poll() is not None)
        second = subprocess.run(_study(path, out), env=_environment(), capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and f"is in use by study run on host {socket.gethostname()}, pid {first.pid}" in (
            second.stderr
        ), second.stderr
        assert not [row for row in _log(out) if row["action"] == "failed"]  # nothing of the first study broken
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.wait(timeout=60)
    assert first.returncode == 130  # the first study was not disturbed: stopped only by its Ctrl-C


@pytest.mark.parametrize("log", ["units", "unit"])
def test_the_studys_own_logs_are_never_appended_through_a_link(tmp_path, log):
    """A link planted where the study keeps its units log or a unit's log: one error naming it, its target
    untouched (issue 28, item 1, for the study's own files)."""
    from nsegaug.errors import StorageError
    from nsegaug.study.run import UNITS_LOG, UnitLog, _append

    out, target = tmp_path / "study", tmp_path / "elsewhere.txt"
    target.write_text("someone's file\n")
    unit = plan_units(build_spec({"data": DATA, "train": TINY}), out)[0]
    link = out / UNITS_LOG if log == "units" else out / "logs" / f"{unit.name}.log"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    with pytest.raises(StorageError, match="a link .* where nsegaug keeps a file of its own"):
        if log == "units":
            UnitLog(link).add(unit, "start")
        else:
            with _append(link) as handle:
                handle.write("line\n")
    assert target.read_text() == "someone's file\n"


@pytest.mark.parametrize("recorded", ["class_pixels", "nothing"])
def test_a_run_whose_learning_cannot_be_judged_withholds_the_verdict_and_says_why(recorded):
    """A run without per-class IoU (an older or hand-made record): nothing says it learned, so no comparison it is
    in gives a verdict, and the reading and a warning say why (on 0f2d1df: a verdict, and no word of it)."""
    runs = [collapse_run(method, seed, *values) for (method, seed), values in COLLAPSE_RUNS.items()]
    unjudged = runs[1]  # nsegment+ seed 0
    unjudged["iou"] = None
    if recorded == "nothing":
        del unjudged["class_pixels"]
    assert analysis.convergence(unjudged)["learned"] is None
    entry = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"])["miou"]["noisy"]
    difference = entry["differences"]["nsegment+ - baseline"]
    why = "learning not judged for 1 of 6 runs (nsegment+ seed 0: no per-class IoU)"
    assert difference["verdict"] is None and difference["reading"] == f"no verdict: {why}"
    assert why in difference["warnings"] and len(difference["values"]) == 3  # the numbers are still there
    effects = analysis.condition_effects([{**run, "condition": "clean"} for run in runs] + runs, ["nsegment+"])
    assert effects["miou"]["nsegment+"]["verdict"] is None  # the noise's cost: the same run is in it
    # The same runs, each with its per-class IoU: a verdict.
    unjudged.update(iou=COLLAPSE_RUNS[("nsegment+", 0)][0], class_pixels=[9] * 4)
    judged = analysis.compare(runs, ["baseline", "nsegment+"], ["noisy"])["miou"]["noisy"]
    assert judged["differences"]["nsegment+ - baseline"]["verdict"] is not None
