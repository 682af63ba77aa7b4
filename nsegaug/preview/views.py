"""Source masks with their photos and copies as full-resolution arrays; copies deformed as generate does."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..copies import deformed_copies
from ..deform import apply_deformation, draw_coin, draw_deformation, small_component_boxes
from ..errors import UsageError
from ..params import DeformParams
from ..seeding import random_state
from .colours import ColourMap
from .tiles import clip_crop

# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class CopyView:
    """One deformed (or coin-skipped) copy at full resolution."""

    segment: np.ndarray
    copy_index: int  # 1..K; 0 for a grid cell, which is no copy of a generate run
    alpha: float | None  # None: not deformed (the --prob coin)
    sigma: float | None
    title: str | None = None  # the caption's first line where it is not "copy k: alpha, sigma" (a noisy map)

    @property
    def deformed(self) -> bool:
        return self.alpha is not None


@dataclass(frozen=True)
class MaskView:
    """A source mask, its photo and its copies, as full-resolution arrays of one size."""

    label: str  # relative path, as in the manifest
    segment: np.ndarray
    colours: ColourMap
    image: np.ndarray | None = None  # (h, w, 3) uint8
    image_note: str | None = None  # why there is no photo ("no image", "image missing"); None: none expected
    copies: tuple[CopyView, ...] = ()
    crop: tuple[int, int, int, int] | None = None  # (x, y, w, h) in the full map, once cropped
    full_shape: tuple[int, int] | None = None  # (h, w) before the crop
    spacing: tuple[float, float, float] | None = None  # a volume's voxel sides in mm (for units mm)

    @property
    def wants_image(self) -> bool:
        return self.image is not None or self.image_note is not None


def crop_view(view: MaskView, crop: tuple[int, int, int, int]) -> MaskView:
    """The view restricted to ``crop`` (x, y, w, h), clipped to the map; PreviewError if nothing is left.

    Crops are taken after deforming the whole map, so a cropped copy shows
    exactly the pixels ``generate`` wrote there.
    """
    shape = view.segment.shape
    box = clip_crop(crop, shape)
    if box is None:
        raise UsageError(f"{view.label}: crop {','.join(map(str, crop))} lies outside the {shape[1]}x{shape[0]} map")
    x, y, width, height = box
    window = (slice(y, y + height), slice(x, x + width))
    return replace(
        view,
        segment=view.segment[window],
        image=None if view.image is None else view.image[window],
        copies=tuple(replace(copy, segment=copy.segment[window]) for copy in view.copies),
        crop=box,
        full_shape=shape,
    )


def volume_planes(view: MaskView) -> list[MaskView]:
    """A volume's view as three views of orthogonal slices through the place its copies changed most
    ([`nsegaug.volume.slices.changed_centre`][nsegaug.volume.slices.changed_centre]); a 2-D map's view as it is."""
    if view.segment.ndim != 3:
        return [view]
    from ..volume.slices import changed_centre, plane

    centre = changed_centre(view.segment, [copy.segment for copy in view.copies])
    return [
        replace(
            view,
            label=f"{view.label}, axis {axis} = {index}",
            segment=plane(view.segment, axis, index),
            copies=tuple(replace(copy, segment=plane(copy.segment, axis, index)) for copy in view.copies),
        )
        for axis, index in enumerate(centre)
    ]


# --------------------------------------------------------------------------- deformation, as generate does it


def generated_copies(
    segment: np.ndarray,
    key: str,
    copies: int,
    params: DeformParams,
    seed: int = 0,
    prob: float = 1.0,
    spacing: tuple[float, float, float] | None = None,
) -> tuple[CopyView, ...]:
    """Copies 1..``copies`` of a mask exactly as ``nsegaug generate`` writes them for sample ``key``."""
    return tuple(
        CopyView(result.segment, k, result.alpha, result.sigma) if result else CopyView(segment, k, None, None)
        for k, result in deformed_copies(segment, key, copies, params, seed, prob, spacing)
    )


def grid_copies(
    segment: np.ndarray, key: str, params: DeformParams, seed: int = 0, spacing=None
) -> tuple[CopyView, ...]:
    """The mask under every (alpha, sigma) pair, all from one noise draw.

    One draw for all cells, so cells differ by alpha and sigma only. It is
    the draw of generate's copy 1 (coin first, then the fields), so the cell
    of the pair generate drew for copy 1 is that copy, pixel for pixel.
    """
    state = random_state(seed, key, 1)
    draw_coin(state, 1.0)  # generate's prob coin, drawn and not used: the grid deforms every cell
    if segment.ndim == 3:
        return _volume_grid(segment, state, params, spacing)
    draw = draw_deformation(state, segment.shape, params)
    boxes = small_component_boxes(segment, params.area_thresh, params.ignore_index) if params.suppresses else None
    return tuple(
        CopyView(
            apply_deformation(segment, replace(draw, alpha=alpha, sigma=sigma), params, boxes).segment, 0, alpha, sigma
        )
        for alpha, sigma in params.alpha_sigma
    )


def _volume_grid(segment: np.ndarray, state, params: DeformParams, spacing) -> tuple[CopyView, ...]:
    from ..volume.engine import apply_volume_deformation, draw_volume_deformation, volume_boxes

    draw = draw_volume_deformation(state, segment.shape, params)
    boxes = volume_boxes(segment, params, spacing) if params.suppresses else None
    cells = []
    for alpha, sigma in params.alpha_sigma:  # the engine overwrites the fields it is given: each cell a copy
        cell = replace(draw, noise=draw.noise.copy(), alpha=alpha, sigma=sigma)
        cells.append(CopyView(apply_volume_deformation(segment, cell, params, spacing, boxes).segment, 0, alpha, sigma))
    return tuple(cells)
