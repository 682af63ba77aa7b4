"""Generate throughput: the real ``nsegaug generate`` job at --jobs 1, 2, ... on one dataset.

Writes N synthetic street label maps (8-bit palette PNGs, hundreds of components
each), runs ``generate_dataset`` on them once per jobs value into a fresh folder,
checks that every jobs value wrote byte-identical outputs and manifest, and
reports throughput and the speed-up over jobs=1. The issue's target is a
speed-up of at least 1.7 for --jobs 2 on two cores; a miss is reported, not an error.

Repeats are interleaved (1, 2, 1, 2, ...) so a shared machine's noise hits every
jobs value alike; the table gives the min (the figure the speed-up uses) and the
median wall time of each, and the CPU time of the main process (its workers'
CPU is not in it: they outlive the run). The first run with a process
pool pays for starting its workers, as the command line does on every run.

    python benchmarks/bench_generate.py              # 200 masks of 1024x2048, writes benchmarks/results/generate.json
    python benchmarks/bench_generate.py --quick      # 24 masks of 512x1024
    python benchmarks/bench_generate.py --data /tmp/bench-labels --repeats 3
    python benchmarks/bench_generate.py --quick --store s3   # local disk against a bucket, in the same run

``--store s3`` starts an S3-compatible server (moto's, from the test extra) on
127.0.0.1, puts the label maps in a bucket, and times the same job local to
local and bucket to bucket at the largest jobs value, interleaved: the ratio
is nsegaug's overhead for object storage (a PUT per copy, listing, the
manifest's parts), not a network's, as the server is on loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import joblib
import numpy as np
import PIL
from PIL import Image

from nsegaug import __version__
from nsegaug.deform import small_component_boxes
from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.manifest import MANIFEST_NAME, META_NAME
from nsegaug.palettes import colour_table, flat_palette
from nsegaug.synthetic import city_scene, ignore_borders

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conditions, cpu_seconds, print_conditions  # noqa: E402

TARGET_SPEEDUP_JOBS2 = 1.7
# As dense as examples/make_sample_data.py's scenes (45 things at 256x512): ~720 at 1024x2048.
OBJECTS_AT_256x512 = 45


def objects_for(height: int, width: int) -> int:
    return max(3, round(OBJECTS_AT_256x512 * height * width / (256 * 512)))


def make_mask(index: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    scene = city_scene(height, width, objects_for(height, width), seed=int(rng.integers(2**63)))
    return ignore_borders(scene, int(rng.integers(1, 3)))


def make_dataset(folder: Path, masks: int, height: int, width: int, seed: int) -> int:
    """Write ``scene_0000.png`` ... into ``folder``; files already there at the right size are kept.

    Returns the number of files written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    palette = flat_palette(colour_table())
    written = 0
    for index in range(masks):
        path = folder / f"scene_{index:04d}.png"
        if path.exists():
            with Image.open(path) as existing:
                if existing.size == (width, height) and existing.mode == "P":
                    continue
        labels = make_mask(index, height, width, seed)
        image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels).tobytes())
        image.putpalette(palette)
        image.save(path)
        written += 1
    return written


def count_components(segment: np.ndarray) -> int:
    """All 8-connected components of all classes: every component is "small" under an infinite threshold."""
    return len(small_component_boxes(segment, area_thresh=np.inf))


def output_digests(out: Path) -> dict[str, str]:
    """sha256 of every file the job wrote, by relative path; the metadata file (times, jobs) is left out."""
    digests = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.name != META_NAME:
            digests[path.relative_to(out).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def run_generate(labels: Path, out: Path, copies: int, jobs: int, seed: int) -> tuple[float, object]:
    config = GenerateConfig(labels=labels, out=out, copies=copies, jobs=jobs, seed=seed)
    start = time.perf_counter()
    summary = generate_dataset(config, progress=False, log=lambda message: None)
    seconds = time.perf_counter() - start
    if summary.failed:
        raise RuntimeError(f"jobs={jobs}: {summary.failed} masks failed: {summary.failures[:3]}")
    return seconds, summary


def start_s3() -> tuple[object, dict]:
    """moto's S3 server on a free loopback port, and the storage options that reach it."""
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    import boto3

    client = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="b", aws_secret_access_key="b"
    )
    client.create_bucket(Bucket="bench")
    return server, {"key": "b", "secret": "b", "client_kwargs": {"endpoint_url": url}}


