"""How a run records its folders, written by the job engine and read by every reader of a manifest.

A run's parameters record ``labels``, ``images`` and ``palette`` relative to
its output folder, so a dataset that moves as a whole (another machine, a
container's mount) keeps working; the metadata's ``locations`` keeps them as
absolute paths too, found again when only the output moved. A URL on either
side is recorded as it is. Schema 1 recorded absolute paths.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path

from .. import storage
from ..storage import Location, is_url

# Parameters that are folders, recorded relative to the output folder.
FOLDER_PARAMETERS = ("labels", "images", "palette")


def absolute(location: Location) -> str:
    """A folder as the metadata's ``locations`` records it: a resolved path, or the URL without credentials."""
    return storage.public(location) if is_url(location) else str(Path(location).resolve())


def relative_to(path: Location | None, folder: Location) -> str | None:
    """``path`` relative to ``folder`` (both resolved), in POSIX form; absolute where no relative path exists
    (another drive, or a URL on either side)."""
    if path is None:
        return None
    if is_url(path) or is_url(folder):
        return absolute(path)
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


def recorded_folders(out: Location, **folders: Location | None) -> dict:
    """The parameters of ``folders`` as a run records them: relative to ``out``."""
    return {name: relative_to(folder, out) for name, folder in folders.items()}


def locations(**folders: Location | None) -> dict:
    """The metadata's ``locations``: every folder given, as an absolute path (a fallback for a manifest moved
    alone)."""
    return {name: absolute(folder) for name, folder in folders.items() if folder is not None}


def resolved_parameters(parameters: Mapping, out: Location) -> dict:
    """The parameters with their folders as absolute paths (resolved against ``out``): comparable across runs."""
    resolved = dict(parameters)
    for name in FOLDER_PARAMETERS:
        value = resolved.get(name)
        if value and is_url(value):  # as a run records it now: s3://b/x/ and s3://b/x are one folder
            resolved[name] = str(storage.as_location(value))
        elif value and not is_url(out):
            resolved[name] = str((Path(out) / value).resolve())
    return resolved


def find_folder(recorded: str | None, located: str | None, root: Location) -> Location | None:
    """Where a recorded folder is now, for a manifest in ``root``: relative to ``root`` (found when the data
    and the output moved together), or at ``located`` (found when only the output moved). Where neither
    exists, the relative place, for the message that says so."""
    if not recorded:
        return None
    if is_url(recorded) or os.path.isabs(recorded):
        if is_url(root) or is_url(recorded):
            return storage.as_location(recorded)
    elif is_url(root):  # a tree made on a disk, then copied into a bucket as a whole
        protocol, _, path = root.partition("://")
        return f"{protocol}://{posixpath.normpath(posixpath.join(path, recorded))}"
    relative = Path(os.path.normpath(Path(root).resolve() / recorded))
    if not relative.exists() and located and storage.exists(storage.as_location(located)):
        return storage.as_location(located)
    return relative
