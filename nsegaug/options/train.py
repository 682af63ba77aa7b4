"""The options of ``nsegaug train``, and how they become a run's [`TrainConfig`][nsegaug.train.config.TrainConfig].

The command (``nsegaug.cli.train``) and ``nsegaug study`` (which checks a
finished training against the one it asks for, `config_of`) both
read them here.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from ..train.config import (
    DEFAULT_BOUNDARY_WIDTH,
    DEVICES,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    read_config,
    resumed_config,
)
from . import (
    LocalPath,
    Location,
    apply_params_file,
    available_cores,
    deform_options,
    params_file_option,
    quiet_option,
    seed_option,
    storage_options_option,
)
from . import parser as bare_parser

# Without --resume these must be given; with it they come from the run's config.json.
REQUIRED = ("manifest", "val_labels", "val_images", "num_classes")
# Settings of the deformation itself: --online only (offline, generate applied its own).
ONLINE_ONLY = ("alpha_sigma", "area_thresh")
existing_folder = Location(exists=True, file_okay=False)
# Checkpoints and initial weights are read with torch.load from this machine's disk.
local_file = LocalPath("torch.load reads a checkpoint or weights from a local file", exists=True, dir_okay=False)
device_option = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="auto: CUDA if available; under torchrun each process takes the GPU of its local rank.",
)
boundary_width_option = click.option(
    "--boundary-width",
    type=click.IntRange(min=1),
    default=DEFAULT_BOUNDARY_WIDTH,
    show_default=True,
    help="Pixels from a contour that the boundary metrics (boundary IoU, band mIoU) look at.",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=lambda: min(4, available_cores()),
    show_default="min(4, cores)",
    help="DataLoader worker processes (per training process); 0 loads in the main process.",
)
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch and OpenCV threads of each training process (DataLoader workers run 1 each)  [default: the CPUs "
    "this process may use (affinity, cgroup quota), shared among the training processes on this machine]",
)


_OPTIONS = [
    click.option(
        "--manifest",
        type=Location(exists=True),
        help="manifest.jsonl written by nsegaug generate (with --images), or its folder.",
    ),
    click.option(
        "--labels",
        type=existing_folder,
        default=None,
        help="Where the manifest's source labels are now, if they moved  [default: as the manifest records them]",
    ),
    click.option("--images", type=existing_folder, default=None, help="Where the manifest's images are now, likewise."),
    click.option(
        "--allow-changed-labels",
        is_flag=True,
        help="Train on manifest labels edited since generate (checksum differs from the manifest's)  "
        "[default: such a label stops the run, naming it]",
    ),
    click.option("--val-labels", type=existing_folder, help="Validation label folder."),
    click.option("--val-images", type=existing_folder, help="Validation image folder, paired by name."),
    click.option("--num-classes", type=click.IntRange(min=1), help="Number of classes; labels are 0..C-1."),
    click.option(
        "--ignore-index",
        type=int,
        default=255,
        show_default=True,
        help="Label value left out of loss and metrics (and, --online, never taken as a small object).",
    ),
    click.option(
        "--prob",
        type=click.FloatRange(0, 1),
        default=None,
        help="Chance that an epoch uses a deformed copy (--online: a deformed original) instead of the original label  "
        "[default: 0.5, the paper's]",
    ),
    click.option(
        "--baseline", is_flag=True, help="Originals only, everything else identical: the method's reference run."
    ),
    click.option(
        "--online",
        is_flag=True,
        help="Deform the manifest's originals on the device each step (nsegaug.torch) instead of reading the copies; "
        "uses --alpha-sigma, --area-thresh and --ignore-index.",
    ),
    deform_options("alpha_sigma", "area_thresh"),
    params_file_option,
    click.option(
        "--model",
        default="unet",
        show_default=True,
        help="unet, or package.module:factory: factory(num_classes=C[, in_channels=3]) returns an nn.Module whose "
        "output is logits, a dict with 'out', an object with .logits, or a tuple starting with them (see README).",
    ),
    click.option(
        "--width",
        type=click.IntRange(min=1),
        default=32,
        show_default=True,
        help="Channels of the U-Net's first level.",
    ),
    click.option(
        "--init-weights",
        type=local_file,
        default=None,
        help="Start the model from this state dict (plain, or under 'state_dict'/'model'); not applied on --resume.",
    ),
    click.option(
        "--init-weights-strict/--no-init-weights-strict",
        default=True,
        show_default=True,
        help="Every key of the model and of --init-weights must match; non-strict loads the matching ones and reports "
        "the rest.",
    ),
    click.option(
        "--epochs", type=click.IntRange(min=1), default=None, help="Passes over the training set  [default: 50]."
    ),
    click.option("--iters", type=click.IntRange(min=1), default=None, help="Training steps instead of --epochs."),
    click.option(
        "--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Images per step per process."
    ),
    click.option(
        "--crop", nargs=2, type=click.IntRange(min=1), default=(512, 512), show_default=True, help="Crop H W."
    ),
    click.option(
        "--scale-range",
        nargs=2,
        type=click.FloatRange(min=0, min_open=True),
        default=(0.5, 2.0),
        show_default=True,
        help="Random scale MIN MAX applied before the crop.",
    ),
    click.option("--hflip/--no-hflip", default=True, show_default=True, help="Random horizontal mirroring."),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adamw", show_default=True),
    click.option(
        "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="[default: adamw 1e-3, sgd 1e-2]"
    ),
    click.option("--weight-decay", type=click.FloatRange(min=0), default=None, help="[default: adamw 1e-2, sgd 5e-4]"),
    click.option(
        "--schedule", type=click.Choice(SCHEDULES), default="poly", show_default=True, help="Learning-rate decay."
    ),
    click.option(
        "--warmup-iters", type=click.IntRange(min=0), default=0, show_default=True, help="Linear warm-up steps."
    ),
    click.option(
        "--clip-grad", type=click.FloatRange(min=0, min_open=True), default=None, help="Clip the gradient norm."
    ),
    click.option(
        "--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only; ignored on CPU)."
    ),
    device_option,
    workers_option,
    threads_option,
    seed_option,
    click.option(
        "--eval-every", type=click.IntRange(min=1), default=1, show_default=True, help="Evaluate every N epochs."
    ),
    boundary_width_option,
    click.option(
        "--checkpoint-every",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Also save last.pt every N steps (0: at epoch ends and evaluations only).",
    ),
    click.option(
        "--out",
        type=LocalPath("train writes its run folder (checkpoints, metrics) on this machine"),
        default=Path("runs/train"),
        show_default=True,
        help="Run folder.",
    ),
    storage_options_option,
    click.option(
        "--cache",
        type=LocalPath("the cache is a folder on this machine", file_okay=False),
        default=None,
        help="With data in object storage: keep a copy of every object read here, so later epochs read the disk.",
    ),
    click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt."),
    click.option(
        "--overwrite", is_flag=True, help="Start again in an existing --out (removes only nsegaug's run files)."
    ),
    quiet_option,
]


def train_options(command):
    """Every option of ``nsegaug train``, in the order its help lists them."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def parser() -> click.Command:
    """``nsegaug train``'s options as a bare command (see [`parser`][nsegaug.options.parser])."""
    return bare_parser("train", train_options)


