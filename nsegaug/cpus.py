"""How many worker processes a run starts: never more than its work, nor than the CPUs it may use.

Pure Python, cheap to import: the command line shows the default of ``--jobs`` from it.
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (as containers and batch schedulers set it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_count(requested: int, work_items: int | None = None) -> int:
    """The workers to start for ``requested`` and ``work_items`` tasks (None: unknown, e.g. a bucket's listing).

    A worker beyond the tasks would only start and idle, and one beyond the CPUs only takes turns with the
    others (each is a whole process with its own memory), so both bound the count.
    """
    bounds = [requested, available_cpus()]
    if work_items is not None:
        bounds.append(work_items)
    return max(1, min(bounds))


def capped_note(requested: int, workers: int, work_items: int | None) -> str | None:
    """One line saying why fewer workers than asked for run (None: as many as asked)."""
    if workers >= requested:
        return None
    reasons = [f"{available_cpus()} CPUs available"]
    if work_items is not None and work_items <= workers:
        reasons.insert(0, f"{work_items} masks to do")
    return f"note: {workers} worker(s), not {requested}: " + ", ".join(reasons)
