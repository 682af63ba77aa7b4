"""Baseline vs NSegment+ on clean and on noisy training labels, evaluated on the clean validation labels.

python examples/robustness/run.py --quick     # CPU (2 cores): under 15 minutes
python examples/robustness/run.py             # the full configuration, for one GPU

Steps: split the data (or take its train/ and val/), write noisy copies of the
training labels (``noise.py``), run ``nsegaug generate`` on the clean and on
the noisy training labels once per seed, run ``nsegaug train`` on each for
NSegment+ (``--prob 0.5``) and the baseline (the same command plus
``--baseline``), and write OUT/results.json,
OUT/results.md (the table and every command), OUT/results.png (the chart) and
OUT/noise.png (what the noise does to one label map). See README.md here.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import click
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plan import PRESETS, Command, Folders, Settings, all_commands, parse_seeds, shown  # noqa: E402
from report import draw_chart, markdown_table, summarize_runs  # noqa: E402

from nsegaug.dataset import find_image, iter_label_files  # noqa: E402
from nsegaug.io import encode_label, read_label, write_bytes_atomic  # noqa: E402
from nsegaug.noise_models import annotation_noise  # noqa: E402
from nsegaug.palettes import colour_table  # noqa: E402
from nsegaug.params import NOISE_MODELS as MODELS  # noqa: E402
from nsegaug.params import NoiseParams  # noqa: E402

EXAMPLE_DATA = Path(__file__).resolve().parents[1] / "data"
# Only these are created in --work, and only these are removed by --overwrite.
WORK_PARTS = ("split", "labels", "copies", "runs", "logs")
OUTPUTS = ("results.json", "results.md", "results.png", "noise.png")


class ExperimentError(click.ClickException):
    """The experiment cannot go on; the message says why (and names the log of a failed command)."""


# --- data ----------------------------------------------------------------------------------------------------------


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.symlink_to(source.resolve())
    except OSError:  # no symbolic links here (some Windows setups): a copy reads the same
        shutil.copy2(source, target)


def _subset(labels: Path, images: Path, keys: list[str], target: Path) -> None:
    for key in keys:
        image = find_image(images, key)
        if image is None:
            raise ExperimentError(f"{labels / key}: no image with the same name in {images}")
        _link(labels / key, target / "labels" / key)
        _link(images / image, target / "images" / image)


def prepare_folders(data: Path, work: Path, settings: Settings) -> Folders:
    """The train and validation folders: DATA/train and DATA/val as they are, or a subset or split in WORK/split.

    A dataset with only DATA/labels and DATA/images is split by a seeded
    permutation (``noise_seed``); subsets take the first N files in sorted
    order. Either way files are linked, never copied or changed.
    """
    split = work / "split"
    if (data / "train" / "labels").is_dir() and (data / "val" / "labels").is_dir():
        parts = {part: (data / part / "labels", data / part / "images") for part in ("train", "val")}
        keys = {part: list(iter_label_files(labels)) for part, (labels, _) in parts.items()}
    elif (data / "labels").is_dir() and (data / "images").is_dir():
        everything = list(iter_label_files(data / "labels"))
        order = np.random.default_rng(settings.noise_seed).permutation(len(everything))
        count = max(1, round(len(everything) * settings.val_fraction))
        keys = {
            "val": sorted(everything[index] for index in order[:count]),
            "train": sorted(everything[index] for index in order[count:]),
        }
        parts = {part: (data / "labels", data / "images") for part in ("train", "val")}
    else:
        raise ExperimentError(f"{data}: expected train/ and val/ with labels/ and images/ each, or labels/ and images/")
    limits = {"train": settings.train_images, "val": settings.val_images}
    resolved = {}
    for part, (labels, images) in parts.items():
        chosen = keys[part][: limits[part]] if limits[part] else keys[part]
        if not chosen:
            raise ExperimentError(f"{labels}: no {part} label files")
        if chosen == keys[part] and labels == data / part / "labels":
            resolved[part] = (labels, images)
        else:
            _subset(labels, images, chosen, split / part)
            resolved[part] = (split / part / "labels", split / part / "images")
    return Folders(*resolved["train"], *resolved["val"], work)


def write_noisy_labels(labels: Path, out: Path, params: NoiseParams, seed: int) -> list[dict]:
    """A noisy copy of every label map under ``labels`` in ``out`` (same names, same format); one stats row each."""
    rows = []
    for key in iter_label_files(labels):
        label = read_label(labels / key)
        noisy = annotation_noise(label.indices, seed, key, params)
        write_bytes_atomic(out / key, encode_label(label, noisy), durable=False)
        rows.append({"label": key, "changed_fraction": float(np.mean(noisy != label.indices))})
    return rows


def noise_picture(clean: np.ndarray, noisy: np.ndarray) -> Image.Image:
    """Clean | noisy | changed pixels (white), side by side, in Cityscapes colours."""
    colours = colour_table()
    changed = np.where((clean != noisy)[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    gap = np.full((clean.shape[0], 4, 3), 255, np.uint8)
    return Image.fromarray(np.concatenate([colours[clean], gap, colours[noisy], gap, changed], axis=1))


# --- running the commands ------------------------------------------------------------------------------------------


def run_command(command: Command, log: Path) -> float:
    """Run one nsegaug command with its output in ``log``; its wall time in seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        handle.write(command.shell() + "\n\n")
        handle.flush()
        result = subprocess.run(
            list(command.argv), env={**os.environ, **dict(command.env)}, stdout=handle, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-8:]
        raise ExperimentError(f"{command.name} failed (exit {result.returncode}); see {log}:\n  " + "\n  ".join(tail))
    return time.perf_counter() - started


