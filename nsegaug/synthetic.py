"""Deterministic street-like label maps, for tests, benchmarks and the example data."""

from __future__ import annotations

from dataclasses import dataclass

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


# The other Cityscapes train ids, for the perspective scenes below.
WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, TERRAIN = 3, 4, 5, 6, 7, 9
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 11, 12, 13, 14, 15, 16, 17, 18
# Cityscapes' "object", "human" and "vehicle" categories: the countable things whose borders get ignore bands.
THING_CLASSES = (POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)

# What the objects of a city scene are, and how often each is drawn.
_THING_KINDS = ("car", "person", "pole", "cyclist", "motorcyclist", "bicycle", "truck", "bus", "tram")
_THING_ODDS = np.array([0.40, 0.26, 0.17, 0.05, 0.03, 0.03, 0.03, 0.02, 0.01])
ROAD_WIDTH_M = 12.0  # the road's width in metres, which sets the scale of everything standing on it


def ignore_borders(segment: np.ndarray, band: int, classes: tuple[int, ...] = THING_CLASSES) -> np.ndarray:
    """A copy of ``segment`` with 255 on every pixel within ``band`` px (chessboard distance) of a
    pixel of one of ``classes`` that is not its own class: VOC's ignore band, on the outer side of
    objects and on both sides where two objects of different classes touch."""
    result = segment.copy()
    if band <= 0:
        return result
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    for cls in classes:
        inside = segment == cls
        if inside.any():
            near = cv2.dilate(inside.view(np.uint8), kernel).astype(bool)
            result[near & ~inside] = IGNORE
    return result


@dataclass(frozen=True)
class _Ground:
    """The road scene's geometry: the horizon, the vanishing point, and where the ground bands meet the bottom."""

    height: int
    horizon: float
    vanish_x: float
    borders: np.ndarray  # terrain | sidewalk | road | sidewalk | terrain, left to right, on the bottom row
    road_left: float
    road_right: float
    road_half: float
    left_sidewalk: float
    right_sidewalk: float
    left_terrain: float
    right_terrain: float

    @property
    def pixels_per_m(self) -> float:
        """At depth 1 (the bottom row); it scales linearly with depth."""
        return (self.road_right - self.road_left) / ROAD_WIDTH_M

    def point(self, bottom: float, t: float) -> tuple[float, float]:
        """The image point at depth ``t`` on the ray from the vanishing point through ``bottom`` on the bottom row."""
        return self.vanish_x + (bottom - self.vanish_x) * t, self.horizon + (self.height - self.horizon) * t


def city_scene(
    height: int,
    width: int,
    n_objects: int,
    seed: int | tuple[int, ...] = 0,
    ignore_band: int = 0,
) -> np.ndarray:
    """A uint8 label map of a street seen from the driver's seat, in Cityscapes train ids 0..18.

    A road, sidewalks and terrain converge on a vanishing point; facades of
    buildings, walls and trees line the street under the sky, with a fence
    here and there; ``n_objects`` things (cars, trucks, buses, trams,
    persons, cyclists, bicycles, poles with signs and lights) stand on the
    ground at random depths, scaled by perspective, so far ones are a few
    pixels across. ``ignore_band`` > 0 applies [`ignore_borders`][nsegaug.synthetic.ignore_borders].
    ``seed`` is anything ``np.random.default_rng`` takes, e.g. ``(seed, split, index)``.
    """
    rng = np.random.default_rng(seed)
    segment = np.full((height, width), SKY, dtype=np.uint8)
    ground, on_ground = _draw_ground(segment, rng)
    _draw_facades(segment, rng, ~on_ground, ground.horizon, ground.vanish_x)
    _draw_roadside(segment, rng, ground)
    _draw_things(segment, rng, ground, n_objects)
    return ignore_borders(segment, ignore_band) if ignore_band > 0 else segment


