"""Baseline vs NSegment+ on clean and on noisy training labels, evaluated on clean validation labels.

python examples/robustness/run.py --preset cpu     # the pre-registered CPU study (2 cores, at most 2 hours)
python examples/robustness/run.py --quick          # the pipeline check, test-sized
python examples/robustness/run.py --preset gpu     # the same study on one GPU, larger

Steps, each a command of its own (all in results.md): make the data
(``examples/make_sample_data.py``), make noisy training labels
(``nsegaug noise``), make NSegment+'s copies of the clean and the noisy
labels once per seed (``nsegaug generate``), train the baseline and
NSegment+ on each (``nsegaug train``, the same command but ``--baseline``),
then write OUT/results.json, results.md (tables and every command),
results.png (each seed's pair), curves.png (convergence) and noise.png.

A finished step is not done again: a rerun with the same --work skips the
finished commands and resumes an interrupted one, so the study can run in
parts. See README.md and PREREGISTRATION.md here.

Frozen: this runner reproduces the first study as it ran, so it is kept as it
was, internal imports included (``nsegaug._files.label_folders``; only their
paths follow the package). It is no example of nsegaug's Python API (see
``examples/python_api.py``), and a new study is ``nsegaug study`` (docs/study.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
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

from plan import (  # noqa: E402
    PRESETS,
    PYTHON,
    Command,
    Folders,
    Settings,
    all_commands,
    data_command,
    noise_command,
    parse_seeds,
    shown,
)
from report import (  # noqa: E402
    METRICS,
    convergence,
    convergence_verdict,
    draw_curves,
    draw_paired_chart,
    markdown_table,
    summarize_runs,
)

from nsegaug._files.label_folders import iter_label_files  # noqa: E402
from nsegaug.io import read_label  # noqa: E402
from nsegaug.manifest import (  # noqa: E402
    MANIFEST_NAME,
    META_NAME,
    NoiseRow,  # noqa: E402
    iter_rows,
    read_meta,
)
from nsegaug.palettes import colour_table  # noqa: E402
from nsegaug.storage import write_bytes_atomic  # noqa: E402

MAKE_DATA = Path(__file__).resolve().parents[1] / "make_sample_data.py"
OUTPUTS = ("results.json", "results.md", "results.png", "curves.png", "noise.png")
# The line a command's log ends with when it finished: its wall time in this invocation.
ELAPSED = "# study: elapsed_s "


class StudyError(click.ClickException):
    """The study cannot go on; the message says why (and names the log of a failed command)."""


# --- running commands, resumably -----------------------------------------------------------------------------------


def run_command(command: Command, log: Path, extra: tuple[str, ...] = ()) -> float:
    """Run one command with its output in ``log`` (appended: a resumed command keeps its history); wall time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    argv = [*command.argv, *extra]
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(shlex.join(["python", *argv[1:]]) + "\n\n")
        handle.flush()
        result = subprocess.run(argv, env={**os.environ, **dict(command.env)}, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-8:]
        raise StudyError(f"{command.name} failed (exit {result.returncode}); see {log}:\n  " + "\n  ".join(tail))
    seconds = time.perf_counter() - started
    with open(log, "a", encoding="utf-8") as handle:  # kept with the command: a later invocation sums the parts
        handle.write(f"\n{ELAPSED}{seconds:.1f}\n")
    return seconds


def logged_seconds(log: Path) -> float | None:
    """The wall time ``log`` records for its command, summed over the invocations that ran it (a command
    resumed after an interruption ran in parts; the part an interruption cut short is not counted)."""
    if not log.exists():
        return None
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    parts = []
    for line in (line for line in lines if line.startswith(ELAPSED)):
        try:
            parts.append(float(line[len(ELAPSED) :]))
        except ValueError:  # a line cut short by a kill: that part is not counted
            pass
    return round(sum(parts), 1) if parts else None


def finished(out: Path) -> bool:
    """Whether a generate or noise output folder holds a complete run."""
    meta = out / META_NAME
    return meta.exists() and read_meta(meta).complete


