"""What a run reads, in the job engine (nsegaug._jobs.sources, nsegaug._files.label_folders): the walk of
the label folder (hidden files, links, patterns, odd names) and the sources' place against the output folder.
"""

from __future__ import annotations

import os
import shutil

from folders import files
from runs import generate


def test_walk_skips_hidden_files_follows_links_once_and_honours_pattern(dataset, tmp_path):
    labels, _ = dataset
    (labels / ".cache").mkdir()
    shutil.copy(labels / "aachen" / "aachen_0_gtFine.png", labels / ".cache" / "x.png")
    shutil.copy(labels / "aachen" / "aachen_0_gtFine.png", labels / "aachen" / ".hidden.png")
    os.symlink(labels, labels / "bremen" / "loop")  # a link back to the root: walked once, not forever
    out = tmp_path / "out"
    result = generate("--labels", labels, "--copies", 1, "--out", out, "--pattern", "*_gtFine.png")
    assert result.exit_code == 0, result.output
    assert "masks: 6," in result.stderr
    assert not (out / ".cache").exists() and not list(out.rglob(".hidden*"))


def test_labels_inside_out_are_refused(dataset, tmp_path):
    labels, _ = dataset
    result = generate("--labels", labels, "--copies", 1, "--out", labels.parent, "--overwrite")
    assert result.exit_code == 2 and "is inside the output folder" in result.stderr


def test_a_link_to_nothing_is_warned_about_and_odd_names_stay_on_one_line(labels, tmp_path):
    (labels / "gone.png").symlink_to(tmp_path / "missing.png")
    (labels / "two\nlines.png").write_text("not an image")
    result = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"warning: {labels / 'gone.png'}: a link to nothing ({tmp_path / 'missing.png'}); skipped" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {labels}/two\\nlines.png: not an image file"]
    (labels / "two\nlines.png").unlink()
    shutil.copy(labels / "scene_0001.png", labels / "odd\nname.png")
    listing = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "dry", "--dry-run")
    assert "odd\\nname.png" in listing.stdout and "odd\nname" not in listing.stdout


def test_a_link_among_the_labels_to_the_output_is_not_walked(day_labels, tmp_path):
    labels = day_labels
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 1, "--out", out, "-q").exit_code == 0
    (labels / "linked").symlink_to(out)
    (labels / "one.png").symlink_to(out / "scene_0002_nsp1.png")
    result = generate("--labels", labels, "--copies", 1, "--out", out, "-q", "--resume")
    assert result.exit_code == 0
    assert f"warning: {labels / 'linked'}: a link into the output folder {out}; skipped" in result.stderr
    assert f"warning: {labels / 'one.png'}: a link into the output folder" in result.stderr
    assert not [name for name in files(out) if "_nsp1_nsp1" in name]
    assert "skipped: 4" in result.stderr
