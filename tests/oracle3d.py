"""A plain, obviously-right implementation of NSegment+ on a 3D label volume: the 3D oracle.

The 2D oracle's steps (``tests/oracle.py``) with one axis more, whole-volume
NumPy and SciPy calls and no attempt at speed: every class is labelled on its
own with ``scipy.ndimage.label`` and every component measured by counting its
voxels. ``nsegaug.volume.engine`` in float64 matches it voxel for voxel.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage


def oracle_nsegment_plus_3d(
    segment, random_state, alpha_sigma_list, area_thresh=1000, ignore_index=None, spacing=None, variant="nsegment+"
):
    """Return (deformed volume, alpha, sigma, suppression mask). ``spacing``: sizes in mm (None: voxels)."""
    shape = segment.shape
    sides = (1.0, 1.0, 1.0) if spacing is None else tuple(float(side) for side in spacing)

    # Step 1: uniform noise for axis 0, 1, 2, then the (alpha, sigma) pair (the pilot draws the pair first).
    if variant == "nsegment":
        alpha, sigma = alpha_sigma_list[random_state.randint(0, len(alpha_sigma_list))]
    fields = [random_state.rand(*shape) for _ in range(3)]
    if variant == "nsegment+":
        alpha, sigma = alpha_sigma_list[random_state.randint(0, len(alpha_sigma_list))]
    alphas = [float(alpha) / side for side in sides]  # in voxels along each axis
    fields = [((field * 2.0) - 1.0) * alpha_axis for field, alpha_axis in zip(fields, alphas, strict=True)]

    # Step 2: no displacement in a box around each small component, grown by alpha // 2 voxels per axis.
    mask = np.zeros(shape, dtype=bool)
    if variant == "nsegment+":
        voxel_volume = float(np.prod(sides))
        pads = [int(alpha_axis // 2) for alpha_axis in alphas]
        for box in oracle_small_component_boxes_3d(segment, area_thresh, ignore_index, voxel_volume):
            low = [max(box[axis] - pads[axis], 0) for axis in range(3)]
            high = [min(box[axis + 3] + pads[axis], shape[axis] - 1) + 1 for axis in range(3)]
            mask[low[0] : high[0], low[1] : high[1], low[2] : high[2]] = True
    for field in fields:
        field[mask] = 0

    # Step 3: a Gaussian along axis 2, then 1, then 0, with OpenCV's kernel and reflect-101 borders.
    for field in fields:
        for axis in (2, 1, 0):
            sigma_axis = float(sigma) / sides[axis]
            taps = int(round(sigma_axis * 8 + 1)) | 1
            kernel = cv2.getGaussianKernel(taps, sigma_axis, cv2.CV_64F).ravel()
            field[...] = ndimage.correlate1d(field, kernel, axis=axis, mode="mirror")

    # Step 4: nearest-neighbour warp of the labels only, coordinates rounded half to even.
    grid = np.meshgrid(*[np.arange(size, dtype=np.float64) for size in shape], indexing="ij")
    index = [np.rint(np.clip(grid[axis] + fields[axis], 0, shape[axis] - 1)).astype(np.intp) for axis in range(3)]
    return segment[index[0], index[1], index[2]], alpha, sigma, mask


def oracle_small_component_boxes_3d(segment, area_thresh, ignore_index=None, voxel_volume=1.0):
    """Inclusive boxes (z1, y1, x1, z2, y2, x2) of the 26-connected components of size <= the threshold."""
    boxes = []
    for class_id in np.unique(segment):
        if class_id == -1 or (ignore_index is not None and class_id == ignore_index):
            continue
        components, count = ndimage.label(segment == class_id, structure=np.ones((3, 3, 3)))
        for component_id in range(1, count + 1):
            component = components == component_id
            if component.sum() * voxel_volume > area_thresh:
                continue
            where = np.nonzero(component)
            boxes.append(tuple(int(axis.min()) for axis in where) + tuple(int(axis.max()) for axis in where))
    return sorted(boxes)
