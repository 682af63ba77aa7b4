"""Datasets in object storage: the storage layer on memory://, and every command against a real S3 server.

The S3-compatible server is moto's, started by these tests on 127.0.0.1 (a
process of its own) and stopped at the end; nsegaug reaches it through s3fs
as it would reach S3 or MinIO, with the endpoint and credentials given as
``--storage-options`` or in the environment (``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from s3 import make_buckets, needs_moto, start_moto

from nsegaug import storage
from nsegaug.cli import main
from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.manifest import MANIFEST_NAME, META_NAME

pytest.importorskip("s3fs", reason="needs the cloud extra: pip install 'nsegaug[cloud]'")
SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")


# --- the storage layer, on memory:// -------------------------------------------------------------------------------


def test_memory_urls_read_write_list_and_remove():
    root = "memory://unit/a"
    storage.write_bytes(storage.join(root, "x/1.png"), b"one")
    storage.write_bytes(storage.join(root, "x/2.png"), b"two")
    storage.write_bytes(storage.join(root, "y.png"), b"three")
    assert storage.read_bytes("memory://unit/a/x/1.png") == b"one"
    assert sorted(storage.walk(root)) == ["x/1.png", "x/2.png", "y.png"]
    assert storage.is_dir(root) and storage.is_file(storage.join(root, "y.png"))
    assert storage.sha256(storage.join(root, "y.png")) == hashlib.sha256(b"three").hexdigest()
    storage.remove(storage.join(root, "x/1.png"))
    storage.remove(storage.join(root, "x/1.png"))  # already gone: nothing to do
    assert sorted(storage.walk(root)) == ["x/2.png", "y.png"] and not storage.exists(storage.join(root, "x/1.png"))
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("memory://unit/a/none.png")


def test_joins_keep_the_kind_of_location():
    assert storage.join("s3://b/p/", "a/x.png") == "s3://b/p/a/x.png"
    assert storage.join(Path("/d"), "a/x.png") == Path("/d/a/x.png")
    assert storage.parent("s3://b/p/m.jsonl") == "s3://b/p" and storage.name("s3://b/p/m.jsonl") == "m.jsonl"
    assert storage.as_location("s3://b/p") == "s3://b/p" and storage.as_location("rel/p") == Path("rel/p")


def test_transient_faults_are_retried_and_permanent_ones_are_one_line(monkeypatch):
    monkeypatch.setattr(storage, "FIRST_WAIT_S", 0.001)
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("SlowDown: please reduce your request rate")
        return "done"

    assert storage.with_retries(flaky, "s3://b/k", "cannot read") == "done" and len(attempts) == 3

    def denied():
        raise PermissionError("Forbidden")

    with pytest.raises(storage.StorageError) as caught:
        storage.with_retries(denied, "s3://b/k", "cannot read")
    assert str(caught.value) == "s3://b/k: cannot read: access denied (Forbidden)"


def test_a_run_into_memory_writes_parts_then_one_sorted_manifest_and_resumes(tmp_path, monkeypatch):
    import nsegaug._jobs.manifest_log

    monkeypatch.setattr(nsegaug._jobs.manifest_log, "PART_MASKS", 2)  # many parts for 6 masks
    labels = tmp_path / "labels"
    labels.mkdir()
    for index in range(6):
        shutil.copy(SAMPLES / "train" / "labels" / f"scene_{index:04d}.png", labels)
    local, remote = tmp_path / "local", "memory://run/out"
    generate_dataset(GenerateConfig(labels=labels, out=local, copies=2), log=lambda message: None)
    generate_dataset(GenerateConfig(labels=labels, out=remote, copies=2), log=lambda message: None)
    keys = sorted(storage.walk(remote))
    assert keys == sorted(path.name for path in local.iterdir())  # the parts were merged and removed
    for key in keys:
        if key != META_NAME:
            assert storage.read_bytes(storage.join(remote, key)) == (local / key).read_bytes(), key
    # A lost copy and a part left by a killed run: resume redoes one mask and merges the part.
    storage.remove(storage.join(remote, "scene_0001_nsp2.png"))
    storage.write_bytes(f"{remote}/manifest.parts/x-000001.jsonl", b"")
    summary = generate_dataset(GenerateConfig(labels=labels, out=remote, copies=2), resume=True, log=print)
    assert (summary.masks, summary.skipped) == (1, 5)
    assert sorted(storage.walk(remote)) == keys
    assert storage.read_bytes(f"{remote}/{MANIFEST_NAME}") == (local / MANIFEST_NAME).read_bytes()


def test_noise_into_memory_resumes_and_cleans_up_after_itself(tmp_path):
    from nsegaug.noise import NoiseConfig, add_noise

    labels = tmp_path / "labels"
    labels.mkdir()
    for index in range(3):
        shutil.copy(SAMPLES / "train" / "labels" / f"scene_{index:04d}.png", labels)
    out = "memory://noise/out"
    add_noise(NoiseConfig(labels=labels, out=out), log=lambda message: None)
    listed = sorted(storage.walk(out))
    storage.write_bytes(f"{out}/scene_0001.png", b"left by a killed run")  # an unlisted, damaged output
    summary = add_noise(NoiseConfig(labels=labels, out=out), resume=True, log=lambda message: None)
    assert (summary.masks, summary.skipped) == (1, 2) and sorted(storage.walk(out)) == listed


def test_file_urls_are_local_paths_and_trailing_slashes_do_not_matter(tmp_path):
    assert storage.as_location(f"file://{tmp_path}/x") == tmp_path / "x"
    assert storage.as_location("s3://b/p/") == "s3://b/p"


def test_a_key_that_looks_like_a_status_code_is_not_retried(monkeypatch):
    monkeypatch.setattr(storage, "FIRST_WAIT_S", 0.001)
    attempts = []

    def missing_key():
        attempts.append(1)
        raise OSError("NoSuchKey: b/masks/500.png")

    with pytest.raises(storage.StorageError):
        storage.with_retries(missing_key, "s3://b/masks/500.png", "cannot read")
    assert len(attempts) == 1


def test_a_url_without_fsspec_is_one_line_naming_the_extra(monkeypatch):
    storage._filesystem.cache_clear()
    monkeypatch.setitem(sys.modules, "fsspec", None)  # import fsspec now fails, as without the extra
    try:
        with pytest.raises(storage.StorageError, match=r"pip install 'nsegaug\[cloud\]'"):
            storage.filesystem("s3://bucket/key")
    finally:
        storage._filesystem.cache_clear()


def copy_tree_into(local: Path, url: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            storage.write_bytes(storage.join(url, path.relative_to(local).as_posix()), path.read_bytes())


def test_a_tree_made_on_disk_then_copied_into_a_bucket_finds_its_data_there(tmp_path):
    from nsegaug.export import manifest_pairs

    tree = tmp_path / "tree"
    (tree / "labels").mkdir(parents=True)
    (tree / "images").mkdir()
    for index in range(3):
        shutil.copy(SAMPLES / "train" / "labels" / f"scene_{index:04d}.png", tree / "labels")
        shutil.copy(SAMPLES / "train" / "images" / f"scene_{index:04d}.jpg", tree / "images")
    generate_dataset(
        GenerateConfig(labels=tree / "labels", images=tree / "images", out=tree / "aug", copies=1),
        log=lambda message: None,
    )
    copy_tree_into(tree, "memory://moved/tree")
    shutil.rmtree(tree)  # only the bucket has it now
    pairs = list(manifest_pairs("memory://moved/tree/aug"))
    assert len(pairs) == 6
    for pair in pairs:
        assert str(pair.image).startswith("memory://moved/tree/images/") and storage.is_file(pair.image)
        assert str(pair.label).startswith("memory://moved/tree/") and storage.is_file(pair.label)


def test_moved_data_given_as_urls_stays_urls(tmp_path):
    from nsegaug.export import manifest_pairs

    labels, images, out = tmp_path / "labels", tmp_path / "images", tmp_path / "aug"
    labels.mkdir()
    images.mkdir()
    shutil.copy(SAMPLES / "train" / "labels" / "scene_0000.png", labels)
    shutil.copy(SAMPLES / "train" / "images" / "scene_0000.jpg", images)
    generate_dataset(GenerateConfig(labels=labels, images=images, out=out, copies=1), log=lambda message: None)
    copy_tree_into(labels, "memory://data/labels")
    copy_tree_into(images, "memory://data/images")
    pairs = list(manifest_pairs(out, labels="memory://data/labels/", images="memory://data/images"))
    assert [str(pair.image) for pair in pairs] == ["memory://data/images/scene_0000.jpg"] * 2
    assert str(pairs[0].label) == "memory://data/labels/scene_0000.png"


def test_preview_reads_a_label_folder_in_a_bucket(tmp_path):
    copy_tree_into(SAMPLES / "train" / "labels", "memory://preview/labels")
    copy_tree_into(SAMPLES / "train" / "images", "memory://preview/images")
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(
        main,
        [
            "preview",
            "--labels",
            "memory://preview/labels",
            "--images",
            "memory://preview/images",
            "--n",
            "2",
            "--copies",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0 and "no image" not in result.output


def test_a_misspelt_image_prefix_in_a_bucket_is_refused_before_anything_is_written(tmp_path):
    copy_tree_into(SAMPLES / "train" / "labels", "memory://typo/labels")
    copy_tree_into(SAMPLES / "train" / "images", "memory://typo/images")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "--labels",
            "memory://typo/labels",
            "--images",
            "memory://typo/imagse",
            "-k",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2 and "memory://typo/imagse: image folder not found" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_a_dry_run_into_a_bucket_lists_pairs_and_object_names(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    shutil.copy(SAMPLES / "train" / "labels" / "scene_0000.png", labels)
    shutil.copy(SAMPLES / "train" / "labels" / "scene_0001.png", labels)
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(SAMPLES / "train" / "images" / "scene_0000.jpg", images)
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "--labels",
            str(labels),
            "--images",
            str(images),
            "--copies",
            "1",
            "--out",
            "memory://dry/out",
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "scene_0000.png  (image: scene_0000.jpg)" in result.output
    assert f"scene_0001.png  (no image found in {images})" in result.output
    assert "  -> memory://dry/out/scene_0000_nsp1.png" in result.output
    assert not storage.exists("memory://dry/out/manifest.jsonl")


# --- a real S3 server ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3 server on 127.0.0.1 with a bucket of the example data; its options, and env for subprocesses."""
    pytest.importorskip("moto.server", reason="needs moto[server]")
    process, url = start_moto()
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"},
    }
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    make_buckets(url, "testing", "testing", "data", "out")
    storage.configure(options)
    fs, _ = storage.filesystem("s3://data")
    for split in ("train", "val"):
        for kind in ("labels", "images"):
            for path in sorted((SAMPLES / split / kind).iterdir()):
                fs.pipe_file(f"data/{split}/{kind}/{path.name}", path.read_bytes())
    yield {"url": url, "options": options, "json": json.dumps(options), "env": env, "fs": fs}
    storage.configure(None)
    process.terminate()
    process.wait(timeout=30)


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


