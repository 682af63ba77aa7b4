"""Training throughput: the data pipeline (DataLoader) and the training step, measured apart; the step with
1 thread against the default thread choice of ``nsegaug train``, in one run.

The data pipeline is ``nsegaug train``'s own: read the JPEG and the chosen
label PNG, joint scale/crop/flip, collate, through a DataLoader with
``--workers`` processes (one thread each). The training step is forward +
backward + optimizer step of the U-Net on one batch kept on the device (so the
loader does not limit it), with AMP and channels_last on CUDA as ``nsegaug
train`` uses them. Training runs at about the smaller of the two figures.

The step's contenders are torch thread counts (``--threads``: ``1,default``
unless told; ``default`` is ``nsegaug._resources.cpus.threads_per_worker()``, what
``nsegaug train`` chooses from the CPUs this process may use), interleaved:
every contender runs ``--steps`` steps once per round, the order rotating.
Figures are min and median over the rounds, wall and CPU time (the process's,
all threads). On a machine whose cores are busy with other work, more threads
than the process's share of the CPUs take turns: CPU time per step grows.

    python benchmarks/bench_train.py --quick                          # batch 2, crop 128x128, width 8
    python benchmarks/bench_train.py                                  # CPU, batch 8, crop 256x256, width 32
    python benchmarks/bench_train.py --threads 1,2,4                  # other thread counts
    python benchmarks/bench_train.py --device cuda --amp --batch-size 16 --crop 512 512
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timings, conditions, interleaved, print_conditions, print_load_after, timed  # noqa: E402

from nsegaug._resources.cpus import threads_per_worker  # noqa: E402
from nsegaug.generate import GenerateConfig, generate_dataset  # noqa: E402
from nsegaug.manifest import MANIFEST_NAME, open_generated  # noqa: E402
from nsegaug.train.config import MEAN, STD  # noqa: E402
from nsegaug.train.data import EpochBatchSampler, SegmentationDataset, train_loader  # noqa: E402
from nsegaug.train.loop import launched_processes, pick_device, to_device, train_step  # noqa: E402
from nsegaug.train.model import build_model, count_parameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PREFETCH = 4  # batches each DataLoader worker keeps ready (nsegaug.train.data.train_loader)
EXAMPLES = ROOT / "examples" / "data" / "train"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="CUDA only")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--width", type=int, default=32, help="U-Net width")
    parser.add_argument("--workers", type=int, default=min(4, threads_per_worker()), help="DataLoader workers")
    parser.add_argument("--batches", type=int, default=20, help="batches of the data pipeline per round")
    parser.add_argument("--steps", type=int, default=3, help="training steps per contender and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (interleaved for the step's contenders)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps/batches first")
    parser.add_argument("--threads", default="1,default", help="torch thread counts of the step, e.g. 1,2,default")
    parser.add_argument("--manifest", type=Path, default=None, help="a generate manifest; default: the example data")
    parser.add_argument(
        "--quick", action="store_true", help="batch 2, crop 128x128, width 8; 10 steps, 100 batches a round"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train.json")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.batch_size, arguments.crop, arguments.width, arguments.steps = 2, (128, 128), 8, 10
        arguments.batches = 100
    return arguments


def thread_counts(spec: str) -> dict[str, int]:
    """``1,default`` -> {"1 thread": 1, "default (2 threads)": 2}: the step's contenders."""
    default = threads_per_worker()
    counts = {}
    for item in spec.split(","):
        count = default if item.strip() == "default" else int(item)
        name = f"{count} thread{'s' if count != 1 else ''}"
        counts[f"default ({name})" if item.strip() == "default" else name] = count
    return counts


def example_manifest(folder: Path) -> Path:
    """The example training set with 2 copies per label, as ``nsegaug generate`` writes it."""
    config = GenerateConfig(labels=EXAMPLES / "labels", images=EXAMPLES / "images", out=folder, copies=2, jobs=2)
    generate_dataset(config, log=lambda message: None)
    return folder / MANIFEST_NAME


def data_pipeline(manifest: Path, arguments) -> dict:
    """Images/s of the DataLoader; CPU time is this process's only (the workers' is not counted)."""
    samples = open_generated(manifest).samples()
    dataset = SegmentationDataset(samples, train=True, prob=0.5, crop=tuple(arguments.crop), normalize=False)
    sampler = EpochBatchSampler(len(dataset), arguments.batch_size, seed=0)
    loader = iter(train_loader(dataset, sampler, arguments.workers, pin_memory=False, seed=0))
    # The workers start up and fill their queues (PREFETCH batches each) before the first timed batch;
    # those queued batches come out at once, so timing starts once they are drained.
    for _ in range(arguments.warmup + PREFETCH * arguments.workers):
        next(loader)
    timings = Timings()
    for _ in range(arguments.rounds):
        wall, cpu, _ = timed(lambda: [next(loader) for _ in range(arguments.batches)])
        timings.add(wall, cpu)
    images = arguments.batches * arguments.batch_size
    summary = timings.summary()
    return {
        "images": len(dataset),
        "workers": arguments.workers,
        "batches_per_round": arguments.batches,
        "seconds": summary,
        "images_per_s_best": round(images / summary["wall_min"], 2),
        "images_per_s_median": round(images / summary["wall_median"], 2),
    }


