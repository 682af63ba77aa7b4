"""Credentials never end up in what a run writes, nor in the Dask task graph (issue 23, item 10).

Every run here goes into a real S3 server (moto's, on 127.0.0.1), with credentials typed in the URLs and in
``--storage-options``; then every object and file the run wrote is searched for them.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner
from s3 import make_buckets, needs_moto, start_moto

from nsegaug import storage
from nsegaug.cli import main

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "train"
URL_KEY, URL_SECRET, OPTION_TOKEN = "AKIAURLKEY", "UrlSecret+123", "OptionToken456"
SECRETS = (URL_KEY, URL_SECRET, OPTION_TOKEN, "UrlSecret%2B123")


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("moto.server", reason="needs moto[server]")
    process, url = start_moto()
    make_buckets(url, "testing", "testing", "data", "out")
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"},
    }
    storage.configure(options)
    fs, _ = storage.filesystem("s3://data")
    for kind in ("labels", "images"):
        for path in sorted((SAMPLES / kind).iterdir())[:4]:
            fs.pipe_file(f"data/{kind}/{path.name}", path.read_bytes())
    yield url, fs
    storage.configure(None)
    process.terminate()
    process.wait(timeout=30)


def run_into_bucket(url: str, out: str, *extra: str, in_urls: bool = True):
    # The URLs carry the key and secret; the options carry the endpoint and a session token.
    typed = f"s3://{URL_KEY}:UrlSecret%2B123@" if in_urls else "s3://"
    options = {"client_kwargs": {"endpoint_url": url, "region_name": "us-east-1", "aws_session_token": OPTION_TOKEN}}
    arguments = ["generate", "--labels", typed + "data/labels", "--images", typed + "data/images"]
    arguments += ["--out", typed + out, "--copies", "2", "--storage-options", json.dumps(options), "-q", *extra]
    return CliRunner().invoke(main, arguments, catch_exceptions=False)


def written(fs, prefix: str) -> dict[str, bytes]:
    return {key: fs.cat_file(key) for key in sorted(fs.find(prefix, refresh=True))}


def assert_no_secret(files: dict[str, bytes], output: str) -> None:
    for name, data in files.items():
        for secret in SECRETS:
            assert secret.encode() not in data, f"{name} holds {secret}"
    for secret in SECRETS:
        assert secret not in output


@needs_moto
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_a_run_with_credentials_in_urls_and_options_records_none_of_them(server, backend):
    if backend == "dask":
        pytest.importorskip("distributed", reason="needs dask.distributed")
    url, fs = server
    result = run_into_bucket(url, f"out/{backend}", "--jobs", "2", "--backend", backend)
    assert result.exit_code == 0, result.output
    files = written(fs, f"out/{backend}")
    assert len([name for name in files if name.endswith(".png")]) == 8  # 4 masks, 2 copies: the run worked
    assert_no_secret(files, result.output)
    meta = json.loads(files[f"out/{backend}/manifest.meta.json"])
    assert meta["parameters"]["labels"] == "s3://data/labels" and meta["locations"]["out"] == f"s3://out/{backend}"
    assert "s3://out/" + backend in " ".join(meta["command_line"])


@needs_moto
def test_a_resumed_run_compares_the_urls_without_their_credentials(server):
    url, fs = server
    assert run_into_bucket(url, "out/resume").exit_code == 0
    resumed = run_into_bucket(url, "out/resume", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert_no_secret(written(fs, "out/resume"), resumed.output)


@needs_moto
def test_the_dask_task_graph_carries_no_storage_secret(server, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="needs dask.distributed")
    import cloudpickle

    url, fs = server
    # The cluster's workers have credentials of their own, as the README says a Dask deployment gives them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "worker-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "worker-secret")

    class SeenTasks(distributed.WorkerPlugin):
        """What reached the worker for each task, pickled as it travels."""

        name = "seen-tasks"

        def setup(self, worker):
            self.worker, self.seen = worker, []

        def transition(self, key, start, finish, **kwargs):
            task = self.worker.state.tasks.get(key)
            if task is not None and task.run_spec is not None:
                self.seen.append(cloudpickle.dumps(task.run_spec, protocol=pickle.HIGHEST_PROTOCOL))

    with distributed.LocalCluster(
        n_workers=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            plugin = SeenTasks()
            client.register_plugin(plugin)
            address = cluster.scheduler_address
            # Secrets in the options only: the run works as it did before, and only the graph is in question.
            result = run_into_bucket(url, "out/graph", "--backend", "dask", "--scheduler", address, in_urls=False)
            (worker,) = cluster.workers.values()  # in this process: its plugin is the copy the worker holds
            seen = b"".join(worker.plugins[SeenTasks.name].seen)
    assert result.exit_code == 0, result.output
    assert b"process_mask" in seen  # the tasks were seen
    assert OPTION_TOKEN.encode() not in seen
    assert "not sent to the workers" in result.output


# --- train and evaluate (issue 28, item 3) ---------------------------------------------------------------------


def every_byte(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, and every member of each zip inside (a torch checkpoint is a zip of pickles)."""
    import zipfile

    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            found[path.relative_to(folder).as_posix()] = path.read_bytes()
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    for member in archive.namelist():
                        found[f"{path.name}!{member}"] = archive.read(member)
    return found


