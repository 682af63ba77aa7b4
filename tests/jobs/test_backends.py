"""Where a run's work is done, in the job engine (nsegaug._jobs.backends, nsegaug._jobs.workers): local worker
processes, in this process, or a Dask cluster; the same bytes whichever, and nothing of the caller's changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image
from runs import DATA, ROOT, generate, tree

from nsegaug.manifest import META_NAME


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local") / "out"
    result = generate("--labels", DATA / "train" / "labels", "--copies", 2, "--out", out, "--pattern", "scene_000*.png")
    assert result.exit_code == 0
    return tree(out)


def test_dask_local_cluster_started_by_the_caller_gives_the_same_bytes(tmp_path, local_run):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = tmp_path / "out"
        result = generate(
            "--labels", DATA / "train" / "labels", "--copies", 2, "--out", out, "--pattern", "scene_000*.png",
            "--backend", "dask", "--scheduler", cluster.scheduler_address,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    assert tree(out) == local_run
    assert json.loads((out / META_NAME).read_text())["execution"]["scheduler"] == cluster.scheduler_address


def test_dask_implicit_local_cluster_gives_the_same_bytes(tmp_path, local_run):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "out"
    result = generate(
        "--labels", DATA / "train" / "labels", "--copies", 2, "--out", out, "--pattern", "scene_000*.png",
        "--backend", "dask", "--jobs", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert tree(out) == local_run


def test_dask_with_a_scheduler_nobody_answers_at_is_refused_before_anything_is_written(labels, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    arguments = ["--labels", labels, "-k", 1, "--out", out, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:1"]
    result = generate(*arguments)
    assert result.exit_code == 2 and "dask scheduler tcp://127.0.0.1:1: cannot connect" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_python_caller_keeps_its_pillow_and_opencv_settings_after_an_in_process_run(labels, tmp_path):
    import cv2

    from nsegaug.generate import GenerateConfig, generate_dataset

    threads, pixels = cv2.getNumThreads(), Image.MAX_IMAGE_PIXELS
    try:
        cv2.setNumThreads(2)
        Image.MAX_IMAGE_PIXELS = 12345678
        generate_dataset(GenerateConfig(labels=labels, out=tmp_path / "out", copies=1, jobs=1, max_pixels=10**7))
        assert (cv2.getNumThreads(), Image.MAX_IMAGE_PIXELS) == (2, 12345678)
    finally:
        cv2.setNumThreads(threads)
        Image.MAX_IMAGE_PIXELS = pixels


def test_a_thousand_jobs_on_three_masks_start_at_most_three_workers(three_masks, tmp_path):
    # The run in a process of its own, whose children are counted once it is done (loky keeps its workers
    # alive for reuse, so every worker started is still there).
    script = (
        "import sys, psutil\n"
        "from nsegaug.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "children = psutil.Process().children(recursive=True)\n"  # psutil comes with dask.distributed
        "print('workers', sum('resource_tracker' not in ' '.join(p.cmdline()) for p in children))\n"
    )
    out = tmp_path / "out"
    command = [sys.executable, "-c", script, "generate", "--labels", three_masks, "--out", out, "--copies", 1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [*map(str, command), "--jobs", "1000"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    workers = int(result.stdout.split("workers")[1])
    assert 0 <= workers <= 3
    assert "not 1000" in result.stderr
    assert len(list(out.glob("*.png"))) == 3
