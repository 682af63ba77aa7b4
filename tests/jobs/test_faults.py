"""Faults a run meets, in the job engine (nsegaug._jobs), tried for real: full and read-only disks, refused
permissions, signals, dying parents, a first error that stops the run.

A fault is brought for real where the machine allows it (a small tmpfs, a read-only mount, a signal to a
real process) and injected (an ``OSError`` with its errno) where it does not, so that every case runs
everywhere. Each ends in one line, a record that says the run failed or was interrupted, no file the manifest
does not list, and a resume that finishes the run.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from folders import files
from folders import listed as listed_rows
from runs import DATA, GENERATE_COMMAND, generate, needs_root, status, tree

from nsegaug.cli import main
from nsegaug.manifest import MANIFEST_NAME, META_NAME


def listed(out: Path) -> set[str]:
    """What the run's record lists; a run that finished no mask (a disk full from the start) has no manifest."""
    return listed_rows(out) if (out / MANIFEST_NAME).exists() else {META_NAME}


def test_a_run_stopped_at_the_first_error_keeps_no_unlisted_file(labels, tmp_path):
    (labels / "scene_0003.png").write_text("not an image")
    out = tmp_path / "out"
    result = generate("--labels", labels, "--copies", 4, "--out", out, "--on-error", "fail", "--jobs", 2)
    assert result.exit_code == 1 and status(out) == "failed"
    assert files(out) == listed(out)  # masks in flight when it stopped wrote files: removed, as no row lists them


@needs_root
def test_a_full_disk_is_one_line_status_failed_and_resume_finishes_once_there_is_room(labels, tmp_path, mount):
    clean = tmp_path / "clean"
    assert generate("--labels", labels, "--copies", 8, "--out", clean).exit_code == 0
    small = mount("small", "120k")
    out = small / "out"
    result = generate("--labels", labels, "--copies", 8, "--out", out, "--jobs", 2)
    assert result.exit_code == 1 and "Traceback" not in result.output
    full = [line for line in result.stderr.splitlines() if "No space left on device" in line]
    # A mask that could not be written names the file it could not write, not its source.
    assert full and all(line.startswith(f"error: {out}/") or line.startswith(f"Error: {out}/") for line in full)
    assert status(out) == "failed" and files(out) == listed(out)
    subprocess.run(["mount", "-o", "remount,size=20m", small], check=True)
    resumed = generate("--labels", labels, "--copies", 8, "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert tree(out) == tree(clean) and status(out) == "complete"


@needs_root
@pytest.mark.parametrize("command", ["generate", "noise"])
def test_a_disk_full_from_the_start_names_the_lock_it_could_not_write(labels, tmp_path, mount, command):
    """The lock is the first file a run writes: on a disk already full, the line names it."""
    small = mount("full", "64k")
    filler = os.open(small / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(filler)
    out = small / "out"
    copies = ["--copies", "1"] if command == "generate" else []
    result = CliRunner().invoke(main, [command, "--labels", str(labels), "--out", str(out), *copies])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {out}/.nsegaug.lock: cannot write the lock: No space left on device"
    )


@needs_root
def test_rows_cut_by_a_full_disk_are_taken_back_so_the_manifest_ends_with_a_whole_row(tmp_path, mount):
    from nsegaug.manifest import CopyRow, append_rows, iter_rows

    small = mount("rows", "64k")
    manifest = small / MANIFEST_NAME
    row = CopyRow(
        label="scene_0000.png", image=None, output=None, copy=0, deformed=False, alpha=None, sigma=None,
        changed_fraction=0.0, suppressed_fraction=0.0, mean_displacement=0.0, max_displacement=0.0,
        height=4, width=4, sha256_label="0" * 64, sha256_output="0" * 64,
    )  # fmt: skip
    append_rows(manifest, [row])
    before = manifest.read_bytes()
    filler = small / "filler"
    with open(filler, "wb", buffering=0) as handle:  # the rest of the disk, to the last page
        with pytest.raises(OSError):
            while True:
                handle.write(b"\0" * 4096)
    # The manifest's own page has room for a few rows, not for these 100: the write stops part-way.
    rows = [dataclasses.replace(row, label=f"scene_{index:04d}.png") for index in range(100)]
    with pytest.raises(OSError) as raised:
        append_rows(manifest, rows)
    assert raised.value.errno == errno.ENOSPC
    assert manifest.read_bytes() == before  # not a torn row
    assert [read.label for read in iter_rows(manifest)] == ["scene_0000.png"]


def test_an_injected_full_disk_on_the_manifest_is_one_line_and_resume_finishes(labels, tmp_path, monkeypatch):
    import nsegaug._jobs.manifest_log

    clean, out = tmp_path / "clean", tmp_path / "out"
    assert generate("--labels", labels, "--copies", 2, "--out", clean).exit_code == 0
    real_append, calls = nsegaug._jobs.manifest_log.append_rows, []

    def append_until_full(path, rows):
        calls.append(path)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_append(path, rows)

    monkeypatch.setattr(nsegaug._jobs.manifest_log, "append_rows", append_until_full)
    result = generate("--labels", labels, "--copies", 2, "--out", out, "--jobs", 1)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {out / MANIFEST_NAME}: cannot add to the manifest: No space left on device"
    )
    assert status(out) == "failed" and files(out) == listed(out) and len(listed(out)) == 2 + 3 * 2
    monkeypatch.setattr(nsegaug._jobs.manifest_log, "append_rows", real_append)
    assert generate("--labels", labels, "--copies", 2, "--out", out, "--resume").exit_code == 0
    assert tree(out) == tree(clean)


