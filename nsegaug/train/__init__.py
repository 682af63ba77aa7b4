"""Training a segmentation model on generated copies (``nsegaug train`` / ``evaluate``).

``config`` (settings), ``samples`` (manifest rows, checks, label choice) and
``metrics`` need only NumPy, so the command line can parse and check a run
before torch is loaded; ``curves`` draws with matplotlib (``pip install
'nsegaug[plots]'``). ``data`` (Dataset, augmentation,
samplers), ``model`` (U-Net, ``module:factory``), ``step`` (loss, one optimizer
step), ``checkpoint`` (``TrainState``, checkpoint files, RNG states),
``evaluation`` (confusion matrix, ``evaluate_checkpoint``), ``distributed``
(torchrun), ``runlog`` (the run folder's files, progress), ``start`` (prepare,
build, restore) and ``loop`` (``train``) need torch (``pip install
'nsegaug[train]'``); import them directly.
"""

from __future__ import annotations

TORCH_MISSING = "{what} needs torch, which is not installed: pip install 'nsegaug[train]'"


def require_torch(what: str = "nsegaug.train"):
    """The torch module, or an ImportError that says which extra to install."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(TORCH_MISSING.format(what=what)) from error
    return torch
