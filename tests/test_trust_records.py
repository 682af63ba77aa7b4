"""Records that no longer match the files, and lists that cannot say what they should (issue 23, items 6 and 7).

Each test brings the real condition on real files: a label edited after
generate, a colour-coded run exported for mmseg and read back as mmseg reads
it, a file name holding a newline, a full or read-only disk under ``--out``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nsegaug.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
TINY_TRAIN = ["--num-classes", "19", "--width", "4", "--batch-size", "2", "--crop", "64", "64", "--iters", "1"]


def run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def dataset(root: Path, count: int = 4) -> tuple[Path, Path]:
    """``count`` example label maps and their images."""
    for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
        (root / kind).mkdir(parents=True)
        for index in range(count):
            shutil.copy(SAMPLES / "train" / kind / f"scene_{index:04d}{suffix}", root / kind)
    return root / "labels", root / "images"


def generated(tmp_path: Path, *extra) -> Path:
    labels, images = dataset(tmp_path / "data")
    out = tmp_path / "gen"
    result = run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out, *extra)
    assert result.exit_code == 0, result.output
    return out


def edit_label(path: Path) -> None:
    """What a user's annotation fix does: a few pixels of the map set to another class, saved as a valid map."""
    with Image.open(path) as image:
        image.load()
    pixels = np.array(image)
    pixels[:8, :8] = 3 if pixels[0, 0] != 3 else 4
    edited = Image.fromarray(pixels, image.mode)
    if image.mode == "P":
        edited.putpalette(image.getpalette())
    edited.save(path)


def train(manifest: Path, out: Path, *extra):
    val = SAMPLES / "val"
    return run(
        "train",
        "--manifest",
        manifest,
        "--val-labels",
        val / "labels",
        "--val-images",
        val / "images",
        *TINY_TRAIN,
        "--out",
        out,
        *extra,
    )


# --- 6. a label edited after generate ----------------------------------------------------------------------------


@needs_torch
def test_a_source_edited_after_generate_stops_training_naming_it_unless_allowed(tmp_path):
    out = generated(tmp_path)
    edited = tmp_path / "data" / "labels" / "scene_0001.png"
    edit_label(edited)
    refused = train(out, tmp_path / "run", "--workers", "0")
    assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
    assert f"{edited}: changed since generate" in refused.stderr
    assert [line for line in refused.stderr.splitlines() if "changed since generate" in line] == [
        line for line in refused.stderr.splitlines() if str(edited) in line
    ]
    assert not (tmp_path / "run").exists()  # refused before the run folder is started
    allowed = train(out, tmp_path / "run", "--workers", "0", "--allow-changed-labels")
    assert allowed.exit_code == 0, allowed.output


@needs_torch
@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_copy_edited_after_generate_stops_training_with_one_line_from_any_worker(tmp_path, workers):
    out = generated(tmp_path)
    edited = out / "scene_0002_nsp1.png"
    edit_label(edited)  # still a valid map of the right size: only its checksum tells
    result = train(out, tmp_path / "run", "--prob", "1", "--batch-size", "4", "--workers", workers)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [result.stderr.splitlines()[-1]]
    assert errors[0].startswith(f"Error: {edited}: changed since generate")
