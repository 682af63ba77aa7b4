"""The noise job: a noisy version of every label map, as a careless annotator would have drawn it.

The models are in [`nsegaug.noise_models`][nsegaug.noise_models]; this module runs them over a
label folder with `nsegaug._jobs`, so a noise run has every guarantee of
``generate``: formats and palettes kept, per-file seeded streams (the same
bytes for any number of workers), a manifest with the changed-pixel fraction
per map, atomic writes, resume, sources never touched. The noisy map of
``LABELS/a/x.png`` is ``OUT/a/x.png``: ``OUT`` is a label folder in its own
right, which ``generate`` and ``train`` take like any other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ._files.label_folders import Sample
from ._jobs import JobConfig, JobSummary, MaskJob, Output, map_reserved, run_job
from .io import check_png_level
from .manifest import NoiseRow
from .params import DEFAULT_NOISE, NoiseParams


@dataclass(frozen=True, kw_only=True)
class NoiseConfig(JobConfig):
    """A noise run: the models' parameters, with where and how it runs (`nsegaug._jobs.JobConfig`)."""

    params: NoiseParams = DEFAULT_NOISE
    png_level: int | None = None  # zlib's level of PNG outputs; None: nsegaug.io.DEFAULT_PNG_LEVEL

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "png_level", check_png_level(self.png_level))

    def parameters(self) -> dict:
        """The parameters that decide the outputs: recorded in the metadata, compared on resume."""
        return {**self.params.to_dict(), **self.source_parameters(), "png_level": self.png_level}


class NoiseJob(MaskJob):
    """One noisy map per mask, under the mask's own relative path."""

    kind = "noise"
    row_type = NoiseRow
    outputs_noun = "noisy maps"

    def __init__(self, config: NoiseConfig) -> None:
        super().__init__(config)
        self.maps = 0
        self.changed = 0.0

    def parameters(self) -> dict:
        return self.config.parameters()

    def outputs(self, label: str) -> list[str]:
        return [label]

    def make(self, sample: Sample, source: Path, data: bytes) -> tuple[list, list[Output]]:
        import numpy as np

        from .io import cached_colour_palette, encode_label, read_label
        from .noise_models import annotation_noise
        from .storage import sha256_bytes

        config = self.config
        # Held (or waited for, or refused with its estimate) before the map is decoded, as generate does.
        estimate = partial(noise_memory, file_bytes=len(data), params=config.params)
        with map_reserved(source, data, estimate, "add noise"):
            label_image = read_label(source, cached_colour_palette(config.palette), data=data)
            clean = label_image.indices
            if clean.ndim == 3:
                from .volume.slices import volume_noise

                noisy = volume_noise(clean, config.seed, sample.label, config.params, label_image.volume.axis_codes)
            else:
                noisy = annotation_noise(clean, config.seed, sample.label, config.params)
            encoded = encode_label(label_image, noisy, config.png_level)
        height, width = clean.shape[:2]
        row = NoiseRow(
            label=sample.label,
            image=sample.image,
            output=sample.label,
            changed_fraction=float(np.count_nonzero(noisy != clean)) / clean.size,
            height=height,
            width=width,
            sha256_label=sha256_bytes(data),
            sha256_output=sha256_bytes(encoded),
            depth=clean.shape[2] if clean.ndim == 3 else None,
        )
        return [row], [Output(sample.label, encoded)]

    def is_complete(self, rows: Mapping[int, object]) -> bool:
        return bool(rows)

    def observe(self, rows: list) -> None:
        for row in rows:
            self.maps += 1
            self.changed += row.changed_fraction

    def report(self) -> tuple[dict, list[str]]:
        if not self.maps:
            return {}, []
        counts = {"mean_changed_fraction": round(self.changed / self.maps, 6)}
        if self.changed == 0:
            return counts, ["no pixel changed in any map: the noise is too weak for these maps, or its models are off"]
        return counts, []


