"""Write the sample data set: synthetic street scenes as palette PNG label maps and the JPEG photos they label.

The default is the committed example data (Cityscapes' 19 classes, 1-2 px ignore bands). The robustness
study's variant (``--categories 6 --ignore-band 0``) labels the same kind of scenes with Cityscapes'
categories (``7``; ``6`` with "object" merged into "construction") and exact outlines, so that a small model
learns every class and what remains is boundary error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from nsegaug.palettes import CITYSCAPES, CITYSCAPES_NAMES, colour_table, flat_palette
from nsegaug.synthetic import (
    BICYCLE,
    BUILDING,
    BUS,
    CAR,
    FENCE,
    IGNORE,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    THING_CLASSES,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    TRAIN,
    TRUCK,
    VEGETATION,
    WALL,
    city_scene,
    ignore_borders,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
SPLITS = ("train", "val")
# Fixed codes rather than positions in SPLITS, so a new split never changes the seeds of existing files.
SPLIT_CODES = {"train": 0, "val": 1}
OBJECTS_AT_256x512 = 45
JPEG_QUALITY = 90

# What each class looks like in daylight; the rendered colour is halfway between this and the palette
# colour, so colours hint at the class (as in real photos) without being the palette a model could copy.
NATURAL = np.array(
    [
        (80, 80, 86),  # road: asphalt
        (150, 140, 140),  # sidewalk: paving
        (150, 128, 110),  # building: brick and plaster
        (160, 158, 146),  # wall: concrete
        (120, 100, 80),  # fence: wood
        (105, 105, 110),  # pole: galvanised steel
        (45, 45, 40),  # traffic light: dark housing
        (210, 210, 200),  # traffic sign: white plate
        (60, 105, 40),  # vegetation
        (125, 140, 70),  # terrain: grass and soil
        (175, 205, 235),  # sky
        (110, 80, 75),  # person: clothes
        (100, 60, 60),  # rider
        (90, 95, 120),  # car: paint
        (120, 120, 115),  # truck
        (190, 170, 70),  # bus
        (170, 170, 180),  # train: tram
        (60, 60, 75),  # motorcycle
        (80, 50, 45),  # bicycle
    ],
    dtype=np.float32,
)
# Texture amplitude per class at three scales (coarse, medium, fine): foliage is busy, sky is smooth.
TEXTURE = np.array(
    [
        (0.06, 0.04, 0.06),
        (0.06, 0.08, 0.05),
        (0.10, 0.06, 0.03),
        (0.05, 0.05, 0.04),
        (0.05, 0.10, 0.06),
        (0.02, 0.02, 0.02),
        (0.02, 0.02, 0.02),
        (0.03, 0.03, 0.02),
        (0.12, 0.22, 0.18),
        (0.10, 0.14, 0.10),
        (0.05, 0.01, 0.00),
        (0.06, 0.08, 0.04),
        (0.06, 0.08, 0.04),
        (0.03, 0.03, 0.02),
        (0.04, 0.04, 0.02),
        (0.04, 0.04, 0.02),
        (0.04, 0.04, 0.02),
        (0.03, 0.03, 0.02),
        (0.03, 0.03, 0.02),
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Categories:
    """Groups of Cityscapes train ids labelled as one class each (ids 0..k-1 in order), and how they are drawn."""

    names: tuple[str, ...]
    members: tuple[tuple[int, ...], ...]  # the train ids of each category
    colours: np.ndarray  # (k, 3) uint8 palette colours
    things: tuple[int, ...]  # the categories that get ignore bands

    def lookup(self) -> np.ndarray:
        """A 256-entry table: train id (or 255) -> category id (or 255)."""
        table = np.full(256, IGNORE, dtype=np.uint8)
        for category, members in enumerate(self.members):
            table[list(members)] = category
        return table


FLAT, CONSTRUCTION, OBJECT = (ROAD, SIDEWALK), (BUILDING, WALL, FENCE), (POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN)
NATURE, HUMAN, VEHICLE = (VEGETATION, TERRAIN), (PERSON, RIDER), (CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)
CATEGORIES = {
    # Cityscapes' categories (its labels.py, without "void"); each drawn in the colour of its most common class.
    7: Categories(
        ("flat", "construction", "object", "nature", "sky", "human", "vehicle"),
        (FLAT, CONSTRUCTION, OBJECT, NATURE, (SKY,), HUMAN, VEHICLE),
        CITYSCAPES[[ROAD, BUILDING, TRAFFIC_SIGN, VEGETATION, SKY, PERSON, CAR]],
        (2, 5, 6),
    ),
    # "object" merged into "construction" (static man-made structures): at 128x256 poles are 1 px wide,
    # and a small model learns them only long after every other class.
    6: Categories(
        ("flat", "construction", "nature", "sky", "human", "vehicle"),
        (FLAT, CONSTRUCTION + OBJECT, NATURE, (SKY,), HUMAN, VEHICLE),
        CITYSCAPES[[ROAD, BUILDING, VEGETATION, SKY, PERSON, CAR]],
        (4, 5),
    ),
}
TEXTURE_CELLS = (4, 16, 64)  # rows of the random grids the three texture scales are upsampled from
N_SHADES = 64  # things get one of this many brightness shades, by connected component, so cars differ


@dataclass(frozen=True)
class RenderParams:
    """Everything random about one photo; `render_image` turns it and a label map into pixels."""

    class_colours: np.ndarray  # (19, 3) float32 RGB
    shades: np.ndarray  # (N_SHADES,) brightness factors of thing instances
    texture_fields: tuple[np.ndarray, ...]  # one (height, width) float32 field per scale, mean 0, std ~1
    lighting: tuple[float, float, float]  # overall brightness, left-right and top-bottom slopes
    windows: tuple[float, float, float, float]  # column period, row period, column phase, row phase (px)
    lane_offsets: tuple[float, ...]  # lane lines: bottom-row x minus the road's apex x, in image widths
    dash_phase: float
    blur_sigma: float
    noise: np.ndarray  # (height, width, 3) float32 sensor noise


def objects_for(height: int, width: int) -> int:
    """How many things a scene of this size gets: as dense as ``OBJECTS_AT_256x512`` at 256x512."""
    return max(3, round(OBJECTS_AT_256x512 * height * width / (256 * 512)))


def draw_render_params(rng: np.random.Generator, height: int, width: int) -> RenderParams:
    """Draw the colours, textures, lighting and noise of one photo."""
    base = 0.5 * CITYSCAPES.astype(np.float32) + 0.5 * NATURAL
    class_colours = np.clip(base + rng.uniform(-12, 12, size=base.shape), 0, 255).astype(np.float32)
    fields = []
    for cells in TEXTURE_CELLS:
        rows = min(cells, height)
        cols = max(1, round(rows * width / height))
        grid = rng.standard_normal((rows, cols)).astype(np.float32)
        fields.append(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC))
    scale = height / 256
    return RenderParams(
        class_colours=class_colours,
        shades=rng.uniform(0.55, 1.4, size=N_SHADES).astype(np.float32),
        texture_fields=tuple(fields),
        lighting=(float(rng.uniform(0.85, 1.1)), float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.25, 0.25))),
        windows=(
            float(rng.uniform(8, 16) * scale),
            float(rng.uniform(10, 18) * scale),
            float(rng.uniform(0, 100)),
            float(rng.uniform(0, 100)),
        ),
        lane_offsets=tuple(float(x) for x in rng.uniform(-0.12, 0.12) + np.array([-0.45, 0.0, 0.45])),
        dash_phase=float(rng.uniform(0, 1)),
        blur_sigma=float(rng.uniform(0.6, 1.0)),
        noise=(rng.standard_normal((height, width, 3)) * 3.0).astype(np.float32),
    )


def render_image(labels: np.ndarray, params: RenderParams) -> np.ndarray:
    """The (height, width, 3) uint8 photo of a label map without ignore pixels (classes 0..18)."""
    height, width = labels.shape
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    image = params.class_colours[labels].copy()

    texture = 1.0 + sum(TEXTURE[labels, k] * field for k, field in enumerate(params.texture_fields))
    image *= texture[..., None]

    things = np.isin(labels, THING_CLASSES).view(np.uint8)
    _, instances = cv2.connectedComponents(things, connectivity=4)
    shade = params.shades[instances % N_SHADES]
    image[things > 0] *= shade[things > 0][:, None]

    col_period, row_period, col_phase, row_phase = params.windows
    windows = (((cols + col_phase) % col_period) < 0.55 * col_period) & (
        ((rows + row_phase) % row_period) < 0.5 * row_period
    )
    image[(labels == 2) & windows] *= np.array([0.45, 0.5, 0.62], dtype=np.float32)

    image[_lane_markings(labels, params)] = (225.0, 225.0, 215.0)

    # Sky brightens towards the horizon, as haze does.
    sky = labels == 10
    image[sky] *= (0.85 + 0.35 * np.broadcast_to(rows / height, labels.shape)[sky])[:, None]

    brightness, slope_x, slope_y = params.lighting
    image *= (brightness + slope_x * (cols / width - 0.5) + slope_y * (rows / height - 0.5))[..., None]
    image = cv2.GaussianBlur(image, (0, 0), params.blur_sigma)
    return np.clip(np.rint(image + params.noise), 0, 255).astype(np.uint8)


def _lane_markings(labels: np.ndarray, params: RenderParams) -> np.ndarray:
    """Dashed lines on the road along rays from its farthest point, the dashes shortening with distance."""
    height, width = labels.shape
    road = labels == 0
    road_rows = np.flatnonzero(road.any(axis=1))
    if len(road_rows) == 0:
        return road
    apex_y = float(road_rows[0])
    apex_x = float(np.flatnonzero(road[road_rows[0]]).mean())
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    depth = np.clip((rows - apex_y) / max(height - apex_y, 1.0), 1e-3, None)  # 1 at the bottom row
    # Ground distance grows as 1/depth; a dash covers 40% of each unit.
    dashes = ((1.0 / depth + params.dash_phase) % 1.0) < 0.4
    lines = np.zeros(labels.shape, dtype=bool)
    for offset in params.lane_offsets:
        line_x = apex_x + offset * width * depth
        half_width = np.maximum(0.5, 0.008 * width * depth)
        lines |= np.abs(cols - line_x) <= half_width
    return road & lines & dashes


def label_image(labels: np.ndarray, colours: np.ndarray = CITYSCAPES) -> Image.Image:
    """A mode "P" image of a uint8 label map, coloured with ``colours`` for 0..k-1, VOC's beyond, 255 white."""
    height, width = labels.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    image.putpalette(flat_palette(colour_table(base=colours)))
    return image


