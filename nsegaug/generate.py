"""The generate job: K deformed copies of every mask, in parallel, resumable."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import cv2

from .copies import deformed_copies
from .dataset import (
    DEFAULT_NAME_TEMPLATE,
    LABEL_EXTENSIONS,
    Sample,
    check_name_template,
    find_image,
    is_inside,
    iter_label_files,
)
from .dataset import output_name as make_output_name
from .deform import DeformResult
from .errors import LabelFormatError, OutputInUse, UsageError
from .io import encode_label, load_colour_palette, read_label, sha256_bytes, sha256_file, write_bytes_atomic
from .manifest import (
    MANIFEST_NAME,
    META_NAME,
    CopyRow,
    RunMeta,
    append_rows,
    iter_mask_groups,
    parameter_differences,
    read_meta,
    sort_manifest,
    write_meta,
)
from .params import DEFAULT_PARAMS, DeformParams, check_prob

BACKENDS = ("loky", "dask")


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that decides what a generate run writes, plus how it runs.

    ``params`` decides how each copy is deformed; ``seed``, ``prob`` and
    ``copies`` how the copies are drawn.
    """

    labels: Path
    out: Path
    copies: int
    images: Path | None = None
    seed: int = 0
    params: DeformParams = DEFAULT_PARAMS
    prob: float = 1.0
    pattern: str | None = None
    label_suffix: str = ""
    image_suffix: str = ""
    palette: Path | None = None
    name_template: str = DEFAULT_NAME_TEMPLATE
    # How it runs; none of these changes a byte of the outputs.
    jobs: int = 1
    backend: str = "loky"
    scheduler: str | None = None
    on_error: str = "skip"

    def __post_init__(self) -> None:
        for name in ("labels", "out", "images", "palette"):  # str paths from Python callers
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if self.copies < 1:
            raise UsageError(f"copies must be >= 1, got {self.copies}")
        if self.seed < 0:
            raise UsageError(f"seed must be >= 0, got {self.seed}")
        if self.backend not in BACKENDS:
            raise UsageError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.on_error not in ("skip", "fail"):
            raise UsageError(f"on_error must be skip or fail, got {self.on_error}")
        check_prob(self.prob)
        try:
            check_name_template(self.name_template)
        except ValueError as error:
            raise UsageError(str(error)) from error

    def parameters(self) -> dict:
        """The parameters that decide the outputs: recorded in the metadata, compared on resume."""
        return {
            "copies": self.copies,
            "seed": self.seed,
            "prob": self.prob,
            **self.params.to_dict(),
            "pattern": self.pattern,
            "label_suffix": self.label_suffix,
            "image_suffix": self.image_suffix,
            "palette": str(self.palette.resolve()) if self.palette else None,
            "name_template": self.name_template,
            "labels": str(self.labels.resolve()),
            "images": str(self.images.resolve()) if self.images else None,
        }


@dataclass
class GenerateSummary:
    masks: int = 0  # masks done in this run
    copies_written: int = 0
    skipped: int = 0  # masks already complete (resume)
    failed: int = 0
    unpaired: int = 0  # masks without an image (with --images)
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def masks_per_second(self) -> float:
        return self.masks / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"masks: {self.masks}, copies written: {self.copies_written}, skipped: {self.skipped}, "
            f"failed: {self.failed}, elapsed: {self.elapsed:.1f}s, masks/s: {self.masks_per_second:.2f}"
        )


@dataclass(frozen=True)
class MaskOutcome:
    label: str
    rows: list[CopyRow]
    error: str | None = None


def copy_outputs(config: GenerateConfig, label: str) -> list[str]:
    """Output paths (relative to ``config.out``) of copies 1..K of ``label``."""
    return [make_output_name(label, k, config.name_template) for k in range(1, config.copies + 1)]


