"""A generated dataset as its users see it: (image, label) samples from a manifest or folders, their checks,
and the offline sampling rule (which of a mask's K + 1 labels an epoch trains on).

NumPy and Pillow only, no torch: ``nsegaug train`` and the mmsegmentation
adapter (:mod:`nsegaug.mmseg`) share it, and bad data is reported before a
model is built or a worker started.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import storage
from .dataset import find_image, iter_label_files
from .errors import TrainError, shown_path
from .io import (
    ColourPalette,
    LabelFormatError,
    LabelImage,
    load_colour_palette,
    open_image,
    read_label,
    size_mismatch,
)
from .manifest import CopyRow, open_manifest
from .seeding import key_words
from .storage import sha256_bytes

# How many offending files an error message names; the count covers them all.
SHOWN_PROBLEMS = 10
# Keeps the label-choice streams apart from generate's (seed, path, copy) streams.
_TRAIN_STREAM = 0x6E736774  # "nsgt"
# Keeps the seeds of --online's deformation generators apart from the seed of the initial weights.
_ONLINE_STREAM = 0x6E73676F  # "nsgo"


@dataclass(frozen=True)
class ImageSample:
    """One image and its label maps: the original first, then the K copies (training) or nothing more (validation)."""

    key: str  # label path relative to its root: the seeding key
    image: Path | None  # None: the manifest row has no paired image (an error before training)
    labels: tuple[Path, ...]
    deformed: tuple[bool, ...]  # per label; False for the original and for copies the --prob coin left alone
    # Per label, the SHA-256 its manifest row recorded (sha256_label of the source, sha256_output of a copy);
    # empty: not checked (folder samples, or changed labels allowed).
    checksums: tuple[str, ...] = ()

    def checksum(self, index: int) -> str | None:
        """The checksum label ``index`` must have, or None where it is not checked."""
        return self.checksums[index] if self.checksums else None

    @property
    def deformed_copies(self) -> tuple[int, ...]:
        return tuple(index for index, deformed in enumerate(self.deformed) if deformed)


@dataclass(frozen=True)
class ManifestData:
    samples: list[ImageSample]
    colour_palette: ColourPalette | None
    parameters: dict


def load_manifest(
    manifest: Path, labels: Path | None = None, images: Path | None = None, verify: bool = True
) -> ManifestData:
    """The samples a ``nsegaug generate`` manifest lists, one per source image.

    Paths are resolved as the manifest defines them: ``label`` and ``image``
    against the folders recorded in ``manifest.meta.json`` (or ``labels`` and
    ``images``, where the data is now), ``output`` against the manifest's
    folder. A later row for the same (label, copy) replaces an earlier one,
    as in generate's own resume. With ``verify``, each sample carries its
    labels' recorded checksums, and every read of a label checks them
    (:func:`read_checked_label`).
    """
    opened = open_manifest(manifest)
    opened.require_kind("generate")
    opened.require_complete()
    parameters, manifest = opened.parameters, opened.path
    if not parameters.get("images"):
        raise TrainError(f"{manifest}: made without --images, so no label has an image; rerun generate with --images")
    labels_root, images_root = opened.folder("labels", labels), opened.folder("images", images)
    grouped: dict[str, dict[int, CopyRow]] = {}
    for row in opened.rows():
        grouped.setdefault(row.label, {})[row.copy] = row
    if not grouped:
        raise TrainError(f"{manifest}: no rows")
    samples = []
    for key in sorted(grouped):
        copies = grouped[key]
        ordered = [copies[index] for index in sorted(copies)]
        labels = tuple(opened.label_location(row, labels_root) for row in ordered)
        recorded = tuple(row.sha256_output if row.copy else row.sha256_label for row in ordered)
        image = ordered[0].image
        samples.append(
            ImageSample(
                key=key,
                image=storage.join(images_root, image) if image is not None else None,
                labels=labels,
                deformed=tuple(bool(row.deformed) for row in ordered),
                checksums=recorded if verify else (),
            )
        )
    palette_path = opened.folder("palette")
    palette = load_colour_palette(palette_path) if palette_path else None
    # The palette as a path that holds wherever the run goes next (a checkpoint records it for evaluate).
    shown = (
        palette_path if storage.is_url(palette_path) else str(Path(palette_path).resolve()) if palette_path else None
    )
    parameters = {**parameters, "palette": shown}
    return ManifestData(samples, palette, parameters)


def manifest_problems(data: ManifestData, copies_needed: bool = True) -> list[str]:
    """Rows that cannot be trained on, found without opening a file: no image, copies missing.

    ``copies_needed=False`` (online training, which reads the originals only)
    leaves the copies out.
    """
    copies = data.parameters.get("copies") if copies_needed else None
    problems = []
    for sample in data.samples:
        if sample.image is None:
            problems.append(f"{sample.key}: no paired image in the manifest")
        if copies is not None and len(sample.labels) != copies + 1:
            problems.append(f"{sample.key}: {len(sample.labels) - 1} copies listed, generate wrote {copies}")
    return problems


def original_samples(samples: Sequence[ImageSample]) -> list[ImageSample]:
    """The samples with their original label only: what online training reads (it deforms on the device)."""
    return [
        ImageSample(sample.key, sample.image, sample.labels[:1], (False,), sample.checksums[:1]) for sample in samples
    ]


def read_checked_label(path: Path, checksum: str | None, colour_palette: ColourPalette | None) -> LabelImage:
    """A label map, after checking that its bytes still have the ``checksum`` its manifest recorded (None: as it
    is). The bytes are read once: hashed, then decoded. A changed file is a :class:`TrainError` naming it."""
    if checksum is None:
        return read_label(path, colour_palette)
    data = storage.read_bytes(path)
    if sha256_bytes(data) != checksum:
        raise TrainError(
            f"{shown_path(path)}: changed since generate (its checksum differs from the manifest's); "
            "regenerate, or allow changed labels (--allow-changed-labels) to train on it as it is"
        )
    return read_label(path, colour_palette, data=data)


def folder_samples(
    labels: Path, images: Path, pattern: str | None = None, label_suffix: str = "", image_suffix: str = ""
) -> tuple[list[ImageSample], list[str]]:
    """Validation samples from a label folder and an image folder, paired as generate pairs them.

    Returns the samples and one problem line per label without an image.
    """
    labels, images = storage.as_location(labels), storage.as_location(images)
    for folder, what in ((labels, "label"), (images, "image")):
        if not storage.is_dir(folder):
            raise TrainError(f"{folder}: {what} folder not found")
    samples, problems = [], []
    for key in iter_label_files(labels, pattern):
        image = find_image(images, key, label_suffix, image_suffix)
        if image is None:
            problems.append(f"{storage.join(labels, key)}: no image with the same name in {images}")
            continue
        samples.append(ImageSample(key, storage.join(images, image), (storage.join(labels, key),), (False,)))
    if not samples and not problems:
        raise TrainError(f"{labels}: no label files found")
    return samples, problems


def check_samples(
    samples: Sequence[ImageSample],
    num_classes: int,
    ignore_index: int,
    colour_palette: ColourPalette | None = None,
    threads: int = 2,
) -> list[str]:
    """One line per file that would break training: missing, unreadable, wrong size, or class values out of range.

    Every file's size is read from its header; the pixel values of originals
    only, because copies are nearest-neighbour warps of their original and so
    hold a subset of its values. Threads, because Pillow decodes without the GIL.
    """
    with ThreadPoolExecutor(max(1, threads)) as pool:
        found = pool.map(lambda sample: _sample_problems(sample, num_classes, ignore_index, colour_palette), samples)
        return [line for lines in found for line in lines]


def _sample_problems(
    sample: ImageSample, num_classes: int, ignore_index: int, colour_palette: ColourPalette | None
) -> list[str]:
    if sample.image is None:
        return []  # reported by manifest_problems
    try:
        with open_image(sample.image) as image:
            width, height = image.size
    except FileNotFoundError:
        return [f"{sample.image}: image file not found"]
    except OSError as error:
        return [f"{sample.image}: unreadable image ({error})"]
    problems = []
    for index, path in enumerate(sample.labels):
        try:
            if index == 0:
                values = read_checked_label(path, sample.checksum(0), colour_palette).indices
                label_height, label_width = values.shape
                problems += _value_problems(path, values, num_classes, ignore_index)
            else:
                with open_image(path) as label:
                    label_width, label_height = label.size
        except FileNotFoundError:
            problems.append(f"{path}: label file not found")
            continue
        except (LabelFormatError, TrainError) as error:
            problems.append(str(error))
            continue
        except OSError as error:
            problems.append(f"{path}: unreadable label ({error})")
            continue
        if differs := size_mismatch(path, (label_width, label_height), sample.image, (width, height)):
            problems.append(differs)
    return problems


def _value_problems(path: Path, values: np.ndarray, num_classes: int, ignore_index: int) -> list[str]:
    bad = ((values < 0) | (values >= num_classes)) & (values != ignore_index)
    if not bad.any():
        return []
    found = np.unique(values[bad])
    shown = ", ".join(str(int(value)) for value in found[:5]) + (", ..." if len(found) > 5 else "")
    return [
        f"{path}: label value(s) {shown} in {int(bad.sum())} pixel(s) are not classes 0..{num_classes - 1} "
        f"nor the ignore index {ignore_index}"
    ]


def problems_message(problems: Sequence[str], what: str) -> str:
    """``N problem(s) in WHAT`` and the first few lines, for an error raised before training starts."""
    shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
    more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    return f"{len(problems)} problem(s) in {what}; fix or remove these files:\n  {shown}{more}"


def sample_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    """The random stream of one sample in one epoch: label choice first, then crop, scale and flip.

    Derived from (seed, epoch, sample key) only, never from global state, so
    a sample is treated the same in any worker, on any rank, and after resume.
    """
    return np.random.default_rng(np.random.SeedSequence([_TRAIN_STREAM, int(seed), int(epoch), *key_words(key)]))


def deformation_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s ``torch.Generator`` for online deformation.

    Derived from (seed, rank), so processes draw different deformations, and
    apart from ``seed`` itself, which seeds the initial weights.
    """
    state = np.random.SeedSequence([_ONLINE_STREAM, int(seed), int(rank)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1  # < 2**63: a non-negative int64, as torch's manual_seed takes it everywhere


def choose_label(coin: float, pick: float, deformed_copies: Sequence[int], prob: float, baseline: bool) -> int:
    """Which label an epoch trains on: 0 (the original) or the index of a deformed copy.

    ``prob`` is the chance of a deformed label, the offline form of the
    method's online probability: with ``coin < prob`` one of the deformed
    copies, picked uniformly by ``pick`` in [0, 1). Copies that generate's own
    coin left unchanged are byte-identical to the original, so they are not
    counted as deformed ones. Callers draw ``coin`` and ``pick`` whatever the
    outcome, so ``baseline`` changes nothing else in the stream.
    """
    if baseline or coin >= prob or not deformed_copies:
        return 0
    return int(deformed_copies[min(int(pick * len(deformed_copies)), len(deformed_copies) - 1)])


def chosen_labels(samples: Sequence[ImageSample], seed: int, epoch: int, prob: float, baseline: bool) -> list[int]:
    """The label index each sample uses in ``epoch`` (as the dataset draws it); for logs and tests."""
    choices = []
    for sample in samples:
        rng = sample_rng(seed, epoch, sample.key)
        coin, pick = rng.random(2)
        choices.append(choose_label(coin, pick, sample.deformed_copies, prob, baseline))
    return choices
