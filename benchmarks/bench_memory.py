"""Peak memory of the engine, in bytes a pixel beyond the map, and of ``nsegaug generate`` on a huge map.

Each deformation runs in a fresh process: a street-like map (street scenes of
2048x2048 tiled, uint8, ~0.011 runs a pixel) is made, the process's peak RSS
is reset (``/proc/self/clear_refs``), the map is deformed once, and the peak
above the RSS before it, divided by the map's pixels, is the figure. Next to
it: the engine's own estimate (``nsegaug.bands.deform_bytes``, with the map's
runs), which ``generate`` uses to hold memory before it decodes a map.

Contenders: the whole-map engine (engine 2 with bands switched off: what
0f2d1df ran on every map), and in bands engine 2 (the default), engine 3 and
float64.

``--noise HxW,...`` instead measures ``nsegaug noise -j 1`` on one such map
of each size (``--map background``: the bands made one background component
around the objects, whose box is the whole map, the models' largest need),
with its models at their defaults and all four at large sizes: the peak RSS
of the run less that of the same run on the example map (the interpreter and
its libraries), against noise's estimate (``nsegaug.noise.noise_memory``).

``--generate HxW`` instead writes one such map as a palette PNG to a
temporary folder, runs ``nsegaug generate`` on it (``--max-pixels`` raised to
the map's size) while sampling the RSS of its processes every 50 ms, prints
the peak, the time and generate's estimate, and deletes the folder.

    python benchmarks/bench_memory.py                                   # 6144x6144
    python benchmarks/bench_memory.py --sizes 6144x6144,16384x16384
    nice -n 19 python benchmarks/bench_memory.py --generate 30000x30000 # ~6 GB free needed; check free -g first
    nice -n 19 python benchmarks/bench_memory.py --noise 4000x4000,8000x8000 --map background  # ~4 GB at 8000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import conditions, print_conditions  # noqa: E402

CONTENDERS = {
    "whole map (0f2d1df: every map)": {"whole": True, "engine": 2, "precision": "float32"},
    "bands, engine 2 (default)": {"whole": False, "engine": 2, "precision": "float32"},
    "bands, engine 3": {"whole": False, "engine": 3, "precision": "float32"},
    "bands, float64": {"whole": False, "engine": 2, "precision": "float64"},
}

CHILD = """
import json, sys, time
import numpy as np
from nsegaug import bands, components, deform
from nsegaug.params import DeformParams
from nsegaug.synthetic import street_scene

height, width, sigma, settings = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
tile = street_scene(2048, 2048, 600, seed=1)
segment = np.tile(tile, (-(-height // 2048), -(-width // 2048)))[:height, :width].copy()
del tile
params = DeformParams(((30, sigma),), precision=settings["precision"], engine=settings["engine"])
if settings["whole"]:
    bands.WHOLE_MAP_PX = 1 << 62
runs = components.count_runs(segment)
estimate = bands.deform_bytes(segment.shape, 1, sigma, settings["precision"], runs)
deform.small_component_boxes(segment[:64], 1000)  # the labelling's imports, before the measure


def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))


try:
    open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from here
    reset = True
except OSError:
    reset = False
before = status("VmRSS:")
start = time.perf_counter()
deform.deform(segment, np.random.RandomState(0), params)
seconds = time.perf_counter() - start
peak = status("VmHWM:") - before
print(json.dumps({"peak": peak, "seconds": seconds, "runs": runs, "estimate": estimate, "reset": reset}))
"""


def measure(height: int, width: int, sigma: float, settings: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(height), str(width), str(sigma), json.dumps(settings)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(done.stdout)


def print_row(name: str, pixels: int, row: dict) -> None:
    if "error" in row:
        print(f"  {name:<30} failed: {row['error']}")
        return
    note = "" if row["reset"] else "  (peak not reset: includes making the map)"
    print(
        f"  {name:<30} {row['peak'] / pixels:>6.2f} B/px  {row['peak'] / 2**20:>7.0f} MiB  "
        f"estimate {row['estimate'] / 2**20:>6.0f} MiB  {row['seconds']:>6.1f} s{note}"
    )


def write_street_png(path: Path, height: int, width: int, kind: str = "tiled") -> None:
    import numpy as np
    from PIL import Image

    from nsegaug.synthetic import street_scene

    if kind == "tiled":
        tile = street_scene(2048, 2048, 600, seed=1)
        segment = np.ascontiguousarray(np.tile(tile, (-(-height // 2048), -(-width // 2048)))[:height, :width])
    else:  # one street scene, its bands made one background around the objects
        segment = street_scene(height, width, max(600, height * width // 7000), seed=1)
        segment[np.isin(segment, (0, 1, 2, 8, 10))] = 0
    image = Image.frombuffer("P", (width, height), segment, "raw", "P", 0, 1)
    image.putpalette(bytes(range(256)) * 3)
    image.save(path, compress_level=1)


def tree_rss(pid: int) -> int:
    """The RSS of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{current}/task"):
                todo += [int(child) for child in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
        except (OSError, ValueError):
            pass
    return total


def bench_generate(height: int, width: int, copies: int, jobs: int, engine: int) -> None:
    from nsegaug.generate import map_memory
    from nsegaug.params import DeformParams

    with tempfile.TemporaryDirectory(prefix="nsegaug-bench-memory-") as folder:
        labels, out = Path(folder) / "labels", Path(folder) / "out"
        labels.mkdir()
        start = time.perf_counter()
        write_street_png(labels / "huge.png", height, width)
        size = (labels / "huge.png").stat().st_size
        print(f"map {height}x{width} written in {time.perf_counter() - start:.0f} s: {size / 2**20:.0f} MiB PNG")
        estimate = map_memory((width, height), "P", size, DeformParams(engine=engine))
        command = [
            *("nsegaug", "generate", "--labels", str(labels), "--out", str(out), "-k", str(copies)),
            *("-j", str(jobs), "-q", "--max-pixels", str(height * width), "--engine", str(engine)),
        ]
        print("command:", " ".join(command))
        start = time.perf_counter()
        process = subprocess.Popen(command)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        print(
            f"exit code {process.returncode}; peak RSS of its processes {peak / 2**30:.2f} GiB "
            f"({peak / (height * width):.2f} B/px, the map itself 1 B/px); {seconds:.0f} s; "
            f"generate's estimate for the map {estimate / 2**30:.2f} GiB"
        )


NOISE_SETTINGS = {
    "defaults": [],
    "all four, large": [
        *("--models", "bias,boundary,simplify,jitter", "--bias-radius", "20", "--max-radius", "20"),
        *("--max-epsilon", "20", "--jitter-amplitude", "10", "--jitter-sigma", "100"),
    ],
}
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)"
)


