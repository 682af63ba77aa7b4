"""Files nsegaug keeps for itself in an output folder (the lock, temporary files, records) are never written
through a link (issue 28, item 1).

Each test plants a real link under such a name, pointing at a file outside the output folder, and checks
that the file outside is byte for byte as before and that the run says which link is in the way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from runs import DATA, TINY_TRAIN, needs_torch

from nsegaug._files.lock import LOCK_NAME
from nsegaug.errors import StorageError
from nsegaug.manifest import META_NAME
from nsegaug.storage import atomic_writer, write_bytes_atomic

PRECIOUS = b"someone's file outside the output folder\n"


def nsegaug(*arguments) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nsegaug", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "elsewhere" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


@pytest.fixture
def labels(tmp_path) -> Path:
    folder = tmp_path / "labels"
    folder.mkdir()
    for index in range(3):
        shutil.copy(DATA / "train" / "labels" / f"scene_{index:04d}.png", folder)
    return folder


def plant(folder: Path, name: str, target: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / name
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("command", ["generate", "noise"])
def test_a_link_named_as_the_lock_is_refused_and_its_target_untouched(labels, tmp_path, victim, command):
    out = tmp_path / "out"
    link = plant(out, LOCK_NAME, victim)
    extra = ["--copies", 1] if command == "generate" else []
    result = nsegaug(command, "--labels", labels, "--out", out, "--quiet", *extra)
    assert result.returncode == 3, result.stderr  # the folder cannot be taken: refused before anything is written
    assert victim.read_bytes() == PRECIOUS
    assert result.stderr.strip().splitlines() == [
        f"Error: {link}: a link (to {victim}) where nsegaug keeps a file of its own; it never writes through a "
        "link: remove the link"
    ]
    assert link.is_symlink() and sorted(path.name for path in out.iterdir()) == [LOCK_NAME]  # nothing written


@needs_torch
def test_train_refuses_a_run_folder_whose_lock_name_is_a_link_and_leaves_its_target(labels, tmp_path, victim):
    images = DATA / "train" / "images"
    assert (
        nsegaug("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", tmp_path / "gen").returncode
        == 0
    )
    run = tmp_path / "run"
    link = plant(run, LOCK_NAME, victim)
    val = DATA / "val"
    arguments = ["--manifest", tmp_path / "gen", "--val-labels", val / "labels", "--val-images", val / "images"]
    for extra in ([], ["--overwrite"]):
        result = nsegaug("train", *arguments, *TINY_TRAIN, "--iters", 1, "--out", run, *extra)
        assert result.returncode == 3 and f"{link}: a link (to {victim})" in result.stderr, result.stderr
        assert victim.read_bytes() == PRECIOUS
        assert sorted(path.name for path in run.iterdir()) == [LOCK_NAME]


def test_a_link_at_the_temporary_name_of_an_atomic_write_is_an_error_naming_it(tmp_path, victim):
    target = tmp_path / "out" / META_NAME
    temporary = f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp"
    link = plant(target.parent, temporary, victim)
    with pytest.raises(StorageError, match="a link") as raised:
        write_bytes_atomic(target, b"the record")
    assert raised.value.path == str(link)
    assert victim.read_bytes() == PRECIOUS and not target.exists()


def test_a_left_over_temporary_file_of_the_same_name_is_replaced(tmp_path):
    target = tmp_path / "out" / META_NAME
    target.parent.mkdir()
    (target.parent / f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp").write_bytes(b"a killed run's")
    write_bytes_atomic(target, b"the record")
    assert target.read_bytes() == b"the record" and [path.name for path in target.parent.iterdir()] == [META_NAME]


def test_a_record_whose_name_is_a_link_is_not_replaced_silently(tmp_path, victim):
    link = plant(tmp_path / "out", META_NAME, victim)
    with pytest.raises(StorageError, match="a link") as raised:
        write_bytes_atomic(link, b"the record")
    assert raised.value.path == str(link) and link.is_symlink() and victim.read_bytes() == PRECIOUS


def test_a_file_the_user_named_may_be_a_link_that_is_replaced_as_before(tmp_path, victim):
    link = plant(tmp_path, "metrics.json", victim)
    with atomic_writer(link, own=False) as stream:
        stream.write(b"{}")
    assert not link.is_symlink() and link.read_bytes() == b"{}" and victim.read_bytes() == PRECIOUS


def test_rows_are_never_appended_through_a_link(tmp_path, victim):
    from nsegaug.manifest import MANIFEST_NAME, CopyRow
    from nsegaug.manifest.writing import append_rows

    link = plant(tmp_path / "out", MANIFEST_NAME, victim)
    row = CopyRow("a.png", None, None, 0, False, None, None, 0.0, 0.0, 0.0, 0.0, 4, 4, "0" * 64, "0" * 64)
    with pytest.raises(StorageError, match="a link") as raised:
        append_rows(link, [row])
    assert raised.value.path == str(link) and victim.read_bytes() == PRECIOUS


@needs_torch
def test_train_logs_are_never_appended_through_a_link(tmp_path, victim):
    from nsegaug.train.runlog import LOSS_LINES, RunLog

    link = plant(tmp_path / "run", LOSS_LINES, victim)
    run_log = RunLog(tmp_path / "run", print, main=True)
    run_log.start_bar(10, 0, show=False)
    with pytest.raises(StorageError, match="a link") as raised:
        run_log.loss_point({"step": 1, "loss": 0.5}, images_per_s=1.0)
    assert raised.value.path == str(link) and victim.read_bytes() == PRECIOUS