@dataclass(frozen=True)
class Variant:
    """What the label maps hold: 19 train ids or 7 or 6 categories; ignore bands drawn per image or of one width.

    ``ignore_band`` None draws 1 or 2 px per image (the committed example data);
    0 leaves every outline exact. ``objects`` None scales the number of things
    with the map's area (`objects_for`); a number keeps the scene the
    same at any size (the same seed then draws the same scene, only finer).
    ``thicken`` > 0 draws the things of ``thicken_classes`` (train ids; by
    default poles, traffic lights and signs) that many pixels wider on every
    side (over stuff, never over other things), in the labels and the photo
    alike: on small maps a pole is otherwise 1 px wide, a person 2-3 px.
    """

    categories: int | None = None  # a key of CATEGORIES; None: Cityscapes' 19 train ids
    ignore_band: int | None = None
    objects: int | None = None
    thicken: int = 0
    thicken_classes: tuple[int, ...] = OBJECT

    @property
    def colours(self) -> np.ndarray:
        return CATEGORIES[self.categories].colours if self.categories else CITYSCAPES

    @property
    def names(self) -> tuple[str, ...]:
        return CATEGORIES[self.categories].names if self.categories else CITYSCAPES_NAMES

    @property
    def things(self) -> tuple[int, ...]:
        return CATEGORIES[self.categories].things if self.categories else THING_CLASSES