def plan(config: GenerateConfig, log: Callable[[str], None] = lambda message: None) -> Iterator[Sample]:
    """The samples of the job, streamed from the label folder."""
    for label in iter_label_files(config.labels, config.pattern):
        image = None
        if config.images is not None:
            image = find_image(config.images, label, config.label_suffix, config.image_suffix)
            if image is None:
                log(f"warning: {config.labels / label}: no image found in {config.images}")
        yield Sample(label, image)


def make_copies(config: GenerateConfig, sample: Sample) -> MaskOutcome:
    """Read one mask, write its K copies atomically, return its manifest rows.

    Runs in a worker: the mask is read here, not shipped from the parent.
    Every failure of this file becomes ``MaskOutcome.error``, one line that
    names the file.
    """
    _one_cv2_thread()
    source = config.labels / sample.label
    try:
        source_bytes = source.read_bytes()
        label_image = read_label(source, _colour_palette(config.palette), data=source_bytes)
        segment = label_image.indices
        height, width = segment.shape
        # Copy 0, the original: lets a training loop draw from all K + 1 labels.
        source_sha = sha256_bytes(source_bytes)
        rows = [_row(sample, None, 0, None, height, width, source_sha, source_sha)]
        drawn = deformed_copies(segment, sample.label, config.copies, config.params, config.seed, config.prob)
        for (copy_index, result), output in zip(drawn, copy_outputs(config, sample.label), strict=True):
            data = encode_label(label_image, result.segment if result else segment)
            # Not flushed to disk one by one: an OS crash can only leave a
            # damaged copy, and --resume checks every copy's checksum.
            write_bytes_atomic(config.out / output, data, durable=False)
            rows.append(_row(sample, output, copy_index, result, height, width, source_sha, sha256_bytes(data)))
        return MaskOutcome(sample.label, rows)
    except LabelFormatError as error:
        return MaskOutcome(sample.label, [], str(error))
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return MaskOutcome(sample.label, [], f"{source}: {reason}")
    except MemoryError:
        return MaskOutcome(sample.label, [], f"{source}: out of memory")
    except cv2.error as error:
        # OpenCV's limits (e.g. on map size) are about this file; the other masks can still be done.
        reason = " ".join(str(error).split())
        return MaskOutcome(sample.label, [], f"{source}: OpenCV refused it ({reason})")


def _row(
    sample: Sample,
    output: str | None,
    copy_index: int,
    result: DeformResult | None,
    height: int,
    width: int,
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
        height=height,
        width=width,
        sha256_label=sha_label,
        sha256_output=sha_output,
    )


@lru_cache(maxsize=1)
def _one_cv2_thread() -> None:
    # Parallelism comes from the worker processes; OpenCV's own threads would
    # only fight them for the same cores.
    cv2.setNumThreads(1)


@lru_cache(maxsize=4)
def _colour_palette(path: Path | None):
    return load_colour_palette(path) if path is not None else None


def check_folders(config: GenerateConfig, resume: bool, overwrite: bool) -> None:
    """Refuse the run before anything is written, with a message that says why."""
    if not config.labels.is_dir():
        raise UsageError(f"{config.labels}: label folder not found")
    if config.images is not None and not config.images.is_dir():
        raise UsageError(f"{config.images}: image folder not found")
    for source in (config.labels, config.images):
        if source is not None and is_inside(config.out, source):
            raise UsageError(
                f"output folder {config.out} is inside {source}: outputs must not be written among the sources"
            )
        if source is not None and is_inside(source, config.out):
            raise UsageError(
                f"{source} is inside the output folder {config.out}: sources must not lie among the outputs"
            )
    if config.palette is not None:
        try:
            _colour_palette(config.palette)
        except (LabelFormatError, OSError) as error:
            raise UsageError(str(error)) from error
    if resume and overwrite:
        raise UsageError("resume and overwrite exclude each other")
    if config.out.is_dir() and any(config.out.iterdir()) and not (resume or overwrite):
        raise OutputInUse(f"{config.out} is not empty")
    if resume and (config.out / META_NAME).exists():
        old = read_meta(config.out / META_NAME).parameters
        differences = parameter_differences(old, config.parameters())
        if differences:
            raise UsageError("cannot resume with different parameters:\n  " + "\n  ".join(differences))


