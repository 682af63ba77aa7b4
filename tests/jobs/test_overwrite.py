"""--overwrite, in the job engine (nsegaug._jobs): a run replaces what nsegaug wrote in its folder, and only that.

Whatever the old records name (files outside the folder, another command's run, a damaged manifest) and
whatever the folder holds (links to elsewhere, someone's own files), nothing but nsegaug's own earlier outputs
is ever deleted, and a folder nsegaug did not write is never taken for a run.
"""

from __future__ import annotations

import json
import shutil

import pytest
from folders import files, listed, snapshot
from runs import edit_first_output, generate, noise, tree

from nsegaug.manifest import MANIFEST_NAME, META_NAME


def test_overwrite_leaves_only_the_new_runs_files(labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 3, "--out", out).exit_code == 0
    assert generate("--labels", labels, "--copies", 1, "--out", out, "--overwrite").exit_code == 0
    assert files(out) == listed(out)
    assert not [name for name in files(out) if "_nsp2" in name or "_nsp3" in name]
    # Another name template: the earlier run's files go too, being listed in its manifest.
    result = generate(
        "--labels", labels, "--copies", 2, "--out", out, "--overwrite", "--name-template", "{stem}-v{copy}{ext}"
    )
    assert result.exit_code == 0 and files(out) == listed(out) and not [n for n in files(out) if "_nsp" in n]


def test_overwrite_replaces_a_run_of_the_other_command(labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 2, "--out", out).exit_code == 0
    replaced = noise("--labels", labels, "--out", out, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert files(out) == listed(out) and not [name for name in files(out) if "_nsp" in name]
    assert json.loads((out / META_NAME).read_text())["kind"] == "noise"
    back = generate("--labels", labels, "--copies", 1, "--out", out, "--overwrite")
    assert back.exit_code == 0, back.output
    assert files(out) == listed(out) and len(files(out)) == 8 + 2  # 8 copies, the manifest and its record


def test_overwrite_starts_again_over_a_damaged_manifest_with_a_warning(labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 2, "--out", out).exit_code == 0
    (out / MANIFEST_NAME).write_text("{garbage\n" + (out / MANIFEST_NAME).read_text())
    result = generate("--labels", labels, "--copies", 1, "--out", out, "--overwrite")
    assert result.exit_code == 0 and "warning:" in result.stderr and "not a JSON object" in result.stderr
    assert files(out) == listed(out) and not [name for name in files(out) if "_nsp2" in name]
    (out / META_NAME).write_text("not json")
    again = generate("--labels", labels, "--copies", 1, "--out", out, "--overwrite")
    assert again.exit_code == 0 and f"{out / META_NAME}: not JSON" in again.stderr
    assert files(out) == listed(out)


def test_a_folder_without_nsegaugs_record_is_never_taken_for_a_run(labels, tmp_path):
    # A copy of the user's labels, given as --out: every name matches a label, but no run wrote it.
    out = tmp_path / "my-copy"
    shutil.copytree(labels, out)
    before = tree(out)
    result = noise("--labels", labels, "--out", out, "--overwrite")
    assert result.exit_code == 3 and "holds files no nsegaug run wrote: scene_0000.png" in result.stderr
    assert tree(out) == before


@pytest.mark.parametrize("pointing", ["relative", "absolute"])
def test_overwrite_never_deletes_a_file_a_row_names_outside_the_output(day_labels, tmp_path, pointing):
    labels = day_labels
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 1, "--out", out, "-q").exit_code == 0
    victim = labels / "scene_0003.png"
    edit_first_output(out, "../labels/scene_0003.png" if pointing == "relative" else str(victim))
    before = snapshot(labels)
    result = generate("--labels", labels, "--copies", 1, "--out", out, "-q", "--overwrite")
    assert result.exit_code == 0
    assert snapshot(labels) == before
    assert "the row of day/scene_0000.png (1) names" in result.stderr
    assert "not inside the output folder" in result.stderr
    assert files(out) == listed(out)


def test_overwrite_through_a_subfolder_replaced_by_a_link_deletes_nothing_outside(day_labels, tmp_path):
    labels = day_labels
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert generate("--labels", labels, "--copies", 1, "--out", out, "-q").exit_code == 0
    shutil.copytree(out / "day", elsewhere)  # someone's files, named as the outputs are
    shutil.rmtree(out / "day")
    (out / "day").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    result = generate("--labels", labels, "--copies", 1, "--out", out, "-q", "--overwrite")
    assert result.exit_code == 1  # the copies of day/ cannot be written there: their masks failed
    assert snapshot(elsewhere) == before
    assert f"{out / 'day' / 'scene_0000_nsp1.png'}: resolves outside the output folder" in result.stderr


def test_out_inside_the_sources_and_non_empty_out_are_refused(dataset, tmp_path):
    labels, images = dataset
    inside = generate("--labels", labels, "--copies", 1, "--out", labels / "aug")
    assert inside.exit_code == 2 and "is inside" in inside.stderr and not (labels / "aug").exists()
    inside_images = generate("--labels", labels, "--images", images, "--copies", 1, "--out", images / "x")
    assert inside_images.exit_code == 2 and "is inside" in inside_images.stderr
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused = generate("--labels", labels, "--copies", 1, "--out", out)
    # A refusal by the folder's state, not a usage mistake: one line, exit code 3, no "Usage:" header.
    assert refused.exit_code == 3 and "--resume" in refused.stderr and "--overwrite" in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"Error: {out} is not empty; pass --resume to continue that run, or --overwrite"
    ]
    # --overwrite replaces what nsegaug wrote, never someone's files: keep.txt is named, and kept.
    kept = generate("--labels", labels, "--copies", 1, "--out", out, "--overwrite")
    assert kept.exit_code == 3 and "holds files no nsegaug run wrote: keep.txt" in kept.stderr
    assert "move them away" in kept.stderr and "pass --resume" not in kept.stderr
    assert (out / "keep.txt").read_text() == "mine" and sorted(out.iterdir()) == [out / "keep.txt"]
    (out / "keep.txt").unlink()
    assert generate("--labels", labels, "--copies", 1, "--out", out, "--overwrite").exit_code == 0
