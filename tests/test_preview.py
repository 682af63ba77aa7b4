"""``nsegaug preview``: sheets, grids and stats from real generate runs on the example data, through the CLI."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from runs import DATA, error_line, generated_run, needs_root, nsegaug_process, run

from nsegaug import preview
from nsegaug.cli import main
from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.manifest import MANIFEST_NAME, META_NAME
from nsegaug.palettes import CITYSCAPES, IGNORE_COLOUR, colour_table
from nsegaug.params import DEFAULT_ALPHA_SIGMA, DeformParams
from nsegaug.preview import colours, defaults, tiles
from nsegaug.preview import sheet as sheetlib
from nsegaug.preview import views as viewlib

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "train"
MASKS = 3
COPIES = 3
SEED = 5


def invoke(*args):
    return CliRunner().invoke(main, ["preview", *map(str, args)], catch_exceptions=False)


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def tile(picture: np.ndarray, box) -> np.ndarray:
    x, y, width, height = box
    return picture[y : y + height, x : x + width]


def palette_of(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.frombuffer(image.palette.tobytes(), np.uint8).reshape(-1, 3)


def indices_of(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def manifest_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    labels, images = root / "labels", root / "images"
    labels.mkdir()
    images.mkdir()
    for index in range(MASKS):
        shutil.copy(SAMPLES / "labels" / f"scene_{index:04d}.png", labels)
        shutil.copy(SAMPLES / "images" / f"scene_{index:04d}.jpg", images)
    return labels, images


def run_generate(dataset, out: Path, **options) -> Path:
    labels, images = dataset
    deform = {name: options.pop(name) for name in ("ignore_index",) if name in options}
    config = GenerateConfig(
        labels=labels, images=images, out=out, copies=COPIES, seed=SEED, params=DeformParams(**deform), **options
    )
    summary = generate_dataset(config, log=lambda message: None)
    assert summary.failed == 0
    return out


@pytest.fixture(scope="module")
def generated(dataset, tmp_path_factory) -> Path:
    return run_generate(dataset, tmp_path_factory.mktemp("gen") / "out", ignore_index=255)


@pytest.fixture(scope="module")
def undeformed(dataset, tmp_path_factory) -> Path:
    return run_generate(dataset, tmp_path_factory.mktemp("gen0") / "out", prob=0.0)


@pytest.fixture
def manifest_copy(generated, tmp_path) -> Path:
    """A copy of the generated output folder, free to be damaged."""
    out = tmp_path / "out"
    shutil.copytree(generated, out)
    return out


def library_sheet(out: Path, n: int, tile_size: int, copies: int | None = None, pick: str = "random", seed: int = 0):
    index = preview.read_manifest(out)
    scores = {label: entry.score for label, entry in index.labels.items()}
    picked = preview.pick_labels(list(index.labels), n, pick, seed, scores)
    views = preview.manifest_views(index, picked, copies=copies)
    return preview.preview_sheet(views, tile=tile_size), views


# ---------------------------------------------------------------- the contact sheet


def test_sheet_size_is_the_layout_of_its_tiles(generated, tmp_path):
    out = tmp_path / "sheet.png"
    result = invoke("--manifest", generated, "--n", 2, "--tile-size", 256, "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr and not list(tmp_path.glob(".*.tmp"))

    # 512x256 masks in a 256 square: 256x128 tiles; columns image, original, 3 copies, difference.
    font = sheetlib.caption_font()
    row_height = 128 + sheetlib.CAPTION_GAP + sheetlib.caption_height(font)
    columns = 2 + COPIES + 1
    assert Image.open(out).size == (
        sheetlib.PAD + columns * (256 + sheetlib.PAD),
        sheetlib.PAD + 2 * (row_height + sheetlib.PAD),
    )


def test_tiles_show_palette_colours_copies_and_their_differences(generated, tmp_path):
    out = tmp_path / "sheet.png"
    assert invoke("--manifest", generated, "--n", 2, "--tile-size", 512, "--out", out).exit_code == 0
    sheet, views = library_sheet(generated, n=2, tile_size=512)
    picture = png(out)
    assert np.array_equal(picture, np.asarray(sheet.image))  # the CLI draws what the library lays out

    index = preview.read_manifest(generated)
    rows = {(row["label"], row["copy"]): row for row in manifest_rows(generated)}
    for row_number, view in enumerate(views):
        source = index.manifest.folder("labels") / view.label
        palette = palette_of(source)
        boxes = sheet.layout.tiles[row_number]
        kinds = [cell.kind for cell in sheet.cells[row_number]]
        assert kinds == ["image", "original", "copy", "copy", "copy", "difference"]
        # At scale 1 every pixel of the original tile is the palette colour of its class.
        assert np.array_equal(tile(picture, boxes[1]), palette[indices_of(source)])
        changed = np.zeros(indices_of(source).shape, bool)
        for k in range(1, COPIES + 1):
            written = indices_of(generated / rows[(view.label, k)]["output"])
            assert np.array_equal(tile(picture, boxes[1 + k]), palette[written])
            changed |= written != indices_of(source)
        difference = tile(picture, boxes[-1])
        assert changed.any()
        assert (difference[changed] != 0).any(axis=-1).all()
        assert (difference[~changed] == 0).all()


def test_difference_is_empty_for_undeformed_copies(undeformed, tmp_path):
    sheet, views = library_sheet(undeformed, n=MASKS, tile_size=160)
    out = tmp_path / "sheet.png"
    assert invoke("--manifest", undeformed, "--n", MASKS, "--tile-size", 160, "--out", out).exit_code == 0
    picture = png(out)
    for row_number in range(MASKS):
        boxes, cells = sheet.layout.tiles[row_number], sheet.cells[row_number]
        assert not tile(picture, boxes[-1]).any()  # all black
        for column in range(2, 2 + COPIES):
            assert np.array_equal(tile(picture, boxes[column]), tile(picture, boxes[1]))
            assert cells[column].caption == (f"copy {column - 1}: not deformed", "changed 0.00%")


def test_captions_name_alpha_sigma_and_the_changed_percentage(generated, tmp_path):
    sheet, views = library_sheet(generated, n=MASKS, tile_size=200)
    rows = {(row["label"], row["copy"]): row for row in manifest_rows(generated)}
    for view, cells in zip(views, sheet.cells, strict=True):
        assert cells[1].caption == ("original, 512x256", view.label)
        for k in range(1, COPIES + 1):
            row = rows[(view.label, k)]
            assert cells[1 + k].caption == (
                f"copy {k}: alpha={row['alpha']:g} sigma={row['sigma']:g}",
                f"changed {tiles.format_percent(row['changed_fraction'])}",
            )
        assert cells[-1].caption[0] == f"difference, {COPIES} copies"
    # The caption strip under every tile holds dark text pixels.
    picture = np.asarray(sheet.image)
    height = sheetlib.caption_height(sheetlib.caption_font())
    for boxes, origins in zip(sheet.layout.tiles, sheet.layout.captions, strict=True):
        for box, (x, y) in zip(boxes, origins, strict=True):
            strip = picture[y : y + height, x : x + box[2]]
            assert (strip.max(axis=-1) < 100).sum() > 20


def test_picks_are_seeded_and_ranked(generated):
    index = preview.read_manifest(generated)
    scores = {label: entry.score for label, entry in index.labels.items()}
    labels = list(index.labels)
    assert preview.pick_labels(labels, 2, "random", 3) == preview.pick_labels(labels, 2, "random", 3)
    ranked = sorted(labels, key=lambda label: -scores[label])
    assert preview.pick_labels(labels, 2, "most-changed", 0, scores) == ranked[:2]
    assert preview.pick_labels(labels, 1, "least-changed", 0, scores) == ranked[-1:]
    # A mask's score is the mean changed fraction of its copies in the manifest.
    for label, score in scores.items():
        fractions = [
            row["changed_fraction"] for row in manifest_rows(generated) if row["label"] == label and row["copy"]
        ]
        assert score == pytest.approx(np.mean(fractions))


# ---------------------------------------------------------------- without a manifest, and grids


def test_labels_mode_shows_what_generate_writes(dataset, generated, tmp_path):
    labels, images = dataset
    params = DeformParams(ignore_index=255)
    views = preview.label_views(labels, images=images, n=MASKS, copies=COPIES, params=params, seed=SEED)
    for view in views:
        for copy in view.copies:
            written = indices_of(generated / f"{Path(view.label).stem}_nsp{copy.copy_index}.png")
            assert np.array_equal(copy.segment, written)

    out = tmp_path / "sheet.png"
    result = invoke(
        "--labels", labels, "--images", images, "--n", 2, "--copies", 2, "--seed", SEED,
        "--tile-size", 128, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] == sheetlib.PAD + 5 * (128 + sheetlib.PAD)  # image, original, 2 copies, difference


def test_grid_is_an_alpha_by_sigma_table_and_matches_generate(dataset, generated, tmp_path):
    labels, _ = dataset
    out = tmp_path / "grid.png"
    result = invoke("--labels", labels / "scene_0001.png", "--grid", "--seed", SEED, "--ignore-index", 255,
                    "--tile-size", 128, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output

    # No images: header row (original), then 5 alphas x 3 sigmas; 128x64 tiles.
    font = sheetlib.caption_font()
    row_height = 64 + sheetlib.CAPTION_GAP + sheetlib.caption_height(font)
    assert Image.open(out).size == (
        sheetlib.PAD + 3 * (128 + sheetlib.PAD),
        sheetlib.PAD + 6 * (row_height + sheetlib.PAD),
    )

    views = preview.label_views(labels / "scene_0001.png", copies=0)
    sheet = preview.preview_grid(views, DeformParams(ignore_index=255), SEED, tile=128)
    assert np.array_equal(png(out), np.asarray(sheet.image))
    assert [cell.kind for cell in sheet.cells[0]] == ["original"]
    captions = [[cell.caption[0] for cell in row] for row in sheet.cells[1:]]
    assert captions == [[f"alpha={a} sigma={s}" for s in (3, 5, 10)] for a in (1, 15, 30, 50, 100)]

    # The grid uses copy 1's draw: the cell of the pair generate drew for copy 1 is that copy.
    row = next(r for r in manifest_rows(generated) if r["label"] == "scene_0001.png" and r["copy"] == 1)
    grid = viewlib.grid_copies(views[0].segment, "scene_0001.png", DeformParams(ignore_index=255), SEED)
    cell = next(copy for copy in grid if (copy.alpha, copy.sigma) == (row["alpha"], row["sigma"]))
    assert np.array_equal(cell.segment, indices_of(generated / row["output"]))
    assert len(grid) == len(DEFAULT_ALPHA_SIGMA)


def test_crop_is_full_resolution_and_enlarged_by_whole_pixels(generated, tmp_path):
    out = tmp_path / "crop.png"
    result = invoke("--manifest", generated, "--n", 1, "--crop", "100,50,40,30", "--out", out)
    assert result.exit_code == 0, result.output
    sheet, views = library_sheet(generated, n=1, tile_size=defaults.DEFAULT_TILE_SIZE)
    source = preview.read_manifest(generated).manifest.folder("labels") / views[0].label
    picture = png(out)
    original = tile(
        picture,
        sheetlib.render(sheetlib.sheet_cells([viewlib.crop_view(views[0], (100, 50, 40, 30))])).layout.tiles[0][1],
    )
    # min(320 / 40, 320 / 30) = 8: each label pixel is an 8x8 block.
    expected = palette_of(source)[indices_of(source)[50:80, 100:140]].repeat(8, axis=0).repeat(8, axis=1)
    assert np.array_equal(original, expected)


# ---------------------------------------------------------------- statistics


def expected_stats(out: Path) -> dict:
    stats = {}
    for row in manifest_rows(out):
        if row["copy"] and row["deformed"]:
            stats.setdefault((row["alpha"], row["sigma"]), []).append(row)
    return stats


def test_stats_json_equals_the_manifest(generated):
    result = invoke("--manifest", generated, "--stats", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["masks"], stats["copies"], stats["deformed"], stats["not_deformed"]) == (MASKS, 9, 9, 0)
    assert [(p["alpha"], p["sigma"]) for p in stats["pairs"]] == [tuple(map(float, p)) for p in DEFAULT_ALPHA_SIGMA]
    expected = expected_stats(generated)
    for pair in stats["pairs"]:
        rows = expected.get((pair["alpha"], pair["sigma"]), [])
        assert pair["copies"] == len(rows)
        if rows:
            assert pair["mean_changed_percent"] == pytest.approx(100 * np.mean([r["changed_fraction"] for r in rows]))
            assert pair["mean_displacement_px"] == pytest.approx(np.mean([r["mean_displacement"] for r in rows]))
            assert pair["max_displacement_px"] == max(r["max_displacement"] for r in rows)
            assert pair["mean_suppressed_percent"] == pytest.approx(
                100 * np.mean([r["suppressed_fraction"] for r in rows])
            )
        else:
            assert pair["mean_changed_percent"] is None
    assert "wrote" not in result.stderr  # --stats without --out draws nothing


def test_stats_table_has_a_line_per_pair(generated, undeformed):
    result = invoke("--manifest", generated / MANIFEST_NAME, "--stats")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["alpha", "sigma", "copies"]
    assert len(lines) == 1 + len(DEFAULT_ALPHA_SIGMA) + 2
    for (alpha, sigma), rows in expected_stats(generated).items():
        line = next(line for line in lines[1:] if line.split()[:2] == [f"{alpha:g}", f"{sigma:g}"])
        assert line.split()[2:4] == [str(len(rows)), f"{100 * np.mean([r['changed_fraction'] for r in rows]):.2f}"]
    assert (
        "9 copies (0 deformed, 9 left unchanged by the prob coin" in invoke("--manifest", undeformed, "--stats").stdout
    )


# ---------------------------------------------------------------- bad input


def rewrite_manifest(out: Path, edit) -> None:
    path = out / MANIFEST_NAME
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))


def with_extra_key(lines):
    row = json.loads(lines[4])
    row["tool_version"] = "9.9"
    return lines[:4] + [json.dumps(row) + "\n"] + lines[5:]


def with_foreign_pair(lines):
    row = json.loads(lines[1])
    row["alpha"] = 7.0
    return [lines[0], json.dumps(row) + "\n"] + lines[2:]


def with_text_for_a_number(lines):
    row = json.loads(lines[5])
    row["changed_fraction"] = "1%"
    return lines[:5] + [json.dumps(row) + "\n"] + lines[6:]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda lines: lines[:2] + ['{"label": "scene_0000.png", "copy"\n'] + lines[3:],
            "manifest.jsonl:3: not a JSON",
        ),
        (with_extra_key, "manifest.jsonl:5: keys tool_version are not in manifest schema 2"),
        (lambda lines: lines + lines[:1], f"manifest.jsonl:{MASKS * (COPIES + 1) + 1}: second row for scene_0000.png"),
        (with_foreign_pair, "manifest.jsonl:2: alpha=7.0 sigma="),
        (with_text_for_a_number, "manifest.jsonl:6: not a manifest row (changed_fraction: not a number)"),
    ],
    ids=["not-json", "mixed-versions", "two-runs", "foreign-pair", "text-for-number"],
)
def test_bad_manifest_is_one_line_naming_the_line(manifest_copy, tmp_path, edit, expected):
    rewrite_manifest(manifest_copy, edit)
    result = invoke("--manifest", manifest_copy, "--out", tmp_path / "x.png")
    assert result.exit_code == 1
    assert expected in one_line_error(result)
    assert not (tmp_path / "x.png").exists()


def test_manifest_from_another_schema_is_refused(manifest_copy, tmp_path):
    meta = json.loads((manifest_copy / META_NAME).read_text())
    meta.update(schema=3, version="0.9.0")
    (manifest_copy / META_NAME).write_text(json.dumps(meta))
    result = invoke("--manifest", manifest_copy, "--stats")
    assert result.exit_code == 1
    assert f"{META_NAME}: manifest schema 3 (nsegaug 0.9.0)" in one_line_error(result)


def test_missing_copy_is_one_line_naming_file_and_line(manifest_copy, tmp_path):
    (manifest_copy / "scene_0001_nsp2.png").unlink()
    result = invoke("--manifest", manifest_copy, "--n", MASKS, "--out", tmp_path / "x.png")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "manifest.jsonl:7:" in line and "scene_0001_nsp2.png: file not found" in line


def test_missing_image_falls_back_to_labels_with_a_warning(dataset, manifest_copy, tmp_path):
    labels, images = dataset
    moved = tmp_path / "images"
    shutil.copytree(images, moved)
    (moved / "scene_0002.jpg").unlink()
    out = tmp_path / "sheet.png"
    result = invoke("--manifest", manifest_copy, "--images", moved, "--n", MASKS, "--tile-size", 128, "--out", out)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "scene_0002.jpg: image not found" in result.stderr

    index = preview.read_manifest(manifest_copy)
    views = preview.manifest_views(index, sorted(index.labels), images_root=moved)
    sheet = preview.preview_sheet(views, tile=128)
    image_cell = sheet.cells[2][0]
    assert image_cell.pixels is None and image_cell.caption[0] == "image missing"
    assert np.array_equal(png(out), np.asarray(sheet.image))
    assert (tile(png(out), sheet.layout.tiles[2][0]) == sheetlib.SHEET_BACKGROUND).all()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "a preview needs a manifest"),
        (
            ["--labels", SAMPLES / "labels", "--pick", "most-changed"],
            "pick 'most-changed' ranks the copies of a manifest",
        ),
        (["--labels", SAMPLES / "labels", "--stats"], "--stats and --json read a manifest"),
        (["--labels", SAMPLES / "labels", "--crop", "1,2,3"], "X,Y,W,H"),
        (["--labels", SAMPLES / "labels", "--pattern", "*.tif"], "no label files matching"),
    ],
)
def test_usage_errors_exit_2(arguments, message):
    result = invoke(*arguments)
    assert result.exit_code == 2
    assert message in result.stderr


def test_deformation_options_are_refused_with_a_manifest(generated):
    result = invoke("--manifest", generated, "--alpha-sigma", "1:3")
    assert result.exit_code == 2 and "--alpha-sigma" in result.stderr


def test_crop_outside_the_map_is_an_error(generated, tmp_path):
    result = invoke("--manifest", generated, "--n", 1, "--crop", "600,0,10,10", "--out", tmp_path / "x.png")
    assert result.exit_code == 2
    assert "lies outside the 512x256 map" in result.stderr and not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- colours and resampling


def test_maps_without_palette_use_cityscapes_then_voc_and_white_for_ignore(tmp_path):
    segment = np.zeros((20, 30), np.uint8)
    segment[:, 10:] = 13
    segment[:, 20:] = 40
    segment[5:8, :] = 255
    Image.fromarray(segment, "L").save(tmp_path / "mask.png")
    out = tmp_path / "sheet.png"
    result = invoke("--labels", tmp_path / "mask.png", "--copies", 1, "--tile-size", 30, "--out", out)
    assert result.exit_code == 0, result.output
    views = preview.label_views(tmp_path / "mask.png", copies=1)
    sheet = preview.preview_sheet(views, tile=30)
    original = tile(png(out), sheet.layout.tiles[0][0])
    assert (original[0, 0] == CITYSCAPES[0]).all() and (original[0, 15] == CITYSCAPES[13]).all()
    assert (original[0, 25] == colour_table()[40]).all() and (original[6, 0] == IGNORE_COLOUR).all()
    values = np.arange(256)
    assert np.array_equal(colours.fixed_colours(values), colour_table())
    assert np.array_equal(colours.fixed_colours(values, ignore_index=0)[0], IGNORE_COLOUR)


def test_uint16_maps_get_colours(tmp_path):
    segment = np.array([[0, 1000], [2000, 65535]], np.uint16)
    painted = preview.ColourMap.fixed().paint(segment)
    assert painted.shape == (2, 2, 3) and len({tuple(c) for c in painted.reshape(-1, 3)}) == 4


def test_downscaling_never_invents_classes_and_keeps_thin_changes():
    rng = np.random.RandomState(0)
    segment = rng.randint(0, 5, size=(101, 203)).astype(np.uint8)
    small = tiles.resize_labels(segment, (33, 67))
    assert set(np.unique(small)) <= set(np.unique(segment))
    counts = np.zeros((101, 203), np.uint16)
    counts[50, 100] = 1  # one changed pixel
    assert tiles.resize_max(counts, (10, 20)).sum() == 1
    assert tiles.tile_size(256, 512, 320) == (160, 320)
    assert tiles.tile_size(30, 40, 320) == (240, 320)


def test_png_of_a_sheet_round_trips():
    cells = [[tiles.Cell("original", np.full((4, 6, 3), 7, np.uint8), ("a", "b"), (4, 6))]]
    sheet = sheetlib.render(cells)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(sheet.png())).convert("RGB")), np.asarray(sheet.image))


def test_palette_pngs_are_drawn_in_their_own_palette(tmp_path):
    segment = np.zeros((24, 32), np.uint8)
    segment[:, 16:] = 1
    segment[10:14, :] = 255
    palette = np.zeros((256, 3), np.uint8)
    palette[0], palette[1], palette[255] = (1, 2, 3), (200, 100, 50), (9, 9, 9)  # none of them a fixed-map colour
    image = Image.fromarray(segment, "P")
    image.putpalette(palette.tobytes())
    image.save(tmp_path / "mask.png")
    out = tmp_path / "sheet.png"
    result = invoke("--labels", tmp_path / "mask.png", "--copies", 1, "--tile-size", 32, "--out", out)
    assert result.exit_code == 0, result.output
    sheet = preview.preview_sheet(preview.label_views(tmp_path / "mask.png", copies=1), tile=32)
    assert np.array_equal(tile(png(out), sheet.layout.tiles[0][0]), palette[segment])


@needs_root
@pytest.mark.parametrize("disk", ["read-only", "full"])
def test_preview_and_export_write_errors_name_the_file_asked_for(tmp_path, mount, disk):
    out = generated_run(tmp_path)
    folder = mount("disk", "1m", "ro") if disk == "read-only" else mount("disk", "64k")
    if disk == "full":
        with open(folder / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
            while True:
                filler.write(bytes(4096))
    for command, target in (("preview", folder / "sheet.png"), ("export", folder / "pairs.csv")):
        result = run(command, "--manifest", out, "--out", target)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert error_line(result).startswith(f"Error: {target}: cannot write: "), result.output
        assert ".tmp" not in result.stderr and not target.exists()
    assert [path.name for path in folder.iterdir()] == ([] if disk == "read-only" else ["filler"])  # no temp file


@pytest.mark.parametrize(("suffix", "form"), [(".jpg", "JPEG"), (".jpeg", "JPEG"), (".tif", "TIFF"), (".png", "PNG")])
def test_preview_writes_the_format_its_suffix_asks_for(tmp_path, suffix, form):
    target = tmp_path / f"sheet{suffix}"
    result = run("preview", "--labels", DATA / "train" / "labels", "--n", 1, "--copies", 1, "--out", target)
    assert result.exit_code == 0, result.output
    with Image.open(target) as image:
        assert image.format == form and image.mode == "RGB"


@pytest.mark.parametrize("name", ["sheet.gif", "sheet"])
def test_preview_refuses_a_suffix_it_does_not_write_before_any_work(tmp_path, name):
    target = tmp_path / name
    result = run("preview", "--labels", DATA / "train" / "labels", "--n", 1, "--out", target)
    assert result.exit_code == 2 and str(target) in error_line(result) and not target.exists()


@pytest.mark.parametrize("tile", [100_000, 8000])
def test_a_preview_too_large_for_memory_is_refused_before_it_is_drawn(tmp_path, tile):
    out = tmp_path / "sheet.png"
    result = nsegaug_process(
        "preview", "--labels", (DATA / "train" / "labels"), "--tile-size", tile, "-n", 2, "--out", out
    )
    assert result.returncode == 2, result.stderr
    assert not out.exists()
    assert ("needs about" in result.stderr) if tile == 8000 else ("8192" in result.stderr)
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_a_preview_that_fits_is_drawn_under_the_same_limit(tmp_path):
    out = tmp_path / "sheet.png"
    result = nsegaug_process("preview", "--labels", (DATA / "train" / "labels"), "-n", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
