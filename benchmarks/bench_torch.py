"""Batched torch engine vs the CPU engine: ms per map, and their agreement on the same noise.

Both engines deform the same Cityscapes-like maps (``city_scene``, ignore
bands, ``ignore_index=255``) in one run, interleaved (every contender once
per round, the order rotating), so the ratio holds on a shared machine;
absolute figures do not. Each figure is the min and median over the rounds,
wall and CPU time (the process's, all threads).

- ``cpu engine``: ``nsegaug.deform.deform`` map by map, small-component
  labelling included (what a DataLoader worker does per map).
- ``torch``: ``nsegaug.torch.deform_batch`` on the whole batch on
  ``--device``, with the boxes found beforehand (in training they are found
  in the DataLoader workers).
- ``boxes``: that CPU cost, ``nsegaug.torch.component_boxes`` map by map;
  ``torch+boxes`` adds it in, as if done in the same process.
- ``agreement``: ``deform_batch_with_noise`` vs ``deform_with_noise`` with
  the same noise and pairs, fraction of equal pixels.

torch and OpenCV run on ``--threads`` threads (default: ``nsegaug._resources.cpus.threads_per_worker()``, what
``nsegaug train`` would choose here).

    python benchmarks/bench_torch.py --rounds 3         # CPU; writes benchmarks/results/torch.json
    python benchmarks/bench_torch.py --device cuda      # on a GPU
    python benchmarks/bench_torch.py --rounds 1 --quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import conditions, interleaved, print_conditions, print_load_after  # noqa: E402

import nsegaug.torch as nt  # noqa: E402
from nsegaug._resources.cpus import threads_per_worker  # noqa: E402
from nsegaug.deform import deform, deform_with_noise  # noqa: E402
from nsegaug.params import DEFAULT_ALPHA_SIGMA, DeformParams  # noqa: E402
from nsegaug.synthetic import city_scene  # noqa: E402

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


def contenders(maps: np.ndarray, device: torch.device) -> dict:
    """name -> a function of the round that deforms the whole batch once (or finds its boxes)."""
    boxes = [nt.component_boxes(segment, 1000, IGNORE_INDEX) for segment in maps]
    labels = torch.from_numpy(maps).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    deform(maps[0], np.random.RandomState(0), PARAMS)  # warm-up: OpenCV, the labelling thread
    nt.deform_batch(labels, generator, PARAMS, boxes=boxes)  # warm-up: kernels, allocator

    def cpu_engine(round_: int) -> None:
        for index, segment in enumerate(maps):
            deform(segment, np.random.RandomState(round_ * 1000 + index), PARAMS)

    def torch_engine(_: int) -> None:
        synchronize(device)
        nt.deform_batch(labels, generator, PARAMS, boxes=boxes)
        synchronize(device)

    def find_boxes(_: int) -> None:
        for segment in maps:
            nt.component_boxes(segment, 1000, IGNORE_INDEX)

    return {"cpu engine": cpu_engine, "torch": torch_engine, "boxes": find_boxes}


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


def bench_case(batch: int, height: int, width: int, device: torch.device, rounds: int) -> dict:
    maps = make_batch(batch, height, width)
    timings = interleaved(contenders(maps, device), rounds)
    ms = {name: timing.summary(1e3 / batch) for name, timing in timings.items()}  # per map
    ms["torch+boxes"] = {key: ms["torch"][key] + ms["boxes"][key] for key in ms["torch"] if key != "rounds"}
    ms["torch+boxes"]["rounds"] = rounds
    return {"batch": batch, "height": height, "width": width, "ms_per_map": ms, "agreement": agreement(maps, device)}


def print_case(row: dict) -> None:
    ms = row["ms_per_map"]
    print(f"\nbatch {row['batch']} x {row['height']}x{row['width']}; ms per map, {ms['torch']['rounds']} rounds")
    columns = ("wall min", "wall med", "CPU min", "CPU med")
    print(f"  {'contender':<12} " + " ".join(f"{column:>9}" for column in columns) + f" {'maps/s (wall min)':>18}")
    for name, figures in ms.items():
        print(
            f"  {name:<12} {figures['wall_min']:>9.1f} {figures['wall_median']:>9.1f} {figures['cpu_min']:>9.1f} "
            f"{figures['cpu_median']:>9.1f} {1e3 / figures['wall_min']:>18.2f}"
        )
    ratios = [f"{ms['cpu engine'][key] / ms['torch'][key]:.2f}x" for key in ("wall_min", "wall_median", "cpu_min")]
    print(
        f"  torch / cpu engine speed: wall {ratios[0]} (min) {ratios[1]} (median), CPU {ratios[2]} (min); "
        f"agreement {row['agreement']:.6f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="torch device for the batched engine (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all contenders, interleaved")
    parser.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads [default: as train's]")
    parser.add_argument("--quick", action="store_true", help="small maps only, for a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "torch.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    threads = args.threads or threads_per_worker()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    found = conditions(torch=torch.get_num_threads(), cv2=cv2.getNumThreads())
    found["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print_conditions(found)
    print(f"torch engine on {found['device']}")
    rows = [
        bench_case(batch, height, width, device, args.rounds)
        for batch, height, width in (QUICK_CASES if args.quick else CASES)
    ]
    for row in rows:
        print_case(row)
    print_load_after(found)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"conditions": found, "rounds": args.rounds, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
