"""A finished ``generate`` run read as the dataset it lists: the one reader of generated manifests.

``nsegaug export``, ``nsegaug train``, the mmsegmentation dataset ([`nsegaug.mmseg`][nsegaug.mmseg]) and
``nsegaug preview`` read a generate manifest's rows as files here: where each label map (the source, copy 0,
or one of its copies) and its image are now, and the SHA-256 its row recorded
([`CopyRow.listed_sha256`][nsegaug.manifest.CopyRow.listed_sha256]). Every refusal is one
[`ManifestError`][nsegaug.errors.ManifestError] naming the manifest's line or the file.

NumPy-free and torch-free: a command checks its data here before it loads anything heavy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .. import storage
from ..errors import ManifestError, shown_path
from ..storage import Location, sha256_bytes
from .reading import Manifest, open_manifest
from .rows import CopyRow

# How many problems a message lists; the count covers them all.
SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class ListedPair:
    """One row of a generate manifest as files: its label map (the source or a copy) and the image it labels."""

    where: str  # the row's place, ``manifest:line``, for messages
    row: CopyRow
    label: Location
    image: Location | None  # None: the row has no paired image
    checksum: str  # the label map's SHA-256 as the row recorded it


@dataclass(frozen=True)
class ImageSample:
    """One image and its label maps: the original first, then the K copies (training) or nothing more (validation)."""

    key: str  # label path relative to its root: the seeding key
    image: Location | None  # None: the manifest row has no paired image (an error before training)
    labels: tuple[Location, ...]
    deformed: tuple[bool, ...]  # per label; False for the original and for copies the --prob coin left alone
    # Per label, the SHA-256 its manifest row recorded; empty: not checked (folder samples, or changed labels allowed).
    checksums: tuple[str, ...] = ()

    def checksum(self, index: int) -> str | None:
        """The checksum label ``index`` must have, or None where it is not checked."""
        return self.checksums[index] if self.checksums else None

    @property
    def deformed_copies(self) -> tuple[int, ...]:
        return tuple(index for index, deformed in enumerate(self.deformed) if deformed)


@dataclass(frozen=True)
class GeneratedDataset:
    """A finished generate run's manifest, with the folders its rows are read from found once."""

    manifest: Manifest
    labels: Location  # where the sources are now
    images: Location  # where the images are now

    @property
    def parameters(self) -> dict:
        return self.manifest.parameters

    def palette(self) -> Location | None:
        """The run's colour table (a file), where its labels are colour-coded; None where they are indices."""
        return self.manifest.folder("palette")

    def pairs(self) -> Iterator[ListedPair]:
        """Every row as files, in the manifest's order (by label, then copy): rows of one run, at least one."""
        for number, row in self.manifest.checked_rows():
            image = storage.join(self.images, row.image) if row.image is not None else None
            label = self.manifest.label_location(row, self.labels)
            yield ListedPair(f"{self.manifest.path}:{number}", row, label, image, row.listed_sha256)

    def samples(self, verify: bool = True) -> list[ImageSample]:
        """One sample per source image, its labels in copy order; with ``verify``, each with its recorded checksums."""
        grouped: dict[str, list[ListedPair]] = {}
        for pair in self.pairs():
            grouped.setdefault(pair.row.label, []).append(pair)
        samples = []
        for key in sorted(grouped):
            listed = sorted(grouped[key], key=lambda pair: pair.row.copy)
            samples.append(
                ImageSample(
                    key=key,
                    image=listed[0].image,
                    labels=tuple(pair.label for pair in listed),
                    deformed=tuple(bool(pair.row.deformed) for pair in listed),
                    checksums=tuple(pair.checksum for pair in listed) if verify else (),
                )
            )
        return samples

    def problems(self, samples: Sequence[ImageSample], copies_needed: bool = True) -> list[str]:
        """Samples that cannot be trained on, found without opening a file: no image, copies missing.

        ``copies_needed=False`` (online training, which reads the originals only) leaves the copies out.
        """
        copies = self.parameters.get("copies") if copies_needed else None
        problems = []
        for sample in samples:
            if sample.image is None:
                problems.append(f"{sample.key}: no paired image in the manifest")
            if copies is not None and len(sample.labels) != copies + 1:
                problems.append(f"{sample.key}: {len(sample.labels) - 1} copies listed, generate wrote {copies}")
        return problems


