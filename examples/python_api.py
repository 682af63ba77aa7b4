"""The Python API on the example data: one deformation, the transform, and seeded copies.

python examples/python_api.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nsegaug import NoisySegmentPlus
from nsegaug.copies import deformed_copies
from nsegaug.deform import deform
from nsegaug.io import encode_label, read_label
from nsegaug.params import DeformParams

LABEL = Path(__file__).resolve().parent / "data" / "train" / "labels" / "scene_0000.png"


def main() -> None:
    # Read with Pillow through nsegaug.io: the palette is kept for writing back.
    label = read_label(LABEL)
    segment = label.indices
    print(f"{LABEL.name}: {segment.shape[1]}x{segment.shape[0]}, classes {np.unique(segment).tolist()}")

    # 1. One deformation with a given random state, and what it did. The parameters are one checked value.
    params = DeformParams(area_thresh=1000, ignore_index=255)  # the paper's (alpha, sigma) pairs by default
    result = deform(segment, np.random.RandomState(0), params)
    print("deform:", {key: round(value, 4) for key, value in result.stats().items()})
    assert set(np.unique(result.segment)) <= set(np.unique(segment))  # labels moved, never invented

    # 2. The method as a transform: p = 0.5, the paper's (alpha, sigma) pairs, theta = 1000.
    transform = NoisySegmentPlus(ignore_index=255, seed=0)
    results = transform({"gt_seg_map": segment.copy()})  # mmsegmentation-style dict
    changed = np.mean(results["gt_seg_map"] != segment)
    print(f"NoisySegmentPlus.__call__: {100 * changed:.2f}% of pixels changed (0% when the p = 0.5 coin says no)")

    # 3. Reproducible: a given random state always gives the same map.
    first = transform.transform(segment, random_state=np.random.RandomState(7))
    assert np.array_equal(first, transform.transform(segment, random_state=np.random.RandomState(7)))

    # 4. Copies as `nsegaug generate --seed 0 --ignore-index 255` writes them for this file:
    #    copy k depends on (seed, path relative to --labels, k) only, never on workers or order.
    copies = dict(deformed_copies(segment, "scene_0000.png", 3, params, seed=0))
    for k, copy in copies.items():
        print(f"copy {k}: alpha={copy.alpha} sigma={copy.sigma} changed={100 * copy.changed_fraction:.2f}%")

    # 5. Write copy 1 back in the source's format (palette PNG, same palette), as generate does.
    data = encode_label(label, copies[1].segment)
    out = Path("python_api_copy.png")
    out.write_bytes(data)
    assert Image.open(out).getpalette() == Image.open(LABEL).getpalette()
    print(f"wrote {out} ({len(data)} bytes, mode {Image.open(out).mode})")


if __name__ == "__main__":
    main()
