"""The noise models of ``nsegaug noise`` (``nsegaug.noise_models``), and the command on real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import LABEL_MAPS
from PIL import Image
from runs import tree

from nsegaug import noise_models as noise
from nsegaug.cli import main
from nsegaug.io import read_label
from nsegaug.manifest import MANIFEST_NAME, META_NAME
from nsegaug.noise import NoiseConfig, add_noise
from nsegaug.params import NOISE_MODELS, NoiseParams
from nsegaug.storage import sha256_file

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
# Street-like maps (synthetic, with and without ignore bands) and two of the example data's label maps.
STREET_MAPS = {name: LABEL_MAPS[name] for name in ("street", "street_ignore_bands", "street_tall", "int32")}
STREET_MAPS |= {
    name: read_label(DATA / "train" / "labels" / name).indices for name in ("scene_0000.png", "scene_0007.png")
}
TINY_MAPS = {name: LABEL_MAPS[name] for name in ("single_class", "border_pixels", "one_row", "one_pixel", "two_by_two")}
PARAMS = NoiseParams(models=NOISE_MODELS)  # every model, the systematic one too


def apply(model: str, segment: np.ndarray, seed: int = 0, key: str = "map.png") -> np.ndarray:
    """One model alone, with the stream annotation_noise gives it."""
    rng = noise.noise_streams(seed, key)[model]
    if model == "bias":
        return noise.systematic_bias(segment, rng, PARAMS.bias_radius, PARAMS.bias_wide, None, PARAMS.ignore_index)
    if model == "boundary":
        return noise.boundary_noise(segment, rng, PARAMS.max_radius, PARAMS.ignore_index)
    if model == "simplify":
        return noise.simplify_outlines(segment, rng, PARAMS.max_epsilon, PARAMS.ignore_index)
    return noise.elastic_jitter(segment, rng, PARAMS.jitter_amplitude, PARAMS.jitter_sigma, PARAMS.ignore_index)


# How far from a class boundary of the input each model may change a pixel (see noise_models.py) ...
REACH = {
    "boundary": PARAMS.max_radius,
    "simplify": PARAMS.max_epsilon + 1,
    "jitter": 2 * PARAMS.jitter_amplitude + 1,
    "bias": PARAMS.bias_radius,
}
# ... and how far from the nearest input pixel of the class it takes: twice as far for the three
# models that redraw objects one by one, where a pixel may take a class its neighbour has just grown into.
VALUE_REACH = {model: 2 * reach for model, reach in REACH.items()} | {"jitter": REACH["jitter"]}


# --- noise models ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STREET_MAPS))
def test_annotation_noise_is_seeded(name):
    segment = STREET_MAPS[name]
    first = noise.annotation_noise(segment, 0, name)
    assert np.array_equal(first, noise.annotation_noise(segment.copy(), 0, name))
    assert not np.array_equal(first, noise.annotation_noise(segment, 1, name))
    assert not np.array_equal(first, noise.annotation_noise(segment, 0, "other/" + name))


def test_models_draw_from_their_own_streams():
    segment = STREET_MAPS["scene_0000.png"]
    alone = noise.annotation_noise(segment, 5, "a.png", NoiseParams(models=("boundary",)))
    assert np.array_equal(alone, apply("boundary", segment, 5, "a.png"))
    # Switching simplify off leaves the jitter's draws as they were: same result as chaining by hand.
    chained = noise.annotation_noise(segment, 5, "a.png", NoiseParams(models=("boundary", "jitter")))
    assert np.array_equal(chained, apply("jitter", alone, 5, "a.png"))


@pytest.mark.parametrize("model", [*noise.MODELS, "all"])
@pytest.mark.parametrize("name", sorted(STREET_MAPS | TINY_MAPS))
def test_no_class_is_invented(model, name):
    segment = (STREET_MAPS | TINY_MAPS)[name]
    out = noise.annotation_noise(segment, 2, name) if model == "all" else apply(model, segment, 2, name)
    assert out.dtype == segment.dtype and out.shape == segment.shape
    assert set(np.unique(out)) <= set(np.unique(segment))
    # Each relabelled pixel takes a class found near it in the input.
    reach = sum(VALUE_REACH.values()) if model == "all" else VALUE_REACH[model]
    from scipy import ndimage

    for value in np.unique(out[out != segment]):
        distance = ndimage.distance_transform_edt(segment != value)
        assert distance[(out != segment) & (out == value)].max() <= reach + 1e-9


@pytest.mark.parametrize("model", noise.MODELS)
@pytest.mark.parametrize("name", sorted(STREET_MAPS))
def test_noise_changes_boundaries_only(model, name):
    segment = STREET_MAPS[name]
    changed = apply(model, segment, 3, name) != segment
    assert changed.mean() > (0.001 if model == "simplify" else 0.01)  # the labels really are noisier
    assert noise.boundary_distance(segment)[changed].max() <= REACH[model] + 1e-9


@pytest.mark.parametrize("model", noise.MODELS)
@pytest.mark.parametrize("name", sorted(STREET_MAPS | TINY_MAPS))
def test_object_cores_are_never_relabelled(model, name):
    segment = (STREET_MAPS | TINY_MAPS)[name]
    cores = noise.protected_cores(segment, noise.find_objects(segment, PARAMS.ignore_index))
    out = apply(model, segment, 4, name)
    assert np.array_equal(out[cores], segment[cores])


@pytest.mark.parametrize("name", sorted(STREET_MAPS))
def test_every_object_survives_all_three_models(name):
    segment = STREET_MAPS[name]
    out = noise.annotation_noise(segment, 6, name)
    for item in noise.find_objects(segment, PARAMS.ignore_index):
        around = out[noise.window(item.box, 3, segment.shape)]
        assert (around == item.value).any(), f"class {item.value} at {item.box} vanished"


def test_thin_objects_keep_their_width():
    segment = np.zeros((40, 40), np.uint8)
    segment[5:35, 19:21] = 5  # a 2 px pole
    segment[10:20, 5:12] = 7  # a 7 px sign
    for seed in range(10):
        out = noise.boundary_noise(segment, np.random.default_rng(seed), 3, None)
        pole_widths = (out[5:35, 15:25] == 5).sum(axis=1)
        assert pole_widths[2:-2].min() >= 2 and pole_widths.max() <= 4
        assert (out[10:20, 5:12] == 7).sum(axis=1)[2:-2].min() >= 3  # eroded by at most half: 7 -> 3


def test_ignore_is_never_an_object_and_stays_a_value():
    segment = np.full((30, 30), 255, np.uint8)
    segment[5:25, 5:25] = 3
    assert [item.value for item in noise.find_objects(segment, 255)] == [3]
    assert [item.value for item in noise.find_objects(segment, None)] == [255, 3]  # largest first
    out = noise.annotation_noise(segment, 0, "x")
    assert set(np.unique(out)) <= {3, 255}


def test_picture_edge_is_not_an_outline():
    segment = np.zeros((50, 80), np.uint8)
    segment[:, 40:] = 1  # two halves, one vertical boundary
    for model in ("boundary", "simplify"):
        changed = apply(model, segment, 0, "halves") != segment
        assert not changed[:, :36].any() and not changed[:, 44:].any()


@pytest.mark.parametrize("wide", [0.0, 1.0])
def test_systematic_bias_draws_every_chosen_object_too_wide_or_too_narrow(wide):
    segment = STREET_MAPS["scene_0000.png"]
    things = (5, 11, 13)  # pole, person, car
    out = noise.systematic_bias(segment, np.random.default_rng(0), 2, wide, things, 255)
    for value in np.unique(segment[segment != 255]):
        before, after = (segment == value).sum(), (out == value).sum()
        if value not in things:
            assert after <= before if wide else after >= before  # only loses what things take, or gets back
        elif (segment == value).any():
            assert after > before if wide else after < before


def test_default_noise_is_the_three_random_models():
    segment = STREET_MAPS["scene_0007.png"]
    three = NoiseParams(models=("boundary", "simplify", "jitter"))
    assert np.array_equal(noise.annotation_noise(segment, 1, "k"), noise.annotation_noise(segment, 1, "k", three))
    biased = noise.annotation_noise(segment, 1, "k", NoiseParams(models=NOISE_MODELS, bias_radius=1))
    assert not np.array_equal(biased, noise.annotation_noise(segment, 1, "k"))


@pytest.mark.parametrize(
    "bad",
    [
        {"models": ("blur",)},
        {"models": ()},
        {"max_radius": -1},
        {"jitter_sigma": 0},
        {"bias_radius": -1},
        {"bias_wide": 1.5},
        {"ignore_index": 2**40},
        {"bias_radius": 2.5},  # a disk has a whole radius: refused here, not as an error on every map
        {"max_radius": 1.5},
    ],
)
def test_noise_params_are_checked(bad):
    with pytest.raises(ValueError):
        NoiseParams(**bad)


def test_noise_params_round_trip_through_the_metadata_form():
    params = NoiseParams(models=("bias", "jitter"), bias_radius=1, bias_classes=[11, 13], ignore_index=None)
    assert NoiseParams.from_dict({**params.to_dict(), "seed": 3, "labels": "x"}) == params


# --- nsegaug noise on real files -------------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(main, ["noise", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def labels(tmp_path) -> Path:
    """Four example maps in two folders, and a 16-bit TIFF map."""
    root = tmp_path / "labels"
    for index in range(4):
        folder = root / ("a", "b")[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / "train" / "labels" / f"scene_{index:04d}.png", folder)
    wide = read_label(DATA / "train" / "labels" / "scene_0005.png").indices.astype(np.uint16) * 300
    Image.fromarray(wide).save(root / "b" / "deep.tif")
    return root


def test_noise_mirrors_the_label_folder_keeps_formats_and_lists_each_map(labels, tmp_path):
    before = tree(labels)
    out = tmp_path / "noisy"
    result = invoke("--labels", labels, "--out", out, "--seed", 3, "--models", "bias,boundary,jitter", "-j", 2)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("masks: 5, noisy maps written: 5, skipped: 0, failed: 0")
    assert tree(labels) == before  # sources never touched
    rows = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    assert [row["label"] for row in rows] == sorted(before) == [row["output"] for row in rows]
    for row in rows:
        clean, noisy = read_label(labels / row["label"]), read_label(out / row["output"])
        assert (noisy.mode, noisy.format, noisy.palette) == (clean.mode, clean.format, clean.palette)
        assert row["changed_fraction"] == pytest.approx(float(np.mean(noisy.indices != clean.indices)))
        assert 0.005 < row["changed_fraction"] < 0.3  # boundaries moved, the maps are still the maps
        assert set(np.unique(noisy.indices)) <= set(np.unique(clean.indices))
        assert row["sha256_output"] == sha256_file(out / row["output"])
    meta = json.loads((out / META_NAME).read_text())
    assert meta["kind"] == "noise" and meta["status"] == "complete" and meta["parameters"]["seed"] == 3
    assert (
        meta["parameters"]["models"] == ["bias", "boundary", "jitter"] and meta["parameters"]["labels"] == "../labels"
    )
    assert meta["counts"]["mean_changed_fraction"] == pytest.approx(
        np.mean([r["changed_fraction"] for r in rows]), abs=1e-6
    )
    # The same bytes for one worker and on a rerun; another seed, other noise.
    again = tmp_path / "again"
    assert (
        invoke("--labels", labels, "--out", again, "--seed", 3, "--models", "bias,boundary,jitter", "-j", 1).exit_code
        == 0
    )
    assert tree(again) == tree(out)
    other = tmp_path / "other"
    assert invoke("--labels", labels, "--out", other, "--seed", 4, "--models", "bias,boundary,jitter").exit_code == 0
    assert tree(other)[MANIFEST_NAME] != tree(out)[MANIFEST_NAME]


def test_noise_reports_bad_files_in_one_line_and_goes_on(labels, tmp_path):
    (labels / "a" / "notes.png").write_text("not an image")
    out = tmp_path / "noisy"
    result = invoke("--labels", labels, "--out", out)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {labels / 'a' / 'notes.png'}: not an image file"]
    assert "masks: 5, noisy maps written: 5, skipped: 0, failed: 1" in result.stderr
    assert sorted(path.name for path in out.rglob("*.png")) == sorted(path.name for path in labels.rglob("scene_*.png"))


def test_refusals_exit_2_with_the_reason(labels, tmp_path):
    assert "choose from boundary" in invoke("--labels", labels, "--out", tmp_path / "x", "--models", "blur").stderr
    inside = invoke("--labels", labels, "--out", labels / "noisy")
    assert inside.exit_code == 2 and "is inside" in inside.stderr
    assert invoke("--labels", labels, "--out", tmp_path / "n").exit_code == 0
    again = invoke("--labels", labels, "--out", tmp_path / "n", "--seed", 9, "--resume")
    assert again.exit_code == 3 and "seed: 0 -> 9" in again.stderr


def test_the_noisy_folder_is_a_label_folder_for_generate_and_preview(labels, tmp_path):
    noisy, copies = tmp_path / "noisy", tmp_path / "copies"
    add_noise(NoiseConfig(labels=labels, out=noisy, jobs=1), log=lambda message: None)
    generated = CliRunner().invoke(main, ["generate", "--labels", str(noisy), "--copies", "1", "--out", str(copies)])
    assert generated.exit_code == 0 and "masks: 5, copies written: 5" in generated.stderr
    sheet = tmp_path / "sheet.png"
    shown = CliRunner().invoke(main, ["preview", "--manifest", str(noisy), "--n", "5", "--out", str(sheet)])
    assert shown.exit_code == 0, shown.output
    with Image.open(sheet) as image:
        assert image.size[0] > 3 * 128  # original, noisy, difference
    stats = CliRunner().invoke(main, ["preview", "--manifest", str(noisy), "--stats", "--json"])
    assert json.loads(stats.stdout)["kind"] == "noise" and json.loads(stats.stdout)["masks"] == 5
