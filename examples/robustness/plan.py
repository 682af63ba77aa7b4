"""The experiment's settings, its two presets, and the exact nsegaug commands it runs (pure: no files touched)."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path

from report import CONDITIONS, METHODS

# Evaluate only once, after the last step: the reported mIoU is the final model's,
# never a best-of-N picked on the validation labels.
EVAL_ONCE = 1_000_000


@dataclass(frozen=True)
class Settings:
    """Everything that decides the experiment's result, plus how it runs (jobs, threads, workers).

    The defaults are the full configuration, for one GPU; ``PRESETS["quick"]``
    is the CPU one.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    copies: int = 5  # deformed copies per training label (nsegaug generate --copies)
    prob: float = 0.5  # the paper's probability of training on a deformed label
    width: int = 32
    iters: int = 4000
    batch_size: int = 16
    crop: tuple[int, int] = (256, 256)
    lr: float | None = None  # None: nsegaug train's default for AdamW (1e-3)
    num_classes: int = 19
    ignore_index: int = 255
    noise_seed: int = 0
    train_images: int | None = None  # None: all
    val_images: int | None = None
    val_fraction: float = 0.25  # only for a dataset that is not split into train/ and val/ yet
    device: str = "cuda"
    workers: int = 4  # DataLoader workers per training run
    threads: int = 1  # torch/OpenMP threads per process
    jobs: int = 1  # nsegaug commands run side by side

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["seeds"], values["crop"] = list(self.seeds), list(self.crop)
        return values


PRESETS = {
    "full": Settings(),
    # Two shared CPU cores: a 0.5 M-parameter U-Net on 128x128 crops, two runs side by side with one
    # thread each, about 50 s a run on a busy machine. lr 3e-3: at 100 steps AdamW's default 1e-3
    # had not left the all-road stage (seed 0: mIoU 0.17 against 0.27).
    "quick": Settings(width=8, iters=100, batch_size=8, crop=(128, 128), lr=3e-3, device="cpu", workers=0, jobs=2),
}


@dataclass(frozen=True)
class Folders:
    """Where the experiment reads and writes; the validation folders are only ever read."""

    train_labels: Path
    train_images: Path
    val_labels: Path
    val_images: Path
    work: Path

    @property
    def noisy_labels(self) -> Path:
        return self.work / "labels" / "noisy"

    def labels(self, condition: str) -> Path:
        return self.train_labels if condition == "clean" else self.noisy_labels

    def copies(self, condition: str, seed: int) -> Path:
        return self.work / "copies" / condition / f"seed{seed}"

    def run(self, condition: str, method: str, seed: int) -> Path:
        return self.work / "runs" / condition / method.replace("+", "plus") / f"seed{seed}"

    def log(self, name: str) -> Path:
        return self.work / "logs" / f"{name}.log"


@dataclass(frozen=True)
class Command:
    """One nsegaug command line and what it is for."""

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
    # One thread per process: runs go side by side instead, and on a shared machine
    # more threads than cores only contend.
    return (("OMP_NUM_THREADS", str(settings.threads)), ("MKL_NUM_THREADS", str(settings.threads)))


def generate_command(python: str, folders: Folders, settings: Settings, condition: str, seed: int) -> Command:
    """K deformed copies of every training label of ``condition``, with generate's seed = the run's seed."""
    argv = [python, "-m", "nsegaug", "generate", "--labels", shown(folders.labels(condition))]
    argv += ["--images", shown(folders.train_images), "--copies", str(settings.copies), "--seed", str(seed)]
    argv += ["--ignore-index", str(settings.ignore_index), "--jobs", "1", "--quiet"]
    argv += ["--out", shown(folders.copies(condition, seed))]
    return Command(f"generate-{condition}-seed{seed}", tuple(argv), thread_env(settings), condition, None, seed)


def train_command(python: str, folders: Folders, settings: Settings, condition: str, method: str, seed: int) -> Command:
    """One training run; baseline and NSegment+ differ only in ``--baseline``.

    Both read the same manifest, and ``--baseline`` draws the same numbers as
    NSegment+ (label coin, crop, scale, flip, data order, initial weights), so
    the pair of runs of one seed differs in the labels it trains on only.
    """
    argv = [python, "-m", "nsegaug", "train", "--manifest", shown(folders.copies(condition, seed) / "manifest.jsonl")]
    argv += ["--val-labels", shown(folders.val_labels), "--val-images", shown(folders.val_images)]
    argv += ["--num-classes", str(settings.num_classes), "--ignore-index", str(settings.ignore_index)]
    argv += ["--prob", f"{settings.prob:g}", *(["--baseline"] if method == "baseline" else [])]
    argv += ["--width", str(settings.width), "--iters", str(settings.iters), "--batch-size", str(settings.batch_size)]
    argv += ["--crop", str(settings.crop[0]), str(settings.crop[1])]
    if settings.lr is not None:
        argv += ["--lr", f"{settings.lr:g}"]
    argv += ["--device", settings.device, "--workers", str(settings.workers), "--seed", str(seed)]
    argv += ["--eval-every", str(EVAL_ONCE), "--quiet", "--out", shown(folders.run(condition, method, seed))]
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
        raise ValueError(f"--seeds needs distinct seeds >= 0 separated by commas, got {text!r}")
    return seeds
