"""The options of ``nsegaug generate``: a job over a label folder, the copies and the deformation."""

from __future__ import annotations

import click

from .._files.label_folders import DEFAULT_NAME_TEMPLATE
from . import deform_options, params_file_option, png_level_option, prob_option
from . import parser as bare_parser
from .jobs import job_options

_OPTIONS = [
    job_options,
    click.option("--copies", "-k", type=click.IntRange(min=1), required=True, help="Deformed copies per mask."),
    prob_option,
    deform_options(),
    params_file_option,
    click.option(
        "--name-template",
        default=DEFAULT_NAME_TEMPLATE,
        show_default=True,
        help="File name of each copy, from {stem}, {copy} (1..K) and {ext} (last).",
    ),
    png_level_option,
    click.option("--dry-run", is_flag=True, help="List what would be written, write nothing."),
]


def generate_options(command):
    """Every option of ``nsegaug generate``, in the order its help lists them."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def parser() -> click.Command:
    """``nsegaug generate``'s options as a bare command (see [`parser`][nsegaug.options.parser])."""
    return bare_parser("generate", generate_options)
