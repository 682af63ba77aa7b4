"""The NSegment+ deformation of a batch of label maps on any torch device (needs the ``[train]`` extra).

The steps are those of [`nsegaug.deform`][nsegaug.deform], batched:

1. ``uniform noise`` from a ``torch.Generator`` (not NumPy's stream: see below);
2. ``suppression``: the small components' boxes are found on the CPU by
   [`nsegaug.deform.small_component_boxes`][nsegaug.deform.small_component_boxes] (connected components are not
   done on the device), in DataLoader workers with [`component_boxes`][nsegaug.torch.component_boxes];
   the boxes, grown by ``alpha // 2`` once alpha is drawn, become the mask on
   the device;
3. ``smoothing``: a separable blur with OpenCV's own kernel for ``sigma`` and
   its reflect-101 border, so a field is blurred as ``cv2.GaussianBlur`` does;
4. ``warp``: nearest-neighbour gather, coordinates rounded half to even like
   ``cv2.remap``; labels are never blended (no ``grid_sample``).

[`deform_batch_with_noise`][nsegaug.torch.deform_batch_with_noise] takes the noise, alpha and sigma explicitly,
like [`nsegaug.deform.deform_with_noise`][nsegaug.deform.deform_with_noise], and is the point of comparison
between the engines: with the same noise they agree on >= 99.99 % of pixels
(tested). [`deform_batch`][nsegaug.torch.deform_batch] draws from a ``torch.Generator`` and so does
NOT reproduce the NumPy ``RandomState`` stream of the CPU engine or of
``nsegaug generate``: the same seed gives other (equally distributed) copies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# The CPU side, found in DataLoader workers: public here, where the engine's users look for it.
from ._torch_boxes import batch_boxes, collate_with_boxes, component_boxes  # noqa: F401
from .deform import suppression_pad
from .params import DEFAULT_PARAMS, DeformParams, MethodTransform, check_alpha_sigma, check_prob

BLUR_METHODS = ("conv", "taps")
_FLOAT_DTYPES = (torch.float32, torch.float64)
# DeformParams.precision -> the dtype of the fields.
_PRECISION_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# gather and index_copy_ have no kernels for the unsigned 16/32/64-bit types; their signed twins hold the same bits.
_SIGNED_TWIN = {
    torch.uint16: torch.int16,
    torch.uint32: torch.int32,
    torch.uint64: torch.int64,
    torch.bool: torch.uint8,
}


@dataclass(frozen=True)
class BatchStats:
    """What the deformation did to each map of a batch: tensors of shape (B,) on the labels' device.

    ``alpha`` and ``sigma`` are NaN and the other figures 0 where ``deformed`` is False.
    """

    deformed: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    suppressed_fraction: torch.Tensor
    mean_displacement: torch.Tensor
    max_displacement: torch.Tensor
    changed_fraction: torch.Tensor

    def rows(self) -> list[dict]:
        """One dict per map, as plain Python numbers (``None`` for alpha/sigma of maps left alone)."""
        columns = {field.name: getattr(self, field.name).tolist() for field in fields(self)}
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        for row in rows:
            if not row["deformed"]:
                row["alpha"] = row["sigma"] = None
        return rows


# --- The steps, as pure functions of tensors ---------------------------------------------------------------------


def to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """A small host tensor (a table, a kernel, a few numbers) on ``device``, without waiting for the device.

    A CUDA copy from ordinary (pageable) host memory waits for everything
    queued on the device; from pinned memory it is queued like a kernel
    (torch keeps the pinned block until the copy is done).
    """
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def suppression_masks(
    boxes: Sequence[torch.Tensor], pads: Sequence[int], shape: tuple[int, int], device
) -> torch.Tensor:
    """Bool masks (B, H, W): map b's boxes grown by ``pads[b]`` and clipped, as ``deform.suppression_mask``.

    Drawn as a 2-D difference table (+1/-1 at the corners, then two running
    sums), so any number of boxes costs a few passes over the map, in one go
    for the whole batch.
    """
    height, width = shape
    tables = []
    for index, (table, pad) in enumerate(zip(boxes, pads, strict=True)):
        table = torch.as_tensor(table, dtype=torch.int64).cpu().reshape(-1, 4)  # tiny: joined on the CPU, sent once
        tables.append(torch.cat([torch.full((len(table), 1), index), table - pad, table + (pad + 1)], dim=1))
    table = to_device(torch.cat(tables), device) if tables else torch.zeros((0, 9), dtype=torch.int64, device=device)
    sample = table[:, 0]
    top, left = table[:, 1].clamp(min=0), table[:, 2].clamp(min=0)
    bottom, right = table[:, 7].clamp(max=height), table[:, 8].clamp(max=width)  # exclusive
    corners = torch.zeros((len(boxes), height + 1, width + 1), dtype=torch.int32, device=device)
    ones = torch.ones_like(sample, dtype=torch.int32)
    for rows, cols, sign in ((top, left, 1), (top, right, -1), (bottom, left, -1), (bottom, right, 1)):
        corners.index_put_((sample, rows, cols), ones * sign, accumulate=True)
    return corners.cumsum_(1).cumsum_(2)[:, :height, :width] > 0


@lru_cache(maxsize=64)
def _opencv_kernel(sigma: float, dtype_name: str) -> np.ndarray:
    # OpenCV's size rule for float images (cvRound(sigma * 4 * 2 + 1) | 1; 3 instead of 4 is for 8-bit
    # images only), and its own kernel values for that size, so nothing is re-derived here.
    size = int(np.rint(sigma * 4 * 2 + 1)) | 1
    depth = cv2.CV_32F if dtype_name == "float32" else cv2.CV_64F
    return cv2.getGaussianKernel(size, sigma, depth).ravel()


def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 1-D kernel ``cv2.GaussianBlur(field, (0, 0), sigma)`` uses for a field of ``dtype``."""
    if dtype not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {_FLOAT_DTYPES}, got {dtype}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    return torch.from_numpy(_opencv_kernel(float(sigma), str(dtype).removeprefix("torch.")).copy())


