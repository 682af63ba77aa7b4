"""How much memory this process may still take, to refuse work that cannot fit before allocating it.

The smallest of: the system's available memory (``MemAvailable``), the
cgroup's limit less what its processes hold (containers, batch jobs; cgroup
v2 and v1, the process's own group and its parents; page cache that the
kernel can drop is not counted as held), and the address-space limit
(``ulimit -v``) less this process's size. Linux only; elsewhere nothing is
known and nothing is refused.

[`reserved`][nsegaug._resources.memory.reserved] shares that memory between the processes of this machine
that deform large maps (a run's workers, other runs of the same user): each
holds what its map needs while it works on it, so ``--jobs N`` on huge maps
deforms as many at once as fit, and a map that cannot fit even alone is
refused with one line instead of getting the machine's processes killed.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .._files.local import flock_within
from ..errors import NotEnoughMemory, UsageError, shown_path
from . import cgroups

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit number; anything near it is none.
_NO_LIMIT = 1 << 60
# How often a process waiting for memory that others hold looks again.
WAIT_POLL_S = 0.2
# Memory another process gives back in the ledger shows in MemAvailable and in its cgroup's use only once that
# process has freed it: its arrays outlive its reservation for a moment, until it exits or moves on. A process that
# waited for others takes "cannot fit" for final only once the reading has said so for this long (a map refused
# at once when it was given back a moment late: 1 run in 9 of the suite).
SETTLE_S = 5.0
# How long a process waits for the ledger's lock itself. Its holders keep it for a read and a write; one that
# holds it longer was stopped there (Ctrl-Z, SIGSTOP, a debugger): past this, this process counts alone rather
# than hang every nsegaug run of the machine behind it.
LEDGER_WAIT_S = 5.0
# Maps estimated at most this much are deformed without the ledger: the workers a run starts are counted at
# this much each on top of a worker's own (cpus.memory_workers), so they fit together whatever they work on,
# and a run of ordinary maps (up to some 6 Mpx) pays no ledger round trip per map nor waits on anyone.
LEDGER_FLOOR = 256 << 20
# The margin of a job's estimate of a map's peak (generate's map_memory, noise's noise_memory) over what its arrays
# take: the deformation engine's own estimate is within 10 % of what it holds (benchmarks/bench_memory.py); the
# rest is what the allocator keeps between a map's phases.
MEMORY_MARGIN = 1.25
# The ledger's mark (held: 0) of a reservation that waits to grow, ``<token>.growing``: a holder whose every other
# holder waits to grow too would wait forever (see Reservation.resize).
_GROWING = ".growing"


def available_memory() -> int | None:
    """Bytes this process can still allocate, as far as the system says (None: unknown)."""
    bounds = [bound for bound in (_meminfo_available(), _cgroup_headroom(), _address_space_headroom()) if bound]
    return min(bounds) if bounds else None


def check_fits(needed: int, what: str) -> None:
    """A [`UsageError`][nsegaug.errors.UsageError] naming ``what`` when ``needed`` bytes exceed the memory available."""
    available = available_memory()
    if available is not None and needed > available:
        raise UsageError(f"{what} needs about {size_text(needed)} of memory, and {size_text(available)} is available")


def size_text(count: float) -> str:
    """``count`` bytes for a person: ``512 MiB``, ``3.1 GiB``."""
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB" if count < 1024 else f"{count / 1024:.1f} TiB"


def _say_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Reservation:
    """Bytes this process holds in the machine's ledger (see [`reserved`][nsegaug._resources.memory.reserved])."""

    token: str
    needed: int
    what: str
    shared: bool = False  # whether it stands in the ledger (maps below LEDGER_FLOOR do not)
    say: Callable[[str], None] = field(default=_say_on_stderr, repr=False)  # where a wait is said
    detail: str = ""  # what a wait or a refusal says of the map after ``doing``, e.g. " (9000x9000 px)"
    doing: str = "deform"  # what the memory is for, as a wait or a refusal says it

    def resize(self, needed: int, detail: str | None = None) -> None:
        """Hold ``needed`` bytes from now on (a closer estimate): less gives the rest back to the others; more
        waits while other processes hold what it needs, and is a [`NotEnoughMemory`][nsegaug.errors.NotEnoughMemory]
        when it cannot fit even once they give theirs back, or when every other holder waits to grow too and
        this reservation is the youngest of them (waiting there would be waiting forever). A wait is said with
        ``say``, as [`reserved`][nsegaug._resources.memory.reserved] says its own (``detail`` None: the
        reservation's own)."""
        detail = self.detail if detail is None else detail
        if needed <= LEDGER_FLOOR and not self.shared:
            self.needed = needed  # within what every worker was counted for: nothing to share
            return
        growing = f"{self.token}{_GROWING}"
        waiting = _Waiting(self.what, detail, self.say, self.doing)
        while True:
            with _ledger() as entries:
                others = sum(held for token, held in entries.items() if token != self.token)
                verdict = _verdict(needed - self.needed, others) if needed > self.needed else "fits"
                deadlock = verdict == "wait" and _last_of_a_deadlock(entries, self.token)
                if deadlock:
                    verdict = "never"
                if verdict == "wait":
                    entries[growing] = 0  # held by nobody: tells the other holders this one waits on them
                else:
                    entries.pop(growing, None)
                if verdict == "fits":
                    entries[self.token] = self.needed = needed
                    self.shared = True
                    return
                holders = _holders(entries, self.token)
            if waiting.refuses(verdict, at_once=deadlock):
                raise NotEnoughMemory(self.what, _refusal(needed, others, detail, self.doing))
            waiting.tell(needed, others, holders)
            time.sleep(WAIT_POLL_S)