def run_job_command(command: Command, out: Path, folders: Folders) -> float | None:
    """A generate or noise command: skipped when its run is complete, resumed when it was interrupted."""
    if finished(out):
        return None
    resume = ("--resume",) if (out / META_NAME).exists() else ()
    return run_command(command, folders.log(command.name), resume)


def run_train_command(command: Command, out: Path, folders: Folders) -> float | None:
    """A training run: skipped when it wrote metrics.json, resumed from its last.pt when it was stopped."""
    if (out / "metrics.json").exists():
        return None
    resume = ("--resume",) if (out / "last.pt").exists() else ()
    return run_command(command, folders.log(command.name), resume)


def run_all(tasks: list, jobs: int, say) -> dict[str, float | None]:
    """Run ``(name, callable)`` tasks ``jobs`` at a time; their wall times (None: already done)."""
    times: dict[str, float | None] = {}
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {pool.submit(action): name for name, action in tasks}
        try:
            for done, future in enumerate(futures, start=1):
                name = futures[future]
                times[name] = future.result()
                what = "done before" if times[name] is None else f"{times[name]:.0f} s"
                say(f"[{done}/{len(tasks)}] {name}: {what}")
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return times


# --- the data and its noise ----------------------------------------------------------------------------------------


def labels_digest(folder: Path) -> str:
    """SHA-256 over the label files (path and bytes, in order): the same data makes the same digest anywhere."""
    digest = hashlib.sha256()
    for key in iter_label_files(folder):
        digest.update(key.encode("utf-8"))
        digest.update(hashlib.sha256((folder / key).read_bytes()).digest())
    return digest.hexdigest()


def make_data(folders: Folders, settings: Settings, say) -> dict:
    command = data_command(PYTHON, folders, settings, MAKE_DATA)
    if not (folders.val_labels.is_dir() and any(folders.val_labels.iterdir())):
        shutil.rmtree(folders.data, ignore_errors=True)
        folders.log(command.name).unlink(missing_ok=True)  # made again from scratch: its time starts again
        run_command(command, folders.log(command.name))
    train = len(list(iter_label_files(folders.labels("clean"))))
    val = len(list(iter_label_files(folders.val_labels)))
    if (train, val) != (settings.train_images, settings.val_images):
        raise StudyError(f"{folders.data} holds {train} + {val} maps, the preset {settings.train_images} + "
                         f"{settings.val_images}: remove it, or give another --work")  # fmt: skip
    say(f"data: {train} training and {val} validation maps in {shown(folders.data)}")
    return {
        "command": command.shell(),
        "train_images": train,
        "val_images": val,
        "train_labels_sha256": labels_digest(folders.labels("clean")),
        "val_labels_sha256": labels_digest(folders.val_labels),
    }


def make_noise(folders: Folders, settings: Settings, say) -> dict:
    command = noise_command(PYTHON, folders, settings)
    out = folders.labels("noisy")
    run_job_command(command, out, folders)
    rows = list(iter_rows(out / MANIFEST_NAME, row_type=NoiseRow))
    changed = [row.changed_fraction for row in rows]
    parameters = read_meta(out / META_NAME).parameters
    say(f"noise: {len(rows)} maps, {100 * float(np.mean(changed)):.2f}% of pixels changed on average")
    return {
        "command": command.shell(),
        "parameters": {key: value for key, value in parameters.items() if key not in ("labels", "images")},
        "changed_fraction_mean": float(np.mean(changed)),
        "changed_fraction_min": float(np.min(changed)),
        "changed_fraction_max": float(np.max(changed)),
        "maps": [{"label": row.label, "changed_fraction": row.changed_fraction} for row in rows],
    }


