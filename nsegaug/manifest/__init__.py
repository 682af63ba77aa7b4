"""The manifest of a generated dataset: the one owner of its file format.

An output folder holds ``manifest.jsonl``, one row per label map it lists
([`CopyRow`][nsegaug.manifest.CopyRow] for ``generate``: the source as copy 0, then its copies;
[`NoiseRow`][nsegaug.manifest.NoiseRow] for ``noise``), and ``manifest.meta.json``, the
[`RunMeta`][nsegaug.manifest.RunMeta] of the run that wrote it (tool, version, schema, kind,
parameters, status, counts). [`open_manifest`][nsegaug.manifest.open_manifest] is the one way to read a
manifest (it checks the tool and the schema version once), used by
``generate --resume``, ``preview``, ``export``, ``train`` and the examples;
[`open_generated`][nsegaug.manifest.open_generated] reads a finished generate run as the dataset it
lists (its pairs, its samples, their checksums), for ``export``, ``train``, the mmsegmentation dataset
and a training loop of your own.

Inside: ``rows`` (the row types), ``meta`` (the run's record), ``kinds`` (the
kinds of run and their outputs' names), ``folders`` (how a run records its
folders), ``reading``, ``samples`` (a generated dataset) and ``writing``.
Import from ``nsegaug.manifest``: the modules inside may move.
"""

from __future__ import annotations

from .folders import FOLDER_PARAMETERS, locations, recorded_folders, relative_to, resolved_parameters
from .kinds import KINDS, ROW_TYPES
from .meta import META_NAME, READABLE_SCHEMAS, STATUSES, TOOL, RunMeta, parameter_differences, read_meta, write_meta
from .reading import (
    MANIFEST_NAME,
    Manifest,
    RowCheck,
    iter_mask_groups,
    iter_numbered_rows,
    iter_rows,
    manifest_path,
    open_manifest,
)
from .rows import ROW_KEYS, SCHEMA_VERSION, CopyRow, NoiseRow
from .samples import (
    GeneratedDataset,
    ImageSample,
    ListedPair,
    changed_message,
    check_bytes,
    check_unchanged,
    open_generated,
    problems_message,
    read_listed,
)
from .writing import append_rows, sort_manifest

__all__ = [
    "FOLDER_PARAMETERS",
    "KINDS",
    "MANIFEST_NAME",
    "META_NAME",
    "READABLE_SCHEMAS",
    "ROW_KEYS",
    "ROW_TYPES",
    "SCHEMA_VERSION",
    "STATUSES",
    "TOOL",
    "CopyRow",
    "GeneratedDataset",
    "ImageSample",
    "ListedPair",
    "Manifest",
    "NoiseRow",
    "RowCheck",
    "RunMeta",
    "append_rows",
    "changed_message",
    "check_bytes",
    "check_unchanged",
    "iter_mask_groups",
    "iter_numbered_rows",
    "iter_rows",
    "locations",
    "manifest_path",
    "open_generated",
    "open_manifest",
    "parameter_differences",
    "problems_message",
    "read_listed",
    "read_meta",
    "recorded_folders",
    "relative_to",
    "resolved_parameters",
    "sort_manifest",
    "write_meta",
]
