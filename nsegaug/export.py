"""The (image, label) pairs of a generate manifest, in the forms other tools read.

- ``csv`` and ``jsonl``: one pair per line, ``image,label,copy,deformed``;
- ``mmseg``: mmsegmentation's ``ann_file`` split list (one name per line,
  without suffix) and the dataset config that reads it: the original labels
  and each copy are one ``BaseSegDataset`` each (a copy differs from its
  source by its ``seg_map_suffix`` only), joined in a ``ConcatDataset``.

Paths are resolved against the manifest's folders, or against ``labels`` and
``images`` where the data moved, and written absolute, or relative to a
folder (``relative_to``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import storage
from ._files.label_folders import is_volume, strip_suffix
from .errors import ManifestError, UsageError, shown_path
from .io import image_size, size_mismatch
from .manifest import Manifest, check_unchanged, open_generated, open_manifest

FORMATS = ("csv", "jsonl", "mmseg")
COPIES = ("all", "deformed", "original")


@dataclass(frozen=True)
class Pair:
    """One (image, label) pair of a manifest: the label is the source (copy 0) or one of its copies."""

    image: Path
    label: Path
    key: str  # the source label, relative to the label folder
    copy: int
    deformed: bool


def manifest_pairs(
    manifest: os.PathLike | str,
    copies: str = "all",
    labels: os.PathLike | str | None = None,
    images: os.PathLike | str | None = None,
    verify: bool = True,
    log: Callable[[str], None] | None = None,
) -> Iterator[Pair]:
    """The pairs of a ``generate --images`` manifest, in its order (by label, then copy).

    ``copies``: ``all`` (sources and copies), ``deformed`` (copies the method
    deformed) or ``original`` (sources only). With ``verify``, every label
    listed is first checked against the checksum its row recorded: one
    edited since generate is a [`ManifestError`][nsegaug.errors.ManifestError] naming it. An image
    whose size is not its label map's is a warning line to ``log`` (by
    default stderr), naming both.
    """
    yield from _pairs(open_manifest(manifest), copies, labels, images, verify, log)


def _pairs(
    opened: Manifest,
    copies: str,
    labels: os.PathLike | str | None,
    images: os.PathLike | str | None,
    verify: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[Pair]:
    if copies not in COPIES:
        raise UsageError(f"copies must be one of {', '.join(COPIES)}, got {copies!r}")
    generated = open_generated(opened, labels, images)
    pairs, listed, sizes = [], [], {}
    for entry in generated.pairs():
        row = entry.row
        if entry.image is None:
            raise ManifestError(f"{entry.where}: {row.label} has no paired image")
        if (copies == "original" and row.copy) or (copies == "deformed" and not row.deformed):
            continue
        pairs.append(Pair(entry.image, entry.label, row.label, row.copy, row.deformed))
        listed.append(entry)
        # A copy has its source's size (recorded in every row): one check per image, against its source.
        sizes.setdefault(entry.image, (storage.join(generated.labels, row.label), row.width, row.height))
    if not pairs:
        raise UsageError(f"{opened.path}: no pair to export (copies: {copies})")
    if verify:
        check_unchanged(listed)
    _warn_of_sizes(sizes, log or _on_stderr)
    return pairs


def _on_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _warn_of_sizes(sizes: dict, log: Callable[[str], None], threads: int = 8) -> None:
    """A warning for each image whose size is not its label map's, in list order (the image's header only)."""

    def differs(image, entry) -> str | None:
        label, width, height = entry
        try:
            return size_mismatch(label, (width, height), image, image_size(image))
        except (OSError, ValueError) as error:  # a missing or unreadable image: the loader will say; so do we
            return f"{storage.shown(image)}: cannot read its size ({error})"

    with ThreadPoolExecutor(threads) as pool:
        for line in pool.map(lambda item: differs(*item), sizes.items()):
            if line is not None:
                log(f"warning: {line}")


def shown(path: Path, relative_to: Path | None) -> str:
    """A path as the list writes it: absolute, or relative to ``relative_to`` (POSIX separators); a URL as it is."""
    if storage.is_url(path):
        return str(path)
    if relative_to is None:
        return str(Path(os.path.abspath(path)))
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(relative_to))).as_posix()


def pairs_csv(pairs, relative_to: Path | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # Python's csv quotes a field holding a character of the line terminator, not a lone carriage return (which
    # readers take for a line end): a row with one is quoted whole.
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["image", "label", "copy", "deformed"])
    for pair in pairs:
        row = [shown(pair.image, relative_to), shown(pair.label, relative_to), pair.copy, int(pair.deformed)]
        (quoted if "\r" in row[0] + row[1] else writer).writerow(row)
    return buffer.getvalue()


def pairs_jsonl(pairs, relative_to: Path | None = None) -> str:
    return "".join(
        json.dumps(
            {
                "image": shown(pair.image, relative_to),
                "label": shown(pair.label, relative_to),
                "copy": pair.copy,
                "deformed": pair.deformed,
            }
        )
        + "\n"
        for pair in pairs
    )


@dataclass(frozen=True)
class MmsegSplit:
    """mmseg's view of a manifest: names without suffix, and one dataset per label set (original, copy k)."""

    names: list[str]
    img_dir: Path
    img_suffix: str
    datasets: list[dict]  # data_prefix seg_map_path and seg_map_suffix of each label set

    def split_text(self) -> str:
        return "".join(name + "\n" for name in self.names)

    def config(self, split_file: str, dataset_type: str = "BaseSegDataset", relative_to: Path | None = None) -> str:
        """A ``ConcatDataset`` of the label sets, each reading ``split_file``; for a config's ``train_dataloader``."""
        parts = []
        for dataset in self.datasets:
            prefix = dict(
                img_path=shown(self.img_dir, relative_to), seg_map_path=shown(dataset["ann_dir"], relative_to)
            )
            parts.append(
                f"        dict(type={dataset_type!r}, ann_file={split_file!r}, data_prefix={prefix!r},\n"
                f"             img_suffix={self.img_suffix!r}, seg_map_suffix={dataset['seg_map_suffix']!r},\n"
                "             pipeline=train_pipeline),  # " + dataset["name"]
            )
        return "train_dataset = dict(\n    type='ConcatDataset',\n    datasets=[\n" + "\n".join(parts) + "\n    ],\n)\n"


