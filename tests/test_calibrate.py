"""nsegaug calibrate: pairs whose disagreement is known (made by the engine at a known strength) are recovered,
a weak and a strong disagreement give different strengths, and bad input is refused with nothing written."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nsegaug._files.params_file import read_params_file
from nsegaug.calibrate import CalibrateConfig, Grid, calibrate, compare
from nsegaug.calibrate.search import displacement_scale
from nsegaug.cli import main
from nsegaug.copies import deformed_copies
from nsegaug.params import DeformParams

# The record of the files a calibration wrote in its folder (what lets it replace them, and only them).
RECORD_NAME = ".nsegaug-calibrate.json"

EXAMPLE_LABELS = Path(__file__).resolve().parents[1] / "examples" / "data" / "train" / "labels"
# A small grid, so that a calibration takes seconds: rms field displacements from 0.16 to 5.4 px.
GRID = Grid(alphas=(5, 15, 30, 60, 100), sigmas=(3, 5, 10), thresholds=(0, 1000))
GRID_OPTIONS = ["--alphas", "5,15,30,60,100", "--sigmas", "3,5,10", "--thresholds", "0,1000"]
# A recovered strength's rms field displacement is within this share of the truth's: (alpha, sigma) pairs of one
# rms differ only in smoothness, which boundaries a few pixels apart show weakly.
TOLERANCE = 0.35


def _save_like(source: Path, indices: np.ndarray, target: Path) -> None:
    image = Image.open(source)
    copy = Image.fromarray(indices.astype(np.uint8))
    copy.putpalette(image.getpalette())
    target.parent.mkdir(parents=True, exist_ok=True)
    copy.save(target)


def make_pairs(root: Path, params: DeformParams, maps: int = 4, seed: int = 7) -> tuple[Path, Path]:
    """``root/reference``: example label maps; ``root/labels``: an NSegment+ copy of each at ``params``
    (seed ``seed``, another stream than the calibration's)."""
    reference, labels = root / "reference", root / "labels"
    reference.mkdir(parents=True)
    for source in sorted(EXAMPLE_LABELS.glob("*.png"))[:maps]:
        shutil.copy(source, reference / source.name)
        segment = np.asarray(Image.open(source))
        ((_, result),) = deformed_copies(segment, f"truth/{source.name}", 1, params, seed=seed)
        _save_like(source, result.segment, labels / source.name)
    return labels, reference


def strength(root: Path, alpha_sigma, area_thresh=0, **options):
    labels, reference = make_pairs(root, DeformParams(alpha_sigma, area_thresh, 255))
    config = CalibrateConfig(labels, reference, ignore_index=255, grid=GRID, sample=4, fit_noise=False, **options)
    return calibrate(config)


def test_compare_counts_a_shift_by_one_pixel():
    a = np.zeros((40, 40), np.uint8)
    a[10:20, 10:20] = 1
    b = np.roll(a, 1, axis=0)
    measured = compare(a, b)
    assert measured.changed == 20  # a row of 10 gained, a row of 10 lost
    # Top and bottom rows of each square (of both classes) moved by 1 px; the sides did not move.
    pooled = measured.pooled().sum(axis=0)
    assert pooled[0] > 0 and pooled[4] > 0 and pooled.sum() == pooled[0] + pooled[4]
    assert measured.counts.keys() == {0, 1}


def test_a_copy_at_a_known_strength_is_recovered(tmp_path):
    truth = ((30, 5),)
    found = strength(tmp_path, truth)
    scale = displacement_scale(found.params.alpha_sigma)
    assert abs(scale - displacement_scale(truth)) <= TOLERANCE * displacement_scale(truth), found.params
    assert found.params.area_thresh == 0
    # Copies at the recommended strength are far nearer the disagreement than the paper's.
    assert found.distance_of(found.achieved) < found.distance_of(found.paper) / 3


def test_a_weak_and_a_strong_disagreement_give_different_strengths(tmp_path):
    weak = strength(tmp_path / "weak", ((15, 5),))
    strong = strength(tmp_path / "strong", ((100, 3),))
    assert weak.params.alpha_sigma != strong.params.alpha_sigma
    assert displacement_scale(strong.params.alpha_sigma) > 3 * displacement_scale(weak.params.alpha_sigma)


def test_protected_small_objects_recommend_a_threshold(tmp_path):
    # Small objects left untouched in the annotations: the threshold that protects them fits better than none.
    labels, reference = make_pairs(tmp_path, DeformParams(((60, 3),), 1000, 255))
    common = {"ignore_index": 255, "sample": 4, "fit_noise": False}
    found = {
        thresholds: calibrate(
            CalibrateConfig(labels, reference, grid=Grid(GRID.alphas, GRID.sigmas, thresholds), **common)
        )
        for thresholds in ((0,), (1000,), (0, 1000))
    }
    protected, unprotected = found[(1000,)], found[(0,)]
    assert protected.distance_of(protected.achieved) < 0.8 * unprotected.distance_of(unprotected.achieved)
    assert found[(0, 1000)].params.area_thresh == 1000


def test_equal_readers_ask_for_less_than_one_reader_against_the_truth(tmp_path):
    # Both annotations are copies of one truth: each differs from the other about sqrt(2) times as much as from
    # the truth. With B as the truth, copies must reach that whole difference; as equal readers, two copies of B
    # share it.
    first, _ = make_pairs(tmp_path / "first", DeformParams(((30, 5),), 0, 255), seed=7)
    second, _ = make_pairs(tmp_path / "second", DeformParams(((30, 5),), 0, 255), seed=8)
    common = {"ignore_index": 255, "grid": GRID, "sample": 4, "fit_noise": False}
    one = calibrate(CalibrateConfig(first, second, **common))
    equal = calibrate(CalibrateConfig(first, second, model="equal-readers", **common))
    assert displacement_scale(equal.params.alpha_sigma) < displacement_scale(one.params.alpha_sigma)


def test_the_command_writes_params_a_report_and_a_figure_that_generate_takes(tmp_path):
    labels, reference = make_pairs(tmp_path, DeformParams(((30, 5),), 0, 255))
    out = tmp_path / "calibration"
    runner = CliRunner()
    arguments = ["calibrate", "--labels", str(labels), "--reference", str(reference), "--out", str(out)]
    result = runner.invoke(main, [*arguments, "--ignore-index", "255", "--sample", "3", *GRID_OPTIONS])
    assert result.exit_code == 0, result.output
    assert {path.name for path in out.iterdir()} == {
        "params.toml",
        "report.md",
        "calibration.json",
        "displacement.png",
        "displacement.svg",
        RECORD_NAME,
    }
    values = read_params_file(out / "params.toml")
    assert values["calibration"]["model"] == "reference"
    assert values["calibration"]["distance_px"] < values["calibration"]["paper_default_distance_px"]
    assert set(values["noise"]) >= {"max_radius", "max_epsilon", "jitter_amplitude"}
    assert "Recommendation" in (out / "report.md").read_text()
    assert Image.open(out / "displacement.png").size[0] > 300
    generated = tmp_path / "copies"
    result = runner.invoke(
        main,
        [
            "generate",
            "--labels",
            str(reference),
            "--params",
            str(out / "params.toml"),
            "-k",
            "1",
            "--out",
            str(generated),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    meta = (generated / "manifest.meta.json").read_text()
    pairs = [[float(a), float(s)] for a, s in (pair.split(":") for pair in values["alpha_sigma"].split(","))]
    recorded = json.loads(meta)
    assert [[float(a), float(s)] for a, s in recorded["parameters"]["alpha_sigma"]] == pairs
    assert recorded["provenance"]["sources"] == {"alpha_sigma": "params file", "area_thresh": "params file"}


def _refused(tmp_path: Path, labels: Path, reference: Path) -> str:
    out = tmp_path / "out" / "calibration"
    result = CliRunner().invoke(
        main, ["calibrate", "--labels", str(labels), "--reference", str(reference), "--out", str(out), *GRID_OPTIONS]
    )
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "out").exists(), "a refused calibration wrote something, or left the folders it made"
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1
    return lines[0]


def test_a_map_without_a_partner_is_refused_naming_it(tmp_path):
    labels, reference = make_pairs(tmp_path, DeformParams(((15, 5),), 0, 255), maps=3)
    extra = labels / "sub" / "lonely.png"
    _save_like(next(reference.iterdir()), np.zeros((8, 8)), extra)
    assert "lonely.png" in _refused(tmp_path, labels, reference)


def test_maps_of_different_sizes_are_refused_naming_them(tmp_path):
    labels, reference = make_pairs(tmp_path, DeformParams(((15, 5),), 0, 255), maps=3)
    victim = sorted(labels.iterdir())[1]
    _save_like(victim, np.asarray(Image.open(victim))[:100], victim)
    line = _refused(tmp_path, labels, reference)
    assert victim.name in line and "512x256" in line and "512x100" in line


def test_maps_that_disagree_almost_everywhere_are_refused(tmp_path):
    labels, reference = make_pairs(tmp_path, DeformParams(((15, 5),), 0, 255), maps=3)
    victim = sorted(labels.iterdir())[2]
    recoded = (np.asarray(Image.open(victim)).astype(int) + 1) % 19  # another encoding of the same classes
    _save_like(victim, recoded, victim)
    line = _refused(tmp_path, labels, reference)
    assert victim.name in line and "not two annotations of the same scene" in line


def test_maps_without_any_boundary_are_refused(tmp_path):
    for side in ("labels", "reference"):
        Image.fromarray(np.full((16, 16), 3, np.uint8)).save(tmp_path / f"{side}.png")
        (tmp_path / side).mkdir()
        shutil.move(tmp_path / f"{side}.png", tmp_path / side / "flat.png")
    assert "no class boundary" in _refused(tmp_path, tmp_path / "labels", tmp_path / "reference")


@pytest.mark.parametrize("alpha_sigma", [((1, 3),), ((15, 5), (100, 3))])
def test_displacement_scale_is_the_rms_of_the_blurred_uniform_field(alpha_sigma):
    # Measured on a drawn field: the formula's variance of the blurred uniform noise.
    from nsegaug.fields import smooth_field

    rng = np.random.RandomState(0)
    squares = []
    for alpha, sigma in alpha_sigma:
        field = smooth_field(alpha * (2 * rng.rand(400, 400) - 1), sigma)
        squares.append(float((field[50:-50, 50:-50] ** 2).mean()))
    assert math.sqrt(np.mean(squares)) == pytest.approx(displacement_scale(alpha_sigma), rel=0.1)


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_the_scaling_rule_scales_displacement_and_protection_with_the_map(factor):
    from nsegaug.fields import smooth_field

    paper = DeformParams()
    scaled = paper.scaled(factor)
    assert scaled.area_thresh == paper.area_thresh * factor**2
    assert displacement_scale(scaled.alpha_sigma) == pytest.approx(factor * displacement_scale(paper.alpha_sigma))
    # The blurred fields themselves: rms times the factor, pair by pair (sigma 3 x 0.5 stays at the 2 px floor).
    rng = np.random.RandomState(1)
    for (alpha, sigma), (new_alpha, new_sigma) in zip(paper.alpha_sigma[3:6], scaled.alpha_sigma[3:6], strict=True):
        noise = 2 * rng.rand(600, 600) - 1
        rms = np.sqrt((smooth_field(alpha * noise, sigma)[100:-100, 100:-100] ** 2).mean())
        new_rms = np.sqrt((smooth_field(new_alpha * noise, new_sigma)[100:-100, 100:-100] ** 2).mean())
        assert new_rms == pytest.approx(factor * rms, rel=0.12)


def test_a_class_meeting_the_ignore_index_is_no_boundary_and_what_the_other_map_ignores_is_not_compared():
    a = np.zeros((40, 40), np.uint8)
    a[:, 20:] = 1  # one vertical class boundary: 2 x 40 boundary pixels
    b = a.copy()
    b[10:15] = 255  # a band the reference ignores, across the boundary
    measured = compare(a, b, ignore_index=255)
    pooled = measured.pooled().sum(axis=0)
    assert measured.changed == 0 and measured.boundary_pixels == 2 * 2 * 35  # both maps; the band compared in neither
    assert pooled.sum() == pooled[0]  # nothing moved


def test_maps_equal_but_for_an_ignored_band_recommend_the_weakest_strength(tmp_path):
    """The labels are the reference with 5 rows set to the ignore index: nothing differs, nothing moved (on
    0f2d1df the pixels along the band counted as boundaries 1 to 64 px from the reference's, and a strong set was
    recommended)."""
    reference, labels = tmp_path / "reference", tmp_path / "labels"
    reference.mkdir()
    for source in sorted(EXAMPLE_LABELS.glob("*.png"))[:2]:
        shutil.copy(source, reference / source.name)
        segment = np.asarray(Image.open(source)).copy()
        segment[40:45] = 255
        _save_like(source, segment, labels / source.name)
    config = CalibrateConfig(labels, reference, ignore_index=255, grid=GRID, sample=1, check_copies=1, fit_noise=False)
    found = calibrate(config)
    assert found.target.changed == 0 and found.target.overall_mean < 0.01
    weakest = min(GRID.pairs, key=lambda pair: displacement_scale((pair,)))
    assert found.params.alpha_sigma == (weakest,)


# --- its folder: held for the run, never a params.toml beside another calibration's report ------------------

# Another run holding a folder, in its own process, until it is killed.
HOLDING = """
import sys, time
from nsegaug._files.lock import hold
with hold(sys.argv[1], "generate"):
    print("held", flush=True)
    time.sleep(600)
"""


def _calibrate_cli(labels: Path, reference: Path, out: Path):
    arguments = ["calibrate", "--labels", str(labels), "--reference", str(reference), "--out", str(out)]
    return CliRunner().invoke(
        main, [*arguments, "--ignore-index", "255", "--sample", "2", "--no-figure", *GRID_OPTIONS]
    )


@pytest.mark.parametrize("where", ["the folder", "a folder above it"])
def test_a_folder_another_live_run_holds_is_refused_and_left_as_it_was(tmp_path, where):
    labels, reference = make_pairs(tmp_path, DeformParams(((15, 5),), 0, 255), maps=2)
    held = tmp_path / "held"
    out = held if where == "the folder" else held / "calibration"
    held.mkdir()
    (held / "report.md").write_text("another calibration's report\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLDING, str(held)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = sorted(path.name for path in held.rglob("*"))
        result = _calibrate_cli(labels, reference, out)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 3, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "in use by generate run on host" in errors[0] and f"pid {holder.pid}," in errors[0]
    assert sorted(path.name for path in held.rglob("*")) == before
    assert (held / "report.md").read_text() == "another calibration's report\n"


def test_a_calibration_cut_short_while_writing_leaves_no_params_of_another_calibration(tmp_path):
    """The report cannot be written (a folder has its name): the run fails naming it, and the folder holds no
    params.toml, neither the earlier calibration's (whose report would be gone) nor one without its report."""
    labels, reference = make_pairs(tmp_path, DeformParams(((15, 5),), 0, 255), maps=2)
    out = tmp_path / "calibration"
    assert _calibrate_cli(labels, reference, out).exit_code == 0
    assert (out / "params.toml").exists()
    (out / "report.md").unlink()
    (out / "report.md").mkdir()  # a real obstacle: the atomic rename of the report onto it fails
    result = _calibrate_cli(labels, reference, out)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "report.md" in errors[0]
    assert not (out / "params.toml").exists()
    assert not (out / ".nsegaug.lock").exists()
    (out / "report.md").rmdir()
    assert _calibrate_cli(labels, reference, out).exit_code == 0
    assert {path.name for path in out.iterdir()} == {"params.toml", "report.md", "calibration.json", RECORD_NAME}


def test_an_out_path_through_a_missing_folder_and_back_makes_only_the_folder_it_names(tmp_path):
    labels, reference = make_pairs(tmp_path, DeformParams(((15, 5),), 0, 255), maps=2)
    result = _calibrate_cli(labels, reference, tmp_path / "missing" / ".." / "calibration")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "missing").exists() and (tmp_path / "calibration" / "params.toml").exists()


@pytest.mark.parametrize("name", ["params.toml", "report.md", "notes/today.txt"])
def test_a_folder_holding_files_calibrate_did_not_write_is_refused_and_left_as_it_was(tmp_path, name):
    """A hand-written params.toml (the name users give --params files), a report of their own, any file: calibrate
    refuses the folder, naming it and the file, exit code 3, before any work, and changes nothing there."""
    labels, reference = make_pairs(tmp_path, DeformParams(((15, 5),), 0, 255), maps=2)
    out = tmp_path / "calx"
    (out / name).parent.mkdir(parents=True)
    (out / name).write_text('alpha_sigma = "30:5"\n')
    result = _calibrate_cli(labels, reference, out)
    assert result.exit_code == 3, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith(f"Error: {out} holds {name}, which no calibration wrote"), line
    assert sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()) == [name]
    assert (out / name).read_text() == 'alpha_sigma = "30:5"\n'


def test_a_calibration_replaces_its_own_earlier_files_but_not_one_edited_since(tmp_path):
    labels, reference = make_pairs(tmp_path, DeformParams(((15, 5),), 0, 255), maps=2)
    out = tmp_path / "calibration"
    assert _calibrate_cli(labels, reference, out).exit_code == 0
    first = (out / "calibration.json").stat().st_ino
    again = _calibrate_cli(labels, reference, out)  # its own earlier calibration: replaced, as documented
    assert again.exit_code == 0, again.output
    assert (out / "calibration.json").stat().st_ino != first  # written anew (renamed into place over the old one)
    (out / "params.toml").write_text((out / "params.toml").read_text() + "# my own change\n")
    edited = _calibrate_cli(labels, reference, out)
    assert edited.exit_code == 3, edited.output
    assert f"{out} holds params.toml, which no calibration wrote (or it changed since)" in edited.output
    assert (out / "params.toml").read_text().endswith("# my own change\n")
