"""Starting a run: ``prepare`` (checks and data), ``build`` (the learner), ``restore`` (checkpoint or fresh folder).

Everything here happens before the first step, in this order. ``prepare``
refuses before a weight exists or a file is written; the run folder is
started only once the model has been built, so a run that cannot begin
leaves nothing behind to ``--overwrite``.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn

from .._version import __version__
from ..errors import RunRefused
from ..manifest import problems_message
from ..torch import collate_with_boxes
from .checkpoint import TrainState, deformation_generator, load_checkpoint, restore_learner
from .config import CONFIG_NAME, TrainConfig, TrainError, result_differences
from .data import EpochBatchSampler, SegmentationDataset, eval_loader, train_loader
from .distributed import Processes, Threads, agree, device_model, unwrap, use_threads
from .model import apply_init_weights, build_model, count_parameters, load_init_weights
from .runlog import LAST, RunLog, clear_run_folder, hold_run_folder, write_json
from .samples import TrainingData, check_samples, folder_samples, original_samples, training_data
from .step import Learner, autocast_dtype, build_optimizer, build_scheduler

# --- prepare: everything checked before a weight exists ----------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What ``prepare`` settled: the processes, the data, the length of the run, the checkpoint to resume."""

    config: TrainConfig
    processes: Processes
    device: torch.device
    train_set: SegmentationDataset
    val_set: SegmentationDataset
    prob: float  # the chance of a deformed label actually used
    pairing: dict  # how labels and images were paired, for evaluate
    per_epoch: int  # batches per epoch and process
    total: int  # steps of the whole run
    checkpoint: dict | None  # --resume: last.pt
    overwrite: bool
    command_line: list[str] | None
    threads: Threads  # this process's torch and OpenCV threads

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.processes.world_size


def prepare(config, processes, device, run_log, resume, overwrite, command_line, held: ExitStack) -> Plan:
    """Hold and check the run folder (until ``held`` closes), the checkpoint to resume and every data file
    (rank 0; all ranks refuse alike). The threads are set first, before any parallel work."""
    threads = use_threads(config.threads, processes.local_world_size)
    agree(processes, lambda: held.enter_context(hold_run_folder(config.out, resume, overwrite)))
    checkpoint = resumable_checkpoint(config) if resume else None
    data = training_data(config.manifest, config.labels, config.images, verify=not config.allow_changed_labels)
    parameters = data.parameters
    pairing = {key: parameters.get(key) for key in ("pattern", "label_suffix", "image_suffix", "palette")}
    val_samples, unpaired = folder_samples(
        config.val_labels,
        config.val_images,
        parameters.get("pattern"),
        parameters.get("label_suffix") or "",
        parameters.get("image_suffix") or "",
    )
    # Online, the originals are the labels, deformed on the device each step; the copies are not read.
    train_samples = original_samples(data.samples) if config.online else data.samples
    agree(processes, lambda: check_data(config, data, train_samples, val_samples, unpaired))
    prob = config.prob_used
    train_set, val_set = datasets(config, data, train_samples, val_samples, prob)
    probe = EpochBatchSampler(len(train_set), config.batch_size, seed=config.seed, world_size=processes.world_size)
    per_epoch = probe.batches_per_epoch
    total = config.iters if config.iters is not None else config.epochs * per_epoch
    if checkpoint is not None:
        check_length(checkpoint, config, processes, total, run_log)
    return Plan(
        config,
        processes,
        device,
        train_set,
        val_set,
        prob,
        pairing,
        per_epoch,
        total,
        checkpoint,
        overwrite,
        command_line,
        threads,
    )


def resumable_checkpoint(config: TrainConfig) -> dict:
    """The run's last.pt, if it was saved with settings that give the same result as ``config``."""
    checkpoint = load_checkpoint(config.out / LAST)
    differences = result_differences(TrainConfig.from_dict(checkpoint["config"]), config)
    if differences:
        raise RunRefused("cannot resume with settings that change the result:\n  " + "\n  ".join(differences))
    return checkpoint


def check_data(config: TrainConfig, data: TrainingData, train_samples, val_samples, unpaired: list[str]) -> None:
    """Read every training and validation file once; a TrainError listing the problems found."""
    palette, jobs = data.colour_palette, max(config.workers, 2)
    listed = data.generated.problems(data.samples, copies_needed=not config.online)
    for samples, what, known in (
        (train_samples, f"the training data ({config.manifest})", listed),
        (val_samples, f"the validation data ({config.val_labels})", unpaired),
    ):
        problems = known + check_samples(samples, config.num_classes, config.ignore_index, palette, jobs)
        if problems:
            raise TrainError(problems_message(problems, what))


def datasets(config: TrainConfig, data: TrainingData, train_samples, val_samples, prob: float):
    """The training and validation datasets; images stay uint8 (normalised on the device: 4x less to copy)."""
    palette = data.colour_palette
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
        normalize=False,
        colour_palette=palette,
        # Online: the workers find the small components' boxes.
        area_thresh=config.params.area_thresh if config.params is not None else None,
    )
    val_set = SegmentationDataset(
        val_samples, train=False, ignore_index=config.ignore_index, normalize=False, colour_palette=palette
    )
    return train_set, val_set