def thicken(segment: np.ndarray, pixels: int, classes: tuple[int, ...] = OBJECT) -> np.ndarray:
    """``segment`` with each of ``classes`` grown by ``pixels`` (chessboard distance) over stuff, not over things."""
    if pixels <= 0:
        return segment
    out = segment.copy()
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    stuff = ~np.isin(segment, THING_CLASSES)
    for cls in classes:
        grown = cv2.dilate((segment == cls).view(np.uint8), kernel).astype(bool)
        out[grown & stuff] = cls
    return out


def make_sample(
    seed: int, split: str, index: int, height: int, width: int, variant: Variant = Variant()
) -> tuple[np.ndarray, np.ndarray]:
    """The label map (with ignore bands unless the variant has none) and photo of sample ``index`` of ``split``."""
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    objects = objects_for(height, width) if variant.objects is None else variant.objects
    scene = city_scene(height, width, objects, seed=int(rng.integers(2**63)))
    full = thicken(scene, variant.thicken, variant.thicken_classes)
    drawn_band = int(rng.integers(1, 3))  # drawn whatever the variant, so the photo's draws stay the same
    band = drawn_band if variant.ignore_band is None else variant.ignore_band
    labels = CATEGORIES[variant.categories].lookup()[full] if variant.categories else full
    labels = ignore_borders(labels, band, variant.things)
    # The photo is drawn from the 19 classes without ignore bands: the band marks doubt, not a thing in the
    # scene, and road and sidewalk look different even when both are labelled "flat".
    image = render_image(full, draw_render_params(rng, height, width))
    return labels, image


