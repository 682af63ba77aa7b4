"""Start-up cost: ``import nsegaug`` and ``nsegaug --help`` against a bare Python start, in one run.

The commands are run interleaved (the order rotates each round), each
``--repeats`` times, as fresh processes; the table gives the min and median
wall time and CPU time of each and the ratio of medians to the bare
interpreter. Ratios, not absolute times, are what carries from one (shared,
noisy) machine to another.

    python benchmarks/bench_startup.py --repeats 20
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import conditions, interleaved, print_conditions  # noqa: E402

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
    print_conditions(conditions())
    runs = {
        name: lambda _, command=command: subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        for name, command in COMMANDS.items()
    }
    found = {name: timing.summary() for name, timing in interleaved(runs, args.repeats).items()}
    bare = found["python -c pass"]
    print(f"{'command':<26} {'wall min':>9} {'wall med':>9} {'CPU min':>9} {'CPU med':>9} {'x bare (wall med)':>18}")
    for name, row in found.items():
        print(
            f"{name:<26} {row['wall_min']:>9.3f} {row['wall_median']:>9.3f} {row['cpu_min']:>9.3f} "
            f"{row['cpu_median']:>9.3f} {row['wall_median'] / bare['wall_median']:>18.2f}"
        )
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
