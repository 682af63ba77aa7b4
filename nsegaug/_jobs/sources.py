"""The masks of a job: walked from its label folder, paired with their images."""

from __future__ import annotations

from collections.abc import Iterator

from .. import storage
from .._files.label_folders import LABEL_EXTENSIONS, Sample, find_image, iter_label_files
from ..errors import UsageError
from ..storage import is_url
from .config import JobConfig, Log


def plan(config: JobConfig, log: Log = lambda message: None) -> Iterator[Sample]:
    """The samples of the job, streamed from the label folder (images are paired by the workers)."""
    for label in iter_label_files(config.labels, config.pattern, warn=log, exclude=config.out):
        yield Sample(label, None)


def paired(config: JobConfig, sample: Sample) -> Sample:
    """``sample`` with its image from ``config.images`` (None where there is none, or no image folder)."""
    if config.images is None:
        return sample
    return Sample(sample.label, find_image(config.images, sample.label, config.label_suffix, config.image_suffix))


def count_masks(config: JobConfig) -> int | None:
    """How many label files the job has (None for a remote folder: not listed twice); none is a UsageError."""
    if is_url(config.labels):
        total = None if next(iter_label_files(config.labels, config.pattern), None) is not None else 0
    else:
        total = sum(1 for _ in iter_label_files(config.labels, config.pattern, exclude=config.out))
    if total == 0:
        what = f"matching {config.pattern!r}" if config.pattern else f"with a label extension {LABEL_EXTENSIONS}"
        raise UsageError(f"{storage.shown(config.labels)}: no files {what}")
    return total
