"""The training job: prepare, build, restore, loop, finish; the same code under torchrun.

``train(config)`` is what ``nsegaug train`` runs, ``evaluate_checkpoint`` what
``nsegaug evaluate`` runs. Launched by torchrun (``WORLD_SIZE`` > 1) the same
code runs DistributedDataParallel, one process per device; rank 0 alone checks
the data, writes files and shows progress, and tells the others when it refuses.

The parts, each in its module:

- ``start``: ``prepare``, ``build`` and ``restore``, all that comes before the first step;
- ``distributed``: processes, devices, the process group, rank 0's refusals;
- ``step``: the loss and one optimizer step (``train_step``), the schedule;
- ``checkpoint``: ``TrainState`` and the checkpoint file with every RNG state;
- ``evaluation``: the confusion matrix over a loader, ``evaluate_checkpoint``;
- ``runlog``: the run folder's files, the progress bar and the printed lines.

This module holds the order in which they run, and re-exports their public
names (``from nsegaug.train.loop import train, load_checkpoint, ...``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import torch

from .. import storage
from ..torch import deform_batch
from .checkpoint import (
    CHECKPOINT_FORMAT,
    TrainState,
    checkpoint_contents,
    generator_states,
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from .config import TrainConfig
from .distributed import (
    Processes,
    all_reduce,
    device_model,
    launched_processes,
    pick_device,
    start_processes,
    stop_processes,
    unwrap,
)
from .evaluation import EVAL_PRECISION, counts_over, evaluate_checkpoint
from .metrics import summarize_counts
from .model import count_parameters
from .runlog import BEST, CURVES, LAST, METRICS_FINAL, RunLog, evaluation_line, loss_interval, say_on_stderr
from .start import Plan, build, headline, loaders, prepare, restore
from .step import Learner, learner_step, lr_factor, segmentation_loss, to_device, train_step

__all__ = [
    "CHECKPOINT_FORMAT",
    "Learner",
    "Plan",
    "Processes",
    "TrainState",
    "counts_over",
    "evaluate_checkpoint",
    "launched_processes",
    "learner_step",
    "load_checkpoint",
    "lr_factor",
    "pick_device",
    "restore_rng_states",
    "rng_states",
    "save_checkpoint",
    "segmentation_loss",
    "to_device",
    "train",
    "train_step",
]


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] = say_on_stderr,
    command_line: list[str] | None = None,
    stop_after: int | None = None,
    storage_options: dict | None = None,
    cache: Path | None = None,
) -> dict:
    """Train on ``config.manifest``, evaluate on the validation folders, write the run folder ``config.out``.

    Returns the final metrics (what ``metrics.json`` holds). ``stop_after``
    ends this call after that many steps with ``last.pt`` saved, as a
    preempted job would, so that ``resume=True`` can go on from there.
    The manifest and the data may be in object storage (fsspec URLs):
    ``storage_options`` reach them (never recorded), and ``cache`` keeps a
    local copy of every object read, so later epochs read the disk.
    Raises [`TrainError`][nsegaug.errors.TrainError], on every rank, before training when the run
    folder or the data cannot be used.
    """
    # Credentials typed in the config's URLs join the options, as generate's do: for every location of that store.
    storage.configure(storage.combined_options(storage_options, config.storage_options), cache)
    processes = launched_processes()
    device = pick_device(config.device, processes)
    start_processes(device, processes)
    ended = False
    try:
        result = run_in_process(config, processes, device, log, resume, overwrite, command_line, progress, stop_after)
        ended = True
        return result
    finally:
        # The run's model, and DDP's hold on the process group with it, went with run_in_process's frame.
        stop_processes(processes, ended)


def run_in_process(config, processes, device, log, resume, overwrite, command_line, progress, stop_after) -> dict:
    """This process's part of ``train``: from the run folder to metrics.json."""
    run_log = RunLog(config.out, log, processes.main)
    with ExitStack() as held:  # the run folder, held by rank 0 until the run ends
        plan = prepare(config, processes, device, run_log, resume, overwrite, command_line, held)
        learner = build(plan, run_log)
        state = restore(plan, learner, run_log)
        state = loop(plan, learner, state, run_log, progress, stop_after)
        return finish(plan, learner, state, run_log)


# --- loop: steps, loss points, evaluations, checkpoints ----------------------------------------------------------


