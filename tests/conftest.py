"""Shared label maps for the tests: street-like scenes and the awkward cases."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# The oracle lives next to the tests, not in the package.
sys.path.insert(0, str(Path(__file__).parent))

# A test run started in the background (nohup, or `&` in a script without job control) inherits Ctrl-C as
# "ignored", passes that on to every process it starts, and Python then keeps ignoring it: the tests that
# interrupt a real run with SIGINT would see it finish. The processes the tests start get a terminal's Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from nsegaug.synthetic import street_scene  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _border_pixels() -> np.ndarray:
    segment = np.zeros((40, 60), dtype=np.uint8)
    segment[0, 0] = segment[0, 59] = segment[39, 0] = segment[39, 59] = 7  # 1-px components in the corners
    segment[20, 0] = 3
    segment[10:30, 20:40] = 5
    return segment


def _uint16_map() -> np.ndarray:
    segment = street_scene(96, 160, 25, seed=11).astype(np.uint16) * 1000
    segment[40:44, 50:53] = 65535
    return segment


def _int32_with_minus_one() -> np.ndarray:
    segment = street_scene(80, 120, 20, seed=12).astype(np.int32)
    segment[5:8, 5:8] = -1  # the reference skips class -1 in the suppression step
    segment[60:62, 100:110] = 70000
    return segment


LABEL_MAPS = {
    "street": street_scene(128, 256, 60, seed=1),
    "street_ignore_bands": street_scene(120, 200, 40, seed=2, ignore_band=2),
    "street_tall": street_scene(300, 90, 30, seed=3),
    "single_class": np.full((50, 70), 4, dtype=np.uint8),
    "border_pixels": _border_pixels(),
    "uint16": _uint16_map(),
    "int32": _int32_with_minus_one(),
    "one_row": np.array([[0, 0, 1, 1, 1, 2, 2, 0, 5, 5]], dtype=np.uint8),
    "one_column": np.array([[0], [0], [3], [3], [3], [1]], dtype=np.uint8),
    "one_pixel": np.array([[9]], dtype=np.uint8),
    "two_by_two": np.array([[1, 2], [3, 255]], dtype=np.uint8),
}


@pytest.fixture(params=sorted(LABEL_MAPS), ids=sorted(LABEL_MAPS))
def label_map(request) -> np.ndarray:
    return LABEL_MAPS[request.param].copy()


@pytest.fixture
def labels(tmp_path) -> Path:
    """Eight example label maps (a test module may define its own ``labels``)."""
    folder = tmp_path / "labels"
    folder.mkdir()
    for index in range(8):
        shutil.copy(EXAMPLES / "data" / "train" / "labels" / f"scene_{index:04d}.png", folder)
    return folder


@pytest.fixture
def three_masks(tmp_path) -> Path:
    """The first three example label maps."""
    folder = tmp_path / "labels"
    folder.mkdir()
    for path in sorted((EXAMPLES / "data" / "train" / "labels").iterdir())[:3]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def mount(tmp_path):
    """Mount a tmpfs of a given size (and options) under tmp_path; unmounted at the end."""
    mounted = []

    def make(name: str, size: str, *options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", point], check=True)
        mounted.append(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, Path]:
    """Six sample masks and photos in a nested Cityscapes-like layout (``city/x_gtFine.png``)."""
    labels, images = tmp_path / "gtFine", tmp_path / "leftImg8bit"
    for index in range(6):
        city = ("aachen", "bremen")[index % 2]
        (labels / city).mkdir(parents=True, exist_ok=True)
        (images / city).mkdir(parents=True, exist_ok=True)
        stem, source = f"scene_{index:04d}", EXAMPLES / "data" / "train"
        shutil.copy(source / "labels" / f"{stem}.png", labels / city / f"{city}_{index}_gtFine.png")
        shutil.copy(source / "images" / f"{stem}.jpg", images / city / f"{city}_{index}_leftImg8bit.jpg")
    return labels, images
