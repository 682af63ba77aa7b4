"""The ``nsegaug`` command's entry point.

``nsegaug --help`` and ``--version`` are answered here, without importing
click: click alone costs about as much as starting Python, and these are the
calls a user makes to find out what the tool does. Everything else goes to
the click group in `nsegaug.cli`. ``HELP`` is click's own rendering of
the group's help (a test keeps it equal), so both paths print the same text.
"""

from __future__ import annotations

import os
import sys

from ._version import __version__

HELP = """\
Usage: nsegaug [OPTIONS] COMMAND [ARGS]...

  nsegaug: NSegment+ label-only elastic deformation for segmentation datasets.

  Example:
    nsegaug generate --labels examples/data/train/labels --copies 5 --out out/train

Options:
  --version   Show the version and exit.
  -h, --help  Show this message and exit.

Commands:
  calibrate  Measure how two annotations of the same maps disagree, and...
  evaluate   Recompute mIoU, boundary IoU, band mIoU, per-class IoU and...
  export     Write a manifest's (image, label) pairs, so that nobody has...
  generate   Write K deformed copies of every label map, with a manifest.
  noise      Write a noisy version of every label map: annotation error,...
  preview    Draw source masks next to their deformed copies, to choose...
  study      Run a paired study on your data: does NSegment+ help, with...
  train      Train a segmentation model on a generated dataset and...
"""
# click lays help out for min(terminal width, 80) columns; HELP is the 80-column layout.
HELP_COLUMNS = 80


def run(args: list[str] | None = None, prog_name: str = "nsegaug") -> None:
    arguments = sys.argv[1:] if args is None else list(args)
    if prog_name == "nsegaug" and len(arguments) == 1:
        if arguments[0] in ("-h", "--help") and _columns() >= HELP_COLUMNS:
            return _say(HELP)
        if arguments[0] == "--version":
            return _say(f"nsegaug, version {__version__}\n")
    from .cli import main

    try:
        main(args=args, prog_name=prog_name)
    except SystemExit as exit:
        if exit.code in (130, 143):
            import signal

            # An interrupted run has ended and the process exits now: a Ctrl-C pressed again must not cut short
            # what exiting still does (Dask closes its clusters, multiprocessing its workers), a traceback each.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise


def _say(text: str) -> None:
    """Print as click would: nothing where there is no stdout, and a reader that stopped (``| head``) is fine."""
    if sys.stdout is None:
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; into the closed pipe that would be a second error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _columns() -> int:
    """The terminal's width as click reads it (``shutil.get_terminal_size``, without importing shutil)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return HELP_COLUMNS
    return columns if columns > 0 else HELP_COLUMNS
