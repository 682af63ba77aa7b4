"""Reading and writing label files without losing their format, and atomic writes.

Labels are read with Pillow, never OpenCV: cv2 turns a palette PNG into
colours and drops the palette. A label file is kept as a [`LabelImage`][nsegaug.io.LabelImage]:
the class indices as a 2-D array plus everything needed to write a map of
the same kind back (mode, palette, transparency, bit depth, colour table).
NIfTI volumes (``.nii``, ``.nii.gz``) are read with nibabel and written with
their header kept byte for byte ([`nsegaug.volume.nifti`][nsegaug.volume.nifti]): their indices
are 3-D.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import LabelFormatError, UsageError

# Pillow mode -> dtype of the indices; every other mode is refused with a reason.
_INDEX_MODES = {"P": np.uint8, "L": np.uint8, "1": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I": np.int32}
_SAVE_FORMATS = {"PNG", "TIFF", "BMP"}
# Metadata that makes a copy look like its source in viewers; nothing else is carried over.
_KEPT_INFO = ("transparency", "dpi", "compression")
DEFAULT_PNG_LEVEL = 6
"""zlib's level for the PNGs written (0: stored, fastest and largest; 9: smallest, slowest): Pillow's default."""
PNG_LEVELS = range(10)
# A label map saved with these has had its class indices blurred; writing copies the same way would invent classes.
_LOSSY_TIFF_COMPRESSIONS = {"jpeg", "tiff_jpeg", "webp"}


@dataclass(frozen=True)
class ColourPalette:
    """Colour -> class index table of an RGB-coded label map (ISPRS, CamVid)."""

    colours: np.ndarray  # (n, 3) uint8
    indices: np.ndarray  # (n,) int64, distinct

    def __post_init__(self) -> None:
        codes = _colour_codes(self.colours)
        if len(np.unique(codes)) != len(codes):
            raise ValueError("a colour appears twice in the colour table")
        if len(np.unique(self.indices)) != len(self.indices):
            raise ValueError("a class index appears twice in the colour table, so it could not be written back")

    @property
    def index_dtype(self) -> type:
        return np.uint8 if self.indices.max(initial=0) <= 255 and self.indices.min(initial=0) >= 0 else np.int32

    def encode(self, rgb: np.ndarray, path: os.PathLike | str = "<array>") -> np.ndarray:
        """Class indices of an (h, w, 3) colour map; an unknown colour is a
        [`LabelFormatError`][nsegaug.errors.LabelFormatError]."""
        found, unknown = _look_up(_colour_codes(self.colours), self.indices, _colour_codes(rgb.reshape(-1, 3)))
        if unknown.any():
            first = rgb.reshape(-1, 3)[np.argmax(unknown)]
            count = int(np.count_nonzero(unknown))
            raise LabelFormatError(
                path,
                f"colour {tuple(int(c) for c in first)} is not in the palette ({count} pixel(s) of unknown colours)",
            )
        return found.astype(self.index_dtype).reshape(rgb.shape[:2])

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """The (h, w, 3) uint8 colour map of class indices (all of them in the table)."""
        found, unknown = _look_up(self.indices, self.colours, indices)
        if unknown.any():
            raise ValueError("class index not in the colour table")
        return found


def _look_up(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` at the position of each query in the distinct ``keys``, and where a query is not a key."""
    order = np.argsort(keys)
    position = np.clip(np.searchsorted(keys[order], queries), 0, len(keys) - 1)
    return values[order][position], keys[order][position] != queries


def _colour_codes(colours: np.ndarray) -> np.ndarray:
    colours = colours.astype(np.int64)
    return (colours[..., 0] << 16) | (colours[..., 1] << 8) | colours[..., 2]


_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def parse_colour(text: str | list | tuple) -> tuple[int, int, int]:
    """A colour written as ``#rrggbb``, ``r,g,b``, ``r g b`` or a 3-item list."""
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        match = _HEX.match(text.strip())
        if match:
            value = int(match.group(1), 16)
            return (value >> 16) & 255, (value >> 8) & 255, value & 255
        parts = re.split(r"[\s,;]+", text.strip().strip("()[]"))
    try:
        values = tuple(int(part) for part in parts)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"not a colour: {text!r} (use #rrggbb or r,g,b with 0..255)")
    return values


@lru_cache(maxsize=4)
def cached_colour_palette(path: os.PathLike | str | None) -> ColourPalette | None:
    """The palette at ``path`` (None: no palette), read once per process: a worker needs it for every mask."""
    return load_colour_palette(path) if path is not None else None


