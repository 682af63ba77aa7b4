"""The GPU path in five minutes: the torch engine and `nsegaug train`/`evaluate` on one GPU, each check PASS or FAIL.

For a person with one GPU (the project's own machine has none):

    python benchmarks/gpu_smoke.py                            # cuda, 8 x 1024 x 2048 maps; under 5 minutes
    python benchmarks/gpu_smoke.py --json gpu_smoke.json      # also the summary as JSON (commit it with the GPU model)
    python benchmarks/gpu_smoke.py --device cpu --small       # the same checks on the CPU, small sizes (the test suite)

The engine, on the device (``--small``: 4 x 128 x 256 maps):

- peak device memory of ``deform_batch`` on 8 x 1024 x 2048 uint8 maps (info);
- same seed, same maps (two generators of the same seed);
- agreement >= 99.99 % with the CPU engine on the same noise, for both blurs (``conv`` runs without TF32);
- uint16 labels at p = 0.5 (maps the coin leaves alone kept, the same maps as int64 labels);
- a CPU generator with labels on the device: the maps the CPU gives for the same draws (>= 99.99 %);
- host syncs of ``deform_batch`` with a host generator, counted with ``torch.cuda.set_sync_debug_mode`` (CUDA
  only; must be 0);
- maps/s of the torch engine against the CPU engine (info; goal on an H100-class GPU: 1,000 maps/s at 1024x2048).

Then the commands, each a real process: ``nsegaug generate`` on ``examples/data``, ``nsegaug train --online``
(AMP on, its default) for a few steps then ``--resume`` for a few more, offline training with ``--no-amp``,
``nsegaug evaluate best.pt`` against the best mIoU the run recorded, and every command's stderr searched for
warnings and tracebacks. Prints one line per check and a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import nsegaug.torch as nt
from nsegaug import __version__
from nsegaug.deform import deform, deform_with_noise
from nsegaug.params import DEFAULT_ALPHA_SIGMA, DeformParams
from nsegaug.synthetic import city_scene
from nsegaug.train.distributed import device_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "data"
PARAMS = DeformParams(ignore_index=255)
AGREEMENT = 0.9999
MAPS_PER_S_GOAL = 1000  # at 1024x2048 on one H100-class GPU (the goal; information, not a check)
# A line of a command's stderr that means something went wrong, whatever the exit code.
TROUBLE = re.compile(r"warning|traceback|error", re.IGNORECASE)


@dataclass(frozen=True)
class Sizes:
    """How big each part is: full on a GPU, small for the CPU."""

    batch: int
    height: int
    width: int
    copies: int  # generate's copies per label
    train: tuple[str, ...]  # nsegaug train's size options
    online_steps: tuple[int, int]  # steps before and after --resume
    offline_steps: int
    val_images: int  # validation images used (of 20)
    workers: int  # DataLoader workers of nsegaug train


FULL = Sizes(8, 1024, 2048, 2, ("--batch-size", "8", "--crop", "256", "512", "--width", "32"), (10, 20), 10, 20, 4)
SMALL = Sizes(4, 128, 256, 1, ("--batch-size", "2", "--crop", "64", "64", "--width", "4"), (2, 3), 2, 4, 0)


@dataclass
class Check:
    name: str
    status: str  # PASS, FAIL or INFO
    detail: str


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- the engine --------------------------------------------------------------------------------------------------


def city_maps(sizes: Sizes) -> np.ndarray:
    objects = max(4, sizes.height * sizes.width // 40_000)
    return np.stack(
        [city_scene(sizes.height, sizes.width, objects, seed=(7, i), ignore_band=2) for i in range(sizes.batch)]
    )


def check_memory_and_seed(maps: np.ndarray, boxes: list, device: torch.device) -> list[Check]:
    labels = torch.from_numpy(maps).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first, _ = nt.deform_batch(labels, boxes=boxes, **drawing(device, 0))
    again, _ = nt.deform_batch(labels, boxes=boxes, **drawing(device, 0))
    other, _ = nt.deform_batch(labels, boxes=boxes, **drawing(device, 1))
    synchronize(device)
    shape = "x".join(map(str, maps.shape))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        memory = Check("peak memory", "INFO", f"{peak:.0f} MiB for {shape} uint8 maps, p = 1")
    else:
        memory = Check("peak memory", "INFO", "measured on CUDA only")
    same = torch.equal(first, again) and not torch.equal(first, other)
    return [memory, Check("same seed, same maps", "PASS" if same else "FAIL", f"{shape}, seeds 0, 0 and 1")]


def drawing(device: torch.device, seed: int, prob: float = 1.0) -> dict:
    """deform_batch's generator on ``device``, params and prob, and off the CPU a host generator (as nsegaug train)."""
    host = torch.Generator().manual_seed(seed) if device.type != "cpu" else None
    generator = torch.Generator(device=device).manual_seed(seed)
    return {"generator": generator, "params": PARAMS, "prob": prob, "host_generator": host}


