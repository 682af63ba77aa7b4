"""The job engine: a job over a label folder, run by workers into one output folder (``generate`` and ``noise``
are two jobs; the engine names neither).

Each mask is read by a worker (the parent sends names, never pixels), its
outputs are written atomically, and its manifest rows are appended only
once all its files exist. The manifest is sorted at the end, so it is the
same for any number of workers or backend. A run holds its output folder for
its whole life (`nsegaug._files.lock`), touches nothing outside it, can be
interrupted (Ctrl-C, SIGTERM, a killed process, a full disk) and resumed,
and after every run the folder holds exactly what its manifest lists, plus
the manifest and its metadata.

A job says what it writes for one mask and what its rows are
(`MaskJob`); the engine owns the rest, one concern a module:

- ``config``: `JobConfig`, what every job reads, writes and how it runs;
- ``job``: the per-mask job interface, a worker's outcome, the run's summary;
- ``sources``: the masks, walked and paired with their images;
- ``checks``: refusing a run before it writes anything;
- ``manifest_log``: the manifest a run writes, on a disk or in a bucket;
- ``folder``: the output folder, made ready before a run and swept after it;
- ``run``: a run from start to end, its state in one `Run`;
- ``workers``: what runs in a worker; ``backends``: loky or Dask.

This package is internal: the public names are those of [`nsegaug.generate`][nsegaug.generate] and
[`nsegaug.noise`][nsegaug.noise].
"""

from __future__ import annotations

from .config import BACKENDS, JobConfig, Log
from .job import JobSummary, MaskJob, MaskOutcome, Output, map_reserved
from .run import Run, run_job
from .sources import count_masks, paired, plan

__all__ = [
    "BACKENDS",
    "JobConfig",
    "JobSummary",
    "Log",
    "MaskJob",
    "MaskOutcome",
    "Output",
    "Run",
    "count_masks",
    "map_reserved",
    "paired",
    "plan",
    "run_job",
]
