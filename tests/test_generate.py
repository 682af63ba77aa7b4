"""``nsegaug generate`` end to end: real label files in temp folders, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from runs import DATA, error_line, example_pairs, generate, nsegaug_process, rows, run, tree

from nsegaug import __version__
from nsegaug.cli import main
from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.manifest import MANIFEST_NAME, META_NAME, ROW_KEYS
from nsegaug.params import DeformParams
from nsegaug.storage import sha256_file


def invoke(*args: str, jobs: int | None = None):
    extra = ["--jobs", str(jobs)] if jobs else []
    return CliRunner().invoke(main, ["generate", *map(str, args), *extra], catch_exceptions=False)


def test_copies_mirror_the_layout_and_the_manifest_describes_them(dataset, tmp_path):
    labels, images = dataset
    sources_before = tree(labels), tree(images)
    out = tmp_path / "out"
    result = invoke(
        "--labels", labels, "--images", images, "--label-suffix", "_gtFine", "--image-suffix", "_leftImg8bit",
        "--copies", 3, "--out", out, "--seed", 7, "--ignore-index", 255,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("masks: 6, copies written: 18, skipped: 0, failed: 0,")
    assert (tree(labels), tree(images)) == sources_before  # sources never touched

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(
        f"{c}/{c}_{i}_gtFine_nsp{k}.png" for i in range(6) for c in [("aachen", "bremen")[i % 2]] for k in (1, 2, 3)
    )

    manifest = rows(out)
    assert len(manifest) == 6 * 4 and all(set(row) == set(ROW_KEYS) for row in manifest)
    assert [(row["label"], row["copy"]) for row in manifest] == sorted((row["label"], row["copy"]) for row in manifest)
    for row in manifest:
        source = labels / row["label"]
        assert row["sha256_label"] == sha256_file(source)
        assert (images / row["image"]).is_file() and row["image"].endswith("_leftImg8bit.jpg")
        original = np.asarray(Image.open(source))
        assert (row["height"], row["width"]) == original.shape
        if row["copy"] == 0:
            assert row["output"] is None and not row["deformed"] and row["sha256_output"] == row["sha256_label"]
            continue
        copy = Image.open(out / row["output"])
        assert copy.mode == "P" and copy.getpalette() == Image.open(source).getpalette()
        assert row["sha256_output"] == sha256_file(out / row["output"])
        changed = np.asarray(copy) != original
        assert row["deformed"] and (row["alpha"], row["sigma"]) in {
            (a, s) for a in (1, 15, 30, 50, 100) for s in (3, 5, 10)
        }
        assert row["changed_fraction"] == pytest.approx(changed.mean())
        assert set(np.unique(copy)) <= set(np.unique(original))  # labels are moved, never invented
        assert 0 <= row["suppressed_fraction"] <= 1 and 0 <= row["mean_displacement"] <= row["max_displacement"]

    meta = json.loads((out / META_NAME).read_text())
    assert meta["version"] == __version__ and meta["status"] == "complete"
    assert meta["parameters"]["seed"] == 7 and meta["parameters"]["copies"] == 3
    assert meta["parameters"]["ignore_index"] == 255
    deformed = [row for row in manifest if row["deformed"]]
    unchanged = sum(row["changed_fraction"] == 0 for row in deformed)
    suppressed = sum(row["suppressed_fraction"] for row in deformed) / len(deformed)
    assert meta["counts"] == {
        "copies_written": 18, "masks_done": 6, "masks_failed": 0, "masks_skipped": 0, "masks_total": 6,
        "masks_unpaired": 0, "masks_image_size_differs": 0, "copies_deformed": 18, "copies_unchanged": unchanged,
        "mean_suppressed_fraction": pytest.approx(suppressed, abs=1e-6),
    }  # fmt: skip
    assert meta["warnings"] == [] and meta["kind"] == "generate" and meta["schema"] == 2
    assert meta["command_line"][:2] == ["nsegaug", "generate"] and meta["elapsed_s"] > 0


def test_output_bytes_do_not_depend_on_jobs_or_reruns(dataset, tmp_path):
    labels, _ = dataset
    outputs = []
    for name, jobs in (("one", 1), ("two", 2), ("again", 1)):
        assert (
            invoke("--labels", labels, "--copies", 4, "--out", tmp_path / name, "--prob", 0.7, jobs=jobs).exit_code == 0
        )
        outputs.append(tree(tmp_path / name))
    assert outputs[0] == outputs[1] == outputs[2]
    deformed = [row["deformed"] for row in rows(tmp_path / "one") if row["copy"] > 0]
    assert 0 < sum(deformed) < len(deformed)  # --prob 0.7 left some copies as they were


def test_seed_changes_the_outputs(dataset, tmp_path):
    labels, _ = dataset
    for seed in (0, 1):
        assert invoke("--labels", labels, "--copies", 2, "--out", tmp_path / f"s{seed}", "--seed", seed).exit_code == 0
    assert {k: v for k, v in tree(tmp_path / "s0").items() if k.endswith(".png")} != {
        k: v for k, v in tree(tmp_path / "s1").items() if k.endswith(".png")
    }


def test_prob_zero_writes_undeformed_copies(dataset, tmp_path):
    labels, _ = dataset
    out = tmp_path / "out"
    assert invoke("--labels", labels, "--copies", 2, "--out", out, "--prob", 0).exit_code == 0
    for row in rows(out):
        assert not row["deformed"] and row["alpha"] is None and row["changed_fraction"] == 0
        if row["output"]:
            np.testing.assert_array_equal(
                np.asarray(Image.open(out / row["output"])), np.asarray(Image.open(labels / row["label"]))
            )


def test_mask_without_image_is_reported_and_recorded(dataset, tmp_path):
    labels, images = dataset
    (images / "aachen" / "aachen_0_leftImg8bit.jpg").unlink()
    out = tmp_path / "out"
    result = invoke(
        "--labels", labels, "--images", images, "--label-suffix", "_gtFine", "--image-suffix", "_leftImg8bit",
        "--copies", 1, "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0
    assert f"{labels / 'aachen/aachen_0_gtFine.png'}: no image found in {images}" in result.stderr
    assert {row["label"]: row["image"] for row in rows(out)}["aachen/aachen_0_gtFine.png"] is None
    assert json.loads((out / META_NAME).read_text())["counts"]["masks_unpaired"] == 1


def test_label_formats_are_kept(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    base = np.asarray(Image.open(DATA / "train" / "labels" / "scene_0001.png"))
    Image.fromarray(base.astype(np.uint16) * 257).save(labels / "sixteen.png")
    Image.fromarray(base).save(labels / "gray.tif", compression="tiff_lzw")
    palette = {"#000000": 0, "#ff0000": 1, "#00ff00": 2, "#0000ff": 3}
    (tmp_path / "colours.json").write_text(json.dumps(palette))
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    Image.fromarray(colours[base % 4]).save(labels / "rgb.png")
    out = tmp_path / "out"
    result = invoke("--labels", labels, "--copies", 2, "--out", out, "--palette", tmp_path / "colours.json")
    assert result.exit_code == 0, result.output
    sixteen = Image.open(out / "sixteen_nsp1.png")
    assert sixteen.mode == "I;16" and set(np.unique(sixteen)) <= set(np.unique(base.astype(np.uint16) * 257))
    gray = Image.open(out / "gray_nsp1.tif")
    assert gray.mode == "L" and gray.info["compression"] == "tiff_lzw"
    rgb = np.asarray(Image.open(out / "rgb_nsp2.png"))
    assert rgb.shape == (*base.shape, 3)
    assert {tuple(c) for c in rgb.reshape(-1, 3)} <= {tuple(c) for c in colours}


def test_bad_files_are_reported_one_line_each_and_the_run_goes_on(dataset, tmp_path):
    labels, _ = dataset
    good = (labels / "aachen" / "aachen_0_gtFine.png").read_bytes()
    (labels / "broken").mkdir()
    (labels / "broken" / "truncated.png").write_bytes(good[: len(good) // 3])
    (labels / "broken" / "notes.png").write_text("not an image")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(labels / "broken" / "colour.png")
    Image.fromarray(np.zeros((8, 8), np.float32)).save(labels / "broken" / "depth.tif")
    out = tmp_path / "out"
    result = invoke("--labels", labels, "--copies", 2, "--out", out)
    assert result.exit_code == 1
    # Workers finish in any order: the lines are compared in path order.
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("error: "))
    broken = labels / "broken"
    assert len(errors) == 4
    assert (
        errors[0] == f"error: {broken / 'colour.png'}: RGB colour-coded label map needs a colour table (--palette FILE)"
    )
    assert (
        errors[1]
        == f"error: {broken / 'depth.tif'}: floating-point image (mode F); label maps hold integer class indices"
    )
    assert errors[2] == f"error: {broken / 'notes.png'}: not an image file"
    assert errors[3].startswith(f"error: {broken / 'truncated.png'}: unreadable image (")
    assert "masks: 6, copies written: 12, skipped: 0, failed: 4," in result.stderr
    assert len(list(out.rglob("*.png"))) == 12 and not list(out.rglob("broken/*"))
    meta = json.loads((out / META_NAME).read_text())
    assert meta["status"] == "failed" and meta["counts"]["masks_failed"] == 4 and len(meta["failures"]) == 4


def test_on_error_fail_stops_at_the_first_bad_file(dataset, tmp_path):
    labels, _ = dataset
    (labels / "aachen" / "aachen_0_gtFine.png").write_text("garbage")  # the first file in walk order
    out = tmp_path / "out"
    result = invoke("--labels", labels, "--copies", 1, "--out", out, "--on-error", "fail", jobs=1)
    assert result.exit_code == 1
    assert "failed: 1," in result.stderr and "masks: 0," in result.stderr
    assert not list(out.rglob("*.png")) and "UserWarning" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--copies", "0"], "0 is not in the range x>=1"),
        (["--copies", "2", "--alpha-sigma", "15:5,bad"], "alpha-sigma"),
        (["--copies", "2", "--alpha-sigma", "15:-5"], "alpha-sigma"),
        (["--copies", "2", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --backend dask"),
        (["--copies", "2", "--pattern", "*.nothing"], "no files matching '*.nothing'"),
        (["--copies", "2", "--name-template", "{stem}{ext}"], "{copy}"),
        (["--copies", "11", "--name-template", "{stem}{copy}{ext}"], "non-digit character before {copy}"),
    ],
)
def test_bad_arguments_are_usage_errors(dataset, tmp_path, args, message):
    labels, _ = dataset
    result = invoke("--labels", labels, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_label_folder_is_a_usage_error(tmp_path):
    result = invoke("--labels", tmp_path / "absent", "--copies", 1, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_dry_run_lists_and_writes_nothing(dataset, tmp_path):
    labels, _ = dataset
    out = tmp_path / "out"
    result = invoke("--labels", labels, "--copies", 2, "--out", out, "--dry-run")
    assert result.exit_code == 0
    assert f"-> {out / 'aachen/aachen_0_gtFine_nsp2.png'}" in result.output
    assert "6 masks, 12 copies would be written" in result.output
    assert "copies=2" in result.output and not out.exists()


def test_name_template(dataset, tmp_path):
    labels, _ = dataset
    out = tmp_path / "out"
    assert (
        invoke("--labels", labels, "--copies", 2, "--out", out, "--name-template", "{stem}.aug{copy}{ext}").exit_code
        == 0
    )
    assert (out / "bremen" / "bremen_1_gtFine.aug2.png").is_file()


@pytest.mark.parametrize("template", ["{stem:.3}_nsp{copy}{ext}", "{stem}_nsp{copy}{ext:.0}", "{stem!r}_{copy}{ext}"])
def test_name_templates_that_cut_names_are_refused(dataset, tmp_path, template):
    labels, _ = dataset
    result = invoke("--labels", labels, "--copies", 2, "--out", tmp_path / "out", "--name-template", template)
    assert result.exit_code == 2 and "format spec not allowed" in result.stderr


def test_zero_padded_copy_numbers_and_str_paths_from_python(dataset, tmp_path):
    labels, _ = dataset
    from nsegaug import GenerateConfig, generate_dataset

    config = GenerateConfig(
        labels=str(labels), out=str(tmp_path / "out"), copies=2, name_template="{stem}_{copy:02d}{ext}"
    )
    summary = generate_dataset(config, log=lambda message: None)
    assert summary.masks == 6 and (tmp_path / "out" / "aachen" / "aachen_0_gtFine_02.png").is_file()


def test_the_png_level_is_a_recorded_choice_of_the_same_pixels(dataset, tmp_path):
    labels, _ = dataset
    runs = {level: tmp_path / f"level{level}" for level in ("0", "9", None)}
    for level, out in runs.items():
        extra = ("--png-level", level) if level else ()
        assert invoke("--labels", labels, "--copies", 1, "--out", out, "--jobs", 1, *extra).exit_code == 0
    metas = {level: json.loads((out / META_NAME).read_text()) for level, out in runs.items()}
    assert [metas[level]["parameters"]["png_level"] for level in runs] == [0, 9, 6]  # 6, Pillow's, unless told
    copies = {level: sorted(out.rglob("*_nsp1.png")) for level, out in runs.items()}
    assert copies["0"] and len(copies["0"]) == len(copies["9"])
    for stored, smallest in zip(copies["0"], copies["9"], strict=True):
        assert stored.stat().st_size > 2 * smallest.stat().st_size
        np.testing.assert_array_equal(np.asarray(Image.open(stored)), np.asarray(Image.open(smallest)))
    refused = invoke("--labels", labels, "--copies", 1, "--out", runs["0"], "--png-level", 9, "--resume")
    assert refused.exit_code == 3 and "png_level: 0 -> 9" in refused.stderr
    assert invoke("--labels", labels, "--copies", 1, "--out", tmp_path / "x", "--png-level", 10).exit_code == 2


def test_generate_refuses_an_image_folder_without_images_up_front(tmp_path):
    labels, _ = example_pairs(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "gen"
    result = run("generate", "--labels", labels, "--images", tmp_path / "empty", "--copies", 1, "--out", out)
    assert result.exit_code == 2 and "warning" not in result.stderr, result.output
    assert error_line(result) == f"Error: {tmp_path / 'empty'}: no image in it"
    assert not out.exists()


def test_copies_identical_to_their_source_are_counted_and_warned_about(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    for index in range(6):  # 64x64 corners of the example maps: every component is under 1000 px
        with Image.open(DATA / "train" / "labels" / f"scene_{index:04d}.png") as image:
            image.crop((200, 120, 264, 184)).save(small / f"m{index}.png")
    out = tmp_path / "out"
    result = generate("--labels", small, "--copies", 5, "--out", out)
    assert result.exit_code == 0
    rows = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    unchanged = sum(1 for row in rows if row["deformed"] and row["changed_fraction"] == 0)
    meta = json.loads((out / META_NAME).read_text())
    assert meta["counts"]["copies_unchanged"] == unchanged > 15 and meta["counts"]["copies_deformed"] == 30
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "identical to their source" in warning[0] and "area_thresh" in warning[0]
    assert meta["warnings"] == [warning[0].removeprefix("warning: ")]
    scaled = generate("--labels", small, "--copies", 5, "--out", tmp_path / "scaled", "--area-thresh", 2)
    assert "identical to their source" not in scaled.stderr


def test_an_enormous_sigma_is_refused_with_the_reason(labels, tmp_path):
    result = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "out", "--alpha-sigma", "5:1e6")
    assert result.exit_code == 2 and "sigma 1e+06 is above 100 px" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_ignore_index_an_8_bit_map_cannot_hold_is_one_line_per_file(labels, tmp_path):
    result = generate("--labels", labels, "--copies", 1, "--out", tmp_path / "out", "--ignore-index", 70000)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 8 and all(
        "the ignore index 70000 cannot occur in a 8-bit label map (0..255)" in e for e in errors
    )


def test_a_name_template_must_end_with_the_extension(labels, tmp_path):
    result = generate(
        "--labels", labels, "--copies", 1, "--out", tmp_path / "out", "--name-template", "{stem}{ext}_{copy}"
    )
    assert result.exit_code == 2 and "must end with {ext}" in result.stderr


@pytest.mark.parametrize("command", ["generate", "preview"])
def test_a_billion_copies_are_refused_at_once_even_in_a_dry_run(tmp_path, command):
    out = tmp_path / "out"
    extra = ["--dry-run", "--out", out] if command == "generate" else ["--out", tmp_path / "sheet.png"]
    result = nsegaug_process(
        command, "--labels", (DATA / "train" / "labels"), "--copies", 1_000_000_000, *extra, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "copies must be a whole number in [1, 1000]" in result.stderr
    assert not out.exists() and not (tmp_path / "sheet.png").exists()


@pytest.mark.parametrize("pairs", ["1e308:3", "1:3,,", "inf:3", "1:3,,15:5"])
def test_unusable_alpha_sigma_is_refused_before_anything_is_written(tmp_path, pairs):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "--labels",
            str(DATA / "train" / "labels"),
            "--out",
            str(out),
            "--copies",
            "1",
            "--alpha-sigma",
            pairs,
        ],
    )
    assert result.exit_code == 2, result.output
    assert not out.exists()
    assert "--alpha-sigma" in result.output and pairs in result.output


def test_the_largest_alpha_deforms_every_mask(three_masks, tmp_path):
    config = GenerateConfig(
        labels=three_masks, out=tmp_path / "out", copies=1, params=DeformParams(alpha_sigma=((1e6, 3),))
    )
    summary = generate_dataset(config, log=lambda message: None)
    assert summary.failed == 0 and summary.copies_written == 3


def test_pairs_given_as_a_numpy_array_are_recorded_as_json(three_masks, tmp_path):
    params = DeformParams(alpha_sigma=np.array([[15, 5], [30, 10]]), area_thresh=np.int64(100))
    config = GenerateConfig(labels=three_masks, out=tmp_path / "out", copies=1, params=params)
    generate_dataset(config, log=lambda message: None)
    meta = json.loads((tmp_path / "out" / META_NAME).read_text())
    assert meta["parameters"]["alpha_sigma"] == [[15, 5], [30, 10]] and meta["parameters"]["area_thresh"] == 100


def test_a_map_above_max_pixels_is_refused_quoting_the_limit_given(three_masks, tmp_path):
    # The example maps have 131,072 pixels: more than twice the limit, where Pillow's message doubled it.
    arguments = ["generate", "--labels", three_masks, "--out", tmp_path / "out", "--copies", 1, "--max-pixels", 1000]
    result = CliRunner().invoke(main, list(map(str, arguments)))
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert all("131,072 pixels, above the largest map size of 1,000 pixels" in line for line in errors)
    assert "2000" not in result.output and "2,000" not in result.output


@pytest.mark.parametrize(
    ("pairs", "area_thresh", "cause", "not_the_cause"),
    [
        ("1:10", "0", "alpha (1)", "area_thresh"),  # nothing protected: the displacement is too small
        ("30:3", "1000000", "area_thresh is in pixels", "raise alpha"),  # everything protected
    ],
)
def test_copies_left_unchanged_are_blamed_on_their_cause(
    three_masks, tmp_path, pairs, area_thresh, cause, not_the_cause
):
    arguments = ["generate", "--labels", three_masks, "--out", tmp_path / "out", "--copies", 2, "--jobs", 1]
    result = CliRunner().invoke(main, [*map(str, arguments), "--alpha-sigma", pairs, "--area-thresh", area_thresh])
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert "are identical to their source" in warning
    assert cause in warning and not_the_cause not in warning