def reflect101_index(size: int, radius: int, device=None) -> torch.Tensor:
    """Source index of each of ``size + 2 * radius`` positions under OpenCV's BORDER_REFLECT_101.

    ``dcb|abcd|cba``, folded again as often as needed when the radius exceeds
    the size (OpenCV's ``borderInterpolate``; torch's ``reflect`` padding
    refuses that case), and 0 everywhere for a size of 1.
    """
    positions = torch.arange(-radius, size + radius, device=device)
    if size == 1:
        return torch.zeros_like(positions)
    period = 2 * (size - 1)
    positions = positions.remainder(period)
    return torch.where(positions >= size, period - positions, positions)


def smooth_fields(fields: torch.Tensor, sigma: float, method: str | None = None) -> torch.Tensor:
    """Blur each (H, W) field of ``fields`` (N, H, W) as ``cv2.GaussianBlur(field, (0, 0), sigma)``.

    Rows first, then columns, as OpenCV's separable filter. ``method``:
    ``"conv"``, a depthwise convolution (fast on the CPU), or ``"taps"``, one
    multiply-add of the whole batch per kernel tap. The default is ``"conv"``
    on the CPU and ``"taps"`` elsewhere. A convolution on a GPU would run in
    TF32 (cuDNN's default on Ampere and later: ``torch.backends.cudnn.conv.fp32_precision``
    is ``"tf32"``), whose 10-bit mantissa moves coordinates by hundredths of a
    pixel, so ``"conv"`` runs under [`ieee_convolutions`][nsegaug.torch.ieee_convolutions]; element-wise
    arithmetic is always full float32.
    """
    method = method or ("conv" if fields.device.type == "cpu" else "taps")
    if method not in BLUR_METHODS:
        raise ValueError(f"method must be one of {BLUR_METHODS}, got {method!r}")
    kernel = gaussian_kernel(sigma, fields.dtype)
    radius = len(kernel) // 2
    _, height, width = fields.shape
    for axis, size in ((2, width), (1, height)):
        padded = _pad_reflect101(fields, radius, axis, size)
        if method == "conv":
            fields = _convolve(padded, to_device(kernel, fields.device), axis)
        else:
            fields = _multiply_add_taps(padded, kernel.tolist(), axis, size)
    return fields