def _draw_ground(segment: np.ndarray, rng: np.random.Generator) -> tuple[_Ground, np.ndarray]:
    """The ground bands, converging on a vanishing point; returns the geometry the rest is placed by, and
    where the ground is."""
    height, width = segment.shape
    horizon = rng.uniform(0.38, 0.5) * height
    vanish_x = rng.uniform(0.35, 0.65) * width
    # Borders between ground bands where they cross the bottom row, left to right:
    # terrain | sidewalk | road | sidewalk | terrain; a zero-width terrain band is absent.
    road_centre = vanish_x + rng.uniform(-0.15, 0.15) * width
    road_half = rng.uniform(0.35, 0.6) * width
    left_sidewalk, right_sidewalk = rng.uniform(0.2, 0.6, size=2) * width
    left_terrain, right_terrain = rng.uniform(0.1, 0.5, size=2) * width * (rng.random(2) < 0.5)
    road_left, road_right = road_centre - road_half, road_centre + road_half
    borders = np.array(
        [
            road_left - left_sidewalk - left_terrain,
            road_left - left_sidewalk,
            road_left,
            road_right,
            road_right + right_sidewalk,
            road_right + right_sidewalk + right_terrain,
        ]
    )
    band_classes = np.array([SKY, TERRAIN, SIDEWALK, ROAD, SIDEWALK, TERRAIN, SKY], dtype=np.uint8)
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]
    depth = np.clip((rows - horizon) / (height - horizon), 1e-6, None)  # 0 at the horizon, 1 at the bottom row
    bottom_x = vanish_x + (cols - vanish_x) / depth  # where the ray through the vanishing point meets the bottom row
    band = np.digitize(bottom_x, borders)
    on_ground = (rows > horizon) & (band > 0) & (band < len(borders))
    segment[on_ground] = band_classes[band[on_ground]]
    geometry = _Ground(
        height, horizon, vanish_x, borders, road_left, road_right, road_half,
        left_sidewalk, right_sidewalk, left_terrain, right_terrain,
    )  # fmt: skip
    return geometry, on_ground


def _draw_roadside(segment: np.ndarray, rng: np.random.Generator, ground: _Ground) -> None:
    """Fences along the terrain, sometimes, and one to four trees beyond the sidewalks."""
    width = segment.shape[1]
    borders = ground.borders
    if ground.left_terrain > 0 and rng.random() < 0.6:
        _draw_fence(segment, rng, ground.point, borders[1], ground.pixels_per_m)
    if ground.right_terrain > 0 and rng.random() < 0.6:
        _draw_fence(segment, rng, ground.point, borders[4], ground.pixels_per_m)
    for _ in range(int(rng.integers(1, 5))):
        side = rng.integers(0, 2)
        bottom = (
            rng.uniform(borders[0] - 0.2 * width, borders[1])
            if side == 0
            else rng.uniform(borders[4], borders[5] + 0.2 * width)
        )
        x, y = ground.point(bottom, rng.uniform(0.1, 0.7))
        t = (y - ground.horizon) / (ground.height - ground.horizon)
        _draw_tree(segment, rng, x, y, ground.pixels_per_m * t)


def _draw_things(segment: np.ndarray, rng: np.random.Generator, ground: _Ground, n_objects: int) -> None:
    """``n_objects`` things at random depths, far ones first, so near ones hide them as in a photograph."""
    borders, road_left, road_right, road_half = ground.borders, ground.road_left, ground.road_right, ground.road_half
    depths = np.sort(rng.uniform(0.03, 0.7, size=n_objects) ** 1.3)
    for t in depths:
        kind = _THING_KINDS[int(rng.choice(len(_THING_KINDS), p=_THING_ODDS))]
        if kind in ("person", "pole", "bicycle"):
            on_left = rng.random() < 0.5
            lane = (borders[1], borders[2]) if on_left else (borders[3], borders[4])
            if kind == "pole":  # poles stand at the kerb
                lane = (
                    (borders[2] - 0.15 * ground.left_sidewalk, borders[2])
                    if on_left
                    else (borders[3], borders[3] + 0.15 * ground.right_sidewalk)
                )
        elif kind in ("cyclist", "motorcyclist"):
            lane = (
                (road_left, road_left + 0.2 * road_half)
                if rng.random() < 0.5
                else (road_right - 0.2 * road_half, road_right)
            )
        else:
            lane = (road_left + 0.1 * road_half, road_right - 0.1 * road_half)
        x, y = ground.point(rng.uniform(*lane), t)
        _draw_thing(segment, rng, kind, x, y, ground.pixels_per_m * t)


