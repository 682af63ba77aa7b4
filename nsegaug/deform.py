"""The NSegment+ method as pure functions: noise fields, suppression, blur, warp.

Read next to the paper (arXiv 2508.10383), the steps are:

1. ``uniform noise``: fields ``u`` in [0, 1) for x and y, mapped to
   ``alpha * (2u - 1)``;
2. ``suppression``: zero the noise in padded boxes around small connected
   components (area <= ``area_thresh``), so small objects are not destroyed;
3. ``smoothing``: Gaussian blur of both fields with ``sigma``
   (`smooth_field`, OpenCV's ``GaussianBlur`` as the reference calls it,
   or `smooth_field_transposed`, the same kernel as two row passes);
4. ``warp``: nearest-neighbour resampling of the label map only
   (`sampling_maps`, `warp_labels`).

Nothing here draws random numbers except [`draw_noise`][nsegaug.deform.draw_noise], which consumes a
``RandomState`` in exactly the order of the method's reference code, so a
seeded state gives the reference's result. Like kornia's
``generate_parameters`` / ``apply_transform``, a deformation is a draw
([`draw_deformation`][nsegaug.deform.draw_deformation], a [`DeformDraw`][nsegaug.deform.DeformDraw] that can be kept and
replayed) and a pure application of it ([`apply_deformation`][nsegaug.deform.apply_deformation]);
[`deform`][nsegaug.deform.deform] does both. The parameters are one
[`nsegaug.params.DeformParams`][nsegaug.params.DeformParams].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bands, components
from .draws import FastRows, NoiseRows, ReferenceRows
from .fields import _scratch, draw_noise_float32, smooth_field, smooth_field_transposed
from .params import DEFAULT_ENGINE, DEFAULT_PARAMS, VARIANTS, DeformParams
from .warp import WarpTotals, sampling_maps, transpose, warp_labels, warp_measured  # noqa: F401

BLURS = ("reference", "rows")
"""The blurs of step 3: "reference" is the reference code's ``cv2.GaussianBlur``; "rows" is the same kernel,
applied as two row passes with a transpose between them."""
# The default engine (params.ENGINES says what each one is; a run records the one it used).
ENGINE_VERSION = DEFAULT_ENGINE


@dataclass(frozen=True)
class DeformResult:
    """A deformed label map and what the deformation did to it."""

    segment: np.ndarray
    alpha: float
    sigma: float
    suppressed_fraction: float
    mean_displacement: float
    max_displacement: float
    changed_fraction: float

    def stats(self) -> dict:
        """Everything but the map, as plain Python numbers (JSON-ready)."""
        return {
            "alpha": float(self.alpha),
            "sigma": float(self.sigma),
            "suppressed_fraction": float(self.suppressed_fraction),
            "mean_displacement": float(self.mean_displacement),
            "max_displacement": float(self.max_displacement),
            "changed_fraction": float(self.changed_fraction),
        }


def check_label_map(segment: np.ndarray) -> None:
    """Raise ValueError unless ``segment`` is a non-empty 2-D integer array."""
    if not isinstance(segment, np.ndarray):
        raise ValueError(f"label map must be a NumPy array, got {type(segment).__name__}")
    if segment.ndim != 2:
        raise ValueError(
            f"label map must be 2-D (H, W), got shape {segment.shape}; "
            "colour-coded maps must be converted to class indices first"
        )
    if segment.size == 0:
        raise ValueError(f"label map is empty (shape {segment.shape})")
    if not (np.issubdtype(segment.dtype, np.integer) or segment.dtype == np.bool_):
        raise ValueError(
            f"label map must hold integer class indices, got dtype {segment.dtype}; "
            "labels are never interpolated, so float maps are refused"
        )


def draw_noise(
    random_state: np.random.RandomState,
    shape: tuple[int, int],
    n_pairs: int,
    variant: str = "nsegment+",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw the uniform fields in [0, 1) and the (alpha, sigma) index.

    The order of draws is the reference code's: NSegment+ draws the x field,
    the y field, then the pair index; the pilot NSegment draws the index first.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "nsegment":
        pair_index = int(random_state.randint(0, n_pairs))
    noise_x = random_state.rand(*shape)
    noise_y = random_state.rand(*shape)
    if variant == "nsegment+":
        pair_index = int(random_state.randint(0, n_pairs))
    return noise_x, noise_y, pair_index


def draw_coin(random_state: np.random.RandomState, prob: float) -> bool:
    """The method's coin: deform when ``rand() <= prob`` (its ``__call__`` skips when ``rand() > p``)."""
    return bool(random_state.rand() <= prob)