def load_colour_palette(path: os.PathLike | str) -> ColourPalette:
    """Read a colour -> index table from JSON or CSV.

    JSON: ``{"#ff0000": 1, "0,255,0": 2}`` or ``[{"colour": [255, 0, 0], "index": 1}, ...]``
    (``color`` also accepted). CSV: rows ``r,g,b,index`` or ``colour,index`` with the
    colour as ``#rrggbb``; a header row is skipped.
    """
    from .storage import is_url, read_bytes

    path = path if is_url(path) else Path(path)
    try:
        text = read_bytes(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LabelFormatError(path, f"cannot read palette ({getattr(error, 'strerror', None) or error})") from error
    try:
        pairs = _palette_pairs_json(text) if str(path).lower().endswith(".json") else _palette_pairs_csv(text)
        if not pairs:
            raise ValueError("no colours in the palette")
        colours = np.array([parse_colour(colour) for colour, _ in pairs], dtype=np.uint8)
        indices = np.array([int(index) for _, index in pairs], dtype=np.int64)
        return ColourPalette(colours, indices)
    except (ValueError, TypeError, KeyError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        raise LabelFormatError(path, f"bad palette: {reason}") from error


def _palette_pairs_json(text: str) -> list[tuple]:
    data = json.loads(text)
    if isinstance(data, dict):
        return list(data.items())
    if isinstance(data, list):
        return [(entry.get("colour", entry.get("color")), entry["index"]) for entry in data]
    raise ValueError("JSON palette must be an object or a list")


def _palette_pairs_csv(text: str) -> list[tuple]:
    pairs = []
    for row in csv.reader(io.StringIO(text)):
        cells = [cell.strip() for cell in row if cell.strip()]
        if not cells or cells[0].startswith("#") and not _HEX.match(cells[0]):
            continue
        if len(cells) == 4:
            colour, index = cells[:3], cells[3]
        elif len(cells) == 2:
            colour, index = cells[0], cells[1]
        else:
            raise ValueError(f"CSV row {row} has neither 'r,g,b,index' nor 'colour,index'")
        if not index.lstrip("-").isdigit():
            if not pairs:
                continue  # the header
            raise ValueError(f"index {index!r} is not an integer")
        pairs.append((colour, index))
    return pairs


@dataclass(frozen=True)
class LabelImage:
    """A label map as read: class indices plus how to write a map of the same kind."""

    indices: np.ndarray  # (h, w) uint8, uint16 or int32
    mode: str  # Pillow mode of the file ("P", "L", "I;16", "RGB", ...)
    format: str  # "PNG", "TIFF" or "BMP"
    palette: bytes | None = None  # the raw palette of a mode "P" file, kept byte for byte
    info: dict = field(default_factory=dict)
    colour_palette: ColourPalette | None = None  # for RGB-coded maps
    volume: object | None = None  # a NIfTI volume's nsegaug.volume.nifti.NiftiLayout (indices are then 3-D)

    @property
    def spacing(self) -> tuple[float, float, float] | None:
        """A volume's voxel sides in mm along its array axes (None for a 2-D map)."""
        return None if self.volume is None else self.volume.spacing


def read_label(
    path: os.PathLike | str, colour_palette: ColourPalette | None = None, data: bytes | None = None
) -> LabelImage:
    """Read a label map with Pillow; any unusable file is a [`LabelFormatError`][nsegaug.errors.LabelFormatError].

    ``data``: the file's bytes when the caller already has them (``path`` then only names the file).
    ``path`` may be an fsspec URL (see [`nsegaug.storage`][nsegaug.storage]). A ``.nii`` or ``.nii.gz`` file is read as
    a volume ([`nsegaug.volume.nifti.read_nifti`][nsegaug.volume.nifti.read_nifti]).
    """
    from ._files.label_folders import is_volume
    from .storage import is_url, read_bytes

    if is_volume(path):
        return _read_volume(path, data)

    if is_url(path):
        if data is None:
            try:
                data = read_bytes(path)
            except FileNotFoundError as error:
                raise LabelFormatError(path, "file not found") from error
    else:
        path = Path(path)
    try:
        # Pillow refuses maps above twice MAX_IMAGE_PIXELS and only warns (a multi-line warning) above it:
        # here the limit is the limit.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data) if data is not None else path)
        with image:
            if image.format not in _SAVE_FORMATS:
                lossy = " (lossy compression changes labels)" if image.format == "JPEG" else ""
                raise LabelFormatError(path, f"{image.format} is not a label format{lossy}; use PNG, TIFF or BMP")
            if getattr(image, "n_frames", 1) > 1:
                raise LabelFormatError(path, f"has {image.n_frames} frames; a label map has one")
            image.load()
            return _label_image(path, image, colour_palette)
    except UnidentifiedImageError as error:
        raise LabelFormatError(path, "not an image file") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise LabelFormatError(path, _too_large(error)) from error
    except FileNotFoundError as error:
        raise LabelFormatError(path, "file not found") from error
    except OSError as error:
        # Pillow reports truncated and corrupt data as OSError with a message, not an errno.
        raise LabelFormatError(path, f"unreadable image ({error.strerror or error})") from error
    except (ValueError, SyntaxError) as error:
        if isinstance(error, LabelFormatError):
            raise
        raise LabelFormatError(path, f"unreadable image ({error})") from error


def _read_volume(path: os.PathLike | str, data: bytes | None) -> LabelImage:
    from .storage import read_bytes
    from .volume.nifti import read_nifti

    try:
        data = read_bytes(path) if data is None else data
    except FileNotFoundError as error:
        raise LabelFormatError(path, "file not found") from error
    except OSError as error:
        raise LabelFormatError(path, f"cannot read ({error.strerror or error})") from error
    indices, layout = read_nifti(path, data)
    return LabelImage(indices, "NIFTI", "NIFTI", volume=layout)


def _too_large(error: Exception) -> str:
    # Pillow's own message quotes twice the limit above twice the limit (its error's threshold): ours is the one
    # limit there is, max_pixels.
    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found[1]):,} pixels" if found else "too many pixels"
    return (
        f"{size}, above the largest map size of {Image.MAX_IMAGE_PIXELS:,} pixels (Pillow's guard against "
        "decompression bombs); tile the map, or raise the largest map size (max_pixels) if the file is trusted"
    )


