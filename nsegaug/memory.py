"""How much memory this process may still take, to refuse work that cannot fit before allocating it.

The smallest of: the system's available memory (``MemAvailable``), the
cgroup's limit less its use (containers, batch jobs), and the address-space
limit (``ulimit -v``) less this process's size. Linux only; elsewhere
nothing is known and nothing is refused.
"""

from __future__ import annotations

import resource
from pathlib import Path

from .errors import UsageError


def available_memory() -> int | None:
    """Bytes this process can still allocate, as far as the system says (None: unknown)."""
    bounds = [bound for bound in (_meminfo_available(), _cgroup_headroom(), _address_space_headroom()) if bound]
    return min(bounds) if bounds else None


def check_fits(needed: int, what: str) -> None:
    """A :class:`UsageError` naming ``what`` when ``needed`` bytes exceed the memory available."""
    available = available_memory()
    if available is not None and needed > available:
        raise UsageError(f"{what} needs about {_size(needed)} of memory, and {_size(available)} is available")


def format_size(count: int) -> str:
    """A byte count as people read it: ``1.5 GiB``."""
    return _size(count)


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """cgroup v2's ``memory.max`` less ``memory.current`` of this process's cgroup."""
    try:
        group = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split("::", 1)[1]
        folder = Path("/sys/fs/cgroup") / group.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text()))
    except (OSError, ValueError, IndexError):
        return None


def _address_space_headroom() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return soft