def mmseg_split(
    manifest: os.PathLike | str,
    copies: str = "all",
    labels: os.PathLike | str | None = None,
    images: os.PathLike | str | None = None,
    verify: bool = True,
    log: Callable[[str], None] | None = None,
) -> MmsegSplit:
    """The split list and label sets of a manifest as mmseg's ``BaseSegDataset`` reads them.

    mmseg derives an image and a label path from one name (``name +
    img_suffix`` in ``img_dir``, ``name + seg_map_suffix`` in ``ann_dir``),
    so every source must pair with an image of one suffix, and every copy k
    sit at ``name + suffix_k`` in the output folder, as the default name
    template gives; a manifest that does not is a [`UsageError`][nsegaug.errors.UsageError] that
    says why (use the csv or jsonl lists, or nsegaug.mmseg's dataset).
    mmseg reads a label file as it is, so a colour-coded run (``palette``)
    is refused too: its labels would load as colours, not class indices.
    So is a name the list cannot hold on one line as it is (a line break,
    spaces around it: mmseg strips each line).
    """
    opened = open_manifest(manifest)  # once: a manifest in a bucket is downloaded to be read
    if opened.parameters.get("palette"):
        raise UsageError(
            f"{opened.path}: colour-coded labels (colour table {opened.parameters['palette']}): mmseg reads a label "
            "file as it is, so they would load as (H, W, 3) colours, not class indices; make index maps from them "
            "and generate from those, or export csv or jsonl for a loader that applies the colour table"
        )
    label_suffix = opened.parameters.get("label_suffix") or ""
    names: list[str] = []
    images_at: set[tuple[Path, str]] = set()
    sets: dict[int, tuple[Path, str]] = {}
    members: dict[int, int] = {}
    for pair in _pairs(opened, copies, labels, images, verify, log):
        if is_volume(pair.key):
            raise UsageError(
                f"{shown_path(pair.label)}: a NIfTI volume; mmsegmentation trains on 2D images: export csv or jsonl"
            )
        members[pair.copy] = members.get(pair.copy, 0) + 1
        key = PurePosixPath(pair.key)
        name = (key.parent / strip_suffix(key.stem, label_suffix)).as_posix()
        if "\n" in name or "\r" in name or name != name.strip():
            raise UsageError(
                f"{shown_path(pair.label)}: mmseg's split list holds one name per line, stripped of spaces around "
                "it, so it cannot name this file (a line break or spaces at an end of its name); rename it, or "
                "export csv or jsonl"
            )
        if not names or names[-1] != name:
            names.append(name)
        images_at.add(_split_path(pair.image, name))
        place = _split_path(pair.label, name)
        if sets.setdefault(pair.copy, place) != place:
            raise UsageError(
                f"{pair.label}: not at {sets[pair.copy][0]}/<name>{sets[pair.copy][1]} like the others of copy "
                f"{pair.copy}: mmseg's lists cannot name it; export csv or jsonl, or use nsegaug.mmseg"
            )
    partial = sorted(copy for copy, count in members.items() if count != len(names))
    if partial:  # one split list serves every label set: each must hold every name
        raise UsageError(
            f"copy {partial[0]} is not deformed for every image (the prob coin): one mmseg split list cannot "
            "leave it out for some of them; export all copies, or csv or jsonl"
        )
    if len(images_at) > 1:
        found = ", ".join(sorted(f"{root}/<name>{suffix}" for root, suffix in images_at))
        raise UsageError(f"images at several places or suffixes ({found}): mmseg's lists need one")
    ((img_dir, img_suffix),) = images_at
    datasets = [
        {
            "name": "original labels" if copy == 0 else f"copy {copy}",
            "ann_dir": sets[copy][0],
            "seg_map_suffix": sets[copy][1],
        }
        for copy in sorted(sets)
    ]
    return MmsegSplit(names, img_dir, img_suffix, datasets)


def _split_path(path: Path, name: str) -> tuple[Path, str]:
    """``path`` as (folder, suffix) around ``name``: ``folder/name + suffix``, or a
    [`UsageError`][nsegaug.errors.UsageError]."""
    text = str(path) if storage.is_url(path) else Path(os.path.abspath(path)).as_posix()
    at = text.rfind("/" + name)
    suffix = text[at + 1 + len(name) :] if at >= 0 else "/"
    if at < 0 or "/" in suffix:
        raise UsageError(f"{path}: not named after {name}: mmseg's lists cannot name it; export csv or jsonl")
    return storage.as_location(text[:at]), suffix
