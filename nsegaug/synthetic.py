"""Deterministic street-like label maps, for tests, benchmarks and the example data."""

from __future__ import annotations

import cv2
import numpy as np

# Cityscapes train ids of the classes the scenes are made of.
SKY, BUILDING, VEGETATION, SIDEWALK, ROAD = 10, 2, 8, 1, 0
OBJECT_CLASSES = (3, 4, 5, 6, 7, 11, 12, 13, 14, 17, 18)  # wall ... bicycle
IGNORE = 255


def street_scene(
    height: int,
    width: int,
    n_objects: int,
    seed: int = 0,
    ignore_band: int = 0,
) -> np.ndarray:
    """A uint8 label map: sky, buildings, vegetation, sidewalk and road bands
    with wavy borders, plus ``n_objects`` small objects (discs, boxes, poles)
    of 3 to ~40 px across; ``ignore_band`` > 0 draws a VOC-style band of
    255 of that width along the objects' borders.
    """
    rng = np.random.default_rng(seed)
    segment = np.full((height, width), SKY, dtype=np.uint8)
    cols = np.arange(width)
    # Wavy horizontal borders, from top to bottom.
    for cls, level in ((BUILDING, 0.25), (VEGETATION, 0.45), (SIDEWALK, 0.6), (ROAD, 0.7)):
        phase, period, amplitude = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.5) * width, 0.04 * height
        border = (level * height + amplitude * np.sin(2 * np.pi * cols / period + phase)).astype(int)
        segment[np.arange(height)[:, None] >= border[None, :]] = cls

    objects = np.zeros((height, width), dtype=np.uint8)
    for _ in range(n_objects):
        cls = int(rng.choice(OBJECT_CLASSES))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = max(1, int(rng.uniform(0.003, 0.02) * max(height, width)))
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.circle(objects, (x, y), size // 2 + 1, cls + 1, -1)
        elif shape == 1:
            cv2.rectangle(objects, (x, y), (x + size, y + size // 2 + 1), cls + 1, -1)
        else:  # a pole: thin and tall
            cv2.rectangle(objects, (x, y), (x + max(1, size // 6), y + 3 * size), cls + 1, -1)
    drawn = objects > 0
    segment[drawn] = objects[drawn] - 1

    if ignore_band > 0:
        kernel = np.ones((2 * ignore_band + 1, 2 * ignore_band + 1), np.uint8)
        grown = cv2.dilate(drawn.view(np.uint8), kernel).astype(bool)
        segment[grown & ~drawn] = IGNORE
    return segment