@dataclass
class _Waiting:
    """A wait for memory in words: one line when it begins, and again when a holder it waits on is found
    stopped (Ctrl-Z, SIGSTOP: it gives nothing back until resumed)."""

    what: str
    detail: str
    say: Callable[[str], None]
    doing: str = "deform"
    said: frozenset[int] | None = None  # the stopped holders last said (None: nothing said yet)
    never_since: float | None = None  # when the reading began to say "cannot fit" (None: it does not)

    def refuses(self, verdict: str, at_once: bool = False) -> bool:
        """Whether ``verdict`` ends the wait in a refusal: a "never" at once where nothing was waited for (or
        ``at_once``), else once it has stood for ``SETTLE_S``."""
        if verdict != "never":
            self.never_since = None
            return False
        if at_once or self.said is None:
            return True
        now = time.monotonic()
        self.never_since = now if self.never_since is None else self.never_since
        return now - self.never_since >= SETTLE_S

    def tell(self, needed: int, others: int, holders: list[int]) -> None:
        stopped = frozenset(pid for pid in holders if _stopped(pid))
        if self.said is None or (stopped and stopped != self.said):
            self.say(_waiting_line(self.what, needed, others, holders, stopped, self.detail, self.doing))
            self.said = stopped


def _holders(entries: dict[str, int], own: str | None = None) -> list[int]:
    """The pids of the processes holding memory in the ledger, but for the reservation ``own``."""
    return sorted({int(token.split(".")[0]) for token, held in entries.items() if held and token != own})


@contextmanager
def reserved(
    needed: int, what: str, detail: str = "", say: Callable[[str], None] = _say_on_stderr, doing: str = "deform"
) -> Iterator[Reservation]:
    """Hold ``needed`` bytes for this process while the block runs.

    Waits while other processes of this machine hold what it needs (they
    finish and give it back); raises [`NotEnoughMemory`][nsegaug.errors.NotEnoughMemory] naming
    ``what`` (a file) and the estimate when it cannot fit even with nothing
    else held. With nothing known about the memory, it just runs. A map of at most
    [`LEDGER_FLOOR`][nsegaug._resources.memory.LEDGER_FLOOR] runs without the ledger: every worker was counted
    with room for one. Waiting is said with ``say``, in one line when it begins (how much, held by which
    processes) and again when a holder is found stopped (Ctrl-Z, SIGSTOP: it gives nothing back until resumed);
    both, and a refusal, say what the memory is for: ``doing`` (``deform``, ``add noise``) and ``detail``.
    """
    token = f"{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
    waiting = _Waiting(what, detail, say, doing)
    while needed > LEDGER_FLOOR:
        with _ledger() as entries:
            others = sum(entries.values())
            verdict = _verdict(needed, others)
            if verdict == "fits":
                entries[token] = needed
                break
            if waiting.refuses(verdict):
                raise NotEnoughMemory(what, _refusal(needed, others, detail, doing))
            holders = _holders(entries)
        waiting.tell(needed, others, holders)
        time.sleep(WAIT_POLL_S)
    reservation = Reservation(token, needed, what, shared=needed > LEDGER_FLOOR, say=say, detail=detail, doing=doing)
    try:
        yield reservation
    finally:
        if reservation.shared:
            with _ledger() as entries:
                entries.pop(token, None)


def _verdict(needed: int, others: int) -> str:
    """Whether ``needed`` more bytes ``"fits"`` now, must ``"wait"`` for the ``others`` bytes that other processes
    hold to be given back, or can ``"never"`` fit (in this process's own address space, or in the shared memory
    even once the others give theirs back).

    The shared memory read (``MemAvailable``, the cgroup's headroom) already excludes what the others have
    allocated of their reservations, and not what they have yet to allocate: fitting now counts all of their
    reservations against it (the safe side), and fitting alone counts them as given back, which is at least
    what their going gives back (each allocates at most what it holds).
    """
    own = _address_space_headroom()
    if own is not None and needed > own:
        return "never"
    shared = [bound for bound in (_meminfo_available(), _cgroup_headroom()) if bound is not None]
    if not shared or needed <= min(shared) - others:
        return "fits"
    return "wait" if others and needed <= min(shared) + others else "never"


