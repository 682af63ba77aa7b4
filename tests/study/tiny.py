"""A tiny study for the tests of nsegaug.study: the example scenes and the training of the job engine's tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from runs import DATA

# The tiny training of the training tests; 8 maps of batch 2 are 4 steps per epoch, so 8 steps evaluate twice.
TINY = {"width": 4, "batch_size": 2, "crop": [64, 64], "workers": 0, "device": "cpu", "iters": 8}


def scenes(root: Path, train: int = 8, val: int = 4) -> dict:
    """A study's [data] table over copies of the example scenes."""
    for split, count in (("train", train), ("val", val)):
        for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
            (root / split / kind).mkdir(parents=True)
            for index in range(count):
                name = f"scene_{index:04d}{suffix}"
                shutil.copy(DATA / split / kind / name, root / split / kind / name)
    return {
        "labels": str(root / "train" / "labels"),
        "images": str(root / "train" / "images"),
        "val_labels": str(root / "val" / "labels"),
        "val_images": str(root / "val" / "images"),
        "num_classes": 19,
    }