@needs_root
def test_a_read_only_output_is_one_line(labels, tmp_path, mount):
    readonly = mount("ro", "1m", "ro")
    result = generate("--labels", labels, "--copies", 1, "--out", readonly / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == f"Error: {readonly / 'out'}: cannot create the output folder: Read-only file system"


def test_a_refused_permission_is_one_line(labels, tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    result = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == f"Error: {tmp_path / 'out'}: cannot create the output folder: Permission denied"


def start(out: Path, *extra) -> subprocess.Popen:
    """A generate run in a session of its own, returned once it has written a few masks' rows."""
    process = subprocess.Popen(
        [*GENERATE_COMMAND, *extra, "--out", str(out)], stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        manifest = out / MANIFEST_NAME
        if manifest.exists() and manifest.read_text().count("\n") >= 3 * 13:
            return process
        time.sleep(0.02)
    raise AssertionError("the run did not get going")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path, clean_run):
    out = tmp_path / "out"
    process = start(out)
    os.kill(process.pid, signal.SIGTERM)  # the parent alone, as docker stop, Kubernetes and Slurm send it
    stderr = process.communicate(timeout=60)[1].decode()
    assert process.returncode == 143, stderr
    assert "interrupted; finish with: nsegaug generate ... --out" in stderr and "Traceback" not in stderr
    assert status(out) == "interrupted" and files(out) == listed(out)
    resumed = subprocess.run([*GENERATE_COMMAND, "--out", str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out) == clean_run


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_stop_promptly_when_the_parent_dies(tmp_path, how):
    out = tmp_path / "out"
    process = start(out)
    workers = children(process.pid)
    assert len(workers) >= 2
    process.send_signal(how)
    process.communicate(timeout=60)
    deadline = time.monotonic() + 5  # a worker checks on its parent every 0.2 s
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers)
    written = files(out)
    time.sleep(1)
    assert files(out) == written  # nothing is written after the parent is gone


def _press_ctrl_c(process: subprocess.Popen, again: bool) -> str:
    """Ctrl-C to the whole process group, as a terminal sends it; ``again``: pressed again and again, as an
    impatient user does, until the process has ended. Its stderr."""
    os.killpg(process.pid, signal.SIGINT)
    while again and process.poll() is None:
        time.sleep(0.1)  # a user's pace, not a wait for a state
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            break
    return process.communicate(timeout=120)[1].decode()


def test_ctrl_c_pressed_again_and_again_still_ends_the_run_as_interrupted(tmp_path, clean_run):
    """Presses after the first, while the run ends (its workers stopping, its record written), are ignored: one
    line, the record says interrupted, no file the manifest does not list, and a resume finishes the run."""
    out = tmp_path / "out"
    process = start(out)
    stderr = _press_ctrl_c(process, again=True)
    assert process.returncode == 130 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted; finish with")
    assert status(out) == "interrupted" and files(out) == listed(out)
    resumed = subprocess.run([*GENERATE_COMMAND, "--out", str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out) == clean_run


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="needs dask.distributed")
@pytest.mark.parametrize("again", [False, True], ids=["once", "again and again"])
def test_ctrl_c_with_dask_prints_one_line_not_the_workers_tracebacks(tmp_path, again):
    out = tmp_path / "out"
    # Interrupted in a known state, not after a time: masks done (their rows written) and more in flight on the
    # workers, so the client still tracks futures when the cluster closes, whatever the machine's load.
    process = start(out, "--backend", "dask")
    stderr = _press_ctrl_c(process, again)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    # Not a line of Dask's own (its loggers write "<time> - distributed.x - LEVEL - ..."): only the run's.
    assert not [line for line in stderr.splitlines() if " - distributed." in line or " - tornado." in line], stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted; finish with") and status(out) == "interrupted"


def test_a_write_under_a_file_is_one_line_not_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(
        main, ["preview", "--labels", str(DATA / "train" / "labels"), "--n", "1", "--out", str(blocker / "p.png")]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"Error: {blocker}") and result.stderr.count("\n") == 1