def completed_labels(config: GenerateConfig, log: Callable[[str], None] = lambda message: None) -> set[str]:
    """Labels of the masks that an earlier run finished, after checking their files.

    A mask counts as done when the manifest has all its copies, its source is
    unchanged and every output file is there with the recorded checksum; any
    other mask is redone. Streams the manifest one mask at a time.
    """
    manifest = config.out / MANIFEST_NAME
    if not manifest.exists():
        return set()
    verdicts: dict[str, bool] = {}
    for label, copies in iter_mask_groups(manifest):
        # A later run of rows for the same label (a redo) decides.
        complete = set(copies) == set(range(config.copies + 1))
        if complete and not _has_checksum(config.labels / label, copies[0].sha256_label):
            log(f"warning: {config.labels / label}: changed since its copies were made; making them again")
            complete = False
        verdicts[label] = complete and all(
            _has_checksum(config.out / row.output, row.sha256_output) for row in copies.values() if row.output
        )
    return {label for label, done in verdicts.items() if done}


def _has_checksum(path: Path, sha: str) -> bool:
    """Whether ``path`` is there with this SHA-256 (a missing or unreadable file is not)."""
    try:
        return sha256_file(path) == sha
    except OSError:
        return False


def remove_temporary_files(out: Path) -> None:
    """Temp files of a killed run (``.<name>.tmp``): never outputs, safe to delete."""
    for path in out.rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def count_masks(config: GenerateConfig) -> int:
    """How many label files the job has; none at all is a :class:`UsageError`."""
    total = sum(1 for _ in iter_label_files(config.labels, config.pattern))
    if total == 0:
        what = f"matching {config.pattern!r}" if config.pattern else f"with a label extension {LABEL_EXTENSIONS}"
        raise UsageError(f"{config.labels}: no files {what}")
    return total


