"""Refusing a run before it writes anything: the request (folders, backend, flags), then, while the run holds
its output folder, the folder's state (empty, or a run to resume with the same parameters)."""

from __future__ import annotations

from pathlib import Path

from .. import storage
from .._files.label_folders import is_inside
from .._files.lock import LOCK_NAME
from ..errors import OutputInUse, RunRefused, UsageError
from ..manifest import KINDS, META_NAME, parameter_differences, read_meta, resolved_parameters
from ..storage import is_url, join
from .job import MaskJob


def check_request(job: MaskJob, resume: bool, overwrite: bool) -> None:
    """Refuse the run before anything is written, with a message that says why."""
    config = job.config
    if not storage.is_dir(config.labels):
        raise UsageError(f"{storage.shown(config.labels)}: label folder not found")
    if config.images is not None and not storage.is_dir(config.images):
        raise UsageError(f"{storage.shown(config.images)}: image folder not found")
    if config.images is not None and next(storage.walk(config.images), None) is None:
        # No mask could have its image (a typo, a bucket prefix that merely "exists"): refused, not a warning each.
        found = "image folder not found (no object under this prefix)" if is_url(config.images) else "no image in it"
        raise UsageError(f"{storage.shown(config.images)}: {found}")
    if not is_url(config.out) and Path(config.out).exists() and not Path(config.out).is_dir():
        raise UsageError(f"{storage.shown(config.out)}: not a folder")
    for source in (config.labels, config.images):
        if source is not None and is_inside(config.out, source):
            raise UsageError(f"output folder {config.out} is inside {source}: outputs must not go among sources")
        if source is not None and is_inside(source, config.out):
            raise UsageError(f"{source} is inside the output folder {config.out}: sources must not lie among outputs")
    if config.backend == "dask":
        check_dask(config.scheduler)
    if config.palette is not None:
        from ..io import cached_colour_palette

        cached_colour_palette(config.palette)  # a bad colour table is refused before anything is written
    if resume and overwrite:
        raise UsageError("resume and overwrite exclude each other")


def check_folder(job: MaskJob, resume: bool, overwrite: bool, names: list[str] | None = None) -> None:
    """Refuse a run that the output folder's state does not allow; called while the run holds the folder,
    so that what it sees stays true (a run that started a moment earlier cannot fill it in between).
    ``names``: the folder's listing, when the caller has it."""
    config = job.config
    used = any(name != LOCK_NAME for name in (storage.walk(config.out) if names is None else names))
    if not (resume or overwrite) and used:
        raise OutputInUse(f"{storage.shown(config.out)} is not empty")
    meta_path = join(config.out, META_NAME)
    if resume and used and not storage.exists(meta_path):
        # Without its record nothing says which parameters made the files there: they cannot be continued.
        raise RunRefused(
            f"cannot resume: {storage.shown(meta_path)} is missing, so nothing records how the files in "
            f"{storage.shown(config.out)} were made; start again (overwrite) or choose another output folder"
        )
    if resume and used:
        old = read_meta(meta_path)
        if old.kind != job.kind:
            raise RunRefused(f"cannot resume: {meta_path} is the record of a {old.kind} run, not of {job.kind}")
        recorded = KINDS[old.kind].recorded_parameters(old.parameters)
        differences = parameter_differences(
            resolved_parameters(recorded, config.out), resolved_parameters(job.parameters(), config.out)
        )
        if differences:
            raise RunRefused("cannot resume with different parameters:\n  " + "\n  ".join(differences))


def check_dask(scheduler: str | None) -> None:
    """Refuse a dask run that cannot start before anything is written: no dask, or a scheduler nobody answers at."""
    import importlib.util
    import socket

    if importlib.util.find_spec("distributed") is None:
        raise UsageError("the dask backend needs the dask extra: pip install 'nsegaug[dask]'")
    if not scheduler:
        return
    address = scheduler.split("://", 1)[-1]
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"dask scheduler {scheduler}: not an address like tcp://host:8786")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=SCHEDULER_TIMEOUT_S).close()
    except OSError as error:
        raise UsageError(f"dask scheduler {scheduler}: cannot connect ({error.strerror or error})") from error


# How long --scheduler has to answer before a run is refused.
SCHEDULER_TIMEOUT_S = 10.0
