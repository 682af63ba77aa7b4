"""Seeded models of boundary-level annotation error, for making noisy training labels from clean ones.

Four models, each a pure function of a label map and a NumPy ``Generator``:

1. [`boundary_noise`][nsegaug.noise_models.boundary_noise]: every object (an 8-connected component of one
   class) is redrawn a little too large or too small: dilated or eroded by its
   own random radius in ``-max_radius..max_radius`` pixels (Euclidean disks).
2. [`simplify_outlines`][nsegaug.noise_models.simplify_outlines]: every object's outer outline is replaced by a
   Douglas-Peucker simplification with its own tolerance in
   ``[0, max_epsilon]`` pixels, as a hurried polygon annotator would click it.
3. [`elastic_jitter`][nsegaug.noise_models.elastic_jitter]: the whole map is moved by a small, smooth
   displacement field (white noise blurred with ``sigma``, scaled to a
   standard deviation of ``amplitude`` pixels, clipped at ``2 * amplitude``),
   resampled with nearest neighbour: a hand that wobbles slowly along every
   outline.
4. [`systematic_bias`][nsegaug.noise_models.systematic_bias] (off unless ``bias_radius`` > 0): one annotator
   per map, who draws every object of ``bias_classes`` ``bias_radius`` pixels
   too wide (chance ``bias_wide``) or too narrow: the same dilation or
   erosion as model 1, with one sign for the whole map instead of a radius
   per object. Applied first, as the annotator's habit under the random
   imprecision of the others.

What they never do, and the tests check:

- **No class is invented.** Every output value is a value of the input map,
  and a relabelled pixel takes a value found near it in the input: a grown
  object's own class, or, for a pixel an object gives up, the label of the
  nearest pixel outside that object (which may be the ignore index: ignore
  bands widen where a thing shrinks, as they would around a smaller outline).
  That label may be one a neighbour has just grown into, so "near" is within
  twice a model's reach below (models 1 and 2). The ignore index is never an
  object, so it is never grown, shrunk or simplified on its own account.
- **No object is erased.** No model relabels the core of an object of its
  input: the pixels farther from the object's border than half its largest
  inner distance ([`protected_cores`][nsegaug.noise_models.protected_cores]). A 1-2 px wide pole is never
  thinned (only widened, by at most 1 px on each side), a 7 px wide sign keeps at least its
  middle 3 px. Erosion and the simplification tolerance are capped to match,
  so a thin object is not reduced to a line.
- **Only boundaries change.** Every changed pixel lies within ``max_radius``
  (model 1), ``max_epsilon + 1`` (model 2), ``2 * amplitude + 1`` (model 3)
  or ``bias_radius`` (model 4) pixels of a class boundary of the input.

Objects are redrawn from the largest to the smallest, each from its outline
in the input, and where two meet the smaller one's noisy outline decides, as
annotators outline the background first and the things on top of it: a pixel
the road gives up next to a car stays road until the car's own outline is
drawn. Regions an object encloses are left as they are by the simplification. The edge of the picture
is not an outline: no object grows, shrinks or is simplified along it.

[`annotation_noise`][nsegaug.noise_models.annotation_noise] applies model 4, then models 1 to 3 in that order, with one
independent stream each, derived from (seed, sample key) only, so a map's
noise does not depend on the order in which files are processed, and
switching one model off leaves the draws of the others unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from .deform import sampling_maps, warp_labels
from .params import DEFAULT_NOISE, NoiseParams
from .params import NOISE_MODELS as MODELS
from .seeding import key_words

# Keeps the noise streams apart from generate's and train's streams of the same seed and key.
_NOISE_STREAM = 0x6E6F6973  # "nois"


@dataclass(frozen=True)
class SegmentObject:
    """One 8-connected component of one class; ``mask`` covers ``box`` (y1, x1, y2, x2, exclusive ends)."""

    value: int
    area: int
    box: tuple[int, int, int, int]
    mask: np.ndarray


# --- objects and what protects them --------------------------------------------------------------------------------


def find_objects(segment: np.ndarray, ignore_index: int | None = None) -> list[SegmentObject]:
    """Every component of every class but ``ignore_index``, largest first (ties in class and position order)."""
    found = []
    for value in np.unique(segment):
        if ignore_index is not None and value == ignore_index:
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            (segment == value).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        for index in range(1, count):
            x, y, width, height, area = (int(number) for number in stats[index])
            box = (y, x, y + height, x + width)
            found.append(SegmentObject(int(value), area, box, labels[y : y + height, x : x + width] == index))
    return sorted(found, key=lambda item: (-item.area, item.value, item.box))


def window(box: tuple[int, int, int, int], margin: int, shape: tuple[int, int]) -> tuple[slice, slice]:
    """``box`` grown by ``margin`` on every side and clipped to the map, as slices."""
    y1, x1, y2, x2 = box
    rows = slice(max(y1 - margin, 0), min(y2 + margin, shape[0]))
    return rows, slice(max(x1 - margin, 0), min(x2 + margin, shape[1]))


def placed(item: SegmentObject, view: tuple[slice, slice]) -> np.ndarray:
    """The object's mask inside a window that contains its box."""
    mask = np.zeros((view[0].stop - view[0].start, view[1].stop - view[1].start), dtype=bool)
    y1, x1, y2, x2 = item.box
    mask[y1 - view[0].start : y2 - view[0].start, x1 - view[1].start : x2 - view[1].start] = item.mask
    return mask


