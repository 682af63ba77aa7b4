"""``nsegaug study``: its description, the pairing of its trainings, and whole studies
through the command line on the example scenes (killed with SIGKILL and rerun; a dry run that writes nothing)."""

from __future__ import annotations

import json
import math
import os
import re
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
from runs import ROOT, needs_torch

import nsegaug
from nsegaug.cli import main
from nsegaug.errors import UsageError
from nsegaug.study import analysis
from nsegaug.study.plan import plan_units
from nsegaug.study.spec import build_spec
from study.tiny import TINY, scenes

# --- analysis, by hand ---------------------------------------------------------------------------------------------


# --- class collapse and the collapse-robust metrics, by hand ---------------------------------------------------------


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


@needs_torch
def test_the_methods_of_a_seed_share_initial_weights_batches_crops_scales_and_flips(tmp_path):
    import torch

    from nsegaug.options.train import config_of
    from nsegaug.study.run import UnitLog, run_unit
    from nsegaug.train.distributed import launched_processes, pick_device
    from nsegaug.train.runlog import RunLog
    from nsegaug.train.start import build, loaders, prepare

    methods = ["baseline", "nsegment+", "nsegment+online"]
    tables = {"data": scenes(tmp_path / "data"), "study": {"methods": methods, "seeds": [3]}, "train": TINY}
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
    data = scenes(tmp_path / "data")
    lines = ["[data]", *(f"{key} = {json.dumps(value)}" for key, value in data.items())]
    lines += ["[study]", 'methods = ["baseline", "nsegment+"]', f"seeds = {list(seeds)}", "[generate]", "copies = 2"]
    lines += ["[train]", *(f"{key} = {json.dumps(value)}" for key, value in {**TINY, **train}.items())]
    path = tmp_path / "study.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _study(path: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nsegaug", "study", str(path), "--out", str(out), *extra]


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


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
    root = ROOT
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


@pytest.mark.parametrize("folder", ["logs", "data", "runs"])
def test_a_link_among_the_studys_folders_that_leads_outside_is_refused_before_anything_is_written(tmp_path, folder):
    """A folder link planted at ``logs``, ``data`` or ``runs`` in a study's folder: the study writes nothing
    through it (the unit logs, the copies, the trainings would land outside), one line names it."""
    path, out, outside = _study_file(tmp_path, seeds=(0,)), tmp_path / "study", tmp_path / "outside"
    outside.mkdir()
    (outside / "originals-clean.log").write_text("someone's file\n")
    out.mkdir()
    (out / folder).symlink_to(outside, target_is_directory=True)
    result = subprocess.run(_study(path, out), capture_output=True, text=True, env=_environment(), timeout=300)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert lines == [
        f"Error: {out / folder}: a link to {outside} leads outside the study's folder; a study writes only inside it"
    ]
    assert [entry.name for entry in outside.iterdir()] == ["originals-clean.log"]
    assert (outside / "originals-clean.log").read_text() == "someone's file\n"
    assert not (out / "study.json").exists()
