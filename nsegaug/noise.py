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
from pathlib import Path

from ._files.label_folders import Sample
from ._jobs import JobConfig, JobSummary, MaskJob, Output, run_job
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
