"""The torch side of the data: a Dataset of (image, label) pairs, joint augmentation, samplers and loaders.

The arithmetic of the augmentation is in pure functions of arrays and drawn
parameters (``draw_augmentation``, ``warp_image``, ``warp_label``), the
randomness in ``sample_rng`` (seed, epoch, sample key): any worker, rank or
resumed run sees a sample the same way in the same epoch.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .. import storage
from ..errors import NsegaugError, StorageError
from ..io import ColourPalette
from ..manifest import ImageSample
from ..sampling import choose_label, sample_rng
from ..torch import component_boxes
from .config import MEAN, STD, TrainError
from .samples import read_checked_label


@dataclass(frozen=True)
class Augmentation:
    """One draw of the joint transform: scale the image, take a crop at (top, left), maybe mirror it."""

    scale: float
    top: int
    left: int
    flip: bool


def draw_augmentation(
    rng: np.random.Generator,
    height: int,
    width: int,
    crop: tuple[int, int],
    scale_range: tuple[float, float],
    hflip: bool,
) -> Augmentation:
    """Scale uniform in ``scale_range``, crop position uniform over the scaled image, flip with chance 1/2.

    Always draws three numbers and a coin, so the stream does not depend on
    the options' values.
    """
    scale = float(rng.uniform(*scale_range))
    room_y = max(round(height * scale) - crop[0], 0)
    room_x = max(round(width * scale) - crop[1], 0)
    top, left = int(rng.integers(0, room_y + 1)), int(rng.integers(0, room_x + 1))
    flip = bool(rng.random() < 0.5) and hflip
    return Augmentation(scale, top, left, flip)


def source_indices(size: int, offset: int, scale: float, flip: bool) -> np.ndarray:
    """For each of ``size`` output pixels along one axis, the source pixel whose area holds its centre.

    Pixel centres are aligned as in ``cv2.resize``: output pixel ``o`` of the
    scaled image covers source coordinate ``(o + 0.5) / scale``. Indices outside
    the source fall in the padding.
    """
    outputs = np.arange(size)
    if flip:
        outputs = outputs[::-1]
    return np.floor((outputs + offset + 0.5) / scale).astype(np.int64)


def warp_label(label: np.ndarray, augmentation: Augmentation, crop: tuple[int, int], ignore_index: int) -> np.ndarray:
    """The label under ``augmentation``: nearest neighbour only, padding set to ``ignore_index``.

    Every output value is a source value or the ignore index, so no class is
    ever invented or blended.
    """
    rows = source_indices(crop[0], augmentation.top, augmentation.scale, False)
    cols = source_indices(crop[1], augmentation.left, augmentation.scale, augmentation.flip)
    row_ok = (rows >= 0) & (rows < label.shape[0])
    col_ok = (cols >= 0) & (cols < label.shape[1])
    out = label[np.clip(rows, 0, label.shape[0] - 1)[:, None], np.clip(cols, 0, label.shape[1] - 1)[None, :]]
    out = out.astype(np.int64)
    out[~row_ok, :] = ignore_index
    out[:, ~col_ok] = ignore_index
    return out


def warp_image(image: np.ndarray, augmentation: Augmentation, crop: tuple[int, int]) -> np.ndarray:
    """The image under ``augmentation``: bilinear, computed only for the crop's pixels, padding 0.

    One ``cv2.warpAffine`` does scale, crop and flip, so a 2x scale of a large
    image costs the crop, not the whole scaled image.
    """
    inverse = 1.0 / augmentation.scale
    if augmentation.flip:
        x_factor, x_shift = -inverse, (crop[1] - 1 + augmentation.left + 0.5) * inverse - 0.5
    else:
        x_factor, x_shift = inverse, (augmentation.left + 0.5) * inverse - 0.5
    y_shift = (augmentation.top + 0.5) * inverse - 0.5
    matrix = np.array([[x_factor, 0.0, x_shift], [0.0, inverse, y_shift]])
    out = cv2.warpAffine(
        image,
        matrix,
        (crop[1], crop[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,  # edge pixels interpolate within the image, not with the padding
    )
    # Padding exactly where the label has its ignore padding.
    rows = source_indices(crop[0], augmentation.top, augmentation.scale, False)
    cols = source_indices(crop[1], augmentation.left, augmentation.scale, augmentation.flip)
    out[(rows < 0) | (rows >= image.shape[0]), :] = 0
    out[:, (cols < 0) | (cols >= image.shape[1])] = 0
    return out


def normalize(image: torch.Tensor, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> torch.Tensor:
    """(..., 3, H, W) uint8 or float in 0..255 -> float32 with the channel statistics removed."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=image.device).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=image.device).view(-1, 1, 1)
    return (image.float() - mean_t) / std_t