def objects(fs, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` but the run's metadata (it records times and places)."""
    keys = sorted(fs.find(prefix))
    return {key[len(prefix) + 1 :]: fs.cat_file(key) for key in keys if not key.endswith(META_NAME)}


def files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != META_NAME
    }


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local") / "out"
    arguments = ["--labels", SAMPLES / "train" / "labels", "--images", SAMPLES / "train" / "images", "--copies", 3]
    assert invoke("generate", *arguments, "--out", out, "--jobs", 2, "-q").exit_code == 0
    return files(out)


@needs_moto
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_generate_from_a_bucket_to_a_bucket_is_byte_equal_to_a_local_run(s3, local_run, backend):
    if backend == "dask":
        pytest.importorskip("distributed", reason="needs dask.distributed")
    out = f"s3://out/{backend}"
    arguments = ["--labels", "s3://data/train/labels", "--images", "s3://data/train/images", "--copies", 3]
    result = invoke(
        "generate", *arguments, "--out", out, "--jobs", 2, "--backend", backend, "--storage-options", s3["json"], "-q"
    )
    assert result.exit_code == 0, result.output
    assert objects(s3["fs"], out.removeprefix("s3://")) == local_run
    meta = json.loads(s3["fs"].cat_file(f"{out.removeprefix('s3://')}/{META_NAME}"))
    assert meta["parameters"]["labels"] == "s3://data/train/labels" and meta["status"] == "complete"
    assert "testing" not in json.dumps(meta) and "secret" not in json.dumps(meta)  # credentials are never recorded


@needs_moto
def test_a_killed_run_in_a_bucket_resumes_to_the_same_objects_and_leaves_none_unlisted(s3, local_run):
    out = "s3://out/killed"
    command = [sys.executable, "-m", "nsegaug", "generate", "--labels", "s3://data/train/labels"]
    command += ["--images", "s3://data/train/images", "--copies", "3", "--out", out, "--jobs", "2", "-q"]
    process = subprocess.Popen(command, env=s3["env"], stderr=subprocess.PIPE, start_new_session=True)
    fs = s3["fs"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not fs.find("out/killed/manifest.parts", refresh=True):
        time.sleep(0.1)
    assert fs.find("out/killed/manifest.parts"), "the run wrote no part of its manifest"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    resumed = subprocess.run([*command, "--resume"], env=s3["env"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped: " in resumed.stderr and "skipped: 0," not in resumed.stderr
    assert objects(fs, "out/killed") == local_run  # every object listed, nothing else, the same bytes


@needs_moto
def test_overwrite_in_a_bucket_leaves_only_the_new_runs_objects(s3):
    out = "s3://out/over"
    arguments = ["--labels", "s3://data/train/labels", "--pattern", "scene_000?.png", "--out", out]
    arguments += ["--storage-options", s3["json"], "-q"]
    assert invoke("generate", *arguments, "--copies", 3).exit_code == 0
    assert invoke("generate", *arguments, "--copies", 1, "--overwrite").exit_code == 0
    keys = sorted(key.rpartition("/")[2] for key in s3["fs"].find("out/over", refresh=True))
    assert keys == sorted([MANIFEST_NAME, META_NAME] + [f"scene_000{index}_nsp1.png" for index in range(10)])


@needs_moto
def test_a_missing_bucket_and_a_truncated_object_are_one_line(s3):
    options = ["--storage-options", s3["json"], "-q"]
    missing = invoke(
        "generate", "--labels", "s3://no-such-bucket/labels", "--copies", 1, "--out", "s3://out/m", *options
    )
    assert missing.exit_code == 2 and missing.stderr.strip().endswith(
        "s3://no-such-bucket/labels: label folder not found"
    )
    no_out = invoke(
        "generate", "--labels", "s3://data/train/labels", "--copies", 1, "--out", "s3://no-bucket/x", *options
    )
    assert no_out.exit_code == 1 and "Traceback" not in no_out.output
    assert no_out.stderr.strip().splitlines()[-1].startswith("Error: s3://no-bucket/x: cannot take the output folder: ")
    good = (SAMPLES / "train" / "labels" / "scene_0000.png").read_bytes()
    s3["fs"].pipe_file("data/broken/labels/a.png", good)
    s3["fs"].pipe_file("data/broken/labels/cut.png", good[: len(good) // 3])
    result = invoke(
        "generate", "--labels", "s3://data/broken/labels", "--copies", 1, "--out", "s3://out/broken", *options
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: s3://data/broken/labels/cut.png: unreadable image (")


@needs_moto
def test_a_denied_key_is_one_line_and_the_others_are_made(tmp_path):
    import boto3

    # A server that checks credentials after the three calls that make a user whose policy denies one object.
    process, url = start_moto(INITIAL_NO_AUTH_ACTION_COUNT="3")
    try:
        iam = boto3.client(
            "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
        )
        iam.create_user(UserName="annotator")
        key = iam.create_access_key(UserName="annotator")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::locked/labels/scene_0002.png"},
            ],
        }
        iam.put_user_policy(UserName="annotator", PolicyName="one-denied", PolicyDocument=json.dumps(policy))
        options = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"], "client_kwargs": {"endpoint_url": url}}
        make_buckets(url, key["AccessKeyId"], key["SecretAccessKey"], "locked")
        storage.configure(options)
        fs, _ = storage.filesystem("s3://locked")
        for index in range(4):
            fs.pipe_file(
                f"locked/labels/scene_000{index}.png",
                (SAMPLES / "train" / "labels" / f"scene_000{index}.png").read_bytes(),
            )
        arguments = ["--labels", "s3://locked/labels", "--copies", 1, "--out", "s3://locked/out"]
        result = invoke("generate", *arguments, "--storage-options", json.dumps(options), "-q", "--jobs", 1)
        assert result.exit_code == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert errors == ["error: s3://locked/labels/scene_0002.png: cannot read: Access Denied"]
        assert "masks: 3, copies written: 3" in result.stderr
    finally:
        storage.configure(None)
        process.terminate()
        process.wait(timeout=30)


@needs_moto
@needs_torch
def test_train_an_epoch_and_preview_from_the_bucket(s3, tmp_path):
    out = "s3://out/train"
    pairs = [
        "--labels",
        "s3://data/train/labels",
        "--images",
        "s3://data/train/images",
        "--pattern",
        "scene_000[0-3].png",
    ]
    assert invoke("generate", *pairs, "--copies", 1, "--out", out, "--storage-options", s3["json"], "-q").exit_code == 0
    cache = tmp_path / "cache"
    arguments = ["train", "--manifest", f"{out}/{MANIFEST_NAME}", "--val-labels", "s3://data/val/labels"]
    arguments += ["--val-images", "s3://data/val/images", "--num-classes", 19, "--width", 4, "--batch-size", 2]
    arguments += ["--crop", 64, 64, "--workers", 2, "--epochs", 1, "--out", tmp_path / "run", "--cache", cache]
    result = subprocess.run(
        [sys.executable, "-m", "nsegaug", *map(str, arguments)],
        env={**s3["env"], "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # The manifest's --pattern picks the validation maps too: the first four.
    assert final["steps"] == 2 and final["train_images"] == 4 and final["val_images"] == 4
    assert len(list(cache.iterdir())) >= 4 + 4 + 2 * 4  # the DataLoader workers kept what they read
    sheet = tmp_path / "sheet.png"
    shown = invoke("preview", "--manifest", out, "--n", 2, "--out", sheet, "--storage-options", s3["json"])
    assert shown.exit_code == 0, shown.output
    assert sheet.stat().st_size > 1000


@needs_moto
def test_a_bucket_held_by_a_live_run_elsewhere_is_refused_and_a_dead_local_holders_lock_is_broken(s3):
    arguments = ["--labels", "s3://data/val/labels", "--copies", 1, "--storage-options", s3["json"], "-q"]
    lock = "out/held/.nsegaug.lock"
    s3["fs"].pipe_file(lock, json.dumps({"host": "gpu-node-7", "pid": 4242, "started": "2026-12-01T10:00:00+00:00"}))
    refused = invoke("generate", *arguments, "--out", "s3://out/held")
    assert refused.exit_code == 3
    assert refused.stderr.strip().splitlines() == [
        "Error: s3://out/held is in use by a run on host gpu-node-7, pid 4242, started 2026-12-01T10:00:00+00:00; "
        "if that run is gone, remove s3://out/held/.nsegaug.lock and start again"
    ]
    assert s3["fs"].find("out/held", refresh=True) == [lock]  # nothing written
    # A run of this host whose process is gone left its lock: the next run breaks it, and leaves none.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    s3["fs"].pipe_file(lock, json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": "then"}))
    assert invoke("generate", *arguments, "--out", "s3://out/held").exit_code == 0
    keys = {key.rpartition("/")[2] for key in s3["fs"].find("out/held", refresh=True)}
    assert ".nsegaug.lock" not in keys and {MANIFEST_NAME, META_NAME} < keys


@pytest.mark.parametrize(
    "url",
    [
        "s3://KEY:p@ss@bucket/x",
        "s3://KEY:p@ss@bucket",
        "s3://KEY:p%40ss@bucket/x@y.png",
        "gs://user@bucket?x=1@2",
        "https://a:b@c@host:9000/path/file.png#frag",
        "s3://bucket/folder@2x/file.png",
    ],
)
def test_public_text_takes_out_the_user_info_that_public_does(url):
    """A password holding an "@": the command line's record keeps none of it (on 0f2d1df "s3://ss@bucket/x")."""
    assert storage.public_text(f"--out={url}") == f"--out={storage.public(url)}"
    clean = storage.public(url)
    assert storage.public_text(f"{url},{url} {url}") == f"{clean},{clean} {clean}"
    assert "p@ss" not in storage.public_text(url) and ":b@" not in storage.public_text(url)
