"""The sample data script and the data it committed: layout, palette, values, pairing, determinism."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runs import ROOT

from nsegaug.palettes import CITYSCAPES, IGNORE_COLOUR, VOC, colour_table, flat_palette, voc_colours
from nsegaug.synthetic import THING_CLASSES, city_scene, ignore_borders

EXAMPLES = ROOT / "examples"
COMMITTED = EXAMPLES / "data"
TINY = {"train": 2, "val": 1}
TINY_ARGS = ["--train", "2", "--val", "1", "--height", "64", "--width", "128"]
VALID_LABELS = set(range(19)) | {255}


def _load_script():
    # examples/ is not a package; load the script the way `python examples/make_sample_data.py` would.
    spec = importlib.util.spec_from_file_location("make_sample_data", EXAMPLES / "make_sample_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


script = _load_script()


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _stems(folder: Path, suffix: str) -> list[str]:
    return sorted(path.stem for path in folder.glob(f"*{suffix}"))


def _block_means(image: np.ndarray, block: int = 8) -> np.ndarray:
    height, width, channels = image.shape
    blocks = image.astype(np.float32).reshape(height // block, block, width // block, block, channels)
    return blocks.mean(axis=(1, 3))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    assert script.main([*TINY_ARGS, "--out", str(out)]) == 0
    return out


def test_tiny_run_writes_paired_labels_and_images(tiny):
    for split, count in TINY.items():
        expected = [f"scene_{i:04d}" for i in range(count)]
        assert _stems(tiny / split / "labels", ".png") == expected
        assert _stems(tiny / split / "images", ".jpg") == expected
    readme = (tiny / "README.md").read_text()
    assert "--train 2 --val 1 --height 64 --width 128 --seed 0" in readme
    assert "255 = ignore" in readme


def test_labels_are_palette_pngs_with_cityscapes_colours_and_valid_ids(tiny):
    for path in sorted(tiny.glob("*/labels/*.png")):
        with Image.open(path) as label:
            assert (label.format, label.mode, label.size) == ("PNG", "P", (128, 64))
            palette = np.frombuffer(bytes(label.getpalette()), dtype=np.uint8).reshape(-1, 3)
            values = np.array(label)
        np.testing.assert_array_equal(palette[:19], CITYSCAPES)
        assert tuple(palette[255]) == IGNORE_COLOUR
        assert set(np.unique(values)) <= VALID_LABELS
        assert 255 in values, f"{path}: no ignore band"
        assert len(np.unique(values)) >= 6, f"{path}: too few classes for a street scene"


def test_images_are_rgb_jpegs_the_size_of_their_labels(tiny):
    for path in sorted(tiny.glob("*/images/*.jpg")):
        with Image.open(path) as image, Image.open(path.parents[1] / "labels" / f"{path.stem}.png") as label:
            assert (image.format, image.mode) == ("JPEG", "RGB")
            assert image.size == label.size


def test_image_colours_follow_the_labels(tiny):
    # A nearest-class-mean classifier on raw colours must beat chance by far if labels and
    # pixels line up, and must not be perfect, or a model would learn nothing but a lookup.
    with (
        Image.open(tiny / "train/images/scene_0000.jpg") as image,
        Image.open(tiny / "train/labels/scene_0000.png") as label,
    ):
        pixels, labels = np.asarray(image, dtype=np.float32), np.array(label)
    known = labels != 255
    classes = np.unique(labels[known])
    means = np.stack([pixels[labels == cls].mean(axis=0) for cls in classes])
    distances = ((pixels[known][:, None, :] - means[None]) ** 2).sum(axis=-1)
    accuracy = (classes[distances.argmin(axis=1)] == labels[known]).mean()
    assert 0.5 < accuracy < 0.99


def test_two_runs_write_identical_bytes_and_another_seed_does_not(tmp_path):
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    script.main([*TINY_ARGS, "--out", str(first)])
    script.main([*TINY_ARGS, "--out", str(second)])
    script.main([*TINY_ARGS, "--out", str(other), "--seed", "1"])
    written = _files(first)
    assert len(written) == 2 * sum(TINY.values()) + 1
    assert written == _files(second)
    changed = _files(other)
    assert [name for name in written if name != "README.md" and written[name] == changed[name]] == []


def test_a_smaller_rerun_removes_the_samples_it_no_longer_writes(tmp_path):
    script.main([*TINY_ARGS, "--out", str(tmp_path)])
    script.main(["--train", "1", "--val", "1", "--height", "64", "--width", "128", "--out", str(tmp_path)])
    assert _stems(tmp_path / "train/labels", ".png") == ["scene_0000"]
    assert _stems(tmp_path / "train/images", ".jpg") == ["scene_0000"]


@pytest.mark.parametrize(
    "args", [["--height", "8"], ["--train", "-1"], ["--seed", "-3"], ["--ignore-band", "-1"], ["--categories", "5"]]
)
def test_bad_arguments_are_refused(args, tmp_path):
    with pytest.raises(SystemExit) as refused:
        script.main([*args, "--out", str(tmp_path)])
    assert refused.value.code == 2


@pytest.mark.parametrize(("split", "count"), [("train", 60), ("val", 20)])
def test_committed_data_has_the_advertised_counts_and_sizes(split, count):
    expected = [f"scene_{i:04d}" for i in range(count)]
    assert _stems(COMMITTED / split / "labels", ".png") == expected
    assert _stems(COMMITTED / split / "images", ".jpg") == expected
    for stem in expected:
        with Image.open(COMMITTED / split / "labels" / f"{stem}.png") as label:
            assert (label.mode, label.size) == ("P", (512, 256))
            assert set(np.unique(np.array(label))) <= VALID_LABELS
        with Image.open(COMMITTED / split / "images" / f"{stem}.jpg") as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (512, 256))


def test_committed_data_is_small_and_documented():
    total = sum(path.stat().st_size for path in COMMITTED.rglob("*") if path.is_file())
    assert total <= 4 * 2**20
    readme = (COMMITTED / "README.md").read_text()
    assert "--train 60 --val 20 --height 256 --width 512 --seed 0" in readme
    assert "19 classes" in readme


@pytest.mark.parametrize(("split", "index"), [("train", 0), ("val", 19)])
def test_committed_data_is_what_the_script_makes_now(split, index):
    # Catches a change to the script or to synthetic.py without regenerating examples/data.
    labels, image = script.make_sample(0, split, index, 256, 512)
    with Image.open(COMMITTED / split / "labels" / f"scene_{index:04d}.png") as label:
        np.testing.assert_array_equal(np.array(label), labels)
    with Image.open(COMMITTED / split / "images" / f"scene_{index:04d}.jpg") as committed:
        # JPEG drops the sensor noise and sharp detail: compare 8x8 block means, which it keeps
        # (off by ~0.5 on average; another scene is off by ~35), so another libjpeg still passes.
        assert np.abs(_block_means(np.asarray(committed)) - _block_means(image)).mean() < 2.0


def test_city_scene_is_seeded_and_its_ignore_band_surrounds_things():
    plain = city_scene(128, 256, 30, seed=(4, 0, 2))
    banded = city_scene(128, 256, 30, seed=(4, 0, 2), ignore_band=2)
    np.testing.assert_array_equal(banded, ignore_borders(plain, 2))
    assert not np.array_equal(plain, city_scene(128, 256, 30, seed=(4, 0, 3)))
    assert set(np.unique(plain)) <= set(range(19))
    # Every ignore pixel is within 2 px of a thing of another class, and no thing pixel was lost
    # to a band except where two thing classes touch.
    things = np.isin(plain, THING_CLASSES)
    assert (banded == 255).any()
    assert np.isin(plain[(banded == 255) & ~things], THING_CLASSES).sum() == 0
    assert ((banded != plain) <= (banded == 255)).all()


STUDY_ARGS = ["--categories", "6", "--ignore-band", "0", "--objects", "30"]
STUDY_ARGS += ["--height", "64", "--width", "128"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study")
    assert script.main(["--train", "3", "--val", "1", *STUDY_ARGS, "--out", str(out)]) == 0
    return out


def test_study_variant_labels_the_six_categories_without_ignore_bands(study):
    values = set()
    for path in sorted(study.glob("*/labels/*.png")):
        with Image.open(path) as label:
            palette = np.frombuffer(bytes(label.getpalette()), dtype=np.uint8).reshape(-1, 3)
            values |= set(np.unique(np.array(label)).tolist())
        np.testing.assert_array_equal(palette[:6], script.CATEGORIES[6].colours)
    assert values == set(range(6))  # every class, and no 255: every outline is exact
    readme = (study / "README.md").read_text()
    assert "--categories 6 --ignore-band 0 --objects 30" in readme and "6 classes" in readme


@pytest.mark.parametrize(("count", "names"), [(7, ("flat", "construction", "object")), (6, ("flat", "construction"))])
def test_categories_are_cityscapes_groups_of_the_train_ids(count, names):
    categories = script.CATEGORIES[count]
    assert len(categories.names) == len(categories.members) == len(categories.colours) == count
    assert categories.names[: len(names)] == names and categories.names[-3:] == ("sky", "human", "vehicle")
    assert sorted(cls for members in categories.members for cls in members) == list(range(19))
    lookup = categories.lookup()
    assert lookup[255] == 255 and set(lookup[:19]) == set(range(count))
    # A study label is the 19-class scene mapped to its categories, outline for outline.
    variant = script.Variant(categories=count, ignore_band=0)
    labels, image = script.make_sample(3, "train", 5, 64, 128, variant)
    full = city_scene(64, 128, script.objects_for(64, 128), seed=int(np.random.default_rng([3, 0, 5]).integers(2**63)))
    np.testing.assert_array_equal(labels, lookup[full])
    # The photo is the default variant's: only the labels differ.
    np.testing.assert_array_equal(image, script.make_sample(3, "train", 5, 64, 128)[1])


def test_thickened_objects_grow_over_stuff_only():
    scene = city_scene(64, 128, 30, seed=(0, 1, 2))
    thick = script.thicken(scene, 1)
    objects = np.isin(scene, (5, 6, 7))
    assert np.isin(thick, (5, 6, 7)).sum() > 2 * objects.sum()  # 1 px poles become 3 px wide
    assert (thick[objects] == scene[objects]).all()
    other_things = np.isin(scene, THING_CLASSES) & ~objects
    assert (thick[other_things] == scene[other_things]).all()  # never over a person or a car
    np.testing.assert_array_equal(script.thicken(scene, 0), scene)
    people = script.thicken(scene, 1, (11, 12))  # persons and riders
    assert np.isin(people, (11, 12)).sum() > np.isin(scene, (11, 12)).sum()
    assert (people[objects] == scene[objects]).all()


def test_study_variant_is_deterministic_and_the_same_scene_at_any_size(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    script.main(["--train", "2", "--val", "1", *STUDY_ARGS, "--out", str(first)])
    script.main(["--train", "2", "--val", "1", *STUDY_ARGS, "--out", str(second)])
    assert _files(first) == _files(second)
    # With --objects fixed, twice the size draws the same scene, finer: nearest downsampling agrees almost everywhere.
    variant = script.Variant(categories=6, ignore_band=0, objects=30)
    small = script.make_sample(0, "val", 0, 64, 128, variant)[0]
    large = script.make_sample(0, "val", 0, 256, 512, variant)[0]
    other = script.make_sample(0, "val", 1, 64, 128, variant)[0]
    assert (large[2::4, 2::4] == small).mean() > 0.93 > 0.8 > (other == small).mean()


def test_colour_table_is_cityscapes_then_voc_with_white_ignore():
    table = colour_table()
    assert table.shape == (256, 3) and table.dtype == np.uint8
    np.testing.assert_array_equal(table[:19], CITYSCAPES)
    np.testing.assert_array_equal(table[19:255], VOC[19:255])
    assert tuple(table[255]) == IGNORE_COLOUR
    assert tuple(colour_table(ignore_index=None)[255]) == tuple(VOC[255])


def test_voc_colours_match_the_published_map():
    # Entries from the PASCAL VOC devkit's labelcolormap: background, aeroplane, bicycle, ..., boundary.
    assert [tuple(c) for c in voc_colours(4)] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
    assert tuple(VOC[15]) == (192, 128, 128)  # person
    assert tuple(VOC[255]) == (224, 224, 192)


def test_flat_palette_is_768_bytes_padded_with_black():
    flat = flat_palette(CITYSCAPES)
    assert len(flat) == 768
    assert flat[:3] == bytes((128, 64, 128)) and flat[19 * 3 :] == bytes(768 - 19 * 3)
    with pytest.raises(ValueError):
        flat_palette(np.zeros((257, 3), dtype=np.uint8))