def _peak_rss(command: list[str]) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True, check=True)
    return int(done.stdout)


def bench_noise(sizes: str, kind: str) -> None:
    from nsegaug.noise import noise_memory
    from nsegaug.options.noise import NOISE_TYPES
    from nsegaug.params import NoiseParams

    sample = Path(__file__).resolve().parents[1] / "examples" / "data" / "train" / "labels" / "scene_0000.png"
    with tempfile.TemporaryDirectory(prefix="nsegaug-bench-memory-") as folder:
        small = Path(folder) / "small"
        small.mkdir()
        (small / sample.name).write_bytes(sample.read_bytes())
        for size in sizes.split(","):
            height, width = map(int, size.split("x"))
            labels = Path(folder) / f"labels_{size}"
            labels.mkdir()
            write_street_png(labels / "big.png", height, width, kind)
            file_bytes = (labels / "big.png").stat().st_size
            for name, options in NOISE_SETTINGS.items():
                run = [sys.executable, "-m", "nsegaug", "noise", "-j", "1", "-q", "--overwrite", *options]
                out = ["--out", str(Path(folder) / "out")]
                peaks = [_peak_rss([*run, *out, "--labels", str(source)]) for source in (small, labels)]
                values = {
                    key[2:].replace("-", "_"): value for key, value in zip(options[::2], options[1::2], strict=True)
                }
                values = {key: NOISE_TYPES[key].convert(value, None, None) for key, value in values.items()}
                estimate = noise_memory((width, height), "P", file_bytes, NoiseParams(**values))
                beyond = peaks[1] - peaks[0]
                print(
                    f"  {kind} {size} {name:<16} peak beyond the interpreter {beyond / 2**20:>6.0f} MiB "
                    f"({beyond / (height * width):.2f} B/px); estimate {estimate / 2**20:.0f} MiB "
                    f"({estimate / (height * width):.2f} B/px, {estimate / beyond:.2f}x)",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="6144x6144", help="map sizes, e.g. 6144x6144,16384x16384")
    parser.add_argument("--sigma", type=float, default=10.0, help="the blur's sigma (the paper's largest: 10)")
    parser.add_argument("--noise", default=None, help="HxW,...: noise runs on a map of each size instead")
    parser.add_argument("--map", choices=("tiled", "background"), default="tiled", help="the map (--noise)")
    parser.add_argument("--generate", default=None, help="HxW: a generate run on one map of that size instead")
    parser.add_argument("--copies", type=int, default=1, help="copies of the map (--generate)")
    parser.add_argument("--jobs", type=int, default=1, help="workers (--generate)")
    parser.add_argument("--engine", type=int, default=2, help="engine (--generate)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "memory.json")
    args = parser.parse_args()
    found = conditions()
    print_conditions(found)
    if args.noise:
        bench_noise(args.noise, args.map)
        return
    if args.generate:
        height, width = map(int, args.generate.split("x"))
        bench_generate(height, width, args.copies, args.jobs, args.engine)
        return
    rows = []
    for size in args.sizes.split(","):
        height, width = map(int, size.split("x"))
        mib = height * width / 2**20
        print(f"\n{height}x{width}, sigma {args.sigma:g}: peak beyond the map (uint8, {mib:.0f} MiB)")
        for name, settings in CONTENDERS.items():
            row = {"size": size, "contender": name, **measure(height, width, args.sigma, settings)}
            print_row(name, height * width, row)
            rows.append(row)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"conditions": found, "sigma": args.sigma, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