def check_agreement(maps: np.ndarray, boxes: list, device: torch.device) -> list[Check]:
    rng = np.random.RandomState(1)
    noise_x, noise_y = rng.rand(*maps.shape), rng.rand(*maps.shape)
    pairs = [DEFAULT_ALPHA_SIGMA[i] for i in rng.randint(0, len(DEFAULT_ALPHA_SIGMA), len(maps))]
    expected = np.stack(
        [deform_with_noise(maps[i], noise_x[i], noise_y[i], *pairs[i], PARAMS).segment for i in range(len(maps))]
    )
    checks = []
    for blur in nt.BLUR_METHODS:
        deformed, _ = nt.deform_batch_with_noise(
            torch.from_numpy(maps).to(device),
            torch.from_numpy(noise_x).to(device),
            torch.from_numpy(noise_y).to(device),
            *zip(*pairs, strict=True),
            PARAMS,
            boxes=boxes,
            blur=blur,
        )
        share = float(np.mean(deformed.cpu().numpy() == expected))
        status = "PASS" if share >= AGREEMENT else "FAIL"
        checks.append(Check(f"agreement with the CPU engine, blur={blur}", status, f"{share:.6%} of pixels"))
    return checks


def check_uint16(maps: np.ndarray, boxes: list, device: torch.device) -> Check:
    wide = torch.from_numpy(maps.astype(np.int64) * 257).to(device)  # 255 * 257 = 65535 still fits
    deformed, stats = nt.deform_batch(wide.to(torch.uint16), boxes=boxes, **drawing(device, 5, 0.5))
    reference, _ = nt.deform_batch(wide, boxes=boxes, **drawing(device, 5, 0.5))
    kept = ~stats.deformed
    ok = (
        deformed.dtype == torch.uint16
        and torch.equal(deformed.long(), reference)
        and torch.equal(deformed[kept].long(), wide[kept])
    )
    detail = f"{int(stats.deformed.sum())} of {len(maps)} maps deformed, the rest kept; equal to int64 labels"
    return Check("uint16 labels at p = 0.5", "PASS" if ok else "FAIL", detail)


def check_cpu_generator(maps: np.ndarray, boxes: list, device: torch.device) -> Check:
    labels = torch.from_numpy(maps)
    on_device, _ = nt.deform_batch(labels.to(device), torch.Generator().manual_seed(3), PARAMS, 0.5, boxes)
    on_cpu, _ = nt.deform_batch(labels, torch.Generator().manual_seed(3), PARAMS, 0.5, boxes)
    share = float((on_device.cpu() == on_cpu).double().mean())
    ok = on_device.device.type == device.type and share >= AGREEMENT
    return Check("CPU generator, labels on the device", "PASS" if ok else "FAIL", f"{share:.6%} equal to the CPU's")