class Window:
    """What the steps since the last loss point add up to, and their time.

    The sums stay on the device, so that a step never waits for the host.
    """

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, steps
        self.deformation = torch.zeros(2, dtype=torch.float64, device=device)  # online: maps deformed, changed shares
        self.tick = self.start = time.perf_counter()
        self.steps = 0
        self.images_per_s = 0.0

    def add_step(self, loss: torch.Tensor) -> None:
        self.loss += torch.stack([loss.double(), torch.ones((), dtype=torch.float64, device=loss.device)])
        self.steps += 1

    def take_loss(self, processes: Processes) -> tuple[float, float]:
        """The loss sum and the steps since the last call, over all processes."""
        return _take(self.loss, processes)

    def take_deformation(self, processes: Processes) -> tuple[float, float]:
        """--online: the maps deformed and the sum of their changed shares since the last call, over all processes."""
        return _take(self.deformation, processes)

    def lap(self) -> float:
        """Seconds since the last lap or restart: training time, evaluations left out."""
        now = time.perf_counter()
        seconds, self.tick = now - self.tick, now
        return seconds

    def throughput(self, images_per_step: int) -> float:
        """Images per second since the last call (or restart); starts a new window."""
        now = time.perf_counter()
        self.images_per_s = self.steps * images_per_step / max(now - self.start, 1e-9)
        self.start, self.steps = now, 0
        return self.images_per_s

    def restart(self) -> None:
        """After an evaluation: its time counts neither as training time nor in images/s."""
        self.tick = self.start = time.perf_counter()


def _take(sums: torch.Tensor, processes: Processes) -> tuple[float, float]:
    # The one host sync per loss point; zeroed for the next window.
    first, second = all_reduce(sums, processes).tolist()
    sums.zero_()
    return first, second


def loop(plan: Plan, learner: Learner, state: TrainState, run_log: RunLog, progress: bool, stop_after) -> TrainState:
    """Train from ``state.step`` to the end of the run, or ``stop_after`` steps, logging and saving on the way."""
    config, total = plan.config, plan.total
    loader, validation = loaders(plan, state.step)
    run_log.say(headline(plan, learner, state))
    run_log.start_bar(total, state.step, progress)
    window = Window(plan.device)
    interval = loss_interval(total)
    stop_at = state.step + stop_after if stop_after is not None else None
    learner.model.train()
    try:
        for batch in loader:
            take_step(plan, learner, batch, window)
            state.step += 1
            run_log.advance()
            finished = state.step >= total
            stopping = stop_at is not None and state.step >= stop_at
            if state.step % interval == 0 or finished:
                log_loss(plan, learner, state, window, run_log)
            if evaluation_due(plan, state.step) or finished:
                evaluate_and_save(plan, learner, state, window, validation, run_log)
            elif checkpoint_due(plan, state.step) or stopping:
                save(plan, learner, state, run_log)
            if finished or stopping:
                break
    except KeyboardInterrupt:
        run_log.close_bar()
        saved = load_checkpoint(config.out / LAST)["step"] if (config.out / LAST).exists() else 0
        run_log.say(
            f"interrupted at step {state.step}; continue from step {saved} with: "
            f"nsegaug train --out {config.out} --resume"
        )
        raise
    run_log.close_bar()
    return state


def take_step(plan: Plan, learner: Learner, batch, window: Window) -> None:
    """One training step on ``batch`` (--online: its labels deformed first), then the schedule's (``learner_step``)."""
    config = plan.config
    images, labels = to_device(batch[0], batch[1], plan.device, config.mean, config.std)
    if learner.generator is not None:
        labels = deform_online(plan, learner, labels, batch[2], window)
    window.add_step(learner_step(learner, images, labels, config.ignore_index, config.clip_grad))


def deform_online(plan: Plan, learner: Learner, labels, boxes, window: Window) -> torch.Tensor:
    """--online: the batch's labels deformed on the device; what the deformation did added to ``window``."""
    params, host = plan.config.params, learner.host_generator
    labels, stats = deform_batch(labels, learner.generator, params, prob=plan.prob, boxes=boxes, host_generator=host)
    window.deformation += torch.stack([stats.deformed.double(), stats.changed_fraction.double()]).sum(1)
    return labels


def log_loss(plan: Plan, learner: Learner, state: TrainState, window: Window, run_log: RunLog) -> None:
    """A loss.jsonl point: the mean loss over all processes since the previous one, the lr, images/s."""
    loss_sum, count = window.take_loss(plan.processes)
    state.elapsed += window.lap()
    images_per_s = window.throughput(plan.global_batch)
    state.since_eval[0] += loss_sum
    state.since_eval[1] += int(count)
    point = {
        "step": state.step,
        "epoch": round(state.step / plan.per_epoch, 4),
        "loss": round(loss_sum / max(count, 1), 6),
    }
    point.update(lr=learner.scheduler.get_last_lr()[0], images_per_s=round(images_per_s, 2))
    if learner.generator is not None:
        deformed_maps, changed_sum = window.take_deformation(plan.processes)
        maps = max(count * plan.config.batch_size, 1)  # all processes' maps since the last point
        # Share of those maps deformed (about p); mean share of label pixels changed per map.
        point.update(deformed_fraction=round(deformed_maps / maps, 6), changed_fraction=round(changed_sum / maps, 6))
    state.history["loss"].append(point)
    run_log.loss_point(point, images_per_s)


