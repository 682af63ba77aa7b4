"""Start-up cost: ``import nsegaug`` and ``nsegaug --help`` against a bare Python start, in one run.

The three commands are run interleaved, each ``--repeats`` times, as fresh
processes; the table gives the median wall time of each and its ratio to the
bare interpreter. Ratios, not absolute times, are what carries from one
(shared, noisy) machine to another.

    python benchmarks/bench_startup.py --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import nsegaug": [sys.executable, "-c", "import nsegaug"],
    "nsegaug --help": [sys.executable, "-m", "nsegaug", "--help"],
    "nsegaug generate --help": [sys.executable, "-m", "nsegaug", "generate", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    bare = statistics.median(times["python -c pass"])
    print(f"{'command':<26} {'median s':>9} {'x bare':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<26} {median:>9.3f} {median / bare:>7.2f}")
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, nsegaug; print(sorted({'numpy', 'cv2', 'torch', 'PIL'} & set(sys.modules)))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"heavy modules loaded by import nsegaug: {loaded}")


if __name__ == "__main__":
    main()