@needs_moto
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
@pytest.mark.parametrize("in_environment", [False, True], ids=["urls-only", "environment-too"])
def test_train_and_evaluate_take_credentials_from_urls_and_record_none_of_them(server, tmp_path, in_environment):
    import os
    import subprocess
    import sys

    url, fs = server
    typed = f"s3://{URL_KEY}:UrlSecret%2B123@"
    gen = f"out/for-train-{in_environment}"
    assert run_into_bucket(url, gen).exit_code == 0
    # The endpoint and a session token in the options; the key and the secret in the URLs: without credentials in
    # its environment, a run that did not take them from there could not read a thing.
    options = json.dumps(
        {"client_kwargs": {"endpoint_url": url, "region_name": "us-east-1", "aws_session_token": OPTION_TOKEN}}
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    if in_environment:  # credentials of their own too: the records must still hold none of the URLs'
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env["OMP_NUM_THREADS"] = "1"
    # Never the machine's own instance metadata service: a cloud test machine's role must not stand in for the
    # URL's credentials. (With the URL's credentials given, botocore does not ask it: generate and train took as
    # long with it unreachable, AWS_EC2_METADATA_SERVICE_ENDPOINT=http://10.255.255.1/, as with it disabled.)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    run = tmp_path / "run"

    def nsegaug(*arguments) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "nsegaug", *map(str, arguments), "--storage-options", options]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    data = ["--val-labels", typed + "data/labels", "--val-images", typed + "data/images", "--workers", 0]
    tiny = ["--num-classes", 19, "--width", 4, "--batch-size", 2, "--crop", 64, 64, "--iters", 2, "--quiet"]
    trained = nsegaug("train", "--manifest", typed + gen, *data, *tiny, "--out", run)
    assert trained.returncode == 0, trained.stderr
    checkpoint = ["--checkpoint", run / "best.pt", "--out", run / "evaluation.json"]
    evaluated = nsegaug("evaluate", *checkpoint, "--labels", typed + "data/labels", "--images", typed + "data/images")
    assert evaluated.returncode == 0, evaluated.stderr
    files = every_byte(run)
    assert {"config.json", "metrics.json", "best.pt", "last.pt", "evaluation.json"} <= set(files)
    assert any(name.startswith("best.pt!") and name.endswith(".pkl") for name in files)  # the pickles were opened
    assert_no_secret(files, trained.stdout + trained.stderr + evaluated.stdout + evaluated.stderr)
    config = json.loads(files["config.json"])["config"]
    assert config["manifest"] == f"s3://{gen}" and config["val_labels"] == "s3://data/labels"
    assert json.loads(files["evaluation.json"])["labels"] == "s3://data/labels"
    # Resumed with the URLs typed again: the recorded and the typed settings compare equal without their credentials.
    resumed = nsegaug("train", "--out", run, "--resume", "--iters", 3, "--val-labels", typed + "data/labels", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_no_secret(every_byte(run), resumed.stdout + resumed.stderr)


@needs_moto
def test_a_studys_plan_records_and_unit_logs_hold_no_credential(server, tmp_path, monkeypatch):
    from nsegaug.study.driver import STUDY_RECORD, plan_text
    from nsegaug.study.plan import plan_units
    from nsegaug.study.run import UNITS_LOG, UnitLog, run_unit
    from nsegaug.study.spec import build_spec

    url, _ = server
    typed = f"s3://{URL_KEY}:UrlSecret%2B123@data/"
    data = {"labels": typed + "labels", "images": typed + "images", "val_labels": typed + "labels"}
    tables = {
        "data": {**data, "val_images": typed + "images", "num_classes": 19},
        "study": {"conditions": ["clean", "noisy"]},
    }
    spec = build_spec({**tables, "noise": {}})
    study = tmp_path / "study"
    units = plan_units(spec, study)
    assert all(URL_KEY in " ".join(unit.argv) for unit in units)  # each unit's process gets them, as typed
    # The records the study writes: its description and commands (study.json, results.json and .md), the plan.
    (study / STUDY_RECORD).parent.mkdir(parents=True)
    record = {"study": spec.to_dict(), "commands": [unit.shell() for unit in units]}
    (study / STUDY_RECORD).write_text(json.dumps(record))
    # A real unit's process, against the S3 server: its line in units.jsonl and its log.
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    (noise,) = [unit for unit in units if unit.kind == "noise"]
    assert run_unit(noise, {}, study / "logs" / "noise.log", UnitLog(study / UNITS_LOG)) is not None
    assert json.loads((study / "data" / "noisy" / "manifest.meta.json").read_text())["status"] == "complete"
    files = {path.name: path.read_bytes() for path in study.rglob("*") if path.is_file()}
    assert {STUDY_RECORD, UNITS_LOG, "noise.log"} <= set(files)
    assert_no_secret(files, plan_text(spec, units, 1))


# --- calibrate, preview and export: URLs typed with credentials --------------------------------------------------


def _nsegaug_without_credentials(url: str, *arguments, cwd: Path | None = None):
    """``nsegaug ARGUMENTS`` in a process whose only credentials are the URLs' (the endpoint in the options)."""
    import os
    import subprocess
    import sys

    options = {"client_kwargs": {"endpoint_url": url, "region_name": "us-east-1", "aws_session_token": OPTION_TOKEN}}
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    command = [sys.executable, "-m", "nsegaug", *map(str, arguments), "--storage-options", json.dumps(options)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


@needs_moto
def test_calibrate_preview_and_export_take_credentials_from_urls_and_say_none_of_them(server, tmp_path):
    import io

    import numpy as np
    from PIL import Image

    url, fs = server
    typed = f"s3://{URL_KEY}:UrlSecret%2B123@data/"
    for path in sorted((SAMPLES / "labels").iterdir())[:4]:  # a second reader: the maps moved by 2 px
        image = Image.open(path)
        moved = Image.fromarray(np.roll(np.asarray(image), 2, axis=1), mode="P")
        moved.putpalette(image.getpalette())
        encoded = io.BytesIO()
        moved.save(encoded, format="PNG")
        for folder in ("second", "second-and-extra"):
            fs.pipe_file(f"data/{folder}/{path.name}", encoded.getvalue())
    fs.pipe_file("data/second-and-extra/extra.png", (SAMPLES / "labels" / path.name).read_bytes())
    grid = ["--alphas", 5, "--sigmas", 3, "--thresholds", 0, "--sample", 1, "--check-copies", 1, "--no-noise"]
    outputs = []
    out = tmp_path / "calibration"
    ran = _nsegaug_without_credentials(
        url, "calibrate", "--labels", typed + "second", "--reference", typed + "labels", "--out", out, *grid
    )
    assert ran.returncode == 0, ran.stderr
    assert (out / "report.md").is_file() and "s3://data/second" in (out / "report.md").read_text()
    outputs.append(ran.stdout + ran.stderr)
    pairs_missing = ["--labels", typed + "labels", "--reference", typed + "second-and-extra"]
    refused = _nsegaug_without_credentials(url, "calibrate", *pairs_missing, "--out", tmp_path / "o")
    assert refused.returncode != 0 and "s3://data/second-and-extra/extra.png: no map" in refused.stderr
    outputs.append(refused.stdout + refused.stderr)
    sheet = tmp_path / "preview.png"
    shown = _nsegaug_without_credentials(url, "preview", "--labels", typed + "labels", "-n", 2, "-k", 1, "--out", sheet)
    assert shown.returncode == 0 and sheet.is_file(), shown.stderr
    outputs.append(shown.stdout + shown.stderr)
    missing = _nsegaug_without_credentials(url, "preview", "--labels", typed + "none", "--out", tmp_path / "p.png")
    assert missing.returncode != 0 and "s3://data/none" in missing.stderr
    outputs.append(missing.stdout + missing.stderr)
    assert run_into_bucket(url, "out/for-export").exit_code == 0
    pairs = tmp_path / "pairs.csv"
    exported = _nsegaug_without_credentials(
        url, "export", "--manifest", f"s3://{URL_KEY}:UrlSecret%2B123@out/for-export", "--labels", typed + "labels",
        "--images", typed + "images", "--format", "csv", "--out", pairs,
    )  # fmt: skip
    assert exported.returncode == 0 and "s3://data/labels/" in pairs.read_text(), exported.stderr
    outputs.append(exported.stdout + exported.stderr)
    assert_no_secret(every_byte(tmp_path), "\n".join(outputs))


# --- a URL where a command writes or reads a local file: refused, or written to the bucket; never shown whole --------

RAW_SECRET = "HUNT/SECRET+9"  # typed unencoded: a URL parser takes "KEY:HUNT" for the bucket


def _no_credential_in(text: str) -> None:
    for secret in (*SECRETS, "HUNT", "SECRET+9"):
        assert secret not in text, text


@pytest.mark.parametrize("secret", ["UrlSecret%2B123", RAW_SECRET], ids=["encoded", "raw-slash"])
def test_train_study_and_evaluate_refuse_a_url_where_they_need_a_local_path_without_its_credentials(
    tmp_path, monkeypatch, secret
):
    monkeypatch.chdir(tmp_path)
    typed = f"s3://{URL_KEY}:{secret}@out/"
    labels, images = str(SAMPLES / "labels"), str(SAMPLES / "images")
    commands = {
        "--out": ["train", "--manifest", labels, "--val-labels", labels, "--val-images", images, "--out"],
        "--cache": ["train", "--manifest", labels, "--cache"],
        "--checkpoint": ["evaluate", "--labels", labels, "--images", images, "--checkpoint"],
        "--params": ["generate", "--labels", labels, "--copies", "1", "--out", str(tmp_path / "g"), "--params"],
    }
    for option, arguments in commands.items():
        result = CliRunner().invoke(main, [*arguments, typed + "run/best.pt"])
        assert result.exit_code == 2, result.output
        (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert f"Invalid value for '{option}'" in line and "not a URL" in line, line
        assert "s3://out/run/best.pt" in line or f"s3://{storage.REDACTED}@out/run/best.pt" in line, line
        _no_credential_in(result.output)
    study = CliRunner().invoke(main, ["study", "--labels", labels, "--out", typed + "study"])
    assert study.exit_code == 2 and "a study writes its folder" in study.output and "not a URL" in study.output
    _no_credential_in(study.output)
    assert list(tmp_path.iterdir()) == []  # no local folder "s3:" made for the URL


@needs_moto
def test_a_url_typed_with_a_raw_slash_in_its_secret_is_refused_without_it(server, tmp_path):
    url, _ = server
    typed = f"s3://{URL_KEY}:{RAW_SECRET}@data/"
    commands = [
        ["generate", "--labels", typed + "labels", "--copies", 1, "--out", tmp_path / "g"],
        ["calibrate", "--labels", typed + "labels", "--reference", typed + "labels", "--out", tmp_path / "c"],
        ["preview", "--labels", typed + "labels", "--out", tmp_path / "p.png"],
    ]
    for arguments in commands:
        ran = _nsegaug_without_credentials(url, *arguments)
        assert ran.returncode == 2 and "a '/' in a key or secret must be written %2F" in ran.stderr, ran.stderr
        assert "s3://data/labels" in ran.stderr
        _no_credential_in(ran.stdout + ran.stderr)


@needs_moto
def test_calibrate_writes_into_a_bucket_with_the_urls_credentials_and_records_none_of_them(server, tmp_path):
    url, fs = server
    typed = f"s3://{URL_KEY}:UrlSecret%2B123@"
    grid = ["--alphas", 5, "--sigmas", 3, "--thresholds", 0, "--sample", 1, "--check-copies", 1, "--no-noise"]
    data = ["--labels", typed + "data/labels", "--reference", typed + "data/labels"]
    ran = _nsegaug_without_credentials(url, "calibrate", *data, "--out", typed + "out/cal", *grid, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    files = written(fs, "out/cal")
    assert {"out/cal/params.toml", "out/cal/report.md", "out/cal/calibration.json"} <= set(files)
    assert "wrote" in ran.stderr and "s3://out/cal" in ran.stderr
    assert_no_secret(files, ran.stdout + ran.stderr)
    assert list(tmp_path.iterdir()) == []  # nothing written to a local folder named like the URL
    # Its own earlier calibration in the bucket is replaced; an object it did not write is refused, and kept.
    again = _nsegaug_without_credentials(url, "calibrate", *data, "--out", typed + "out/cal", *grid, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    fs.pipe_file("out/cal/notes.md", b"mine")
    refused = _nsegaug_without_credentials(url, "calibrate", *data, "--out", typed + "out/cal", *grid, cwd=tmp_path)
    assert refused.returncode == 3 and "s3://out/cal holds notes.md, which no calibration wrote" in refused.stderr
    assert fs.cat_file("out/cal/notes.md") == b"mine"
    assert_no_secret(written(fs, "out/cal"), again.stderr + refused.stderr)
