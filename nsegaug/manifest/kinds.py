"""The kinds of run a manifest may record (``generate``, ``noise``): the one place a new kind is added.

For each kind: its row type, and which file names its outputs have. The job
engine asks this module, by the kind a run's metadata records, what an
earlier run may have written into a folder (an ``--overwrite`` judges the
files of a run of another kind, or one stopped before its manifest listed
them); it never names a kind itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath

from .. import storage
from .._files.label_folders import LABEL_EXTENSIONS, output_pattern, split_extension
from ..storage import Location
from .rows import CopyRow, NoiseRow


@dataclass(frozen=True)
class Kind:
    """A kind of run: its manifest row, and whether a run of it with ``parameters`` into ``out`` may have
    written the file ``name`` (relative to ``out``)."""

    row_type: type
    could_write: Callable[[str, Mapping, Location], bool]
    # Parameters added to the kind after earlier versions recorded runs, with the value that reproduces what
    # those runs wrote: a record without one is resumed as if it said so (a 2D run of 0.1.0 is a run in voxels
    # with no volume engine's bytes in it), instead of being refused as changed.
    added: Mapping[str, object] = field(default_factory=dict)

    def recorded_parameters(self, parameters: Mapping) -> dict:
        """A run's recorded ``parameters``, with the parameters added since it was recorded as it ran them."""
        return {**self.added, **parameters}


@lru_cache(maxsize=8)
def _copy_names(template: str):
    return output_pattern(template)


def _generate_could_write(name: str, parameters: Mapping, out: Location) -> bool:
    # Copy k of a label is named by the run's template, for 1 <= k <= its copies, beside where the label is in
    # its folder: a file of that name with no such label (one a user put there) is not the run's.
    template, copies = parameters.get("name_template"), parameters.get("copies")
    if not template or not copies:
        return False
    path = PurePosixPath(name)
    found = _copy_names(template).fullmatch(path.name)
    if not (found and 1 <= int(found["copy"]) <= copies and found["ext"].lower() in LABEL_EXTENSIONS):
        return False
    return _has_label(str(path.parent / (found["stem"] + found["ext"])), parameters, out)


def _noise_could_write(name: str, parameters: Mapping, out: Location) -> bool:
    # A noise run mirrors its label folder: a file is its output where the folder has a label of that name.
    if split_extension(PurePosixPath(name).name)[1].lower() not in LABEL_EXTENSIONS:
        return False
    return _has_label(name, parameters, out)


def _has_label(name: str, parameters: Mapping, out: Location) -> bool:
    """Whether the run's label folder (``parameters["labels"]``) has the file ``name``."""
    labels = parameters.get("labels")
    if not labels:
        return False
    # Recorded relative to the output folder where both are local, else absolute (a path or a URL).
    relative = not storage.is_url(labels) and not storage.is_url(out) and not Path(labels).is_absolute()
    root = storage.join(out, labels) if relative else storage.as_location(labels)
    return storage.is_file(storage.join(root, name))


KINDS = {
    "generate": Kind(CopyRow, _generate_could_write, added={"units": "voxels", "volume_engine": 1}),
    "noise": Kind(NoiseRow, _noise_could_write),
}
# The row type of each kind of run.
ROW_TYPES = {name: kind.row_type for name, kind in KINDS.items()}
