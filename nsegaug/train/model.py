"""The built-in network (a compact U-Net) and the ``module:factory`` hook for a user's own model."""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainError


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    # Bias-free convolutions: the BatchNorm after each has its own shift.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A compact U-Net: ``depth`` 2x downsamplings, channels ``width * 2**level``, bilinear upsampling.

    Any input size works: the input is padded to a multiple of ``2**depth``
    and the logits cropped back, so validation images keep their own size.
    width 32, depth 4: 7.8 M parameters; width 8: 0.5 M.
    """

    def __init__(self, num_classes: int, width: int = 32, depth: int = 4, in_channels: int = 3) -> None:
        super().__init__()
        channels = [width * 2**level for level in range(depth + 1)]
        self.depth = depth
        self.stem = _block(in_channels, channels[0])
        self.down = nn.ModuleList(_block(channels[level], channels[level + 1]) for level in range(depth))
        self.up = nn.ModuleList(
            _block(channels[level + 1] + channels[level], channels[level]) for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        multiple = 2**self.depth
        features = F.pad(images, (0, -width % multiple, 0, -height % multiple))
        features = self.stem(features)
        skips = []
        for block in self.down:
            skips.append(features)
            features = block(F.max_pool2d(features, 2))
        for block, skip in zip(self.up, reversed(skips), strict=True):
            features = F.interpolate(features, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            features = block(torch.cat([features, skip], dim=1))
        return self.head(features)[..., :height, :width]


def build_model(spec: str, num_classes: int, width: int = 32) -> nn.Module:
    """``unet`` (built in), or ``package.module:factory``: ``factory(num_classes=C)`` returning an ``nn.Module``.

    A user's model takes (B, 3, H, W) normalised images and returns (B, C, h, w)
    logits; logits of another size than the labels are resized bilinearly.
    """
    if spec == "unet":
        return UNet(num_classes, width)
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise TrainError(f"--model {spec!r}: use 'unet' or 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except ImportError as error:
        raise TrainError(f"--model {spec!r}: cannot import {module_name} ({error})") from error
    except AttributeError as error:
        raise TrainError(f"--model {spec!r}: {module_name} has no {factory_name}") from error
    model = factory(num_classes=num_classes)
    if not isinstance(model, nn.Module):
        raise TrainError(
            f"--model {spec!r}: {factory_name}(num_classes=...) returned {type(model).__name__}, not a Module"
        )
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
