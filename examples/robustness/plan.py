"""The study's settings, its presets, and the exact commands it runs (pure: no files touched)."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

CONDITIONS = ("clean", "noisy")
METHODS = ("baseline", "nsegment+")
# Side of the paper's maps (Cityscapes, 1024x2048): NSegment+'s alpha and area_thresh are in its pixels.
FULL_SIDE = 1024
PAPER_ALPHAS = (1, 15, 30, 50, 100)
PAPER_SIGMAS = (3, 5, 10)
PAPER_AREA_THRESH = 1000


def scaled_alpha_sigma(side: int) -> str:
    """The paper's pairs for maps of ``side`` px high: alpha scaled with the side, sigma unchanged.

    The blurred field's displacement is proportional to alpha / sigma, so this
    keeps the paper's displacement relative to the map pair by pair; sigma
    stays 3-10 px, a smooth wobble of the outlines (scaling it too would make
    it white noise at small sides). See PILOT.md.
    """
    factor = side / FULL_SIDE
    return ",".join(f"{alpha * factor:g}:{sigma:g}" for alpha in PAPER_ALPHAS for sigma in PAPER_SIGMAS)


def scaled_area_thresh(side: int) -> float:
    """The paper's small-object threshold for maps of ``side`` px high: scaled with the area."""
    return PAPER_AREA_THRESH * (side / FULL_SIDE) ** 2


@dataclass(frozen=True)
class Settings:
    """Everything that decides the study's result, plus how it runs (jobs, threads, workers)."""

    # Data: examples/make_sample_data.py, made in the work folder (a digest of the labels is checked).
    data: tuple[str, ...] = (
        "--categories",
        "6",
        "--ignore-band",
        "0",
        "--objects",
        "30",
        "--thicken",
        "1",
        "--thicken-classes",
        "11,12",
    )
    train_images: int = 300
    val_images: int = 60
    height: int = 128
    width_px: int = 256
    data_seed: int = 0
    num_classes: int = 6
    # Noise: nsegaug noise on the training labels (the validation labels stay clean); PILOT.md's S6: the
    # three random models at 128x256 strengths, and an annotator's habit on humans and vehicles.
    noise: tuple[str, ...] = (
        "--models", "bias,boundary,simplify,jitter", "--max-radius", "2", "--max-epsilon", "1.5",
        "--jitter-amplitude", "0.75", "--jitter-sigma", "8", "--bias-radius", "1", "--bias-wide", "0.5",
        "--bias-classes", "4,5",
    )  # fmt: skip
    noise_seed: int = 0
    # NSegment+: offline copies, the paper's pairs and threshold scaled to the map size.
    copies: int = 5
    prob: float = 0.5
    # Training: the same for every run but the seed and --baseline.
    model_width: int = 16
    epochs: int = 8
    batch_size: int = 8
    crop: tuple[int, int] = (128, 256)
    scale_range: tuple[float, float] = (0.75, 1.5)
    lr: float = 2e-3
    schedule: str = "cosine"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    boundary_width: int = 3
    # How it runs (not the result).
    device: str = "cpu"
    workers: int = 0
    threads: int = 1
    jobs: int = 2

    @property
    def alpha_sigma(self) -> str:
        return scaled_alpha_sigma(self.height)

    @property
    def area_thresh(self) -> float:
        return scaled_area_thresh(self.height)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        for name, value in values.items():
            if isinstance(value, tuple):
                values[name] = list(value)
        values.update(alpha_sigma=self.alpha_sigma, area_thresh=self.area_thresh)
        return values