def training_steps(arguments, counts: dict[str, int]) -> dict:
    """The step's figures per thread count: ms per step (min, median; wall, CPU) and images/s."""
    device = pick_device(arguments.device, launched_processes())
    cuda = device.type == "cuda"
    amp = arguments.amp and cuda
    torch.manual_seed(0)
    model = build_model("unet", 19, arguments.width).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (arguments.batch_size, 3, *arguments.crop), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 19, (arguments.batch_size, *arguments.crop), generator=generator)
    images, labels = to_device(images, labels, device, MEAN, STD)

    def run(steps: int) -> float:
        for _ in range(steps):
            loss = train_step(model, optimizer, scaler, images, labels, 255, amp)
        return float(loss)  # waits for the device

    def contender(threads: int):
        def steps(_: int) -> float:
            torch.set_num_threads(threads)
            return run(arguments.steps)

        return steps

    for threads in set(counts.values()):  # warm-up at each count: thread pools, allocator
        torch.set_num_threads(threads)
        run(arguments.warmup)
    timings = interleaved({name: contender(threads) for name, threads in counts.items()}, arguments.rounds)
    rows = {}
    for name, timing in timings.items():
        ms = timing.summary(1e3 / arguments.steps)
        rows[name] = {
            "threads": counts[name],
            "ms_per_step": ms,
            "images_per_s_best": round(arguments.batch_size * 1e3 / ms["wall_min"], 2),
            "images_per_s_median": round(arguments.batch_size * 1e3 / ms["wall_median"], 2),
        }
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "amp": amp,
        "channels_last": cuda,
        "parameters": count_parameters(model),
        "steps_per_round": arguments.steps,
        "contenders": rows,
    }


def print_results(pipeline: dict, step: dict, arguments) -> None:
    seconds = pipeline["seconds"]
    print(
        f"data pipeline: {pipeline['images_per_s_best']:.1f} images/s best, {pipeline['images_per_s_median']:.1f} "
        f"median ({pipeline['workers']} workers, batch {arguments.batch_size}, crop {arguments.crop[0]}x"
        f"{arguments.crop[1]}; {arguments.rounds} rounds of {arguments.batches} batches; this process's CPU "
        f"{seconds['cpu_median']:.2f} s of {seconds['wall_median']:.2f} s wall, median)"
    )
    print(
        f"training step on {step['device']} (AMP {'on' if step['amp'] else 'off'}, U-Net width {arguments.width}, "
        f"{step['parameters'] / 1e6:.2f}M parameters, batch {arguments.batch_size}, crop {arguments.crop[0]}x"
        f"{arguments.crop[1]}); ms per step over {arguments.rounds} rounds of {step['steps_per_round']} steps:"
    )
    columns = ("wall min", "wall med", "CPU min", "CPU med")
    print(f"  {'threads':<22} " + " ".join(f"{column:>9}" for column in columns) + "  images/s (best, median)")
    for name, row in step["contenders"].items():
        ms = row["ms_per_step"]
        print(
            f"  {name:<22} {ms['wall_min']:>9.1f} {ms['wall_median']:>9.1f} {ms['cpu_min']:>9.1f} "
            f"{ms['cpu_median']:>9.1f}  {row['images_per_s_best']:.1f}, {row['images_per_s_median']:.1f}"
        )
    rows = list(step["contenders"].values())
    names = list(step["contenders"])
    for name, row in zip(names[1:], rows[1:], strict=True):
        first, other = rows[0]["ms_per_step"], row["ms_per_step"]
        print(
            f"  {name} / {names[0]} speed: wall {first['wall_min'] / other['wall_min']:.2f}x (min) "
            f"{first['wall_median'] / other['wall_median']:.2f}x (median); CPU per step "
            f"{other['cpu_median'] / first['cpu_median']:.2f}x (median)"
        )


def main() -> None:
    arguments = parse_arguments()
    counts = thread_counts(arguments.threads)
    found = conditions(default_threads=threads_per_worker(), dataloader_worker_threads=1)
    print_conditions(found)
    with tempfile.TemporaryDirectory() as temporary:
        manifest = arguments.manifest or example_manifest(Path(temporary) / "generated")
        pipeline = data_pipeline(manifest, arguments)
    step = training_steps(arguments, counts)
    print_results(pipeline, step, arguments)
    print_load_after(found)
    result = {
        "conditions": found,
        "parameters": {
            "batch_size": arguments.batch_size,
            "crop": list(arguments.crop),
            "width": arguments.width,
            "rounds": arguments.rounds,
            "manifest": str(arguments.manifest) if arguments.manifest else "examples/data/train, 2 copies",
        },
        "data_pipeline": pipeline,
        "train_step": step,
    }
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
