"""What proves how and when a study ran: the code that ran it, and each unit's clock times.

A pre-registered study is worth what its order is worth: the design
committed, then the runs, then the results. The results therefore carry the
code version (nsegaug's version, and the git commit and whether the tree had
uncommitted changes, where the package runs from a git checkout) and, per
unit, when each invocation started and ended it, read from ``units.jsonl``.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__

# The package's folder's parent: a git checkout's root when nsegaug runs from one (an editable install).
SOURCE_ROOT = Path(__file__).resolve().parents[2]
GIT_TIMEOUT_S = 10
ENDS = ("done", "failed", "interrupted")


def code_version(root: Path = SOURCE_ROOT) -> dict:
    """``{"nsegaug": version, "commit": sha or None, "dirty": bool or None}``: commit and dirty only where
    ``root`` is the top of a git checkout (not a wheel in site-packages, not a checkout that merely holds one);
    dirty: a tracked file differs from the commit."""
    version = {"nsegaug": __version__, "commit": None, "dirty": None}
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return version
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    version.update(commit=commit, dirty=None if status is None else bool(status))
    return version


@functools.cache
def current_code() -> dict:
    """`code_version` of the code running now (the units run ``python -m nsegaug``: this very package)."""
    return code_version()


def _git(root: Path, *arguments: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *arguments],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def unit_times(name: str, rows: Sequence[dict]) -> dict:
    """One unit's clock times from the units log: every invocation that ran it (started, ended, outcome, code;
    an invocation killed outright has no end), when it first started and when it finished, and the wall
    seconds of the invocations that ran it to an end."""
    spans: list[dict] = []
    for row in rows:
        if row.get("unit") != name:
            continue
        if row["action"] in ("start", "resume"):
            spans.append({"action": row["action"], "started": row["time"], "ended": None, "outcome": None})
            if row.get("code") is not None:
                spans[-1]["code"] = row["code"]
        elif row["action"] in ENDS and spans and spans[-1]["ended"] is None:
            spans[-1].update(ended=row["time"], outcome=row["action"], elapsed_s=row.get("elapsed_s"))
    done = [span for span in spans if span["outcome"] == "done"]
    walls = [span["elapsed_s"] for span in spans if span["outcome"] == "done" and span.get("elapsed_s") is not None]
    return {
        "started": spans[0]["started"] if spans else None,
        "finished": done[-1]["ended"] if done else None,
        "wall_s": round(sum(walls), 2) if walls else None,
        "invocations": spans,
    }


def codes_seen(rows: Sequence[dict]) -> list[dict]:
    """The distinct code versions that ran units of the study, in the order they first did (more than one: the
    study was resumed under other code)."""
    seen: list[dict] = []
    for row in rows:
        code = row.get("code")
        if code is not None and code not in seen:
            seen.append(code)
    return seen
