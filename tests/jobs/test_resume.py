"""Resume, in the job engine (nsegaug._jobs): what a run redoes, checks and refuses when it is told to go on.

Every job kind (generate and noise) resumes through the same engine; where the behaviour is the same for
both, a test runs for both. Runs are damaged for real: files deleted and overwritten, manifest lines torn as
a killed append leaves them, real processes killed with SIGKILL and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from folders import files, listed, snapshot
from PIL import Image
from runs import DATA, GENERATE_COMMAND, cli, edit_first_output, generate, rows, tree

from nsegaug.manifest import MANIFEST_NAME, META_NAME
from nsegaug.storage import sha256_file

# What each job kind is given, and the words of its summary for the files it wrote.
KINDS = {"generate": (["--copies", 3], "copies written", 3), "noise": ([], "noisy maps written", 1)}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_resume_repairs_missing_damaged_and_torn_state(kind, dataset, tmp_path):
    labels, _ = dataset
    options, written, per_mask = KINDS[kind]
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert cli(kind, "--labels", labels, *options, "--out", clean).exit_code == 0
    assert cli(kind, "--labels", labels, *options, "--out", out).exit_code == 0
    outputs = [row["output"] for row in rows(out) if row["output"]]
    (out / outputs[0]).unlink()  # a lost output (the first mask's)
    (out / outputs[per_mask]).write_bytes(b"\x89PNG half")  # a damaged one (the second mask's)
    kept = out / outputs[2 * per_mask]
    (kept.parent / f".{kept.name}.123.tmp").write_bytes(b"partial")  # a temporary file a killed write left
    manifest = (out / MANIFEST_NAME).read_text().splitlines(keepends=True)
    (out / MANIFEST_NAME).write_text("".join(manifest[:-1]) + manifest[-1][:40])  # the last mask's, killed mid-append
    result = cli(kind, "--labels", labels, *options, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    # The three masks hit are redone; the three others are verified and skipped.
    assert f"masks: 3, {written}: {3 * per_mask}, skipped: 3, failed: 0" in result.stderr
    assert tree(out) == tree(clean)
    again = cli(kind, "--labels", labels, *options, "--out", out, "--resume")
    assert f"masks: 0, {written}: 0, skipped: 6" in again.stderr


def test_resume_with_other_parameters_shows_the_difference(dataset, tmp_path):
    labels, _ = dataset
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 2, "--out", out, "--seed", 1).exit_code == 0
    result = generate("--labels", labels, "--copies", 3, "--out", out, "--seed", 2, "--resume")
    assert result.exit_code == 3 and "Usage:" not in result.stderr
    assert "copies: 2 -> 3" in result.stderr and "seed: 1 -> 2" in result.stderr


def test_a_run_recorded_before_volumes_resumes_as_it_ran(dataset, tmp_path):
    """0.1.0 (0f2d1df) recorded no units and no volume engine: its 2D run is a run in voxels, and resumes."""
    labels, _ = dataset
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert generate("--labels", labels, "--copies", 2, "--out", clean).exit_code == 0
    assert generate("--labels", labels, "--copies", 2, "--out", out).exit_code == 0
    meta = json.loads((out / META_NAME).read_text())
    del meta["parameters"]["units"], meta["parameters"]["volume_engine"]  # as 0.1.0 wrote its record
    (out / META_NAME).write_text(json.dumps(meta))
    (out / "aachen" / "aachen_0_gtFine_nsp2.png").unlink()
    result = generate("--labels", labels, "--copies", 2, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "masks: 1, copies written: 2, skipped: 5" in result.stderr
    assert tree(out) == tree(clean)
    meta["parameters"]["units"] = "mm"  # a parameter the record does name is still compared
    (out / META_NAME).write_text(json.dumps(meta))
    refused = generate("--labels", labels, "--copies", 2, "--out", out, "--resume")
    assert refused.exit_code != 0 and "units: 'mm' -> 'voxels'" in refused.stderr


@pytest.mark.parametrize(
    ("how", "exit_code", "status"),
    [(signal.SIGKILL, -signal.SIGKILL, "running"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGKILL", "Ctrl-C"],
)
def test_killed_run_leaves_no_partial_image_and_resume_finishes_it(tmp_path, clean_run, how, exit_code, status):
    out = tmp_path / "out"
    # A session of its own, so that SIGINT goes to the whole process group, workers included, as Ctrl-C does.
    process = subprocess.Popen([*GENERATE_COMMAND, "--out", str(out)], stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        manifest = out / MANIFEST_NAME
        if manifest.exists() and manifest.read_text().count("\n") >= 5 * 13:
            break
        time.sleep(0.02)
    os.killpg(process.pid, how)
    stderr = process.communicate()[1].decode()
    assert process.returncode == exit_code, stderr
    written = list(out.glob("*.png"))
    assert 0 < len(written) < 60 * 12  # stopped in the middle
    for path in written:  # every visible output is a complete image
        Image.open(path).load()
    assert json.loads((out / META_NAME).read_text())["status"] == status
    if how == signal.SIGINT:
        assert "interrupted; finish with: nsegaug generate ... --resume" in stderr.replace(f"--out {out} ", "")
        assert not list(out.glob(".*.tmp"))

    resumed = subprocess.run([*GENERATE_COMMAND, "--out", str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(out.glob(".*.tmp"))
    assert tree(out) == clean_run
    meta = json.loads((out / META_NAME).read_text())
    assert meta["status"] == "complete" and meta["counts"]["masks_skipped"] >= 5


def test_resume_redoes_the_copies_of_a_source_edited_since(dataset, tmp_path):
    labels, _ = dataset
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 2, "--out", out).exit_code == 0
    edited = labels / "aachen" / "aachen_0_gtFine.png"
    source = Image.open(edited)
    changed = np.asarray(source).copy()
    changed[:40, :40] = 13
    image = Image.fromarray(changed)
    image.putpalette(source.getpalette())
    image.save(edited)
    result = generate("--labels", labels, "--copies", 2, "--out", out, "--resume")
    assert result.exit_code == 0
    assert f"warning: {edited}: changed since its outputs were made" in result.stderr
    assert "masks: 1, copies written: 2, skipped: 5" in result.stderr
    assert {row["sha256_label"] for row in rows(out) if row["label"] == "aachen/aachen_0_gtFine.png"} == {
        sha256_file(edited)
    }


def test_a_generate_manifest_is_not_resumed_as_noise(labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 1, "--out", out).exit_code == 0
    result = cli("noise", "--labels", labels, "--out", out, "--resume")
    assert result.exit_code == 3 and "the record of a generate run, not of noise" in result.stderr
    assert os.path.exists(out / MANIFEST_NAME)


def test_a_corrupt_manifest_on_resume_is_one_line(labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 1, "--out", out).exit_code == 0
    lines = (out / MANIFEST_NAME).read_text().splitlines(keepends=True)
    (out / MANIFEST_NAME).write_text(lines[0] + "{garbage\n" + "".join(lines[1:]))
    result = generate("--labels", labels, "--copies", 1, "--out", out, "--resume")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.stderr.strip()
        == f"Error: {out / MANIFEST_NAME}:2: not a JSON object (Expecting property name enclosed in double quotes)"
    )


def test_resume_counts_the_time_its_checks_take(labels, tmp_path, monkeypatch):
    import nsegaug.storage

    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 2, "--out", out).exit_code == 0
    real_sha = nsegaug.storage.sha256

    def slow_sha(path):
        time.sleep(0.05)  # each checksum of resume's checks takes at least this long
        return real_sha(path)

    monkeypatch.setattr(nsegaug.storage, "sha256", slow_sha)
    result = generate("--labels", labels, "--copies", 2, "--out", out, "--resume", "--jobs", 1)
    elapsed = float(result.stderr.split("elapsed: ")[1].split("s,")[0])
    assert "masks: 0, copies written: 0, skipped: 8" in result.stderr
    # 8 sources and 16 copies checked, 0.05 s each at least (the summary shows tenths of a second).
    assert json.loads((out / META_NAME).read_text())["elapsed_s"] >= 8 * 3 * 0.05
    assert elapsed >= 8 * 3 * 0.05 - 0.05


def test_a_last_row_without_its_newline_is_not_glued_to_the_next(labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 1, "--out", out).exit_code == 0
    clean = (out / MANIFEST_NAME).read_bytes()
    lines = clean.splitlines(keepends=True)
    # The first mask's rows moved to the end, the very last newline lost (a write cut short).
    (out / MANIFEST_NAME).write_bytes(b"".join(lines[2:] + lines[:2]).rstrip(b"\n"))
    meta = json.loads((out / META_NAME).read_text())
    (out / META_NAME).write_text(json.dumps({**meta, "status": "interrupted"}))
    result = generate("--labels", labels, "--copies", 1, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert (out / MANIFEST_NAME).read_bytes() == clean


def test_resume_refuses_a_row_naming_a_file_outside_the_output(day_labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", day_labels, "--copies", 1, "--out", out, "-q").exit_code == 0
    edit_first_output(out, "../labels/scene_0003.png")
    before = snapshot(tmp_path)
    result = generate("--labels", day_labels, "--copies", 1, "--out", out, "-q", "--resume")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: {out / MANIFEST_NAME}: the row of day/scene_0000")
    assert snapshot(tmp_path) == before  # nothing changed anywhere, the output folder included


def test_resume_without_the_runs_record_is_refused(day_labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", day_labels, "--copies", 1, "--out", out, "-q").exit_code == 0
    (out / META_NAME).unlink()
    before = snapshot(out)
    result = generate("--labels", day_labels, "--copies", 1, "--out", out, "-q", "--resume", "--seed", 5)
    assert result.exit_code == 3 and "Usage:" not in result.stderr
    assert f"cannot resume: {out / META_NAME} is missing" in result.stderr
    assert snapshot(out) == before


def test_a_run_in_which_every_mask_failed_has_a_manifest_and_resumes_once_the_files_are_mended(tmp_path):
    labels, out = tmp_path / "labels", tmp_path / "out"
    labels.mkdir()
    for name in ("a.png", "b.png"):
        (labels / name).write_bytes(b"not a png")
    assert generate("--labels", labels, "--copies", 1, "--out", out, "-q").exit_code == 1
    assert (out / MANIFEST_NAME).read_bytes() == b"" and files(out) == {MANIFEST_NAME, META_NAME}
    for name in ("a.png", "b.png"):
        shutil.copy(DATA / "train" / "labels" / "scene_0000.png", labels / name)
    assert generate("--labels", labels, "--copies", 1, "--out", out, "-q", "--resume").exit_code == 0
    assert files(out) == listed(out) == {MANIFEST_NAME, META_NAME, "a_nsp1.png", "b_nsp1.png"}
