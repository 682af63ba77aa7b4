"""The ``nsegaug`` command group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nsegaug")
def main() -> None:
    """nsegaug: NSegment+ label-only elastic deformation for segmentation datasets.

    \b
    Example:
      nsegaug --version
    """