def inner_distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each object pixel to the nearest non-object pixel (1 on the border, 0 outside).

    The edge of the array is not a border: an object that runs out of the
    picture is not outlined there, so it is not grown or shrunk there either.
    """
    if mask.all():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(mask)


def core_depth(inner: np.ndarray) -> int:
    """How deep into an object noise may reach: half its largest inner distance, rounded down."""
    largest = float(inner.max()) if inner.size else 0.0
    return int(largest // 2) if np.isfinite(largest) else np.iinfo(np.int32).max


def protected_cores(segment: np.ndarray, objects: Sequence[SegmentObject]) -> np.ndarray:
    """Pixels no model may relabel: each object's pixels deeper than [`core_depth`][nsegaug.noise_models.core_depth]
    from its border.

    For a 1-2 px wide object (largest inner distance 1) that is every pixel;
    for a large region, all but a rim of half its thickness.
    """
    protected = np.zeros(segment.shape, dtype=bool)
    for item in objects:
        view = window(item.box, 1, segment.shape)
        mask = placed(item, view)
        inner = inner_distance(mask)
        protected[view] |= inner > core_depth(inner)
    return protected


def drawing_order(shape: tuple[int, int], objects: Sequence[SegmentObject]) -> np.ndarray:
    """Each pixel's object as its index in ``objects`` (the order they are redrawn in); -1 for the ignore index."""
    order = np.full(shape, -1, dtype=np.int32)
    for index, item in enumerate(objects):
        y1, x1, y2, x2 = item.box
        order[y1:y2, x1:x2][item.mask] = index
    return order


def redraw_object(
    segment: np.ndarray,
    value: int,
    old: np.ndarray,
    new: np.ndarray,
    view: tuple[slice, slice],
    protected: np.ndarray,
    drawn_later: np.ndarray,
) -> np.ndarray:
    """``segment`` with one object's outline ``old`` replaced by ``new`` (both masks of the window ``view``),
    changed in place (the models' working copy: a copy per object would cost objects x map size) and returned.

    Pixels gained take the object's class. A pixel given up takes the label of
    the nearest pixel outside ``old`` (in the window): the region the
    annotator's line now lets through; unless that pixel belongs to an object
    drawn later (``drawn_later``, a mask of the window), whose own outline will
    decide the boundary there, so the pixel stays. Protected pixels never change.
    """
    area = segment[view]
    unprotected = ~protected[view]
    gained = new & ~old & unprotected
    lost = old & ~new & unprotected
    if lost.any() and not old.all():
        _, (rows, cols) = ndimage.distance_transform_edt(old, return_indices=True)
        lost &= ~drawn_later[rows, cols]
        area[lost] = area[rows[lost], cols[lost]]
    area[gained] = value
    return segment


# --- the four models ----------------------------------------------------------------------------------------------