def evaluation_due(plan: Plan, step: int) -> bool:
    return step % plan.per_epoch == 0 and (step // plan.per_epoch) % plan.config.eval_every == 0


def checkpoint_due(plan: Plan, step: int) -> bool:
    every = plan.config.checkpoint_every
    return step % plan.per_epoch == 0 or bool(every and step % every == 0)


def evaluate_and_save(plan: Plan, learner: Learner, state: TrainState, window: Window, validation, run_log) -> None:
    """Evaluate, print a line, log it, save last.pt (and best.pt at a better mIoU), redraw the curves."""
    state.elapsed += window.lap()
    train_loss = state.train_loss()
    row = evaluation_row(plan, learner, state, validation, train_loss, window.images_per_s)
    improved = state.add_evaluation(row)
    run_log.say(evaluation_line(row, math.ceil(plan.total / plan.per_epoch), plan.total))
    run_log.evaluation(row)
    save(plan, learner, state, run_log, best=improved)
    run_log.curves(state.history, plan.total)
    window.restart()


def evaluation_row(plan: Plan, learner: Learner, state: TrainState, validation, train_loss, images_per_s) -> dict:
    """A metrics.jsonl row: the metrics over all processes' validation shards, with the training figures."""
    config = plan.config
    counts = counts_over(
        unwrap(learner.model),
        validation,
        config.num_classes,
        config.ignore_index,
        plan.device,
        config.mean,
        config.std,
        config.boundary_width,
    )
    for name in sorted(counts):  # the same order on every rank: these are collective calls
        all_reduce(counts[name], plan.processes)
    row = {"step": state.step, "epoch": round(state.step / plan.per_epoch, 4), **summarize_counts(counts)}
    row["eval_precision"] = EVAL_PRECISION
    row.update(train_loss=train_loss, lr=learner.scheduler.get_last_lr()[0], images_per_s=round(images_per_s, 2))
    row["elapsed_s"] = round(state.elapsed, 2)
    return row


def save(plan: Plan, learner: Learner, state: TrainState, run_log: RunLog, best: bool = False) -> None:
    """last.pt (and best.pt): every rank gives its generator's state (a collective call), rank 0 writes."""
    generator, host = learner.generator, learner.host_generator
    generators = generator_states(generator, plan.processes) if generator is not None else None
    host_generators = generator_states(host, plan.processes) if host is not None else None
    run_log.checkpoint(
        lambda: checkpoint_contents(
            learner,
            state,
            config=plan.config,
            prob=plan.prob,
            pairing=plan.pairing,
            per_epoch=plan.per_epoch,
            world_size=plan.processes.world_size,
            generators=generators,
            device=plan.device,
            host_generators=host_generators,
        ),
        best,
    )


# --- finish ------------------------------------------------------------------------------------------------------


def finish(plan: Plan, learner: Learner, state: TrainState, run_log: RunLog) -> dict:
    """metrics.json and the closing line; a run stopped early (``stop_after``) says how to go on."""
    config, total = plan.config, plan.total
    if state.step < total:
        run_log.say(
            f"stopped at step {state.step} of {total}; continue with: nsegaug train --out {config.out} --resume"
        )
        return {"step": state.step, "stopped": True}
    final, best = dict(state.history["evals"][-1]), state.best
    result = {
        **final,
        "best": best,
        "steps": total,
        "epochs": round(total / plan.per_epoch, 4),
        "train_images": len(plan.train_set),
        "val_images": len(plan.val_set),
        "prob": plan.prob,
        "baseline": config.baseline,
        "online": config.online,
        "world_size": plan.processes.world_size,
        "threads": plan.threads.record(),  # this run's (a resumed run may have had others before)
        "device": str(plan.device.type),
        "device_model": device_model(plan.device),
        "eval_precision": EVAL_PRECISION,
        "amp": learner.amp,
        "parameters": count_parameters(unwrap(learner.model)),
        "train_elapsed_s": round(state.elapsed, 2),
        "config": config.to_dict(),
    }
    run_log.final(result)
    run_log.say(
        f"done: mIoU {final['miou'] or 0:.4f} (best {best['miou'] or 0:.4f} at step {best['step']}), "
        f"boundary mIoU {final['boundary_miou'] or 0:.4f}, band mIoU {final['band_miou'] or 0:.4f}, "
        f"pixel acc {final['pixel_acc'] or 0:.4f}; wrote "
        + ", ".join(
            str(path) for path in (config.out / METRICS_FINAL, config.out / CURVES, config.out / BEST) if path.exists()
        )
    )
    return result
