"""The label folders the job engine's tests run on: the example data in three layouts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from runs import DATA, GENERATE_COMMAND, tree


@pytest.fixture
def day_labels(tmp_path) -> Path:
    """Four example label maps, two of them in a subfolder ``day``."""
    folder = tmp_path / "labels"
    (folder / "day").mkdir(parents=True)
    for index in range(4):
        shutil.copy(DATA / "train" / "labels" / f"scene_{index:04d}.png", folder / ("day" if index < 2 else ""))
    return folder


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory) -> dict[str, bytes]:
    """The files of GENERATE_COMMAND's run left alone: what a stopped and resumed run must end as."""
    out = tmp_path_factory.mktemp("clean") / "out"
    subprocess.run([*GENERATE_COMMAND, "--out", str(out)], check=True, capture_output=True)
    return tree(out)