def generate_dataset(
    config: GenerateConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    command_line: list[str] | None = None,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> GenerateSummary:
    """Write K deformed copies of every mask under ``config.labels`` to ``config.out``.

    Outputs are byte-identical for any ``jobs``, backend, order, and after an
    interruption followed by ``resume=True``. Returns the run's summary; bad
    masks are counted in it (and stop the run with ``on_error="fail"``).
    """
    check_folders(config, resume, overwrite)
    total = count_masks(config)
    done = prepare_output(config, resume, overwrite, log)
    summary = GenerateSummary(skipped=len(done))
    meta = RunMeta(
        parameters=config.parameters(),
        command_line=command_line if command_line is not None else sys.argv,
        started=_now(),
        execution={"jobs": config.jobs, "backend": config.backend, "scheduler": config.scheduler},
    )
    write_meta(config.out / META_NAME, meta)
    started = time.perf_counter()
    try:
        meta.status = run_masks(config, _pending(config, done, summary, log), summary, total, progress, log)
    finally:
        summary.elapsed = time.perf_counter() - started
        finish_run(config, meta, summary, total)
    return summary


def prepare_output(config: GenerateConfig, resume: bool, overwrite: bool, log: Callable[[str], None]) -> set[str]:
    """Make the output folder ready for this run; returns the labels an earlier run finished (on resume)."""
    config.out.mkdir(parents=True, exist_ok=True)
    manifest, meta_path = config.out / MANIFEST_NAME, config.out / META_NAME
    if overwrite:
        manifest.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
    remove_temporary_files(config.out)
    done = completed_labels(config, log) if resume else set()
    if done:
        # Keep only verified rows: a line torn by a killed run must not end up
        # in the middle of the file once new rows are appended after it.
        sort_manifest(manifest, keep=done)
    else:
        manifest.unlink(missing_ok=True)
    return done


def _pending(
    config: GenerateConfig, done: set[str], summary: GenerateSummary, log: Callable[[str], None]
) -> Iterator[Sample]:
    for sample in plan(config, log):
        if sample.image is None and config.images is not None:
            summary.unpaired += 1
        if sample.label not in done:
            yield sample


def run_masks(
    config: GenerateConfig,
    samples: Iterator[Sample],
    summary: GenerateSummary,
    total: int,
    progress: bool,
    log: Callable[[str], None],
) -> str:
    """Make the copies of ``samples`` in parallel, appending each mask's rows once its files exist.

    Returns the run's status: ``complete``, or ``failed`` when a mask failed.
    An interruption propagates (the caller records ``interrupted``).
    """
    manifest = config.out / MANIFEST_NAME
    outcomes = _run_parallel(config, samples)
    with _progress_bar(total, progress, initial=summary.skipped) as bar, _quiet_cancellation(), closing(outcomes):
        for outcome in outcomes:
            bar.update(1)
            if outcome.error:
                summary.failed += 1
                summary.failures.append(outcome.error)
                log(f"error: {outcome.error}")
                if config.on_error == "fail":
                    # Masks already running may still write files; they are
                    # not in the manifest, so a resumed run redoes them.
                    break
                continue
            append_rows(manifest, outcome.rows)
            summary.masks += 1
            summary.copies_written += len(outcome.rows) - 1
    return "failed" if summary.failed else "complete"


def finish_run(config: GenerateConfig, meta: RunMeta, summary: GenerateSummary, total: int) -> None:
    """Sort the manifest and record how the run ended, whether it finished, failed or was interrupted."""
    if meta.status == "running":
        meta.status = "interrupted"
        # The workers have been stopped by now; one stopped in the middle
        # of a write leaves its temp file, which is never an output.
        remove_temporary_files(config.out)
    manifest = config.out / MANIFEST_NAME
    # Rows of this run were appended as they came; the final manifest is
    # sorted, so it is the same however the work was split.
    if manifest.exists():
        sort_manifest(manifest)
    meta.finished = _now()
    meta.elapsed_s = round(summary.elapsed, 3)
    meta.counts = {
        "masks_total": total,
        "masks_done": summary.masks,
        "masks_skipped": summary.skipped,
        "masks_failed": summary.failed,
        "masks_unpaired": summary.unpaired,
        "copies_written": summary.copies_written,
    }
    meta.masks_per_second = round(summary.masks_per_second, 3)
    meta.failures = summary.failures[:100]
    write_meta(config.out / META_NAME, meta)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_parallel(config: GenerateConfig, samples: Iterator[Sample]) -> Iterator[MaskOutcome]:
    from joblib import Parallel, delayed

    tasks = (delayed(make_copies)(config, sample) for sample in samples)
    if config.backend == "dask":
        with _dask_backend(config):
            yield from Parallel(n_jobs=-1, return_as="generator_unordered")(tasks)
        return
    # A bounded number of tasks in flight keeps memory flat on huge datasets.
    yield from Parallel(n_jobs=config.jobs, return_as="generator_unordered", pre_dispatch="2*n_jobs")(tasks)


@contextmanager
def _quiet_cancellation():
    # Stopping early (--on-error fail, Ctrl-C) cancels queued tasks on
    # purpose; joblib would warn about it on the user's terminal.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tasks which were still being processed", category=UserWarning)
        yield


@contextmanager
def _dask_backend(config: GenerateConfig):
    try:
        from dask.distributed import Client, LocalCluster
        from joblib import parallel_config
    except ImportError as error:
        raise UsageError("--backend dask needs the dask extra: pip install 'nsegaug[dask]'") from error
    if config.scheduler:
        client = Client(config.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=config.jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        with parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def _progress_bar(total: int, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    with tqdm(
        total=total, initial=initial, disable=not enabled, unit="mask", file=sys.stderr, dynamic_ncols=True
    ) as bar:
        yield bar


def planned_outputs(config: GenerateConfig) -> Iterator[tuple[Sample, list[str]]]:
    """What a run would write: each sample with its output paths. Writes nothing."""
    for sample in plan(config):
        yield sample, copy_outputs(config, sample.label)
