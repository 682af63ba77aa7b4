"""What generate's copies change compared with what the noise changed (PILOT.md, "Deformation strength").

For each source map of a generate run made on noisy labels: the share of its pixels changed by one copy and by
any of its copies, and the share of the pixels the noise relabelled (noisy differs from clean) that one copy and
any copy change.

    python examples/robustness/long/copies_vs_noise.py COPIES NOISY_LABELS CLEAN_LABELS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def main(copies: Path, noisy: Path, clean: Path) -> None:
    rows = [json.loads(line) for line in (copies / "manifest.jsonl").read_text().splitlines()]
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        if row["deformed"]:
            by_label.setdefault(row["label"], []).append(row)
    per_copy, union, noise_one, noise_any = [], [], [], []
    for label, deformed in sorted(by_label.items()):
        source = read(noisy / label)
        noise = source != read(clean / label)
        changed_any = np.zeros(source.shape, dtype=bool)
        for row in deformed:
            changed = source != read(copies / row["output"])
            per_copy.append(changed.mean())
            noise_one.append((changed & noise).sum() / noise.sum())
            changed_any |= changed
        union.append(changed_any.mean())
        noise_any.append((changed_any & noise).sum() / noise.sum())
    print(
        f"{copies.name}: {len(by_label)} maps; changed per copy {100 * np.mean(per_copy):.2f} %, by any copy of a "
        f"map {100 * np.mean(union):.2f} %; of the noise's pixels: one copy {100 * np.mean(noise_one):.1f} %, "
        f"any copy {100 * np.mean(noise_any):.1f} %"
    )


if __name__ == "__main__":
    main(*(Path(argument) for argument in sys.argv[1:4]))
