"""Training a segmentation model on generated copies: ``nsegaug train`` and ``evaluate`` as functions, and the
model a run saved.

The public names (loaded on first use, so ``import nsegaug.train`` costs no torch):

- [`TrainConfig`][nsegaug.train.TrainConfig]: a run's settings, checked once, with their recorded form;
- [`train`][nsegaug.train.train]: the ``nsegaug train`` command as a function;
- [`evaluate_checkpoint`][nsegaug.train.evaluate_checkpoint]: the ``nsegaug evaluate`` command as a function;
- [`load_model`][nsegaug.train.load_model]: the model of a checkpoint, ready to predict
  ([`TrainedModel`][nsegaug.train.TrainedModel]);
- [`confusion_matrix`][nsegaug.train.confusion_matrix] and [`summarize`][nsegaug.train.summarize]: the
  counts and the metrics (mIoU, per-class IoU, accuracy) that training and evaluation report.

The modules inside are internal and may move. ``config``, ``samples`` (a manifest's samples, every file
checked once) and ``metrics`` need only NumPy, so the command line can parse and check a run before torch is
loaded; ``curves`` draws with matplotlib (``pip install 'nsegaug[plots]'``). ``data`` (Dataset,
augmentation, samplers), ``model`` (U-Net, ``module:factory``), ``step`` (loss, one optimizer step),
``checkpoint`` (``TrainState``, checkpoint files, RNG states), ``evaluation`` (confusion counts, a saved
model), ``distributed`` (torchrun), ``runlog`` (the run folder's files, progress), ``start`` (prepare, build,
restore) and ``loop`` (the run) need torch (``pip install 'nsegaug[train]'``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the API reference reads; at run time each name is loaded on first use
    from .config import TrainConfig
    from .evaluation import TrainedModel, evaluate_checkpoint, load_model
    from .loop import train
    from .metrics import confusion_matrix, summarize

TORCH_MISSING = "{what} needs torch, which is not installed: pip install 'nsegaug[train]'"

# Public name -> the module that defines it.
_PUBLIC = {
    "TrainConfig": "config",
    "train": "loop",
    "evaluate_checkpoint": "evaluation",
    "load_model": "evaluation",
    "TrainedModel": "evaluation",
    "confusion_matrix": "metrics",
    "summarize": "metrics",
}
__all__ = [
    "TrainConfig",
    "TrainedModel",
    "confusion_matrix",
    "evaluate_checkpoint",
    "load_model",
    "summarize",
    "train",
]


def require_torch(what: str = "nsegaug.train"):
    """The torch module, or an ImportError that says which extra to install."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(TORCH_MISSING.format(what=what)) from error
    return torch


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_PUBLIC[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
