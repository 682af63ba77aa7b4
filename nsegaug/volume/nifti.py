"""NIfTI label volumes (``.nii``, ``.nii.gz``), read with nibabel and written with every header byte kept.

[`nsegaug.io.read_label`][nsegaug.io.read_label] and [`nsegaug.io.encode_label`][nsegaug.io.encode_label] call this
module for volumes, so a volume travels through ``generate``, ``noise`` and
``preview`` as a [`LabelImage`][nsegaug.io.LabelImage] like a PNG map.

A copy is its source file with the voxel data replaced: the header (affine,
qform and sform codes, pixdim, data type, scaling, description) and its
extensions are the source's bytes, byte for byte, and the data keep their
type and byte order. nibabel parses the file; it does not write it, because
``Nifti1Image(data, img.affine, img.header)`` rewrites what it takes for
defaults (an explicit ``scl_slope`` of 1 becomes NaN), and the copy must not
differ from its source in anything but the labels.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import LabelFormatError

# gzip's own default level: label volumes are long runs of a few values, which level 6 packs well and fast.
GZIP_LEVEL = 6
_GZIP_MAGIC = b"\x1f\x8b"
# Header sizes of NIfTI-1 and NIfTI-2 single files (the first field of the header, sizeof_hdr).
_HEADER_SIZES = (348, 540)


@dataclass(frozen=True)
class NiftiLayout:
    """What a copy keeps of its source: the bytes before and after the voxel data, the data's type, and how
    the volume sits in space (for units in mm and for the preview)."""

    prefix: bytes  # header and extensions, up to the voxel data (vox_offset)
    suffix: bytes  # whatever follows the data (nothing, in a well-formed file)
    dtype: np.dtype  # the data's type as stored, byte order included
    shape: tuple[int, ...]  # as the header's dim says (a trailing 1 kept)
    compressed: bool
    spacing: tuple[float, float, float]  # mm along array axes 0, 1, 2 (pixdim)
    axis_codes: tuple[str, str, str]  # where each array axis points (nibabel's aff2axcodes, e.g. R, A, S)


def read_nifti(path: os.PathLike | str, data: bytes) -> tuple[np.ndarray, NiftiLayout]:
    """The class values (X, Y, Z) of a NIfTI file's bytes and what writing a copy needs; anything unusable is
    a [`LabelFormatError`][nsegaug.errors.LabelFormatError].

    Refused: 4D images (a trailing axis of length 1 is no fourth axis),
    scaled data (``scl_slope`` other than 1 or ``scl_inter`` other than 0),
    values that are not whole numbers, and a volume whose data would not fit
    in the memory left (from its header, before the data are unpacked: a
    small .nii.gz can claim a huge volume). Pillow's limit on pixels, a 2D
    guard whose default is smaller than many CT volumes, does not apply.
    """
    import nibabel as nib

    compressed = data[:2] == _GZIP_MAGIC
    check_size(path, _header_bytes(path, data, compressed))
    try:
        raw = gzip.decompress(data) if compressed else data
        image_class = nib.Nifti2Image if _header_size(raw) == 540 else nib.Nifti1Image
        image = image_class.from_bytes(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise LabelFormatError(path, f"not a readable NIfTI file ({error})") from error
    except Exception as error:  # noqa: BLE001 - nibabel's many ways of saying "not NIfTI": one line
        raise LabelFormatError(path, f"not a readable NIfTI file ({' '.join(str(error).split())})") from error
    shape = tuple(int(size) for size in image.shape)
    axes = _volume_shape(path, shape)
    _check_scaling(path, image)
    stored = np.asanyarray(image.dataobj.get_unscaled())
    # In C order and this machine's byte order: the engines (and cc3d) take native arrays; the copy is written
    # back in the file's own type and order.
    native = stored.dtype.newbyteorder("=")
    indices = _integral(path, np.ascontiguousarray(stored.reshape(axes, order="F"), dtype=native))
    offset = int(image.dataobj.offset)
    end = offset + stored.size * stored.dtype.itemsize
    zooms = tuple(float(zoom) for zoom in image.header.get_zooms()[:3])
    spacing = (zooms + (1.0, 1.0, 1.0))[:3]
    layout = NiftiLayout(
        prefix=raw[:offset],
        suffix=raw[end:],
        dtype=image.header.get_data_dtype(),
        shape=shape,
        compressed=compressed,
        spacing=spacing,
        axis_codes=tuple(nib.aff2axcodes(image.affine)),
    )
    return indices, layout


def encode_nifti(layout: NiftiLayout, indices: np.ndarray) -> bytes:
    """The file bytes of ``indices`` with the source's header, extensions and data type (deterministic)."""
    if indices.size != int(np.prod(layout.shape)):
        raise ValueError(f"a volume of shape {indices.shape} cannot be written into a file of shape {layout.shape}")
    body = np.asarray(indices).astype(layout.dtype, copy=False).tobytes(order="F")
    raw = b"".join((layout.prefix, body, layout.suffix))
    # mtime 0 and no file name in the gzip header: the same labels give the same bytes, on any day.
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0) if layout.compressed else raw


