"""nsegaug: NSegment+ label-only elastic deformation against implicit label noise.

The public names below are loaded on first use (PEP 562), so ``import nsegaug``
loads neither NumPy nor OpenCV nor torch: a command-line start, or a program
that only needs the version, pays nothing for the engine.
"""

from __future__ import annotations

import importlib

from ._version import __version__ as __version__

# Public name -> the module that defines it.
_PUBLIC = {
    "DEFAULT_ALPHA_SIGMA": "params",
    "DeformParams": "params",
    "DeformDraw": "deform",
    "DeformResult": "deform",
    "GenerateConfig": "generate",
    "generate_dataset": "generate",
    "NoisySegmentPlus": "transform",
    "NsegaugError": "errors",
}
_SUBMODULES = ("deform",)
__all__ = sorted([*_PUBLIC, *_SUBMODULES, "__version__"])
# The modules users import from: documented, and kept where they are. Every other module is internal and
# may move between versions (the job engine nsegaug._jobs, nsegaug.cli, nsegaug._files.label_folders, the insides of
# nsegaug.train, nsegaug.preview, nsegaug.study and nsegaug.manifest's own modules).
PUBLIC_MODULES = (
    "nsegaug",
    "nsegaug.params",
    "nsegaug.deform",
    "nsegaug.generate",
    "nsegaug.noise",
    "nsegaug.errors",
    "nsegaug.manifest",
    "nsegaug.export",
    "nsegaug.io",
    "nsegaug.storage",
    "nsegaug.torch",
    "nsegaug.transform",
    "nsegaug.albumentations",
    "nsegaug.mmseg",
    "nsegaug.seeding",
    "nsegaug.copies",
    "nsegaug.volume",
    "nsegaug.monai",
    "nsegaug.torchio",
    "nsegaug.calibrate",
)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
