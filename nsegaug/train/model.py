"""The built-in network (a compact U-Net), the ``module:factory`` hook for a user's own model, and its output.

A user's model is whatever ``factory(num_classes=C)`` returns; ``logits_of``
is the one place that reads logits out of its output (a tensor, torchvision's
``{"out": ...}``, Hugging Face's ``.logits``, a tuple), and ``logits_at`` the
one place that brings them to the labels' size. ``load_init_weights`` starts
it from a saved state dict.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainError

# Images reach the model as RGB: a factory that asks is told so.
IMAGE_CHANNELS = 3
# Keys under which trainers commonly nest a state dict (Lightning "state_dict"; nsegaug's own checkpoints "model").
STATE_DICT_KEYS = ("state_dict", "model")
# Names shown in a one-line report of missing or unexpected keys.
KEYS_SHOWN = 5


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

    A factory that has an ``in_channels`` parameter also gets
    ``in_channels=3``. The model takes (B, 3, H, W) normalised images and
    returns logits in any form ``logits_of`` reads, at any resolution.
    """
    if spec == "unet":
        return UNet(num_classes, width)
    factory = import_factory(spec)
    model = factory(**factory_arguments(spec, factory, num_classes))
    if not isinstance(model, nn.Module):
        raise TrainError(
            f"--model {spec!r}: {spec.partition(':')[2]}(num_classes=...) returned {type(model).__name__}, not a Module"
        )
    return model


def import_factory(spec: str):
    """The callable named by ``package.module:factory``."""
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise TrainError(f"--model {spec!r}: use 'unet' or 'package.module:factory'")
    try:
        return getattr(importlib.import_module(module_name), factory_name)
    except ImportError as error:
        raise TrainError(f"--model {spec!r}: cannot import {module_name} ({error})") from error
    except AttributeError as error:
        raise TrainError(f"--model {spec!r}: {module_name} has no {factory_name}") from error


def factory_arguments(spec: str, factory, num_classes: int) -> dict:
    """``num_classes``, and ``in_channels=3`` when the factory names that parameter; nothing it would not accept.

    A factory without a readable signature (some C extensions) gets ``num_classes`` alone.
    """
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {"num_classes": num_classes}
    by_keyword = {
        name
        for name, parameter in parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    }
    any_keyword = any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values())
    if "num_classes" not in by_keyword and not any_keyword:
        raise TrainError(f"--model {spec!r}: the factory takes no num_classes keyword")
    # Only by name: a **kwargs factory (torchvision's) passes unknown keywords on to a model that may refuse them.
    return {"num_classes": num_classes, **({"in_channels": IMAGE_CHANNELS} if "in_channels" in by_keyword else {})}


def logits_of(output) -> torch.Tensor:
    """The (B, C, h, w) logits in a model's output.

    - a Tensor is the logits;
    - a Mapping: its ``"out"`` entry (torchvision's segmentation models), else
      its ``.logits`` attribute if it has one (Hugging Face's outputs are
      mappings too), else its only entry; more entries are refused, named;
    - any other object with a ``.logits`` tensor: that;
    - a tuple or list: its first element.

    The chosen entry is read by the same rule, so ``({"out": x},)`` works.
    """
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and "out" in output:
        return logits_of(output["out"])
    if isinstance(getattr(output, "logits", None), torch.Tensor):
        return output.logits
    if isinstance(output, Mapping):
        if len(output) != 1:
            keys = ", ".join(repr(key) for key in output)
            raise TrainError(
                f"the model returned a mapping with keys {keys or '(none)'}: which are the logits? "
                "Return them under 'out' (or alone)"
            )
        return logits_of(next(iter(output.values())))
    if isinstance(output, (tuple, list)) and output:
        return logits_of(output[0])
    raise TrainError(
        f"the model returned {type(output).__name__}: expected logits as a Tensor, a mapping with 'out', "
        "an object with .logits, or a tuple/list starting with them"
    )


def logits_at(output, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """``logits_of(output)`` at ``size`` (H, W): resized bilinearly, in float32, when the model's are another size.

    Loss and evaluation both read logits through here, so a stride-4 or
    stride-8 model is scored at the labels' resolution in training and in evaluation.
    """
    logits = logits_of(output)
    if logits.shape[-2:] != tuple(size):
        logits = F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)
    return logits


def load_init_weights(path: Path) -> dict:
    """The state dict saved in ``path``: plain, or under a ``"state_dict"`` or ``"model"`` key.

    An nsegaug ``best.pt`` works too (its weights are under ``"model"``); a
    DistributedDataParallel ``module.`` prefix is dropped. Read with
    ``weights_only=True`` onto the CPU: a weights file holds tensors, never
    code to run.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a missing, damaged or foreign file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TrainError(f"{path}: not a readable state dict ({reason})") from error
    if isinstance(loaded, Mapping):
        nested = next((loaded[key] for key in STATE_DICT_KEYS if isinstance(loaded.get(key), Mapping)), None)
        loaded = nested if nested is not None else loaded
    if not isinstance(loaded, Mapping) or not any(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise TrainError(f"{path}: holds no state dict (a mapping of parameter names to tensors)")
    # Saved from inside DistributedDataParallel: every name starts with "module.".
    if all(isinstance(key, str) and key.startswith("module.") for key in loaded):
        return {key.removeprefix("module."): value for key, value in loaded.items()}
    return dict(loaded)


def apply_init_weights(model: nn.Module, weights: dict, path: Path, strict: bool = True) -> str | None:
    """Copy ``weights`` into ``model``; a one-line report of the keys left out when not ``strict`` (None if none).

    A tensor of another shape than the model's is refused either way, as are,
    when ``strict``, missing or unexpected keys: the message names ``path``.
    """
    own = model.state_dict()
    missing = [key for key in own if key not in weights]
    unexpected = [key for key in weights if key not in own]
    mismatched = [
        f"{key} {tuple(weights[key].shape)} vs {tuple(own[key].shape)}"
        for key in weights
        if key in own and isinstance(weights[key], torch.Tensor) and weights[key].shape != own[key].shape
    ]
    if mismatched:
        raise TrainError(f"{path}: {len(mismatched)} tensor(s) of another shape than the model's: {_some(mismatched)}")
    report = f"missing {len(missing)} key(s): {_some(missing)}; unexpected {len(unexpected)}: {_some(unexpected)}"
    if strict and (missing or unexpected):
        raise TrainError(f"{path}: does not match the model ({report}); a non-strict load would skip them")
    model.load_state_dict(weights, strict=strict)
    return f"{path}: loaded non-strictly; {report}" if missing or unexpected else None


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:KEYS_SHOWN]) or "none"
    return shown + (f" ... and {len(names) - KEYS_SHOWN} more" if len(names) > KEYS_SHOWN else "")


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