def _label_image(path: Path, image: Image.Image, colour_palette: ColourPalette | None) -> LabelImage:
    info = {key: image.info[key] for key in _KEPT_INFO if key in image.info}
    if info.get("compression") in _LOSSY_TIFF_COMPRESSIONS:
        raise LabelFormatError(
            path, f"TIFF with lossy {info['compression']} compression (it changes labels); save it losslessly"
        )
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        if colour_palette is None:
            raise LabelFormatError(path, f"{mode} colour-coded label map needs a colour table (--palette FILE)")
        pixels = np.asarray(image)
        if mode == "RGBA":
            if (pixels[..., 3] != 255).any():
                raise LabelFormatError(path, "RGBA label map with transparent pixels; alpha cannot be deformed")
            pixels = pixels[..., :3]
        return LabelImage(colour_palette.encode(pixels, path), mode, image.format, None, info, colour_palette)
    if mode == "F":
        raise LabelFormatError(path, "floating-point image (mode F); label maps hold integer class indices")
    if mode not in _INDEX_MODES:
        raise LabelFormatError(path, f"unsupported image mode {mode}; expected palette, grayscale, 16-bit or RGB")
    indices = np.array(image, dtype=_INDEX_MODES[mode])
    if indices.ndim != 2 or indices.size == 0:
        raise LabelFormatError(path, f"empty or not 2-D (shape {indices.shape})")
    palette = None
    if mode == "P":
        palette = bytes(image.palette.tobytes()) if image.palette is not None else None
        info["palette_mode"] = image.palette.mode if image.palette is not None else "RGB"
    return LabelImage(indices, mode, image.format, palette, info)


def check_png_level(level: int | None) -> int:
    """``level`` as a zlib level for PNGs (None: [`DEFAULT_PNG_LEVEL`][nsegaug.io.DEFAULT_PNG_LEVEL]), or a
    UsageError."""
    if level is None:
        return DEFAULT_PNG_LEVEL
    if isinstance(level, bool) or not isinstance(level, int) or level not in PNG_LEVELS:
        raise UsageError(f"png_level must be an integer from 0 to 9, got {level!r}")
    return level


