"""The CPUs a process really has, and how many processes and threads a run starts on them.

A process may run on fewer CPUs than the machine has: its affinity mask
(``taskset``, Slurm, Kubernetes' static CPU manager) lists the CPUs it may
use, and a cgroup CPU quota (``docker run --cpus``, Kubernetes' CPU limits,
systemd's ``CPUQuota``) bounds the CPU time it gets on them. Libraries that
size their thread pools by the machine's cores (torch, OpenCV, joblib) then
run more threads than the process has CPUs, and they take turns: on a
2-core machine, a training step with 2 threads in a process that had less
than a core's share ran at 0.29x the speed of 1 thread.

One function decides: `threads_per_worker` gives each of ``workers``
processes on these CPUs its share. Pure Python, cheap to import: the command
line shows the defaults of ``--jobs`` and ``--threads`` from it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from . import cgroups

CGROUP_ROOT = Path("/sys/fs/cgroup")
# What a worker process holds before any map: the interpreter, NumPy, OpenCV, SciPy, Pillow (about 100 MiB
# measured), with room to spare.
WORKER_BYTES = 160 << 20
SELF_CGROUP = Path("/proc/self/cgroup")


def available_cpus(root: Path | str = CGROUP_ROOT, self_cgroup: Path | str = SELF_CGROUP) -> int:
    """CPUs this process may use: its affinity mask, bounded by its cgroup's CPU quota rounded down; at least 1.

    A quota of 1.5 CPUs counts as 1: a second busy thread would only make both wait for the quota's next period.
    """
    bounds = [_affinity()]
    quota = cgroup_cpu_quota(root, self_cgroup)
    if quota is not None:
        bounds.append(math.floor(quota))
    return max(1, min(bounds))


def threads_per_worker(workers: int = 1, cpus: int | None = None) -> int:
    """The threads each of ``workers`` processes sharing this process's CPUs may run: their even share, >= 1.

    ``cpus`` defaults to `available_cpus`. ``threads_per_worker()`` is a lone process's default
    (torch's and OpenCV's threads in ``nsegaug train`` and ``evaluate``); ``threads_per_worker(4)`` that of
    each of 4 processes on the same CPUs (torchrun's local processes). With more workers than CPUs every
    worker still gets 1 thread: fewer would leave it nothing to run on.
    """
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus // max(1, workers))


def default_jobs(cpus: int | None = None) -> int:
    """The default worker processes of ``generate`` and ``noise``: one per available CPU.

    That is the most processes for which `threads_per_worker` still gives each a whole CPU; each
    runs OpenCV on that one thread, so the job uses every CPU and oversubscribes none.
    """
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus)


def cgroup_cpu_quota(root: Path | str = CGROUP_ROOT, self_cgroup: Path | str = SELF_CGROUP) -> float | None:
    """The CPUs' worth of time this process's cgroup quota allows (quota / period), None where there is none.

    Reads cgroup v2's ``cpu.max`` ("quota period", quota ``max`` for none) and cgroup v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1 for none), in the process's own cgroup (from
    ``self_cgroup``, i.e. ``/proc/self/cgroup``) and each of its parents, since a parent's quota bounds
    its children too; the smallest wins. ``root`` is where the hierarchies are mounted: v2 at the root
    itself or at ``unified/`` (hybrid systems), v1 per controller (``cpu/``, ``cpu,cpuacct/``).
    """
    quotas = []
    for hierarchy, controllers, group in cgroups.entries(self_cgroup):
        if hierarchy == "0" and not controllers:
            for mount in (Path(root), Path(root) / "unified"):
                quotas += _quotas(mount, group, _v2_quota)
        elif "cpu" in controllers:
            for mount in {Path(root) / ",".join(controllers), Path(root) / "cpu"}:
                quotas += _quotas(mount, group, _v1_quota)
    return min(quotas) if quotas else None


def _quotas(mount: Path, group: str, read) -> list[float]:
    """The quotas set on ``group`` and its parents under ``mount``."""
    return [quota for folder in cgroups.folders(mount, group) if (quota := read(folder)) is not None]


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text(encoding="utf-8").split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
        period = int((folder / "cpu.cfs_period_us").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if quota < 0 or period <= 0 else quota / period


def _affinity() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_count(requested: int, work_items: int | None = None) -> int:
    """The workers to start for ``requested`` and ``work_items`` tasks (None: unknown, e.g. a bucket's listing).

    A worker beyond the tasks would only start and idle, and one beyond the CPUs only takes turns with the
    others (each is a whole process with its own memory), so both bound the count; so does the memory this
    process may use, at [`WORKER_BYTES`][nsegaug._resources.cpus.WORKER_BYTES] a worker before any map (the maps' own
    memory is shared out while they are deformed: [`reserved`][nsegaug._resources.memory.reserved]).
    """
    bounds = [requested, available_cpus(), memory_workers()]
    if work_items is not None:
        bounds.append(work_items)
    return max(1, min(bounds))


def memory_workers() -> int:
    """The workers the memory this process may use holds (at least 1): each with room for itself and for a map
    below [`LEDGER_FLOOR`][nsegaug._resources.memory.LEDGER_FLOOR], so that such maps need not be shared out."""
    from .memory import LEDGER_FLOOR, available_memory

    available = available_memory()
    return max(1, available // (WORKER_BYTES + LEDGER_FLOOR)) if available is not None else 1 << 30


def capped_note(requested: int, workers: int, work_items: int | None) -> str | None:
    """One line saying why fewer workers than asked for run (None: as many as asked)."""
    if workers >= requested:
        return None
    reasons = [f"{available_cpus()} CPUs available"]
    if memory_workers() <= workers:
        from .memory import available_memory, size_text

        reasons.append(f"{size_text(available_memory() or 0)} of memory available")
    if work_items is not None and work_items <= workers:
        reasons.insert(0, f"{work_items} masks to do")
    return f"note: {workers} worker(s), not {requested}: " + ", ".join(reasons)
