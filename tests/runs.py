"""Running nsegaug's commands on the example data, for the tests of every module that runs them.

One home for what the tests of the job engine, generate, noise, export, preview and train share: where the
example data lives, the marks for what a test needs (torch, root), the command line through click's runner,
and what an output folder holds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nsegaug.cli import main
from nsegaug.manifest import MANIFEST_NAME, META_NAME

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")

# A training of one step at the smallest sizes the example data allows.
TINY_TRAIN = ["--num-classes", "19", "--width", "4", "--batch-size", "2", "--crop", "64", "64", "--workers", "0"]


def cli(*args) -> Result:
    """``nsegaug ARGS...`` through click's runner, in this process (exceptions propagate)."""
    return CliRunner().invoke(main, [*map(str, args)], catch_exceptions=False)


def generate(*args) -> Result:
    return cli("generate", *args)


def noise(*args) -> Result:
    return cli("noise", *args)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (manifest included, its metadata excluded: it records times) by relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != META_NAME
    }


def rows(out: Path) -> list[dict]:
    """The manifest's rows."""
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def status(out: Path) -> str:
    return json.loads((out / META_NAME).read_text())["status"]


def copy_labels(folder: Path, count: int) -> Path:
    """The first ``count`` example label maps, in ``folder``."""
    folder.mkdir(parents=True)
    for index in range(count):
        shutil.copy(DATA / "train" / "labels" / f"scene_{index:04d}.png", folder)
    return folder


# A generate run of the 60 example maps, 12 copies each, in a process of its own with two workers: long enough
# to be stopped in the middle. The job engine's tests kill, interrupt and resume it.
GENERATE_COMMAND = [sys.executable, "-m", "nsegaug", "generate", "--labels", str(DATA / "train" / "labels")]
GENERATE_COMMAND += ["--copies", "12", "--quiet", "--jobs", "2"]