def check_host_syncs(maps: np.ndarray, boxes: list, device: torch.device) -> Check:
    if device.type != "cuda":
        return Check("host syncs in deform_batch", "INFO", "counted on CUDA only")
    labels = torch.from_numpy(maps).to(device)
    nt.deform_batch(labels, boxes=boxes, **drawing(device, 2, 0.5))  # warm-up
    synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            nt.deform_batch(labels, boxes=boxes, **drawing(device, 2, 0.5))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(warning.message) for warning in caught if "synchroniz" in str(warning.message)]
    detail = f"{len(syncs)} with a host generator and the boxes given" + (f": {syncs[0][:200]}" if syncs else "")
    return Check("host syncs in deform_batch", "PASS" if not syncs else "FAIL", detail)


def check_speed(maps: np.ndarray, boxes: list, device: torch.device, repeats: int) -> Check:
    labels = torch.from_numpy(maps).to(device)
    arguments = drawing(device, 4)
    nt.deform_batch(labels, boxes=boxes, **arguments)  # warm-up: kernels, allocator
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        nt.deform_batch(labels, boxes=boxes, **arguments)
    synchronize(device)
    torch_rate = repeats * len(maps) / (time.perf_counter() - start)
    start = time.perf_counter()
    for index, segment in enumerate(maps):
        deform(segment, np.random.RandomState(index), PARAMS)
    cpu_rate = len(maps) / (time.perf_counter() - start)
    size = f"{maps.shape[1]}x{maps.shape[2]}"
    goal = f"; goal {MAPS_PER_S_GOAL} maps/s at 1024x2048 on an H100-class GPU" if device.type == "cuda" else ""
    detail = f"torch engine {torch_rate:.1f} maps/s, CPU engine {cpu_rate:.1f} maps/s ({torch_rate / cpu_rate:.2f}x) "
    return Check("maps/s", "INFO", detail + f"at {size}, boxes found beforehand{goal}")


def engine_checks(device: torch.device, sizes: Sizes) -> list[Check]:
    maps = city_maps(sizes)
    boxes = nt.batch_boxes(torch.from_numpy(maps), PARAMS.area_thresh, PARAMS.ignore_index)
    repeats = 5 if device.type == "cuda" else 2
    checks = []
    for check in (check_memory_and_seed, check_agreement, check_uint16, check_cpu_generator, check_host_syncs):
        checks += guarded(check.__name__, lambda check=check: check(maps, boxes, device))
    return checks + guarded("maps/s", lambda: check_speed(maps, boxes, device, repeats))


def guarded(name: str, run: Callable[[], Check | list[Check]]) -> list[Check]:
    """A check that raises is a failed check, and the others still run."""
    try:
        result = run()
    except Exception as error:  # noqa: BLE001 - any failure is a finding to report, not the end of the smoke
        return [Check(name, "FAIL", f"{type(error).__name__}: {error}")]
    return result if isinstance(result, list) else [result]


# --- the commands ------------------------------------------------------------------------------------------------


class Commands:
    """``python -m nsegaug ...`` in a work folder, each command's stderr kept for the final search."""

    def __init__(self, work: Path, device: torch.device, sizes: Sizes) -> None:
        self.work, self.device, self.sizes = work, device, sizes
        self.stderr: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.val = self.validation_folder()

    def validation_folder(self) -> tuple[Path, Path]:
        root = self.work / "val"
        for kind, suffix in (("labels", ".png"), ("images", ".jpg")):
            (root / kind).mkdir(parents=True, exist_ok=True)
            for index in range(self.sizes.val_images):
                shutil.copy(EXAMPLES / "val" / kind / f"scene_{index:04d}{suffix}", root / kind)
        return root / "labels", root / "images"

    def run(self, name: str, *arguments) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "nsegaug", *map(str, arguments)]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=self.work)
        self.stderr[name], self.seconds[name] = result.stderr, time.perf_counter() - start
        return result

    def train(self, name: str, out: Path, *extra) -> subprocess.CompletedProcess:
        data = ["--manifest", self.work / "gen" / "manifest.jsonl", "--val-labels", self.val[0]]
        data += ["--val-images", self.val[1], "--num-classes", "19"]
        common = ["--device", self.device.type, "--workers", self.sizes.workers, "--out", out, "-q"]
        return self.run(name, "train", *data, *self.sizes.train, *common, *extra)


