"""The output folder is the only place a run touches, and one run holds it at a time.

Every case is brought for real: edited records, real links in and around
the folders, real concurrent processes, a real second run while the first
is writing. Nothing outside ``--out`` may be created, changed or deleted,
whatever the records or links in it say.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from folders import files, listed
from runs import DATA, generate

from nsegaug._files.lock import LOCK_NAME
from nsegaug.cli import main
from nsegaug.manifest import MANIFEST_NAME, META_NAME


def test_a_link_in_the_output_to_a_folder_outside_creates_nothing_there(tmp_path):
    labels, out, elsewhere = tmp_path / "labels", tmp_path / "out", tmp_path / "elsewhere"
    (labels / "city" / "day").mkdir(parents=True)
    shutil.copy(DATA / "train" / "labels" / "scene_0000.png", labels / "city" / "day")
    out.mkdir()
    elsewhere.mkdir()
    (out / "city").symlink_to(elsewhere)
    result = generate("--labels", labels, "--copies", 1, "--out", out, "-q", "--overwrite")
    assert result.exit_code == 1 and "resolves outside the output folder" in result.stderr
    assert list(elsewhere.iterdir()) == []  # no nested day/ made in the link's target


# --- one run per folder ------------------------------------------------------------------------------------------

RACER = """
import sys, time
from pathlib import Path
from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.errors import FolderHeld, OutputInUse
labels, out, seed, go = sys.argv[1:5]
while not Path(go).exists():
    time.sleep(0.001)
try:
    generate_dataset(GenerateConfig(labels=labels, out=out, seed=int(seed), copies=2), log=lambda m: None)
except (FolderHeld, OutputInUse) as error:
    print(error)
    sys.exit(3)
"""


def test_two_runs_started_at_the_same_moment_one_runs_and_the_other_is_refused(tmp_path):
    labels = DATA / "train" / "labels"
    for attempt in range(4):
        out, go = tmp_path / f"out{attempt}", tmp_path / f"go{attempt}"
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, str(labels), str(out), str(seed), str(go)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for seed in (0, 1)
        ]
        time.sleep(1.0)  # both have imported nsegaug and wait
        go.touch()
        codes = [racer.wait(timeout=300) for racer in racers]
        assert sorted(codes) == [0, 3], codes
        winner = codes.index(0)
        refusal = racers[1 - winner].stdout.read()
        assert "is in use by generate run on host" in refusal or "is not empty" in refusal
        meta = json.loads((out / META_NAME).read_text())
        assert meta["parameters"]["seed"] == winner and meta["status"] == "complete"
        # Every file is the winner's: a resume with its seed finds them all complete.
        resumed = generate("--labels", labels, "--copies", 2, "--seed", winner, "--out", out, "-q", "--resume")
        assert resumed.exit_code == 0 and "masks: 0," in resumed.stderr
        assert files(out) == listed(out)


def test_a_second_run_is_refused_while_the_first_writes_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "nsegaug", "generate", "--labels", str(DATA / "train" / "labels")]
    first = subprocess.Popen([*command, "--copies", "12", "--jobs", "1", "-q", "--out", str(out)])
    try:
        deadline = time.monotonic() + 60
        while not (out / MANIFEST_NAME).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        for flag in ("--overwrite", "--resume"):
            second = generate("--labels", DATA / "train" / "labels", "--copies", 12, "--out", out, flag, "-q")
            assert second.exit_code == 3
            (line,) = second.stderr.strip().splitlines()
            assert line.startswith(f"Error: {out} is in use by generate run on host {socket.gethostname()}, ")
            assert f"pid {first.pid}, started 20" in line
        assert first.wait(timeout=300) == 0
    finally:
        first.kill()
    assert json.loads((out / META_NAME).read_text())["counts"]["copies_written"] == 60 * 12
    assert files(out) == listed(out)  # the lock is gone with the run that held it
    assert not (out / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(day_labels, tmp_path):
    labels = day_labels
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "then"}))
    assert generate("--labels", labels, "--copies", 1, "--out", out, "-q").exit_code == 0
    assert files(out) == listed(out)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_a_run_folder_is_held_by_its_training_until_that_process_ends(tmp_path):
    gen, run = tmp_path / "gen", tmp_path / "run"
    images = DATA / "train" / "images"
    assert generate("--labels", DATA / "train" / "labels", "--images", images, "-k", 1, "--out", gen).exit_code == 0
    val = DATA / "val"
    arguments = ["train", "--manifest", gen, "--val-labels", val / "labels", "--val-images", val / "images"]
    arguments += ["--num-classes", "19", "--width", "4", "--batch-size", "2", "--crop", "64", "64", "--workers", "0"]
    arguments = [*map(str, arguments), "--out", str(run), "--quiet"]
    first = subprocess.Popen([sys.executable, "-m", "nsegaug", *arguments, "--iters", "1000000"])
    try:
        deadline = time.monotonic() + 120
        while not (run / "config.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = CliRunner().invoke(main, [*arguments, "--iters", "1", "--overwrite"])
        assert second.exit_code == 3
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith(f"Error: {run} is in use by train run on host {socket.gethostname()}, pid {first.pid}")
    finally:
        first.kill()
    first.wait(timeout=60)
    # The hold died with its process: the folder can be taken over at once.
    assert CliRunner().invoke(main, [*arguments, "--iters", "1", "--overwrite"]).exit_code == 0
    assert not (run / LOCK_NAME).exists() and (run / "metrics.json").exists()


def test_a_python_caller_that_changed_directory_keeps_its_relative_folders(tmp_path, monkeypatch):
    from nsegaug.generate import GenerateConfig, generate_dataset

    for name in ("first", "second"):
        folder = tmp_path / name
        (folder / "labels").mkdir(parents=True)
        for index in range(2):
            shutil.copy(DATA / "train" / "labels" / f"scene_{index:04d}.png", folder / "labels")
        monkeypatch.chdir(folder)  # loky keeps the first run's workers, started in the first folder
        config = GenerateConfig(labels=Path("labels"), out=Path("out"), copies=1, jobs=2)
        assert generate_dataset(config, log=lambda message: None).masks == 2
        assert files(folder / "out") == listed(folder / "out")
    assert sorted(files(tmp_path / "first" / "out")) == sorted(files(tmp_path / "second" / "out"))


def test_a_link_planted_in_the_output_cannot_send_outputs_elsewhere(labels, tmp_path):
    (labels / "sub").mkdir()
    shutil.move(labels / "scene_0000.png", labels / "sub" / "scene_0000.png")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere)
    result = generate("--labels", labels, "--copies", 1, "--out", out, "--overwrite")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {out / 'sub' / 'scene_0000_nsp1.png'}: resolves outside the output folder {out.resolve()}"
    ]
    assert list(elsewhere.iterdir()) == []