def compare_stores(labels: Path, work: Path, copies: int, jobs: int, repeats: int, seed: int) -> dict:
    """The same job local to local and bucket to bucket, interleaved; masks/s of each and their ratio."""
    from nsegaug import storage

    server, options = start_s3()
    try:
        storage.configure(options)
        for path in sorted(labels.iterdir()):
            storage.write_bytes(f"s3://bench/labels/{path.name}", path.read_bytes())
        times = {"local": [], "s3": []}
        masks = 0
        same = True
        for repeat in range(repeats):
            local = work / f"store-local-{repeat}"
            places = {"local": (labels, local), "s3": ("s3://bench/labels", f"s3://bench/out-{repeat}")}
            for name, (source, out) in places.items():
                config = GenerateConfig(
                    labels=source, out=out, copies=copies, jobs=jobs, seed=seed, storage_options=options
                )
                start = time.perf_counter()
                summary = generate_dataset(config, log=lambda message: None)
                times[name].append(time.perf_counter() - start)
                masks = summary.masks
                print(f"  store run {repeat + 1}/{repeats} {name}: {times[name][-1]:.2f}s", flush=True)
            remote = {
                key: storage.read_bytes(f"s3://bench/out-{repeat}/{key}")
                for key in storage.walk(f"s3://bench/out-{repeat}")
            }
            same &= {k: v for k, v in remote.items() if k != META_NAME} == {
                path.name: path.read_bytes() for path in local.iterdir() if path.name != META_NAME
            }
            shutil.rmtree(local)
    finally:
        storage.configure(None)
        server.terminate()
    best = {name: min(values) for name, values in times.items()}
    rates = {name: masks / seconds for name, seconds in best.items()}
    print(
        f"\nstore comparison, jobs={jobs}: local {rates['local']:.2f} masks/s, s3 (loopback) "
        f"{rates['s3']:.2f} masks/s: {rates['local'] / rates['s3']:.2f}x the time on s3; "
        f"outputs byte-identical: {'yes' if same else 'NO'}"
    )
    return {
        "jobs": jobs,
        "seconds": times,
        "masks_per_s": rates,
        "overhead": rates["local"] / rates["s3"],
        "identical": same,
    }


