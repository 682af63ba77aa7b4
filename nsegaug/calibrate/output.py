"""Writing a calibration's files into its output folder, whole or not at all, after it has succeeded."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

from .. import storage
from ..errors import UsageError
from .report import FIGURE_NAME, JSON_NAME, PARAMS_NAME, REPORT_NAME, calibration_json, distances, params_toml
from .run import CalibrateConfig, Calibration, calibrate
from .text import report_markdown


def write_outputs(calibration: Calibration, out: storage.Location, command_line: Sequence[str], figure: bool) -> list:
    """Write the calibration's files into ``out`` (made if missing); returns the locations written."""
    measured = distances(calibration)
    files = {
        PARAMS_NAME: params_toml(calibration, measured, command_line).encode(),
        REPORT_NAME: report_markdown(calibration, measured, command_line, figure).encode(),
        JSON_NAME: calibration_json(calibration, measured).encode(),
    }
    if figure:
        from .figure import draw

        files.update(draw(calibration, FIGURE_NAME))
    if not storage.is_url(out):
        Path(out).mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        location = storage.join(out, name)
        storage.write_file(location, data)
        written.append(location)
    return written


def calibrate_into(
    config: CalibrateConfig,
    out: storage.Location,
    figure: bool = True,
    command_line: Sequence[str] = ("nsegaug", "calibrate"),
    log: Callable[[str], None] = lambda message: None,
    progress: bool = False,
) -> tuple[Calibration, list]:
    """Calibrate (``nsegaug.calibrate.calibrate``) and write the files into ``out``; a refusal writes
    nothing. ``figure`` needs matplotlib, checked before any work; a figure of an earlier calibration in
    ``out`` is removed when none is drawn, so the folder never mixes two calibrations."""
    if figure:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("the figure needs matplotlib: pip install 'nsegaug[plots]' (or draw none)") from None
    with _bar(progress) as bar:
        calibration = calibrate(config, log, bar)
    written = write_outputs(calibration, out, command_line, figure)
    if not figure:
        for suffix in ("png", "svg"):
            stale = storage.join(out, f"{FIGURE_NAME}.{suffix}")
            if storage.exists(stale):
                storage.remove(stale)
    return calibration, written


@contextmanager
def _bar(enabled: bool):
    """A progress callback for ``calibrate``: given the total, it returns the callable to tick."""
    from tqdm import tqdm

    bars = []

    def start(total: int):
        bars.append(tqdm(total=total, disable=not enabled, unit="step", file=sys.stderr, dynamic_ncols=True))
        return lambda: bars[-1].update()

    try:
        yield start
    finally:
        for bar in bars:
            bar.close()
