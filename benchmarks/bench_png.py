"""PNG encoding of a deformed copy at each zlib level (``--png-level``): time and size, against the deformation.

One 1024x2048 street map (palette PNG, about 720 objects, as ``bench_generate``
writes them) is deformed once with the default engine; that copy is encoded
with ``nsegaug.io.encode_label`` at levels 0, 1, 3, 6 (Pillow's default) and
9, and the deformation itself is timed too, all interleaved (every contender
once per round, the order rotating). Times are min and median over the rounds,
wall and CPU; OpenCV on 1 thread, as in a ``generate`` worker. The last line
gives level 6's share of a copy's CPU time (deformation + encoding).

    python benchmarks/bench_png.py --rounds 5
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import conditions, interleaved, print_conditions, print_load_after  # noqa: E402
from bench_generate import make_mask  # noqa: E402

from nsegaug.deform import deform  # noqa: E402
from nsegaug.io import encode_label, read_label  # noqa: E402
from nsegaug.palettes import colour_table, flat_palette  # noqa: E402
from nsegaug.params import DeformParams  # noqa: E402

LEVELS = (0, 1, 3, 6, 9)


def source(height: int, width: int):
    """The map as ``generate`` reads it: a palette PNG, through nsegaug's reader."""
    labels = make_mask(0, height, width, seed=0)
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels).tobytes())
    image.putpalette(flat_palette(colour_table()))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return read_label("scene_0000.png", data=buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    found = conditions(cv2=cv2.getNumThreads())
    print_conditions(found)
    like = source(args.height, args.width)
    params = DeformParams()
    copy = deform(like.indices, np.random.RandomState(0), params).segment
    contenders = {"deformation": lambda index: deform(like.indices, np.random.RandomState(index), params)}
    contenders.update({f"level {level}": lambda _, level=level: encode_label(like, copy, level) for level in LEVELS})
    sizes = {f"level {level}": len(encode_label(like, copy, level)) for level in LEVELS}
    timings = {name: timing.summary(1e3) for name, timing in interleaved(contenders, args.rounds).items()}
    print(f"{args.height}x{args.width}, ms over {args.rounds} rounds")
    print(f"  {'contender':<12} {'wall min':>9} {'wall med':>9} {'CPU min':>9} {'CPU med':>9} {'size':>10}")
    for name, ms in timings.items():
        size = f"{sizes[name] / 1e3:.0f} KB" if name in sizes else ""
        print(
            f"  {name:<12} {ms['wall_min']:>9.1f} {ms['wall_median']:>9.1f} {ms['cpu_min']:>9.1f} "
            f"{ms['cpu_median']:>9.1f} {size:>10}"
        )
    encode, engine = timings["level 6"]["cpu_median"], timings["deformation"]["cpu_median"]
    print(f"level 6 encoding: {100 * encode / (encode + engine):.0f} % of a copy's CPU time (median)")
    print_load_after(found)


if __name__ == "__main__":
    main()