def _draw_facades(
    segment: np.ndarray, rng: np.random.Generator, off_ground: np.ndarray, horizon: float, vanish_x: float
) -> None:
    """Buildings, walls, trees and gaps of sky along both sides, their tops converging on the vanishing point."""
    height, width = segment.shape
    cols = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)[:, None]
    skyline = rng.uniform(0.02, 0.07) * height  # the height of the far end of the street
    for side in (-1, 1):
        # Distance from the vanishing point, 0 there and 1 at the image edge on this side.
        span = vanish_x if side < 0 else width - vanish_x
        distance = np.clip((cols - vanish_x) * side / max(span, 1.0), 0.0, 1.0)
        cut = 1.0
        while cut > 0.01:
            # Geometric cuts: facades look narrower with distance.
            near_cut, cut = cut, cut * rng.uniform(0.5, 0.85)
            columns = (distance > cut) & (distance <= near_cut)
            kind = rng.choice(4, p=[0.68, 0.14, 0.08, 0.10])  # building, tree row, wall in front of a building, gap
            if kind == 3:
                continue
            roof = horizon - skyline - distance * rng.uniform(0.25, 1.0) * horizon
            if kind == 1:
                roof = roof + 0.04 * height * np.sin(cols / rng.uniform(2.0, 6.0) + rng.uniform(0, 2 * np.pi))
            under_roof = (rows >= roof[None, :]) & columns[None, :] & off_ground
            segment[under_roof] = VEGETATION if kind == 1 else BUILDING
            if kind == 2:
                wall_top = horizon - distance * rng.uniform(0.05, 0.15) * height
                segment[under_roof & (rows >= wall_top[None, :])] = WALL
    # The far end of the street and the gaps between facades show distant buildings, never sky below the skyline.
    segment[(rows >= horizon - skyline) & off_ground & (segment == SKY)] = BUILDING


def _draw_fence(
    segment: np.ndarray, rng: np.random.Generator, ground_point, bottom: float, pixels_per_m: float
) -> None:
    """A fence along the terrain's border, from some depth to the bottom of the image."""
    depths = np.linspace(rng.uniform(0.1, 0.5), 1.3, 24)
    base = np.array([ground_point(bottom, t) for t in depths])
    top = base - np.stack([np.zeros_like(depths), rng.uniform(0.9, 1.5) * pixels_per_m * depths], axis=1)
    outline = np.concatenate([base, top[::-1]]).round().astype(np.int32)
    cv2.fillPoly(segment, [outline], FENCE)


def _draw_tree(segment: np.ndarray, rng: np.random.Generator, x: float, y: float, pixels_per_m: float) -> None:
    """A trunk and a crown of overlapping discs, both vegetation as in Cityscapes."""
    trunk_height = rng.uniform(2.0, 3.5) * pixels_per_m
    _box(segment, VEGETATION, x - 0.15 * pixels_per_m, y - trunk_height, x + 0.15 * pixels_per_m, y)
    for _ in range(int(rng.integers(3, 7))):
        radius = rng.uniform(1.0, 2.2) * pixels_per_m
        centre = (x + rng.uniform(-1.5, 1.5) * pixels_per_m, y - trunk_height - rng.uniform(0.0, 2.5) * pixels_per_m)
        cv2.circle(segment, _point(*centre), max(1, round(radius)), VEGETATION, -1)


