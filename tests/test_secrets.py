"""Credentials never end up in what a run writes, nor in the Dask task graph (issue 23, item 10).

Every run here goes into a real S3 server (moto's, on 127.0.0.1), with credentials typed in the URLs and in
``--storage-options``; then every object and file the run wrote is searched for them.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_storage import make_buckets, needs_moto, start_moto

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
