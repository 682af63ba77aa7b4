"""Processes and devices: where this process stands in a torchrun launch, its device, and the process group.

Without torchrun everything here is the single-process case (rank 0 of 1) and
makes no collective call. Under torchrun rank 0 alone checks, writes and
prints; ``agree`` and ``all_reduce`` are how the other ranks learn its
refusals and sums.
"""

from __future__ import annotations

import gc
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn

from .config import TrainError


@dataclass(frozen=True)
class Processes:
    """Where this process stands in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched_processes() -> Processes:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), if any."""
    environ = os.environ
    return Processes(
        rank=int(environ.get("RANK", 0)),
        world_size=int(environ.get("WORLD_SIZE", 1)),
        local_rank=int(environ.get("LOCAL_RANK", 0)),
        local_world_size=int(environ.get("LOCAL_WORLD_SIZE", 1)),
    )


def pick_device(choice: str, processes: Processes) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA if available); under torchrun the GPU of the local rank."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if processes.local_rank >= torch.cuda.device_count():
        raise TrainError(f"local rank {processes.local_rank} has no GPU: {torch.cuda.device_count()} visible")
    return torch.device("cuda", processes.local_rank)


def device_model(device: torch.device) -> str:
    """The device's model by name: the GPU's (``torch.cuda.get_device_name``), else the CPU's.

    Recorded with a run: torch's CUDA random kernels size their launch by the
    GPU's multiprocessors, so one generator state draws other numbers on
    another GPU model.
    """
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            names = [line.partition(":")[2].strip() for line in cpuinfo if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine() or "unknown"


def start_processes(device: torch.device, processes: Processes) -> None:
    """Join the process group: NCCL between GPUs, gloo between CPU processes."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # Threads: use_threads, called by prepare with the run's setting, shares the CPUs among local processes.
    if processes.distributed and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


@dataclass(frozen=True)
class Threads:
    """The threads this process runs torch and OpenCV on, and what decided their number."""

    count: int
    cpus: int  # the CPUs this process may use: affinity, bounded by the cgroup's quota
    local_processes: int  # training processes on this machine sharing them (torchrun's LOCAL_WORLD_SIZE)
    asked: bool  # set by the run's config (--threads), not the CPUs' even share

    def describe(self) -> str:
        """``1 thread (1 CPU available)``; ``3 threads as asked, more than the 1 CPU available``; ..."""
        threads = f"{self.count} thread{'s' if self.count != 1 else ''}"
        available = f"{self.cpus} CPU{'s' if self.cpus != 1 else ''} available"
        if self.local_processes > 1:
            available += f", shared by {self.local_processes} processes on this machine"
        if not self.asked:
            return f"{threads} ({available})"
        if self.count * self.local_processes > self.cpus:
            return f"{threads} as asked, more than the share of the {available} (they will take turns)"
        return f"{threads} as asked ({available})"

    def record(self) -> dict:
        """What config.json records: the count and what it was chosen from."""
        return {
            "torch": self.count,
            "opencv": self.count,
            "cpus_available": self.cpus,
            "local_processes": self.local_processes,
            "asked": self.asked,
        }


def use_threads(requested: int | None, local_processes: int = 1) -> Threads:
    """Run torch's and OpenCV's work in this process on ``requested`` threads, or by default on this process's
    share of the CPUs it may use (``nsegaug._resources.cpus.threads_per_worker`` over the local processes).

    torch's own default is the machine's core count, whatever the affinity or the quota: in a job given a
    few CPUs of a large node, its threads would take turns. DataLoader workers run one thread each
    (``data.seed_worker``): they fill a bounded queue ahead of the step and wait while it is full.
    """
    from .._resources import cpus

    available = cpus.available_cpus()
    count = requested if requested is not None else cpus.threads_per_worker(local_processes, available)
    torch.set_num_threads(count)
    try:
        # Settable once, and only before the first inter-op parallel work; a second run in the same
        # process (tests, notebooks) keeps the first run's inter-op pool, which only torch.jit uses.
        torch.set_num_interop_threads(count)
    except RuntimeError:
        pass
    import cv2

    cv2.setNumThreads(count)
    return Threads(count, available, local_processes, requested is not None)


def stop_processes(processes: Processes, ended: bool = False) -> None:
    """Leave the process group that ``start_processes`` joined, if any; ``ended``: this rank ran to its end.

    A rank that ended waits for the others first: one that left while rank 0 still wrote metrics.json and
    the curves now and then aborted at its exit ("terminate called without an active exception", in gloo's
    teardown; about 1 run in 6 of two ranks on a loaded 2-core machine), and torchrun then stopped rank 0
    before the run's end was written. The garbage collector first frees the run's DistributedDataParallel,
    which sits in reference cycles and holds the group, so that gloo's threads end here, not in the
    interpreter's own teardown. A rank that did not end does not wait: the others may be gone.
    """
    if not (processes.distributed and torch_dist.is_initialized()):
        return
    gc.collect()
    if ended:
        # NCCL's barrier is told its GPU: without it torch warns on rank 0 that it guesses the device.
        on_gpus = torch_dist.get_backend() == "nccl"
        torch_dist.barrier(device_ids=[torch.cuda.current_device()] if on_gpus else None)
    torch_dist.destroy_process_group()


def agree(processes: Processes, action: Callable[[], None]) -> None:
    """Run ``action`` on rank 0 only; if it fails, every rank raises: rank 0 its own error (its exit code),
    the others a TrainError with the same message.

    Without this a refusal or an I/O error on rank 0 would leave the other
    ranks waiting for it in their first collective call.
    """
    failure: BaseException | None = None
    if processes.main:
        try:
            action()
        except Exception as error:  # noqa: BLE001 - any failure must reach the other ranks, then rank 0 re-raises it
            failure = error
    # An error without text (a bare AssertionError) still stops the others: they raise on a non-empty message.
    message = (str(failure) or type(failure).__name__) if failure is not None else None
    if processes.distributed:
        box = [message]
        torch_dist.broadcast_object_list(box, src=0)
        message = box[0]
    if failure is not None:
        raise failure
    if message:
        raise TrainError(message)


def all_reduce(tensor: torch.Tensor, processes: Processes) -> torch.Tensor:
    """``tensor`` summed over all processes, in place (itself without torchrun)."""
    if processes.distributed:
        torch_dist.all_reduce(tensor)
    return tensor


def all_gather(value, processes: Processes) -> list:
    """Every process's ``value``, in rank order; a collective call under torchrun (all ranks call it)."""
    if not processes.distributed:
        return [value]
    values = [None] * processes.world_size
    torch_dist.all_gather_object(values, value)
    return values


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DistributedDataParallel (itself without it)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
