"""What a folder holds, for tests that check a run touched nothing it should not."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nsegaug.manifest import MANIFEST_NAME, META_NAME


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root`` (links as their target, folders as 'dir'), to compare before and after."""
    found: dict[str, bytes | str] = {}
    for folder, folders, names in os.walk(root):
        for name in folders + names:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = path.read_bytes()
    return found


def listed(out: Path) -> set[str]:
    """The files a run's manifest lists, with the manifest and its metadata."""
    rows = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    return {row["output"] for row in rows if row["output"]} | {MANIFEST_NAME, META_NAME}


def files(out: Path) -> set[str]:
    """The files (and links) under ``out``."""
    return {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file() or path.is_symlink()}