def make_sample_data(
    out: Path,
    n_train: int = 60,
    n_val: int = 20,
    height: int = 256,
    width: int = 512,
    seed: int = 0,
    variant: Variant = Variant(),
) -> dict[str, np.ndarray]:
    """Write ``out/{train,val}/{labels,images}`` and ``out/README.md``; return pixel counts per class and split."""
    counts = {}
    thing_areas: list[np.ndarray] = []  # pixel areas of the things (connected components) of each image
    for split, count in zip(SPLITS, (n_train, n_val), strict=True):
        label_dir, image_dir = out / split / "labels", out / split / "images"
        label_dir.mkdir(parents=True, exist_ok=True)
        image_dir.mkdir(parents=True, exist_ok=True)
        # Leftovers of an earlier, larger run would make the folder disagree with the README.
        for stale in [*label_dir.glob("scene_*.png"), *image_dir.glob("scene_*.jpg")]:
            number = stale.stem.removeprefix("scene_")
            if number.isdigit() and int(number) >= count:
                stale.unlink()
        pixels = np.zeros(256, dtype=np.int64)
        for index in range(count):
            labels, image = make_sample(seed, split, index, height, width, variant)
            name = f"scene_{index:04d}"
            label_image(labels, variant.colours).save(label_dir / f"{name}.png", optimize=True)
            Image.fromarray(image).save(image_dir / f"{name}.jpg", quality=JPEG_QUALITY, optimize=True)
            pixels += np.bincount(labels.ravel(), minlength=256)
            things = (np.isin(labels, variant.things)).view(np.uint8)
            thing_areas.append(cv2.connectedComponentsWithStats(things, connectivity=8)[2][1:, cv2.CC_STAT_AREA])
        counts[split] = pixels
    readme = readme_text(n_train, n_val, height, width, seed, counts, thing_areas, variant)
    (out / "README.md").write_text(readme, encoding="utf-8")
    return counts


