"""Training's data before a model exists: a manifest's samples, validation folders, and every file checked once.

NumPy and Pillow only, no torch: ``nsegaug train`` and ``evaluate`` report bad data here before a model
is built or a worker started. The manifest is read by
[`open_generated`][nsegaug.manifest.open_generated] (the one reader of generated manifests); which label
an epoch uses is [`nsegaug.sampling`][nsegaug.sampling].
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import storage
from .._files.label_folders import find_image, iter_label_files
from ..errors import ManifestError, TrainError
from ..io import (
    ColourPalette,
    LabelFormatError,
    LabelImage,
    load_colour_palette,
    open_image,
    read_label,
    size_mismatch,
)
from ..manifest import GeneratedDataset, ImageSample, check_bytes, open_generated


@dataclass(frozen=True)
class TrainingData:
    """A manifest's samples, as training reads them, with its colour table and its run's parameters."""

    generated: GeneratedDataset
    samples: list[ImageSample]
    colour_palette: ColourPalette | None
    parameters: dict  # the generate run's, with its colour table as a path that holds wherever the run goes


def training_data(
    manifest: Path | str, labels: Path | str | None = None, images: Path | str | None = None, verify: bool = True
) -> TrainingData:
    """The samples a ``nsegaug generate --images`` manifest lists, one per source image (see
    [`open_generated`][nsegaug.manifest.open_generated]). With ``verify``, every read of a label checks it
    against its row's checksum ([`read_checked_label`][nsegaug.train.samples.read_checked_label])."""
    generated = open_generated(manifest, labels, images)
    samples = generated.samples(verify)
    palette_path = generated.palette()
    palette = load_colour_palette(palette_path) if palette_path else None
    # The palette as a path that holds wherever the run goes next (a checkpoint records it for evaluate).
    shown = (
        palette_path if storage.is_url(palette_path) else str(Path(palette_path).resolve()) if palette_path else None
    )
    return TrainingData(generated, samples, palette, {**generated.parameters, "palette": shown})


def original_samples(samples: Sequence[ImageSample]) -> list[ImageSample]:
    """The samples with their original label only: what online training reads (it deforms on the device)."""
    return [
        ImageSample(sample.key, sample.image, sample.labels[:1], (False,), sample.checksums[:1]) for sample in samples
    ]


def read_checked_label(path: Path, checksum: str | None, colour_palette: ColourPalette | None) -> LabelImage:
    """A label map, after checking that its bytes still have the ``checksum`` its manifest recorded (None: as it
    is). The bytes are read once: hashed, then decoded. A changed file is a
    [`ManifestError`][nsegaug.errors.ManifestError] naming it."""
    if checksum is None:
        return read_label(path, colour_palette)
    data = storage.read_bytes(path)
    check_bytes(data, path, checksum)
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
        return []  # reported by GeneratedDataset.problems
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
        except (LabelFormatError, ManifestError) as error:
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