def check_length(checkpoint: dict, config: TrainConfig, processes: Processes, total: int, run_log: RunLog) -> None:
    """Warn when resumed with another number of processes; refuse a run that is already finished."""
    if checkpoint.get("world_size") != processes.world_size:
        run_log.say(
            f"warning: saved with {checkpoint.get('world_size')} process(es), resumed with {processes.world_size}"
        )
    step = checkpoint["step"]
    if step >= total:
        raise RunRefused(
            f"{config.out / LAST} is at step {step} of {total}: the run is finished (give more --epochs/--iters)"
        )


# --- build: the model and what changes it -----------------------------------------------------------------------


def build(plan: Plan, run_log: RunLog) -> Learner:
    """Model, optimizer, schedule, gradient scaler and --online's generator, on the plan's device."""
    config, processes, device = plan.config, plan.processes, plan.device
    model = initial_model(plan, run_log).to(device)
    if plan.cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
        if processes.distributed:
            # Per-GPU batches are small in segmentation: batch statistics over all GPUs.
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if processes.distributed:
        # A user's model may have parameters the loss never reaches (torchvision's "aux" head: only "out" is
        # trained), which DDP refuses unless told to look for them; the U-Net has none, and skips that cost.
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if plan.cuda else None, find_unused_parameters=config.model != "unet"
        )
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, plan.total, config)
    # AMP on CUDA only, though --amp is on by default: CPU autocast (bfloat16) works (tested) but a U-Net step
    # ran 12x slower than float32 on a CPU without bfloat16 instructions.
    amp = config.amp and plan.cuda
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    # Online: one generator per process on its device (rank-dependent seed), its state saved in checkpoints.
    generator = deformation_generator(device, config.seed, processes.rank) if config.online else None
    # Off the CPU, the coins and pairs (which choose kernel sizes on the host) from a CPU generator: no wait.
    on_host = config.online and device.type != "cpu"
    host_generator = deformation_generator(torch.device("cpu"), config.seed, processes.rank) if on_host else None
    return Learner(model, optimizer, scheduler, scaler, generator, amp, autocast_dtype(device), host_generator)


def initial_model(plan: Plan, run_log: RunLog) -> nn.Module:
    """The model before the first step: seeded, then --init-weights on a fresh run (on --resume the checkpoint's)."""
    config = plan.config
    # The same initial weights in every process and every run with this seed.
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.num_classes, config.width)
    if config.init_weights is not None and plan.checkpoint is None:
        weights = load_init_weights(config.init_weights)
        report = apply_init_weights(model, weights, config.init_weights, config.init_weights_strict)
        if report:
            run_log.say(report)
    return model


# --- restore: where the loop starts ------------------------------------------------------------------------------


def restore(plan: Plan, learner: Learner, run_log: RunLog) -> TrainState:
    """On --resume, the checkpoint's state (loaded into ``learner``); else a fresh state in a fresh run folder."""
    if plan.checkpoint is None:
        start_run_folder(plan, run_log)
        return TrainState()
    state = restore_learner(plan.checkpoint, learner, plan.processes, plan.device, run_log.say)
    run_log.rewind(state.history)  # drop what a killed run logged after its last checkpoint
    return state


def start_run_folder(plan: Plan, run_log: RunLog) -> None:
    """The run folder with its config.json (rank 0); --overwrite first removes the previous run's files."""
    if not plan.processes.main:
        return
    out = plan.config.out
    if plan.overwrite:
        clear_run_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"config": plan.config.to_dict(), "prob_used": plan.prob, "nsegaug": __version__}
    record.update(torch=torch.__version__, command_line=plan.command_line)
    record.update(device=plan.device.type, device_model=device_model(plan.device), world_size=plan.processes.world_size)
    record["threads"] = plan.threads.record()
    write_json(out / CONFIG_NAME, record)


# --- the loaders and the opening line, once the step to start from is known ---


def loaders(plan: Plan, step: int):
    """The training loader from ``step`` on (mid-epoch after a resume) and this process's validation loader."""
    config, processes = plan.config, plan.processes
    sampler = EpochBatchSampler(
        len(plan.train_set),
        config.batch_size,
        seed=config.seed,
        rank=processes.rank,
        world_size=processes.world_size,
        start_epoch=step // plan.per_epoch,
        skip_batches=step % plan.per_epoch,
    )
    collate = collate_with_boxes if config.online else None
    loader = train_loader(plan.train_set, sampler, config.workers, plan.cuda, config.seed, collate)
    validation = eval_loader(plan.val_set, processes.rank, processes.world_size, config.workers, plan.cuda)
    return loader, validation


def headline(plan: Plan, learner: Learner, state: TrainState) -> str:
    """The line that opens a run: data, model, devices and threads, length."""
    config = plan.config
    if config.online:
        labels_used = f"online: originals deformed on {plan.device.type} with p={plan.prob:g}"
    else:
        chosen = "" if config.prob is not None else ", the paper's: --prob to change it"
        labels_used = "baseline: originals only" if config.baseline else f"deformed label with p={plan.prob:g}{chosen}"
    parameters = count_parameters(unwrap(learner.model))
    return (
        f"{'resuming at step ' + str(state.step) if plan.checkpoint else 'training'}: {len(plan.train_set)} images "
        f"({labels_used}), "
        f"{len(plan.val_set)} validation images; {config.model} {parameters / 1e6:.2f}M parameters; "
        f"{plan.device.type} x {plan.processes.world_size}{', AMP' if learner.amp else ''}, "
        f"{plan.threads.describe()}; {plan.total} steps "
        f"({plan.per_epoch} per epoch, batch {plan.global_batch}) -> {config.out}"
    )