def boundary_noise(
    segment: np.ndarray, rng: np.random.Generator, max_radius: int, ignore_index: int | None = None
) -> np.ndarray:
    """Model 1: each object dilated (radius > 0) or eroded (< 0) by its own radius in ``-max_radius..max_radius``.

    One radius is drawn per object of the input, all at once, before any is
    used, so the draws never depend on the map's content beyond the object
    count. Erosion is capped at [`core_depth`][nsegaug.noise_models.core_depth]; growth at
    ``max(1, largest inner distance)``, so a 1-2 px wide pole grows by at most 1 px on each side.
    """
    objects = find_objects(segment, ignore_index)
    radii = rng.integers(-max_radius, max_radius + 1, size=len(objects)) if objects else np.zeros(0, int)
    return grow_or_shrink(segment, objects, radii.tolist())


def grow_or_shrink(segment: np.ndarray, objects: Sequence[SegmentObject], radii: Sequence[int]) -> np.ndarray:
    """Each of ``objects`` (of ``segment``, largest first) dilated (radius > 0) or eroded (< 0) by its radius.

    Erosion is capped at [`core_depth`][nsegaug.noise_models.core_depth], growth at ``max(1, largest inner
    distance)``; where two objects meet the smaller one's new outline decides.
    """
    protected = protected_cores(segment, objects)
    order = drawing_order(segment.shape, objects)
    out = segment.copy()
    for index, (item, radius) in enumerate(zip(objects, radii, strict=True)):
        if radius == 0:
            continue
        view = window(item.box, abs(radius) + 1, segment.shape)
        drawn = placed(item, view)
        inner = inner_distance(drawn)
        if radius < 0:
            new = inner > min(-radius, core_depth(inner))
        else:
            largest = float(inner.max())
            grow = min(radius, max(1, int(largest)) if np.isfinite(largest) else radius)
            new = ndimage.distance_transform_edt(~drawn) <= grow
        old = drawn & (out[view] == item.value)
        out = redraw_object(out, item.value, old, new, view, protected, order[view] > index)
    return out