def parse_jobs(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"jobs must be integers >= 1, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masks", type=int, default=None, help="number of label maps (default 200, --quick 24)")
    parser.add_argument("--height", type=int, default=None, help="mask height (default 1024, --quick 512)")
    parser.add_argument("--width", type=int, default=None, help="mask width (default 2048, --quick 1024)")
    parser.add_argument("--copies", type=int, default=5, help="deformed copies per mask")
    parser.add_argument(
        "--jobs",
        type=parse_jobs,
        default=[1, 2],
        help="comma-separated jobs values; 1 is always run, as the baseline (default 1,2)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per jobs value; the best time counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dataset and of the generate job")
    parser.add_argument("--quick", action="store_true", help="24 masks of 512x1024")
    parser.add_argument("--data", type=Path, default=None, help="label folder to reuse (created if missing)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "generate.json")
    parser.add_argument("--store", choices=["s3"], default=None, help="also time bucket to bucket (moto on loopback)")
    args = parser.parse_args()
    masks = args.masks if args.masks is not None else (24 if args.quick else 200)
    height = args.height if args.height is not None else (512 if args.quick else 1024)
    width = args.width if args.width is not None else (1024 if args.quick else 2048)
    if masks < 1 or height < 16 or width < 16 or args.copies < 1 or args.repeats < 1:
        parser.error("--masks, --copies and --repeats must be >= 1, --height and --width >= 16")
    jobs_values = [1] + [jobs for jobs in dict.fromkeys(args.jobs) if jobs != 1]  # jobs=1 is the baseline

    cpu_count = os.cpu_count()
    cpu_affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpu_count
    found = conditions(cv2_per_worker=1)
    print_conditions(found)

    with tempfile.TemporaryDirectory(prefix="nsegaug-bench-generate-") as temp:
        work = Path(temp)
        labels = args.data if args.data is not None else work / "labels"
        start = time.perf_counter()
        written = make_dataset(labels, masks, height, width, args.seed)
        with Image.open(labels / "scene_0000.png") as first:
            components = count_components(np.asarray(first))
        print(
            f"dataset: {labels} ({masks} masks of {height}x{width}, {written} written now in "
            f"{time.perf_counter() - start:.1f}s; scene_0000 has {components} components)"
        )

        times: dict[int, list[float]] = {jobs: [] for jobs in jobs_values}
        cpu_times: dict[int, list[float]] = {jobs: [] for jobs in jobs_values}
        summaries = {}
        digests: dict[int, dict[str, str]] = {}
        identical = True
        for repeat in range(args.repeats):
            for jobs in jobs_values:
                out = work / f"out-jobs{jobs}-run{repeat}"
                cpu = cpu_seconds()
                seconds, summary = run_generate(labels, out, args.copies, jobs, args.seed)
                times[jobs].append(seconds)
                cpu_times[jobs].append(cpu_seconds() - cpu)
                summaries[jobs] = summary
                print(f"  run {repeat + 1}/{args.repeats} jobs={jobs}: {seconds:.2f}s", flush=True)
                digest = output_digests(out)
                digests.setdefault(jobs, digest)
                identical &= digest == digests[jobs_values[0]]
                shutil.rmtree(out)
        stores = None
        if args.store:
            stores = compare_stores(labels, work, args.copies, max(jobs_values), args.repeats, args.seed)

    rows = []
    base = min(times[1])
    header = (
        f"{'jobs':>4} {'masks':>6} {'copies':>7} {'seconds':>8} {'masks/s':>8} {'copies/s':>9} "
        f"{'speed-up':>9} {'efficiency':>11} {'median s':>9} {'main CPU s min/med':>19}"
    )
    print()
    print(header)
    for jobs in jobs_values:
        best = min(times[jobs])
        summary = summaries[jobs]
        speedup = base / best
        row = {
            "jobs": jobs,
            "masks": summary.masks,
            "copies_written": summary.copies_written,
            "seconds": best,
            "seconds_all": times[jobs],
            "seconds_median": statistics.median(times[jobs]),
            "main_process_cpu_s": cpu_times[jobs],
            "masks_per_s": summary.masks / best,
            "copies_per_s": summary.copies_written / best,
            "speedup_vs_jobs1": speedup,
            # Speed-up per worker: 1.0 is perfect scaling.
            "scaling_efficiency": speedup / jobs,
        }
        rows.append(row)
        print(
            f"{jobs:>4} {row['masks']:>6} {row['copies_written']:>7} {best:>8.2f} {row['masks_per_s']:>8.2f} "
            f"{row['copies_per_s']:>9.2f} {speedup:>8.2f}x {100 * row['scaling_efficiency']:>10.1f}% "
            f"{row['seconds_median']:>9.2f} {min(cpu_times[jobs]):>9.2f}/{statistics.median(cpu_times[jobs]):.2f}"
        )

    if any(row["masks"] != masks for row in rows):
        print(f"note: the job found {rows[0]['masks']} masks in {labels}, not {masks}")
    files = len(digests[1])
    verdict = "yes" if identical else "NO"
    listed = ",".join(map(str, jobs_values))
    print(f"outputs byte-identical across jobs {listed}: {verdict} ({files} files incl. {MANIFEST_NAME})")
    jobs2 = next((row for row in rows if row["jobs"] == 2), None)
    target_met = None
    if jobs2 is None:
        print(f"target (jobs=2 >= {TARGET_SPEEDUP_JOBS2}x jobs=1): not measured (no jobs=2 run)")
    else:
        target_met = jobs2["speedup_vs_jobs1"] >= TARGET_SPEEDUP_JOBS2
        note = "" if cpu_affinity >= 2 else f" (only {cpu_affinity} usable cpu)"
        print(
            f"target (jobs=2 >= {TARGET_SPEEDUP_JOBS2}x jobs=1): {'met' if target_met else 'MISSED'}, "
            f"{jobs2['speedup_vs_jobs1']:.2f}x{note}"
        )

    report = {
        "nsegaug": __version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cv2": cv2.__version__,
        "pillow": PIL.__version__,
        "joblib": joblib.__version__,
        "machine": platform.machine(),
        "cpu_count": cpu_count,
        "cpu_affinity": cpu_affinity,
        "conditions": found,
        "parameters": {
            "masks": masks,
            "height": height,
            "width": width,
            "objects_per_mask": objects_for(height, width),
            "components_scene_0000": components,
            "copies": args.copies,
            "jobs": jobs_values,
            "repeats": args.repeats,
            "seed": args.seed,
            "data": str(args.data) if args.data is not None else None,
        },
        "rows": rows,
        "outputs_identical": identical,
        "output_files": files,
        "target_speedup_jobs2": TARGET_SPEEDUP_JOBS2,
        "target_met": target_met,
        "stores": stores,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