def _draw_thing(segment: np.ndarray, rng: np.random.Generator, kind: str, x: float, y: float, m: float) -> None:
    """One object standing at (x, y) on the ground; ``m`` is pixels per metre at its depth."""
    if kind == "car":
        side_view = rng.random() < 0.15
        length = (rng.uniform(3.8, 4.8) if side_view else rng.uniform(1.7, 1.9)) * m
        body, cabin = rng.uniform(0.7, 0.9) * m, rng.uniform(0.5, 0.7) * m
        _box(segment, CAR, x - length / 2, y - body, x + length / 2, y)
        _box(segment, CAR, x - 0.35 * length, y - body - cabin, x + 0.3 * length, y - body)
        if side_view:
            for wheel_x in (x - 0.3 * length, x + 0.3 * length):
                cv2.circle(segment, _point(wheel_x, y - 0.2 * m), max(1, round(0.32 * m)), CAR, -1)
    elif kind in ("truck", "bus", "tram"):
        cls = {"truck": TRUCK, "bus": BUS, "tram": TRAIN}[kind]
        side_view = rng.random() < 0.2
        length = (rng.uniform(6.0, 10.0) if side_view else rng.uniform(2.4, 2.6)) * m
        tall = rng.uniform(2.8, 3.6) * m
        _box(segment, cls, x - length / 2, y - tall, x + length / 2, y - 0.2 * m)
        if kind == "truck":  # a lower cab in front of the box
            _box(segment, cls, x + length / 2, y - 0.7 * tall, x + length / 2 + min(2.0 * m, 0.4 * length), y - 0.2 * m)
        if kind == "tram":  # the pantograph
            _box(segment, cls, x - 0.05 * length, y - tall - 0.6 * m, x + 0.05 * length, y - tall)
    elif kind == "person":
        _draw_person(segment, PERSON, x, y, rng.uniform(1.55, 1.95) * m, m)
    elif kind == "pole":
        tall = rng.uniform(3.5, 7.0) * m
        _box(segment, POLE, x - 0.08 * m, y - tall, x + 0.08 * m, y)
        on_top = rng.choice(3, p=[0.45, 0.35, 0.2])
        if on_top == 0:  # a round or square sign
            if rng.random() < 0.5:
                cv2.circle(segment, _point(x, y - tall), max(1, round(0.35 * m)), TRAFFIC_SIGN, -1)
            else:
                _box(segment, TRAFFIC_SIGN, x - 0.35 * m, y - tall - 0.35 * m, x + 0.35 * m, y - tall + 0.35 * m)
        elif on_top == 1:
            _box(segment, TRAFFIC_LIGHT, x - 0.2 * m, y - tall - 0.5 * m, x + 0.2 * m, y - tall + 0.5 * m)
    else:  # a bicycle or motorcycle, ridden or parked
        cls = MOTORCYCLE if kind == "motorcyclist" else BICYCLE
        length = (2.0 if cls == MOTORCYCLE else 1.7) * m
        wheel = max(1, round((0.32 if cls == MOTORCYCLE else 0.35) * m))
        rim = -1 if cls == MOTORCYCLE else max(1, round(0.08 * m))
        for wheel_x in (x - 0.35 * length, x + 0.35 * length):
            cv2.circle(segment, _point(wheel_x, y - wheel), wheel, cls, rim)
        frame_y = y - 2 * wheel if cls == BICYCLE else y - 1.8 * wheel
        _box(
            segment,
            cls,
            x - 0.35 * length,
            frame_y,
            x + 0.35 * length,
            frame_y + max(1.0, 0.12 * m) + (0.4 * m if cls == MOTORCYCLE else 0),
        )
        if kind != "bicycle":
            _draw_person(segment, RIDER, x, frame_y + 0.6 * m, rng.uniform(1.5, 1.8) * m, m)


def _draw_person(segment: np.ndarray, cls: int, x: float, y: float, tall: float, m: float) -> None:
    """Legs, a torso and a head, standing on (x, y)."""
    _box(segment, cls, x - 0.18 * m, y - 0.5 * tall, x + 0.18 * m, y)
    _box(segment, cls, x - 0.24 * m, y - 0.85 * tall, x + 0.24 * m, y - 0.45 * tall)
    cv2.circle(segment, _point(x, y - 0.92 * tall), max(1, round(0.1 * tall)), cls, -1)


def _box(segment: np.ndarray, cls: int, x0: float, y0: float, x1: float, y1: float) -> None:
    # cv2 draws a filled rectangle of zero size as one pixel, so even far objects stay visible.
    cv2.rectangle(segment, _point(x0, y0), _point(x1, y1), int(cls), -1)


def _point(x: float, y: float) -> tuple[int, int]:
    # Clamped because cv2 refuses coordinates beyond int32 shifts; far off-image points draw nothing anyway.
    limit = 1 << 20
    return int(np.clip(round(x), -limit, limit)), int(np.clip(round(y), -limit, limit))
