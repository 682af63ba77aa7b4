"""Sizes, counts and workers a user cannot overrun by accident, and values refused before anything is written
(issue 23, items 8 and 9, and the smaller ones about parameters and messages)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nsegaug.cli import main
from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.manifest import META_NAME
from nsegaug.params import DeformParams

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "examples" / "data" / "train" / "labels"
# Enough for nsegaug and its libraries, far from what the refused requests would take.
ADDRESS_SPACE = 3 * 2**30


def nsegaug(*arguments, limit: int | None = ADDRESS_SPACE, timeout: float = 120) -> subprocess.CompletedProcess:
    """The command in a process of its own, under an address-space limit (``ulimit -v``)."""

    def limited() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [sys.executable, "-m", "nsegaug", *map(str, arguments)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, preexec_fn=limited, timeout=timeout, env=env)


@pytest.fixture
def three_masks(tmp_path) -> Path:
    labels = tmp_path / "labels"
    labels.mkdir()
    for path in sorted(LABELS.iterdir())[:3]:
        shutil.copy(path, labels / path.name)
    return labels


@pytest.mark.parametrize("tile", [100_000, 8000])
def test_a_preview_too_large_for_memory_is_refused_before_it_is_drawn(tmp_path, tile):
    out = tmp_path / "sheet.png"
    result = nsegaug("preview", "--labels", LABELS, "--tile-size", tile, "-n", 2, "--out", out)
    assert result.returncode == 2, result.stderr
    assert not out.exists()
    assert ("needs about" in result.stderr) if tile == 8000 else ("8192" in result.stderr)
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_a_preview_that_fits_is_drawn_under_the_same_limit(tmp_path):
    out = tmp_path / "sheet.png"
    result = nsegaug("preview", "--labels", LABELS, "-n", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize("command", ["generate", "preview"])
def test_a_billion_copies_are_refused_at_once_even_in_a_dry_run(tmp_path, command):
    out = tmp_path / "out"
    extra = ["--dry-run", "--out", out] if command == "generate" else ["--out", tmp_path / "sheet.png"]
    result = nsegaug(command, "--labels", LABELS, "--copies", 1_000_000_000, *extra, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "copies must be a whole number in [1, 1000]" in result.stderr
    assert not out.exists() and not (tmp_path / "sheet.png").exists()


@pytest.mark.parametrize("pairs", ["1e308:3", "1:3,,", "inf:3", "1:3,,15:5"])
def test_unusable_alpha_sigma_is_refused_before_anything_is_written(tmp_path, pairs):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["generate", "--labels", str(LABELS), "--out", str(out), "--copies", "1", "--alpha-sigma", pairs]
    )
    assert result.exit_code == 2, result.output
    assert not out.exists()
    assert "--alpha-sigma" in result.output and pairs in result.output


def test_the_largest_alpha_deforms_every_mask(three_masks, tmp_path):
    config = GenerateConfig(
        labels=three_masks, out=tmp_path / "out", copies=1, params=DeformParams(alpha_sigma=((1e6, 3),))
    )
    summary = generate_dataset(config, log=lambda message: None)
    assert summary.failed == 0 and summary.copies_written == 3


def test_pairs_given_as_a_numpy_array_are_recorded_as_json(three_masks, tmp_path):
    params = DeformParams(alpha_sigma=np.array([[15, 5], [30, 10]]), area_thresh=np.int64(100))
    config = GenerateConfig(labels=three_masks, out=tmp_path / "out", copies=1, params=params)
    generate_dataset(config, log=lambda message: None)
    meta = json.loads((tmp_path / "out" / META_NAME).read_text())
    assert meta["parameters"]["alpha_sigma"] == [[15, 5], [30, 10]] and meta["parameters"]["area_thresh"] == 100


def test_a_map_above_max_pixels_is_refused_quoting_the_limit_given(three_masks, tmp_path):
    # The example maps have 131,072 pixels: more than twice the limit, where Pillow's message doubled it.
    arguments = ["generate", "--labels", three_masks, "--out", tmp_path / "out", "--copies", 1, "--max-pixels", 1000]
    result = CliRunner().invoke(main, list(map(str, arguments)))
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert all("131,072 pixels, above the largest map size of 1,000 pixels" in line for line in errors)
    assert "2000" not in result.output and "2,000" not in result.output


@pytest.mark.parametrize(
    ("pairs", "area_thresh", "cause", "not_the_cause"),
    [
        ("1:10", "0", "alpha (1)", "area_thresh"),  # nothing protected: the displacement is too small
        ("30:3", "1000000", "area_thresh is in pixels", "raise alpha"),  # everything protected
    ],
)
def test_copies_left_unchanged_are_blamed_on_their_cause(
    three_masks, tmp_path, pairs, area_thresh, cause, not_the_cause
):
    arguments = ["generate", "--labels", three_masks, "--out", tmp_path / "out", "--copies", 2, "--jobs", 1]
    result = CliRunner().invoke(main, [*map(str, arguments), "--alpha-sigma", pairs, "--area-thresh", area_thresh])
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert "are identical to their source" in warning
    assert cause in warning and not_the_cause not in warning
