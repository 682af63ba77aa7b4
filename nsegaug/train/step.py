"""One training step and what it needs: the loss, the batch on the device, optimizer, schedule, gradient scaler.

``train_step`` is the whole of what a step does to the weights; the loop
around it (``loop``) only feeds it batches and decides when to log, evaluate
and save.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig
from .data import normalize
from .model import logits_at

# Mixed precision per kind of device: float16 with a gradient scaler on CUDA (tensor cores); bfloat16 is the
# dtype CPU autocast supports, and needs no scaler (float32's exponent range).
AUTOCAST_DTYPES = {"cuda": torch.float16, "cpu": torch.bfloat16}


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The dtype autocast computes in on ``device`` when AMP is on."""
    return AUTOCAST_DTYPES.get(device.type, torch.bfloat16)


@dataclass
class Learner:
    """The model and what changes it step by step; a checkpoint saves and restores each of them.

    ``generator`` draws --online's deformations (None offline), ``host_generator``
    their coins and pairs off the CPU (see ``nsegaug.torch.draw_batch``); ``amp`` is
    whether steps and evaluations run under autocast, in ``amp_dtype``.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator | None
    amp: bool
    amp_dtype: torch.dtype = torch.float16
    host_generator: torch.Generator | None = None  # --online on a GPU: draws the coins and pairs on the CPU


def lr_factor(step: int, total: int, schedule: str, warmup: int = 0, power: float = 0.9) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total``: linear warm-up, then poly or cosine."""
    progress = min(step / max(total, 1), 1.0)
    decay = (1.0 - progress) ** power if schedule == "poly" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return decay * ((step + 1) / warmup if step < warmup else 1.0)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum 0.9, at ``config``'s learning rate and weight decay."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.decay)
    return torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=0.9, weight_decay=config.decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, total: int, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """``lr_factor`` per step over ``total`` steps."""

    # A closure, not an object: LambdaLR saves objects' attributes, and a resumed run
    # that extends --iters must use the new total, not the saved one.
    def factor(index: int) -> float:
        return lr_factor(index, total, config.schedule, config.warmup_iters)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def segmentation_loss(output, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Cross-entropy over the labelled pixels; 0 (not NaN) for a batch that is all ignore.

    ``output`` is the model's, in any form ``logits_of`` reads; logits of
    another size than the labels (a user's stride-8 model) are resized
    bilinearly first (``logits_at``). Computed in float32 under AMP.
    """
    logits = logits_at(output, labels.shape[-2:])
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
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """One forward, backward and optimizer step; returns the loss (a tensor: reading it would sync the GPU).

    With ``amp`` the forward runs under autocast in ``amp_dtype`` (default:
    ``autocast_dtype`` of the images' device) and the loss is scaled by ``scaler``.
    """
    dtype = amp_dtype or autocast_dtype(images.device)
    with torch.autocast(images.device.type, dtype=dtype, enabled=amp):
        loss = segmentation_loss(model(images), labels, ignore_index)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def learner_step(learner: Learner, images: torch.Tensor, labels: torch.Tensor, ignore_index: int, clip_grad):
    """``train_step``, then the schedule's step if the optimizer's step was taken; returns the loss (a tensor).

    Under AMP the gradient scaler skips the optimizer's step when a gradient
    is inf or NaN (the first steps, while it lowers the scale): the schedule
    must not advance then, or it runs ahead of the weights (and torch warns
    that the schedule stepped before the optimizer). The step is seen by a
    hook on the optimizer, so nothing more is read from the device.
    """
    taken = []
    hook = learner.optimizer.register_step_post_hook(lambda *args: taken.append(True))
    try:
        loss = train_step(
            learner.model,
            learner.optimizer,
            learner.scaler,
            images,
            labels,
            ignore_index,
            learner.amp,
            clip_grad,
            learner.amp_dtype,
        )
    finally:
        hook.remove()
    if taken:
        learner.scheduler.step()
    return loss
