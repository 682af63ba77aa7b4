"""A study file's ``params = "FILE"`` ([generate] and [noise]: a calibration's params.toml, overridden by the
study's own keys, recorded) and ``[data] noisy_labels`` (a noisy condition whose labels are given): planned,
refused, and run for real (a small study on the example scenes, one of its online trainings resumed)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runs import ROOT

from nsegaug.errors import UsageError
from nsegaug.study.driver import check_data
from nsegaug.study.plan import plan_units
from nsegaug.study.spec import StudySpec, build_spec
from study.tiny import TINY, scenes

PARAMS = 'alpha_sigma = "5:3,10:5"\narea_thresh = 64\n\n[noise]\nmax_radius = 1\nmodels = "boundary"\n'
DATA = {"labels": "a", "images": "b", "val_labels": "c", "val_images": "d", "num_classes": 19}
ALL = ["baseline", "nsegment+", "nsegment+online", "nsegment"]


@pytest.fixture()
def params(tmp_path) -> Path:
    path = tmp_path / "params.toml"
    path.write_text(PARAMS)
    return path


def _units(tables: dict) -> dict:
    return {unit.name: unit.argv for unit in plan_units(build_spec(tables), Path("out"))}


def _value(argv, flag: str):
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_params_goes_to_generate_and_to_online_training_and_the_tables_keys_override_it(params):
    tables = {"data": DATA, "study": {"methods": ALL, "seeds": [2]}}
    tables["generate"] = {"params": str(params), "area_thresh": 32, "copies": 2}
    spec = build_spec(tables)
    assert spec.params_sources == {
        "generate": {
            "params_file": str(params),
            "params_file_sha256": spec.params_sources["generate"]["params_file_sha256"],
            "sources": {"alpha_sigma": "params file", "area_thresh": "study table"},
        }
    }
    units = _units(tables)
    generate, online = units["generate-clean-nsegment-plus-seed2"], units["train-clean-nsegment-plus-online-seed2"]
    for argv in (generate, online):  # the file, and the table's value on top of it (the command line wins)
        assert _value(argv, "--params") == str(params) and _value(argv, "--area-thresh") == "32"
        assert "--alpha-sigma" not in argv
    # NSegment without suppression: its own --area-thresh 0 beats the file's and the table's.
    plain = units["generate-clean-nsegment-seed2"]
    assert _value(plain, "--params") == str(params) and _value(plain, "--area-thresh") == "0"
    # Offline trainings and the baseline read copies or originals: no deformation options (train refuses them).
    for name in ("train-clean-baseline-seed2", "train-clean-nsegment-plus-seed2"):
        assert "--params" not in units[name] and "--alpha-sigma" not in units[name]


def test_params_in_noise_reads_the_files_noise_table(params):
    tables = {"data": DATA, "study": {"conditions": ["noisy"]}, "noise": {"params": str(params), "seed": 3}}
    spec = build_spec(tables)
    sources = spec.params_sources["noise"]["sources"]
    assert sources["max_radius"] == sources["models"] == "params file" and sources["max_epsilon"] == "default"
    noise = _units(tables)["noise"]
    assert _value(noise, "--params") == str(params) and _value(noise, "--seed") == "3"


def test_a_bad_params_file_is_refused_naming_it_before_anything_runs(tmp_path, params):
    def spec_with(table: str, value) -> None:
        build_spec({"data": DATA, table: {"params": value}})

    with pytest.raises(UsageError, match=r"missing\.toml: cannot read the params file"):
        spec_with("generate", str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text('alpha_sigma = "5:3"\ncopies = 4\n')
    with pytest.raises(UsageError, match=r"bad\.toml: unknown key\(s\) copies"):
        spec_with("generate", str(bad))
    bad.write_text('alpha_sigma = "five:3"\n')
    with pytest.raises(UsageError, match=r"bad\.toml: alpha_sigma: "):
        spec_with("generate", str(bad))
    bad.write_text("[noise]\nmax_radius = -1\n")
    with pytest.raises(UsageError, match=r"bad\.toml: max_radius: "):
        spec_with("noise", str(bad))
    with pytest.raises(UsageError, match=r"\[generate\] params: a file name"):
        spec_with("generate", 3)
    with pytest.raises(UsageError, match="params and params_file are the same key"):
        build_spec({"data": DATA, "generate": {"params": str(params), "params_file": str(params)}})
    # [train] has no deformation of its own: online training takes [generate]'s.
    with pytest.raises(UsageError, match=r"\[train\] params: set by \[generate\] params"):
        _units({"data": DATA, "train": {"params": str(params)}})


def test_given_noisy_labels_make_the_noisy_condition_without_nsegaug_noise(tmp_path):
    tables = {"data": {**DATA, "noisy_labels": "reader"}, "study": {"methods": ["baseline", "nsegment+"]}}
    spec = build_spec(tables)
    assert spec.conditions == ("clean", "noisy") and spec.noise is None
    units = _units(tables)
    assert "noise" not in units
    assert _value(units["generate-noisy-nsegment-plus-seed0"], "--labels") == "reader"
    assert _value(units["generate-clean-nsegment-plus-seed0"], "--labels") == "a"
    with pytest.raises(UsageError, match="noisy_labels are the noisy condition's labels: no \\[noise\\] table"):
        build_spec({**tables, "noise": {"max_radius": 1}})
    with pytest.raises(UsageError, match="the noisy condition needs a \\[noise\\] table or \\[data\\] noisy_labels"):
        StudySpec(**DATA, conditions=("noisy",))
    # The folder is checked with the others, before anything runs.
    folders = {}
    for key in ("labels", "images", "val_labels", "val_images"):
        folders[key] = str(tmp_path / key)
        Path(folders[key]).mkdir()
        shutil.copy(
            ROOT / "examples" / "data" / "train" / "labels" / "scene_0000.png", Path(folders[key]) / "scene_0000.png"
        )
    with pytest.raises(UsageError, match=r"reader: the study's noisy_labels folder does not exist"):
        check_data(build_spec({"data": {**DATA, **folders, "noisy_labels": str(tmp_path / "reader")}}))


# --- a real study ----------------------------------------------------------------------------------------------


def _study(path: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "nsegaug", "study", str(path), "--out", str(out)]


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_a_study_with_params_records_every_value_and_resumes_an_online_training(tmp_path, params):
    data = scenes(tmp_path / "data")
    lines = ["[data]", *(f"{key} = {json.dumps(value)}" for key, value in data.items())]
    lines += ["[study]", 'methods = ["nsegment+", "nsegment+online"]', 'conditions = ["noisy"]', "seeds = [0]"]
    lines += ["[generate]", 'params = "params.toml"', "copies = 2", "area_thresh = 32"]
    lines += ["[noise]", 'params = "params.toml"', "seed = 1"]
    train = {**TINY, "iters": 24, "checkpoint_every": 1}
    lines += ["[train]", *(f"{key} = {json.dumps(value)}" for key, value in train.items())]
    path = tmp_path / "study.toml"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    # Relative paths, params.toml included, are read from the folder the study runs in. Killed while its online
    # training runs, past a checkpoint.
    online = out / "runs" / "noisy" / "nsegment-plus-online" / "seed0"
    process = subprocess.Popen(_study(path, out), env=_environment(), cwd=tmp_path, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (online / "last.pt").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL and not (online / "metrics.json").exists()
    again = subprocess.run(_study(path, out), env=_environment(), cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr

    meta = json.loads(
        (out / "data" / "copies" / "noisy" / "nsegment-plus" / "seed0" / "manifest.meta.json").read_text()
    )
    assert meta["parameters"]["alpha_sigma"] == [[5.0, 3.0], [10.0, 5.0]] and meta["parameters"]["area_thresh"] == 32
    assert meta["provenance"]["sources"] == {"alpha_sigma": "params file", "area_thresh": "command line"}
    noise = json.loads((out / "data" / "noisy" / "manifest.meta.json").read_text())
    assert noise["provenance"]["sources"]["max_radius"] == "params file" and noise["parameters"]["max_radius"] == 1
    config = json.loads((online / "config.json").read_text())["config"]
    assert config["area_thresh"] == 32 and config["parameter_sources"]["params_file"] == "params.toml"
    assert config["parameter_sources"]["sources"]["alpha_sigma"] == "params file"

    study = json.loads((out / "study.json").read_text())["study"]
    results = json.loads((out / "results.json").read_text())["study"]
    for record in (study, results):
        assert record["params_sources"]["generate"]["sources"] == {
            "alpha_sigma": "params file",
            "area_thresh": "study table",
        }
        assert record["params_sources"]["noise"]["sources"]["max_radius"] == "params file"
    assert "- strength: [generate] params = params.toml (sha256 " in (out / "results.md").read_text()

    # The interrupted online training resumed without --params (train --resume takes the run's own values).
    rows = [json.loads(line) for line in (out / "units.jsonl").read_text().splitlines()]
    resumed = [row for row in rows if row["unit"] == "train-noisy-nsegment-plus-online-seed0"][-2:]
    assert [row["action"] for row in resumed] == ["resume", "done"]
    assert "--resume" in resumed[0]["command"] and "--params" not in resumed[0]["command"]
