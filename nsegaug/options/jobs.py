"""The options of every job over a label folder (``nsegaug generate``, ``nsegaug noise``): sources, output,
workers, resume, errors, backend."""

from __future__ import annotations

import click

from . import Location, jobs_option, quiet_option, seed_option, storage_options_option, walk_options

_JOB_OPTIONS = [
    click.option(
        "--labels",
        type=Location(exists=True, file_okay=False),
        required=True,
        help="Folder (or s3://... prefix) of label maps, walked recursively.",
    ),
    click.option("--out", type=Location(file_okay=False), required=True, help="Output folder (or s3://... prefix)."),
    click.option(
        "--images",
        type=Location(exists=True, file_okay=False),
        default=None,
        help="Image folder (or prefix), paired by relative path and stem; recorded in the manifest, never touched.",
    ),
    seed_option,
    jobs_option,
    walk_options,
    click.option(
        "--max-pixels",
        type=click.IntRange(min=1),
        default=None,
        help="Largest map to open, in pixels (Pillow refuses bigger files as decompression bombs)  "
        "[default: Pillow's, 89,478,485]",
    ),
    click.option("--resume", is_flag=True, help="Finish an interrupted run; checks existing outputs by checksum."),
    click.option(
        "--overwrite", is_flag=True, help="Start again in a used --out (removes only what an earlier run wrote)."
    ),
    click.option(
        "--on-error",
        type=click.Choice(["skip", "fail"]),
        default="skip",
        show_default=True,
        help="On a bad file: report it and go on, or stop.",
    ),
    click.option(
        "--backend",
        type=click.Choice(["loky", "dask"]),
        default="loky",
        show_default=True,
        help="loky: local processes; dask: a Dask cluster (pip install 'nsegaug[dask]').",
    ),
    click.option(
        "--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786 (with --backend dask)."
    ),
    storage_options_option,
    quiet_option,
]


def job_options(command):
    """The options of every job over a label folder: sources, output, workers, resume, errors, backend."""
    for option in reversed(_JOB_OPTIONS):
        command = option(command)
    return command
