"""``nsegaug export``: a manifest's (image, label) pairs as CSV, JSON lines and mmseg split lists, on real files."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from runs import DATA, edit_label, error_line, example_pairs, generate, generated_run, run

from nsegaug.cli import main
from nsegaug.export import manifest_pairs, mmseg_split
from nsegaug.manifest import MANIFEST_NAME, META_NAME

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "train"


def invoke(command: str, *args):
    return CliRunner().invoke(main, [command, *map(str, args)], catch_exceptions=False)


@pytest.fixture
def generated(tmp_path) -> Path:
    """Five masks in two folders with their images, 2 copies each (the second one left alone by prob for some)."""
    for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
        for index in range(5):
            folder = tmp_path / "data" / kind / ("a", "b")[index % 2]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLES / kind / f"scene_{index:04d}{suffix}", folder)
    data, out = tmp_path / "data", tmp_path / "out"
    result = invoke("generate", "--labels", data / "labels", "--images", data / "images", "--copies", 2, "--out", out)
    assert result.exit_code == 0
    return out


def test_csv_lists_every_source_and_copy_with_its_image(generated, tmp_path):
    result = invoke("export", "--manifest", generated, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 5 * 3 and result.exit_code == 0
    data = tmp_path / "data"
    for row in rows:
        image, label = Path(row["image"]), Path(row["label"])
        assert image.is_file() and label.is_file() and image.is_absolute()
        assert image.parent.name == label.parent.name  # a/ with a/, b/ with b/
        if row["copy"] == "0":
            assert label.is_relative_to(data / "labels") and row["deformed"] == "0"
        else:
            assert label == generated / label.relative_to(generated) and label.name.endswith(f"_nsp{row['copy']}.png")
    originals = invoke("export", "--manifest", generated, "--format", "csv", "--copies", "original")
    assert len(originals.stdout.splitlines()) == 1 + 5


def test_jsonl_with_relative_paths_and_moved_data(generated, tmp_path):
    shutil.move(tmp_path / "data", tmp_path / "moved")
    out = tmp_path / "pairs.jsonl"
    arguments = ["--manifest", generated, "--format", "jsonl", "--copies", "deformed", "--relative-to", tmp_path]
    arguments += ["--labels", tmp_path / "moved" / "labels", "--images", tmp_path / "moved" / "images", "--out", out]
    result = invoke("export", *arguments)
    assert result.exit_code == 0 and f"wrote {out}: 10 pairs" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(row["deformed"] and row["copy"] > 0 for row in rows)
    assert all(not row["image"].startswith("/") and (tmp_path / row["image"]).is_file() for row in rows)
    assert {row["image"].split("/")[0] for row in rows} == {"moved"}


def test_mmseg_split_and_config_name_exactly_the_manifests_pairs(generated, tmp_path):
    split_file = generated / "split.txt"
    result = invoke("export", "--manifest", generated, "--format", "mmseg", "--out", split_file)
    assert result.exit_code == 0, result.output
    names = split_file.read_text().splitlines()
    assert names == ["a/scene_0000", "a/scene_0002", "a/scene_0004", "b/scene_0001", "b/scene_0003"]
    config = {}
    exec(result.stdout, {"train_pipeline": []}, config)  # the printed config is Python an mmseg config takes
    datasets = config["train_dataset"]["datasets"]
    assert [d["seg_map_suffix"] for d in datasets] == [".png", "_nsp1.png", "_nsp2.png"]
    # What mmseg would derive from each name equals the pairs of the manifest.
    derived = {
        (
            str(Path(d["data_prefix"]["img_path"]) / (n + d["img_suffix"])),
            str(Path(d["data_prefix"]["seg_map_path"]) / (n + d["seg_map_suffix"])),
        )
        for d in datasets
        for n in names
    }
    assert derived == {(str(pair.image), str(pair.label)) for pair in manifest_pairs(generated)}


def test_mmseg_refuses_what_its_lists_cannot_say(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    for index in range(6):
        shutil.copy(SAMPLES / "labels" / f"scene_{index:04d}.png", labels)
    images = tmp_path / "images"
    shutil.copytree(SAMPLES / "images", images)
    out = tmp_path / "out"
    assert (
        invoke("generate", "--labels", labels, "--images", images, "--copies", 2, "--prob", 0.5, "--out", out).exit_code
        == 0
    )
    result = invoke(
        "export", "--manifest", out, "--format", "mmseg", "--copies", "deformed", "--out", tmp_path / "s.txt"
    )
    assert result.exit_code == 2 and "is not deformed for every image" in result.stderr
    assert mmseg_split(out).names == [f"scene_{index:04d}" for index in range(6)]
    no_out = invoke("export", "--manifest", out, "--format", "mmseg")
    assert no_out.exit_code == 2 and "give --out FILE" in no_out.stderr


def test_a_manifest_without_images_or_of_noise_is_refused_in_one_line(tmp_path):
    labels = tmp_path / "labels"
    shutil.copytree(SAMPLES / "labels", labels)
    assert invoke("generate", "--labels", labels, "--copies", 1, "--out", tmp_path / "g").exit_code == 0
    result = invoke("export", "--manifest", tmp_path / "g")
    assert result.exit_code == 1 and result.stderr.strip().endswith(
        "made without images, so it pairs no label with an image"
    )
    assert invoke("noise", "--labels", labels, "--out", tmp_path / "n").exit_code == 0
    noisy = invoke("export", "--manifest", tmp_path / "n")
    assert noisy.exit_code == 1 and "the manifest of a noise run, where one of generate is needed" in noisy.stderr


# --- one reader of generated manifests ----------------------------------------------------------------------------


def test_export_lists_the_pairs_of_the_samples_train_and_mmseg_read(generated):
    from nsegaug.manifest import open_generated

    samples = open_generated(generated).samples()
    from_samples = {(str(s.image), str(label)) for s in samples for label in s.labels}
    assert from_samples == {(str(pair.image), str(pair.label)) for pair in manifest_pairs(generated)}
    assert len(samples) == 5 and all(len(sample.labels) == 3 for sample in samples)


def test_a_copy_edited_after_generate_is_one_line_in_the_same_words_for_every_reader(generated, tmp_path):
    from nsegaug.errors import ManifestError
    from nsegaug.manifest import changed_message, open_generated
    from nsegaug.train.samples import read_checked_label

    sample = open_generated(generated).samples()[0]
    edited = sample.labels[1]
    edited.write_bytes(edited.read_bytes() + b"\0")  # a PNG with a byte more: only its checksum tells
    with pytest.raises(ManifestError) as read_for_training:
        read_checked_label(edited, sample.checksum(1), None)
    assert str(read_for_training.value) == changed_message(edited)
    exported = invoke("export", "--manifest", generated, "--format", "csv", "--out", tmp_path / "pairs.csv")
    shown = invoke("preview", "--manifest", generated, "--n", 5, "--out", tmp_path / "sheet.png")
    for result in (exported, shown):
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert result.stderr.rstrip("\n").endswith(changed_message(edited)), result.stderr


@pytest.mark.parametrize("made", ["noise", "unfinished", "without images"])
def test_the_reader_refuses_what_is_not_a_finished_generate_run_with_images(made, generated, tmp_path):
    from nsegaug.errors import ManifestError
    from nsegaug.manifest import META_NAME, open_generated

    out = generated
    if made == "noise":
        out = tmp_path / "noisy"
        assert invoke("noise", "--labels", tmp_path / "data" / "labels", "--out", out).exit_code == 0
    elif made == "unfinished":
        meta = json.loads((out / META_NAME).read_text())
        (out / META_NAME).write_text(json.dumps({**meta, "status": "interrupted"}))
    else:
        out = tmp_path / "bare"
        assert invoke("generate", "--labels", tmp_path / "data" / "labels", "--copies", 1, "--out", out).exit_code == 0
    expected = {"noise": "a noise run", "unfinished": "did not finish", "without images": "made without images"}
    with pytest.raises(ManifestError, match=expected[made]):
        open_generated(out)


def export(manifest: Path, *extra):
    return run("export", "--manifest", manifest, *extra)


@pytest.mark.parametrize("form", ["csv", "mmseg"])
def test_export_refuses_a_label_edited_after_generate_naming_it_unless_allowed(tmp_path, form):
    out = generated_run(tmp_path)
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
    labels, images = example_pairs(tmp_path / "indexed")
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
    out = generated_run(tmp_path)
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
    labels, images = example_pairs(tmp_path / "data")
    shutil.copy(DATA / "train" / "labels" / "scene_0009.png", labels / f"{odd}.png")
    shutil.copy(DATA / "train" / "images" / "scene_0009.jpg", images / f"{odd}.jpg")
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


@pytest.mark.parametrize("damage", ["duplicated", "empty"])
def test_export_refuses_the_manifest_preview_refuses(tmp_path, damage):
    out = generated_run(tmp_path)
    manifest = out / MANIFEST_NAME
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines + lines[-1:]) if damage == "duplicated" else "")
    shown = run("preview", "--manifest", out, "--out", tmp_path / "p.png")
    listed = export(out)
    expected = "rows of two runs mixed" if damage == "duplicated" else "the manifest has no rows"
    for result in (shown, listed):
        assert result.exit_code == 1 and result.stderr.count("\n") == 1 and expected in result.stderr, result.output
    assert not (tmp_path / "p.png").exists()


def test_an_unfinished_run_is_not_exported(tmp_path):
    labels, images = example_pairs(tmp_path / "data")
    out = tmp_path / "gen"
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    meta = json.loads((out / META_NAME).read_text())
    (out / META_NAME).write_text(json.dumps({**meta, "status": "interrupted"}))
    result = CliRunner().invoke(main, ["export", "--manifest", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"generate did not finish (status 'interrupted'); resume that run into {out} first" in result.stderr


def test_export_relative_to_a_folder_the_list_is_not_in(tmp_path):
    labels, images = example_pairs(tmp_path / "data")
    out = tmp_path / "gen"
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    split = tmp_path / "lists" / "train.txt"
    split.parent.mkdir()
    result = CliRunner().invoke(
        main, ["export", "--manifest", str(out), "--format", "mmseg", "--out", str(split), "--relative-to", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "ann_file='../lists/train.txt'" in result.stdout and split.read_text().count("\n") == 4
