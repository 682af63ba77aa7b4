"""The ``nsegaug`` command group; each subcommand lives in its own module."""

from __future__ import annotations

import sys

import click

from .. import __version__


class _Group(click.Group):
    """Keeps the arguments it was called with, for the run records (``command_line(ctx)``)."""

    def main(self, args=None, *positional, **extra):
        arguments = list(args) if args is not None else sys.argv[1:]
        extra.setdefault("obj", {"argv": arguments})
        return super().main(args, *positional, **extra)


def command_line(ctx: click.Context) -> list[str]:
    """``["nsegaug", *arguments]`` as typed, also under click's test runner (where sys.argv is pytest's)."""
    root = ctx.find_root()
    arguments = root.obj.get("argv", sys.argv[1:]) if isinstance(root.obj, dict) else sys.argv[1:]
    return ["nsegaug", *arguments]


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


# Subcommands register themselves on ``main`` when imported.
from . import evaluate, generate, preview, train  # noqa: E402, F401