def displacement_field(
    noise: np.ndarray, alpha: float, precision: str = "float32", out: np.ndarray | None = None
) -> np.ndarray:
    """``alpha * (2u - 1)`` as an array of dtype ``precision`` (new, or ``out`` for float32).

    float64 repeats the reference's operations one by one, so it is
    bit-identical; float32 rounds ``u`` to float32 and folds the operations
    into one pass (the rounding differs in the last bit, which is far below
    what moves a nearest-neighbour sample). ``out`` may be ``noise`` itself.
    """
    if precision == "float64":
        field = noise * 2.0
        field -= 1.0
        field *= alpha
        return field
    field = np.multiply(noise, 2.0 * alpha, dtype=np.float32, out=out)
    field -= np.float32(alpha)
    return field


def small_component_boxes(segment: np.ndarray, area_thresh: float, ignore_index: int | None = None) -> np.ndarray:
    """Bounding boxes ``(y1, x1, y2, x2)``, inclusive, of all small components.

    A component is a maximal 8-connected set of pixels of one class; it is
    small when its area is <= ``area_thresh``. All classes are labelled in one
    pass. Pixels of class -1 (skipped by the reference) and of ``ignore_index``
    are not components: they are never protected. Boxes come in no particular
    order.

    The map is cut into runs (maximal stretches of one class along a row) and
    the runs are joined into components as a graph (scipy's
    ``connected_components``), so the work grows with the number of runs, not
    with every pixel's eight neighbours: about 5x faster than labelling pixels
    with ``skimage.measure.label``, and in about 40 bytes a run, with no
    array of the map's size (``nsegaug.components``). The tests check it
    against a class-by-class labelling with OpenCV.
    """
    values = segment.view(np.uint8) if segment.dtype == np.bool_ else segment
    return components.small_boxes(values, area_thresh, ignore_index)


def suppression_mask(shape: tuple[int, int], boxes: np.ndarray, pad: int) -> np.ndarray:
    """Boolean mask of the pixels whose displacement is suppressed.

    Each box is grown by ``pad`` pixels on every side and clipped to the map.
    """
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    tops_lefts = np.maximum(boxes[:, :2] - pad, 0)
    bottoms_rights = np.minimum(boxes[:, 2:] + pad + 1, (height, width))  # exclusive
    for y1, x1, y2, x2 in np.concatenate([tops_lefts, bottoms_rights], axis=1).tolist():
        mask[y1:y2, x1:x2] = True
    return mask