def readme_text(
    n_train: int,
    n_val: int,
    height: int,
    width: int,
    seed: int,
    counts: dict[str, np.ndarray],
    thing_areas: list[np.ndarray],
    variant: Variant = Variant(),
) -> str:
    """The data set's README: layout, classes with their share of pixels, how it was made, license."""
    total = {split: max(int(pixels.sum()), 1) for split, pixels in counts.items()}
    class_rows = "\n".join(
        f"| {cls} | {name} | {tuple(int(c) for c in variant.colours[cls])} | "
        f"{100 * counts['train'][cls] / total['train']:.2f} | {100 * counts['val'][cls] / total['val']:.2f} |"
        for cls, name in enumerate(variant.names)
    )
    ignore_row = (
        f"| {IGNORE} | ignore | (255, 255, 255) | {100 * counts['train'][IGNORE] / total['train']:.2f} | "
        f"{100 * counts['val'][IGNORE] / total['val']:.2f} |"
    )
    per_image = np.array([len(areas) for areas in thing_areas] or [0])
    median_area = float(np.median(np.concatenate(thing_areas))) if per_image.sum() else 0.0
    label_text = _label_text(variant)
    command = (
        f"python examples/make_sample_data.py --train {n_train} --val {n_val} --height {height} --width {width} "
        f"--seed {seed}{_variant_args(variant)}"
    )
    photo_note = (
        "  Pixels under the ignore bands show whatever is there in the scene."
        if variant.ignore_band != 0
        else "  Photos are rendered from the 19 classes, so road and sidewalk look different even as one category."
        if variant.categories
        else "  Every pixel is labelled."
    )
    return f"""# Sample data: synthetic street scenes

{n_train} training and {n_val} validation samples of {width}x{height} pixels, made by
`examples/make_sample_data.py`, for trying `nsegaug` and for its tests and examples.

```
train/labels/scene_0000.png ... scene_{max(n_train - 1, 0):04d}.png   label maps
train/images/scene_0000.jpg ... scene_{max(n_train - 1, 0):04d}.jpg   photos, same stem as their label map
val/labels/scene_0000.png ...   scene_{max(n_val - 1, 0):04d}.png
val/images/scene_0000.jpg ...   scene_{max(n_val - 1, 0):04d}.jpg
```

{label_text}
- **Photos**: RGB JPEGs (quality {JPEG_QUALITY}) rendered from the label maps: each class
  has a colour between its palette colour and a natural one, textured with smooth noise at
  three scales; buildings have windows, roads have dashed lane lines, things vary in
  brightness, and the whole image has a lighting gradient, a slight blur and sensor noise.
{photo_note}
- Scenes: a road, sidewalks and terrain converging on a vanishing point, facades, walls,
  trees and fences, and things scaled by perspective: {per_image.mean():.0f} things per image
  on average ({per_image.min()} to {per_image.max()}), half of them smaller than {median_area:.0f} pixels.

## Classes

Share of pixels in percent.

| id | class | palette colour | train % | val % |
|---:|---|---|---:|---:|
{class_rows}
{ignore_row}

## How it was made

```
{command}
```

The output depends only on these arguments: every file has its own NumPy random
generator, seeded with (seed, split, index), so running the command again writes
byte-identical files (with the same NumPy, OpenCV and Pillow versions).

## License

Generated by a program from random numbers; no third-party material. Dedicated to the
public domain (CC0 1.0); where that is not possible, use it under the MIT license of
this repository.
"""


