"""A run inside, or around, another run's output folder (issue 28, item 2).

Two real processes each time: the held run is stopped with SIGSTOP once it has written rows (a stopped
process keeps its lock), so the second run meets it mid-run whatever the machine's load; then it goes on
and must end with every file its manifest lists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from folders import files, listed, snapshot
from runs import DATA, TINY_TRAIN, needs_torch

from nsegaug._files.lock import LOCK_NAME
from nsegaug.manifest import MANIFEST_NAME, META_NAME


@pytest.fixture
def labels(tmp_path) -> Path:
    folder = tmp_path / "labels"
    folder.mkdir()
    for index in range(6):
        shutil.copy(DATA / "train" / "labels" / f"scene_{index:04d}.png", folder)
    return folder


def command(name: str, *arguments) -> list[str]:
    return [sys.executable, "-m", "nsegaug", name, *map(str, arguments)]


def nsegaug(name: str, *arguments, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(name, *arguments), capture_output=True, text=True, timeout=300, env=env)


@contextmanager
def paused_mid_run(labels: Path, out: Path, name: str = "generate"):
    """A real run into ``out``, stopped (SIGSTOP, with its workers) once its manifest has rows; yields its pid,
    then lets it go on and checks that it finished."""
    extra = ["--copies", 40] if name == "generate" else []
    process = subprocess.Popen(
        command(name, "--labels", labels, "--out", out, "--quiet", "--jobs", 1, *extra),
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        while _rows(out) < 1:  # a state, not a time: the run is under way
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGSTOP)
        yield process.pid
    finally:
        os.killpg(process.pid, signal.SIGCONT)
        stderr = process.communicate(timeout=300)[1].decode()
    assert process.returncode == 0, stderr
    assert files(out) - {META_NAME, MANIFEST_NAME} >= listed(out) - {META_NAME, MANIFEST_NAME}


def _rows(out: Path) -> int:
    try:
        return (out / MANIFEST_NAME).read_text().count("\n")
    except FileNotFoundError:
        return 0


def ends_as_listed(out: Path) -> bool:
    return files(out) == listed(out)


@pytest.mark.parametrize("inner_command", ["generate", "noise"])
@pytest.mark.parametrize("below", ["inner", "x/y/inner"])
def test_a_run_inside_a_running_runs_folder_is_refused_and_loses_nothing(labels, tmp_path, inner_command, below):
    outer, inner = tmp_path / "A", tmp_path / "A" / below
    with paused_mid_run(labels, outer) as pid:
        extra = ["--copies", 2] if inner_command == "generate" else []
        result = nsegaug(inner_command, "--labels", labels, "--out", inner, "--quiet", *extra)
        assert result.returncode == 3  # refused by the state of the folders, not a usage mistake
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"Error: {inner} is inside {outer}, which is in use by generate run on host ")
        assert f"pid {pid}," in line and "choose an output folder outside it" in line
        assert not (outer / below.split("/")[0]).exists()  # the folders it made for itself are gone again
    assert ends_as_listed(outer)  # the refused run left nothing for the outer run to take for its own


def test_a_run_around_a_running_runs_folder_is_refused_and_leaves_it_whole(labels, tmp_path):
    outer, inner = tmp_path / "A", tmp_path / "A" / "inner"
    outer.mkdir()
    with paused_mid_run(labels, inner) as pid:
        before = snapshot(inner)
        for flags in ([], ["--overwrite"], ["--resume"]):
            result = nsegaug("generate", "--labels", labels, "--out", outer, "--copies", 2, "--quiet", *flags)
            assert result.returncode == 3
            assert result.stderr.startswith(
                f"Error: {outer} contains {inner}, which is in use by generate run on host "
            )
            assert f"pid {pid}," in result.stderr
            assert snapshot(inner) == before
    assert ends_as_listed(inner)


def test_a_finished_run_inside_is_named_and_never_taken_for_the_outer_runs(labels, tmp_path):
    outer = tmp_path / "A"
    assert nsegaug("generate", "--labels", labels, "--out", outer, "--copies", 2).returncode == 0
    # The inner run had its folder made in the outer one after the outer ended (or by a version before this rule):
    # its copies are named as the outer run's template names its own.
    assert nsegaug("generate", "--labels", labels, "--out", outer / "inner", "--copies", 2).returncode == 0
    before = snapshot(outer / "inner")
    for flags in (["--overwrite"], ["--resume"]):
        result = nsegaug("generate", "--labels", labels, "--out", outer, "--copies", 2, *flags)
        assert result.returncode == 3
        assert f"holds the folder of another nsegaug run: {outer / 'inner'};" in result.stderr
        assert snapshot(outer / "inner") == before


def test_the_sweep_never_removes_a_file_inside_another_runs_folder(labels, tmp_path):
    from nsegaug._jobs.folder import sweep
    from nsegaug.generate import GenerateConfig, GenerateJob, generate_dataset

    outer = tmp_path / "A"
    config = GenerateConfig(labels=labels, out=outer, copies=2)
    generate_dataset(config, log=lambda message: None)
    # Another run's whole folder, as a run nested there by a version before this rule would leave it.
    generate_dataset(GenerateConfig(labels=labels, out=tmp_path / "B", copies=2), log=lambda message: None)
    shutil.copytree(tmp_path / "B", outer / "inner")
    before = snapshot(outer / "inner")
    sweep(GenerateJob(config), outer / MANIFEST_NAME)
    assert snapshot(outer / "inner") == before and ends_as_listed(outer / "inner")


def test_files_a_user_puts_in_a_running_runs_folder_are_not_swept_for_their_names(labels, tmp_path):
    """Copies of another run's masks, put in a sub-folder while a run is under way: named as the run names its
    copies, but the run has no label there, so they are not its to remove, at its end or on an overwrite."""
    elsewhere = tmp_path / "elsewhere"
    assert nsegaug("generate", "--labels", labels, "--copies", 1, "--out", elsewhere).returncode == 0
    kept = tmp_path / "A" / "plain"
    with paused_mid_run(labels, tmp_path / "A"):
        shutil.copytree(elsewhere, kept, ignore=shutil.ignore_patterns("manifest*"))
        before = snapshot(kept)
    assert len(before) == 6 and snapshot(kept) == before
    result = nsegaug("generate", "--labels", labels, "--copies", 40, "--out", tmp_path / "A", "--overwrite")
    assert result.returncode == 3 and "plain/scene_0000_nsp1.png" in result.stderr, result.stderr
    assert snapshot(kept) == before


@needs_torch
def test_a_training_run_folder_inside_a_running_runs_folder_is_refused(labels, tmp_path):
    manifest = tmp_path / "gen"
    images = DATA / "train" / "images"
    assert nsegaug("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", manifest).returncode == 0
    val = DATA / "val"
    with paused_mid_run(labels, tmp_path / "A") as pid:
        run = tmp_path / "A" / "run"
        arguments = ["--manifest", manifest, "--val-labels", val / "labels", "--val-images", val / "images"]
        result = nsegaug("train", *arguments, *TINY_TRAIN, "--iters", 1, "--out", run)
        assert result.returncode == 3 and f"{run} is inside {tmp_path / 'A'}, which is in use by" in result.stderr
        assert f"pid {pid}," in result.stderr and not run.exists()


HOLDER = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from nsegaug._files.lock import child_environment, hold

    folder, *command = sys.argv[1:]
    with hold(folder, "study") as identity:
        with_it = subprocess.run(command[:-1], env={**os.environ, **child_environment(identity)}, capture_output=True)
        without = subprocess.run(command[:-1], capture_output=True)
        # The delegation names this folder only: a child told so may not nest in another held folder.
        elsewhere = [part.replace(folder, command[-1]) for part in command[:-1]]
        other = subprocess.run(elsewhere, env={**os.environ, **child_environment(identity)}, capture_output=True)
    print(json.dumps([[run.returncode, run.stderr.decode()] for run in (with_it, without, other)]))
    """
)


