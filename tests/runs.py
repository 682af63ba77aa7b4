"""Running nsegaug's commands on the example data, for the tests of every module that runs them.

One home for what the tests of the job engine, generate, noise, export, preview and train share: where the
example data lives, the marks for what a test needs (torch, root), the command line through click's runner,
and what an output folder holds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

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


# A generate run of the 60 example maps, 12 copies each, in a process of its own with two workers: long enough
# to be stopped in the middle. The job engine's tests kill, interrupt and resume it.
GENERATE_COMMAND = [sys.executable, "-m", "nsegaug", "generate", "--labels", str(DATA / "train" / "labels")]
GENERATE_COMMAND += ["--copies", "12", "--quiet", "--jobs", "2"]


def run(*args) -> Result:
    """``nsegaug ARGS...`` through click's runner, an exception caught into the result (exit code 1)."""
    return CliRunner().invoke(main, [*map(str, args)])


def error_line(result: Result) -> str:
    """The one ``Error:`` line of a refused command (a usage refusal adds click's usage lines above it)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.stderr.endswith(errors[0] + "\n"), result.output
    return errors[0]


def example_pairs(root: Path, count: int = 4) -> tuple[Path, Path]:
    """``count`` example label maps and their images, in ``root/labels`` and ``root/images``."""
    for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
        (root / kind).mkdir(parents=True)
        for index in range(count):
            shutil.copy(DATA / "train" / kind / f"scene_{index:04d}{suffix}", root / kind)
    return root / "labels", root / "images"


def generated_run(tmp_path: Path, *extra) -> Path:
    """A finished generate run (one copy) of four example maps with their images, in ``tmp_path/gen``."""
    labels, images = example_pairs(tmp_path / "data")
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


# Enough for nsegaug and its libraries, far from what the refused requests would take.
ADDRESS_SPACE = 3 * 2**30


def nsegaug_process(*arguments, limit: int | None = ADDRESS_SPACE, timeout: float = 120) -> subprocess.CompletedProcess:
    """The command in a process of its own, under an address-space limit (``ulimit -v``)."""

    def limited() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [sys.executable, "-m", "nsegaug", *map(str, arguments)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, preexec_fn=limited, timeout=timeout, env=env)


def edit_first_output(out: Path, new_output: str) -> None:
    """Point the first manifest row that names an output at ``new_output`` (an edited record)."""
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    for number, line in enumerate(lines):
        row = json.loads(line)
        if row["output"]:
            row["output"] = new_output
            lines[number] = json.dumps(row)
            break
    (out / MANIFEST_NAME).write_text("\n".join(lines) + "\n")