def simplify_outlines(
    segment: np.ndarray, rng: np.random.Generator, max_epsilon: float, ignore_index: int | None = None
) -> np.ndarray:
    """Model 2: each object's outer outline replaced by a Douglas-Peucker simplification (tolerance <= max_epsilon).

    Regions the object encloses keep their labels. One tolerance per object
    of the input, drawn all at once, then capped at half the object's largest
    inner distance.
    """
    objects = find_objects(segment, ignore_index)
    tolerances = rng.uniform(0.0, max_epsilon, size=len(objects)) if objects else np.zeros(0)
    protected = protected_cores(segment, objects)
    order = drawing_order(segment.shape, objects)
    out = segment.copy()
    for index, (item, epsilon) in enumerate(zip(objects, tolerances.tolist(), strict=True)):
        margin = int(np.ceil(epsilon)) + 2
        view = window(item.box, margin, segment.shape)
        drawn = placed(item, view)
        # A tolerance as wide as the object would fold it into a line: at most half its inner distance.
        epsilon = min(epsilon, float(inner_distance(drawn).max()) / 2)
        # Continue the object past the picture's edge, so that the edge is not part of its outline
        # (nobody clicks along the frame) and the simplification cannot cut corners there.
        extended = np.pad(drawn, margin, mode="edge").astype(np.uint8)
        contours, _ = cv2.findContours(extended, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outline = np.zeros(extended.shape, np.uint8)
        cv2.fillPoly(outline, contours, 1)
        simplified = np.zeros(extended.shape, np.uint8)
        cv2.fillPoly(simplified, [cv2.approxPolyDP(contour, epsilon, True) for contour in contours], 1)
        inside = (slice(margin, -margin), slice(margin, -margin))
        new = simplified[inside].astype(bool) & ~(outline[inside].astype(bool) & ~drawn)  # enclosed regions stay
        old = drawn & (out[view] == item.value)
        out = redraw_object(out, item.value, old, new, view, protected, order[view] > index)
    return out


def systematic_bias(
    segment: np.ndarray,
    rng: np.random.Generator,
    radius: int,
    wide: float = 0.5,
    classes: Sequence[int] | None = None,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Model 4: every object of ``classes`` (None: all) ``radius`` px too wide (chance ``wide``) or too narrow.

    One coin per map, drawn even when ``radius`` is 0, so the stream does not
    depend on the strength; growth and erosion are capped as in
    [`boundary_noise`][nsegaug.noise_models.boundary_noise].
    """
    sign = 1 if rng.random() < wide else -1
    objects = find_objects(segment, ignore_index)
    chosen = set(int(value) for value in classes) if classes is not None else None
    radii = [sign * radius if chosen is None or item.value in chosen else 0 for item in objects]
    return grow_or_shrink(segment, objects, radii)


def smooth_displacement(rng: np.random.Generator, shape: tuple[int, int], amplitude: float, sigma: float) -> np.ndarray:
    """A (2, H, W) float32 field: white noise blurred with ``sigma``, scaled to std ``amplitude``, clipped at 2x.

    Scaled after the blur, unlike NSegment's alpha (scaled before), so that
    ``amplitude`` is the displacement in pixels whatever ``sigma`` is.
    """
    field = rng.standard_normal((2, *shape)).astype(np.float32)
    for axis in range(2):
        field[axis] = cv2.GaussianBlur(field[axis], (0, 0), sigma)
        spread = float(field[axis].std())
        field[axis] *= amplitude / spread if spread > 0 else 0.0
    return np.clip(field, -2 * amplitude, 2 * amplitude)


def elastic_jitter(
    segment: np.ndarray, rng: np.random.Generator, amplitude: float, sigma: float, ignore_index: int | None = None
) -> np.ndarray:
    """Model 3: the map resampled (nearest neighbour) through a small smooth displacement field.

    Where the field stretches the map, nearest-neighbour sampling can skip a
    1 px wide object; the cores of the input's objects are therefore put back,
    so a thin object may come out shifted and a little widened, never cut.
    """
    if amplitude == 0:
        return segment.copy()
    dx, dy = smooth_displacement(rng, segment.shape, amplitude, sigma)
    map_x, map_y = sampling_maps(dx, dy)
    out = warp_labels(segment, map_x, map_y)
    protected = protected_cores(segment, find_objects(segment, ignore_index))
    out[protected] = segment[protected]
    return out


# --- all together ----------------------------------------------------------------------------------------------------


def noise_streams(seed: int, key: str) -> dict[str, np.random.Generator]:
    """One independent stream per model, from (seed, sample key) only."""
    children = np.random.SeedSequence([_NOISE_STREAM, int(seed), *key_words(key)]).spawn(len(MODELS))
    return {name: np.random.default_rng(child) for name, child in zip(MODELS, children, strict=True)}


def annotation_noise(segment: np.ndarray, seed: int, key: str, params: NoiseParams = DEFAULT_NOISE) -> np.ndarray:
    """The noisy version of one label map: ``params.models`` in the order bias, boundary, simplify, jitter.

    ``key`` names the map (its path relative to the label folder); the same
    (seed, key, params) always give the same map.
    """
    streams = noise_streams(seed, key)
    out = np.asarray(segment)
    if "bias" in params.models and params.bias_radius > 0:
        out = systematic_bias(
            out, streams["bias"], params.bias_radius, params.bias_wide, params.bias_classes, params.ignore_index
        )
    if "boundary" in params.models:
        out = boundary_noise(out, streams["boundary"], params.max_radius, params.ignore_index)
    if "simplify" in params.models:
        out = simplify_outlines(out, streams["simplify"], params.max_epsilon, params.ignore_index)
    if "jitter" in params.models:
        out = elastic_jitter(out, streams["jitter"], params.jitter_amplitude, params.jitter_sigma, params.ignore_index)
    return out


def boundary_distance(segment: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the nearest class boundary of ``segment`` (0 on a pixel next to another class)."""
    edge = np.zeros(segment.shape, dtype=bool)
    edge[:, 1:] |= segment[:, 1:] != segment[:, :-1]
    edge[:, :-1] |= segment[:, 1:] != segment[:, :-1]
    edge[1:, :] |= segment[1:, :] != segment[:-1, :]
    edge[:-1, :] |= segment[1:, :] != segment[:-1, :]
    if not edge.any():
        return np.full(segment.shape, np.inf)
    return ndimage.distance_transform_edt(~edge)
