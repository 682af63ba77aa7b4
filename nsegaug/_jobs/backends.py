"""Where the masks are processed: local worker processes (loky) or a Dask cluster, through joblib."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .. import storage
from .._files.label_folders import Sample
from ..errors import UsageError
from .config import JobConfig, Log
from .job import MaskJob, MaskOutcome
from .workers import WorkerContext, process_mask


def run_parallel(
    job: MaskJob, samples: Iterator[Sample], work_items: int | None = None, log: Log = lambda message: None
) -> Iterator[MaskOutcome]:
    from joblib import Parallel, delayed

    from .._resources.cpus import capped_note, worker_count

    # Workers know the parent by pid: in the parent itself (jobs=1 runs in process) no watch is needed.
    context = WorkerContext(os.getpid(), os.getcwd())
    tasks = (delayed(process_mask)(job, sample, context) for sample in samples)
    workers = worker_count(job.config.jobs, work_items)
    if not job.config.scheduler and (note := capped_note(job.config.jobs, workers, work_items)):
        log(note)
    if job.config.backend == "dask":
        sent, secrets = _without_secrets(job)
        if secrets and job.config.scheduler:
            log(f"note: credentials in the storage options are not sent to the workers at {job.config.scheduler}")
        tasks = (delayed(process_mask)(sent, sample, context) for sample in samples)
        with _dask_backend(job.config, workers, secrets):
            yield from Parallel(n_jobs=-1, return_as="generator_unordered")(tasks)
        return
    # A bounded number of tasks in flight keeps memory flat on huge datasets.
    yield from Parallel(n_jobs=workers, return_as="generator_unordered", pre_dispatch="2*n_jobs")(tasks)


def _without_secrets(job: MaskJob) -> tuple[MaskJob, dict]:
    """The job as the Dask task graph carries it (its storage options without secrets), and the secrets."""
    public, secrets = storage.split_secrets(job.config.storage_options)
    if not secrets:
        return job, {}
    sent = copy.copy(job)
    sent.config = dataclasses.replace(job.config, storage_options=public)
    return sent, secrets


@contextmanager
def _dask_backend(config: JobConfig, workers: int, secrets: dict):
    try:
        from dask.distributed import Client, LocalCluster
        from joblib import parallel_config
    except ImportError as error:
        raise UsageError("the dask backend needs the dask extra: pip install 'nsegaug[dask]'") from error
    if config.scheduler:
        client = Client(config.scheduler)
        cluster = None
    else:
        # The cluster's processes inherit an ignored SIGINT: Ctrl-C is the parent's to handle, which closes
        # the cluster; otherwise every worker prints its own KeyboardInterrupt traceback. Their log says errors
        # only: a stopped run's cancelled tasks are a warning each there, and nothing the user has to act on.
        with _sigint_ignored():
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
        if secrets:  # workers of this machine, started here: given the secrets apart from the graph
            from .dask_secrets import StorageSecrets

            client.register_plugin(StorageSecrets(secrets))
    try:
        with parallel_config(backend="dask"):
            yield client
    finally:
        with _dask_logs_silenced():
            client.close()
            if cluster is not None:
                cluster.close()


# The loggers of Dask and of the event loop it runs on (tornado), with every child distributed's config set up.
DASK_LOGGERS = ("distributed", "tornado")


@contextmanager
def _dask_logs_silenced():
    """No line from Dask while a run's client and cluster close. Closing them with tasks still in flight (Ctrl-C,
    a stop at the first error) fails the futures the client still tracks, and tornado logs each with the traceback
    of a closed connection: the end of a run the user stopped, not a fault to report. The run reports itself."""
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] in DASK_LOGGERS]
    loggers = [logging.getLogger(name) for name in {*DASK_LOGGERS, *names}]
    disabled = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was in zip(loggers, disabled, strict=True):
            logger.disabled = was


@contextmanager
def _sigint_ignored():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
