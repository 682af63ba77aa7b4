"""The run folder and what a run reports: its files, its lines on stderr, the progress bar.

The folder holds ``config.json``, ``loss.jsonl`` (a line about ``LOSS_POINTS``
times per run), ``metrics.jsonl`` (a line per evaluation), ``metrics.json``
(the final result), ``curves.png`` and ``curves.svg`` (with matplotlib) and the checkpoints ``last.pt`` and
``best.pt``. Every write is atomic or an append of whole lines, so a killed run
leaves files that ``--resume`` can use (``RunLog.rewind`` drops the lines
logged after the last checkpoint).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from .._files.local import open_own, write_bytes_atomic
from .._files.lock import LOCK_NAME, hold
from ..errors import OutputInUse, RunRefused, StorageError, UsageError
from .checkpoint import save_checkpoint
from .config import CONFIG_NAME
from .curves import draw_curves

LAST, BEST = "last.pt", "best.pt"
METRICS_LINES, METRICS_FINAL, LOSS_LINES, CURVES = "metrics.jsonl", "metrics.json", "loss.jsonl", "curves.png"
CURVES_SVG = "curves.svg"
# Only these are removed by --overwrite: a run folder may hold the user's own files.
RUN_FILES = (LAST, BEST, METRICS_LINES, METRICS_FINAL, LOSS_LINES, CURVES, CURVES_SVG, CONFIG_NAME)
# About this many loss points per run, whatever its length: enough for the curve, small in the checkpoint.
LOSS_POINTS = 200


def say_on_stderr(message: str) -> None:
    """The default ``log``: a line on stderr, at once."""
    print(message, file=sys.stderr, flush=True)


def loss_interval(total: int) -> int:
    """Steps between two lines of loss.jsonl."""
    return max(1, total // LOSS_POINTS)


def evaluation_line(row: dict, epochs: int, total: int) -> str:
    """The console line of an evaluation (a metrics.jsonl row): a figure that does not exist (no training step
    since the last evaluation, no class in the validation labels) is ``n/a``; a loss of exactly 0 is 0."""

    def figure(name: str) -> str:
        value = row.get(name)
        return "n/a" if value is None else f"{value:.4f}"

    return (
        f"epoch {row['epoch']:g}/{epochs} step {row['step']}/{total}: loss {figure('train_loss')}, "
        f"mIoU {figure('miou')}, boundary mIoU {figure('boundary_miou')}, band mIoU {figure('band_miou')}, "
        f"pixel acc {figure('pixel_acc')}, {row['images_per_s']:.1f} img/s"
    )


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write into a run folder that is in use, unless told to resume or overwrite it (as generate
    refuses a used output folder)."""
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if resume:
        if not (out / LAST).is_file():
            raise RunRefused(f"{out / LAST}: not found; nothing to resume (start a run without --resume)")
    elif out.is_dir() and any(path.name != LOCK_NAME for path in out.iterdir()) and not overwrite:
        raise OutputInUse(f"{out} exists and is not empty")
    elif out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a run folder")


@contextmanager
def hold_run_folder(out: Path, resume: bool, overwrite: bool) -> Iterator[None]:
    """Hold the run folder for the run's whole life (`nsegaug._files.lock`), refusing it as
    `check_run_folder` does; what the check sees stays true while it is held. A folder made only to be
    held, then refused, is removed again."""
    check_run_folder(out, resume, overwrite)  # a file in the way, resume without last.pt: before making anything
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError.from_os_error(error, out, "cannot create the run folder") from error
    try:
        with hold(out, "train"):
            check_run_folder(out, resume, overwrite)
            yield
    except BaseException:
        if made and not any(out.iterdir()):
            out.rmdir()
        raise


def clear_run_folder(out: Path) -> None:
    """Remove an earlier run's files, and the temporary files of a save that was killed (model-sized)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
        for temporary in out.glob(f".{name}.*.tmp"):
            temporary.unlink(missing_ok=True)


def write_json(path: Path, value) -> None:
    write_bytes_atomic(path, (json.dumps(value, indent=2) + "\n").encode("utf-8"))


def write_lines(path: Path, rows: list[dict]) -> None:
    write_bytes_atomic(path, "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))


def _append_line(path: Path, row: dict) -> None:
    try:
        descriptor = open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # never appended through a link
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
    except StorageError:
        raise
    except OSError as error:  # a full disk raises from write() or close() without a file name
        raise StorageError.from_os_error(error, path, "cannot write") from error


class RunLog:
    """What a run writes to ``out`` and says on stderr.

    Rank 0 alone reports (torchvision's ``save_on_master``): on the other
    ranks every method does nothing, so the loop calls them on every rank.
    """

    def __init__(self, out: Path, log: Callable[[str], None], main: bool) -> None:
        self.out = out
        self.main = main
        self._log = log
        self._bar: tqdm | None = None
        self._curves_missing = False  # said once that curves are not drawn

    # --- the terminal ---

    def say(self, message: str) -> None:
        if not self.main:
            return
        if self._bar is not None and not self._bar.disable:
            with tqdm.external_write_mode(file=sys.stderr):  # the line above the bar, not through it
                self._log(message)
        else:
            self._log(message)

    def start_bar(self, total: int, initial: int, show: bool) -> None:
        self._bar = tqdm(
            total=total,
            initial=initial,
            unit="it",
            disable=not (show and self.main),
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def advance(self) -> None:
        self._bar.update(1)

    def close_bar(self) -> None:
        self._bar.close()

    # --- the files ---

    def record_config(self, record: dict) -> None:
        if self.main:
            write_json(self.out / CONFIG_NAME, record)

    def rewind(self, history: dict) -> None:
        """On resume: the log files as they were at the checkpoint (a killed run may have logged more)."""
        if self.main:
            write_lines(self.out / METRICS_LINES, history["evals"])
            write_lines(self.out / LOSS_LINES, history["loss"])

    def loss_point(self, point: dict, images_per_s: float) -> None:
        self._bar.set_postfix(loss=f"{point['loss']:.4f}", img_s=f"{images_per_s:.1f}")
        if self.main:
            _append_line(self.out / LOSS_LINES, point)

    def evaluation(self, row: dict) -> None:
        if self.main:
            _append_line(self.out / METRICS_LINES, row)

    def checkpoint(self, contents: Callable[[], dict], best: bool = False) -> None:
        """Save ``contents()`` as last.pt, and as best.pt too when ``best``; built on rank 0 only."""
        if self.main:
            snapshot = contents()
            # best.pt first: a run killed between the two saves must not leave a last.pt that records a best
            # model best.pt does not hold (best.pt is only written again when the model improves again).
            if best:
                save_checkpoint(self.out / BEST, snapshot)
            save_checkpoint(self.out / LAST, snapshot)

    def curves(self, history: dict, total: int) -> None:
        """curves.png and curves.svg, redrawn at each evaluation; without matplotlib, said once and skipped (a
        training does not need its figure)."""
        if not self.main or self._curves_missing:
            return
        loss = [(point["step"], point["loss"]) for point in history["loss"]]
        try:
            drawn = draw_curves(loss, history["evals"], total)
        except ImportError as error:
            self._curves_missing = True
            self.say(f"{self.out / CURVES} not drawn: {error}")
            return
        write_bytes_atomic(self.out / CURVES, drawn["png"])
        write_bytes_atomic(self.out / CURVES_SVG, drawn["svg"])

    def final(self, result: dict) -> None:
        if self.main:
            write_json(self.out / METRICS_FINAL, result)
