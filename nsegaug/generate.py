"""The generate job: K deformed copies of every mask, in parallel, resumable (see `nsegaug._jobs`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

from ._files.label_folders import DEFAULT_NAME_TEMPLATE, Sample, check_name_template, output_pattern
from ._files.label_folders import output_name as make_output_name
from ._jobs import JobConfig, JobSummary, MaskJob, Output, map_reserved, paired, plan, run_job
from .errors import LabelFormatError, UsageError
from .io import check_png_level
from .manifest import CopyRow
from .params import DEFAULT_PARAMS, DeformParams, check_copies, check_prob
from .volume.engine import VOLUME_ENGINE_VERSION

# A copy identical to its source is expected now and then (the paper's alpha = 1 pairs move nothing on most
# maps: a fifth of its pairs); past this share something is wrong, most often the threshold for the map size.
UNCHANGED_WARNING_SHARE = 0.5
# Past this mean share of suppressed pixels, the threshold protects most of every map.
SUPPRESSED_WARNING_SHARE = 0.5


@dataclass(frozen=True, kw_only=True)
class GenerateConfig(JobConfig):
    """Everything that decides what a generate run writes, plus how it runs.

    ``params`` decides how each copy is deformed; ``seed``, ``prob`` and
    ``copies`` how the copies are drawn; copy k of ``a/x.png`` is written to
    ``out/a/`` under ``name_template``. See `nsegaug._jobs.JobConfig`
    for the rest.
    """

    copies: int
    params: DeformParams = DEFAULT_PARAMS
    prob: float = 1.0
    name_template: str = DEFAULT_NAME_TEMPLATE
    png_level: int | None = None  # zlib's level of PNG outputs; None: nsegaug.io.DEFAULT_PNG_LEVEL

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "png_level", check_png_level(self.png_level))
        object.__setattr__(self, "copies", check_copies(self.copies))
        check_prob(self.prob)
        try:
            check_name_template(self.name_template)
        except ValueError as error:
            raise UsageError(str(error)) from error

    def parameters(self) -> dict:
        """The parameters that decide the outputs: recorded in the metadata, compared on resume."""
        return {
            "copies": self.copies,
            "prob": self.prob,
            **self.params.to_dict(),
            **self.source_parameters(),
            "name_template": self.name_template,
            "png_level": self.png_level,
            "volume_engine": VOLUME_ENGINE_VERSION,
        }


class GenerateJob(MaskJob):
    """K deformed copies of each mask, copy 0 being the source itself (listed, not written)."""

    kind = "generate"
    row_type = CopyRow
    outputs_noun = "copies"

    def __init__(self, config: GenerateConfig) -> None:
        super().__init__(config)
        self.unchanged = self.deformed = 0
        self.suppressed = 0.0
        self.volumes = 0  # deformed copies of 3-D volumes, whose threshold and margins read differently

    def parameters(self) -> dict:
        return self.config.parameters()

    def outputs(self, label: str) -> list[str]:
        return [make_output_name(label, k, self.config.name_template) for k in range(1, self.config.copies + 1)]

    def make(self, sample: Sample, source: Path, data: bytes) -> tuple[list, list[Output]]:
        from .components import count_runs
        from .copies import deformed_copies
        from .io import cached_colour_palette, encode_label, read_label
        from .storage import sha256_bytes

        config = self.config
        # The memory the map will take is held (or waited for, or refused) before it is decoded: workers deform
        # as many huge maps at once as fit, and one that cannot fit is refused with its estimate. A volume's
        # header is not an image's: its memory is checked by the volume engine once it is read.
        estimate = partial(map_memory, file_bytes=len(data), params=config.params)
        with map_reserved(source, data, estimate, "deform") as (held, (size, mode)):
            label_image = read_label(source, cached_colour_palette(config.palette), data=data)
            segment = label_image.indices
            _check_ignore_index(source, segment, config.params.ignore_index)
            _check_volume(source, segment, config.params)
            if segment.ndim == 2:
                held.resize(map_memory(size, mode, len(data), config.params, count_runs(segment)))
            source_sha = sha256_bytes(data)
            # Copy 0, the original: lets a training loop draw from all K + 1 labels.
            rows = [_row(sample, None, 0, None, segment.shape, source_sha, source_sha)]
            outputs = []
            drawn = deformed_copies(
                segment, sample.label, config.copies, config.params, config.seed, config.prob, label_image.spacing
            )
            for (copy_index, result), name in zip(drawn, self.outputs(sample.label), strict=True):
                encoded = encode_label(label_image, result.segment if result else segment, config.png_level)
                outputs.append(Output(name, encoded))
                rows.append(_row(sample, name, copy_index, result, segment.shape, source_sha, sha256_bytes(encoded)))
        return rows, outputs

    def is_complete(self, rows: Mapping[int, object]) -> bool:
        return set(rows) == set(range(self.config.copies + 1))

    def observe(self, rows: list) -> None:
        for row in rows:
            if row.deformed:
                self.deformed += 1
                self.unchanged += row.changed_fraction == 0
                self.suppressed += row.suppressed_fraction
                self.volumes += row.depth is not None

    def report(self) -> tuple[dict, list[str]]:
        counts = {"copies_deformed": self.deformed, "copies_unchanged": self.unchanged}
        if not self.deformed:
            return counts, []
        mean_suppressed = self.suppressed / self.deformed
        counts["mean_suppressed_fraction"] = round(mean_suppressed, 6)
        unchanged_share = self.unchanged / self.deformed
        if unchanged_share <= UNCHANGED_WARNING_SHARE and mean_suppressed <= SUPPRESSED_WARNING_SHARE:
            return counts, []
        identical = (
            f"{self.unchanged} of {self.deformed} deformed copies ({100 * unchanged_share:.1f}%) are identical to "
            f"their source, and suppression covers {100 * mean_suppressed:.1f}% of a map on average"
        )
        if mean_suppressed > SUPPRESSED_WARNING_SHARE and self.volumes:
            units = "mm³" if self.config.params.units == "mm" else "voxels"
            return counts, [
                f"{identical}: components of up to {self.config.params.area_thresh:g} {units} are protected, with a "
                "margin of alpha/2 along each axis, which on these volumes is most of them: lower area_thresh, or "
                "alpha (the margin grows with it)"
            ]
        if mean_suppressed > SUPPRESSED_WARNING_SHARE:
            return counts, [
                f"{identical}: components of up to {self.config.params.area_thresh:g} px are protected (with a "
                "margin of alpha/2), which on these maps is most of them. area_thresh is in pixels of full-size maps "
                "(1000 for 1024x2048): scale it with the map's area, e.g. 1000 * (H * W) / (1024 * 2048)"
            ]
        # Little is protected, so the displacement itself is too small to move a pixel by half a pixel.
        alphas = ", ".join(f"{alpha:g}" for alpha in sorted({alpha for alpha, _ in self.config.params.alpha_sigma}))
        return counts, [
            f"{identical}: the displacements are too small to move a label, not the protection of small objects. "
            f"alpha ({alphas}) is the noise amplitude before a blur with sigma, which shrinks it: raise alpha, or "
            "lower sigma, to change more pixels (the paper's alpha = 1 pairs move nothing on most maps)"
        ]


def map_memory(
    size: tuple[int, int] | None, mode: str | None, file_bytes: int, params: DeformParams, runs: int | None = None
) -> int:
    """The most bytes ``generate`` holds for one map of ``size`` (width, height) and image ``mode``.

    Its file, and the largest of: its decoding (Pillow's image, its bytes and
    the array), or the map with, one after the other, its labelling (once for
    all copies: ``nsegaug.components.labelling_bytes`` of its ``runs``
    when counted, else of a street scene's), a deformation with the boxes
    known (``nsegaug.bands.deform_bytes``, for the largest sigma) while
    the copy before is still held, and a copy's encoding (the copy, and
    Pillow's writable copy of it); with a margin for what the allocator keeps.
    ``size`` None (a header Pillow cannot read): the file alone, and reading
    it says what is wrong.
    """
    from ._resources.memory import MEMORY_MARGIN
    from .bands import TYPICAL_RUNS_PER_PX, deform_bytes
    from .components import labelling_bytes
    from .io import decoding_bytes, index_bytes

    if size is None:
        return file_bytes
    width, height = size
    pixels = width * height
    itemsize = index_bytes(mode)
    decoding = decoding_bytes(pixels, mode)
    sigma = max(sigma for _, sigma in params.alpha_sigma)
    labelling = labelling_bytes(runs if runs is not None else round(TYPICAL_RUNS_PER_PX * pixels))
    deformation = deform_bytes((height, width), itemsize, sigma, params.precision, runs=0)
    deforming = pixels * itemsize + max(labelling, pixels * itemsize + deformation, 2 * pixels * itemsize)
    return file_bytes + int(MEMORY_MARGIN * max(decoding, deforming))


def _row(
    sample: Sample,
    output: str | None,
    copy_index: int,
    result,
    shape: tuple[int, ...],
    sha_label: str,
    sha_output: str,
) -> CopyRow:
    stats = result.stats() if result is not None else {}
    return CopyRow(
        label=sample.label,
        image=sample.image,
        output=output,
        copy=copy_index,
        deformed=result is not None,
        alpha=stats.get("alpha"),
        sigma=stats.get("sigma"),
        changed_fraction=stats.get("changed_fraction", 0.0),
        suppressed_fraction=stats.get("suppressed_fraction", 0.0),
        mean_displacement=stats.get("mean_displacement", 0.0),
        max_displacement=stats.get("max_displacement", 0.0),
        height=shape[0],
        width=shape[1],
        sha256_label=sha_label,
        sha256_output=sha_output,
        depth=shape[2] if len(shape) == 3 else None,
    )


def _check_ignore_index(source: Path, segment, ignore_index: int | None) -> None:
    """A map whose type cannot hold the ignore index: the value would protect nothing, silently."""
    import numpy as np

    if ignore_index is None:
        return
    info = np.iinfo(segment.dtype) if segment.dtype != np.bool_ else np.iinfo(np.uint8)
    if not info.min <= ignore_index <= info.max:
        bits = info.bits
        raise LabelFormatError(
            source, f"the ignore index {ignore_index} cannot occur in a {bits}-bit label map ({info.min}..{info.max})"
        )


def _check_volume(source: Path, segment, params: DeformParams) -> None:
    """A 2-D map has no voxel spacing for units in mm; a volume too large for the memory left is refused whole."""
    if segment.ndim == 3:
        from .volume.engine import check_volume_fits

        check_volume_fits(source, segment, params)
    elif params.units == "mm":
        raise LabelFormatError(source, "a 2-D map has no voxel spacing: units mm apply to NIfTI volumes only")


@lru_cache(maxsize=16)
def _pattern(template: str):
    return output_pattern(template)


def generate_dataset(
    config: GenerateConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    command_line: list[str] | None = None,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> JobSummary:
    """Write K deformed copies of every mask under ``config.labels`` to ``config.out``.

    Outputs are byte-identical for any ``jobs``, backend, order, and after an
    interruption followed by ``resume=True``. Returns the run's summary; bad
    masks are counted in it (and stop the run with ``on_error="fail"``).
    See `nsegaug._jobs.run_job` for what it raises.
    """
    job = GenerateJob(config)
    return run_job(job, resume=resume, overwrite=overwrite, progress=progress, command_line=command_line, log=log)


def planned_outputs(config: GenerateConfig) -> Iterator[tuple[Sample, list[str]]]:
    """What a run would write: each sample with its output paths. Writes nothing."""
    job = GenerateJob(config)
    for sample in plan(config):
        yield paired(config, sample), job.outputs(sample.label)
