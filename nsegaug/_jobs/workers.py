"""What runs in a worker: one mask read, made and written (`process_mask`).

A worker reads its own mask (the parent sends names, never pixels) and
writes its outputs atomically, inside the output folder only. A worker
process (not the caller's, where ``jobs=1`` runs) sets itself up once for
the process that started it: one OpenCV thread, and a watch that ends it
when that process is gone.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import storage
from .._files.label_folders import Sample, is_inside
from ..errors import NsegaugError, StorageError, shown_path
from ..io import image_size, size_mismatch
from ..storage import Location, is_url, join, write_bytes_atomic
from .folder import output_location
from .job import MaskJob, MaskOutcome, Output
from .sources import paired

# How often a worker checks that the process that started it is still there.
PARENT_CHECK_S = 0.2
# Pillow's own decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS as it ships), for a run without max_pixels.
PILLOW_MAX_PIXELS = int(1024 * 1024 * 1024 // 4 // 3)


@dataclass(frozen=True)
class WorkerContext:
    """What every task of a run tells its worker about the run: the process that started it, and the folder
    that process works in (relative paths of a Python caller are relative to it)."""

    parent_pid: int
    cwd: str


def process_mask(job: MaskJob, sample: Sample, context: WorkerContext) -> MaskOutcome:
    """Read one mask, pair it with its image, write its outputs whole, return its manifest rows.

    Runs in a worker: the mask is read here, not shipped from the parent,
    and the outputs go from here to their folder or bucket. Every failure of
    this file becomes ``MaskOutcome.error``, one line that names the file.
    """
    config = job.config
    _worker_setup(context, config.max_pixels)
    storage.configure(config.storage_options)
    source = join(config.labels, sample.label)
    warnings_of_mask: list[str] = []
    try:
        if config.images is not None:
            sample = paired(config, sample)
            if sample.image is None:
                warnings_of_mask.append(f"{storage.shown(source)}: no image found in {storage.shown(config.images)}")
        rows, outputs = job.make(sample, source, storage.read_bytes(source))
        for output in outputs:
            _write_output(config.out, output)
        differs = _image_size_differs(config, sample, source, rows[0], warnings_of_mask)
        unpaired = sample.image is None and config.images is not None
        return MaskOutcome(sample.label, rows, None, tuple(warnings_of_mask), unpaired, differs)
    except Exception as error:  # noqa: BLE001 - every failure of one file is that file's one line
        return MaskOutcome(sample.label, [], _one_line(source, error), tuple(warnings_of_mask))


def _image_size_differs(config, sample: Sample, source: Location, row, warnings_of_mask: list[str]) -> str | None:
    """The line saying that the mask's image has another size than the mask (None: the same, or no image); an
    image whose header cannot be read is warned about. Its header only is read: the copies never need the image,
    but a loader that pairs the two would crop, resize or refuse them."""
    if sample.image is None:
        return None
    image = join(config.images, sample.image)
    try:
        size = image_size(image)
    except Exception as error:  # noqa: BLE001 - an unreadable image is the user's to see, not this mask's failure
        warnings_of_mask.append(f"{storage.shown(image)}: cannot read its size ({_one_line(image, error)})")
        return None
    return size_mismatch(source, (row.width, row.height), image, size)


def _write_output(out: Location, output: Output) -> None:
    target = output_location(out, output.name)  # before any folder is made: a link must not lead the mkdir out
    if is_url(out):
        storage.write_bytes(target, output.data)
        return
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not is_inside(folder, out):  # a link swapped in while the folders were made
            raise StorageError(target, f"resolves outside the output folder {shown_path(Path(out).resolve())}")
        # Not flushed to disk one by one: an OS crash can only leave a damaged
        # copy, and resume checks every output's checksum.
        write_bytes_atomic(target, output.data, durable=False)
    except StorageError:
        raise
    except OSError as error:  # a full disk or a refused write: the line names the output, not the source
        raise StorageError.from_os_error(error, target, "cannot write") from error


def _one_line(source: Path, error: BaseException) -> str:
    """A worker's failure as one line naming the file (the error's own file where it names one)."""
    if isinstance(error, NsegaugError):
        return str(error)
    if isinstance(error, OSError):
        where = error.filename or source
        return f"{shown_path(where)}: {error.strerror or error}"
    if isinstance(error, MemoryError):
        return f"{shown_path(source)}: out of memory"
    reason = " ".join(str(error).split()) or type(error).__name__
    if type(error).__module__.startswith("cv2"):
        # OpenCV's limits (e.g. on map size) are about this file; the other masks can still be done.
        return f"{shown_path(source)}: OpenCV refused it ({reason})"
    return f"{shown_path(source)}: {reason}"


def _worker_setup(context: WorkerContext, max_pixels: int | None) -> None:
    """Per task: Pillow's size guard (a worker may serve several runs, and in the caller's process the run
    puts the caller's back at its end); once per worker process and parent: one OpenCV thread, a watch."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels if max_pixels is not None else PILLOW_MAX_PIXELS
    if os.getpid() != context.parent_pid and os.getcwd() != context.cwd:
        # loky keeps its workers between runs: one started for a run in another folder (a notebook that
        # changed directory) would read and write relative paths there. A Dask worker on another machine
        # may not have the folder: relative local paths mean nothing there anyway.
        try:
            os.chdir(context.cwd)
        except OSError:
            pass
    if os.getpid() != context.parent_pid and context.parent_pid not in _set_up_for:
        _set_up_for.add(context.parent_pid)
        import cv2

        # Parallelism comes from the worker processes; OpenCV's own threads would only fight them for the cores.
        cv2.setNumThreads(1)
        _watch_parent(context.parent_pid)


# The parents this worker process has been set up for (loky reuses a worker across runs of one parent).
# State of a worker process only: the caller's process, where jobs=1 runs, never records anything here.
_set_up_for: set[int] = set()


def _watch_parent(parent: int) -> None:
    """Leave at once when the process that started this worker is gone (killed, or stopped by a signal).

    A worker of a dead parent would finish its masks, write files no manifest
    lists, and idle for minutes; the next run would have to clean up after it.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="nsegaug-parent-watch", daemon=True).start()