def noise_picture(folders: Folders, key: str) -> Image.Image:
    """Clean | noisy | changed pixels (white) of one training map, side by side, enlarged twice."""
    clean = read_label(folders.labels("clean") / key).indices
    noisy = read_label(folders.labels("noisy") / key).indices
    colours = colour_table()
    changed = np.where((clean != noisy)[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    gap = np.full((clean.shape[0], 4, 3), 255, np.uint8)
    strip = np.concatenate([colours[clean], gap, colours[noisy], gap, changed], axis=1)
    return Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.Resampling.NEAREST)


# --- results -------------------------------------------------------------------------------------------------------


def run_result(command: Command, run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    kept = ("step", "epoch", "miou", "boundary_miou", "band_miou", "pixel_acc", "train_loss", "elapsed_s")
    return {
        "condition": command.condition,
        "method": command.method,
        "seed": command.seed,
        **{metric: metrics[metric] for metric in METRICS},
        "pixel_acc": metrics["pixel_acc"],
        "iou": metrics["iou"],
        "boundary_iou": metrics["boundary_iou"],
        "band_iou": metrics["band_iou"],
        "steps": metrics["steps"],
        "prob": metrics["prob"],
        "baseline": metrics["baseline"],
        "device": metrics["device"],
        "train_elapsed_s": metrics["train_elapsed_s"],
        "evals": [{key: row.get(key) for key in kept} for row in evals],
        "convergence": convergence(evals, metrics["steps"]),
        "run_dir": shown(run_dir),
        "command": command.shell(),
    }


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
    for package in ("nsegaug", "torch", "numpy", "opencv-python-headless", "pillow", "scipy"):
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
    """results.md: the command, the machine, the tables, convergence, and every command in order."""
    settings, machine_info, verdict = record["settings"], record["machine"], record["convergence"]
    where = f"{machine_info['cpu']}, {machine_info['cores']} cores" + (
        f", GPU {machine_info['gpu']}" if machine_info["gpu"] else ""
    )
    seeds = ", ".join(
        f"seed {seed}: {entry['final']:.4f} ({entry['last_quarter_change']:+.2f} pts)"
        for seed, entry in sorted(verdict["seeds"].items())
    )
    lines = [
        "# Robustness study: baseline vs NSegment+",
        "",
        "```bash",
        record["command"],
        "```",
        "",
        f"- preset `{record['preset']}`; {where}; torch {machine_info['versions']['torch']}; "
        f"wall time {record['total_elapsed_s'] / 60:.1f} min ({len(record['invocations'])} invocation(s) of run.py), "
        f"{settings['jobs']} command(s) at a time, {settings['threads']} thread(s) each",
        f"- {record['data']['train_images']} training and {record['data']['val_images']} validation maps of "
        f"{settings['height']}x{settings['width_px']}, {settings['num_classes']} classes; U-Net width "
        f"{settings['model_width']}, {settings['epochs']} epochs of batch {settings['batch_size']}, "
        f"{settings['schedule']} lr {settings['lr']:g}; {settings['copies']} copies per label, "
        f"p = {settings['prob']:g}; "
        f"boundary width {settings['boundary_width']} px",
        f"- noisy training labels: {100 * record['noise']['changed_fraction_mean']:.2f}% of pixels changed on average "
        f"({100 * record['noise']['changed_fraction_min']:.2f}-{100 * record['noise']['changed_fraction_max']:.2f}% "
        "per map); validation labels: clean, never changed",
        f"- convergence of the clean-label baseline ({verdict['criteria']}): "
        f"plateau {'yes' if verdict['plateau'] else 'NO'}, "
        f"minimum mIoU {'yes' if verdict['reached_min_miou'] else 'NO'}; "
        f"{seeds}",
        "",
        "On the clean validation labels after the last step, mean ± std over seeds; the difference is paired by seed "
        "(same initial weights, data order and crops), its interval Student's t with n - 1 degrees of freedom:",
        "",
        record["table"].rstrip(),
        "",
        "Commands, in order:",
        "",
        "```bash",
        *(entry["shell"] for entry in record["commands"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_outputs(out: Path, record: dict, summaries: dict, runs: list[dict], picture: Image.Image) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "results.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"), durable=False)
    write_bytes_atomic(out / "results.md", results_markdown(record).encode("utf-8"), durable=False)
    title = "clean validation labels: each seed's baseline (left) and NSegment+ (right)"
    draw_paired_chart(summaries, title).save(out / "results.png", optimize=True)
    draw_curves(runs).save(out / "curves.png", optimize=True)
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
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="cpu", show_default=True)
@click.option("--quick", is_flag=True, help="The pipeline check (--preset quick).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out/robustness"), show_default=True)
@click.option(
    "--work", type=click.Path(path_type=Path), default=None, help="Data, copies and runs  [default: OUT/work]."
)
@click.option("--overwrite", is_flag=True, help="Remove --work and start again (instead of going on from it).")
@click.option("--seeds", callback=_seeds, default=None, help="Comma-separated seeds  [default: the preset's].")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Commands run side by side  [preset's].")
def main(preset, quick, out, work, overwrite, seeds, jobs) -> None:
    """Baseline vs NSegment+ on clean and noisy training labels, mIoU and boundary metrics on clean labels."""
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    preset = "quick" if quick else preset
    settings = PRESETS[preset]
    if seeds is not None or jobs is not None:
        settings = dataclasses.replace(
            settings, **({"seeds": seeds} if seeds else {}), **({"jobs": jobs} if jobs else {})
        )
    work = work if work is not None else out / "work"
    if overwrite:
        shutil.rmtree(work, ignore_errors=True)
    folders = Folders(work)

    def say(message: str) -> None:
        click.echo(message, err=True)

    data = make_data(folders, settings, say)
    noise = make_noise(folders, settings, say)
    generates, trains = all_commands(PYTHON, folders, settings)
    tasks = [(c.name, lambda c=c: run_job_command(c, folders.copies(c.condition, c.seed), folders)) for c in generates]
    run_all(tasks, settings.jobs, say)
    tasks = [
        (c.name, lambda c=c: run_train_command(c, folders.run(c.condition, c.method, c.seed), folders)) for c in trains
    ]
    run_all(tasks, settings.jobs, say)

    runs = [run_result(command, folders.run(command.condition, command.method, command.seed)) for command in trains]
    summaries = {metric: summarize_runs(runs, metric) for metric in METRICS}
    table = markdown_table(summaries)
    shells = [("data", data["command"]), ("noise", noise["command"])]
    shells += [(c.name, c.shell()) for c in generates + trains]
    commands = [
        {"name": name, "shell": shell, "elapsed_s": logged_seconds(folders.log(name))} for name, shell in shells
    ]
    record = {
        "study": "baseline vs NSegment+ on clean and noisy training labels; metrics on clean validation labels",
        "preregistration": "examples/robustness/PREREGISTRATION.md",
        "command": shlex.join(["python", shown(Path(__file__)), *sys.argv[1:]]),
        "preset": preset,
        "settings": settings.to_dict(),
        "data": data,
        "noise": noise,
        "machine": machine(),
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - clock, 1),
        "commands": commands,
        "runs": runs,
        "summaries": summaries,
        "convergence": convergence_verdict(runs),
        "table": table,
    }
    previous = out / "results.json"
    invocations = []
    if previous.exists() and not overwrite:  # a study finished in parts: every command's time, and every part's
        earlier = json.loads(previous.read_text())
        times_before = {entry["name"]: entry["elapsed_s"] for entry in earlier["commands"]}
        for entry in record["commands"]:
            entry["elapsed_s"] = (
                entry["elapsed_s"] if entry["elapsed_s"] is not None else times_before.get(entry["name"])
            )
        invocations = earlier.get("invocations", [])
    record["invocations"] = [*invocations, {"started": record["started"], "elapsed_s": record["elapsed_s"]}]
    record["total_elapsed_s"] = round(sum(part["elapsed_s"] for part in record["invocations"]), 1)
    write_outputs(out, record, summaries, runs, noise_picture(folders, noise["maps"][0]["label"]))
    click.echo(table, nl=False)
    say(f"done in {record['elapsed_s'] / 60:.1f} min; wrote {', '.join(shown(out / name) for name in OUTPUTS)}")


if __name__ == "__main__":
    main()
