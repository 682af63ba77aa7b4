"""NSegment+ on label volumes, as pure functions: noise fields, 3D suppression, 3D blur, warp.

The 2D engine's steps ([`nsegaug.deform`][nsegaug.deform]), one axis more:

1. ``uniform noise``: three fields ``u`` in [0, 1), one per array axis (0, 1,
   2, drawn in that order, each in C order), then the (alpha, sigma) pair
   index, as the 2D reference draws x, y, then the pair (the pilot NSegment
   draws the pair first); mapped to ``alpha_a * (2u - 1)``
   ([`draw_volume_noise`][nsegaug.volume.engine.draw_volume_noise], the only function that consumes randomness);
2. ``suppression``: the fields are zeroed in the bounding boxes of the small
   26-connected components (size <= ``area_thresh``), grown by ``alpha_a // 2``
   voxels along each axis, as 2D grows them by ``alpha // 2``
   ([`nsegaug.volume.components`][nsegaug.volume.components]);
3. ``smoothing``: a separable 3D Gaussian, OpenCV's kernel of the 2D engine
   (``8 sigma + 1`` taps) along axis 2, then 1, then 0, with reflect-101
   borders ([`smooth_volume`][nsegaug.volume.engine.smooth_volume]);
4. ``warp``: nearest-neighbour resampling of the labels only,
   ``out[p] = segment[rint(clip(p + d(p)))]``, rounding half to even as the
   2D engine does ([`warp_volume`][nsegaug.volume.engine.warp_volume]), a band of axis-0 slices at a time.

Units: with ``params.units == "voxels"`` alpha, sigma and ``area_thresh`` are
voxels (and voxel counts); with ``"mm"`` they are millimetres (and mm³) and
the volume's ``spacing`` (the NIfTI header's pixdim) turns them into voxels
per axis: ``alpha_a = alpha / spacing_a``, ``sigma_a = sigma / spacing_a``,
a component's size is its voxel count times the voxel's volume. So on
0.7 x 0.7 x 2.5 mm voxels a 5 mm sigma is 7.1, 7.1 and 2 voxels: the
deformation is the same in every direction of the body.

``precision="float64"`` is the reference: ``tests/oracle3d.py`` repeats it
with whole-volume NumPy and SciPy calls and gets the same voxels, bit for
bit. ``"float32"`` (the default) rounds ``u`` to float32 and blurs with
OpenCV's vectorised filters: it agrees on all but a few voxels in a million.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..deform import DeformResult, displacement_field
from ..errors import UsageError
from ..params import DEFAULT_PARAMS, UNITS, VARIANTS, DeformParams
from .components import small_component_boxes_3d, suppression_mask_3d

# Bumped whenever the engine's output changes for the same draw (recorded in a run's metadata).
VOLUME_ENGINE_VERSION = 1
# Voxels per band of the warp: the band's coordinates and indices (about 40 bytes a voxel) stay small.
_BAND_VOXELS = 1 << 20
# Columns per chunk of the float32 blur along axis 0: the filter's rows of a chunk stay in the cache.
_CHUNK_COLUMNS = 1 << 12
# Peak bytes per voxel of deform_volume beyond the source and the result: the three fields (float32: 12,
# float64: 24) and the suppression mask (1). The labelling before them needs less (cc3d's uint32 labels: 4).
FIELD_BYTES_PER_VOXEL = {"float32": 13, "float64": 25}


@dataclass(frozen=True)
class VolumeDraw:
    """The random part of one volume deformation: the fields ``u`` in [0, 1) (shape ``(3, *volume)``, float64,
    or float32 for the float32 engine) and the pair drawn. Keep it to replay: see
    [`apply_volume_deformation`][nsegaug.volume.apply_volume_deformation]."""

    noise: np.ndarray
    alpha: float
    sigma: float


def check_label_volume(segment: np.ndarray) -> None:
    """Raise [`UsageError`][nsegaug.errors.UsageError] unless ``segment`` is a non-empty 3-D integer array."""
    if not isinstance(segment, np.ndarray) or segment.ndim != 3 or segment.size == 0:
        shape = getattr(segment, "shape", type(segment).__name__)
        raise UsageError(f"a label volume must be a non-empty 3-D NumPy array, got {shape}")
    if not (np.issubdtype(segment.dtype, np.integer) or segment.dtype == np.bool_):
        raise UsageError(f"a label volume must hold integer class indices, got dtype {segment.dtype}")


def check_spacing(spacing, units: str) -> tuple[float, float, float] | None:
    """The voxel's sides in mm as three positive floats (None where ``units`` is voxels and none is given)."""
    if units not in UNITS:
        raise UsageError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
    if spacing is None:
        if units == "mm":
            raise UsageError("units mm needs the voxel spacing (the volume's pixdim), and none was given")
        return None
    sides = tuple(float(side) for side in spacing)
    if len(sides) != 3 or not all(np.isfinite(side) and side > 0 for side in sides):
        raise UsageError(f"voxel spacing must be three sizes > 0 in mm, got {spacing!r}")
    return sides


