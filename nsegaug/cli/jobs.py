"""What the commands that run a job over a label folder (``generate``, ``noise``) share: options and the run."""

from __future__ import annotations

from collections.abc import Callable

import click

from ..options.jobs import job_options
from . import reporting

__all__ = ["job_options", "run_job_command"]  # job_options: declared in nsegaug.options.jobs


def run_job_command(name: str, run: Callable, config, resume: bool, overwrite: bool, quiet: bool) -> None:
    """Run a job as a command: the summary line on stderr, exit 1 when a mask failed, the resume hint on a stop."""
    if config.scheduler and config.backend != "dask":
        raise click.UsageError("--scheduler needs --backend dask")
    try:
        summary = run(config, resume=resume, overwrite=overwrite, **reporting(quiet))
    except KeyboardInterrupt:
        click.echo(f"interrupted; finish with: nsegaug {name} ... --out {config.out} --resume", err=True)
        raise
    click.echo(summary.line(), err=True)
    if summary.failed:
        raise click.exceptions.Exit(1)