def _label_text(variant: Variant) -> str:
    """The README's paragraph on what the label maps hold."""
    if variant.ignore_band is None:
        band = "**255 = ignore**, drawn white: VOC-style bands of 1 or 2 px around the things"
    elif variant.ignore_band > 0:
        band = f"**255 = ignore**, drawn white: VOC-style bands of {variant.ignore_band} px around the things"
    else:
        band = "no ignore pixels: every outline is exact, as in Cityscapes' fine annotations"
    if not variant.categories:
        return (
            '- **Label maps**: 8-bit palette PNGs (mode "P"), one Cityscapes train id per pixel, the\n'
            "  palette being Cityscapes' colours (`nsegaug.palettes.colour_table()`). **19 classes**\n"
            f"  (0..18); {band}\n"
            "  (poles, traffic lights and signs, persons, riders and vehicles)."
        )
    categories = CATEGORIES[variant.categories]
    members = "; ".join(
        f"{index} {name} ({', '.join(CITYSCAPES_NAMES[cls] for cls in categories.members[index])})"
        for index, name in enumerate(categories.names)
    )
    things = ", ".join(categories.names[index] for index in categories.things)
    return (
        '- **Label maps**: 8-bit palette PNGs (mode "P"), one Cityscapes **category** per pixel,\n'
        f"  **{len(categories.names)} classes**: {members}; colours in the table below; {band}"
        + (f" ({things})." if variant.ignore_band else ".")
    )


def _variant_args(variant: Variant) -> str:
    """The command-line options that make ``variant`` (empty for the default)."""
    args = f" --categories {variant.categories}" if variant.categories else ""
    args += f" --ignore-band {variant.ignore_band}" if variant.ignore_band is not None else ""
    args += f" --objects {variant.objects}" if variant.objects is not None else ""
    args += f" --thicken {variant.thicken}" if variant.thicken else ""
    if variant.thicken and variant.thicken_classes != OBJECT:
        args += f" --thicken-classes {','.join(str(cls) for cls in variant.thicken_classes)}"
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; sizes must be positive and counts non-negative."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--train", type=int, default=60, help="number of training samples")
    parser.add_argument("--val", type=int, default=20, help="number of validation samples")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--categories",
        type=int,
        choices=sorted(CATEGORIES),
        default=None,
        help="label Cityscapes' 7 categories, or 6 with object merged into construction, instead of its 19 classes",
    )
    parser.add_argument(
        "--ignore-band", type=int, default=None, help="ignore band width in px, 0: none (default: 1 or 2 per image)"
    )
    parser.add_argument(
        "--objects", type=int, default=None, help="things per scene (default: as dense as 45 at 256x512)"
    )
    parser.add_argument("--thicken", type=int, default=0, help="draw the --thicken-classes N px wider on each side")
    parser.add_argument(
        "--thicken-classes",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        default=OBJECT,
        help="Cityscapes train ids to thicken, comma-separated (default: 5,6,7: pole, traffic light and sign)",
    )
    args = parser.parse_args(argv)
    if args.train < 0 or args.val < 0:
        parser.error("--train and --val must be >= 0")
    if args.height < 16 or args.width < 16:
        parser.error("--height and --width must be at least 16 pixels")
    if args.seed < 0:
        parser.error("--seed must be >= 0 (NumPy seeds are non-negative)")
    counts = (args.ignore_band, args.objects, args.thicken)
    if any(count is not None and count < 0 for count in counts):
        parser.error("--ignore-band, --objects and --thicken must be >= 0")
    if not set(args.thicken_classes) <= set(range(19)):
        parser.error("--thicken-classes are Cityscapes train ids, 0..18")
    return args


def main(argv: list[str] | None = None) -> int:
    """Write the sample data and print where it went."""
    args = parse_args(argv)
    variant = Variant(args.categories, args.ignore_band, args.objects, args.thicken, args.thicken_classes)
    make_sample_data(args.out, args.train, args.val, args.height, args.width, args.seed, variant)
    print(f"wrote {args.train} train and {args.val} val samples of {args.width}x{args.height} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