def read_image(path: os.PathLike | str) -> np.ndarray:
    """An image file (or fsspec URL) as (H, W, 3) uint8 RGB."""
    if storage.is_url(path):
        image = cv2.imdecode(np.frombuffer(storage.read_bytes(path), np.uint8), cv2.IMREAD_COLOR)
    else:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise TrainError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class SegmentationDataset(Dataset):
    """(image, label) pairs of [`ImageSample`][nsegaug.manifest.ImageSample]s, for training (augmented) or evaluation
    (as they are).

    Training: each item is a source image with, per epoch, the original label
    or one of its deformed copies (chance ``prob`` of a deformed one; never
    with ``baseline``), scaled, cropped to ``crop`` and maybe mirrored jointly.
    Index with ``(epoch, index)`` (the samplers here do) or with ``index`` for
    ``self.epoch``. Returns a (3, H, W) tensor, float32 normalised or uint8
    with ``normalize=False`` (then normalise on the device with
    `normalize`), and an (H, W) int64 label.

    Online training (the label deformed on the device, not read from a copy):
    give ``area_thresh`` and samples with their originals only; training items
    then also hold the final label's small-component boxes
    ([`nsegaug.torch.component_boxes`][nsegaug.torch.component_boxes] with ``ignore_index``, so the
    crop's ignore padding is never a small object), for a loader with
    [`nsegaug.torch.collate_with_boxes`][nsegaug.torch.collate_with_boxes] and
    [`nsegaug.torch.deform_batch`][nsegaug.torch.deform_batch].
    """

    def __init__(
        self,
        samples: Sequence[ImageSample],
        *,
        train: bool,
        ignore_index: int = 255,
        prob: float = 0.5,
        baseline: bool = False,
        seed: int = 0,
        crop: tuple[int, int] = (512, 512),
        scale_range: tuple[float, float] = (0.5, 2.0),
        hflip: bool = True,
        normalize: bool = True,
        mean: Sequence[float] = MEAN,
        std: Sequence[float] = STD,
        colour_palette: ColourPalette | None = None,
        area_thresh: float | None = None,
    ) -> None:
        self.samples = list(samples)
        self.train, self.ignore_index, self.prob, self.baseline, self.seed = train, ignore_index, prob, baseline, seed
        self.crop, self.scale_range, self.hflip = tuple(crop), tuple(scale_range), hflip
        self.normalize, self.mean, self.std, self.colour_palette = normalize, tuple(mean), tuple(std), colour_palette
        self.area_thresh = area_thresh
        self.epoch = 0
        # How this process reaches remote files; a DataLoader worker is another process and sets it again.
        self.storage = storage.settings()

    def __len__(self) -> int:
        return len(self.samples)

    def label_index(self, epoch: int, index: int) -> int:
        """Which of the sample's labels ``epoch`` uses (0 = the original)."""
        if not self.train:
            return 0
        sample = self.samples[index]
        coin, pick = sample_rng(self.seed, epoch, sample.key).random(2)
        return choose_label(coin, pick, sample.deformed_copies, self.prob, self.baseline)

    def __getitem__(self, item) -> tuple[torch.Tensor, ...]:
        try:
            return self._load(item)
        except NsegaugError as error:  # a file that cannot be used: its one line, from any worker
            raise SampleError(str(error)) from error
        except OSError as error:
            raise SampleError(str(StorageError.from_os_error(error))) from error

    def _load(self, item) -> tuple[torch.Tensor, ...]:
        storage.configure(*self.storage)
        epoch, index = item if isinstance(item, tuple) else (self.epoch, item)
        sample = self.samples[index]
        image = read_image(sample.image)
        if not self.train:
            label = read_checked_label(sample.labels[0], sample.checksum(0), self.colour_palette).indices
            label = label.astype(np.int64)
        else:
            rng = sample_rng(self.seed, epoch, sample.key)
            coin, pick = rng.random(2)
            chosen = choose_label(coin, pick, sample.deformed_copies, self.prob, self.baseline)
            label = read_checked_label(sample.labels[chosen], sample.checksum(chosen), self.colour_palette).indices
            if label.shape != image.shape[:2]:
                raise TrainError(f"{sample.labels[chosen]}: label size {label.shape} differs from {sample.image}")
            augmentation = draw_augmentation(rng, *image.shape[:2], self.crop, self.scale_range, self.hflip)
            image = warp_image(image, augmentation, self.crop)
            label = warp_label(label, augmentation, self.crop, self.ignore_index)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.normalize:
            tensor = normalize(tensor, self.mean, self.std)
        if self.train and self.area_thresh is not None:
            boxes = component_boxes(label, self.area_thresh, self.ignore_index)
            return tensor, torch.from_numpy(label.astype(np.int64, copy=False)), boxes
        return tensor, torch.from_numpy(label.astype(np.int64, copy=False))


