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
    assert refused.stderr.count("\n") == 1 and f"{edited}: checksum differs from the manifest" in refused.stderr
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
