"""Threads sized to the CPUs a process really has: its affinity and its cgroup's CPU quota.

The quota is read from real files: laid out in a temporary folder as cgroup v1 and v2 mount them, and,
where this machine lets root create a cgroup with a CPU quota, from a real one with a process in it.
``nsegaug train`` and ``evaluate`` run as subprocesses under ``taskset``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from runs import ROOT

from nsegaug._resources.cpus import available_cpus, cgroup_cpu_quota, default_jobs, threads_per_worker
from nsegaug.cli import main
from nsegaug.manifest import MANIFEST_NAME

SAMPLES = ROOT / "examples" / "data"
TINY_TRAIN = ["--num-classes", "19", "--width", "4", "--batch-size", "2", "--crop", "64", "64", "--workers", "0"]
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
needs_taskset = pytest.mark.skipif(
    shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"), reason="needs taskset (Linux)"
)
# What the process's affinity alone allows: the quota can only lower it.
AFFINITY = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def self_cgroup(tmp_path: Path, *lines: str) -> Path:
    """A /proc/self/cgroup with these lines."""
    path = tmp_path / "proc_self_cgroup"
    write(path, "\n".join(lines) + "\n")
    return path


# --- the quota, from files laid out as the kernel does -----------------------------------------------------------


def test_a_cgroup_v2_quota_is_read_from_the_process_own_cgroup(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "cpu.max", "max 100000\n")
    write(root / "kubepods" / "cpu.max", "max 100000\n")
    write(root / "kubepods" / "pod1" / "cpu.max", "150000 100000\n")
    write(root / "kubepods" / "pod2" / "cpu.max", "50000 100000\n")  # a sibling: not this process's
    proc = self_cgroup(tmp_path, "0::/kubepods/pod1")
    assert cgroup_cpu_quota(root, proc) == 1.5
    # 1.5 CPUs are 1: a second busy thread would wait for the quota's next period.
    assert available_cpus(root, proc) == 1


def test_a_parent_cgroups_smaller_quota_bounds_its_children(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "slice" / "cpu.max", "300000 100000\n")
    write(root / "slice" / "job" / "cpu.max", "max 100000\n")
    proc = self_cgroup(tmp_path, "0::/slice/job")
    assert cgroup_cpu_quota(root, proc) == 3.0
    write(root / "slice" / "cpu.max", "200000 200000\n")
    assert cgroup_cpu_quota(root, proc) == 1.0


def test_a_cgroup_v1_quota_is_read_from_the_cpu_controllers_hierarchy(tmp_path):
    root = tmp_path / "cgroup"
    group = root / "cpu,cpuacct" / "docker" / "abc"
    write(group / "cpu.cfs_quota_us", "250000\n")
    write(group / "cpu.cfs_period_us", "100000\n")
    write(root / "memory" / "docker" / "abc" / "memory.limit_in_bytes", "1000000\n")
    proc = self_cgroup(tmp_path, "5:memory:/docker/abc", "4:cpu,cpuacct:/docker/abc", "0::/")
    assert cgroup_cpu_quota(root, proc) == 2.5
    assert available_cpus(root, proc) == min(AFFINITY, 2)
    write(group / "cpu.cfs_quota_us", "-1\n")  # no quota
    assert cgroup_cpu_quota(root, proc) is None
    assert available_cpus(root, proc) == AFFINITY


def test_hybrid_systems_mount_cgroup_v2_under_unified(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "unified" / "user.slice" / "cpu.max", "100000 100000\n")
    proc = self_cgroup(tmp_path, "1:cpu:/", "0::/user.slice")
    assert cgroup_cpu_quota(root, proc) == 1.0


def test_inside_a_container_without_its_own_namespace_the_mounts_root_is_the_process_cgroup(tmp_path):
    # /proc/self/cgroup names the host's path; the container sees its own cgroup at the mount's root.
    root = tmp_path / "cgroup"
    write(root / "cpu.max", "200000 100000\n")
    proc = self_cgroup(tmp_path, "0::/system.slice/docker-0123.scope")
    assert cgroup_cpu_quota(root, proc) == 2.0


def test_no_quota_and_unreadable_files_leave_the_affinity(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(root, self_cgroup(tmp_path, "0::/")) is None
    write(root / "cpu.max", "garbage\n")
    assert cgroup_cpu_quota(root, self_cgroup(tmp_path, "0::/")) is None
    assert cgroup_cpu_quota(root, tmp_path / "no_such_file") is None
    assert available_cpus(root, tmp_path / "no_such_file") == AFFINITY


# --- how the CPUs are shared ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workers", "cpus", "threads"), [(1, 1, 1), (1, 4, 4), (2, 4, 2), (3, 4, 1), (4, 4, 1), (8, 4, 1), (2, 7, 3)]
)
def test_each_worker_gets_its_even_share_of_the_cpus_and_never_less_than_one_thread(workers, cpus, threads):
    assert threads_per_worker(workers, cpus) == threads
    assert workers * threads <= cpus or threads == 1  # never oversubscribed, unless there are more workers than CPUs


def test_jobs_default_to_one_process_per_cpu_each_on_one_thread():
    for cpus in (1, 2, 5):
        assert default_jobs(cpus) == cpus
        assert threads_per_worker(default_jobs(cpus), cpus) == 1


PROBE = """
import json
import click
from nsegaug.cli import main
from nsegaug._resources.cpus import available_cpus, cgroup_cpu_quota, threads_per_worker
with click.Context(main) as context:
    generate = main.get_command(context, "generate")
