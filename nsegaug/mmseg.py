"""Importing this module registers :class:`nsegaug.NoisySegmentPlus` in mmsegmentation's TRANSFORMS registry.

Then ``dict(type="NoisySegmentPlus", prob=0.5, area_thresh=1000, ignore_index=255)`` works in a
``train_pipeline``, after ``LoadAnnotations``, as with the method's own code. In a config file::

    custom_imports = dict(imports=["nsegaug.mmseg"], allow_failed_imports=False)

Needs mmsegmentation >= 1.0 (``mmseg.registry``) with its mmcv and mmengine.
"""

from __future__ import annotations

import warnings

try:
    from mmseg.registry import TRANSFORMS
except ImportError as error:
    raise ImportError(
        "nsegaug.mmseg registers NoisySegmentPlus with mmsegmentation, which is not importable here: "
        "pip install mmsegmentation (>= 1.0, with mmcv and mmengine; see mmsegmentation's install guide), "
        "or use nsegaug.NoisySegmentPlus directly"
    ) from error

from .transform import NoisySegmentPlus

NAME = "NoisySegmentPlus"


def register(registry=TRANSFORMS) -> None:
    """Register :class:`NoisySegmentPlus` under ``NAME``; nothing to do if it already is.

    Another class under that name (the method's own code, say) is replaced,
    with a warning: importing this module is asking for nsegaug's.
    """
    registered = registry.module_dict.get(NAME)
    if registered is NoisySegmentPlus:
        return
    if registered is not None:
        warnings.warn(
            f"nsegaug.mmseg replaces the {registered.__module__}.{registered.__qualname__} registered as {NAME!r}",
            stacklevel=2,
        )
    registry.register_module(name=NAME, module=NoisySegmentPlus, force=True)


register()

__all__ = ["NAME", "NoisySegmentPlus", "TRANSFORMS", "register"]
