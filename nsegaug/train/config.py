"""The settings of a training run: what decides its result, what only decides how it runs."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunRefused, TrainError, UsageError
from ..params import PAPER_PROB, DeformParams
from ..storage import as_location, take_credentials

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("poly", "cosine")
DEVICES = ("auto", "cpu", "cuda")
# Per-optimizer defaults when --lr / --weight-decay are not given: the usual
# starting points for AdamW and for SGD with momentum on segmentation.
DEFAULT_LR = {"adamw": 1e-3, "sgd": 1e-2}
DEFAULT_WEIGHT_DECAY = {"adamw": 1e-2, "sgd": 5e-4}
DEFAULT_EPOCHS = 50
# Width in pixels of the band the boundary metrics look at (see nsegaug.train.metrics).
DEFAULT_BOUNDARY_WIDTH = 3
# ImageNet statistics, in 0..255, as every segmentation codebase uses them.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
# Fields that may change on --resume: the length of the run and how it runs.
# Everything else decides the result and must match the saved run. amp goes with device (it applies on CUDA
# only): a CPU run resumed on a GPU may keep its precision with --no-amp; a resume that changes it says so.
RUNTIME_FIELDS = frozenset(
    {
        "out",
        "epochs",
        "iters",
        "workers",
        "threads",
        "device",
        "amp",
        "eval_every",
        "checkpoint_every",
        "labels",
        "images",
        "allow_changed_labels",
        "parameter_sources",
    }
)
CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; ``to_dict``/``from_dict`` round-trip through JSON."""

    manifest: Path | str
    val_labels: Path | str
    val_images: Path | str
    num_classes: int
    labels: Path | str | None = None  # where the manifest's labels are now, when they moved; None: as it records
    images: Path | str | None = None  # likewise its images
    # Train on manifest labels whose bytes differ from the checksums it recorded (edited since generate).
    allow_changed_labels: bool = False
    out: Path = Path("runs/train")
    ignore_index: int = 255
    prob: float | None = None  # None: the manifest's --prob, or DEFAULT_ONLINE_PROB with online
    baseline: bool = False
    online: bool = False  # deform the originals on the device each step instead of reading copies
    # How --online deforms (its pairs and threshold; the ignore index is the run's): None offline, where generate
    # deformed the copies; online, None gives the method's pairs and threshold. Recorded as alpha_sigma and
    # area_thresh, the keys earlier versions wrote.
    params: DeformParams | None = None
    model: str = "unet"
    width: int = 32
    init_weights: Path | None = None  # a state dict loaded into the model before the first step (not on resume)
    init_weights_strict: bool = True  # every key of the model and of the file must match
    epochs: int | None = None
    iters: int | None = None
    batch_size: int = 8
    crop: tuple[int, int] = (512, 512)
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip: bool = True
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    schedule: str = "poly"
    warmup_iters: int = 0
    clip_grad: float | None = None
    amp: bool = True
    device: str = "auto"
    workers: int = 2
    threads: int | None = None  # torch and OpenCV threads; None: this process's share of the CPUs it may use
    seed: int = 0
    eval_every: int = 1
    boundary_width: int = DEFAULT_BOUNDARY_WIDTH
    checkpoint_every: int = 0
    mean: tuple[float, float, float] = field(default=MEAN)
    std: tuple[float, float, float] = field(default=STD)
    # Where the pairs and the threshold came from (a params file, the command line): a record, not a setting.
    parameter_sources: dict | None = None
    # Credentials typed in the URLs (s3://KEY:SECRET@bucket/...), taken out of them as generate takes them: never
    # recorded (not in to_dict), never shown, compared or sent anywhere but to this process's storage settings.
    storage_options: dict | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The data may be in object storage (fsspec URLs); the run folder and initial weights are local.
        for name in ("manifest", "val_labels", "val_images"):
            object.__setattr__(self, name, self._location(getattr(self, name)))
        object.__setattr__(self, "out", Path(self.out))
        for name in ("init_weights", "labels", "images"):  # optional
            if getattr(self, name) is not None:
                value = getattr(self, name)
                object.__setattr__(self, name, Path(value) if name == "init_weights" else self._location(value))
        for name in ("crop", "scale_range", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.epochs is not None and self.iters is not None:
            raise UsageError("give epochs or iters, not both")
        if self.epochs is None and self.iters is None:
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS)
        if self.online and self.baseline:
            raise UsageError("online and baseline exclude each other (the baseline trains on originals only)")
        object.__setattr__(self, "params", online_params(self.params, self.online, self.ignore_index))
        for ok, message in _checks(self):
            if not ok:
                raise UsageError(message)

    def _location(self, value) -> Path | str:
        """A location as the config holds and records it: a URL's credentials go to ``storage_options``."""
        location, options = take_credentials(value, self.storage_options)
        object.__setattr__(self, "storage_options", options)
        return as_location(location)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY[self.optimizer]

    @property
    def prob_used(self) -> float:
        """The chance of a deformed label: ``prob``, else the method's 0.5 (the paper's), offline and online."""
        return self.prob if self.prob is not None else PAPER_PROB

    def to_dict(self) -> dict:
        """The recorded form (config.json, checkpoints, metrics.json): without the storage options, the deformation
        as the flat ``alpha_sigma`` and ``area_thresh`` that every version writes and reads."""
        values = {}
        for spec in dataclasses.fields(self):
            if spec.name == "params":
                values.update(_flat_params(self.params))
            elif spec.name != "storage_options":
                values[spec.name] = copy.deepcopy(getattr(self, spec.name))
        for name in ("manifest", "val_labels", "val_images", "out"):
            values[name] = str(values[name])
        for name in ("init_weights", "labels", "images"):
            if values[name] is not None:
                values[name] = str(values[name])
        for name in ("crop", "scale_range", "mean", "std"):
            values[name] = list(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config of a recorded form (this version's or an earlier one's) or of a command's options; keys it
        does not know are left out. ``alpha_sigma`` and ``area_thresh`` (None: not given) become its ``params``."""
        known = {f.name for f in dataclasses.fields(cls)}
        given = {name: value for name, value in values.items() if name in known}
        pairs, threshold = values.get("alpha_sigma"), values.get("area_thresh")
        if pairs is not None or threshold is not None:
            if given.get("params") is not None:
                raise UsageError("give the deformation as params or as alpha_sigma and area_thresh, not both")
            flat = {"alpha_sigma": pairs, "area_thresh": threshold}
            given["params"] = DeformParams(**{name: value for name, value in flat.items() if value is not None})
        return cls(**given)


# The fields of DeformParams that training sets; the others are those of the torch engine's own defaults.
_TRAINED_FIELDS = ("alpha_sigma", "area_thresh", "ignore_index")


def online_params(params: DeformParams | None, online: bool, ignore_index: int) -> DeformParams | None:
    """The deformation a run applies: ``params`` (the method's pairs and threshold where None) with the run's
    ignore index, online; None offline, where generate chose the pairs and the threshold."""
    if not online:
        if params is not None:  # recording pairs here would mislead: the copies were deformed by generate
            raise UsageError(
                "alpha_sigma and area_thresh apply to online only (offline, the copies are deformed by generate)"
            )
        return None
    params = params if params is not None else DeformParams()
    if params.ignore_index not in (None, ignore_index):
        raise UsageError(f"the deformation's ignore_index {params.ignore_index} is not the run's ({ignore_index})")
    for spec in dataclasses.fields(DeformParams):
        if spec.name not in _TRAINED_FIELDS and getattr(params, spec.name) != spec.default:
            raise UsageError(
                f"online training deforms with {spec.name}={spec.default!r} (it takes the pairs and the threshold "
                f"only), got {getattr(params, spec.name)!r}"
            )
    return params.replace(ignore_index=ignore_index)


def _flat_params(params: DeformParams | None) -> dict:
    """``alpha_sigma`` and ``area_thresh`` as a run records them: pairs as lists; None for both offline."""
    if params is None:
        return {"alpha_sigma": None, "area_thresh": None}
    return {"alpha_sigma": [list(pair) for pair in params.alpha_sigma], "area_thresh": params.area_thresh}


def _checks(config: TrainConfig) -> list[tuple[bool, str]]:
    """(holds, what it says otherwise) for every value the run cannot use."""
    return [
        (config.num_classes >= 1, f"num_classes must be >= 1, got {config.num_classes}"),
        (
            not 0 <= config.ignore_index < config.num_classes,
            f"ignore_index {config.ignore_index} is a class index (0..{config.num_classes - 1}); "
            "pick a value outside the classes, e.g. 255",
        ),
        (config.prob is None or 0 <= config.prob <= 1, f"prob must be in [0, 1], got {config.prob}"),
        ((config.epochs or 1) >= 1 and (config.iters or 1) >= 1, "epochs and iters must be >= 1"),
        (config.batch_size >= 1, f"batch_size must be >= 1, got {config.batch_size}"),
        (len(config.crop) == 2 and min(config.crop) >= 1, f"crop needs two sizes >= 1, got {config.crop}"),
        (
            len(config.scale_range) == 2 and 0 < config.scale_range[0] <= config.scale_range[1],
            f"scale_range needs 0 < MIN <= MAX, got {config.scale_range}",
        ),
        (config.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
        (config.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
        (config.device in DEVICES, f"device must be one of {', '.join(DEVICES)}"),
        (config.width >= 1, f"width must be >= 1, got {config.width}"),
        (
            config.init_weights is not None or config.init_weights_strict,
            "a non-strict load of initial weights needs init_weights",
        ),
        (config.lr is None or config.lr > 0, f"lr must be > 0, got {config.lr}"),
        (config.clip_grad is None or config.clip_grad > 0, f"clip_grad must be > 0, got {config.clip_grad}"),
        (config.warmup_iters >= 0 and config.workers >= 0 and config.seed >= 0, "counts and seeds must be >= 0"),
        (config.threads is None or config.threads >= 1, f"threads must be >= 1, got {config.threads}"),
        (config.eval_every >= 1 and config.checkpoint_every >= 0, "eval_every must be >= 1"),
        (config.boundary_width >= 1, f"boundary_width must be >= 1 pixel, got {config.boundary_width}"),
    ]


def result_differences(saved: TrainConfig, wanted: TrainConfig) -> list[str]:
    """``name: saved -> wanted`` for every field that decides the result and differs."""
    old, new = saved.to_dict(), wanted.to_dict()
    return [
        f"{name}: {old[name]!r} -> {new[name]!r}"
        for name in old
        if name not in RUNTIME_FIELDS and old[name] != new[name]
    ]


def resumed_config(saved: TrainConfig, changes: dict) -> TrainConfig:
    """The saved run's config with ``changes`` applied; only runtime fields may differ.

    Giving --epochs or --iters on resume extends (or shortens) the run; the
    other of the two is dropped so they never both count.
    """
    values = saved.to_dict()
    if changes.get("epochs") is not None:
        values["iters"] = None
    if changes.get("iters") is not None:
        values["epochs"] = None
    values.update({name: value for name, value in changes.items() if value is not None})
    wanted = TrainConfig.from_dict(values)
    differences = result_differences(saved, wanted)
    if differences:
        raise RunRefused(
            "cannot resume with settings that change the result (start a new run in another folder):\n  "
            + "\n  ".join(differences)
        )
    return wanted


def read_config(run_dir: Path) -> TrainConfig:
    """The config a run recorded in ``RUN_DIR/config.json``."""
    path = Path(run_dir) / CONFIG_NAME
    try:
        return TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["config"])
    except FileNotFoundError as error:
        raise RunRefused(f"{path}: not found; nothing to resume in {run_dir}") from error
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TrainError(f"{path}: not a training config ({error})") from error
