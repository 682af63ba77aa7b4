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
# The modules users import from: documented, and kept where they are. The tree shows the line: at the top of
# the package, a module or package whose name starts with an underscore (_jobs, _files, _resources, _plots, ...)
# is internal, and so are the command line's own packages (cli, options, preview, study), except the study's numbers
# (study.analysis, study.collapse: pure functions of a results.json, for re-analysing one); inside a public package
# (manifest, volume, calibrate, train), its modules are internal unless listed here: import from the package.
# Everything internal may move between versions.
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
    "nsegaug.sampling",
    "nsegaug.noise_models",
    "nsegaug.volume",
    "nsegaug.monai",
    "nsegaug.torchio",
    "nsegaug.calibrate",
    "nsegaug.train",
    "nsegaug.synthetic",
    "nsegaug.palettes",
    "nsegaug.study.analysis",
    "nsegaug.study.collapse",
)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