def voxel_scales(value: float, spacing: tuple[float, float, float] | None, units: str) -> tuple[float, float, float]:
    """A length (alpha or sigma) in voxels along each axis: itself in voxels, ``value / spacing_a`` in mm."""
    if units == "voxels":
        return (float(value),) * 3
    return tuple(float(value) / side for side in spacing)


def voxel_volume(spacing: tuple[float, float, float] | None, units: str) -> float:
    """What one voxel counts for against ``area_thresh``: 1 (voxels), or its volume in mm³."""
    return 1.0 if units == "voxels" else float(np.prod(spacing, dtype=np.float64))


def suppression_pads(alpha: float, spacing, units: str) -> tuple[int, int, int]:
    """The margin of the suppression boxes along each axis: ``alpha_a // 2`` voxels, as 2D's ``alpha // 2``."""
    return tuple(int(scale // 2) for scale in voxel_scales(alpha, spacing, units))


def gaussian_kernel(sigma: float, dtype=np.float64) -> np.ndarray:
    """OpenCV's Gaussian for ``sigma`` (that of the 2D engine: ``8 sigma + 1`` taps, rounded to odd)."""
    return _kernel(float(sigma), np.dtype(dtype).name)


@lru_cache(maxsize=32)
def _kernel(sigma: float, dtype: str) -> np.ndarray:
    taps = int(round(sigma * 8 + 1)) | 1
    kernel = cv2.getGaussianKernel(taps, sigma, cv2.CV_64F).ravel().astype(dtype)
    kernel.flags.writeable = False
    return kernel


def draw_volume_noise(
    random_state: np.random.RandomState, shape: tuple[int, int, int], n_pairs: int, variant: str, dtype=np.float64
) -> tuple[np.ndarray, int]:
    """The three uniform fields, shape ``(3, *shape)``, and the pair index, in the engine's order (step 1).

    Drawn a slice at a time straight into ``dtype`` (a stream filled in
    blocks is the same stream), so the float32 engine never holds the
    float64 fields.
    """
    if variant not in VARIANTS:
        raise UsageError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "nsegment":
        pair_index = int(random_state.randint(0, n_pairs))
    fields = np.empty((3, *shape), dtype=dtype)
    for field in fields:
        for band in field:
            band[...] = random_state.random_sample(band.shape)
    if variant == "nsegment+":
        pair_index = int(random_state.randint(0, n_pairs))
    return fields, pair_index


def draw_volume_deformation(
    random_state: np.random.RandomState, shape: tuple[int, int, int], params: DeformParams = DEFAULT_PARAMS
) -> VolumeDraw:
    """Draw one deformation of a volume of ``shape`` (fields in the precision ``params`` asks for)."""
    dtype = np.float32 if params.precision == "float32" else np.float64
    noise, pair_index = draw_volume_noise(random_state, shape, len(params.alpha_sigma), params.variant, dtype)
    alpha, sigma = params.alpha_sigma[pair_index]
    return VolumeDraw(noise, alpha, sigma)


def smooth_volume(field: np.ndarray, sigmas: tuple[float, float, float]) -> np.ndarray:
    """Step 3 on one field, in place: the 1-D Gaussian of ``sigmas[a]`` along axis 2, then 1, then 0.

    float64: ``scipy.ndimage.correlate1d`` with reflect-101 borders
    (``mode="mirror"``), axis by axis, as the oracle does. float32: the same
    kernels with OpenCV's vectorised row and column filters, a slice of
    axis 0 at a time, then axis 0 as the rows of a (D0, D1 * D2) image.
    """
    if field.dtype == np.float64:
        from scipy import ndimage

        for axis in (2, 1, 0):
            ndimage.correlate1d(field, gaussian_kernel(sigmas[axis]), axis=axis, mode="mirror", output=field)
        return field
    one = np.ones(1, dtype=np.float32)
    row, column = gaussian_kernel(sigmas[2], np.float32), gaussian_kernel(sigmas[1], np.float32)
    for plane in field:
        cv2.sepFilter2D(plane, -1, row, column, dst=plane, borderType=cv2.BORDER_REFLECT_101)
    depth = gaussian_kernel(sigmas[0], np.float32)
    rows = field.reshape(field.shape[0], -1)
    for start in range(0, rows.shape[1], _CHUNK_COLUMNS):
        chunk = rows[:, start : start + _CHUNK_COLUMNS]
        chunk[...] = cv2.sepFilter2D(chunk, -1, one, depth, borderType=cv2.BORDER_REFLECT_101)
    return field


def warp_volume(segment: np.ndarray, fields: np.ndarray, spacing, units: str) -> tuple[np.ndarray, float, float]:
    """Step 4: the warped volume, and the mean and largest displacement applied (after clipping).

    A band of axis-0 slices at a time, so the coordinates are never held for
    the whole volume. Displacements are in voxels, or in mm with units mm.
    """
    depth, height, width = segment.shape
    out = np.empty_like(segment)
    flat = segment.reshape(-1)
    step = max(1, _BAND_VOXELS // (height * width))
    grids = [np.arange(size, dtype=fields.dtype) for size in segment.shape]
    sides = np.asarray(spacing if units == "mm" else (1.0, 1.0, 1.0), dtype=fields.dtype)
    fixed_sum, largest = 0.0, 0.0
    for top in range(0, depth, step):
        band = slice(top, min(top + step, depth))
        shape = (band.stop - band.start, height, width)
        squared = np.zeros(shape, dtype=fields.dtype)
        index = np.zeros(shape, dtype=np.intp)
        for axis, grid in enumerate(grids):
            coordinate = fields[axis, band] + _along(grid[band] if axis == 0 else grid, axis)
            np.clip(coordinate, 0, segment.shape[axis] - 1, out=coordinate)
            index *= segment.shape[axis]
            index += np.rint(coordinate).astype(np.intp)
            coordinate -= _along(grid[band] if axis == 0 else grid, axis)
            coordinate *= sides[axis]
            squared += coordinate * coordinate
        out[band] = flat[index.reshape(-1)].reshape(shape)
        magnitude = np.sqrt(squared, out=squared)
        largest = max(largest, float(magnitude.max()))
        # As the 2D engine's mean: fixed to 1/256 voxel, whole numbers that float64 adds exactly in any order.
        fixed = np.rint(np.multiply(magnitude, 256.0, out=magnitude), out=magnitude)
        fixed_sum += float(fixed.sum(dtype=np.float64))
    return out, fixed_sum / 256.0 / segment.size, largest


def _along(grid: np.ndarray, axis: int) -> np.ndarray:
    """A 1-D grid shaped to broadcast along ``axis`` of a 3-D band."""
    return grid.reshape([-1 if position == axis else 1 for position in range(3)])


def apply_volume_deformation(
    segment: np.ndarray,
    draw: VolumeDraw,
    params: DeformParams = DEFAULT_PARAMS,
    spacing=None,
    boxes: np.ndarray | None = None,
) -> DeformResult:
    """Deform ``segment`` by a drawn deformation: steps 2 to 4 (the draw's fields are overwritten).

    ``spacing``: the voxel's sides in mm along axes 0, 1, 2 (needed with
    ``params.units == "mm"``). ``boxes``: the volume's
    [`small_component_boxes_3d`][nsegaug.volume.components.small_component_boxes_3d], when several
    copies share them. Returns a [`DeformResult`][nsegaug.deform.DeformResult] whose
    displacements are in voxels, or mm with units mm.
    """
    check_label_volume(segment)
    spacing = check_spacing(spacing, params.units)
    if draw.noise.shape != (3, *segment.shape):
        raise UsageError(f"noise fields {draw.noise.shape} do not match the volume {segment.shape}")
    fields = draw.noise
    alphas = voxel_scales(draw.alpha, spacing, params.units)
    for field, alpha in zip(fields, alphas, strict=True):
        if fields.dtype == np.float32:
            displacement_field(field, alpha, "float32", out=field)
        else:  # the float64 steps of displacement_field, in place: the same numbers, no second field
            field *= 2.0
            field -= 1.0
            field *= alpha
    suppressed_fraction = 0.0
    if params.suppresses:
        if boxes is None:
            boxes = volume_boxes(segment, params, spacing)
        if len(boxes):
            mask = suppression_mask_3d(segment.shape, boxes, suppression_pads(draw.alpha, spacing, params.units))
            for field in fields:
                np.copyto(field, 0, where=mask)
            suppressed_fraction = float(np.count_nonzero(mask)) / mask.size
            del mask
    sigmas = voxel_scales(draw.sigma, spacing, params.units)
    for field in fields:
        smooth_volume(field, sigmas)
    deformed, mean_displacement, max_displacement = warp_volume(segment, fields, spacing, params.units)
    return DeformResult(
        segment=deformed,
        alpha=draw.alpha,
        sigma=draw.sigma,
        suppressed_fraction=suppressed_fraction,
        mean_displacement=mean_displacement,
        max_displacement=max_displacement,
        changed_fraction=float(np.count_nonzero(deformed != segment)) / segment.size,
    )


def volume_boxes(segment: np.ndarray, params: DeformParams, spacing=None) -> np.ndarray:
    """The small components' boxes of ``segment`` under ``params`` (sizes in voxels, or mm³ with units mm)."""
    spacing = check_spacing(spacing, params.units)
    return small_component_boxes_3d(
        segment, params.area_thresh, params.ignore_index, voxel_volume(spacing, params.units)
    )


def deform_volume(
    segment: np.ndarray,
    random_state: np.random.RandomState,
    params: DeformParams = DEFAULT_PARAMS,
    spacing=None,
    boxes: np.ndarray | None = None,
) -> DeformResult:
    """Deform one label volume with random draws from ``random_state`` (see
    [`apply_volume_deformation`][nsegaug.volume.apply_volume_deformation])."""
    check_label_volume(segment)
    spacing = check_spacing(spacing, params.units)
    if params.suppresses and boxes is None:
        boxes = volume_boxes(segment, params, spacing)  # first: its labels are freed before the fields exist
    draw = draw_volume_deformation(random_state, segment.shape, params)
    return apply_volume_deformation(segment, draw, params, spacing, boxes)


def deform_bytes_per_voxel(params: DeformParams, label_itemsize: int) -> int:
    """Bytes per voxel that [`deform_volume`][nsegaug.volume.deform_volume] adds at its peak to the source it is given:
    the fields, the suppression mask, the result, and the result's file bytes as it is written (at most 8 a voxel)."""
    return FIELD_BYTES_PER_VOXEL[params.precision] + label_itemsize + 8


def check_volume_fits(path, segment: np.ndarray, params: DeformParams) -> None:
    """A [`LabelFormatError`][nsegaug.errors.LabelFormatError] naming ``path`` when deforming ``segment`` needs more
    memory than this process can still take (refused before the fields are allocated, not killed midway)."""
    from .._resources.memory import available_memory, size_text
    from ..errors import LabelFormatError

    per_voxel = deform_bytes_per_voxel(params, segment.dtype.itemsize)
    needed, available = segment.size * per_voxel, available_memory()
    if available is not None and needed > available:
        raise LabelFormatError(
            path,
            f"deforming this {' x '.join(map(str, segment.shape))} volume needs about {size_text(needed)} of "
            f"memory ({per_voxel} bytes a voxel, {params.precision}), and {size_text(available)} is available",
        )