# Bytes a pixel that the noise models hold beyond the maps they take and make (read from nsegaug.noise_models;
# a pixel's class index is one byte in these figures), at their peak on a map with an object whose box is the whole
# map (a background around scattered objects, or a road across a street scene: every model works on an object's
# whole box, so this is the worst case). scipy's distance transform, on a whole-map mask, holds 33 at its peak
# (its result included; scipy 1.17, measured).
_EDT_BYTES = 33
# bias, boundary, simplify: the objects' masks (their boxes cover some twice the map), the protected cores and the
# drawing order (bool, int32), and the largest object's work: its mask, its inner distances (float64), its old and
# new outlines, the pixels gained, lost and unprotected, and a distance transform with its indices.
_OBJECT_BYTES = 2 + 1 + 4 + (1 + 8 + 2 + 3 + _EDT_BYTES)
# jitter: the displacement field drawn in float64 (16) and kept in float32 (8); then, with the float32 field as the
# sampling maps (8), the protected cores: the objects' masks (2), the cores (1), the largest object's mask and its
# inner distances (1 + 1 + a distance transform).
_FIELD_BYTES = max(16 + 8, 8 + 2 + 1 + 1 + 1 + _EDT_BYTES)
# jitter on a map with a side of 32767 px or more: OpenCV cannot remap it, NumPy gathers with int64 coordinates.
_WIDE_WARP_BYTES = 16


def noise_memory(
    size: tuple[int, int] | None, mode: str | None, file_bytes: int, params: NoiseParams = DEFAULT_NOISE
) -> int:
    """The most bytes ``noise`` holds for one map of ``size`` (width, height) and image ``mode``.

    Its file, and the largest of: its decoding
    ([`decoding_bytes`][nsegaug.io.decoding_bytes]), or the map with, for the most demanding of
    ``params.models``, the model's input and output maps and what the model
    itself holds: for bias, boundary and simplify, the objects' masks, their
    protected cores, the drawing order and the work on an object as large as
    the map (a Euclidean distance transform with its indices, on a float64
    distance map); for jitter, the displacement field (drawn in float64) and,
    after the warp, the protected cores. The models' sizes (radius, tolerance,
    amplitude, sigma) widen an object's window by a few pixels only: the
    figures hold at their largest (``benchmarks/bench_memory.py --noise``).
    With the margin of generate's estimate (``MEMORY_MARGIN``) for what the
    allocator keeps. ``size`` None (a header Pillow cannot read): the file
    alone, and reading it says what is wrong.
    """
    from ._resources.memory import MEMORY_MARGIN
    from .io import decoding_bytes, index_bytes

    if size is None:
        return file_bytes
    width, height = size
    pixels = width * height
    itemsize = index_bytes(mode)
    models = [_OBJECT_BYTES] if {"boundary", "simplify"} & set(params.models) else []
    if "bias" in params.models and params.bias_radius > 0:
        models.append(_OBJECT_BYTES)
    if "jitter" in params.models and params.jitter_amplitude > 0:
        models.append(_FIELD_BYTES + (_WIDE_WARP_BYTES if max(size) >= 32767 else 0))
    # The clean map stays held (the job compares the noisy one with it) under each model's input and output.
    noising = pixels * (3 * itemsize + max(models, default=0))
    return file_bytes + int(MEMORY_MARGIN * max(decoding_bytes(pixels, mode), noising))


def add_noise(
    config: NoiseConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    command_line: list[str] | None = None,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> JobSummary:
    """Write a noisy version of every label map under ``config.labels`` to ``config.out`` (same relative paths).

    The same (seed, relative path, parameters) always give the same bytes,
    for any ``jobs`` and after an interruption followed by ``resume=True``.
    See `nsegaug._jobs.run_job` for what it raises.
    """
    job = NoiseJob(config)
    return run_job(job, resume=resume, overwrite=overwrite, progress=progress, command_line=command_line, log=log)
