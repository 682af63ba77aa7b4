"""--params FILE: generate, noise and train --online take a calibration's params.toml; an option given on the
command line overrides the file, and the run records where each value came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nsegaug._files.params_file import toml_text
from nsegaug.cli import main
from nsegaug.options.train import config_of

EXAMPLE_LABELS = Path(__file__).resolve().parents[1] / "examples" / "data" / "train" / "labels"
PARAMS = toml_text(
    {"alpha_sigma": "15:5,30:5", "area_thresh": 64},
    {"noise": {"models": "boundary,jitter", "max_radius": 1}, "calibration": {"model": "equal-readers"}},
)


@pytest.fixture()
def labels(tmp_path) -> Path:
    folder = tmp_path / "labels"
    folder.mkdir()
    for source in sorted(EXAMPLE_LABELS.glob("*.png"))[:2]:
        shutil.copy(source, folder / source.name)
    return folder


@pytest.fixture()
def params(tmp_path) -> Path:
    path = tmp_path / "params.toml"
    path.write_text(PARAMS)
    return path


def _meta(out: Path) -> dict:
    return json.loads((out / "manifest.meta.json").read_text())


def test_generate_takes_the_file_and_the_command_line_overrides_it(tmp_path, labels, params):
    out = tmp_path / "out"
    arguments = ["generate", "--labels", str(labels), "--out", str(out), "-k", "1", "-q", "--params", str(params)]
    result = CliRunner().invoke(main, [*arguments, "--area-thresh", "10"])
    assert result.exit_code == 0, result.output
    meta = _meta(out)
    assert meta["parameters"]["alpha_sigma"] == [[15, 5], [30, 5]]
    assert meta["parameters"]["area_thresh"] == 10
    assert meta["provenance"]["sources"] == {"alpha_sigma": "params file", "area_thresh": "command line"}
    assert meta["provenance"]["params_file"] == str(params)
    assert len(meta["provenance"]["params_file_sha256"]) == 64


def test_a_run_without_the_file_records_no_provenance(tmp_path, labels):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["generate", "--labels", str(labels), "--out", str(out), "-k", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert "provenance" not in _meta(out)


def test_noise_takes_its_table(tmp_path, labels, params):
    out = tmp_path / "noisy"
    result = CliRunner().invoke(main, ["noise", "--labels", str(labels), "--out", str(out), "--params", str(params)])
    assert result.exit_code == 0, result.output
    meta = _meta(out)
    assert meta["parameters"]["models"] == ["boundary", "jitter"]
    assert meta["parameters"]["max_radius"] == 1
    assert meta["provenance"]["sources"]["max_radius"] == "params file"
    assert meta["provenance"]["sources"]["jitter_sigma"] == "default"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('alpha_sigma = "15:5"\nareathresh = 64\n', "unknown key(s) areathresh"),
        ('alpha_sigma = "15:5,30"\n', "alpha_sigma"),
        ("alpha_sigma = [\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_it(tmp_path, labels, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["generate", "--labels", str(labels), "--out", str(out), "-k", "1", "--params", str(bad)]
    )
    assert result.exit_code == 2, result.output
    assert str(bad) in result.output and message in result.output
    assert not out.exists()


def test_train_online_takes_the_file_and_records_it(tmp_path, labels, params):
    common = ["--manifest", str(labels), "--val-labels", str(labels), "--val-images", str(labels)]
    config = config_of([*common, "--num-classes", "19", "--online", "--params", str(params), "--alpha-sigma", "5:3"])
    assert config.params.alpha_sigma == ((5, 3),)
    assert config.params.area_thresh == 64
    assert config.parameter_sources["sources"] == {"alpha_sigma": "command line", "area_thresh": "params file"}
    assert config.to_dict()["parameter_sources"]["params_file"] == str(params)


def test_train_offline_refuses_the_file(labels, params):
    common = ["--manifest", str(labels), "--val-labels", str(labels), "--val-images", str(labels)]
    with pytest.raises(click.UsageError, match="--online"):
        config_of([*common, "--num-classes", "19", "--params", str(params)])
