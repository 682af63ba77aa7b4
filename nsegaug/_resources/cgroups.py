"""Where this process's control groups are: the entries of ``/proc/self/cgroup``, and a group's folders.

Read by [`cpus`][nsegaug._resources.cpus] (CPU quotas) and [`memory`][nsegaug._resources.memory]
(memory limits): cgroup v2 (one hierarchy, ``0::/path``) and v1 (one per controller, ``4:memory:/path``).
Pure Python, cheap to import.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def entries(self_cgroup: Path | str) -> list[tuple[str, list[str], str]]:
    """``(hierarchy, controllers, group)`` for each line of ``self_cgroup`` that names a group (none if unreadable).

    cgroup v2's line is hierarchy ``"0"`` with no controllers.
    """
    try:
        lines = Path(self_cgroup).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if group:
            found.append((hierarchy, [name for name in controllers.split(",") if name], group))
    return found


def folders(mount: Path, group: str) -> Iterator[Path]:
    """The folder of ``group`` under ``mount`` and its parents up to the mount: a parent's limits bound its
    children too.

    Inside a container without its own cgroup namespace, ``/proc/self/cgroup`` names the host's path,
    which is not under the container's mount: then the mount's root is the process's cgroup.
    """
    folder = mount / group.strip("/")
    if not folder.is_dir():
        folder = mount
    while True:
        yield folder
        if folder == mount or mount not in folder.parents:
            return
        folder = folder.parent