def outcome(name: str, result: subprocess.CompletedProcess, detail: str = "", ok: bool = True) -> Check:
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return Check(name, "FAIL", f"exit {result.returncode}: {tail[0][:300]}")
    return Check(name, "PASS" if ok else "FAIL", detail)


def command_checks(commands: Commands) -> list[Check]:
    sizes, work = commands.sizes, commands.work
    source = ["--labels", EXAMPLES / "train" / "labels", "--images", EXAMPLES / "train" / "images"]
    generated = commands.run("generate", "generate", *source, "--copies", sizes.copies, "--out", work / "gen", "-q")
    checks = [outcome("nsegaug generate on examples/data", generated, f"{sizes.copies} copies per label")]
    if generated.returncode != 0:
        return checks
    online, (first, second) = work / "online", sizes.online_steps
    started = commands.train("train --online", online, "--online", "--amp", "--iters", first)
    checks.append(outcome("train --online with AMP", started, f"{first} steps on {commands.device.type}"))
    resumed = commands.run("train --resume", "train", "--out", online, "--resume", "--iters", second, "-q")
    said = f"resuming at step {first}" in resumed.stderr
    checks.append(outcome("train --online --resume", resumed, f"from step {first} to {second}", said))
    offline = work / "offline"
    trained = commands.train("train --no-amp", offline, "--no-amp", "--prob", "0.5", "--iters", sizes.offline_steps)
    checks.append(outcome("offline train without AMP", trained, f"{sizes.offline_steps} steps"))
    if trained.returncode == 0:
        checks.append(check_evaluate(commands, offline))
    return checks


def check_evaluate(commands: Commands, run: Path) -> Check:
    report = commands.work / "evaluate.json"
    arguments = ["--checkpoint", run / "best.pt", "--labels", commands.val[0], "--images", commands.val[1]]
    arguments += ["--device", commands.device.type, "--workers", commands.sizes.workers, "--out", report]
    result = commands.run("evaluate", "evaluate", *arguments)
    if result.returncode != 0:
        return outcome("evaluate best.pt", result)
    best = json.loads((run / "metrics.json").read_text())["best"]["miou"]
    evaluated = json.loads(report.read_text())["miou"]
    same = best is not None and evaluated is not None and abs(best - evaluated) <= 1e-6
    return Check("evaluate best.pt = the recorded best", "PASS" if same else "FAIL", f"{evaluated} vs {best}")


def check_stderr(commands: Commands) -> Check:
    found = [
        f"{name}: {line.strip()[:200]}"
        for name, text in commands.stderr.items()
        for line in text.splitlines()
        if TROUBLE.search(line)
    ]
    took = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in commands.seconds.items())
    detail = f"{len(commands.stderr)} commands ({took})" + (
        f"; {len(found)} line(s), first: {found[0]}" if found else ""
    )
    return Check("no warning or traceback on stderr", "FAIL" if found else "PASS", detail)


# --- the whole -------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--small", action="store_true", help="small maps and runs (for the CPU)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "no CUDA device here (torch.cuda.is_available() is False); run with --device cpu --small", file=sys.stderr
        )
        return 2
    sizes = SMALL if args.small else FULL
    started = time.perf_counter()
    header = f"nsegaug {__version__}, torch {torch.__version__}, {device} ({device_model(device)})"
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="nsegaug-gpu-smoke-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        checks = engine_checks(device, sizes)
        report(checks)
        commands = Commands(work, device, sizes)
        command_results = command_checks(commands) + [check_stderr(commands)]
        report(command_results)
    checks += command_results
    failed = [check for check in checks if check.status == "FAIL"]
    seconds = time.perf_counter() - started
    print(
        f"{len(checks) - len(failed)} of {len(checks)} checks passed or informed, {len(failed)} failed, {seconds:.0f} s"
    )
    if args.json is not None:
        summary = {"header": header, "seconds": round(seconds, 1), "checks": [asdict(check) for check in checks]}
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


def report(checks: list[Check]) -> None:
    for check in checks:
        print(f"{check.status:4}  {check.name}: {check.detail}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
