"""Writing a calibration's files into its output folder, whole or not at all, after it has succeeded.

A calibration holds its folder for its whole run, as every run does ([`hold`][nsegaug._files.lock.hold]): a
second calibration, or a run of another command, in the same folder, around it or inside it is refused. Its
files are written so that the folder never offers a mixed set: the earlier ``params.toml`` (the file other
commands read) is removed first and the new one written last, so a calibration killed while it writes leaves
a report without a ``params.toml``, never a ``params.toml`` beside another calibration's report.

It replaces only its own files: a record (``.nsegaug-calibrate.json``, written first) keeps the SHA-256 of every
file a calibration writes there, and a folder holding any other file (a hand-written ``params.toml``, notes) or one
changed since is refused, naming it, before the work ([`earlier_files`][nsegaug.calibrate.output.earlier_files]).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .. import storage
from .._files import lock
from .._files.local import make_folders, remove_made_folders
from .._version import __version__
from ..errors import RunRefused, UsageError, shown_path
from .report import FIGURE_NAME, JSON_NAME, PARAMS_NAME, REPORT_NAME, calibration_json, distances, params_toml
from .run import CalibrateConfig, Calibration, calibrate
from .text import report_markdown


def write_outputs(calibration: Calibration, out: storage.Location, command_line: Sequence[str], figure: bool) -> list:
    """Write the calibration's files into the folder ``out``, ``params.toml`` last; returns the locations written."""
    measured = distances(calibration)
    files = {
        PARAMS_NAME: params_toml(calibration, measured, command_line).encode(),
        REPORT_NAME: report_markdown(calibration, measured, command_line, figure).encode(),
        JSON_NAME: calibration_json(calibration, measured).encode(),
    }
    if figure:
        from .figure import draw

        files.update(draw(calibration, FIGURE_NAME))
    previous = earlier_files(out)
    new = {name: {storage.sha256_bytes(data)} for name, data in files.items()}
    # Until every new file is in place, both versions of a file are this command's: a run killed part-way leaves a
    # folder that the next calibration may still replace.
    _write_record(out, {name: previous.get(name, set()) | new.get(name, set()) for name in {*previous, *new}})
    # The consumable file goes first and comes back last: a set cut short is one no command reads.
    storage.remove(storage.join(out, PARAMS_NAME))
    files[PARAMS_NAME] = files.pop(PARAMS_NAME)
    if not figure:
        for suffix in ("png", "svg"):
            storage.remove(storage.join(out, f"{FIGURE_NAME}.{suffix}"))
    written = []
    for name, data in files.items():
        location = storage.join(out, name)
        storage.write_file(location, data)
        written.append(location)
    _write_record(out, new)
    return written


def calibrate_into(
    config: CalibrateConfig,
    out: storage.Location,
    figure: bool = True,
    command_line: Sequence[str] = ("nsegaug", "calibrate"),
    log: Callable[[str], None] = lambda message: None,
    progress: bool = False,
) -> tuple[Calibration, list]:
    """Calibrate (``nsegaug.calibrate.calibrate``) and write the files into ``out``, holding it; a refusal
    writes nothing (a folder made for the run is removed again). ``figure`` needs matplotlib, checked before
    any work; a figure of an earlier calibration in ``out`` is removed when none is drawn, so the folder never
    mixes two calibrations."""
    if figure:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("the figure needs matplotlib: pip install 'nsegaug[plots]' (or draw none)") from None
    out = storage.as_location(out)
    if storage.is_url(out):
        # A URL's credentials join this process's storage options, as in every command: never in a message.
        (out,) = storage.use_credentials(out)
    else:
        out = Path(os.path.abspath(out))  # "missing/../out" names out: no folder "missing" is made for it
    with _folder(out):
        with lock.hold(out, "calibrate"), _bar(progress) as bar:
            earlier_files(out)  # refused before the work, not after it
            calibration = calibrate(config, log, bar)
            written = write_outputs(calibration, out, command_line, figure)
    return calibration, written


@contextmanager
def _folder(out: storage.Location) -> Iterator[None]:
    """``out`` (and the folders above it) made for the run when missing, and removed again when the run
    writes nothing into them."""
    made = [] if storage.is_url(out) else make_folders(Path(out), "cannot create the output folder")
    try:
        yield
    except BaseException:
        remove_made_folders(made)  # one not empty (something was written after all) is kept
        raise


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


# --------------------------------------------------------------------------- what the folder holds

RECORD_NAME = ".nsegaug-calibrate.json"
# Files a calibration leaves besides its own: the lock of the run holding the folder.
_NOT_OUTPUTS = (lock.LOCK_NAME,)


def earlier_files(out: storage.Location) -> dict[str, set[str]]:
    """The files of earlier calibrations in ``out`` (name -> the SHA-256s its record allows), once every file there
    is checked to be one: a file no calibration wrote, or one changed since (a hand-written ``params.toml``, notes),
    is a [`RunRefused`][nsegaug.errors.RunRefused] naming the folder and the file, since the run would overwrite or
    mix with it. A killed run's temporary files are removed."""
    record = _read_record(out)
    for name in storage.walk(out):
        if name in _NOT_OUTPUTS or name == RECORD_NAME:
            continue
        base = name.rpartition("/")[2]
        if base.startswith(".") and base.endswith(".tmp") and not storage.is_url(out):
            storage.remove(storage.join(out, name))  # a killed write's (.<name>.<pid>.tmp): never a file of its own
            continue
        if storage.sha256(storage.join(out, name)) not in record.get(name, ()):
            raise RunRefused(
                f"{storage.shown(out)} holds {shown_path(name)}, which no calibration wrote (or it changed since): "
                "calibrate replaces only its own earlier files; move it away, or choose another output folder"
            )
    return record


def _read_record(out: storage.Location) -> dict[str, set[str]]:
    """The record of the calibrations that wrote into ``out``: name -> SHA-256s; {} where there is none."""
    location = storage.join(out, RECORD_NAME)
    try:
        record = json.loads(storage.read_bytes(location))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict) or record.get("kind") != "calibrate" or not isinstance(record.get("files"), dict):
        raise RunRefused(
            f"{storage.shown(location)}: not a record of nsegaug calibrate; move it away, or choose "
            "another output folder"
        )
    return {name: set(hashes) for name, hashes in record["files"].items()}


def _write_record(out: storage.Location, files: dict[str, set[str]]) -> None:
    record = {
        "tool": "nsegaug",
        "kind": "calibrate",
        "version": __version__,
        "files": {name: sorted(hashes) for name, hashes in sorted(files.items())},
    }
    storage.write_file(storage.join(out, RECORD_NAME), (json.dumps(record, indent=2) + "\n").encode("utf-8"))