def suppression_pad(alpha: float) -> int:
    """Padding of the suppression boxes: ``alpha // 2`` as the reference does."""
    return int(alpha // 2)


def deform_with_noise(
    segment: np.ndarray,
    noise_x: np.ndarray,
    noise_y: np.ndarray,
    alpha: float,
    sigma: float,
    params: DeformParams = DEFAULT_PARAMS,
    boxes: np.ndarray | None = None,
    blur: str | None = None,
) -> DeformResult:
    """Deform ``segment`` with given uniform noise fields ``u`` in [0, 1) and a given (alpha, sigma).

    The displacement before suppression and smoothing is ``alpha * (2u - 1)``.
    From ``params``: the threshold and ignore index of the suppression (none
    for the pilot NSegment) and the precision: ``"float64"`` is bit-identical
    to the reference code; ``"float32"`` is faster and agrees on all but a few
    pixels in a million (a coordinate within float32 rounding of a pixel's
    half-way point). ``alpha`` and ``sigma`` need not be among ``params``'
    pairs (the preview's grid and the torch engine's tests use others).
    ``boxes`` are the map's [`small_component_boxes`][nsegaug.deform.small_component_boxes], when already known:
    they depend on the map and the threshold only, not on the random draw, so
    several copies of one map can share them. ``blur``, one of
    [`BLURS`][nsegaug.deform.BLURS]: ``"reference"`` (`smooth_field`, the reference's
    ``cv2.GaussianBlur``; the default for float64) or ``"rows"``
    (`smooth_field_transposed`; the default for float32, about twice as
    fast, equal up to float32 rounding).
    """
    check_label_map(segment)
    if noise_x.shape != segment.shape or noise_y.shape != segment.shape:
        raise ValueError(f"noise fields {noise_x.shape}, {noise_y.shape} do not match label map {segment.shape}")
    if params.engine == 3:  # its own arithmetic on u, as it deforms with the noise it draws
        blur = default_blur(params.precision, params.engine) if blur is None else blur
        draw = NoiseRows(noise_x, noise_y)
        whole = not bands.is_banded(segment.shape)
        return _deform_in_bands(segment, draw, alpha, sigma, params, boxes, blur, WarpTotals(), whole)
    dx = displacement_field(noise_x, alpha, params.precision)
    dy = displacement_field(noise_y, alpha, params.precision)
    return _deform_fields(segment, dx, dy, alpha, sigma, params, boxes, blur)


def _deform_fields(
    segment: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    alpha: float,
    sigma: float,
    params: DeformParams,
    boxes: np.ndarray | None,
    blur: str | None,
    totals: WarpTotals | None = None,
) -> DeformResult:
    """Steps 2 to 4 on displacement fields ``alpha * (2u - 1)``, which are overwritten."""
    blur = default_blur(params.precision, params.engine) if blur is None else blur
    if blur not in BLURS:
        raise ValueError(f"blur must be one of {BLURS}, got {blur!r}")
    shape = segment.shape
    suppressed_fraction = 0.0
    if params.suppresses:
        if boxes is None:
            boxes = small_component_boxes(segment, params.area_thresh, params.ignore_index)
        if len(boxes):
            mask = suppression_mask(shape, boxes, suppression_pad(alpha))
            np.copyto(dx, 0, where=mask)
            np.copyto(dy, 0, where=mask)
            suppressed_fraction = float(np.count_nonzero(mask)) / mask.size

    totals = WarpTotals() if totals is None else totals
    if blur == "reference":
        deformed = np.empty_like(segment)
        warp_measured(segment, smooth_field(dx, sigma), smooth_field(dy, sigma), 0, deformed, totals)
    else:
        # Warped in the transposed layout the blur leaves: row j, column i of it is pixel (i, j) of the map.
        # The sampled coordinates are the same numbers, so the warp and the statistics are the same too.
        scratch = _scratch("fields_t", (2, shape[1], shape[0]))
        fields_t = smooth_field_transposed(dy, sigma, scratch[0]), smooth_field_transposed(dx, sigma, scratch[1])
        segment_t = transpose(segment)
        deformed_t = np.empty_like(segment_t)
        warp_measured(segment_t, *fields_t, 0, deformed_t, totals)
        deformed = transpose(deformed_t)
    return DeformResult(
        segment=deformed,
        alpha=alpha,
        sigma=sigma,
        suppressed_fraction=suppressed_fraction,
        **totals.figures(segment.size),
    )


def default_blur(precision: str, engine: int = DEFAULT_ENGINE) -> str:
    """The blur unless told: the reference's for float64 (bit-identical) and engine 1, rows for float32."""
    return "reference" if precision == "float64" or engine == 1 else "rows"


@dataclass(frozen=True)
class DeformDraw:
    """The random part of one deformation: the uniform fields in [0, 1) and the (alpha, sigma) pair drawn.

    Keep it to log, replay or vary a deformation: [`apply_deformation`][nsegaug.deform.apply_deformation]
    is a pure function of a map, a draw and the parameters.
    """

    noise_x: np.ndarray
    noise_y: np.ndarray
    alpha: float
    sigma: float


def draw_deformation(
    random_state: np.random.RandomState, shape: tuple[int, int], params: DeformParams = DEFAULT_PARAMS
) -> DeformDraw:
    """Draw one deformation of a map of ``shape`` from ``random_state``, as [`deform`][nsegaug.deform.deform] draws it.

    Engines 1 and 2 draw in the reference code's order; engine 3 its own
    stream's 16-bit levels as ``u`` (``nsegaug.draws.FastRows``).
    """
    if params.engine == 3:
        draw = FastRows(random_state, len(params.alpha_sigma))
        noise_x, noise_y = draw.uniform(shape)
        return DeformDraw(noise_x, noise_y, *params.alpha_sigma[draw.pair_index])
    noise_x, noise_y, pair_index = draw_noise(random_state, shape, len(params.alpha_sigma), params.variant)
    alpha, sigma = params.alpha_sigma[pair_index]
    return DeformDraw(noise_x, noise_y, alpha, sigma)


def apply_deformation(
    segment: np.ndarray,
    draw: DeformDraw,
    params: DeformParams = DEFAULT_PARAMS,
    boxes: np.ndarray | None = None,
    blur: str | None = None,
) -> DeformResult:
    """Deform ``segment`` by a drawn deformation (see [`deform_with_noise`][nsegaug.deform.deform_with_noise] for
    ``boxes`` and ``blur``)."""
    return deform_with_noise(segment, draw.noise_x, draw.noise_y, draw.alpha, draw.sigma, params, boxes, blur)


def deform(
    segment: np.ndarray,
    random_state: np.random.RandomState,
    params: DeformParams = DEFAULT_PARAMS,
    boxes: np.ndarray | None = None,
    blur: str | None = None,
) -> DeformResult:
    """Deform one label map with random draws from ``random_state``.

    Given ``np.random.RandomState(s)``, engines 1 and 2 (``params.engine``,
    2 by default) draw the same numbers in the same order as the method's
    reference code for ``params.variant`` and so give its result (bit for
    bit with ``precision="float64"``); engine 3 draws the pair, then a seed
    of its own faster stream (``nsegaug.draws``). ``boxes``: the map's
    [`small_component_boxes`][nsegaug.deform.small_component_boxes], when several copies of one map share
    them; ``blur``: see [`deform_with_noise`][nsegaug.deform.deform_with_noise]. Maps above
    ``nsegaug.bands.WHOLE_MAP_PX`` pixels are deformed in bands of rows,
    in bounded memory, with the same bytes (``nsegaug.bands``).
    """
    return _deform(segment, random_state, params, boxes, blur, WarpTotals())


def deform_labels(
    segment: np.ndarray,
    random_state: np.random.RandomState,
    params: DeformParams = DEFAULT_PARAMS,
    boxes: np.ndarray | None = None,
) -> np.ndarray:
    """The map [`deform`][nsegaug.deform.deform] gives, byte for byte, without its statistics (what the
    transforms return).

    The mean and largest displacement and the changed share cost about a
    fifth of a deformation; a transform in a training pipeline has no use
    for them.
    """
    return _deform(segment, random_state, params, boxes, None, WarpTotals(measure=False)).segment


def _deform(
    segment: np.ndarray,
    random_state: np.random.RandomState,
    params: DeformParams,
    boxes: np.ndarray | None,
    blur: str | None,
    totals: WarpTotals,
) -> DeformResult:
    check_label_map(segment)
    # Labelled first, before the fields fill the cache; on this thread: a second one overlapped it with the
    # draw, but cost more CPU than it saved wall time (the GIL, the caches of two cores), and in a run or a
    # data loader every core is busy anyway.
    if params.suppresses and boxes is None:
        boxes = small_component_boxes(segment, params.area_thresh, params.ignore_index)
    blur = default_blur(params.precision, params.engine) if blur is None else blur
    banded = bands.is_banded(segment.shape)
    if params.engine == 3 or banded:
        if params.engine == 3:
            draw = FastRows(random_state, len(params.alpha_sigma))
        else:
            draw = ReferenceRows(random_state, segment.shape, len(params.alpha_sigma), params.variant)
        # Engine 3 knows its pair first, and fills the fields a block at a time even on a map deformed whole.
        alpha, sigma = params.alpha_sigma[draw.pair_index]
        return _deform_in_bands(segment, draw, alpha, sigma, params, boxes, blur, totals, whole=not banded)
    if blur != "rows":
        draw = draw_deformation(random_state, segment.shape, params)
        noise = draw.noise_x, draw.noise_y
        dx, dy = (displacement_field(field, draw.alpha, params.precision) for field in noise)
        return _deform_fields(segment, dx, dy, draw.alpha, draw.sigma, params, boxes, blur, totals)
    # The rows blur runs in float32, which rounds u first: the same fields as drawing a DeformDraw and
    # applying it, without the float64 copies. (blur="reference" keeps the engine 1 code, for comparison.)
    u_x, u_y, pair_index = draw_noise_float32(random_state, segment.shape, len(params.alpha_sigma), params.variant)
    alpha, sigma = params.alpha_sigma[pair_index]
    dx = displacement_field(u_x, alpha, out=u_x)
    dy = displacement_field(u_y, alpha, out=u_y)
    return _deform_fields(segment, dx, dy, alpha, sigma, params, boxes, blur, totals)


def _field_dtype(params: DeformParams, blur: str) -> np.dtype:
    # The rows blur is a float32 blur, whatever the precision (as deform's float32 path has always drawn it).
    return np.dtype(np.float32 if blur == "rows" or params.precision == "float32" else np.float64)


def _deform_in_bands(
    segment: np.ndarray,
    draw,
    alpha: float,
    sigma: float,
    params: DeformParams,
    boxes: np.ndarray | None,
    blur: str,
    totals: WarpTotals,
    whole: bool = False,
) -> DeformResult:
    """A map deformed band by band (see ``nsegaug.bands``): the bytes of the whole-map engine."""
    if blur not in BLURS:
        raise ValueError(f"blur must be one of {BLURS}, got {blur!r}")
    if params.suppresses and boxes is None:
        boxes = small_component_boxes(segment, params.area_thresh, params.ignore_index)
    boxes = boxes if params.suppresses else None
    dtype = _field_dtype(params, blur)
    pad = suppression_pad(alpha)
    deformed, suppressed = bands.deform_in_bands(segment, draw, alpha, sigma, boxes, pad, dtype, blur, totals, whole)
    figures = totals.figures(segment.size)
    return DeformResult(deformed, alpha, sigma, suppressed_fraction=suppressed, **figures)
