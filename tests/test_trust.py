"""Faults a user can hit, tried for real: stale outputs, moved data, full and read-only disks, signals, bad input.

Each test goes through the command line on real files; a fault is brought
for real where the machine allows it (a small tmpfs, a read-only mount, a
signal to a real process) and injected (an ``OSError`` with its errno)
where it does not, so that every case runs everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from nsegaug.cli import main
from nsegaug.manifest import MANIFEST_NAME, META_NAME

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
TINY_TRAIN = ["--num-classes", "19", "--width", "4", "--batch-size", "2", "--crop", "64", "64", "--workers", "0"]


def generate(*args):
    return CliRunner().invoke(main, ["generate", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def labels(tmp_path) -> Path:
    """Eight example label maps."""
    folder = tmp_path / "labels"
    folder.mkdir()
    for index in range(8):
        shutil.copy(SAMPLES / "train" / "labels" / f"scene_{index:04d}.png", folder)
    return folder


# --- 1. stale outputs ----------------------------------------------------------------------------------------------


# --- 2. nothing happens and nobody says so ------------------------------------------------------------------------


def test_copies_identical_to_their_source_are_counted_and_warned_about(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    for index in range(6):  # 64x64 corners of the example maps: every component is under 1000 px
        with Image.open(SAMPLES / "train" / "labels" / f"scene_{index:04d}.png") as image:
            image.crop((200, 120, 264, 184)).save(small / f"m{index}.png")
    out = tmp_path / "out"
    result = generate("--labels", small, "--copies", 5, "--out", out)
    assert result.exit_code == 0
    rows = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    unchanged = sum(1 for row in rows if row["deformed"] and row["changed_fraction"] == 0)
    meta = json.loads((out / META_NAME).read_text())
    assert meta["counts"]["copies_unchanged"] == unchanged > 15 and meta["counts"]["copies_deformed"] == 30
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "identical to their source" in warning[0] and "area_thresh" in warning[0]
    assert meta["warnings"] == [warning[0].removeprefix("warning: ")]
    scaled = generate("--labels", small, "--copies", 5, "--out", tmp_path / "scaled", "--area-thresh", 2)
    assert "identical to their source" not in scaled.stderr


# --- 3 and 4. train: the paper's p, and data that moved -----------------------------------------------------------


def _dataset(root: Path, count: int = 4) -> tuple[Path, Path]:
    for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
        (root / kind).mkdir(parents=True)
        for index in range(count):
            shutil.copy(SAMPLES / "train" / kind / f"scene_{index:04d}{suffix}", root / kind)
    return root / "labels", root / "images"


def train(manifest: Path, out: Path, *extra):
    val = SAMPLES / "val"
    arguments = ["--manifest", manifest, "--val-labels", val / "labels", "--val-images", val / "images"]
    arguments += [*TINY_TRAIN, "--iters", "1", "--out", out, *extra]
    return CliRunner().invoke(main, ["train", *map(str, arguments)])


@needs_torch
def test_train_uses_the_papers_p_by_default_and_says_so(tmp_path):
    labels, images = _dataset(tmp_path / "data")
    assert generate("--labels", labels, "--images", images, "--copies", 2, "--out", tmp_path / "gen").exit_code == 0
    result = train(tmp_path / "gen" / MANIFEST_NAME, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "deformed label with p=0.5, the paper's: --prob to change it" in result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["prob"] == 0.5


@needs_torch
def test_a_dataset_that_moved_trains_where_it_is_now(tmp_path):
    labels, images = _dataset(tmp_path / "docker" / "data")
    assert (
        generate("--labels", labels, "--images", images, "--copies", 1, "--out", tmp_path / "docker" / "out").exit_code
        == 0
    )
    # The whole tree moves (a container's /data on the host): the relative paths hold.
    shutil.move(tmp_path / "docker", tmp_path / "host")
    moved = tmp_path / "host" / "out" / MANIFEST_NAME
    assert train(moved, tmp_path / "run1").exit_code == 0
    # Only the data moves: named where it is now, on the command line or in Python.
    shutil.move(tmp_path / "host" / "data", tmp_path / "elsewhere")
    lost = train(moved, tmp_path / "run2")
    assert lost.exit_code == 1 and "image file not found" in lost.output
    found = train(
        moved,
        tmp_path / "run3",
        "--labels",
        tmp_path / "elsewhere" / "labels",
        "--images",
        tmp_path / "elsewhere" / "images",
    )
    assert found.exit_code == 0, found.output
    from nsegaug.manifest import open_generated

    data = open_generated(moved, labels=tmp_path / "elsewhere" / "labels", images=tmp_path / "elsewhere" / "images")
    assert all(sample.image.is_file() and sample.labels[0].is_file() for sample in data.samples())


def test_a_manifest_moved_alone_still_finds_its_data(labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 1, "--out", out).exit_code == 0
    shutil.copytree(out, tmp_path / "far" / "away" / "out")
    shown = CliRunner().invoke(
        main, ["preview", "--manifest", str(tmp_path / "far" / "away" / "out"), "--out", str(tmp_path / "p.png")]
    )
    assert shown.exit_code == 0, shown.output


# --- 5 and 6. one line, never a traceback -------------------------------------------------------------------------


@needs_torch
def test_evaluate_into_a_closed_pipe_still_writes_its_file_and_succeeds(tmp_path):
    labels, images = _dataset(tmp_path / "data")
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", tmp_path / "gen").exit_code == 0
    assert train(tmp_path / "gen" / MANIFEST_NAME, tmp_path / "run").exit_code == 0
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "nsegaug", "evaluate", "--checkpoint", tmp_path / "run" / "last.pt"]
    command += ["--labels", SAMPLES / "val" / "labels", "--images", SAMPLES / "val" / "images", "--workers", "0"]
    command += ["--out", report]
    # head -n 0 closes the pipe at once, so the table meets a closed stdout every time, not by a race.
    shell = " ".join(f"'{part}'" for part in map(str, command)) + " | head -n 0; exit ${PIPESTATUS[0]}"
    result = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    assert json.loads(report.read_text())["images"] == 20


# --- 7, 8, 9. signals and workers ----------------------------------------------------------------------------------


# --- 10 to 15. parameters and names ---------------------------------------------------------------------------------


def test_an_enormous_sigma_is_refused_with_the_reason(labels, tmp_path):
    result = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "out", "--alpha-sigma", "5:1e6")
    assert result.exit_code == 2 and "sigma 1e+06 is above 100 px" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_ignore_index_an_8_bit_map_cannot_hold_is_one_line_per_file(labels, tmp_path):
    result = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "out", "--ignore-index", 70000)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 8 and all(
        "the ignore index 70000 cannot occur in a 8-bit label map (0..255)" in e for e in errors
    )


def test_a_name_template_must_end_with_the_extension(labels, tmp_path):
    result = generate(
        "--labels", labels, "--copies", 1, "--out", tmp_path / "out", "--name-template", "{stem}{ext}_{copy}"
    )
    assert result.exit_code == 2 and "must end with {ext}" in result.stderr


def test_max_pixels_lets_the_user_set_pillows_size_guard(labels, tmp_path):
    refused = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "a", "--max-pixels", 1000)
    assert refused.exit_code == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 8 and all("decompression bomb" in line and "max_pixels" in line for line in errors)
    assert generate("--labels", labels, "--copies", 1, "--out", tmp_path / "b", "--max-pixels", 10**6).exit_code == 0
    # The limit is the limit (Pillow alone would only warn up to twice it): a 512x256 map is 131072 pixels.
    assert generate("--labels", labels, "--copies", 1, "--out", tmp_path / "c", "--max-pixels", 131072).exit_code == 0
    over = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "d", "--max-pixels", 131071)
    assert over.exit_code == 1 and over.stderr.count("error: ") == 8 and "Warning" not in over.stderr
    # The same worker processes serve the next run of this process: Pillow's own limit is theirs again.
    assert generate("--labels", labels, "--copies", 1, "--out", tmp_path / "e", "--jobs", 2).exit_code == 0


# --- 6. found in review: another command's run, damaged records, writes nobody wrapped -----------------------------


def test_an_unfinished_run_is_not_exported(tmp_path):
    labels, images = _dataset(tmp_path / "data")
    out = tmp_path / "gen"
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    meta = json.loads((out / META_NAME).read_text())
    (out / META_NAME).write_text(json.dumps({**meta, "status": "interrupted"}))
    result = CliRunner().invoke(main, ["export", "--manifest", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"generate did not finish (status 'interrupted'); resume that run into {out} first" in result.stderr


def test_export_relative_to_a_folder_the_list_is_not_in(tmp_path):
    labels, images = _dataset(tmp_path / "data")
    out = tmp_path / "gen"
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    split = tmp_path / "lists" / "train.txt"
    split.parent.mkdir()
    result = CliRunner().invoke(
        main, ["export", "--manifest", str(out), "--format", "mmseg", "--out", str(split), "--relative-to", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "ann_file='../lists/train.txt'" in result.stdout and split.read_text().count("\n") == 4


@needs_torch
def test_a_used_run_folder_is_refused_as_generate_refuses_a_used_out(tmp_path):
    labels, images = _dataset(tmp_path / "data")
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", tmp_path / "gen").exit_code == 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    (run / ".last.pt.123-456.tmp").write_bytes(b"half a checkpoint")
    refused = train(tmp_path / "gen", run)  # the manifest's folder is enough
    assert refused.exit_code == 3 and "is not empty; pass --resume" in refused.stderr
    assert train(tmp_path / "gen", run, "--overwrite").exit_code == 0
    assert not list(run.glob(".*.tmp")) and (run / "notes.txt").read_text() == "mine"


@needs_torch
def test_best_pt_is_saved_before_last_pt(tmp_path, monkeypatch):
    from nsegaug.train import runlog

    saved = []
    monkeypatch.setattr(runlog, "save_checkpoint", lambda path, state: saved.append(path.name))
    log = runlog.RunLog(tmp_path, print, main=True)
    log.checkpoint(dict, best=True)
    log.checkpoint(dict)
    assert saved == ["best.pt", "last.pt", "last.pt"]


@needs_torch
@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_copy_damaged_after_generate_stops_training_with_one_line(tmp_path, workers):
    labels, images = _dataset(tmp_path / "data")
    out = tmp_path / "gen"
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    damaged = out / "scene_0002_nsp1.png"
    data = damaged.read_bytes()
    # Cut inside the pixel data: the header and palette survive, so the start-up check (sizes) passes it.
    damaged.write_bytes(data[: data.index(b"IDAT") + 64])
    arguments = ["--prob", "1", "--batch-size", "4", "--workers", workers]
    result = train(out / MANIFEST_NAME, tmp_path / "run", *arguments)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {damaged}: "), result.stderr
    assert result.stderr.splitlines()[-1] == errors[0]  # the last word, after the headline