def config_from_options(ctx: click.Context, resume: bool, options: dict) -> TrainConfig:
    """The run's config from ``nsegaug train``'s parsed ``options`` (``ctx`` says where each came from): from the
    options, or on --resume from the run's config.json with the options given."""
    if resume and options.get("params_file") is not None:
        raise click.UsageError("--params applies when a run starts; --resume continues with the run's own values")
    sources = apply_params_file(ctx, options, None, ONLINE_ONLY)
    if sources is not None:
        if not options["online"]:
            raise click.UsageError(
                "--params sets the deformation of --online runs; offline, the copies are made by generate --params"
            )
        options["parameter_sources"] = sources
    if resume:
        given = {
            name: value
            for name, value in options.items()
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
        }
        return resumed_config(read_config(options["out"]), given)
    missing = [name for name in REQUIRED if options[name] is None]
    if missing:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing)
        raise click.UsageError(f"missing {flags} (needed unless --resume)")
    if not options["online"]:
        # Offline runs record no deformation settings: their defaults are --online's, not generate's.
        for name in ONLINE_ONLY:
            if ctx.get_parameter_source(name) == ParameterSource.DEFAULT:
                options[name] = None
    return TrainConfig.from_dict(options)


# Options of the command that are not part of a run's config.
NOT_CONFIG = ("resume", "overwrite", "quiet", "storage_options", "cache")


def config_of(arguments: list[str]) -> TrainConfig:
    """The config that ``nsegaug train ARGUMENTS`` (without --resume) would run, parsed as the command parses it:
    for a caller that runs training as a command (``nsegaug study``) and checks a finished run against it."""
    ctx = parser().make_context("train", list(arguments))
    with ctx:
        options = {name: value for name, value in ctx.params.items() if name not in NOT_CONFIG}
        return config_from_options(ctx, False, options)
