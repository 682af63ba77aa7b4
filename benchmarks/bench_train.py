"""Training throughput: images/s of the data pipeline (DataLoader) and of the training step, measured apart.

The data pipeline is ``nsegaug train``'s own: read the JPEG and the chosen
label PNG, joint scale/crop/flip, collate, through a DataLoader with
``--workers`` processes. The training step is forward + backward + optimizer
step of the U-Net on one batch kept on the device (so the loader does not
limit it), with AMP and channels_last on CUDA as ``nsegaug train`` uses them.
Training runs at about the smaller of the two figures.

    python benchmarks/bench_train.py                                  # CPU, batch 8, crop 256x256, width 32
    python benchmarks/bench_train.py --quick                          # small and short: batch 2, crop 128, width 8
    python benchmarks/bench_train.py --device cuda --amp --batch-size 16 --crop 512 512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from nsegaug import __version__
from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.generated import load_manifest
from nsegaug.manifest import MANIFEST_NAME
from nsegaug.train.config import MEAN, STD
from nsegaug.train.data import EpochBatchSampler, SegmentationDataset, train_loader
from nsegaug.train.loop import launched_processes, pick_device, to_device, train_step
from nsegaug.train.model import build_model, count_parameters

ROOT = Path(__file__).resolve().parents[1]
PREFETCH = 4  # batches each DataLoader worker keeps ready (nsegaug.train.data.train_loader)
EXAMPLES = ROOT / "examples" / "data" / "train"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="CUDA only")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--width", type=int, default=32, help="U-Net width")
    parser.add_argument("--workers", type=int, default=min(4, len(os.sched_getaffinity(0))))
    parser.add_argument("--batches", type=int, default=40, help="measured batches of the data pipeline")
    parser.add_argument("--steps", type=int, default=10, help="measured training steps")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured steps/batches first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in this process (CPU)")
    parser.add_argument("--manifest", type=Path, default=None, help="a generate manifest; default: the example data")
    parser.add_argument("--quick", action="store_true", help="batch 2, crop 128x128, width 8, 100 batches, 20 steps")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train.json")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.batch_size, arguments.crop, arguments.width = 2, (128, 128), 8
        arguments.batches, arguments.steps, arguments.warmup = 100, 20, 3
    return arguments


def example_manifest(folder: Path) -> Path:
    """The example training set with 2 copies per label, as ``nsegaug generate`` writes it."""
    config = GenerateConfig(labels=EXAMPLES / "labels", images=EXAMPLES / "images", out=folder, copies=2, jobs=2)
    generate_dataset(config, log=lambda message: None)
    return folder / MANIFEST_NAME


def data_pipeline(manifest: Path, arguments) -> dict:
    data = load_manifest(manifest)
    dataset = SegmentationDataset(data.samples, train=True, prob=0.5, crop=tuple(arguments.crop), normalize=False)
    sampler = EpochBatchSampler(len(dataset), arguments.batch_size, seed=0)
    loader = iter(train_loader(dataset, sampler, arguments.workers, pin_memory=False, seed=0))
    # The workers start up and fill their queues (PREFETCH batches each) before the first timed batch;
    # those queued batches come out at once, so timing starts once they are drained.
    backlog = arguments.warmup + PREFETCH * arguments.workers
    for _ in range(backlog):
        next(loader)
    start = time.perf_counter()
    for _ in range(arguments.batches):
        next(loader)
    seconds = time.perf_counter() - start
    return {
        "images": len(dataset),
        "workers": arguments.workers,
        "batches": arguments.batches,
        "seconds": round(seconds, 3),
        "images_per_s": round(arguments.batches * arguments.batch_size / seconds, 2),
    }


def training_step(arguments) -> dict:
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

    run(arguments.warmup)
    start = time.perf_counter()
    run(arguments.steps)
    seconds = time.perf_counter() - start
    return {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "amp": amp,
        "channels_last": cuda,
        "parameters": count_parameters(model),
        "steps": arguments.steps,
        "seconds": round(seconds, 3),
        "images_per_s": round(arguments.steps * arguments.batch_size / seconds, 2),
    }


def main() -> None:
    arguments = parse_arguments()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    with tempfile.TemporaryDirectory() as temporary:
        manifest = arguments.manifest or example_manifest(Path(temporary) / "generated")
        pipeline = data_pipeline(manifest, arguments)
    step = training_step(arguments)
    result = {
        "nsegaug": __version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "parameters": {
            "batch_size": arguments.batch_size,
            "crop": list(arguments.crop),
            "width": arguments.width,
            "manifest": str(arguments.manifest) if arguments.manifest else "examples/data/train, 2 copies",
        },
        "data_pipeline": pipeline,
        "train_step": step,
    }
    print(
        f"data pipeline: {pipeline['images_per_s']:.1f} images/s ({pipeline['workers']} workers, "
        f"batch {arguments.batch_size}, crop {arguments.crop[0]}x{arguments.crop[1]})"
    )
    print(
        f"training step: {step['images_per_s']:.1f} images/s on {step['device']} "
        f"(AMP {'on' if step['amp'] else 'off'}, "
        f"U-Net width {arguments.width}, {step['parameters'] / 1e6:.2f}M parameters, {result['torch_threads']} threads)"
    )
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
