"""A study's description: one TOML file and/or options, checked once into a frozen `StudySpec`.

The file has up to six tables; every key is optional except the data's::

    [data]      labels, images, val_labels, val_images, num_classes, ignore_index, noisy_labels
    [study]     methods, seeds, conditions, prob, primary, collapse_iou
    [generate]  options of ``nsegaug generate`` for the offline copies (copies, alpha_sigma, area_thresh,
                params = a calibration's params.toml, ...)
    [noise]     options of ``nsegaug noise`` for the noisy condition (its presence adds that condition), or
                [data] noisy_labels: that condition's labels, given
    [train]     options of ``nsegaug train`` (model, width, epochs, batch_size, crop, device, ...)

The ``[generate]``, ``[noise]`` and ``[train]`` tables are passed through to
their commands (see `nsegaug.study.options`), so every option of those
commands is available without the study repeating them. Relative paths are
read from the folder the command runs in, as every other nsegaug path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..storage import public_record
from . import params
from .analysis import ALL_METRICS
from .collapse import CLASS_IOU_FLOOR as DEFAULT_COLLAPSE_IOU  # a class at or below this IoU is lost

# Method -> how its training differs. Offline methods read generate's copies; "nsegment" is NSegment+
# without the small-object suppression (generate's --area-thresh 0).
METHODS = ("baseline", "nsegment+", "nsegment+online", "nsegment")
CONDITIONS = ("clean", "noisy")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_COPIES = 5
PAPER_PROB = 0.5
TABLES = ("data", "study", "generate", "noise", "train")
DATA_KEYS = ("labels", "images", "val_labels", "val_images", "num_classes", "ignore_index", "noisy_labels")
STUDY_KEYS = ("methods", "seeds", "conditions", "prob", "primary", "collapse_iou")
# The metric a study names as its primary (the headline's first line); the others are reported as secondary.
# Among them the collapse-robust ones: per pair, over the classes both runs learned (docs/study.md says when).
PRIMARY_METRICS = ALL_METRICS
DEFAULT_PRIMARY = "miou"
REQUIRED = ("labels", "images", "val_labels", "val_images", "num_classes")

Options = tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class StudySpec:
    """What a study runs: data, methods x conditions x seeds, and the options of its three commands."""

    labels: str
    images: str
    val_labels: str
    val_images: str
    num_classes: int
    ignore_index: int = 255
    methods: tuple[str, ...] = ("baseline", "nsegment+")
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    conditions: tuple[str, ...] = ("clean",)
    prob: float = PAPER_PROB  # train's --prob: the chance of a deformed label per epoch (offline and online)
    primary: str = DEFAULT_PRIMARY
    collapse_iou: float = DEFAULT_COLLAPSE_IOU
    generate: Options = (("copies", DEFAULT_COPIES),)
    noise: Options | None = None  # None: no noisy condition
    train: Options = ()
    source: str | None = None  # the study file it was read from
    # The noisy condition's labels when they are given (another annotation of the same maps), not made by noise.
    noisy_labels: str | None = None
    # Where the values a params file could set came from, per table ([generate], [noise]): see study/params.py.
    params_sources: dict | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""
        unknown = [method for method in self.methods if method not in METHODS]
        checks = [
            (not unknown, f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}"),
            (len(self.methods) == len(set(self.methods)) and self.methods, "methods must be distinct, at least one"),
            (
                bool(self.seeds) and len(set(self.seeds)) == len(self.seeds) and min(self.seeds) >= 0,
                f"seeds must be distinct integers >= 0, got {list(self.seeds)}",
            ),
            (
                bool(self.conditions) and set(self.conditions) <= set(CONDITIONS),
                f"conditions must be among {', '.join(CONDITIONS)}, got {list(self.conditions)}",
            ),
            (
                "noisy" not in self.conditions or self.noise is not None or self.noisy_labels is not None,
                "the noisy condition needs a [noise] table or [data] noisy_labels",
            ),
            (
                self.noise is None or self.noisy_labels is None,
                "[data] noisy_labels are the noisy condition's labels: no [noise] table with them",
            ),
            (0 <= self.prob <= 1, f"prob must be in [0, 1], got {self.prob}"),
            (
                self.primary in PRIMARY_METRICS,
                f"primary must be one of {', '.join(PRIMARY_METRICS)}, got {self.primary!r}",
            ),
            (0 <= self.collapse_iou < 1, f"collapse_iou must be in [0, 1), got {self.collapse_iou}"),
            (self.num_classes >= 1, f"num_classes must be >= 1, got {self.num_classes}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(where + message)

    @property
    def offline(self) -> tuple[str, ...]:
        """The methods that train on generate's copies."""
        return tuple(method for method in self.methods if method in ("nsegment+", "nsegment"))

    def to_dict(self) -> dict:
        """The study as its records hold it: a URL's credentials left out (the units get them as typed)."""
        values = public_record(dataclasses.asdict(self))
        for name in ("generate", "noise", "train"):
            values[name] = dict(values[name]) if values[name] is not None else None
        for name in ("methods", "seeds", "conditions"):
            values[name] = list(values[name])
        return values