PRESETS = {
    # The pre-registered CPU study (2 cores, at most 2 hours): see PREREGISTRATION.md and PILOT.md.
    "cpu": Settings(),
    # The pipeline check, test-sized: every step of the study, nothing it could conclude.
    "quick": Settings(
        train_images=8, val_images=4, seeds=(0, 1), copies=2, model_width=4, epochs=1, batch_size=4, jobs=2
    ),
    # The same study on one GPU, with more room: full-size data at 256x512 and a wider model.
    "gpu": Settings(
        train_images=600, val_images=120, height=256, width_px=512, model_width=32, epochs=30, batch_size=16,
        crop=(256, 512), device="cuda", workers=4, threads=4, jobs=1,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Folders:
    """Where the study writes, below its work folder; the data it makes there is only read afterwards."""

    work: Path

    @property
    def data(self) -> Path:
        return self.work / "data"

    def labels(self, condition: str) -> Path:
        return self.data / "train" / "labels" if condition == "clean" else self.work / "labels" / "noisy"

    @property
    def images(self) -> Path:
        return self.data / "train" / "images"

    @property
    def val_labels(self) -> Path:
        return self.data / "val" / "labels"

    @property
    def val_images(self) -> Path:
        return self.data / "val" / "images"

    def copies(self, condition: str, seed: int) -> Path:
        return self.work / "copies" / condition / f"seed{seed}"

    def run(self, condition: str, method: str, seed: int) -> Path:
        return self.work / "runs" / condition / method.replace("+", "plus") / f"seed{seed}"

    def log(self, name: str) -> Path:
        return self.work / "logs" / f"{name}.log"


@dataclass(frozen=True)
class Command:
    """One command line of the study, what it is for, and whether a finished one is skipped or resumed."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    condition: str | None = None
    method: str | None = None
    seed: int | None = None

    def shell(self) -> str:
        """As typed in a shell from the repository root: ``VAR=1 python -m nsegaug ...``."""
        prefix = [f"{name}={value}" for name, value in self.env]
        return " ".join([*prefix, shlex.join(["python", *self.argv[1:]])])


def shown(path: Path) -> str:
    """A path relative to the working folder when it lies below it (shorter, and the same on every machine)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def thread_env(settings: Settings) -> tuple[tuple[str, str], ...]:
    # A set number of threads per process: runs go side by side instead, and on a shared machine
    # more threads than cores only contend.
    return (("OMP_NUM_THREADS", str(settings.threads)), ("MKL_NUM_THREADS", str(settings.threads)))


def data_command(python: str, folders: Folders, settings: Settings, script: Path) -> Command:
    argv = [python, shown(script), *settings.data, "--train", str(settings.train_images)]
    argv += ["--val", str(settings.val_images), "--height", str(settings.height), "--width", str(settings.width_px)]
    argv += ["--seed", str(settings.data_seed), "--out", shown(folders.data)]
    return Command("data", tuple(argv))


def noise_command(python: str, folders: Folders, settings: Settings) -> Command:
    """The noisy training labels: ``nsegaug noise`` on the clean ones (same names, same format)."""
    argv = [python, "-m", "nsegaug", "noise", "--labels", shown(folders.labels("clean")), *settings.noise]
    argv += ["--seed", str(settings.noise_seed), "--jobs", str(settings.jobs), "--quiet"]
    argv += ["--out", shown(folders.labels("noisy"))]
    return Command("noise", tuple(argv), thread_env(settings))


def generate_command(python: str, folders: Folders, settings: Settings, condition: str, seed: int) -> Command:
    """K deformed copies of every training label of ``condition``, with generate's seed = the run's seed."""
    argv = [python, "-m", "nsegaug", "generate", "--labels", shown(folders.labels(condition))]
    argv += ["--images", shown(folders.images), "--copies", str(settings.copies), "--seed", str(seed)]
    argv += ["--alpha-sigma", settings.alpha_sigma, "--area-thresh", f"{settings.area_thresh:g}"]
    argv += ["--ignore-index", "255", "--jobs", "1", "--quiet", "--out", shown(folders.copies(condition, seed))]
    return Command(f"generate-{condition}-seed{seed}", tuple(argv), thread_env(settings), condition, None, seed)


def train_command(python: str, folders: Folders, settings: Settings, condition: str, method: str, seed: int) -> Command:
    """One training run; baseline and NSegment+ differ only in ``--baseline``.

    Both read the same manifest, and ``--baseline`` draws the same numbers as
    NSegment+ (label coin, crop, scale, flip, data order, initial weights), so
    the pair of runs of one seed differs in the labels it trains on only.
    """
    argv = [python, "-m", "nsegaug", "train", "--manifest", shown(folders.copies(condition, seed) / "manifest.jsonl")]
    argv += ["--val-labels", shown(folders.val_labels), "--val-images", shown(folders.val_images)]
    argv += ["--num-classes", str(settings.num_classes), "--prob", f"{settings.prob:g}"]
    argv += ["--baseline"] if method == "baseline" else []
    argv += ["--width", str(settings.model_width), "--epochs", str(settings.epochs)]
    argv += ["--batch-size", str(settings.batch_size), "--crop", *map(str, settings.crop)]
    argv += ["--scale-range", *(f"{value:g}" for value in settings.scale_range)]
    argv += ["--lr", f"{settings.lr:g}", "--schedule", settings.schedule, "--eval-every", "1"]
    argv += ["--boundary-width", str(settings.boundary_width), "--device", settings.device]
    argv += ["--workers", str(settings.workers), "--seed", str(seed), "--quiet"]
    argv += ["--out", shown(folders.run(condition, method, seed))]
    name = f"train-{condition}-{method}-seed{seed}"
    return Command(name, tuple(argv), thread_env(settings), condition, method, seed)


def all_commands(python: str, folders: Folders, settings: Settings) -> tuple[list[Command], list[Command]]:
    """The generate commands (first), then the training runs, seed by seed so the pairs finish together."""
    generates = [
        generate_command(python, folders, settings, condition, seed)
        for condition in CONDITIONS
        for seed in settings.seeds
    ]
    trains = [
        train_command(python, folders, settings, condition, method, seed)
        for seed in settings.seeds
        for condition in CONDITIONS
        for method in METHODS
    ]
    return generates, trains


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` -> (0, 1, 2); a seed may not repeat."""
    seeds = tuple(int(part) for part in text.split(",") if part.strip())
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct integers >= 0 separated by commas, got {text!r}")
    return seeds


PYTHON = sys.executable
