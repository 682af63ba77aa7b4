"""The manifest file: sorted, deduplicated rewrites, torn lines from killed runs, clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from runs import generate

from nsegaug.cli import main
from nsegaug.errors import ManifestError
from nsegaug.manifest import (
    ROW_KEYS,
    CopyRow,
    RunMeta,
    append_rows,
    iter_mask_groups,
    iter_rows,
    open_manifest,
    parameter_differences,
    read_meta,
    sort_manifest,
    write_meta,
)


def row(label: str, copy: int, **changes) -> CopyRow:
    values = dict.fromkeys(ROW_KEYS, 0.0)
    values.update(image=None, deformed=False, alpha=None, sigma=None, height=4, width=6)
    values.update(sha256_label="s", sha256_output="s")
    values.update(label=label, copy=copy, output=f"{label}.{copy}" if copy else None, **changes)
    return CopyRow(**values)


def as_json(row: CopyRow) -> str:
    return row.to_json()


def labels_and_copies(path) -> list[tuple[str, int]]:
    return [(r.label, r.copy) for r in iter_rows(path)]


def test_sort_orders_by_label_and_copy_and_a_later_row_wins(tmp_path):
    path = tmp_path / "manifest.jsonl"
    append_rows(path, [row("b.png", 0), row("b.png", 1, sha256_output="old")])
    append_rows(path, [row("a.png", 0), row("a.png", 1)])
    append_rows(path, [row("b.png", 0), row("b.png", 1, sha256_output="new")])  # b redone on resume
    sort_manifest(path)
    assert labels_and_copies(path) == [("a.png", 0), ("a.png", 1), ("b.png", 0), ("b.png", 1)]
    assert [r.sha256_output for r in iter_rows(path)][-1] == "new"
    lines = path.read_text().splitlines()
    assert all(json.loads(line) == dict(sorted(json.loads(line).items())) for line in lines)  # keys sorted


def test_torn_last_line_is_dropped_where_tolerated_and_an_error_elsewhere(tmp_path):
    path = tmp_path / "manifest.jsonl"
    append_rows(path, [row("a.png", 0), row("a.png", 1)])
    with open(path, "a") as handle:
        handle.write(as_json(row("b.png", 0))[:25])
    with pytest.raises(ManifestError, match=r"manifest.jsonl:3: not a JSON object"):
        list(iter_rows(path))
    assert [(r.label, r.copy) for r in iter_rows(path, tolerate_torn_tail=True)] == [("a.png", 0), ("a.png", 1)]
    sort_manifest(path)
    assert path.read_text().endswith("}\n") and len(path.read_text().splitlines()) == 2


def test_sort_keeps_only_the_given_labels(tmp_path):
    path = tmp_path / "manifest.jsonl"
    append_rows(path, [row("a.png", 0), row("b.png", 0), row("c.png", 0)])
    sort_manifest(path, keep={"a.png", "c.png"})
    assert labels_and_copies(path) == [("a.png", 0), ("c.png", 0)]


def test_a_broken_line_in_the_middle_names_the_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(as_json(row("a.png", 0)) + "\n{oops\n" + as_json(row("b.png", 0)) + "\n")
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: not a JSON object"):
        list(iter_rows(path, tolerate_torn_tail=True))
    path.write_text('{"label": "a.png"}\n')
    with pytest.raises(ManifestError, match=r":1: not a manifest row \(missing alpha, changed_fraction"):
        list(iter_rows(path))


def test_mask_groups_are_runs_of_one_label(tmp_path):
    path = tmp_path / "manifest.jsonl"
    append_rows(path, [row("a.png", 0), row("a.png", 1)])
    append_rows(path, [row("b.png", 0)])
    append_rows(path, [row("a.png", 0), row("a.png", 1), row("a.png", 2)])
    groups = [(label, sorted(copies)) for label, copies in iter_mask_groups(path)]
    assert groups == [("a.png", [0, 1]), ("b.png", [0]), ("a.png", [0, 1, 2])]


def test_meta_round_trip_and_differences(tmp_path):
    path = tmp_path / "manifest.meta.json"
    write_meta(path, RunMeta(parameters={"seed": 1, "copies": 5}, status="complete"))
    meta = read_meta(path)
    assert meta.parameters == {"seed": 1, "copies": 5} and meta.complete and meta.tool == "nsegaug"
    assert parameter_differences({"seed": 1, "copies": 5}, {"seed": 2, "copies": 5, "prob": 1.0}) == [
        "prob: None -> 1.0",
        "seed: 1 -> 2",
    ]
    path.write_text("[]")
    with pytest.raises(ManifestError, match="not an nsegaug manifest metadata file"):
        read_meta(path)


def test_a_binary_file_is_named_not_a_text_file(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ManifestError, match=r"manifest.jsonl: not a text file"):
        list(iter_rows(path))


def test_rows_round_trip_and_are_checked(tmp_path):
    original = row("a/b.png", 2, deformed=True, alpha=15.0, sigma=3.0, changed_fraction=0.25)
    assert CopyRow.from_dict(json.loads(original.to_json()), "here") == original
    values = json.loads(original.to_json())
    with pytest.raises(ManifestError, match="here: deformed copy without alpha and sigma"):
        CopyRow.from_dict({**values, "alpha": None}, "here")
    with pytest.raises(ManifestError, match=r"here: not a manifest row \(height: not a number\)"):
        CopyRow.from_dict({**values, "height": "4"}, "here")
    with pytest.raises(ManifestError, match="keys colour are not in manifest schema"):
        CopyRow.from_dict({**values, "colour": 1}, "here")


def test_open_checks_the_tool_and_schema_once_and_rows_against_the_run(tmp_path):
    path = tmp_path / "manifest.jsonl"
    append_rows(path, [row("a.png", 0), row("a.png", 3, deformed=True, alpha=1.0, sigma=3.0)])
    write_meta(tmp_path / "manifest.meta.json", RunMeta(parameters={"copies": 2}, schema=99))
    with pytest.raises(ManifestError, match="manifest schema 99"):
        open_manifest(tmp_path)
    write_meta(tmp_path / "manifest.meta.json", RunMeta(parameters={"copies": 2, "alpha_sigma": [[1, 3]]}))
    manifest = open_manifest(tmp_path)
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: copy 3 but the run .* made 2"):
        list(manifest.rows())


def test_a_manifest_moved_alone_still_finds_its_data(labels, tmp_path):
    out = tmp_path / "out"
    assert generate("--labels", labels, "--copies", 1, "--out", out).exit_code == 0
    shutil.copytree(out, tmp_path / "far" / "away" / "out")
    shown = CliRunner().invoke(
        main, ["preview", "--manifest", str(tmp_path / "far" / "away" / "out"), "--out", str(tmp_path / "p.png")]
    )
    assert shown.exit_code == 0, shown.output