def run_all(commands: list[Command], folders: Folders, jobs: int, say) -> dict[str, float]:
    """Run ``commands`` ``jobs`` at a time; their wall times by name. The first failure stops the rest."""
    times: dict[str, float] = {}
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {pool.submit(run_command, command, folders.log(command.name)): command for command in commands}
        try:
            for done, future in enumerate(futures, start=1):
                command = futures[future]
                times[command.name] = future.result()
                say(f"[{done}/{len(commands)}] {command.name}: {times[command.name]:.0f} s")
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return times


def run_result(command: Command, run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {
        "condition": command.condition,
        "method": command.method,
        "seed": command.seed,
        "miou": metrics["miou"],
        "pixel_acc": metrics["pixel_acc"],
        "mean_acc": metrics["mean_acc"],
        "iou": metrics["iou"],
        "steps": metrics["steps"],
        "prob": metrics["prob"],
        "baseline": metrics["baseline"],
        "device": metrics["device"],
        "train_elapsed_s": metrics["train_elapsed_s"],
        "run_dir": shown(run_dir),
        "command": command.shell(),
    }


# --- the record ----------------------------------------------------------------------------------------------------


def machine() -> dict:
    """What ran it: CPU model and cores, GPU (if nvidia-smi finds one), versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = None
    if shutil.which("nvidia-smi"):
        query = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        gpu = ", ".join(line.strip() for line in query.stdout.splitlines() if line.strip()) or None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    versions = {}
    for package in ("nsegaug", "torch", "numpy", "opencv-python-headless", "pillow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": cores,
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def results_markdown(record: dict) -> str:
    """results.md: the command, the machine, the table, the noise, and every nsegaug command in order."""
    settings, noise, machine_info = record["settings"], record["noise"], record["machine"]
    where = f"{machine_info['cpu']}, {machine_info['cores']} cores" + (
        f", GPU {machine_info['gpu']}" if machine_info["gpu"] else ""
    )
    lines = [
        "# Robustness experiment: baseline vs NSegment+",
        "",
        "```bash",
        record["command"],
        "```",
        "",
        f"- preset `{record['preset']}`; device `{settings['device']}`; {where}; "
        f"torch {machine_info['versions']['torch']}",
        f"- wall time {record['elapsed_s'] / 60:.1f} min ({record['elapsed_s']:.0f} s), "
        f"{settings['jobs']} command(s) at a time, {settings['threads']} thread(s) each",
        f"- {record['data']['train_images']} training and {record['data']['val_images']} validation images; "
        f"U-Net width {settings['width']}, {settings['iters']} steps of batch {settings['batch_size']} "
        f"at {settings['crop'][0]}x{settings['crop'][1]}; {settings['copies']} copies per label, "
        f"p = {settings['prob']:g}",
        f"- noisy labels: {', '.join(noise['params']['models'])}; {100 * noise['changed_fraction_mean']:.2f}% of "
        f"pixels relabelled on average ({100 * noise['changed_fraction_min']:.2f}-"
        f"{100 * noise['changed_fraction_max']:.2f}% per map); validation labels: clean, never changed",
        "",
        "mIoU on the clean validation labels after the last step, mean ± std over seeds "
        "(the difference is paired by seed: same initial weights, data order and crops):",
        "",
        record["table"].rstrip(),
        "",
        "Commands, in order (the noisy labels are written by run.py itself, with `noise.py`):",
        "",
        "```bash",
        *(entry["shell"] for entry in record["commands"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_outputs(out: Path, record: dict, picture: Image.Image | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "results.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"), durable=False)
    write_bytes_atomic(out / "results.md", results_markdown(record).encode("utf-8"), durable=False)
    draw_chart(record["summary"]).save(out / "results.png", optimize=True)
    if picture is not None:
        picture.save(out / "noise.png", optimize=True)


# --- the command line ----------------------------------------------------------------------------------------------


def _seeds(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_seeds(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="The CPU preset (2 cores, under 15 minutes); default: the full GPU one.")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=EXAMPLE_DATA,
    show_default="examples/data",
    help="DATA/{train,val}/{labels,images}, or DATA/{labels,images} to split.",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/robustness"), show_default=True)
@click.option("--work", type=click.Path(path_type=Path), default=None, help="Copies and runs  [default: OUT/work].")
@click.option("--overwrite", is_flag=True, help="Remove the experiment's folders in --work and start again.")
@click.option("--seeds", callback=_seeds, default=None, help="Comma-separated seeds  [preset: 0,1,2].")
@click.option("--iters", type=click.IntRange(min=1), default=None, help="Training steps per run.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--crop", nargs=2, type=click.IntRange(min=1), default=None, help="Training crop H W.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="U-Net width.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--copies", type=click.IntRange(min=1), default=None, help="Deformed copies per training label.")
@click.option("--prob", type=click.FloatRange(0, 1), default=None, help="NSegment+'s chance of a deformed label.")
@click.option("--train-images", type=click.IntRange(min=1), default=None, help="Use the first N training images.")
@click.option("--val-images", type=click.IntRange(min=1), default=None, help="Use the first N validation images.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None)
@click.option("--num-classes", type=click.IntRange(min=1), default=None)
@click.option("--ignore-index", type=int, default=None)
@click.option("--noise-seed", type=click.IntRange(min=0), default=None, help="Seed of the noisy labels (and split).")
@click.option("--noise-models", default=",".join(MODELS), show_default=True, help="Comma-separated noise models.")
@click.option("--max-radius", type=click.IntRange(min=0), default=NoiseParams.max_radius, show_default=True)
@click.option("--max-epsilon", type=click.FloatRange(min=0), default=NoiseParams.max_epsilon, show_default=True)
@click.option(
    "--jitter-amplitude", type=click.FloatRange(min=0), default=NoiseParams.jitter_amplitude, show_default=True
)
@click.option(
    "--jitter-sigma", type=click.FloatRange(min=0, min_open=True), default=NoiseParams.jitter_sigma, show_default=True
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader workers per run.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads per process.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="nsegaug commands run side by side.")
def main(
    quick,
    data,
    out,
    work,
    overwrite,
    noise_models,
    max_radius,
    max_epsilon,
    jitter_amplitude,
    jitter_sigma,
    **overrides,
) -> None:
    """Baseline vs NSegment+ on clean and noisy training labels (3 seeds each by default), evaluated on clean labels."""
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    preset = "quick" if quick else "full"
    settings = Settings(**{**PRESETS[preset].to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
    try:
        params = NoiseParams(
            max_radius=max_radius,
            max_epsilon=max_epsilon,
            jitter_amplitude=jitter_amplitude,
            jitter_sigma=jitter_sigma,
            ignore_index=settings.ignore_index,
            models=tuple(name.strip() for name in noise_models.split(",") if name.strip()),
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    work = work if work is not None else out / "work"
    if any((work / part).exists() for part in WORK_PARTS):
        if not overwrite:
            raise click.UsageError(f"{work} holds an earlier experiment: pass --overwrite, or another --work")
        for part in WORK_PARTS:
            shutil.rmtree(work / part, ignore_errors=True)

    def say(message: str) -> None:
        click.echo(message, err=True)

    folders = prepare_folders(data, work, settings)
    say(f"preset {preset}: train {shown(folders.train_labels)}, validation {shown(folders.val_labels)} -> {shown(out)}")
    noise_rows = write_noisy_labels(folders.train_labels, folders.noisy_labels, params, settings.noise_seed)
    changed = [row["changed_fraction"] for row in noise_rows]
    say(f"noisy labels: {len(noise_rows)} maps, {100 * float(np.mean(changed)):.2f}% of pixels relabelled on average")
    first = noise_rows[0]["label"]
    picture = noise_picture(
        read_label(folders.train_labels / first).indices, read_label(folders.noisy_labels / first).indices
    )

    generates, trains = all_commands(sys.executable, folders, settings)
    times = run_all(generates, folders, settings.jobs, say)
    times |= run_all(trains, folders, settings.jobs, say)
    runs = [run_result(command, folders.run(command.condition, command.method, command.seed)) for command in trains]
    summary = summarize_runs(runs)
    table = markdown_table(summary)
    record = {
        "experiment": "baseline vs NSegment+ on clean and noisy training labels, mIoU on clean validation labels",
        "command": shlex.join(["python", shown(Path(__file__)), *sys.argv[1:]]),
        "preset": preset,
        "settings": settings.to_dict(),
        "noise": {
            "params": params.to_dict(),
            "seed": settings.noise_seed,
            "changed_fraction_mean": float(np.mean(changed)),
            "changed_fraction_min": float(np.min(changed)),
            "changed_fraction_max": float(np.max(changed)),
            "maps": noise_rows,
        },
        "data": {
            "root": shown(data),
            "train_labels": shown(folders.train_labels),
            "train_images_folder": shown(folders.train_images),
            "val_labels": shown(folders.val_labels),
            "val_images_folder": shown(folders.val_images),
            "train_images": len(noise_rows),
            "val_images": len(list(iter_label_files(folders.val_labels))),
        },
        "machine": machine(),
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - clock, 1),
        "commands": [
            {"name": command.name, "shell": command.shell(), "elapsed_s": round(times[command.name], 1)}
            for command in generates + trains
        ],
        "runs": runs,
        "summary": summary,
        "table": table,
    }
    write_outputs(out, record, picture)
    click.echo(table, nl=False)
    say(f"done in {record['elapsed_s'] / 60:.1f} min; wrote {', '.join(shown(out / name) for name in OUTPUTS)}")


if __name__ == "__main__":
    main()
