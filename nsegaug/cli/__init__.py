"""The ``nsegaug`` command group, and the one place where errors become messages and exit codes.

Each subcommand lives in its own module, imported only when it runs or shows
its own ``--help`` (the group's help lists them from ``COMMANDS``): the
modules import click and nsegaug's pure-Python parts only, and the heavy
libraries (NumPy, OpenCV, torch) inside the command body. ``nsegaug --help``
itself is answered by `nsegaug._entry`, without click.

Exit codes, the same for every command:

- 0: done;
- 1: the work failed (a bad file, an I/O fault, training data or a checkpoint
  that cannot be used);
- 2: a usage mistake on the command line (a bad flag or value, options that
  exclude each other, a folder named that is not there), under click's
  ``Usage:`` header;
- 3: a run refused by the state of its folder, before it wrote anything
  (another run holds it, or a folder inside or around it; it holds an
  earlier run's files: ``--resume`` or ``--overwrite``; files nsegaug did
  not write; a run that cannot be resumed as asked): one ``Error:`` line, no
  usage header, since the command line itself was right;
- 130: Ctrl-C; 143: SIGTERM.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading

import click

from .._version import __version__
from ..errors import NsegaugError, OutputInUse, RunRefused, StorageError, UsageError

# name -> its one-line help; each is a module under nsegaug.cli defining a click command of the same name.
# The lines are the commands' own (a test keeps them equal): ``nsegaug --help`` lists the commands without
# importing them, which would cost more than starting Python.
COMMANDS = {
    "calibrate": "Measure how two annotations of the same maps disagree, and the NSegment+ strength that matches it.",
    "evaluate": "Recompute mIoU, boundary IoU, band mIoU, per-class IoU and pixel accuracy of a saved model.",
    "export": "Write a manifest's (image, label) pairs, so that nobody has to glob the output folder.",
    "generate": "Write K deformed copies of every label map, with a manifest.",
    "noise": "Write a noisy version of every label map: annotation error, seeded and reproducible.",
    "preview": "Draw source masks next to their deformed copies, to choose parameters by eye.",
    "study": "Run a paired study on your data: does NSegment+ help, with confidence intervals.",
    "train": "Train a segmentation model on a generated dataset and evaluate it.",
}


# The exit code of a run refused by the state of its folder (see the module docstring).
EXIT_REFUSED = 3


class Refused(click.ClickException):
    """A refused run as the command line shows it: one ``Error:`` line, exit code ``EXIT_REFUSED``."""

    exit_code = EXIT_REFUSED


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, Kubernetes, Slurm), raised where Ctrl-C would be, so it stops a run the same way."""


def _terminate(signum, frame) -> None:
    raise Terminated()


class Command(click.Command):
    """A subcommand whose errors and interruptions become one line and an exit code (see the module docstring)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OutputInUse as error:
            raise Refused(f"{_said(error)}; pass --resume to continue that run, or --overwrite") from error
        except RunRefused as error:
            raise Refused(_said(error)) from error
        except UsageError as error:
            raise click.UsageError(_said(error), ctx) from error
        except NsegaugError as error:
            raise click.ClickException(_said(error)) from error
        except Terminated:
            ctx.exit(143)
        except KeyboardInterrupt:
            ctx.exit(130)
        except BrokenPipeError:
            # Whoever read our output stopped reading (``| head``); the work itself is done.
            _silence_stdout()
            ctx.exit(0)
        except OSError as error:
            # A write no command wraps itself (a full disk under --out, a folder without permission): still
            # one line naming the file, not a traceback.
            raise click.ClickException(_said(StorageError.from_os_error(error))) from error


def _said(error: BaseException) -> str:
    """An error's line, without the credentials of any URL in it (the last guard: commands take them out first)."""
    from ..storage import public_text

    return public_text(str(error))


class _Group(click.Group):
    """Finds subcommands by name, importing their module only then, and keeps the command line for the run records."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{name}")
        return getattr(module, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own layout, from the table instead of from every command module.
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        # A bare click.Command per line: click's own shortening, without the command's module.
        rows = [(name, click.Command(name, help=COMMANDS[name]).get_short_help_str(limit)) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args=None, *positional, **extra):
        arguments = list(args) if args is not None else sys.argv[1:]
        extra.setdefault("obj", {"argv": arguments})
        # SIGTERM stops a run as Ctrl-C does (temp files removed, status recorded), with its own exit code.
        previous = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
        try:
            return super().main(args, *positional, **extra)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _silence_stdout() -> None:
    # Python flushes stdout at exit; into a closed pipe that would be a second BrokenPipeError.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# Options whose values may hold credentials: recorded as HIDDEN, never as given.
SECRET_OPTIONS = ("--storage-options",)
HIDDEN = "<hidden>"


def command_line(ctx: click.Context) -> list[str]:
    """``["nsegaug", *arguments]`` as typed (secrets hidden: storage options, URLs' credentials), also under
    click's test runner."""
    root = ctx.find_root()
    from ..storage import public_text

    arguments = root.obj.get("argv", sys.argv[1:]) if isinstance(root.obj, dict) else sys.argv[1:]
    shown, hide_next = [], False
    for argument in arguments:
        if hide_next:
            shown.append(HIDDEN)
        elif argument.split("=", 1)[0] in SECRET_OPTIONS and "=" in argument:
            shown.append(f"{argument.split('=', 1)[0]}={HIDDEN}")
        else:
            shown.append(public_text(argument))  # a URL typed with credentials
        hide_next = not hide_next and argument in SECRET_OPTIONS
    return ["nsegaug", *shown]


def reporting(quiet: bool) -> dict:
    """How a long job reports, for ``generate_dataset`` and ``train``: a progress bar only when
    stderr is a terminal and --quiet is not given, messages on stderr, the command line for the run records."""
    return {
        "progress": not quiet and sys.stderr.isatty(),
        "command_line": command_line(click.get_current_context()),
        "log": lambda message: click.echo(message, err=True),
    }


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nsegaug")
def main() -> None:
    """nsegaug: NSegment+ label-only elastic deformation for segmentation datasets.

    \b
    Example:
      nsegaug generate --labels examples/data/train/labels --copies 5 --out out/train
    """