def check_size(path, header: bytes) -> None:
    """Refuse, from its header alone, a volume whose reading would not fit in the memory left: the file
    unpacked, its data, and the class values (at most 8 bytes a voxel)."""
    from .._resources.memory import available_memory, size_text

    shape = _dims(path, header)
    voxels = int(np.prod(shape, dtype=np.float64))
    itemsize = _itemsize(header)
    needed, available = voxels * (2 * itemsize + 8), available_memory()
    if available is not None and needed > available:
        raise LabelFormatError(
            path,
            f"a {' x '.join(map(str, shape))} volume needs about {size_text(needed)} of memory to read, "
            f"and {size_text(available)} is available",
        )


def _itemsize(header: bytes) -> int:
    """Bytes a voxel from the header's bitpix (NIfTI-1: int16 at byte 72; NIfTI-2: int16 at byte 14)."""
    size = _header_size(header)
    order = "<" if int(np.frombuffer(header[:4], dtype="<i4")[0]) == size else ">"
    bits = int(np.frombuffer(header, dtype=f"{order}i2", count=1, offset=72 if size == 348 else 14)[0])
    return max(1, bits // 8)


def _header_bytes(path, data: bytes, compressed: bool) -> bytes:
    if not compressed:
        return data[:540]
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, 540)
    except zlib.error as error:
        raise LabelFormatError(path, f"not a readable .nii.gz file ({error})") from error


def _header_size(raw: bytes) -> int:
    for order in ("<", ">"):
        size = int(np.frombuffer(raw[:4], dtype=f"{order}i4")[0]) if len(raw) >= 4 else 0
        if size in _HEADER_SIZES:
            return size
    return 0


def _dims(path, header: bytes) -> tuple[int, ...]:
    """The image's sizes from a raw header's ``dim`` field (NIfTI-1: int16 at byte 40, NIfTI-2: int64 at 16)."""
    size = _header_size(header)
    if not size:
        raise LabelFormatError(path, "not a NIfTI file (no NIfTI-1 or NIfTI-2 header)")
    order = "<" if int(np.frombuffer(header[:4], dtype="<i4")[0]) == size else ">"
    kind, at = ("i2", 40) if size == 348 else ("i8", 16)
    dims = np.frombuffer(header, dtype=f"{order}{kind}", count=8, offset=at)
    count = int(dims[0])
    if not 1 <= count <= 7:
        raise LabelFormatError(path, f"NIfTI header with {count} dimensions")
    return tuple(int(value) for value in dims[1 : count + 1])


def _volume_shape(path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The three axes of a label volume: trailing axes of length 1 dropped, a 2-D image one slice deep."""
    axes = list(shape)
    while len(axes) > 3 and axes[-1] == 1:
        axes.pop()
    if len(axes) > 3:
        raise LabelFormatError(
            path, f"{len(axes)}D image (shape {' x '.join(map(str, shape))}); a label volume has three axes"
        )
    if any(size == 0 for size in axes):
        raise LabelFormatError(path, f"empty image (shape {shape})")
    return tuple(axes + [1] * (3 - len(axes)))


def _check_scaling(path, image) -> None:
    slope, inter = image.dataobj.slope, image.dataobj.inter
    if (slope, inter) != (1.0, 0.0):
        raise LabelFormatError(
            path,
            f"scaled data (scl_slope {slope:g}, scl_inter {inter:g}): a label volume stores its class values as "
            "they are",
        )


def _integral(path, values: np.ndarray) -> np.ndarray:
    """Integer class values: integer data as they are; float data holding whole numbers as int32 or int64."""
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return values
    if not np.issubdtype(values.dtype, np.floating):
        raise LabelFormatError(path, f"data of type {values.dtype}: a label volume holds integer class values")
    finite = np.isfinite(values)
    whole = finite & (values == np.floor(values))
    if not whole.all():
        bad = values[~whole].flat[0]
        count = int(np.count_nonzero(~whole))
        raise LabelFormatError(
            path, f"non-integral label data ({values.dtype}, {count:,} voxel(s) such as {bad!r}); labels are whole"
        )
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    fits = np.iinfo(np.int32).min <= low and high <= np.iinfo(np.int32).max
    return values.astype(np.int32 if fits else np.int64)
