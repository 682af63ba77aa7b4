"""Checkpoints: what a run has done (``TrainState``), the file ``last.pt``/``best.pt`` and its RNG states.

A checkpoint is a plain dict of tensors and JSON-like values (loadable with
``weights_only=True``): the ``Learner``'s state dicts, the ``TrainState``,
every RNG a run draws from, the config, and the device it ran on (kind and
model). ``checkpoint_contents`` writes it, ``restore_learner`` reads it back;
with both, ``--resume`` continues with the very numbers of an uninterrupted
run on the CPU (tested). On CUDA it continues with the same data, order,
crops and RNG states, but not necessarily the same numbers: cuDNN's
autotuned and some CUDA kernels are not deterministic, and on another GPU
model the --online generator draws other deformations (``resume_notes`` warns).
"""

from __future__ import annotations

import io
import pickle
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..errors import shown_path
from ..storage import write_bytes_atomic
from .config import TrainConfig, TrainError
from .distributed import Processes, all_gather, device_model, unwrap
from .step import Learner

CHECKPOINT_FORMAT = "nsegaug-train-checkpoint"


@dataclass
class TrainState:
    """What a run has done so far; saved in every checkpoint and restored by --resume."""

    step: int = 0
    history: dict = field(default_factory=lambda: {"loss": [], "evals": []})  # loss.jsonl and metrics.jsonl rows
    best: dict = field(default_factory=lambda: {"miou": None, "step": None, "epoch": None})
    elapsed: float = 0.0  # seconds of training, evaluations left out
    since_eval: list = field(default_factory=lambda: [0.0, 0])  # loss sum and steps since the last evaluation

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> TrainState:
        return cls(
            step=checkpoint["step"],
            history=checkpoint["history"],
            best=checkpoint["best"],
            elapsed=checkpoint["elapsed_s"],
            since_eval=list(checkpoint["since_eval"]),
        )

    def train_loss(self) -> float | None:
        """The mean training loss since the last evaluation (None before any step)."""
        loss_sum, steps = self.since_eval
        return loss_sum / steps if steps else None

    def add_evaluation(self, row: dict) -> bool:
        """Record an evaluation's ``row``; True when its mIoU is the best so far."""
        self.history["evals"].append(row)
        self.since_eval = [0.0, 0]
        improved = row["miou"] is not None and (self.best["miou"] is None or row["miou"] > self.best["miou"])
        if improved:
            self.best.update(miou=row["miou"], step=row["step"], epoch=row["epoch"])
        return improved


def save_checkpoint(path: Path, state: dict) -> None:
    # Atomic, so a run killed while saving keeps its previous last.pt.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


# Keeps the seeds of --online's deformation generators apart from the seed of the initial weights.
_ONLINE_STREAM = 0x6E73676F  # "nsgo"


def deformation_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s ``torch.Generator`` for online deformation.

    Derived from (seed, rank), so processes draw different deformations, and
    apart from ``seed`` itself, which seeds the initial weights.
    """
    state = np.random.SeedSequence([_ONLINE_STREAM, int(seed), int(rank)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1  # < 2**63: a non-negative int64, as torch's manual_seed takes it everywhere


def load_checkpoint(path: Path) -> dict:
    try:
        # weights_only: a checkpoint holds tensors and plain values only (RNG states are stored as lists).
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise TrainError(f"{shown_path(path)}: checkpoint not found") from error
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        raise TrainError(f"{shown_path(path)}: not an nsegaug checkpoint ({_unreadable(path, error)})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{shown_path(path)}: not an nsegaug checkpoint (a torch file without nsegaug's format)")
    return state


def _unreadable(path: Path, error: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, in a few words: torch's own text runs to several lines and, for
    a file holding Python objects, advises loading it with ``weights_only=False``, which would run its code."""
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    if isinstance(error, EOFError):
        return "empty or cut short"
    if not zipfile.is_zipfile(path):
        return "not a file torch.save wrote" if isinstance(error, pickle.UnpicklingError) else "a damaged torch file"
    if isinstance(error, pickle.UnpicklingError):
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        return "it holds Python objects, not only tensors and plain values" + (f": {found[1]}" if found else "")
    first = " ".join(str(error).split(".")[0].split())
    return first[:120] or type(error).__name__


def rng_states() -> dict:
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "python": [python_state[0], list(python_state[1]), python_state[2]],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def deformation_generator(device: torch.device, seed: int, rank: int) -> torch.Generator:
    """The ``torch.Generator`` that draws --online's deformations on ``device``, one stream per process."""
    generator = torch.Generator(device=device)
    generator.manual_seed(deformation_seed(seed, rank))
    return generator


