"""Records that no longer match the files, and lists that cannot say what they should (issue 23, items 6 and 7).

Each test brings the real condition on real files: a label edited after
generate, a colour-coded run exported for mmseg and read back as mmseg reads
it, a file name holding a newline, a full or read-only disk under ``--out``.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nsegaug.cli import main
from nsegaug.manifest import MANIFEST_NAME

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


def error_line(result) -> str:
    """The one ``Error:`` line of a refused command (a usage refusal adds click's usage lines above it)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.stderr.endswith(errors[0] + "\n"), result.output
    return errors[0]


def export(manifest: Path, *extra):
    return run("export", "--manifest", manifest, *extra)


@pytest.mark.parametrize("form", ["csv", "mmseg"])
def test_export_refuses_a_label_edited_after_generate_naming_it_unless_allowed(tmp_path, form):
    out = generated(tmp_path)
    edited = tmp_path / "data" / "labels" / "scene_0003.png"
    edit_label(edited)
    listed = tmp_path / "list.txt"
    refused = export(out, "--format", form, "--out", listed)
    assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
    assert refused.stderr.count("\n") == 1 and f"{edited}: changed since generate" in refused.stderr
    assert not listed.exists()
    allowed = export(out, "--format", form, "--out", listed, "--allow-changed-labels")
    assert allowed.exit_code == 0, allowed.output
    assert str(edited.relative_to(tmp_path / "data" / "labels").with_suffix("")) in listed.read_text()


# --- 7. what mmseg's list cannot express ------------------------------------------------------------------------


def mmseg_label_arrays(split: Path, config: str) -> list[np.ndarray]:
    """Every label the exported config and split list name, read as mmseg's LoadAnnotations reads a file: as it is."""
    namespace = {"train_pipeline": None}
    exec(config, namespace)  # the dataset config export printed: plain dicts
    arrays = []
    for dataset in namespace["train_dataset"]["datasets"]:
        assert dataset["ann_file"] == str(split)
        folder = Path(dataset["data_prefix"]["seg_map_path"])
        for name in split.read_text().splitlines():
            with Image.open(folder / (name.strip() + dataset["seg_map_suffix"])) as image:
                arrays.append(np.array(image))
    return arrays


def colour_coded(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The example maps as colour-coded RGB maps (an ISPRS-like dataset), their images and the colour table."""
    labels, images = dataset(tmp_path / "indexed")
    colours = {index: (index, 255 - index, (index * 37) % 256) for index in range(256)}
    table = {"#{:02x}{:02x}{:02x}".format(*colours[index]): index for index in (*range(19), 255)}
    (tmp_path / "rgb").mkdir()
    for path in labels.iterdir():
        indices = np.array(Image.open(path))
        Image.fromarray(np.array([colours[value] for value in range(256)], np.uint8)[indices]).save(
            tmp_path / "rgb" / path.name
        )
    (tmp_path / "colours.json").write_text(json.dumps(table))
    return tmp_path / "rgb", images, tmp_path / "colours.json"


def test_mmseg_export_of_index_maps_reads_back_as_class_indices(tmp_path):
    out = generated(tmp_path)
    split = tmp_path / "split.txt"
    result = export(out, "--format", "mmseg", "--out", split)
    assert result.exit_code == 0, result.output
    arrays = mmseg_label_arrays(split, result.stdout)
    assert len(arrays) == 8 and all(array.ndim == 2 and set(np.unique(array)) <= {*range(19), 255} for array in arrays)


def test_mmseg_export_of_a_colour_coded_run_is_refused_as_its_labels_would_load_as_colours(tmp_path):
    labels, images, table = colour_coded(tmp_path)
    with Image.open(next(labels.iterdir())) as image:
        assert np.array(image).shape[2:] == (3,)  # what mmseg would take for the class indices
    out = tmp_path / "gen"
    made = run("generate", "--labels", labels, "--images", images, "--palette", table, "--copies", 1, "--out", out)
    assert made.exit_code == 0, made.output
    split = tmp_path / "split.txt"
    result = export(out, "--format", "mmseg", "--out", split)
    assert result.exit_code == 2 and "colour-coded labels" in error_line(result)
    assert not split.exists()
    assert export(out, "--format", "csv").exit_code == 0  # a list of paths says nothing about the values


@pytest.mark.parametrize("odd", ["scene\n0009", "scene\r0009", " scene_0009"], ids=["newline", "return", "space"])
def test_a_name_the_mmseg_list_cannot_hold_is_refused_naming_the_file(tmp_path, odd):
    labels, images = dataset(tmp_path / "data")
    shutil.copy(SAMPLES / "train" / "labels" / "scene_0009.png", labels / f"{odd}.png")
    shutil.copy(SAMPLES / "train" / "images" / "scene_0009.jpg", images / f"{odd}.jpg")
    out = tmp_path / "gen"
    assert run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    split = tmp_path / "split.txt"
    result = export(out, "--format", "mmseg", "--out", split)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert repr(odd)[1:-1] in line and "split list" in line
    assert not split.exists()
    pairs = tmp_path / "pairs.csv"  # csv quotes what it must: the name survives whole
    assert export(out, "--format", "csv", "--out", pairs).exit_code == 0
    with open(pairs, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert sum(Path(row["label"]).name == f"{odd}.png" for row in rows) == 1


# --- one manifest check for preview and export ------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["duplicated", "empty"])
def test_export_refuses_the_manifest_preview_refuses(tmp_path, damage):
    out = generated(tmp_path)
    manifest = out / MANIFEST_NAME
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines + lines[-1:]) if damage == "duplicated" else "")
    shown = run("preview", "--manifest", out, "--out", tmp_path / "p.png")
    listed = export(out)
    expected = "rows of two runs mixed" if damage == "duplicated" else "the manifest has no rows"
    for result in (shown, listed):
        assert result.exit_code == 1 and result.stderr.count("\n") == 1 and expected in result.stderr, result.output
    assert not (tmp_path / "p.png").exists()


# --- the smaller ones -------------------------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("disk", ["read-only", "full"])
def test_preview_and_export_write_errors_name_the_file_asked_for(tmp_path, mount, disk):
    out = generated(tmp_path)
    folder = mount("disk", "1m", "ro") if disk == "read-only" else mount("disk", "64k")
    if disk == "full":
        with open(folder / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
            while True:
                filler.write(bytes(4096))
    for command, target in (("preview", folder / "sheet.png"), ("export", folder / "pairs.csv")):
        result = run(command, "--manifest", out, "--out", target)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert error_line(result).startswith(f"Error: {target}: cannot write: "), result.output
        assert ".tmp" not in result.stderr and not target.exists()
    assert [path.name for path in folder.iterdir()] == ([] if disk == "read-only" else ["filler"])  # no temp file


@pytest.mark.parametrize(("suffix", "form"), [(".jpg", "JPEG"), (".jpeg", "JPEG"), (".tif", "TIFF"), (".png", "PNG")])
def test_preview_writes_the_format_its_suffix_asks_for(tmp_path, suffix, form):
    target = tmp_path / f"sheet{suffix}"
    result = run("preview", "--labels", SAMPLES / "train" / "labels", "--n", 1, "--copies", 1, "--out", target)
    assert result.exit_code == 0, result.output
    with Image.open(target) as image:
        assert image.format == form and image.mode == "RGB"


@pytest.mark.parametrize("name", ["sheet.gif", "sheet"])
def test_preview_refuses_a_suffix_it_does_not_write_before_any_work(tmp_path, name):
    target = tmp_path / name
    result = run("preview", "--labels", SAMPLES / "train" / "labels", "--n", 1, "--out", target)
    assert result.exit_code == 2 and str(target) in error_line(result) and not target.exists()


def test_generate_refuses_an_image_folder_without_images_up_front(tmp_path):
    labels, _ = dataset(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "gen"
    result = run("generate", "--labels", labels, "--images", tmp_path / "empty", "--copies", 1, "--out", out)
    assert result.exit_code == 2 and "warning" not in result.stderr, result.output
    assert error_line(result) == f"Error: {tmp_path / 'empty'}: no image in it"
    assert not out.exists()


@needs_torch
def test_the_evaluation_line_shows_a_loss_of_zero_as_zero_and_a_missing_figure_as_missing():
    from nsegaug.train.runlog import evaluation_line

    row = {"step": 10, "epoch": 1.0, "train_loss": 0.0, "miou": None, "boundary_miou": 0.5, "band_miou": 0.0}
    line = evaluation_line({**row, "pixel_acc": 1.0, "images_per_s": 12.34}, 5, 50)
    assert line == (
        "epoch 1/5 step 10/50: loss 0.0000, mIoU n/a, boundary mIoU 0.5000, band mIoU 0.0000, pixel acc 1.0000, "
        "12.3 img/s"
    )
