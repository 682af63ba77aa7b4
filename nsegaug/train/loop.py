"""The training job: checks, model, schedule, the loop, evaluation, checkpoints and run files; also under torchrun.

``train(config)`` is what ``nsegaug train`` runs, ``evaluate_checkpoint`` what
``nsegaug evaluate`` runs. Launched by torchrun (``WORLD_SIZE`` > 1) the same
code runs DistributedDataParallel, one process per device; rank 0 alone checks
the data, writes files and shows progress, and tells the others when it refuses.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn

from .._version import __version__
from ..io import load_colour_palette, write_bytes_atomic
from ..torch import collate_with_boxes, deform_batch
from .config import CONFIG_NAME, TrainConfig, TrainError, result_differences
from .curves import draw_curves
from .data import EpochBatchSampler, SegmentationDataset, eval_loader, normalize, train_loader
from .metrics import confusion_matrix, summarize
from .model import build_model, count_parameters
from .samples import (
    ImageSample,
    check_samples,
    deformation_seed,
    folder_samples,
    load_manifest,
    manifest_problems,
    original_samples,
    problems_message,
)

LAST, BEST = "last.pt", "best.pt"
METRICS_LINES, METRICS_FINAL, LOSS_LINES, CURVES = "metrics.jsonl", "metrics.json", "loss.jsonl", "curves.png"
# Only these are removed by --overwrite: a run folder may hold the user's own files.
RUN_FILES = (LAST, BEST, METRICS_LINES, METRICS_FINAL, LOSS_LINES, CURVES, CONFIG_NAME)
CHECKPOINT_FORMAT = "nsegaug-train-checkpoint"
# About this many loss points per run, whatever its length: enough for the curve, small in the checkpoint.
LOSS_POINTS = 200


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- pure pieces -------------------------------------------------------------------------------------------------


def lr_factor(step: int, total: int, schedule: str, warmup: int = 0, power: float = 0.9) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``: linear warm-up, then poly or cosine."""
    progress = min(step / max(total, 1), 1.0)
    decay = (1.0 - progress) ** power if schedule == "poly" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return decay * ((step + 1) / warmup if step < warmup else 1.0)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Cross-entropy over the labelled pixels; 0 (not NaN) for a batch that is all ignore.

    Logits of another size than the labels (a user's stride-8 model) are
    resized bilinearly first. Computed in float32 under AMP.
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    total = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="sum")
    return total / (labels != ignore_index).sum().clamp(min=1)


def to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device, mean, std):
    """A uint8 batch from the loader as the model takes it: on the device, normalised, channels_last on CUDA."""
    images = normalize(images.to(device, non_blocking=True), mean, std)
    if device.type == "cuda":
        # Tensor cores read NHWC without a transpose per convolution.
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    images: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int,
    amp: bool,
    clip_grad: float | None = None,
) -> torch.Tensor:
    """One forward, backward and optimizer step; returns the loss (a tensor: reading it would sync the GPU)."""
    with torch.autocast(images.device.type, dtype=torch.float16, enabled=amp):
        loss = segmentation_loss(model(images), labels, ignore_index)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


# --- processes and devices ---------------------------------------------------------------------------------------


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
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if processes.local_rank >= torch.cuda.device_count():
        raise TrainError(f"local rank {processes.local_rank} has no GPU: {torch.cuda.device_count()} visible")
    return torch.device("cuda", processes.local_rank)


def start_processes(device: torch.device, processes: Processes) -> None:
    """Join the process group: NCCL between GPUs, gloo between CPU processes."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif processes.distributed and "OMP_NUM_THREADS" not in os.environ:
        # CPU processes on one machine share its cores; more threads would only contend.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes.local_world_size))
    if processes.distributed and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def agree(processes: Processes, action: Callable[[], None]) -> None:
    """Run ``action`` on rank 0 only; if it refuses (TrainError), every rank raises the same error.

    Without this a refusal on rank 0 would leave the other ranks waiting for it
    in their first collective call.
    """
    message = None
    if processes.main:
        try:
            action()
        except TrainError as error:
            message = str(error)
    if processes.distributed:
        box = [message]
        torch_dist.broadcast_object_list(box, src=0)
        message = box[0]
    if message:
        raise TrainError(message)


# --- run folder and checkpoints ----------------------------------------------------------------------------------


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write into a run folder that is in use, unless told to resume or overwrite it."""
    if resume and overwrite:
        raise TrainError("--resume and --overwrite exclude each other")
    if resume:
        if not (out / LAST).is_file():
            raise TrainError(f"{out / LAST}: not found; nothing to resume (start a run without --resume)")
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise TrainError(f"{out} exists and is not empty: pass --resume to continue that run, or --overwrite")
    elif out.exists() and not out.is_dir():
        raise TrainError(f"{out} is a file, not a run folder")