def _pad_reflect101(fields: torch.Tensor, radius: int, axis: int, size: int) -> torch.Tensor:
    if radius < size:  # torch's "reflect" is reflect-101, and faster than a gather, but only for such radii
        pad = (radius, radius, 0, 0) if axis == 2 else (0, 0, radius, radius)
        return F.pad(fields, pad, mode="reflect")
    return fields.index_select(axis, reflect101_index(size, radius, fields.device))


def _convolve(padded: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    # Every field is its own channel of one image: a depthwise convolution, much faster on the CPU than
    # one single-channel image per field.
    channels = padded.shape[0]
    shape = (channels, 1, len(kernel), 1) if axis == 1 else (channels, 1, 1, len(kernel))
    weight = kernel.reshape(1, 1, -1).expand(channels, 1, len(kernel)).reshape(shape)
    # A training loop's autocast would blur in 16 bits, cuDNN's default on a GPU in TF32.
    with torch.autocast(padded.device.type, enabled=False), ieee_convolutions():
        return F.conv2d(padded.unsqueeze(0), weight, groups=channels).squeeze(0)


@contextmanager
def ieee_convolutions() -> Iterator[None]:
    """cuDNN convolutions in full float32 inside (no TF32), the caller's setting restored after.

    A process-wide flag: set and restored around the engine's own
    convolutions only, so a model's convolutions keep the caller's choice.
    """
    conv = torch.backends.cudnn.conv
    saved = conv.fp32_precision
    conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision = saved


def _multiply_add_taps(padded: torch.Tensor, kernel: list[float], axis: int, size: int) -> torch.Tensor:
    blurred = padded.narrow(axis, 0, size) * kernel[0]
    for offset in range(1, len(kernel)):
        blurred.add_(padded.narrow(axis, offset, size), alpha=kernel[offset])
    return blurred


def displacement_fields(noise: torch.Tensor, alpha: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``alpha * (2u - 1)`` per map: ``noise`` (N, ..., H, W) in [0, 1), ``alpha`` (N,).

    The operations and their order are those of ``deform.displacement_field``
    for the same precision, so the fields are the CPU engine's bit for bit.
    """
    alpha = alpha.to(device=noise.device, dtype=dtype).reshape(-1, *([1] * (noise.dim() - 1)))
    noise = noise.to(dtype)
    if dtype == torch.float64:
        return (noise * 2.0 - 1.0) * alpha
    return noise * (2 * alpha) - alpha


def sampling_indices(dx: torch.Tensor, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows and columns ``round(clip(grid + d))`` (int64) and the applied displacement's magnitude.

    Sum and clip in the fields' own precision, one cast to float32 (what
    ``cv2.remap`` takes), then rounding half to even, as the CPU engine does.
    """
    _, height, width = dx.shape
    xs = torch.arange(width, dtype=dx.dtype, device=dx.device)
    ys = torch.arange(height, dtype=dy.dtype, device=dy.device)[:, None]
    map_x = (dx + xs).clamp_(0, width - 1).to(torch.float32)
    map_y = (dy + ys).clamp_(0, height - 1).to(torch.float32)
    magnitude = torch.hypot(map_x - xs.to(torch.float32), map_y - ys.to(torch.float32))
    return torch.round(map_y).to(torch.int64), torch.round(map_x).to(torch.int64), magnitude


def warp_labels(labels: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``out[b, y, x] = labels[b, rows[b, y, x], cols[b, y, x]]``: a gather, so labels are never blended."""
    batch, height, width = labels.shape
    source = labels.view(_SIGNED_TWIN.get(labels.dtype, labels.dtype)).reshape(batch, height * width)
    flat = (rows * width + cols).reshape(batch, height * width)
    return torch.gather(source, 1, flat).view(labels.dtype).reshape(batch, height, width)


# --- The whole method --------------------------------------------------------------------------------------------


def check_label_batch(labels: torch.Tensor) -> None:
    """Raise ValueError unless ``labels`` is a (B, H, W) integer or bool tensor with H, W >= 1."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a torch tensor (B, H, W), got {type(labels).__name__}")
    if labels.dim() != 3:
        raise ValueError(f"labels must be 3-D (B, H, W), got shape {tuple(labels.shape)}; add a batch dimension")
    if labels.shape[1] == 0 or labels.shape[2] == 0:
        raise ValueError(f"label maps are empty (shape {tuple(labels.shape)})")
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise ValueError(
            f"labels must hold integer class indices, got dtype {labels.dtype}; "
            "labels are never interpolated, so float maps are refused"
        )


def deform_batch_with_noise(
    labels: torch.Tensor,
    noise_x: torch.Tensor,
    noise_y: torch.Tensor,
    alpha: Sequence[float] | float,
    sigma: Sequence[float] | float,
    params: DeformParams = DEFAULT_PARAMS,
    boxes: Sequence[torch.Tensor] | None = None,
    blur: str | None = None,
) -> tuple[torch.Tensor, BatchStats]:
    """Deform every map of ``labels`` (B, H, W) with given uniform noise fields (B, H, W) in [0, 1).

    The batched twin of [`nsegaug.deform.deform_with_noise`][nsegaug.deform.deform_with_noise]: map b is
    deformed with ``alpha[b]``, ``sigma[b]`` (or one value for all), its
    displacement before suppression and smoothing being ``alpha * (2u - 1)``.
    From ``params``: the suppression (none for the pilot NSegment), its
    threshold and ignore index, and the precision of the fields. ``boxes``:
    one table (N_b, 4) per map from [`component_boxes`][nsegaug.torch.component_boxes]; found here, on
    the CPU, when not given. ``blur``: see [`smooth_fields`][nsegaug.torch.smooth_fields].
    Returns a new tensor of the labels' dtype and device, and the statistics.
    """
    check_label_batch(labels)
    batch, height, width = labels.shape
    if noise_x.shape != labels.shape or noise_y.shape != labels.shape:
        raise ValueError(
            f"noise fields {tuple(noise_x.shape)}, {tuple(noise_y.shape)} do not match labels {tuple(labels.shape)}"
        )
    dtype = _PRECISION_DTYPES[params.precision]
    alphas = _per_map(alpha, batch, "alpha")
    sigmas = _per_map(sigma, batch, "sigma")
    device = labels.device
    if batch == 0:
        return labels.clone(), _empty_stats(device)
    check_alpha_sigma(list(zip(alphas, sigmas, strict=True)))

    alpha_column = to_device(torch.tensor(alphas, dtype=torch.float64), device)
    displacement = displacement_fields(torch.stack([noise_x, noise_y], dim=1), alpha_column, dtype)
    suppressed = torch.zeros(batch, device=device)
    if params.suppresses:
        if boxes is None:
            boxes = batch_boxes(labels, params.area_thresh, params.ignore_index)
        if len(boxes) != batch:
            raise ValueError(f"boxes has {len(boxes)} tables for a batch of {batch} maps")
        mask = suppression_masks(boxes, [suppression_pad(value) for value in alphas], (height, width), device)
        displacement.masked_fill_(mask.unsqueeze(1), 0)
        suppressed = mask.flatten(1).float().mean(1)

    # Maps that share sigma are blurred together: one pass per distinct sigma, not per map.
    for value in sorted(set(sigmas)):
        chosen = to_device(torch.tensor([index for index, other in enumerate(sigmas) if other == value]), device)
        group = displacement.index_select(0, chosen).reshape(-1, height, width)
        displacement.index_copy_(0, chosen, smooth_fields(group, value, blur).reshape(-1, 2, height, width))

    rows, cols, magnitude = sampling_indices(displacement[:, 0], displacement[:, 1])
    deformed = warp_labels(labels, rows, cols)
    stats = BatchStats(
        deformed=torch.ones(batch, dtype=torch.bool, device=device),
        alpha=to_device(torch.tensor(alphas, dtype=torch.float32), device),
        sigma=to_device(torch.tensor(sigmas, dtype=torch.float32), device),
        suppressed_fraction=suppressed,
        mean_displacement=magnitude.flatten(1).mean(1),
        max_displacement=magnitude.flatten(1).amax(1),
        changed_fraction=(deformed != labels).flatten(1).float().mean(1),
    )
    return deformed, stats


def _empty_stats(device) -> BatchStats:
    columns = {field.name: torch.zeros(0, device=device) for field in fields(BatchStats)}
    columns["deformed"] = torch.zeros(0, dtype=torch.bool, device=device)
    return BatchStats(**columns)


def _per_map(value: Sequence[float] | float, batch: int, name: str) -> list[float]:
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    values = [float(value)] * batch if np.isscalar(value) else [float(item) for item in value]
    if len(values) != batch:
        raise ValueError(f"{name} has {len(values)} values for a batch of {batch} maps")
    return values


def draw_batch(
    generator: torch.Generator | None,
    batch: int,
    shape: tuple[int, int],
    n_pairs: int,
    device=None,
    host_generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random draws for a batch, in this order: a coin per map (B,), a pair index per map (B,), then
    uniform noise (B, 2, H, W) in [0, 1) for the x and y fields.

    The noise comes from ``generator`` (the device's default generator when
    None), on the generator's device, then moved to ``device``: use a
    generator on the labels' device to keep the noise off the bus. Coins and
    indices come back on the CPU, where they choose kernel sizes and box
    padding: drawn from ``host_generator`` (a CPU generator) when given, so
    nothing waits for the device; otherwise from ``generator`` before the
    noise, and read back from its device (one wait for a GPU). The same
    generator states on the same device type give the same draws on the CPU;
    on CUDA only on the same GPU model too (torch sizes its random kernels by
    the GPU's multiprocessors), and a CPU and a CUDA generator give different ones.
    """
    where = generator.device if generator is not None else torch.device(device or "cpu")
    small = host_generator if host_generator is not None else generator
    small_device = torch.device("cpu") if host_generator is not None else where
    coins = torch.rand(batch, generator=small, device=small_device).cpu()
    pair_index = torch.randint(0, n_pairs, (batch,), generator=small, device=small_device).cpu()
    noise = torch.rand((batch, 2, *shape), generator=generator, device=where)
    return coins, pair_index, noise.to(device) if device is not None else noise


def deform_batch(
    labels: torch.Tensor,
    generator: torch.Generator | None = None,
    params: DeformParams = DEFAULT_PARAMS,
    prob: float = 1.0,
    boxes: Sequence[torch.Tensor] | None = None,
    blur: str | None = None,
    host_generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, BatchStats]:
    """Deform each map of ``labels`` (B, H, W) with chance ``prob``, on the labels' device.

    Map b is deformed when its coin ``u <= prob`` (the method's ``__call__``:
    it skips when ``rand() > p``), with the pair ``params.alpha_sigma[index]``;
    see [`draw_batch`][nsegaug.torch.draw_batch] for the draws. The pilot NSegment suppresses
    nothing. ``boxes``: one table per map from [`component_boxes`][nsegaug.torch.component_boxes]
    (computed in DataLoader workers); found here on the CPU when None. Maps
    left alone are returned unchanged. The input is never modified.

    The draws are torch's, not NumPy's: this does not give the copies the CPU
    engine gives for a seed (see [`deform_batch_with_noise`][nsegaug.torch.deform_batch_with_noise] for the
    equivalence of the two engines). The coins and pairs choose kernel sizes
    and box padding on the host: give ``host_generator`` (a CPU generator)
    for labels on a GPU, and nothing here waits for the device; without it
    they are drawn by ``generator`` and read back, one wait per batch.
    """
    check_label_batch(labels)
    check_prob(prob)
    pairs = params.alpha_sigma
    batch, height, width = labels.shape
    if boxes is not None and len(boxes) != batch:
        raise ValueError(f"boxes has {len(boxes)} tables for a batch of {batch} maps")
    coins, pair_index, noise = draw_batch(generator, batch, (height, width), len(pairs), labels.device, host_generator)
    chosen = torch.nonzero(coins <= prob).flatten()
    alphas = [pairs[index][0] for index in pair_index[chosen].tolist()]
    sigmas = [pairs[index][1] for index in pair_index[chosen].tolist()]
    picked = to_device(chosen, labels.device)
    deformed, partial = deform_batch_with_noise(
        labels.index_select(0, picked),
        noise[picked, 0],
        noise[picked, 1],
        alphas,
        sigmas,
        params,
        boxes=[boxes[index] for index in chosen.tolist()] if boxes is not None and params.suppresses else None,
        blur=blur,
    )
    if len(chosen) == batch:
        return deformed, partial
    out = labels.clone()
    twin = _SIGNED_TWIN.get(labels.dtype, labels.dtype)
    out.view(twin).index_copy_(0, picked, deformed.view(twin))
    return out, _scatter_stats(partial, picked, batch, labels.device)


def _scatter_stats(partial: BatchStats, picked: torch.Tensor, batch: int, device) -> BatchStats:
    columns = {}
    for field in fields(BatchStats):
        values = getattr(partial, field.name)
        fill = float("nan") if field.name in ("alpha", "sigma") else 0
        column = torch.full((batch,), fill, dtype=values.dtype, device=device)
        columns[field.name] = column.index_copy_(0, picked, values)
    return BatchStats(**columns)


class BatchNoisySegmentPlus(MethodTransform):
    """NSegment+ for batches on a device: parameters, and a ``torch.Generator`` per device, over
    [`deform_batch`][nsegaug.torch.deform_batch].

    The arguments are [`nsegaug.NoisySegmentPlus`][nsegaug.transform.NoisySegmentPlus]' (held as one
    [`DeformParams`][nsegaug.params.DeformParams], ``self.deform_params``); ``seed`` seeds
    the generators (fresh entropy when None; off the CPU the CPU's generator
    draws the coins and pairs, the device's the noise); ``prob`` defaults to the
    method's 0.5. Call with labels (B, H, W) and, optionally, the boxes from
    [`component_boxes`][nsegaug.torch.component_boxes]; returns the deformed labels (``self.last_stats``
    holds their statistics).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generators: dict[str, torch.Generator] = {}
        self.last_stats: BatchStats | None = None

    def generator(self, device) -> torch.Generator:
        """The generator for ``device``, created and seeded on first use."""
        device = torch.device(device)
        key = str(device)
        if key not in self.generators:
            generator = torch.Generator(device=device)
            if self.seed is None:
                generator.seed()
            else:
                generator.manual_seed(self.seed)
            self.generators[key] = generator
        return self.generators[key]

    def __call__(self, labels: torch.Tensor, boxes: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        # Off the CPU, coins and pairs come from a CPU generator of their own: nothing waits for the device.
        host = self.generator("cpu") if labels.device.type != "cpu" else None
        deformed, self.last_stats = deform_batch(
            labels, self.generator(labels.device), self.deform_params, prob=self.prob, boxes=boxes, host_generator=host
        )
        return deformed