def open_generated(
    manifest: Manifest | os.PathLike | str,
    labels: os.PathLike | str | None = None,
    images: os.PathLike | str | None = None,
) -> GeneratedDataset:
    """A finished ``generate --images`` run's manifest (or its folder), ready to be read as a dataset.

    Sources and images are found where ``manifest.meta.json`` records them, or at ``labels`` and ``images``
    where the data moved; copies under the manifest's folder. A manifest of another kind of run, of a run
    that did not finish, or of one made without images is a
    [`ManifestError`][nsegaug.errors.ManifestError].
    """
    opened = manifest if isinstance(manifest, Manifest) else open_manifest(manifest)
    opened.require_kind("generate")
    opened.require_complete()
    labels_root, images_root = opened.folder("labels", labels), opened.folder("images", images)
    if images_root is None:
        raise ManifestError(f"{opened.path}: made without images, so it pairs no label with an image")
    return GeneratedDataset(opened, labels_root, images_root)


def changed_message(path: Location, where: str | None = None) -> str:
    """The one line that says a listed file is not what its row recorded (``where``: the manifest's line)."""
    prefix = f"{where}: " if where else ""
    return (
        f"{prefix}{shown_path(path)}: changed since generate (its checksum differs from the manifest's); "
        "generate again, or allow changed labels to use it as it is"
    )


def read_listed(path: Location, checksum: str | None, where: str | None = None) -> bytes:
    """The bytes of a file a manifest lists, checked against the SHA-256 its row recorded (None: unchecked).

    A missing, unreadable or changed file is a [`ManifestError`][nsegaug.errors.ManifestError] naming it
    (after ``where``, the manifest's line, where given).
    """
    prefix = f"{where}: " if where else ""
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError as error:
        raise ManifestError(f"{prefix}{shown_path(path)}: file not found") from error
    except OSError as error:
        raise ManifestError(f"{prefix}{shown_path(path)}: cannot read ({error.strerror or error})") from error
    if checksum is not None:
        check_bytes(data, path, checksum, where)
    return data


def check_bytes(data: bytes, path: Location, checksum: str, where: str | None = None) -> None:
    """A [`ManifestError`][nsegaug.errors.ManifestError] unless ``data``, read from ``path``, has the SHA-256
    its manifest row recorded."""
    if sha256_bytes(data) != checksum:
        raise ManifestError(changed_message(path, where))


def check_unchanged(pairs: Iterable[ListedPair], threads: int = 8) -> None:
    """Each pair's label still has the checksum its row recorded; the first (in list order) that does not is a
    [`ManifestError`][nsegaug.errors.ManifestError] naming it. Threads: reading and hashing release the GIL."""

    def problem(pair: ListedPair) -> str | None:
        prefix = f"{pair.where}: {shown_path(pair.label)}"
        try:
            if storage.sha256(pair.label) == pair.checksum:
                return None
        except FileNotFoundError:
            return f"{prefix}: file not found"
        except OSError as error:
            return f"{prefix}: cannot read ({error.strerror or error})"
        return changed_message(pair.label, pair.where)

    with ThreadPoolExecutor(threads) as pool:
        for found in pool.map(problem, pairs):
            if found is not None:
                raise ManifestError(found)


def problems_message(problems: Sequence[str], what: str) -> str:
    """``N problem(s) in WHAT`` and the first few lines, for an error raised before a dataset is used."""
    shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
    more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    return f"{len(problems)} problem(s) in {what}; fix or remove these files:\n  {shown}{more}"
