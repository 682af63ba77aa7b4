"""A tiny training for the tests of nsegaug.train: the example data, a U-Net of width 4, small crops, one thread.

Runs on the CPU in seconds: one torch thread per process (a shared two-core machine slows down badly with more).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from nsegaug.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="needs torch (pip install 'nsegaug[train]')")
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
# A few steps of a tiny model: enough to exercise every part, seconds on two cores.
TINY = ["--num-classes", "19", "--width", "4", "--batch-size", "2", "--crop", "64", "64", "--workers", "0", "-q"]


def train_cli(manifest: Path, val, out: Path, *extra: str):
    arguments = ["train", "--manifest", manifest, "--val-labels", val[0], "--val-images", val[1], "--out", out]
    return CliRunner().invoke(main, [*map(str, arguments), *TINY, *extra])
