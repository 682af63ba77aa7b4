"""The robustness experiment (examples/robustness): its noise models, its report, and a test-sized run end to end."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import LABEL_MAPS
from PIL import Image

from nsegaug.io import read_label

EXPERIMENT = Path(__file__).resolve().parents[1] / "examples" / "robustness"
DATA = EXPERIMENT.parent / "data"
sys.path.insert(0, str(EXPERIMENT))

import noise  # noqa: E402
import plan  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402

# Street-like maps (synthetic, with and without ignore bands) and two of the example data's label maps.
STREET_MAPS = {name: LABEL_MAPS[name] for name in ("street", "street_ignore_bands", "street_tall", "int32")}
STREET_MAPS |= {
    name: read_label(DATA / "train" / "labels" / name).indices for name in ("scene_0000.png", "scene_0007.png")
}
TINY_MAPS = {name: LABEL_MAPS[name] for name in ("single_class", "border_pixels", "one_row", "one_pixel", "two_by_two")}
PARAMS = noise.NoiseParams(bias_radius=2)  # the defaults, with the systematic model (off by default) on


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


# How far from a class boundary of the input each model may change a pixel (see noise.py) ...
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
    alone = noise.annotation_noise(segment, 5, "a.png", noise.NoiseParams(models=("boundary",)))
    assert np.array_equal(alone, apply("boundary", segment, 5, "a.png"))
    # Switching simplify off leaves the jitter's draws as they were: same result as chaining by hand.
    chained = noise.annotation_noise(segment, 5, "a.png", noise.NoiseParams(models=("boundary", "jitter")))
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
    three = noise.NoiseParams(models=("boundary", "simplify", "jitter"))
    assert np.array_equal(noise.annotation_noise(segment, 1, "k"), noise.annotation_noise(segment, 1, "k", three))
    biased = noise.annotation_noise(segment, 1, "k", noise.NoiseParams(bias_radius=1))
    assert not np.array_equal(biased, noise.annotation_noise(segment, 1, "k"))


@pytest.mark.parametrize(
    "bad", [{"models": ("blur",)}, {"max_radius": -1}, {"jitter_sigma": 0}, {"bias_radius": -1}, {"bias_wide": 1.5}]
)
def test_noise_params_are_checked(bad):
    with pytest.raises(ValueError):
        noise.NoiseParams(**bad)


# --- report and plan -------------------------------------------------------------------------------------------------


def _runs(values: dict) -> list[dict]:
    return [
        {"condition": condition, "method": method, "seed": seed, "miou": miou}
        for (condition, method), by_seed in values.items()
        for seed, miou in by_seed.items()
    ]


def test_summary_pairs_runs_by_seed():
    runs = _runs(
        {
            ("clean", "baseline"): {0: 0.30, 1: 0.32, 2: 0.34},
            ("clean", "nsegment+"): {0: 0.31, 1: 0.34, 2: 0.34},
            ("noisy", "baseline"): {0: 0.20, 1: 0.25},
            ("noisy", "nsegment+"): {1: 0.26, 0: 0.22},
        }
    )
    summary = report.summarize_runs(runs)
    assert summary["clean"]["baseline"]["mean"] == pytest.approx(0.32)
    assert summary["clean"]["baseline"]["std"] == pytest.approx(0.02)
    assert summary["clean"]["difference"]["values"] == pytest.approx([0.01, 0.02, 0.0])
    assert summary["noisy"]["difference"]["values"] == pytest.approx([0.02, 0.01])
    assert summary["noisy"]["difference"]["exceeds_std"] is True
    table = report.markdown_table(summary).splitlines()
    assert len(table) == 4 and table[2].startswith("| clean | 0.3200 ± 0.0200 | 0.3300 ± 0.0173 | +0.0100 ± 0.0100")


def test_single_seed_has_zero_spread_and_chart_draws():
    summary = report.summarize_runs(_runs({("clean", "baseline"): {0: 0.1}, ("clean", "nsegment+"): {0: 0.2}}))
    assert list(summary) == ["clean"] and summary["clean"]["baseline"]["std"] == 0.0
    assert summary["clean"]["difference"]["exceeds_std"] is False
    image = report.draw_chart(summary)
    assert image.size == (640, 400) and len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 3
    assert math.isnan(report.mean_std([])[0])


def test_baseline_and_nsegment_commands_differ_only_in_the_flag(tmp_path):
    folders = plan.Folders(tmp_path / "tl", tmp_path / "ti", tmp_path / "vl", tmp_path / "vi", tmp_path / "w")
    settings = plan.PRESETS["quick"]
    baseline = plan.train_command("python", folders, settings, "noisy", "baseline", 1).argv
    method = plan.train_command("python", folders, settings, "noisy", "nsegment+", 1).argv
    # Only the flag and the run folder differ: same manifest, seed, schedule, crops and --prob.
    assert [part for part in baseline if part not in method] == ["--baseline", str(folders.run("noisy", "baseline", 1))]
    assert [part for part in method if part not in baseline] == [str(folders.run("noisy", "nsegment+", 1))]
    assert baseline[baseline.index("--val-labels") + 1] == str(tmp_path / "vl")
    generates, trains = plan.all_commands("python", folders, settings)
    assert len(generates) == 2 * 3 and len(trains) == 2 * 2 * 3
    with pytest.raises(ValueError):
        plan.parse_seeds("1,1")


def test_an_unsplit_dataset_is_split_by_seed(tmp_path):
    data = tmp_path / "data"
    for part in ("labels", "images"):
        (data / part).mkdir(parents=True)
    for index in range(8):
        Image.fromarray(np.full((4, 4), index, np.uint8)).save(data / "labels" / f"s{index}.png")
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(data / "images" / f"s{index}.jpg")
    folders = run.prepare_folders(data, tmp_path / "work", plan.Settings(val_fraction=0.25))
    train = sorted(path.name for path in folders.train_labels.iterdir())
    val = sorted(path.name for path in folders.val_labels.iterdir())
    assert len(val) == 2 and len(train) == 6 and not set(train) & set(val)
    assert sorted(path.name for path in folders.val_images.iterdir()) == [name[:-4] + ".jpg" for name in val]
    again = run.prepare_folders(data, tmp_path / "again", plan.Settings(val_fraction=0.25))
    assert sorted(path.name for path in again.val_labels.iterdir()) == val


# --- the experiment, test-sized --------------------------------------------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_experiment_runs_end_to_end(tmp_path):
    val_before = _digests(DATA / "val" / "labels")
    train_before = _digests(DATA / "train" / "labels")
    out = tmp_path / "out"
    command = [sys.executable, str(EXPERIMENT / "run.py"), "--quick", "--seeds", "0", "--iters", "2", "--width", "4"]
    command += ["--crop", "32", "32", "--batch-size", "2", "--copies", "1", "--train-images", "4", "--val-images", "2"]
    command += ["--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    record = json.loads((out / "results.json").read_text())
    assert {(r["condition"], r["method"], r["seed"]) for r in record["runs"]} == {
        (condition, method, 0) for condition in ("clean", "noisy") for method in ("baseline", "nsegment+")
    }
    assert all(0 <= r["miou"] <= 1 and r["steps"] == 2 for r in record["runs"])
    assert [r["baseline"] for r in record["runs"]] == [True, False, True, False]
    assert record["data"] | {"val_images": 2, "train_images": 4} == record["data"]
    assert 0 < record["noise"]["changed_fraction_mean"] < 0.5
    shells = [entry["shell"] for entry in record["commands"]]
    assert sum(" nsegaug generate " in line for line in shells) == 2
    assert sum(" nsegaug train " in line for line in shells) == 4
    assert all("OMP_NUM_THREADS=1" in line for line in shells)
    assert set(record["summary"]) == {"clean", "noisy"}

    table = (out / "results.md").read_text()
    assert record["table"] in table and "| noisy |" in table and all(line in table for line in shells)
    with Image.open(out / "results.png") as chart:
        assert chart.format == "PNG" and chart.size == (640, 400)
    with Image.open(out / "noise.png") as picture:
        assert picture.size == (3 * 512 + 8, 256)

    # Training used the clean validation labels, linked, never written: the sources are byte for byte as before.
    val_labels = Path(record["data"]["val_labels"])
    val_labels = val_labels if val_labels.is_absolute() else tmp_path / val_labels
    for path in val_labels.iterdir():
        assert path.resolve().parent == (DATA / "val" / "labels").resolve()
    assert _digests(DATA / "val" / "labels") == val_before
    assert _digests(DATA / "train" / "labels") == train_before
    # The noisy training labels are other files, and noisier.
    noisy = tmp_path / "out" / "work" / "labels" / "noisy"
    assert sorted(path.name for path in noisy.iterdir()) == sorted(train_before)[:4]

    again = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode != 0 and "--overwrite" in again.stderr


def test_committed_table_is_the_committed_runs():
    record = json.loads((EXPERIMENT / "results" / "results.json").read_text())
    readme = (EXPERIMENT / "README.md").read_text()
    assert record["table"] in readme and record["command"] in readme
    assert record["preset"] == "quick" and len(record["runs"]) == 12
    assert record["table"] == report.markdown_table(report.summarize_runs(record["runs"]))
