"""A study's units, each one ``nsegaug`` command with its own output folder (pure: no file touched).

Order: the noisy labels (``nsegaug noise``), the copies (``nsegaug generate``,
once per condition, offline method and seed, generate's seed being the
study's), then the trainings, seed by seed so that a seed's pairs finish
together. Within a seed every training gets the same ``--seed`` and the same
training options, and reads a manifest of the same source images under the
same names, so initial weights, data order, crops, scales and flips are the
same: a pair differs in the labels it trains on only (see docs/study.md).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from ..storage import public_text
from . import params
from .options import flags
from .spec import StudySpec

MANIFEST = "manifest.jsonl"
# NSegment (the pilot method) is NSegment+ without the suppression around small objects.
NO_SUPPRESSION = ("--area-thresh", "0")


@dataclass(frozen=True)
class Unit:
    """One command of the study: what it makes, where, and for which cell."""

    name: str
    kind: str  # noise | generate | train
    argv: tuple[str, ...]  # starts with "nsegaug"
    out: Path
    condition: str | None = None
    method: str | None = None
    seed: int | None = None

    def shell(self) -> str:
        """The command as records and messages show it: a URL's credentials left out."""
        return public_text(shlex.join(self.argv))


def folder_name(method: str) -> str:
    """A method's name as a folder: ``nsegment+online`` -> ``nsegment-plus-online``."""
    return method.replace("+", "-plus-").strip("-").replace("--", "-")


@dataclass(frozen=True)
class Layout:
    """Where a study writes, below its output folder."""

    out: Path

    def labels(self, spec: StudySpec, condition: str) -> str:
        if condition == "clean":
            return spec.labels
        return spec.noisy_labels if spec.noisy_labels is not None else str(self.out / "data" / "noisy")

    def copies(self, condition: str, method: str, seed: int) -> Path:
        return self.out / "data" / "copies" / condition / folder_name(method) / f"seed{seed}"

    def originals(self, condition: str) -> Path:
        return self.out / "data" / "originals" / condition

    def run(self, condition: str, method: str, seed: int) -> Path:
        return self.out / "runs" / condition / folder_name(method) / f"seed{seed}"

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"


def noise_unit(spec: StudySpec, layout: Layout, jobs: int) -> Unit:
    out = layout.out / "data" / "noisy"
    argv = ["nsegaug", "noise", "--labels", spec.labels, "--out", str(out), "--ignore-index", str(spec.ignore_index)]
    table, path = params.split(dict(spec.noise or {}))
    argv += params.flags(path) + flags("noise", table, _where(spec))
    argv += ["--jobs", str(jobs), "--quiet"]
    return Unit("noise", "noise", tuple(argv), out, condition="noisy")


def generate_unit(spec: StudySpec, layout: Layout, condition: str, method: str, seed: int, jobs: int) -> Unit:
    """The copies ``method`` trains on: generate's options, generate's seed = the study's seed."""
    out = layout.copies(condition, method, seed)
    table, path = params.split(dict(spec.generate))
    if method == "nsegment":
        table.pop("area_thresh", None)
    argv = ["nsegaug", "generate", "--labels", layout.labels(spec, condition), "--images", spec.images]
    argv += ["--out", str(out), "--seed", str(seed), "--ignore-index", str(spec.ignore_index)]
    argv += params.flags(path) + flags("generate", table, _where(spec))
    argv += list(NO_SUPPRESSION) if method == "nsegment" else []
    argv += ["--jobs", str(jobs), "--quiet"]
    name = f"generate-{condition}-{folder_name(method)}-seed{seed}"
    return Unit(name, "generate", tuple(argv), out, condition, method, seed)


def originals_unit(spec: StudySpec, layout: Layout, condition: str, jobs: int) -> Unit:
    """A manifest of the originals, for a study without offline copies (baseline and online read originals only):
    one undeformed copy per map (``--prob 0``), never read by either."""
    out = layout.originals(condition)
    argv = ["nsegaug", "generate", "--labels", layout.labels(spec, condition), "--images", spec.images]
    argv += ["--out", str(out), "--copies", "1", "--prob", "0", "--ignore-index", str(spec.ignore_index)]
    argv += ["--jobs", str(jobs), "--quiet"]
    return Unit(f"originals-{condition}", "generate", tuple(argv), out, condition)


def manifest_of(spec: StudySpec, layout: Layout, condition: str, method: str, seed: int) -> Path:
    """The manifest a training reads: its own copies offline; else the first offline method's of the same seed
    (the same source images under the same names), or the originals' manifest."""
    if method in spec.offline:
        return layout.copies(condition, method, seed) / MANIFEST
    if spec.offline:
        return layout.copies(condition, spec.offline[0], seed) / MANIFEST
    return layout.originals(condition) / MANIFEST


def train_unit(spec: StudySpec, layout: Layout, condition: str, method: str, seed: int) -> Unit:
    """One training; the methods of a seed differ only in the manifest they read and in the method's flags."""
    out = layout.run(condition, method, seed)
    argv = ["nsegaug", "train", "--manifest", str(manifest_of(spec, layout, condition, method, seed))]
    argv += ["--val-labels", spec.val_labels, "--val-images", spec.val_images]
    argv += ["--num-classes", str(spec.num_classes), "--ignore-index", str(spec.ignore_index)]
    argv += ["--prob", f"{spec.prob:g}"]
    if method == "baseline":
        argv.append("--baseline")
    elif method == "nsegment+online":
        table, path = params.split(dict(spec.generate))
        online = {key: value for key, value in table.items() if key in ("alpha_sigma", "area_thresh")}
        argv += ["--online", *params.flags(path), *flags("generate", online, _where(spec))]
    argv += flags("train", dict(spec.train), _where(spec))
    argv += ["--seed", str(seed), "--quiet", "--out", str(out)]
    name = f"train-{condition}-{folder_name(method)}-seed{seed}"
    return Unit(name, "train", tuple(argv), out, condition, method, seed)


def plan_units(spec: StudySpec, out: Path, jobs: int = 1) -> list[Unit]:
    """Every unit of the study, in the order they may run (``jobs``: each data unit's worker processes)."""
    layout = Layout(Path(out))
    units = [noise_unit(spec, layout, jobs)] if "noisy" in spec.conditions and spec.noise is not None else []
    for condition in spec.conditions:
        if not spec.offline:
            units.append(originals_unit(spec, layout, condition, jobs))
        units += [
            generate_unit(spec, layout, condition, method, seed, jobs) for method in spec.offline for seed in spec.seeds
        ]
    units += [
        train_unit(spec, layout, condition, method, seed)
        for seed in spec.seeds
        for condition in spec.conditions
        for method in spec.methods
    ]
    return units


def _where(spec: StudySpec) -> str:
    return f"{spec.source}: " if spec.source else ""