def test_a_holder_lets_the_processes_it_starts_nest_in_its_folder_and_no_one_else(labels, tmp_path):
    study, other = tmp_path / "study", tmp_path / "other"
    study.mkdir()
    with paused_mid_run(labels, other):
        child = command("generate", "--labels", labels, "--out", study / "data" / "copies", "--copies", 2, "-q")
        script = subprocess.run(
            [sys.executable, "-c", HOLDER, str(study), *child, str(other)], capture_output=True, text=True, timeout=300
        )
    assert script.returncode == 0, script.stderr
    (with_it, with_it_err), (without, without_err), (elsewhere, elsewhere_err) = json.loads(script.stdout)
    assert with_it == 0, with_it_err
    assert ends_as_listed(study / "data" / "copies")
    assert without == 3 and f"is inside {study}, which is in use by study run" in without_err
    assert elsewhere == 3 and f"is inside {other}, which is in use by generate run" in elsewhere_err
    assert not (study / LOCK_NAME).exists()


# --- in a bucket: the lock objects of the prefixes above, and those the listing finds below ---


@pytest.fixture(scope="module")
def bucket():
    pytest.importorskip("moto.server", reason="needs moto[server]")
    from test_storage import make_buckets, start_moto

    from nsegaug import storage

    process, url = start_moto()
    make_buckets(url, "testing", "testing", "out")
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"},
    }
    yield options
    storage.configure(None)
    process.terminate()
    process.wait(timeout=30)


def generate_into(bucket_options: dict, labels: Path, out: str):
    from click.testing import CliRunner

    from nsegaug.cli import main

    arguments = ["generate", "--labels", str(labels), "--out", out, "--copies", "1", "-q"]
    return CliRunner().invoke(main, [*arguments, "--storage-options", json.dumps(bucket_options)])


@pytest.mark.parametrize(("held", "out", "said"), [("A", "A/inner", "is inside"), ("B/inner", "B", "contains")])
def test_in_a_bucket_a_run_nested_with_a_held_prefix_is_refused(bucket, labels, held, out, said):
    from nsegaug import storage
    from nsegaug._files.lock import hold

    storage.configure(bucket)
    with hold(f"s3://out/{held}", "generate") as holder:
        result = generate_into(bucket, labels, f"s3://out/{out}")
        assert result.exit_code == 3
        assert f"s3://out/{out} {said} s3://out/{held}, which is in use by generate run" in result.stderr
        assert f"pid {holder['pid']}," in result.stderr
        storage.configure(bucket)
        fs, _ = storage.filesystem("s3://out")
        assert sorted(fs.find(f"out/{out}", refresh=True)) == (
            [] if said == "is inside" else [f"out/{held}/{LOCK_NAME}"]
        )
    assert generate_into(bucket, labels, f"s3://out/{out}").exit_code == 0  # once it is let go
