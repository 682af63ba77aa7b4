"""The training tests' data, made once a session (a worker's session under xdist), and one torch thread."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.manifest import MANIFEST_NAME
from train.tiny import EXAMPLES, HAVE_TORCH


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    """The example training set with 2 copies per label, made by generate."""
    out = tmp_path_factory.mktemp("generated")
    config = GenerateConfig(
        labels=EXAMPLES / "train" / "labels", images=EXAMPLES / "train" / "images", out=out, copies=2, jobs=2
    )
    generate_dataset(config, log=lambda message: None)
    return out / MANIFEST_NAME


@pytest.fixture(scope="session")
def val(tmp_path_factory) -> tuple[Path, Path]:
    """Four validation images: the metrics need only a few."""
    root = tmp_path_factory.mktemp("val")
    for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
        (root / kind).mkdir()
        for index in range(4):
            shutil.copy(EXAMPLES / "val" / kind / f"scene_{index:04d}{suffix}", root / kind)
    return root / "labels", root / "images"


@pytest.fixture(autouse=True)
def one_torch_thread():
    if not HAVE_TORCH:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
