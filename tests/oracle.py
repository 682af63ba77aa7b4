"""A plain, obviously-right implementation of NSegment+ and NSegment: the oracle.

It follows the method step by step, as its reference code does, with no
attempt at speed: every class is labelled on its own and every component is
found by scanning the whole image. The fast engine in ``nsegaug.deform`` is
checked against it; ``benchmarks/bench_engine.py`` times it as the naive
baseline.
"""

from __future__ import annotations

import cv2
import numpy as np


def oracle_nsegment_plus(segment, random_state, alpha_sigma_list, area_thresh=1000, ignore_index=None):
    """Return (deformed map, alpha, sigma, suppression mask)."""
    height, width = segment.shape

    # Step 1: uniform noise for x, then y, then the (alpha, sigma) pair.
    dx = 2 * random_state.rand(height, width) - 1
    dy = 2 * random_state.rand(height, width) - 1
    alpha, sigma = alpha_sigma_list[random_state.randint(0, len(alpha_sigma_list))]
    dx = alpha * dx
    dy = alpha * dy

    # Step 3: suppress displacement in a padded box around each small component.
    mask = np.zeros((height, width), dtype=bool)
    pad = int(alpha // 2)
    for y1, x1, y2, x2 in oracle_small_component_boxes(segment, area_thresh, ignore_index):
        mask[max(y1 - pad, 0) : min(y2 + pad, height - 1) + 1, max(x1 - pad, 0) : min(x2 + pad, width - 1) + 1] = True
    dx[mask] = 0
    dy[mask] = 0

    # Step 2: Gaussian smoothing of the fields.
    dx = cv2.GaussianBlur(dx, (0, 0), sigma)
    dy = cv2.GaussianBlur(dy, (0, 0), sigma)

    # Step 4: nearest-neighbour warp of the label map only.
    return _warp(segment, dx, dy), alpha, sigma, mask


def oracle_small_component_boxes(segment, area_thresh, ignore_index=None):
    """Inclusive boxes (y1, x1, y2, x2) of the 8-connected components of area <= area_thresh, class by class."""
    boxes = []
    for class_id in np.unique(segment):
        if class_id == -1 or (ignore_index is not None and class_id == ignore_index):
            continue
        class_mask = (segment == class_id).astype(np.uint8)
        count, components = cv2.connectedComponents(class_mask, connectivity=8)
        for component_id in range(1, count):
            component = components == component_id
            if component.sum() > area_thresh:
                continue
            ys, xs = np.where(component)
            boxes.append((int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())))
    return boxes


def oracle_nsegment(segment, random_state, alpha_sigma_list):
    """The pilot method: the pair is drawn first, and nothing is suppressed."""
    height, width = segment.shape
    alpha, sigma = alpha_sigma_list[random_state.randint(0, len(alpha_sigma_list))]
    dx = alpha * (2 * random_state.rand(height, width) - 1)
    dy = alpha * (2 * random_state.rand(height, width) - 1)
    dx = cv2.GaussianBlur(dx, (0, 0), sigma)
    dy = cv2.GaussianBlur(dy, (0, 0), sigma)
    return _warp(segment, dx, dy), alpha, sigma


def _warp(segment, dx, dy):
    height, width = segment.shape
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    map_x = np.clip(x + dx, 0, width - 1).astype(np.float32)
    map_y = np.clip(y + dy, 0, height - 1).astype(np.float32)
    # Nearest neighbour, coordinates rounded half to even like cv2.remap; done
    # with NumPy indexing so it works for every integer dtype.
    return segment[np.rint(map_y).astype(np.intp), np.rint(map_x).astype(np.intp)]