jobs = next(param for param in generate.params if param.name == "jobs")
with click.Context(generate) as context:
    default = jobs.get_default(context)
print(json.dumps({"quota": cgroup_cpu_quota(), "cpus": available_cpus(), "threads": threads_per_worker(),
                  "jobs": default}))
"""


@needs_taskset
def test_under_taskset_one_cpu_means_one_thread_and_one_job():
    result = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    assert (found["cpus"], found["threads"], found["jobs"]) == (1, 1, 1)


def cpu_cgroup(quota: int, period: int) -> tuple[Path, Path] | None:
    """A real cgroup with this CPU quota (v2 where its cpu controller is enabled, else v1); None where the
    machine does not allow one. Returns (the cgroup's folder, its cgroup.procs)."""
    name = f"nsegaug-test-{uuid.uuid4().hex[:8]}"
    v2 = Path("/sys/fs/cgroup")
    candidates = []
    controls = v2 / "cgroup.subtree_control"
    if controls.exists() and "cpu" in controls.read_text().split():
        candidates.append(("v2", v2 / name))
    if (v2 / "cpu" / "cpu.cfs_quota_us").exists():
        candidates.append(("v1", v2 / "cpu" / name))
    for version, folder in candidates:
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            if version == "v2":
                (folder / "cpu.max").write_text(f"{quota} {period}\n")
            else:
                (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
                (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
            return folder, folder / "cgroup.procs"
        except OSError:
            folder.rmdir()
    return None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="creating a cgroup needs root")
def test_a_process_in_a_real_cgroup_with_half_a_cpu_runs_one_thread():
    made = cpu_cgroup(50_000, 100_000)
    if made is None:
        pytest.skip("this machine does not allow creating a cgroup with a CPU quota")
    folder, procs = made
    try:
        # The shell joins the cgroup, then becomes the probe: the process measured is the one in the cgroup.
        command = f'echo $$ > {procs} && exec "{sys.executable}" -c "$PROBE"'
        result = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, env={**os.environ, "PROBE": PROBE}, check=True
        )
    finally:
        folder.rmdir()  # the probe has ended: the cgroup is empty
    found = json.loads(result.stdout)
    assert found == {"quota": 0.5, "cpus": 1, "threads": 1, "jobs": 1}


# --- nsegaug train and evaluate -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("threads")
    for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
        (root / kind).mkdir()
        for index in range(4):
            shutil.copy(SAMPLES / "train" / kind / f"scene_{index:04d}{suffix}", root / kind)
    arguments = ["generate", "--labels", root / "labels", "--images", root / "images", "--copies", "1"]
    result = CliRunner().invoke(main, [*map(str, arguments), "--out", str(root / "gen")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root / "gen" / MANIFEST_NAME


def run_pinned(*arguments) -> subprocess.CompletedProcess:
    """``nsegaug ARGUMENTS`` as a new process on CPU 0 only, as ``taskset -c 0`` starts it."""
    command = ["taskset", "-c", "0", sys.executable, "-m", "nsegaug", *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def train_pinned(manifest: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    val = SAMPLES / "val"
    arguments = ["train", "--manifest", manifest, "--val-labels", val / "labels", "--val-images", val / "images"]
    return run_pinned(*arguments, *TINY_TRAIN, "--iters", "1", "--device", "cpu", "--out", out, *extra)


@needs_torch
@needs_taskset
def test_train_on_one_cpu_runs_one_thread_says_so_first_and_records_it(manifest, tmp_path):
    result = train_pinned(manifest, tmp_path / "run")
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("training: ") and "cpu x 1, 1 thread (1 CPU available)" in first, first
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["threads"] == {"torch": 1, "opencv": 1, "cpus_available": 1, "local_processes": 1, "asked": False}
    assert record["config"]["threads"] is None  # the default: chosen again from the CPUs on --resume
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["threads"] == record["threads"]

    evaluated = run_pinned(
        "evaluate",
        "--checkpoint",
        tmp_path / "run" / "last.pt",
        "--labels",
        SAMPLES / "val" / "labels",
        "--images",
        SAMPLES / "val" / "images",
        "--workers",
        "0",
        "--out",
        tmp_path / "eval.json",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "on cpu, 1 thread (1 CPU available)" in evaluated.stderr.splitlines()[0]
    assert json.loads((tmp_path / "eval.json").read_text())["threads"]["torch"] == 1


@needs_torch
@needs_taskset
def test_threads_given_override_the_cpus_and_the_run_says_it_oversubscribes(manifest, tmp_path):
    result = train_pinned(manifest, tmp_path / "run", "--threads", "3")
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert "3 threads as asked, more than the share of the 1 CPU available (they will take turns)" in first, first
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["threads"]["torch"] == 3 and record["threads"]["asked"] is True
    assert record["config"]["threads"] == 3


def test_threads_are_a_runtime_setting_that_a_resume_may_change(tmp_path):
    from nsegaug.train.config import TrainConfig, resumed_config

    saved = TrainConfig(manifest=tmp_path, val_labels=tmp_path, val_images=tmp_path, num_classes=3, threads=3)
    assert resumed_config(saved, {"threads": 1}).threads == 1
    with pytest.raises(Exception, match="threads must be >= 1"):
        TrainConfig(manifest=tmp_path, val_labels=tmp_path, val_images=tmp_path, num_classes=3, threads=0)


SHARED = """
import json, sys
import cv2, torch
from nsegaug.train.distributed import use_threads
threads = use_threads(None, local_processes=int(sys.argv[1]))
print(json.dumps({"torch": torch.get_num_threads(), "cv2": cv2.getNumThreads(), "said": threads.describe()}))
"""


@needs_torch
@needs_taskset
@pytest.mark.skipif(AFFINITY < 2, reason="needs 2 CPUs")
def test_local_training_processes_share_the_cpus_torch_and_opencv_alike():
    # As under torchrun --nproc-per-node 2 on 2 CPUs: each process takes one (torchrun's LOCAL_WORLD_SIZE).
    command = ["taskset", "-c", "0,1", sys.executable, "-c", SHARED]
    alone = json.loads(subprocess.run([*command, "1"], capture_output=True, text=True, check=True).stdout)
    shared = json.loads(subprocess.run([*command, "2"], capture_output=True, text=True, check=True).stdout)
    assert (alone["torch"], alone["cv2"]) == (2, 2)
    assert (shared["torch"], shared["cv2"]) == (1, 1)
    assert shared["said"] == "1 thread (2 CPUs available, shared by 2 processes on this machine)"
