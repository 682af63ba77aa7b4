"""An image whose size differs from its label map's (issue 28, item 5): generate says so naming both files and
records it, export says it too, preview and train use the same words.

Real files: a 512x256 image paired with a 256x128 label map, as a labelme export with a wrong scale gives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from nsegaug.cli import main
from nsegaug.manifest import META_NAME

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "train"


@pytest.fixture
def data(tmp_path) -> tuple[Path, Path]:
    """Three label maps with their images; the second's image is twice the label's size."""
    labels, images = tmp_path / "labels", tmp_path / "images"
    labels.mkdir()
    images.mkdir()
    for index in range(3):
        shutil.copy(SAMPLES / "labels" / f"scene_{index:04d}.png", labels)
        shutil.copy(SAMPLES / "images" / f"scene_{index:04d}.jpg", images)
    with Image.open(labels / "scene_0001.png") as label:
        label.resize((256, 128), Image.Resampling.NEAREST).save(labels / "scene_0001.png")
    with Image.open(images / "scene_0001.jpg") as image:
        assert image.size == (512, 256)
    return labels, images


def run(*arguments):
    return CliRunner().invoke(main, list(map(str, arguments)))


def expected_line(labels: Path, images: Path) -> str:
    return (
        f"{labels / 'scene_0001.png'}: the label map is 256x128 (width x height), "
        f"its image {images / 'scene_0001.jpg'} is 512x256"
    )


def test_generate_says_which_image_differs_in_size_and_records_it(data, tmp_path):
    labels, images = data
    out = tmp_path / "gen"
    result = run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out)
    assert result.exit_code == 0, result.output  # a warning: the copies are right, the pairing is the user's to fix
    assert f"warning: {expected_line(labels, images)}" in result.stderr.splitlines()
    meta = json.loads((out / META_NAME).read_text())
    assert meta["counts"]["masks_image_size_differs"] == 1
    assert expected_line(labels, images) in meta["warnings"]


def test_a_resumed_run_counts_the_masks_it_did_as_its_other_counts_do(data, tmp_path):
    labels, images = data
    out = tmp_path / "gen"
    assert run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    again = run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out, "--resume")
    assert again.exit_code == 0 and "differ" not in again.stderr  # nothing redone, nothing read again
    assert json.loads((out / META_NAME).read_text())["counts"]["masks_image_size_differs"] == 0


def test_export_says_it_too(data, tmp_path):
    labels, images = data
    out = tmp_path / "gen"
    assert run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    exported = run("export", "--manifest", out, "--out", tmp_path / "pairs.csv")
    assert exported.exit_code == 0, exported.output
    warnings = [line for line in exported.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {expected_line(labels, images)}"]  # once for the image, not once per copy


def test_preview_and_train_name_it_in_the_same_words(data, tmp_path):
    from nsegaug.manifest import ImageSample
    from nsegaug.train.samples import check_samples

    labels, images = data
    shown = run("preview", "--labels", labels, "--images", images, "--n", 3, "--out", tmp_path / "sheet.png")
    assert shown.exit_code == 0, shown.output
    assert f"warning: {expected_line(labels, images)}; resized to the label's size for the sheet" in shown.stderr
    sample = ImageSample("scene_0001.png", images / "scene_0001.jpg", (labels / "scene_0001.png",), (False,))
    assert check_samples([sample], num_classes=256, ignore_index=255) == [expected_line(labels, images)]