class SampleError(TrainError):
    """A sample that cannot be loaded. Raised in a DataLoader worker, it reaches the main process rebuilt by
    torch from one string, the worker's whole traceback; only that traceback's last line, the reason, is kept,
    so the user still sees one line naming the file."""

    def __init__(self, message: str) -> None:
        if "Original Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last.partition(": ")[2] or last
        super().__init__(message)


class EpochBatchSampler(Sampler):
    """Endless batches of ``(epoch, index)`` for one rank, epoch after epoch from ``start_epoch``.

    Each epoch's order is ``DistributedSampler``'s (shuffled by seed + epoch,
    split across ranks, the tail that does not fill a batch on every rank
    dropped), so it depends only on (seed, epoch, rank, world size). The first
    ``skip_batches`` of ``start_epoch`` are skipped without being loaded: a
    resumed run continues with the very batch it would have seen next.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_epoch: int = 0,
        skip_batches: int = 0,
    ) -> None:
        self.order = DistributedSampler(
            range(length), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size, self.start_epoch, self.skip_batches = batch_size, start_epoch, skip_batches
        self.batches_per_epoch = len(self.order) // batch_size
        if self.batches_per_epoch == 0:
            raise TrainError(
                f"{length} training image(s) give {len(self.order)} per process, fewer than --batch-size "
                f"{batch_size}: lower --batch-size or add images"
            )

    def epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        self.order.set_epoch(epoch)
        indices = list(self.order)
        return [
            [(epoch, index) for index in indices[start : start + self.batch_size]]
            for start in range(0, self.batches_per_epoch * self.batch_size, self.batch_size)
        ]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.start_epoch
        while True:
            batches = self.epoch_batches(epoch)
            yield from batches[self.skip_batches if epoch == self.start_epoch else 0 :]
            epoch += 1


def shard(length: int, rank: int, world_size: int) -> list[int]:
    """Evaluation indices of one rank: every image exactly once over all ranks (no padding, unlike
    ``DistributedSampler``, which would count repeated images twice in the metrics)."""
    return list(range(rank, length, world_size))


def seed_worker(worker_id: int) -> None:
    """Worker start: one OpenCV and one torch thread (the workers are the parallelism), seeded global RNGs.

    The data itself does not use these RNGs (see ``sample_rng``); seeding them
    keeps any user code in a worker reproducible too.
    """
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


def worker_context(workers: int):
    """Start DataLoader workers from a fork server, not by forking this process.

    By the time workers start, this process may have OpenMP (torch) and
    OpenCV thread pools; a child forked from it inherits their locks but not
    their threads, and can hang on its first OpenCV or torch call. The fork
    server is a fresh process that has imported this module (torch, cv2)
    once, so each worker starts fast and clean.
    """
    if workers == 0:
        return None
    if "forkserver" in multiprocessing.get_all_start_methods():
        multiprocessing.set_forkserver_preload([__name__])
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def train_loader(
    dataset: SegmentationDataset,
    sampler: EpochBatchSampler,
    workers: int,
    pin_memory: bool,
    seed: int,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """The training batches; ``collate_fn=nsegaug.torch.collate_with_boxes`` for a dataset with ``area_thresh``."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=workers,
        multiprocessing_context=worker_context(workers),
        pin_memory=pin_memory,
        worker_init_fn=seed_worker,
        generator=generator,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )


def eval_loader(dataset: SegmentationDataset, rank: int, world_size: int, workers: int, pin_memory: bool) -> DataLoader:
    # Batch size 1: validation images keep their own sizes.
    return DataLoader(
        torch.utils.data.Subset(dataset, shard(len(dataset), rank, world_size)),
        batch_size=1,
        shuffle=False,
        num_workers=workers,
        multiprocessing_context=worker_context(workers),
        pin_memory=pin_memory,
        worker_init_fn=seed_worker,
        persistent_workers=workers > 0,
    )
