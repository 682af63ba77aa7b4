"""A look at the third study's data: training patches with the truth's outline (green) and the reader's (red).

python examples/robustness/third/show_data.py WORK/data examples/robustness/third/data.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

COLUMNS, ROWS, ZOOM = 4, 3, 2
GREEN, RED = (40, 220, 40), (235, 40, 40)


def outlined(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    rgb = np.repeat(image[..., None], 3, axis=2)
    rgb[mask & ~ndimage.binary_erosion(mask)] = colour
    return rgb


def main(data: Path, out: Path) -> None:
    names = sorted(path.name for path in (data / "train" / "images").glob("*.png"))[: COLUMNS * ROWS]
    tiles = []
    for name in names:
        image = np.array(Image.open(data / "train" / "images" / name).convert("L"))
        truth = np.array(Image.open(data / "train" / "labels" / name)) > 0
        reader = np.array(Image.open(data / "train" / "reader" / name)) > 0
        gap = np.full((image.shape[0], 2, 3), 255, dtype=np.uint8)
        tiles.append(
            np.hstack(
                [
                    np.repeat(image[..., None], 3, axis=2),
                    outlined(image, truth, GREEN),
                    outlined(image, reader, RED),
                    gap,
                    gap,
                ]
            )
        )
    rows = [np.hstack(tiles[i : i + COLUMNS]) for i in range(0, len(tiles), COLUMNS)]
    grid = np.vstack([np.vstack([row, np.full((4, row.shape[1], 3), 255, np.uint8)]) for row in rows])
    picture = Image.fromarray(grid).resize((grid.shape[1] * ZOOM, grid.shape[0] * ZOOM), Image.NEAREST)
    picture.save(out, optimize=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
