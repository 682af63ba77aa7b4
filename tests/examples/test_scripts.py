"""The example scripts run as documented."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys

from PIL import Image
from runs import ROOT

EXAMPLES = ROOT / "examples"


def test_python_api_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "python_api.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "copy 3: alpha=" in result.stdout
    assert Image.open(tmp_path / "python_api_copy.png").mode == "P"


def test_mmseg_configs_use_nsegaugs_classes_and_the_manifest_the_readme_generates():
    """The configs read as plain Python, without mmseg (tests/test_mmseg.py trains them with it)."""
    base = runpy.run_path(str(EXAMPLES / "mmseg" / "base.py"))
    assert base["custom_imports"] == {"imports": ["nsegaug.mmseg"], "allow_failed_imports": False}
    online = runpy.run_path(str(EXAMPLES / "mmseg" / "nsp_online.py"))
    steps = [step["type"] for step in online["train_dataloader"]["dataset"]["pipeline"]]
    assert steps.index("NoisySegmentPlus") == steps.index("LoadAnnotations") + 1
    manifest = runpy.run_path(str(EXAMPLES / "mmseg" / "nsp_manifest.py"))
    dataset = manifest["train_dataloader"]["dataset"]
    assert dataset["type"] == "NsegaugManifestDataset" and (dataset["prob"], dataset["seed"]) == (0.5, 0)
    assert "NoisySegmentPlus" not in [step["type"] for step in dataset["pipeline"]]
    out = re.search(r"nsegaug generate .*--out (\S+)", (EXAMPLES / "mmseg" / "README.md").read_text()).group(1)
    assert dataset["ann_file"] == f"{out}/manifest.jsonl"


def test_the_downsampling_pilot_runs(tmp_path):
    """examples/robustness/pilot/downsampled_truth.py on one example map: a row per paper pair, shares in 0..100."""
    labels = EXAMPLES / "data" / "train" / "labels"
    script = EXAMPLES / "robustness" / "pilot" / "downsampled_truth.py"
    result = subprocess.run(
        [sys.executable, str(script), str(labels), str(labels), "2", "1", "1"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 15 and "50:3" in rows
    assert all(0 <= row["changed_percent"] <= 100 and 0 <= row["suppressed_percent"] <= 100 for row in rows.values())
    assert any(row["changed_percent"] > 0 for row in rows.values())