def generator_states(generator: torch.Generator, processes: Processes) -> list[torch.Tensor]:
    """Every process's generator state, in rank order; a collective call under torchrun (all ranks call it)."""
    return all_gather(generator.get_state(), processes)


def checkpoint_contents(
    learner: Learner,
    state: TrainState,
    *,
    config: TrainConfig,
    prob: float,
    pairing: dict,
    per_epoch: int,
    world_size: int,
    generators: list[torch.Tensor] | None,
    device: torch.device,
    host_generators: list[torch.Tensor] | None = None,
) -> dict:
    """The checkpoint of a run at ``state.step``; ``generators`` (and ``host_generators``, on a GPU) are every
    process's (``generator_states``)."""
    online = {} if generators is None else {"deformation_generators": generators, "deformation_device": device.type}
    if host_generators is not None:
        online["deformation_host_generators"] = host_generators
    return {
        "format": CHECKPOINT_FORMAT,
        "nsegaug": __version__,
        "model": unwrap(learner.model).state_dict(),
        "optimizer": learner.optimizer.state_dict(),
        "scheduler": learner.scheduler.state_dict(),
        "scaler": learner.scaler.state_dict(),
        "epoch": state.step // per_epoch,
        "step": state.step,
        "batches_per_epoch": per_epoch,
        "world_size": world_size,
        "best": dict(state.best),
        "history": state.history,
        "rng": rng_states(),
        "config": config.to_dict(),
        "prob_used": prob,
        "data": pairing,  # how evaluate pairs labels with images again
        "elapsed_s": state.elapsed,
        "since_eval": list(state.since_eval),
        "device": device.type,
        "device_model": device_model(device),
        "amp": learner.amp,
        **online,
    }


def restore_learner(checkpoint: dict, learner: Learner, processes: Processes, device: torch.device, say) -> TrainState:
    """Load ``checkpoint`` into ``learner`` and the global RNGs; the run's ``TrainState`` at that step."""
    unwrap(learner.model).load_state_dict(checkpoint["model"])
    learner.optimizer.load_state_dict(checkpoint["optimizer"])
    learner.scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint["scaler"] and learner.scaler.is_enabled():  # empty when saved without AMP (CPU)
        learner.scaler.load_state_dict(checkpoint["scaler"])
    restore_rng_states(checkpoint["rng"])
    fits, notes = resume_notes(checkpoint, device.type, device_model(device), processes.world_size, learner.amp)
    for note in notes:
        say(note)
    if learner.generator is not None and fits:
        learner.generator.set_state(checkpoint["deformation_generators"][processes.rank])
        host_states = checkpoint.get("deformation_host_generators") or []
        if learner.host_generator is not None and len(host_states) == processes.world_size:
            learner.host_generator.set_state(host_states[processes.rank])
    return TrainState.from_checkpoint(checkpoint)


def resume_notes(checkpoint: dict, device_type: str, model: str, world_size: int, amp: bool) -> tuple[bool, list]:
    """Whether the saved --online generator states fit this run, and the warnings a resume here gives.

    A generator's state fits a generator of the same kind of device, one per
    process; on CUDA it then draws the saved stream only on the same GPU model.
    A run whose steps switch precision (a CPU run resumed on a GPU, where AMP
    is on by default, or the other way) is said to.
    """
    notes = []
    saved_amp = bool(checkpoint["scaler"])  # the gradient scaler's state is saved only with AMP on
    if saved_amp != amp:
        where = f"{checkpoint.get('device', 'another device')} ({checkpoint.get('device_model', 'unknown')})"
        notes.append(
            f"warning: the steps before were taken {'with' if saved_amp else 'without'} mixed precision on {where}, "
            f"the steps from here {'with' if amp else 'without'} it on {device_type} ({model}): "
            "not the run an uninterrupted one would be"
        )
    saved = checkpoint.get("deformation_generators") or []
    if not saved:
        return False, notes
    saved_type = checkpoint.get("deformation_device", device_type)
    if len(saved) != world_size or saved_type != device_type:
        notes.append(
            f"warning: --online deformations were drawn on {saved_type} x {len(saved)}; "
            f"on {device_type} x {world_size} they start a fresh stream"
        )
        return False, notes
    saved_model = checkpoint.get("device_model")
    if device_type == "cuda" and saved_model != model:
        notes.append(
            f"warning: --online deformations were drawn on a {saved_model or 'GPU of unrecorded model'}, "
            f"this is a {model}: torch's CUDA random kernels are sized by the GPU's multiprocessors, so the saved "
            "generator state may draw other deformations from here on than an uninterrupted run would"
        )
    return True, notes
