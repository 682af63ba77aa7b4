"""What every benchmark shares: the conditions of the run, and interleaved timing with min and median.

A shared machine slows whichever contender runs while something else is busy.
Interleaving (every contender once per round, in a rotating order) spreads
that noise over all of them alike; the minimum of the rounds is the figure
least touched by it, the median the typical one. CPU time (the process's,
all its threads) is reported next to wall time: it does not grow while the
process waits for a core, so it is the steadier figure on a loaded machine,
but it counts work done on other threads that wall time hides.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


def cpus_available() -> int:
    """The CPUs this process may use (affinity, bounded by a cgroup CPU quota), not the machine's count."""
    from nsegaug._resources.cpus import available_cpus

    return available_cpus()


def cpu_quota() -> float | None:
    """The cgroup CPU quota in CPUs (None: none), for the record."""
    from nsegaug._resources.cpus import cgroup_cpu_quota

    return cgroup_cpu_quota()


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


LIBRARIES = (
    "nsegaug",
    "numpy",
    "opencv-python-headless",
    "opencv-python",
    "scipy",
    "pillow",
    "albumentations",
    "torch",
)


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` shows it (from /proc/cpuinfo), with its family, model and widest SIMD.

    A virtual machine may show only the vendor's name ("AMD EPYC"): the family and model (25, 17: Zen 4) and
    the vector extensions (what OpenCV's kernels dispatch on) still tell CPUs apart.
    """
    fields: dict[str, str] = {}
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first CPU's block is enough
            fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    simd = next((name for name in ("avx512f", "avx2", "avx", "sse4_2", "neon", "asimd") if name in flags), "")
    model = fields.get("model name", platform.processor() or platform.machine())
    family = f"family {fields['cpu family']}, model {fields['model']}" if "cpu family" in fields else ""
    details = ", ".join(part for part in (family, simd.upper()) if part)
    return f"{model} ({details})" if details else model


def conditions(**threads: int | None) -> dict:
    """The conditions a figure was measured under: CPUs, load, interpreter, library versions, threads.

    ``threads``: the thread counts the benchmark set (``cv2=1``, ``torch=2``, ...), recorded as given.
    """
    versions = {name: _version(name) for name in LIBRARIES}
    return {
        "cpu_model": cpu_model(),
        "cpus_available": cpus_available(),
        "cpus_machine": os.cpu_count(),
        "cpu_quota": cpu_quota(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "versions": {name: version for name, version in versions.items() if version},
        "threads": threads,
        "argv": sys.argv[1:],
    }


def print_conditions(found: Mapping) -> None:
    """Two lines: the machine and its load, then the library versions and threads."""
    load = ", ".join(f"{value:.2f}" for value in found["load_average"])
    quota = f", cgroup quota {found['cpu_quota']:g} CPUs" if found.get("cpu_quota") is not None else ""
    print(f"CPU: {found.get('cpu_model', cpu_model())}")
    print(
        f"conditions: {found['cpus_available']} CPUs available to the process (machine: {found['cpus_machine']}"
        f"{quota}), "
        f"load average {load} (1, 5, 15 min), Python {found['python']} on {found['machine']}"
    )
    versions = ", ".join(f"{name} {version}" for name, version in found["versions"].items())
    threads = ", ".join(f"{name} {count}" for name, count in found["threads"].items()) or "libraries' defaults"
    print(f"            {versions}; threads: {threads}", flush=True)


@dataclass
class Timings:
    """Wall and CPU seconds of one contender, one entry per round."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    def summary(self, scale: float = 1.0) -> dict:
        """min and median of wall and CPU time, multiplied by ``scale`` (1e3: milliseconds)."""
        return {
            "wall_min": min(self.wall) * scale,
            "wall_median": statistics.median(self.wall) * scale,
            "cpu_min": min(self.cpu) * scale,
            "cpu_median": statistics.median(self.cpu) * scale,
            "rounds": len(self.wall),
        }


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its children that have ended (subprocesses)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(function: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of the process and its ended children, result) of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def interleaved(
    contenders: Mapping[str, Callable[[int], object]],
    rounds: int,
    keep: Callable[[str, int, object], None] | None = None,
) -> dict[str, Timings]:
    """Time ``contenders[name](round)`` once per round for every name, in an order that rotates each round.

    ``keep(name, round, result)``, when given, sees every result (to check
    agreement) outside the timed call.
    """
    names = list(contenders)
    timings = {name: Timings() for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu, result = timed(lambda name=name, index=index: contenders[name](index))
            timings[name].add(wall, cpu)
            if keep is not None:
                keep(name, index, result)
    return timings


def print_load_after(found: dict) -> None:
    """The load average once the measurements are done, recorded in ``found`` and printed."""
    found["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    print(f"load average after: {', '.join(f'{value:.2f}' for value in found['load_average_after'])}")


def ratio(slow: Mapping, fast: Mapping, key: str) -> float:
    """``slow[key] / fast[key]``: how many times faster ``fast`` is by one figure (wall_min, cpu_median, ...)."""
    return slow[key] / fast[key]