def read_study_file(path: Path) -> dict:
    """The TOML file's tables (tomllib on Python 3.11+, else tomli when installed)."""
    from .._files.params_file import read_toml

    return read_toml(path, "study file")


def build_spec(tables: dict, source: str | None = None, overrides: dict | None = None) -> StudySpec:
    """The spec from a study file's ``tables`` with ``overrides`` (the command's options, None: not given) on top.

    ``overrides`` may hold the keys of [data] and [study], and ``generate``, ``noise`` and ``train`` as
    dicts merged over the file's tables.
    """
    where = f"{source}: " if source else ""
    unknown = [name for name in tables if name not in TABLES]
    if unknown:
        raise UsageError(f"{where}unknown table(s) {', '.join(unknown)}; a study file has {', '.join(TABLES)}")
    for name in TABLES:
        if not isinstance(tables.get(name, {}), dict):
            raise UsageError(f"{where}{name} must be a table ([{name}])")
    values: dict = {}
    for table, keys in (("data", DATA_KEYS), ("study", STUDY_KEYS)):
        extra = [key for key in tables.get(table, {}) if key not in keys]
        if extra:
            raise UsageError(f"{where}[{table}] has unknown key(s) {', '.join(extra)}; it takes {', '.join(keys)}")
        values.update(tables.get(table, {}))
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    passed = {name: {**tables.get(name, {}), **overrides.pop(name, {})} for name in ("generate", "noise", "train")}
    values.update(overrides)
    missing = [key for key in REQUIRED if values.get(key) is None]
    if missing:
        raise UsageError(f"{where}the study needs {', '.join(missing)} (in [data] or as options)")
    noise = passed["noise"] if ("noise" in tables or passed["noise"]) else None
    given_noisy = values.get("noisy_labels") is not None
    if noise is None and not given_noisy and "noisy" in values.get("conditions", ()):
        noise = {}  # noisy labels with nsegaug noise's defaults
    if "conditions" not in values:
        values["conditions"] = ("clean", "noisy") if noise is not None or given_noisy else ("clean",)
    generate = {"copies": DEFAULT_COPIES, **passed["generate"]}
    params_sources = {
        table: found
        for table, options in (("generate", generate), ("noise", noise))
        if options is not None and (found := params.sources(table, options, where)) is not None
    }
    try:
        return StudySpec(
            labels=str(values["labels"]),
            images=str(values["images"]),
            val_labels=str(values["val_labels"]),
            val_images=str(values["val_images"]),
            num_classes=int(values["num_classes"]),
            ignore_index=int(values.get("ignore_index", 255)),
            methods=tuple(values.get("methods", StudySpec.methods)),
            seeds=tuple(int(seed) for seed in values.get("seeds", DEFAULT_SEEDS)),
            conditions=tuple(values["conditions"]),
            prob=float(values.get("prob", PAPER_PROB)),
            primary=str(values.get("primary", DEFAULT_PRIMARY)),
            collapse_iou=float(values.get("collapse_iou", DEFAULT_COLLAPSE_IOU)),
            generate=tuple(generate.items()),
            noise=tuple(noise.items()) if noise is not None else None,
            train=tuple(passed["train"].items()),
            source=source,
            noisy_labels=str(values["noisy_labels"]) if given_noisy else None,
            params_sources=params_sources or None,
        )
    except (TypeError, ValueError) as error:
        if isinstance(error, UsageError):
            raise
        raise UsageError(f"{where}{error}") from error


def load_spec(path: Path | None, overrides: dict | None = None) -> StudySpec:
    """The spec of the study file at ``path`` (None: options only) with the command's ``overrides``."""
    tables = read_study_file(path) if path is not None else {}
    return build_spec(tables, str(path) if path is not None else None, overrides)
