"""Batched torch engine vs the CPU engine: maps/s, and their agreement on the same noise.

Both engines deform the same Cityscapes-like maps (``city_scene``, ignore
bands, ``ignore_index=255``) in one run, so the ratio holds on a shared
machine; absolute figures do not.

- ``cpu engine``: ``nsegaug.deform.deform`` map by map, small-component
  labelling included (what a DataLoader worker does per map).
- ``torch``: ``nsegaug.torch.deform_batch`` on the whole batch on
  ``--device``, with the boxes found beforehand (in training they are found
  in the DataLoader workers); ``boxes ms/map`` is that CPU cost, and
  ``torch+boxes`` counts it in, as if done in the same process.
- ``agreement``: ``deform_batch_with_noise`` vs ``deform_with_noise`` with
  the same noise and pairs, fraction of equal pixels.

    python benchmarks/bench_torch.py                   # CPU; writes benchmarks/results/torch.json
    python benchmarks/bench_torch.py --device cuda     # on a GPU
    python benchmarks/bench_torch.py --repeats 1 --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import nsegaug.torch as nt
from nsegaug import __version__
from nsegaug.deform import deform, deform_with_noise
from nsegaug.params import DEFAULT_ALPHA_SIGMA, DeformParams
from nsegaug.synthetic import city_scene

ROOT = Path(__file__).resolve().parents[1]
CASES = [(8, 1024, 2048), (16, 512, 512)]  # (batch, height, width)
QUICK_CASES = [(4, 256, 512), (8, 128, 128)]
IGNORE_INDEX = 255
PARAMS = DeformParams(ignore_index=IGNORE_INDEX)


def make_batch(batch: int, height: int, width: int) -> np.ndarray:
    objects = max(4, height * width // 40_000)
    return np.stack([city_scene(height, width, objects, seed=(height, width, i), ignore_band=2) for i in range(batch)])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_cpu_engine(maps: np.ndarray, repeats: int) -> float:
    deform(maps[0], np.random.RandomState(0), PARAMS)  # warm-up: OpenCV, the labelling thread
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        for index, segment in enumerate(maps):
            deform(segment, np.random.RandomState(repeat * 1000 + index), PARAMS)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_torch_engine(maps: np.ndarray, device: torch.device, repeats: int) -> tuple[float, float]:
    """Median seconds per batch on the device, and seconds to find all boxes on the CPU."""
    start = time.perf_counter()
    boxes = [nt.component_boxes(segment, 1000, IGNORE_INDEX) for segment in maps]
    boxes_s = time.perf_counter() - start
    labels = torch.from_numpy(maps).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    nt.deform_batch(labels, generator, PARAMS, boxes=boxes)  # warm-up: kernels, allocator
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        nt.deform_batch(labels, generator, PARAMS, boxes=boxes)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), boxes_s


def agreement(maps: np.ndarray, device: torch.device) -> float:
    """Equal pixels between the engines on the same noise, each map with its own pair from the paper's list."""
    rng = np.random.RandomState(1)
    noise_x, noise_y = rng.rand(*maps.shape), rng.rand(*maps.shape)
    pairs = [DEFAULT_ALPHA_SIGMA[i] for i in rng.randint(0, len(DEFAULT_ALPHA_SIGMA), len(maps))]
    alphas, sigmas = zip(*pairs, strict=True)
    deformed, _ = nt.deform_batch_with_noise(
        torch.from_numpy(maps).to(device),
        torch.from_numpy(noise_x).to(device),
        torch.from_numpy(noise_y).to(device),
        alphas,
        sigmas,
        PARAMS,
    )
    deformed = deformed.cpu().numpy()
    equal = sum(
        np.count_nonzero(deformed[i] == deform_with_noise(maps[i], noise_x[i], noise_y[i], *pairs[i], PARAMS).segment)
        for i in range(len(maps))
    )
    return equal / maps.size


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device for the batched engine (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per engine and case (median reported)")
    parser.add_argument("--quick", action="store_true", help="small maps only, for a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "torch.json")
    args = parser.parse_args()
    device = torch.device(args.device)

    rows = []
    header = (
        f"{'batch':>5} {'size':>10} {'cpu engine maps/s':>17} {'torch maps/s':>12} {'boxes ms/map':>12} "
        f"{'torch+boxes maps/s':>18} {'speedup':>7} {'agreement':>10}"
    )
    print(f"torch {torch.__version__} on {device} ({device_name(device)}); cv2 threads {cv2.getNumThreads()}")
    print(header)
    for batch, height, width in QUICK_CASES if args.quick else CASES:
        maps = make_batch(batch, height, width)
        cpu_s = time_cpu_engine(maps, args.repeats)
        torch_s, boxes_s = time_torch_engine(maps, device, args.repeats)
        row = {
            "batch": batch,
            "height": height,
            "width": width,
            "cpu_engine_maps_per_s": batch / cpu_s,
            "torch_maps_per_s": batch / torch_s,
            "boxes_ms_per_map": boxes_s / batch * 1e3,
            "torch_with_boxes_maps_per_s": batch / (torch_s + boxes_s),
            "speedup_torch_vs_cpu_engine": cpu_s / torch_s,
            "agreement": agreement(maps, device),
        }
        rows.append(row)
        print(
            f"{batch:>5} {f'{height}x{width}':>10} {row['cpu_engine_maps_per_s']:>17.2f} "
            f"{row['torch_maps_per_s']:>12.2f} {row['boxes_ms_per_map']:>12.1f} "
            f"{row['torch_with_boxes_maps_per_s']:>18.2f} {row['speedup_torch_vs_cpu_engine']:>6.2f}x "
            f"{row['agreement']:>10.6f}"
        )

    result = {
        "nsegaug": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "cv2_threads": cv2.getNumThreads(),
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