def _last_of_a_deadlock(entries: dict[str, int], token: str) -> bool:
    """Whether every other holder waits to grow as well (none of them would ever give memory back) and ``token``
    is the youngest reservation among them all, the one to give way."""
    holders = [other for other, held in entries.items() if held and other != token]
    if not holders or any(f"{other}{_GROWING}" not in entries for other in holders):
        return False
    return all(_taken_at(other) < _taken_at(token) for other in holders)


def _taken_at(token: str) -> int:
    return int(token.split(".")[2]) if token.count(".") >= 2 and token.split(".")[2].isdigit() else 0


def _waiting_line(
    what: str, needed: int, others: int, holders: list[int], stopped: frozenset, detail: str, doing: str
) -> str:
    line = (
        f"note: {shown_path(what)}: waits for {size_text(needed)} of memory to {doing}{detail}, while other processes "
        f"hold {size_text(others)} (pid {', '.join(map(str, holders))})"
    )
    if stopped:
        pids = " ".join(map(str, sorted(stopped)))
        line += f"; stopped, and giving nothing back until resumed: pid {pids} (kill -CONT {pids})"
    return line


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (Ctrl-Z, SIGSTOP) or stopped by a debugger: state T or t."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


def _refusal(needed: int, others: int, detail: str, doing: str) -> str:
    available = available_memory() or 0
    held = f" while other workers hold {size_text(others)}" if others else ""
    return (
        f"needs about {size_text(needed)} of memory to {doing}{detail}, and {size_text(available)} is available"
        f"{held} (what this process may use: available memory, cgroup limit, address-space limit)"
    )


def ledger_path() -> Path:
    """The file where the processes of this user on this machine record the memory they hold."""
    return Path(tempfile.gettempdir()) / f"nsegaug-memory-{os.getuid() if hasattr(os, 'getuid') else 0}.json"


@contextmanager
def _ledger() -> Iterator[dict[str, int]]:
    """The ledger's entries, locked against other processes; entries of processes gone are dropped."""
    try:
        import fcntl  # noqa: F401 (the lock's; its absence says which system this is)
    except ImportError:  # Windows: no ledger (and nothing known about the memory there either)
        yield {}
        return
    try:
        descriptor = os.open(ledger_path(), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError:  # no ledger to share (a link or another user's file there): this process counts alone
        yield {}
        return
    try:
        if not flock_within(descriptor, LEDGER_WAIT_S, poll_s=0.01):
            yield {}  # the ledger is held by a stopped process: this process counts alone, as without a ledger
            return
        with os.fdopen(os.dup(descriptor), "r+", encoding="utf-8") as file:
            try:
                entries = {str(key): int(value) for key, value in json.loads(file.read() or "{}").items()}
            except (ValueError, AttributeError):
                entries = {}
            entries = {token: held for token, held in entries.items() if _alive(token)}
            yield entries
            file.seek(0)
            file.truncate()
            file.write(json.dumps(entries))
    finally:
        os.close(descriptor)  # also releases the lock


def _alive(token: str) -> bool:
    try:
        os.kill(int(token.split(".")[0]), 0)
    except ValueError:
        return False
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom(root: Path = CGROUP_ROOT, self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The smallest limit less use over this process's memory cgroup and its parents (v2 and v1)."""
    headrooms = []
    for hierarchy, controllers, group in cgroups.entries(self_cgroup):
        if hierarchy == "0" and not controllers:
            for mount in (root, root / "unified"):
                headrooms += [room for folder in cgroups.folders(mount, group) if (room := _v2_headroom(folder))]
        elif "memory" in controllers:
            room = _v1_headroom(next(cgroups.folders(root / ",".join(controllers), group)))
            headrooms += [room] if room is not None else []
    return min(headrooms) if headrooms else None


def _v2_headroom(folder: Path) -> int | None:
    """cgroup v2: the group's limit less what its processes hold (page cache the kernel can drop not counted)."""
    try:
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        stat = _stat(folder / "memory.stat")
        held = int((folder / "memory.current").read_text()) - stat.get("file", 0) + stat.get("shmem", 0)
        return max(0, int(limit) - held)
    except (OSError, ValueError):
        return None


def _v1_headroom(folder: Path) -> int | None:
    """cgroup v1: the hierarchical limit (the group's or a parent's) less the group's use."""
    try:
        stat = _stat(folder / "memory.stat")
        limit = int((folder / "memory.limit_in_bytes").read_text())
        limit = min(limit, stat.get("hierarchical_memory_limit", _NO_LIMIT))
        if limit >= _NO_LIMIT:
            return None
        usage = int((folder / "memory.usage_in_bytes").read_text())
        held = usage - stat.get("total_cache", 0) + stat.get("total_shmem", 0)
        return max(0, limit - held)
    except (OSError, ValueError):
        return None


def _stat(path: Path) -> dict[str, int]:
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values


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
