"""The example scripts run as documented."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from nsegaug.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_python_api_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "python_api.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "copy 3: alpha=" in result.stdout
    assert Image.open(tmp_path / "python_api_copy.png").mode == "P"


def test_mmseg_example_lists_the_generated_pairs(tmp_path):
    out = tmp_path / "out"
    data = EXAMPLES / "data" / "train"
    args = ["generate", "--labels", data / "labels", "--images", data / "images", "--copies", 2, "--out", out]
    args += ["--pattern", "scene_000[0-2].png"]
    assert CliRunner().invoke(main, list(map(str, args))).exit_code == 0
    spec = importlib.util.spec_from_file_location("mmseg_pipeline", EXAMPLES / "mmseg_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pairs = module.manifest_pairs(out / "manifest.jsonl")
    assert len(pairs) == 3 * 3
    assert pairs[1] == {
        "img_path": str(data / "images" / "scene_0000.jpg"),
        "seg_map_path": str(out / "scene_0000_nsp1.png"),
    }
    assert all(Path(pair["seg_map_path"]).is_file() for pair in pairs)
    assert len(module.manifest_pairs(out / "manifest.jsonl", copies="deformed")) == 3 * 2
    assert any(step["type"] == "NoisySegmentPlus" for step in module.TRAIN_PIPELINE)