def clear_run_folder(out: Path) -> None:
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def save_checkpoint(path: Path, state: dict) -> None:
    # Atomic, so a run killed while saving keeps its previous last.pt.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    try:
        # weights_only: a checkpoint holds tensors and plain values only (RNG states are stored as lists).
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise TrainError(f"{path}: checkpoint not found") from error
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        raise TrainError(f"{path}: not a readable checkpoint ({error})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not an nsegaug train checkpoint")
    return state


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
    state = generator.get_state()
    if not processes.distributed:
        return [state]
    states = [None] * processes.world_size
    torch_dist.all_gather_object(states, state)
    return states


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def write_json(path: Path, value) -> None:
    write_bytes_atomic(path, (json.dumps(value, indent=2) + "\n").encode("utf-8"))


def write_lines(path: Path, rows: list[dict]) -> None:
    write_bytes_atomic(path, "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))


# --- evaluation --------------------------------------------------------------------------------------------------


@torch.no_grad()
def confusion_over(
    model: nn.Module,
    loader,
    num_classes: int,
    ignore_index: int,
    device: torch.device,
    mean,
    std,
    amp: bool = False,
) -> torch.Tensor:
    """The summed (C, C) confusion matrix of ``model`` over ``loader`` (on ``device``)."""
    was_training = model.training
    model.eval()
    total = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    for images, labels in loader:
        images, labels = to_device(images, labels, device, mean, std)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(images)
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
        total += confusion_matrix(logits.argmax(1), labels, num_classes, ignore_index)
    model.train(was_training)
    return total


def _data_check(samples: list[ImageSample], what: str, extra: list[str], config: TrainConfig, palette) -> None:
    problems = extra + check_samples(samples, config.num_classes, config.ignore_index, palette, max(config.workers, 2))
    if problems:
        raise TrainError(problems_message(problems, what))


# --- training ----------------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] = _stderr,
    command_line: list[str] | None = None,
    stop_after: int | None = None,
) -> dict:
    """Train on ``config.manifest``, evaluate on the validation folders, write the run folder ``config.out``.

    Returns the final metrics (what ``metrics.json`` holds). ``stop_after``
    ends this call after that many steps with ``last.pt`` saved, as a
    preempted job would, so that ``resume=True`` can go on from there.
    Raises :class:`TrainError`, on every rank, before training when the run
    folder or the data cannot be used.
    """
    processes = launched_processes()
    device = pick_device(config.device, processes)
    start_processes(device, processes)
    try:
        return _train(config, processes, device, resume, overwrite, progress, log, command_line, stop_after)
    finally:
        if processes.distributed and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _train(config, processes, device, resume, overwrite, progress, log, command_line, stop_after) -> dict:
    main = processes.main
    say = log if main else (lambda message: None)
    out = config.out
    agree(processes, lambda: check_run_folder(out, resume, overwrite))
    checkpoint = load_checkpoint(out / LAST) if resume else None
    if checkpoint is not None:
        differences = result_differences(TrainConfig.from_dict(checkpoint["config"]), config)
        if differences:
            raise TrainError("cannot resume with settings that change the result:\n  " + "\n  ".join(differences))

    data = load_manifest(config.manifest)
    parameters = data.parameters
    val_samples, unpaired = folder_samples(
        config.val_labels,
        config.val_images,
        parameters.get("pattern"),
        parameters.get("label_suffix") or "",
        parameters.get("image_suffix") or "",
    )
    prob = config.prob_used(data.prob)
    # Online, the originals are the labels, deformed on the device each step; the copies are not read.
    train_samples = original_samples(data.samples) if config.online else data.samples

    def check_and_prepare() -> None:
        _data_check(
            train_samples,
            f"the training data ({config.manifest})",
            manifest_problems(data, copies_needed=not config.online),
            config,
            data.colour_palette,
        )
        _data_check(val_samples, f"the validation data ({config.val_labels})", unpaired, config, data.colour_palette)
        if overwrite:
            clear_run_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        record = {"config": config.to_dict(), "prob_used": prob, "nsegaug": __version__, "torch": torch.__version__}
        record["command_line"] = command_line
        write_json(out / CONFIG_NAME, record)

    agree(processes, check_and_prepare)

    train_set = SegmentationDataset(
        train_samples,
        train=True,
        ignore_index=config.ignore_index,
        prob=prob,
        baseline=config.baseline,
        seed=config.seed,
        crop=config.crop,
        scale_range=config.scale_range,
        hflip=config.hflip,
        normalize=False,  # on the device: a uint8 batch is 4x less to copy
        colour_palette=data.colour_palette,
        area_thresh=config.area_thresh,  # online: the workers find the small components' boxes
    )
    val_set = SegmentationDataset(
        val_samples, train=False, ignore_index=config.ignore_index, normalize=False, colour_palette=data.colour_palette
    )
    step = checkpoint["step"] if checkpoint else 0
    probe = EpochBatchSampler(len(train_set), config.batch_size, seed=config.seed, world_size=processes.world_size)
    per_epoch = probe.batches_per_epoch
    total = config.iters if config.iters is not None else config.epochs * per_epoch
    if checkpoint and checkpoint.get("world_size") != processes.world_size:
        say(f"warning: saved with {checkpoint.get('world_size')} process(es), resumed with {processes.world_size}")
    if step >= total:
        raise TrainError(f"{out / LAST} is at step {step} of {total}: the run is finished (give more --epochs/--iters)")

    # The same initial weights in every process and every run with this seed.
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.num_classes, config.width).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
        if processes.distributed:
            # Per-GPU batches are small in segmentation: batch statistics over all GPUs.
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    parameters_count = count_parameters(model)
    if processes.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.decay)
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=config.learning_rate, momentum=0.9, weight_decay=config.decay
        )

    # A closure, not an object: LambdaLR saves objects' attributes, and a resumed run
    # that extends --iters must use the new total, not the saved one.
    def factor(index: int) -> float:
        return lr_factor(index, total, config.schedule, config.warmup_iters)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    amp = config.amp and cuda
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    # Online: one generator per process on its device (rank-dependent seed), its state saved in checkpoints.
    generator = deformation_generator(device, config.seed, processes.rank) if config.online else None
    history = {"loss": [], "evals": []}
    best = {"miou": None, "step": None, "epoch": None}
    elapsed = 0.0
    since_eval = [0.0, 0]  # loss sum and steps since the last evaluation
    if checkpoint:
        unwrap(model).load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"] and scaler.is_enabled():  # empty when saved without AMP (CPU)
            scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_states(checkpoint["rng"])
        saved_generators = checkpoint.get("deformation_generators") or []
        # A generator's state only fits a generator of the same kind of device, one per process.
        same_device = checkpoint.get("deformation_device", device.type) == device.type
        if generator is not None and len(saved_generators) == processes.world_size and same_device:
            generator.set_state(saved_generators[processes.rank])
        elif generator is not None and saved_generators:
            say(
                f"warning: --online deformations were drawn on {checkpoint.get('deformation_device')} x "
                f"{len(saved_generators)}; on {device.type} x {processes.world_size} they start a fresh stream"
            )
        history, best, elapsed = checkpoint["history"], checkpoint["best"], checkpoint["elapsed_s"]
        since_eval = list(checkpoint["since_eval"])
        if main:
            # Drop what a killed run logged after its last checkpoint.
            write_lines(out / METRICS_LINES, history["evals"])
            write_lines(out / LOSS_LINES, history["loss"])

    sampler = EpochBatchSampler(
        len(train_set),
        config.batch_size,
        seed=config.seed,
        rank=processes.rank,
        world_size=processes.world_size,
        start_epoch=step // per_epoch,
        skip_batches=step % per_epoch,
    )
    loader = train_loader(
        train_set, sampler, config.workers, cuda, config.seed, collate_with_boxes if config.online else None
    )
    validation = eval_loader(val_set, processes.rank, processes.world_size, config.workers, cuda)
    global_batch = config.batch_size * processes.world_size
    epochs_total = math.ceil(total / per_epoch)
    if config.online:
        labels_used = f"online: originals deformed on {device.type} with p={prob:g}"
    else:
        labels_used = "baseline: originals only" if config.baseline else f"deformed label with p={prob:g}"
    say(
        f"{'resuming at step ' + str(step) if checkpoint else 'training'}: {len(train_set)} images "
        f"({labels_used}), "
        f"{len(val_set)} validation images; {config.model} {parameters_count / 1e6:.2f}M parameters; "
        f"{device.type} x {processes.world_size}{', AMP' if amp else ''}; {total} steps "
        f"({per_epoch} per epoch, batch {global_batch}) -> {out}"
    )

    def state(step_now: int, generators: list[torch.Tensor] | None) -> dict:
        online = {} if generators is None else {"deformation_generators": generators, "deformation_device": device.type}
        return {
            "format": CHECKPOINT_FORMAT,
            "nsegaug": __version__,
            "model": unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": step_now // per_epoch,
            "step": step_now,
            "batches_per_epoch": per_epoch,
            "world_size": processes.world_size,
            "best": dict(best),
            "history": history,
            "rng": rng_states(),
            "config": config.to_dict(),
            "prob_used": prob,
            "data": {key: parameters.get(key) for key in ("pattern", "label_suffix", "image_suffix", "palette")},
            "elapsed_s": elapsed,
            "since_eval": list(since_eval),
            **online,
        }

    def evaluate_now(step_now: int, train_loss: float | None, images_per_s: float) -> dict:
        confusion = confusion_over(
            unwrap(model), validation, config.num_classes, config.ignore_index, device, config.mean, config.std, amp
        )
        if processes.distributed:
            torch_dist.all_reduce(confusion)
        row = {"step": step_now, "epoch": round(step_now / per_epoch, 4), **summarize(confusion.cpu().numpy())}
        row.update(train_loss=train_loss, lr=scheduler.get_last_lr()[0], images_per_s=round(images_per_s, 2))
        row["elapsed_s"] = round(elapsed, 2)
        return row

    interval = max(1, total // LOSS_POINTS)
    running = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, steps: no host sync per step
    deformation = torch.zeros(2, dtype=torch.float64, device=device)  # online: maps deformed, changed shares
    window_start, window_steps = time.perf_counter(), 0
    images_per_s = 0.0
    from tqdm import tqdm

    bar = tqdm(
        total=total, initial=step, unit="it", disable=not (progress and main), file=sys.stderr, dynamic_ncols=True
    )
    if not bar.disable:
        plain_say = say

        def say(message: str) -> None:
            with tqdm.external_write_mode(file=sys.stderr):  # the line above the bar, not through it
                plain_say(message)

    model.train()
    stop_at = step + stop_after if stop_after is not None else None
    tick = time.perf_counter()
    try:
        for batch in loader:
            images, labels = to_device(batch[0], batch[1], device, config.mean, config.std)
            if generator is not None:
                labels, stats = deform_batch(labels, generator, config.online_params, prob=prob, boxes=batch[2])
                deformation += torch.stack([stats.deformed.double(), stats.changed_fraction.double()]).sum(1)
            loss = train_step(model, optimizer, scaler, images, labels, config.ignore_index, amp, config.clip_grad)
            scheduler.step()
            running += torch.stack([loss.double(), torch.ones((), dtype=torch.float64, device=device)])
            step += 1
            window_steps += 1
            bar.update(1)
            epoch_done = step % per_epoch == 0
            finished = step >= total

            if step % interval == 0 or finished:
                if processes.distributed:
                    torch_dist.all_reduce(running)
                loss_sum, count = running.tolist()
                running.zero_()
                now = time.perf_counter()
                elapsed += now - tick
                tick = now
                images_per_s = window_steps * global_batch / max(now - window_start, 1e-9)
                window_start, window_steps = now, 0
                mean_loss = loss_sum / max(count, 1)
                since_eval[0] += loss_sum
                since_eval[1] += int(count)
                point = {"step": step, "epoch": round(step / per_epoch, 4), "loss": round(mean_loss, 6)}
                point.update(lr=scheduler.get_last_lr()[0], images_per_s=round(images_per_s, 2))
                if generator is not None:
                    if processes.distributed:
                        torch_dist.all_reduce(deformation)
                    deformed_maps, changed_sum = deformation.tolist()
                    deformation.zero_()
                    maps = max(count * config.batch_size, 1)  # all processes' maps since the last point
                    # Share of those maps deformed (about p); mean share of label pixels changed per map.
                    point.update(
                        deformed_fraction=round(deformed_maps / maps, 6), changed_fraction=round(changed_sum / maps, 6)
                    )
                history["loss"].append(point)
                bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{images_per_s:.1f}")
                if main:
                    with open(out / LOSS_LINES, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(point) + "\n")

            saved_now = False
            if (epoch_done and (step // per_epoch) % config.eval_every == 0) or finished:
                elapsed += time.perf_counter() - tick
                train_loss = since_eval[0] / since_eval[1] if since_eval[1] else None
                row = evaluate_now(step, train_loss, images_per_s)
                since_eval = [0.0, 0]
                history["evals"].append(row)
                say(
                    f"epoch {row['epoch']:g}/{epochs_total} step {step}/{total}: loss {train_loss or math.nan:.4f}, "
                    f"mIoU {row['miou'] or 0:.4f}, pixel acc {row['pixel_acc'] or 0:.4f}, {images_per_s:.1f} img/s"
                )
                improved = row["miou"] is not None and (best["miou"] is None or row["miou"] > best["miou"])
                if improved:
                    best.update(miou=row["miou"], step=step, epoch=row["epoch"])
                generators = generator_states(generator, processes) if generator is not None else None
                if main:
                    with open(out / METRICS_LINES, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(row) + "\n")
                    snapshot = state(step, generators)
                    save_checkpoint(out / LAST, snapshot)
                    if improved:
                        save_checkpoint(out / BEST, snapshot)
                    draw_curves(
                        [(p["step"], p["loss"]) for p in history["loss"]],
                        [(r["step"], r["miou"]) for r in history["evals"]],
                        total,
                    ).save(out / CURVES)
                saved_now = True
                tick = time.perf_counter()
                window_start = tick

            periodic = config.checkpoint_every and step % config.checkpoint_every == 0
            stopping = stop_at is not None and step >= stop_at
            if not saved_now and (epoch_done or periodic or stopping):
                generators = generator_states(generator, processes) if generator is not None else None
                if main:
                    save_checkpoint(out / LAST, state(step, generators))
            if finished or stopping:
                break
    except KeyboardInterrupt:
        bar.close()
        saved = load_checkpoint(out / LAST)["step"] if (out / LAST).exists() else 0
        say(f"interrupted at step {step}; continue from step {saved} with: nsegaug train --out {out} --resume")
        raise
    bar.close()
    if step < total:
        say(f"stopped at step {step} of {total}; continue with: nsegaug train --out {out} --resume")
        return {"step": step, "stopped": True}

    final = dict(history["evals"][-1])
    result = {
        **final,
        "best": best,
        "steps": total,
        "epochs": round(total / per_epoch, 4),
        "train_images": len(train_set),
        "val_images": len(val_set),
        "prob": prob,
        "baseline": config.baseline,
        "online": config.online,
        "world_size": processes.world_size,
        "device": str(device.type),
        "amp": amp,
        "parameters": parameters_count,
        "train_elapsed_s": round(elapsed, 2),
        "config": config.to_dict(),
    }
    if main:
        write_json(out / METRICS_FINAL, result)
        say(
            f"done: mIoU {final['miou'] or 0:.4f} (best {best['miou'] or 0:.4f} at step {best['step']}), "
            f"pixel acc {final['pixel_acc'] or 0:.4f}; wrote {out / METRICS_FINAL}, {out / CURVES}, {out / BEST}"
        )
    return result


# --- evaluation of a saved model ---------------------------------------------------------------------------------


def evaluate_checkpoint(
    checkpoint_path: Path,
    labels: Path,
    images: Path,
    *,
    device: str = "auto",
    workers: int = 2,
    log: Callable[[str], None] = _stderr,
) -> dict:
    """The metrics of a saved model on a folder of labels and images (paired as ``generate`` pairs them)."""
    checkpoint = load_checkpoint(Path(checkpoint_path))
    config = TrainConfig.from_dict(checkpoint["config"])
    pairing = checkpoint.get("data", {})
    palette = load_colour_palette(pairing["palette"]) if pairing.get("palette") else None
    samples, unpaired = folder_samples(
        labels, images, pairing.get("pattern"), pairing.get("label_suffix") or "", pairing.get("image_suffix") or ""
    )
    problems = unpaired + check_samples(samples, config.num_classes, config.ignore_index, palette, max(workers, 2))
    if problems:
        raise TrainError(problems_message(problems, f"the evaluation data ({labels})"))
    torch_device = pick_device(device, Processes())
    model = build_model(config.model, config.num_classes, config.width)
    model.load_state_dict(checkpoint["model"])
    model.to(torch_device)
    dataset = SegmentationDataset(
        samples, train=False, ignore_index=config.ignore_index, normalize=False, colour_palette=palette
    )
    loader = eval_loader(dataset, 0, 1, workers, torch_device.type == "cuda")
    confusion = confusion_over(
        model, loader, config.num_classes, config.ignore_index, torch_device, config.mean, config.std, False
    )
    result = summarize(confusion.cpu().numpy())
    result.update(
        checkpoint=str(checkpoint_path),
        step=checkpoint["step"],
        epoch=checkpoint["epoch"],
        images=len(samples),
        labels=str(labels),
        confusion=confusion.cpu().tolist(),
    )
    return result