def encode_label(like: LabelImage, indices: np.ndarray, png_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """The file bytes of ``indices`` in the format, mode and palette of ``like``.

    Deterministic: the same indices, source and ``png_level`` give the same
    bytes. ``png_level``: zlib's level for a PNG (other formats keep their
    source's compression); Pillow's default, 6, gives the bytes of
    earlier versions. A volume is written as its source was
    ([`nsegaug.volume.nifti.encode_nifti`][nsegaug.volume.nifti.encode_nifti]).
    """
    if like.volume is not None:
        from .volume.nifti import encode_nifti

        return encode_nifti(like.volume, indices)
    mode = like.mode
    if like.colour_palette is not None:
        rgb = like.colour_palette.decode(indices)
        if mode == "RGBA":
            rgb = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        image = Image.fromarray(np.ascontiguousarray(rgb))
    elif mode == "1":
        image = Image.fromarray(indices.astype(bool))
    elif mode in ("I;16", "I;16B"):
        image = Image.fromarray(indices.astype(np.uint16))
    elif mode == "I":
        image = Image.fromarray(indices.astype(np.int32))
    elif mode == "P" and like.palette is not None:
        image = _with_palette(indices, like)
    else:
        image = Image.fromarray(indices.astype(np.uint8, copy=False))
        if mode == "P":
            image = image.convert("P")
    options = {key: value for key, value in like.info.items() if key in _KEPT_INFO}
    if like.format == "PNG":
        options.pop("compression", None)
        options["compress_level"] = png_level
    buffer = io.BytesIO()
    image.save(buffer, like.format, **options)
    return buffer.getvalue()


def _with_palette(indices: np.ndarray, like: LabelImage) -> Image.Image:
    # The indices' bytes as mode "P" keep every index as is (Image.convert would remap them). Mapped, not
    # copied: putpalette makes the one copy a writable image needs (a 30000x30000 map is 900 MB a copy).
    pixels = np.ascontiguousarray(indices, dtype=np.uint8)
    paletted = Image.frombuffer("P", (pixels.shape[1], pixels.shape[0]), pixels, "raw", "P", 0, 1)
    paletted.putpalette(like.palette, like.info.get("palette_mode", "RGB"))
    return paletted


def open_image(location: os.PathLike | str) -> Image.Image:
    """Pillow's ``Image.open`` of a file or an fsspec URL."""
    from .storage import is_url, read_bytes

    return Image.open(io.BytesIO(read_bytes(location))) if is_url(location) else Image.open(location)


def image_size(location: os.PathLike | str) -> tuple[int, int]:
    """An image's (width, height) from its header: only the first bytes Pillow needs are read (of an object in a
    store, blocks of 64 KiB), never its pixels."""
    from .storage import filesystem, is_url, with_retries

    if not is_url(location):
        with Image.open(location) as image:
            return image.size
    fs, path = filesystem(location)

    def read() -> tuple[int, int]:
        with fs.open(path, "rb", block_size=1 << 16) as stream, Image.open(stream) as image:
            return image.size

    return with_retries(read, location, "cannot read")


def size_mismatch(
    label: os.PathLike | str, label_size: tuple[int, int], image: os.PathLike | str, size: tuple[int, int]
) -> str | None:
    """The one line that says a label map and its image differ in size, naming both (sizes as width x height);
    None when they agree. Every command that pairs them says it in these words: generate, export and preview
    warn, train refuses."""
    if tuple(label_size) == tuple(size):
        return None
    from .storage import shown

    return (
        f"{shown(label)}: the label map is {label_size[0]}x{label_size[1]} (width x height), "
        f"its image {shown(image)} is {size[0]}x{size[1]}"
    )


# Bytes a pixel of each image mode decodes to, and of the class indices it becomes (this module's types).
_DECODED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I": 4, "RGB": 3, "RGBA": 4}
_INDEX_BYTES = {"I;16": 2, "I;16B": 2, "I": 4, "RGB": 2, "RGBA": 2}


def image_header(data: bytes) -> tuple[tuple[int, int] | None, str | None]:
    """The image's (width, height) and mode from its header, without decoding it (None where Pillow cannot)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.size, image.mode
    except Exception:  # noqa: BLE001 - reading the file itself reports what is wrong with it
        return None, None


def index_bytes(mode: str | None) -> int:
    """Bytes a pixel of the class indices that [`read_label`][nsegaug.io.read_label] makes of an image ``mode``."""
    return _INDEX_BYTES.get(mode, 1)


def decoding_bytes(pixels: int, mode: str | None) -> int:
    """The most bytes [`read_label`][nsegaug.io.read_label] holds to decode a map of ``pixels`` in ``mode``:
    Pillow's image, its bytes and the array of class indices."""
    return pixels * (2 * _DECODED_BYTES.get(mode, 4) + index_bytes(mode))
