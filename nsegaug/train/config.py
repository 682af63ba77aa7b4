"""The settings of a training run: what decides its result, what only decides how it runs."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RunRefused, TrainError, UsageError
from ..params import DEFAULT_ALPHA_SIGMA, DEFAULT_AREA_THRESH, PAPER_PROB, DeformParams
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
    alpha_sigma: tuple[tuple[float, float], ...] | None = None  # online only; None: the method's pairs
    area_thresh: float | None = None  # online only; None: DEFAULT_AREA_THRESH
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
    # Where alpha_sigma and area_thresh came from (a params file, the command line): a record, not a setting.
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
        if self.online:
            if self.alpha_sigma is None:
                object.__setattr__(self, "alpha_sigma", DEFAULT_ALPHA_SIGMA)
            if self.area_thresh is None:
                object.__setattr__(self, "area_thresh", DEFAULT_AREA_THRESH)
            # Checked once, by the spec the online engine will hold.
            object.__setattr__(self, "alpha_sigma", self.online_params.alpha_sigma)
        elif self.alpha_sigma is not None or self.area_thresh is not None:
            # Offline, generate chose the pairs and the threshold; recording others here would mislead.
            raise UsageError(
                "alpha_sigma and area_thresh apply to online only (offline, the copies are deformed by generate)"
            )
        checks = [
            (self.num_classes >= 1, f"num_classes must be >= 1, got {self.num_classes}"),
            (
                not 0 <= self.ignore_index < self.num_classes,
                f"ignore_index {self.ignore_index} is a class index (0..{self.num_classes - 1}); "
                "pick a value outside the classes, e.g. 255",
            ),
            (self.prob is None or 0 <= self.prob <= 1, f"prob must be in [0, 1], got {self.prob}"),
            ((self.epochs or 1) >= 1 and (self.iters or 1) >= 1, "epochs and iters must be >= 1"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (len(self.crop) == 2 and min(self.crop) >= 1, f"crop needs two sizes >= 1, got {self.crop}"),
            (
                len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1],
                f"scale_range needs 0 < MIN <= MAX, got {self.scale_range}",
            ),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}"),
            (self.width >= 1, f"width must be >= 1, got {self.width}"),
            (
                self.init_weights is not None or self.init_weights_strict,
                "a non-strict load of initial weights needs init_weights",
            ),
            (self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.clip_grad is None or self.clip_grad > 0, f"clip_grad must be > 0, got {self.clip_grad}"),
            (self.warmup_iters >= 0 and self.workers >= 0 and self.seed >= 0, "counts and seeds must be >= 0"),
            (self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (self.eval_every >= 1 and self.checkpoint_every >= 0, "eval_every must be >= 1"),
            (self.boundary_width >= 1, f"boundary_width must be >= 1 pixel, got {self.boundary_width}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def _location(self, value) -> Path | str:
        """A location as the config holds and records it: a URL's credentials go to ``storage_options``."""
        location, options = take_credentials(value, self.storage_options)
        object.__setattr__(self, "storage_options", options)
        return as_location(location)

    @property
    def online_params(self) -> DeformParams | None:
        """How ``--online`` deforms each batch: the run's pairs, threshold and ignore index; None offline."""
        if not self.online:
            return None
        return DeformParams(self.alpha_sigma, self.area_thresh, self.ignore_index)

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
        """The recorded form (config.json, checkpoints, metrics.json): without the storage options."""
        values = dataclasses.asdict(self)
        del values["storage_options"]
        for name in ("manifest", "val_labels", "val_images", "out"):
            values[name] = str(values[name])
        for name in ("init_weights", "labels", "images"):
            if values[name] is not None:
                values[name] = str(values[name])
        for name in ("crop", "scale_range", "mean", "std"):
            values[name] = list(values[name])
        if values["alpha_sigma"] is not None:
            values["alpha_sigma"] = [list(pair) for pair in values["alpha_sigma"]]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})


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
