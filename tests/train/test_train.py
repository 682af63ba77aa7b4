"""``nsegaug train`` and ``evaluate``: label choice, augmentation, metrics, the loop, resume, torchrun, bad input.

Runs on CPU with a tiny U-Net (width 4), small crops and a few steps, one
torch thread per process (a shared two-core machine slows down badly with more).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from runs import DATA, ROOT, TINY_TRAIN, edit_label, example_pairs, generate, generated_run, run

from nsegaug.cli import main
from nsegaug.generate import GenerateConfig, generate_dataset
from nsegaug.io import read_label
from nsegaug.manifest import MANIFEST_NAME, open_generated
from nsegaug.params import DeformParams
from nsegaug.sampling import choose_label, chosen_labels
from nsegaug.train.metrics import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy, summarize
from train.tiny import EXAMPLES, ONE_THREAD, TINY, needs_torch, train_cli

# --- without torch -----------------------------------------------------------------------------------------------


def test_the_package_and_generate_work_without_torch_and_train_says_what_to_install(tmp_path, val):
    script = f"""
import sys
sys.modules["torch"] = None  # import torch now fails, as without it installed
import nsegaug
from nsegaug.cli import main
generate = ["generate", "--labels", {str(val[0])!r}, "--copies", "1", "--out", {str(tmp_path / "g")!r}, "-j", "1"]
for arguments in (["--help"], ["train", "--help"], ["evaluate", "--help"], generate):
    try:
        main(arguments)
    except SystemExit as exit:
        assert exit.code in (0, None), (arguments, exit.code)
main(["train", "--manifest", {str(tmp_path / "g" / MANIFEST_NAME)!r}, "--val-labels", {str(val[0])!r},
      "--val-images", {str(val[1])!r}, "--num-classes", "19", "--out", {str(tmp_path / "run")!r}])
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ONE_THREAD)
    assert result.returncode == 1, result.stderr
    assert "pip install 'nsegaug[train]'" in result.stderr
    assert (tmp_path / "g" / "scene_0000_nsp1.png").exists()
    assert not (tmp_path / "run").exists()


# --- metrics -----------------------------------------------------------------------------------------------------


def test_metrics_match_a_hand_computed_confusion_matrix():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1], [0, 3, 3, 7]])
    prediction = np.array([[0, 1, 1, 1], [2, 0, 2, 1], [0, 3, 2, 2]])
    # Ground truth down, prediction across; the 255 pixel and the out-of-range 7 do not count.
    expected = np.array([[2, 1, 0, 0], [0, 3, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1]])
    confusion = confusion_matrix(prediction, target, 4, ignore_index=255)
    np.testing.assert_array_equal(confusion, expected)
    # IoU = TP / (TP + FP + FN): 2/(2+1+1), 3/(3+1+0), 1/(1+1+1), 1/(1+0+1).
    np.testing.assert_allclose(iou_per_class(confusion), [1 / 2, 3 / 4, 1 / 3, 1 / 2])
    assert mean_iou(confusion) == pytest.approx(25 / 48)
    assert pixel_accuracy(confusion) == pytest.approx(7 / 10)
    summary = summarize(np.pad(confusion, (0, 1)))  # a fifth class seen nowhere: no IoU, left out of the mean
    assert summary["iou"][4] is None and summary["miou"] == pytest.approx(25 / 48, abs=1e-6) and summary["pixels"] == 10


@needs_torch
def test_confusion_matrix_on_tensors_equals_numpy():
    import torch

    rng = np.random.default_rng(0)
    target, prediction = rng.integers(0, 6, (2, 30, 40)), rng.integers(0, 5, (2, 30, 40))
    target[0, :5] = 255
    expected = confusion_matrix(prediction, target, 5, 255)
    tensor = confusion_matrix(torch.from_numpy(prediction), torch.from_numpy(target), 5, 255)
    np.testing.assert_array_equal(tensor.numpy(), expected)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_the_confusion_matrix_of_uint8_maps_counts_every_class_where_it_is(kind):
    """Label maps and predictions as they are read, uint8, with classes up to 18 of 19: class 14 times 19 is past
    255 (on c7f0ef0 the pairs wrapped around in uint8 and were counted in other cells)."""
    target = np.array([[18, 18, 14, 0], [13, 255, 3, 18]], np.uint8)
    prediction = np.array([[18, 17, 14, 0], [13, 0, 3, 2]], np.uint8)
    expected = np.zeros((19, 19), np.int64)
    for truth, predicted in ((18, 18), (18, 17), (14, 14), (0, 0), (13, 13), (3, 3), (18, 2)):
        expected[truth, predicted] += 1
    if kind == "torch":
        torch = pytest.importorskip("torch")
        counted = confusion_matrix(torch.from_numpy(prediction), torch.from_numpy(target), 19, 255).numpy()
    else:
        counted = confusion_matrix(prediction, target, 19, 255)
    np.testing.assert_array_equal(counted, expected)


# --- label choice and augmentation -------------------------------------------------------------------------------


def test_label_choice_honours_p_and_baseline(manifest):
    samples = open_generated(manifest).samples()
    assert len(samples) == 60 and all(len(sample.labels) == 3 for sample in samples)
    epochs = range(20)
    originals_only = [chosen_labels(samples, 0, epoch, 0.0, False) for epoch in epochs]
    baseline = [chosen_labels(samples, 0, epoch, 1.0, True) for epoch in epochs]
    assert {index for epoch in originals_only + baseline for index in epoch} == {0}
    always = [index for epoch in epochs for index in chosen_labels(samples, 0, epoch, 1.0, False)]
    assert set(always) == {1, 2}
    half = [index for epoch in epochs for index in chosen_labels(samples, 0, epoch, 0.5, False)]
    assert abs(np.mean(np.array(half) > 0) - 0.5) < 0.05  # 1200 draws
    # Per (seed, epoch, sample): the same on every call, different across epochs and seeds.
    assert chosen_labels(samples, 0, 3, 0.5, False) == chosen_labels(samples, 0, 3, 0.5, False)
    assert chosen_labels(samples, 0, 3, 0.5, False) != chosen_labels(samples, 0, 4, 0.5, False)
    assert chosen_labels(samples, 0, 3, 0.5, False) != chosen_labels(samples, 1, 3, 0.5, False)


def test_copies_left_undeformed_by_generate_count_as_originals():
    assert choose_label(0.0, 0.99, deformed_copies=(2,), prob=1.0, baseline=False) == 2
    assert choose_label(0.0, 0.5, deformed_copies=(), prob=1.0, baseline=False) == 0
    assert choose_label(0.7, 0.5, deformed_copies=(1, 2), prob=0.5, baseline=False) == 0


@needs_torch
@pytest.mark.parametrize(
    ("prob", "baseline", "source"), [(0.0, False, "original"), (1.0, True, "original"), (1.0, False, "copy")]
)
def test_dataset_trains_on_the_chosen_label(manifest, prob, baseline, source):
    from nsegaug.train.data import SegmentationDataset

    samples = open_generated(manifest).samples()[:6]
    # No scale, no flip, the whole image as the crop: the label must come out as read.
    dataset = SegmentationDataset(
        samples, train=True, prob=prob, baseline=baseline, crop=(256, 512), scale_range=(1, 1), hflip=False
    )
    for index, sample in enumerate(samples):
        image, label = dataset[(2, index)]
        chosen = dataset.label_index(2, index)
        assert (chosen == 0) == (source == "original")
        np.testing.assert_array_equal(label.numpy(), read_label(sample.labels[chosen]).indices)
        assert image.shape == (3, 256, 512) and abs(float(image.mean())) < 3  # normalised


@needs_torch
@pytest.mark.parametrize("seed", range(4))
def test_crops_keep_labels_exact_and_aligned_with_the_image(seed):
    from nsegaug.synthetic import street_scene
    from nsegaug.train.data import Augmentation, draw_augmentation, warp_image, warp_label

    label = street_scene(90, 130, 25, seed=seed)
    label[:3] = 255
    rng = np.random.default_rng(seed)
    for _ in range(10):
        augmentation = draw_augmentation(rng, *label.shape, (64, 80), (0.5, 2.0), True)
        warped = warp_label(label, augmentation, (64, 80), ignore_index=255)
        assert warped.shape == (64, 80)
        assert set(np.unique(warped)) <= set(np.unique(label)) | {255}
    # At scale 1 bilinear sampling hits pixel centres: image and label must move together, flipped or not.
    image = np.dstack([label] * 3)
    for flip in (False, True):
        augmentation = Augmentation(scale=1.0, top=int(rng.integers(0, 27)), left=int(rng.integers(0, 51)), flip=flip)
        np.testing.assert_array_equal(
            warp_image(image, augmentation, (64, 80))[..., 0], warp_label(label, augmentation, (64, 80), 255)
        )
    # A crop larger than the scaled image: padding is the ignore index in the label and 0 in the image.
    padded = Augmentation(scale=0.5, top=0, left=0, flip=False)
    assert (warp_label(label, padded, (64, 80), 255)[45:] == 255).all()
    assert (warp_image(image, padded, (64, 80))[45:] == 0).all()


@needs_torch
def test_online_batches_carry_the_small_components_of_the_final_label_but_not_the_crop_padding(manifest):
    from nsegaug.torch import collate_with_boxes, component_boxes
    from nsegaug.train.data import EpochBatchSampler, SegmentationDataset, train_loader
    from nsegaug.train.samples import original_samples

    samples = original_samples(open_generated(manifest).samples())[:4]
    assert [sample.labels for sample in samples] == [(EXAMPLES / "train" / "labels" / s.key,) for s in samples]
    # Half scale: 128 rows of image, then 2 rows (512 pixels) of ignore padding in a 130-row crop.
    dataset = SegmentationDataset(
        samples, train=True, crop=(130, 256), scale_range=(0.5, 0.5), hflip=False, area_thresh=1000
    )
    sampler = EpochBatchSampler(len(dataset), 2, seed=0)
    images, labels, boxes = next(iter(train_loader(dataset, sampler, 0, False, 0, collate_with_boxes)))
    assert images.shape == (2, 3, 130, 256) and labels.shape == (2, 130, 256) and len(boxes) == 2
    for label, table in zip(labels, boxes, strict=True):
        assert (label[128:] == 255).all()
        np.testing.assert_array_equal(table.numpy(), component_boxes(label, 1000, 255).numpy())
        assert [128, 0, 129, 255] in component_boxes(label, 1000, None).tolist()  # without the ignore index
        assert not (table[:, 0] >= 128).any()  # with it, the padding protects nothing


@needs_torch
def test_batches_split_across_ranks_and_resume_mid_epoch():
    from nsegaug.train.data import EpochBatchSampler

    def batches(**options):
        sampler = iter(EpochBatchSampler(10, 2, seed=3, **options))
        return [next(sampler) for _ in range(6)]

    whole = batches()
    assert sorted(index for _, index in sum(whole[:5], [])) == list(range(10))  # one epoch: each image once
    assert whole[5][0][0] == 1  # then the next epoch
    assert batches(start_epoch=0, skip_batches=2)[:4] == whole[2:6]  # resumed after 2 steps: the same batches
    rank0, rank1 = batches(rank=0, world_size=2), batches(rank=1, world_size=2)
    assert not {i for batch in rank0[:2] for _, i in batch} & {i for batch in rank1[:2] for _, i in batch}


@needs_torch
def test_learning_rate_schedules():
    from nsegaug.train.loop import lr_factor

    assert lr_factor(0, 100, "poly") == 1.0 and lr_factor(100, 100, "poly") == 0.0
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(0, 100, "poly", warmup=10) == pytest.approx(0.1)


@needs_torch
def test_model_hook_builds_a_users_module(tmp_path, monkeypatch):
    from nsegaug.train.config import TrainError
    from nsegaug.train.model import UNet, build_model

    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def tiny(num_classes):\n    return torch.nn.Conv2d(3, num_classes, 1)\n"
        "def bad(num_classes):\n    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert build_model("my_models:tiny", 7).out_channels == 7
    assert isinstance(build_model("unet", 7, width=4), UNet)
    for spec in ("my_models:bad", "my_models:missing", "no_such_module:f", "unet2"):
        with pytest.raises(TrainError, match="--model"):
            build_model(spec, 7)


@needs_torch
def test_unet_takes_any_image_size():
    import torch

    from nsegaug.train.model import UNet

    assert UNet(5, width=4)(torch.zeros(1, 3, 37, 50)).shape == (1, 5, 37, 50)


@needs_torch
def test_the_amp_step_runs_under_bfloat16_autocast_and_the_evaluation_in_float32_without_autotuning(val):
    import torch

    from nsegaug.train.config import MEAN, STD
    from nsegaug.train.data import SegmentationDataset, eval_loader
    from nsegaug.train.evaluation import counts_over
    from nsegaug.train.model import UNet
    from nsegaug.train.samples import folder_samples
    from nsegaug.train.step import to_device, train_step

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = UNet(19, width=4)
    seen = []  # per forward: the head's dtype and whether cuDNN would autotune
    model.head.register_forward_hook(lambda *args: seen.append((args[2].dtype, torch.backends.cudnn.benchmark)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=False)  # as nsegaug train makes it on the CPU: no loss scaling
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    labels = torch.randint(0, 19, (2, 64, 64))
    labels[0, :8] = 255
    before = [parameter.detach().clone() for parameter in model.parameters()]
    loss = train_step(
        model, optimizer, scaler, *to_device(images, labels, cpu, MEAN, STD), 255, True, None, torch.bfloat16
    )
    assert [dtype for dtype, _ in seen] == [torch.bfloat16]  # the forward ran under autocast
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(not torch.equal(old, new) for old, new in zip(before, model.parameters(), strict=True))

    samples, _ = folder_samples(val[0], val[1], None, "", "")
    loader = eval_loader(SegmentationDataset(samples, train=False, normalize=False), 0, 1, 0, False)
    plain = counts_over(model, loader, 19, 255, cpu, MEAN, STD)
    benchmark = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = True  # as nsegaug train sets it on CUDA for the training steps
        del seen[:]
        with torch.autocast("cpu", dtype=torch.bfloat16):  # a training loop's autocast does not reach in
            inside = counts_over(model, loader, 19, 255, cpu, MEAN, STD)
        assert seen == [(torch.float32, False)] * len(samples)
        assert torch.backends.cudnn.benchmark is True  # given back
    finally:
        torch.backends.cudnn.benchmark = benchmark
    assert all(torch.equal(plain[name], inside[name]) for name in plain)
    labelled = sum(int((read_label(path).indices != 255).sum()) for path in val[0].iterdir())
    assert int(plain["confusion"].sum()) == labelled


@needs_torch
def test_a_step_the_gradient_scaler_skips_leaves_the_schedule_where_it_was(recwarn):
    import torch

    from nsegaug.train.step import Learner, learner_step

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 10)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)  # the scaler AMP uses, on the CPU
    learner = Learner(model, optimizer, scheduler, scaler, None, amp=False)
    images, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8))
    weights = model.weight.detach().clone()
    with torch.no_grad():
        model.bias[0] = float("inf")  # an inf gradient: the scaler skips the optimizer's step
    learner_step(learner, images, labels, 255, None)
    assert scheduler.last_epoch == 0 and torch.equal(model.weight, weights) and scaler.get_scale() < 2.0**16
    with torch.no_grad():
        model.bias[0] = 0.0
    learner_step(learner, images, labels, 255, None)
    assert scheduler.last_epoch == 1 and not torch.equal(model.weight, weights)
    assert not [warning for warning in recwarn if "lr_scheduler.step()" in str(warning.message)]


# --- training runs -----------------------------------------------------------------------------------------------


@needs_torch
def test_train_a_few_steps_writes_the_run_folder_and_evaluate_agrees(manifest, val, tmp_path):
    out = tmp_path / "run"
    result = train_cli(manifest, val, out, "--iters", "4", "--workers", "2", "--prob", "0.5")
    assert result.exit_code == 0, result.output
    final = json.loads((out / "metrics.json").read_text())
    assert 0 <= final["miou"] <= 1 and 0 <= final["pixel_acc"] <= 1 and len(final["iou"]) == 19
    assert final["steps"] == 4 and final["prob"] == 0.5 and final["baseline"] is False
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [4]
    assert len((out / "loss.jsonl").read_text().splitlines()) == 4
    assert Image.open(out / "curves.png").size == (1080, 408)  # 9 x 3.4 inches at 120 dpi
    assert (out / "curves.svg").read_bytes().startswith(b"<?xml")
    assert {"last.pt", "best.pt", "config.json"} <= {path.name for path in out.iterdir()}

    report = tmp_path / "evaluation.json"
    arguments = ["--checkpoint", out / "best.pt", "--labels", val[0], "--images", val[1], "--out", report]
    evaluated = CliRunner().invoke(main, ["evaluate", "--workers", "0", *map(str, arguments)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "mIoU" in evaluated.output and "boundary IoU  band IoU" in evaluated.output
    evaluation = json.loads(report.read_text())
    for name in ("miou", "boundary_miou", "band_miou"):  # the same model on the same images: the same numbers
        assert evaluation[name] == pytest.approx(final[name], abs=1e-6), name
    assert len(evaluation["boundary_iou"]) == len(evaluation["band_iou"]) == 19 and evaluation["boundary_width"] == 3
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= row[name] <= 1 for row in rows for name in ("boundary_miou", "band_miou"))

    wider = CliRunner().invoke(main, ["evaluate", "--workers", "0", "--boundary-width", "6", *map(str, arguments)])
    assert wider.exit_code == 0 and "(6 px)" in wider.output
    assert json.loads(report.read_text())["band_pixels"] > evaluation["band_pixels"]


@needs_torch
def test_train_online_deforms_the_originals_on_the_device_and_needs_no_copies(manifest, val, tmp_path):
    originals_only = tmp_path / "generated"  # the manifest without the copies: online must not read them
    originals_only.mkdir()
    for name in (MANIFEST_NAME, "manifest.meta.json"):
        shutil.copy(manifest.parent / name, originals_only)
    out = tmp_path / "run"
    online = ["--online", "--prob", "1", "--alpha-sigma", "30:3,50:5", "--crop", "96", "96", "--iters", "3"]
    result = train_cli(originals_only / MANIFEST_NAME, val, out, *online)
    assert result.exit_code == 0, result.output
    final = json.loads((out / "metrics.json").read_text())
    assert final["online"] is True and final["prob"] == 1.0 and 0 <= final["miou"] <= 1
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["prob_used"] == 1.0 and recorded["config"]["online"] is True
    assert recorded["config"]["alpha_sigma"] == [[30, 3], [50, 5]] and recorded["config"]["area_thresh"] == 1000
    # The labels the model saw: every map deformed (p = 1), and the deformation moved label pixels.
    points = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [point["deformed_fraction"] for point in points] == [1.0, 1.0, 1.0]
    assert all(0 <= point["changed_fraction"] < 0.5 for point in points)
    assert sum(point["changed_fraction"] for point in points) > 0
    changed = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--iters", "4", "--alpha-sigma", "1:3"])
    assert changed.exit_code == 3 and "alpha_sigma: [[30, 3], [50, 5]] -> [[1, 3]]" in changed.output


@needs_torch
def test_loss_decreases_when_overfitting_two_images(tmp_path):
    labels, images = tmp_path / "labels", tmp_path / "images"
    labels.mkdir(), images.mkdir()
    for index in range(2):
        shutil.copy(EXAMPLES / "train" / "labels" / f"scene_{index:04d}.png", labels)
        shutil.copy(EXAMPLES / "train" / "images" / f"scene_{index:04d}.jpg", images)
    generate_dataset(GenerateConfig(labels=labels, images=images, out=tmp_path / "gen", copies=1, jobs=1), log=print)
    out = tmp_path / "run"
    overfit = "--baseline --iters 40 --width 8 --crop 96 96 --scale-range 1 1 --no-hflip --lr 0.01 --eval-every 1000"
    result = train_cli(tmp_path / "gen" / MANIFEST_NAME, (labels, images), out, *overfit.split())
    assert result.exit_code == 0, result.output
    losses = [json.loads(line)["loss"] for line in (out / "loss.jsonl").read_text().splitlines()]
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:10])


@needs_torch
@pytest.mark.parametrize(
    "deformation",
    [{}, {"online": True, "params": DeformParams(((30, 3), (50, 5)), area_thresh=100)}],
    ids=["offline", "online"],
)
def test_resume_continues_from_the_saved_step_exactly(manifest, val, tmp_path, deformation):
    import torch

    from nsegaug.train.config import TrainConfig
    from nsegaug.train.loop import load_checkpoint, train

    def config(out: Path) -> TrainConfig:
        return TrainConfig(
            manifest=manifest,
            val_labels=val[0],
            val_images=val[1],
            num_classes=19,
            out=out,
            iters=6,
            batch_size=2,
            crop=(64, 64),
            width=4,
            workers=0,
            prob=0.5,
            **deformation,
        )

    quiet = lambda message: None  # noqa: E731
    train(config(tmp_path / "straight"), log=quiet)
    stopped = train(config(tmp_path / "resumed"), stop_after=3, log=quiet)
    assert stopped == {"step": 3, "stopped": True}
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 3
    messages = []
    train(config(tmp_path / "resumed"), resume=True, log=messages.append)
    assert messages[0].startswith("resuming at step 3")
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert resumed["step"] == straight["step"] == 6
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    loss = lambda run: [json.loads(line)["loss"] for line in (tmp_path / run / "loss.jsonl").read_text().splitlines()]  # noqa: E731
    assert loss("resumed") == loss("straight")
    if deformation:  # the same deformations after resume: the generator's state came from the checkpoint
        assert len(straight["deformation_generators"]) == 1
        changed = lambda run: [json.loads(line)["changed_fraction"] for line in (tmp_path / run / "loss.jsonl").open()]  # noqa: E731
        assert changed("resumed") == changed("straight") and sum(changed("straight")[3:]) > 0


@needs_torch
def test_cli_resume_extends_a_finished_run_and_refuses_changed_settings(manifest, val, tmp_path):
    out = tmp_path / "run"
    assert train_cli(manifest, val, out, "--iters", "2").exit_code == 0
    again = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--iters", "3", "--workers", "0"])
    assert again.exit_code == 0, again.output
    assert "resuming at step 2" in again.output
    assert [json.loads(line)["step"] for line in (out / "loss.jsonl").read_text().splitlines()] == [1, 2, 3]
    changed = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--iters", "4", "--lr", "0.5"])
    assert changed.exit_code == 3 and "lr: None -> 0.5" in changed.output


@needs_torch
def test_two_gloo_processes_under_torchrun(manifest, val, tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    arguments = ["--manifest", manifest, "--val-labels", val[0], "--val-images", val[1], "--out", out, "--iters", "3"]
    command = [*launcher, "-m", "nsegaug", "train", *map(str, arguments), *TINY]
    result = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((out / "metrics.json").read_text())
    assert final["world_size"] == 2 and 0 <= final["miou"] <= 1
    # Each validation image counted once over the two ranks.
    labelled = sum(int((read_label(path).indices != 255).sum()) for path in val[0].iterdir())
    assert final["pixels"] == labelled
    assert result.stderr.count("done: mIoU") == 1  # only rank 0 reports


# Loaded at every rank's start (PYTHONPATH): rank 0 lingers after writing metrics.json, rank 1 notes when it exits.
ORDER_PROBE = """
import atexit, os, time

ORDER = os.environ["NSEGAUG_TEST_ORDER"]
if os.environ.get("RANK") == "0":
    from nsegaug.train import runlog

    write_final = runlog.RunLog.final

    def final(self, result):
        write_final(self, result)
        time.sleep(2)  # drawing, writing: a rank 0 still busy when the others have nothing left to do
        with open(ORDER, "a") as order:
            order.write("rank 0 wrote metrics.json\\n")

    runlog.RunLog.final = final
elif os.environ.get("RANK") == "1":
    atexit.register(lambda: open(ORDER, "a").write("rank 1 exited\\n"))
"""


@needs_torch
def test_under_torchrun_no_rank_exits_before_rank_0_has_written_the_runs_end(manifest, val, tmp_path):
    # A rank that left first, while rank 0 still wrote, was a race: now and then it aborted at its exit, and
    # torchrun stopped rank 0 before metrics.json was written. The ranks now wait for each other at the end.
    probe, order = tmp_path / "probe", tmp_path / "order.txt"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(ORDER_PROBE)
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    arguments = ["--manifest", manifest, "--val-labels", val[0], "--val-images", val[1], "--out", out, "--iters", "2"]
    command = [*launcher, "-m", "nsegaug", "train", *map(str, arguments), *TINY]
    search = os.pathsep.join(filter(None, [str(probe), os.environ.get("PYTHONPATH")]))
    environment = {**ONE_THREAD, "PYTHONPATH": search, "NSEGAUG_TEST_ORDER": str(order)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert order.read_text().splitlines() == ["rank 0 wrote metrics.json", "rank 1 exited"]


@needs_torch
def test_two_gloo_processes_with_one_validation_image_for_two_ranks(manifest, val, tmp_path):
    # Rank 1's validation shard is empty: it must still take part in every sum of the counts.
    labels, images = tmp_path / "labels", tmp_path / "images"
    labels.mkdir(), images.mkdir()
    shutil.copy(val[0] / "scene_0000.png", labels)
    shutil.copy(val[1] / "scene_0000.jpg", images)
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    arguments = ["--manifest", manifest, "--val-labels", labels, "--val-images", images, "--out", out, "--iters", "2"]
    command = [*launcher, "-m", "nsegaug", "train", *map(str, arguments), *TINY]
    result = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((out / "metrics.json").read_text())
    assert final["world_size"] == 2 and final["val_images"] == 1
    assert final["pixels"] == int((read_label(labels / "scene_0000.png").indices != 255).sum())


@needs_torch
def test_the_gpu_smoke_passes_on_the_cpu_at_small_sizes(tmp_path):
    summary = tmp_path / "smoke.json"
    script = ROOT / "benchmarks" / "gpu_smoke.py"
    command = [
        sys.executable,
        str(script),
        "--device",
        "cpu",
        "--small",
        "--work",
        tmp_path / "work",
        "--json",
        summary,
    ]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=ONE_THREAD, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checks = {check["name"]: check for check in json.loads(summary.read_text())["checks"]}
    assert {check["status"] for check in checks.values()} <= {"PASS", "INFO"}
    for name in (
        "agreement with the CPU engine, blur=conv",
        "agreement with the CPU engine, blur=taps",
        "uint16 labels at p = 0.5",
        "train --online --resume",
        "evaluate best.pt = the recorded best",
        "no warning or traceback on stderr",
    ):
        assert checks[name]["status"] == "PASS", name
    assert checks["host syncs in deform_batch"]["detail"] == "counted on CUDA only"
    assert "checks passed or informed, 0 failed" in result.stdout


# --- bad input ---------------------------------------------------------------------------------------------------


@needs_torch
def test_bad_training_data_is_refused_before_training_with_a_count_and_the_files(manifest, val, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(manifest.parent, broken)
    (broken / "scene_0003_nsp1.png").unlink()
    Image.open(broken / "scene_0005_nsp2.png").crop((0, 0, 100, 50)).save(broken / "scene_0005_nsp2.png")
    result = train_cli(broken / MANIFEST_NAME, val, tmp_path / "run", "--iters", "2")
    assert result.exit_code == 1
    assert "2 problem(s) in the training data" in result.output
    assert "scene_0003_nsp1.png: label file not found" in result.output
    # The words generate, export and preview use too (io.size_mismatch): width x height, both files named.
    assert "scene_0005_nsp2.png: the label map is 100x50 (width x height), its image " in result.output
    assert "train/images/scene_0005.jpg is 512x256" in result.output
    assert not (tmp_path / "run").exists()


@needs_torch
def test_labels_outside_the_classes_are_refused(manifest, val, tmp_path):
    result = train_cli(manifest, val, tmp_path / "run", "--num-classes", "12", "--iters", "1")  # the last one counts
    assert result.exit_code == 1
    assert "60 problem(s) in the training data" in result.output
    assert "scene_0000.png: label value(s) 12," in result.output
    assert "not classes 0..11 nor the ignore index 255" in result.output
    assert "... and 50 more" in result.output


@needs_torch
def test_an_unpaired_validation_label_is_refused(manifest, val, tmp_path):
    labels = tmp_path / "labels"
    shutil.copytree(val[0], labels)
    shutil.copy(labels / "scene_0000.png", labels / "lonely.png")
    result = train_cli(manifest, (labels, val[1]), tmp_path / "run", "--iters", "1")
    assert result.exit_code == 1
    assert "1 problem(s) in the validation data" in result.output and "lonely.png: no image" in result.output


@needs_torch
def test_an_existing_run_folder_is_not_overwritten_silently(manifest, val, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused = train_cli(manifest, val, out, "--iters", "1")
    assert refused.exit_code == 3 and "--resume" in refused.output and "--overwrite" in refused.output
    nothing = train_cli(manifest, val, tmp_path / "empty", "--iters", "1", "--resume")
    assert nothing.exit_code == 3 and "nothing to resume" in nothing.output
    overwritten = train_cli(manifest, val, out, "--iters", "1", "--overwrite")
    assert overwritten.exit_code == 0, overwritten.output
    assert (out / "notes.txt").read_text() == "mine" and (out / "metrics.json").exists()


def test_usage_mistakes_exit_with_2(tmp_path):
    missing = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "run")])
    assert missing.exit_code == 2 and "--manifest" in missing.output
    arguments = ["--manifest", __file__, "--val-labels", tmp_path, "--val-images", tmp_path, "--num-classes", "3"]
    both = CliRunner().invoke(main, ["train", *map(str, arguments), "--epochs", "1", "--iters", "1"])
    assert both.exit_code == 2 and "not both" in both.output


def test_online_excludes_baseline_and_deformation_settings_need_online(tmp_path):
    arguments = ["--manifest", __file__, "--val-labels", tmp_path, "--val-images", tmp_path, "--num-classes", "3"]
    for extra, message in (
        (["--online", "--baseline"], "online and baseline exclude each other"),
        (["--alpha-sigma", "30:3"], "apply to online only"),
        (["--area-thresh", "50"], "apply to online only"),
        (["--online", "--alpha-sigma", "30:0"], "sigma must be a finite number > 0"),
    ):
        result = CliRunner().invoke(main, ["train", *map(str, arguments), *extra, "--out", str(tmp_path / "run")])
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
    assert not (tmp_path / "run").exists()


@needs_torch
def test_online_resume_on_another_kind_of_device_warns_and_goes_on(manifest, val, tmp_path):
    import torch

    from nsegaug.train.config import TrainConfig
    from nsegaug.train.distributed import device_model
    from nsegaug.train.loop import load_checkpoint, train

    config = TrainConfig(
        manifest=manifest, val_labels=val[0], val_images=val[1], num_classes=19, out=tmp_path / "run", iters=4,
        batch_size=2, crop=(64, 64), width=4, workers=0, prob=0.5, online=True,
    )  # fmt: skip
    train(config, stop_after=2, log=lambda message: None)
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["deformation_device"] == checkpoint["device"] == "cpu" and checkpoint["amp"] is False
    assert checkpoint["device_model"] == device_model(torch.device("cpu")) != ""
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["device_model"] == checkpoint["device_model"] and recorded["device"] == "cpu"
    # As if the run had started on a GPU with AMP: a CUDA generator's state does not fit a CPU generator,
    # and the steps from here run without the mixed precision of the steps before.
    checkpoint.update(deformation_device="cuda", deformation_generators=[torch.zeros(16, dtype=torch.uint8)])
    checkpoint.update(device="cuda", device_model="NVIDIA H100 80GB HBM3", amp=True)
    checkpoint["scaler"] = torch.amp.GradScaler("cpu").state_dict()  # what an AMP run saves
    torch.save(checkpoint, tmp_path / "run" / "last.pt")
    messages = []
    train(config, resume=True, log=messages.append)
    assert any("drawn on cuda x 1; on cpu x 1 they start a fresh stream" in message for message in messages)
    assert any(
        "taken with mixed precision on cuda (NVIDIA H100 80GB HBM3), the steps from here without it on cpu" in message
        for message in messages
    )
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert final["device_model"] == recorded["device_model"] and final["eval_precision"] == "float32"
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 4


@needs_torch
def test_resume_notes_warn_when_the_gpu_model_or_the_precision_changes():
    from nsegaug.train.checkpoint import resume_notes
    from nsegaug.train.config import TrainConfig, resumed_config

    saved = {"scaler": {"scale": 65536.0}, "device": "cuda", "device_model": "NVIDIA A100-SXM4-80GB"}
    saved.update(deformation_device="cuda", deformation_generators=["rank 0", "rank 1"])
    fits, notes = resume_notes(saved, "cuda", "NVIDIA A100-SXM4-80GB", 2, amp=True)
    assert fits and notes == []
    fits, notes = resume_notes(saved, "cuda", "NVIDIA H100 80GB HBM3", 2, amp=True)
    assert fits and len(notes) == 1 and "drawn on a NVIDIA A100-SXM4-80GB, this is a NVIDIA H100" in notes[0]
    fits, notes = resume_notes(saved, "cuda", "NVIDIA A100-SXM4-80GB", 2, amp=False)  # --no-amp on resume
    assert fits and len(notes) == 1 and "with mixed precision" in notes[0] and "from here without it" in notes[0]
    fits, notes = resume_notes(saved, "cuda", "NVIDIA A100-SXM4-80GB", 4, amp=True)
    assert not fits and "start a fresh stream" in notes[0]
    assert resumed_config(TrainConfig(__file__, ".", ".", 3), {"amp": False}).amp is False  # a CPU run, on a GPU
    # On the CPU the generator's stream does not depend on the processor: no warning for another CPU.
    on_cpu = {"scaler": {}, "device": "cpu", "device_model": "AMD EPYC", "deformation_device": "cpu"}
    assert resume_notes({**on_cpu, "deformation_generators": ["rank 0"]}, "cpu", "Intel Xeon", 1, False) == (True, [])


# --- runs recorded by earlier versions ---------------------------------------------------------------------------

# The keys of a config as 0f2d1df's train recorded it (config.json, last.pt, best.pt, metrics.json): the deformation
# as flat alpha_sigma and area_thresh, no parameter_sources.
RECORDED_BEFORE_PARAMS = (
    "manifest val_labels val_images num_classes labels images allow_changed_labels out ignore_index prob baseline "
    "online alpha_sigma area_thresh model width init_weights init_weights_strict epochs iters batch_size crop "
    "scale_range hflip optimizer lr weight_decay schedule warmup_iters clip_grad amp device workers threads seed "
    "eval_every boundary_width checkpoint_every mean std"
).split()


@needs_torch
@pytest.mark.parametrize("online", [False, True], ids=["offline", "online"])
def test_a_run_recorded_with_flat_deformation_settings_resumes_and_evaluates(manifest, val, tmp_path, online):
    import torch

    from nsegaug.train.evaluation import evaluate_checkpoint

    run = tmp_path / "run"
    deformation = ["--online", "--alpha-sigma", "30:5,15:3", "--area-thresh", "64"] if online else []
    assert train_cli(manifest, val, run, "--iters", "2", *deformation).exit_code == 0
    recorded = json.loads((run / "config.json").read_text())
    # This version writes the form earlier versions wrote and read, with one key added since.
    assert list(recorded["config"]) == [*RECORDED_BEFORE_PARAMS, "parameter_sources"]
    flat = (recorded["config"]["alpha_sigma"], recorded["config"]["area_thresh"])
    assert flat == (([[30.0, 5.0], [15.0, 3.0]], 64.0) if online else (None, None))
    # The run folder as 0f2d1df left it: every record without the key added since.
    old = {name: recorded["config"][name] for name in RECORDED_BEFORE_PARAMS}
    (run / "config.json").write_text(json.dumps({**recorded, "config": old}, indent=2))
    for name in ("last.pt", "best.pt"):
        checkpoint = torch.load(run / name, weights_only=True)
        torch.save({**checkpoint, "config": old}, run / name)
    resumed = CliRunner().invoke(main, ["train", "--resume", "--out", str(run), "--iters", "4", "-q"])
    assert resumed.exit_code == 0, resumed.output
    again = json.loads((run / "metrics.json").read_text())["config"]
    assert (again["alpha_sigma"], again["area_thresh"], again["iters"]) == (*flat, 4)
    result = evaluate_checkpoint(run / "best.pt", val[0], val[1], device="cpu", workers=0, log=lambda line: None)
    assert result["step"] == 4 and 0 <= result["miou"] <= 1


def test_the_config_holds_the_deformation_as_one_spec_online_only(tmp_path):
    from nsegaug.errors import UsageError
    from nsegaug.train.config import TrainConfig

    where = {"manifest": tmp_path, "val_labels": tmp_path, "val_images": tmp_path, "num_classes": 19}
    online = TrainConfig(**where, online=True)
    assert online.params == DeformParams(ignore_index=255)  # the method's pairs and threshold, the run's ignore index
    assert TrainConfig(**where).params is None  # offline: generate deformed the copies
    assert TrainConfig.from_dict({**online.to_dict(), "storage_options": None}) == online
    with pytest.raises(UsageError, match="apply to online only"):
        TrainConfig(**where, params=DeformParams())
    with pytest.raises(UsageError, match="precision='float32'"):
        TrainConfig(**where, online=True, params=DeformParams(precision="float64"))
    with pytest.raises(UsageError, match="ignore_index 0 is not the run's"):
        TrainConfig(**where, online=True, params=DeformParams(ignore_index=0))


@needs_torch
def test_a_saved_model_predicts_what_evaluate_counts(manifest, val, tmp_path):
    """Pixel for pixel: the confusion of `predict`'s maps against the labels as read (uint8) is evaluate's."""
    import cv2
    import torch

    from nsegaug.train import confusion_matrix, evaluate_checkpoint, load_model

    assert train_cli(manifest, val, tmp_path / "run", "--iters", "2").exit_code == 0
    trained = load_model(tmp_path / "run" / "best.pt")
    assert trained.step == 2 and trained.config.num_classes == 19 and not trained.model.training
    counted = np.zeros((19, 19), np.int64)
    # One thread here and in evaluate below: a convolution's sums split over other threads round otherwise, and
    # a model of two steps has logits near ties, so a rounding flips a prediction.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for label_path in sorted(val[0].glob("*.png")):
            # Decoded as training decodes it (OpenCV): another JPEG decoder gives other pixels, other predictions.
            image = cv2.cvtColor(cv2.imread(str(val[1] / f"{label_path.stem}.jpg")), cv2.COLOR_BGR2RGB)
            prediction = trained.predict(image)
            assert prediction.shape == image.shape[:2]
            counted += confusion_matrix(prediction, read_label(label_path).indices, 19, 255)
    finally:
        torch.set_num_threads(threads)
    result = evaluate_checkpoint(tmp_path / "run" / "best.pt", val[0], val[1], device="cpu", workers=0, threads=1)
    assert counted.tolist() == result["confusion"]


def train(manifest: Path, out: Path, *extra):
    val = DATA / "val"
    arguments = ["--manifest", manifest, "--val-labels", val / "labels", "--val-images", val / "images"]
    arguments += [*TINY_TRAIN, "--iters", "1", "--out", out, *extra]
    return CliRunner().invoke(main, ["train", *map(str, arguments)])


@needs_torch
def test_train_uses_the_papers_p_by_default_and_says_so(tmp_path):
    labels, images = example_pairs(tmp_path / "data")
    assert generate("--labels", labels, "--images", images, "--copies", 2, "--out", tmp_path / "gen").exit_code == 0
    result = train(tmp_path / "gen" / MANIFEST_NAME, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "deformed label with p=0.5, the paper's: --prob to change it" in result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["prob"] == 0.5


@needs_torch
def test_a_dataset_that_moved_trains_where_it_is_now(tmp_path):
    labels, images = example_pairs(tmp_path / "docker" / "data")
    assert (
        generate("--labels", labels, "--images", images, "--copies", 1, "--out", tmp_path / "docker" / "out").exit_code
        == 0
    )
    # The whole tree moves (a container's /data on the host): the relative paths hold.
    shutil.move(tmp_path / "docker", tmp_path / "host")
    moved = tmp_path / "host" / "out" / MANIFEST_NAME
    assert train(moved, tmp_path / "run1").exit_code == 0
    # Only the data moves: named where it is now, on the command line or in Python.
    shutil.move(tmp_path / "host" / "data", tmp_path / "elsewhere")
    lost = train(moved, tmp_path / "run2")
    assert lost.exit_code == 1 and "image file not found" in lost.output
    found = train(
        moved,
        tmp_path / "run3",
        "--labels",
        tmp_path / "elsewhere" / "labels",
        "--images",
        tmp_path / "elsewhere" / "images",
    )
    assert found.exit_code == 0, found.output
    from nsegaug.manifest import open_generated

    data = open_generated(moved, labels=tmp_path / "elsewhere" / "labels", images=tmp_path / "elsewhere" / "images")
    assert all(sample.image.is_file() and sample.labels[0].is_file() for sample in data.samples())


@needs_torch
def test_evaluate_into_a_closed_pipe_still_writes_its_file_and_succeeds(tmp_path):
    labels, images = example_pairs(tmp_path / "data")
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", tmp_path / "gen").exit_code == 0
    assert train(tmp_path / "gen" / MANIFEST_NAME, tmp_path / "run").exit_code == 0
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "nsegaug", "evaluate", "--checkpoint", tmp_path / "run" / "last.pt"]
    command += ["--labels", DATA / "val" / "labels", "--images", DATA / "val" / "images", "--workers", "0"]
    command += ["--out", report]
    # head -n 0 closes the pipe at once, so the table meets a closed stdout every time, not by a race.
    shell = " ".join(f"'{part}'" for part in map(str, command)) + " | head -n 0; exit ${PIPESTATUS[0]}"
    result = subprocess.run(
        ["bash", "-c", shell], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    assert json.loads(report.read_text())["images"] == 20


@needs_torch
def test_a_used_run_folder_is_refused_as_generate_refuses_a_used_out(tmp_path):
    labels, images = example_pairs(tmp_path / "data")
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", tmp_path / "gen").exit_code == 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    (run / ".last.pt.123-456.tmp").write_bytes(b"half a checkpoint")
    refused = train(tmp_path / "gen", run)  # the manifest's folder is enough
    assert refused.exit_code == 3 and "is not empty; pass --resume" in refused.stderr
    assert train(tmp_path / "gen", run, "--overwrite").exit_code == 0
    assert not list(run.glob(".*.tmp")) and (run / "notes.txt").read_text() == "mine"


@needs_torch
def test_best_pt_is_saved_before_last_pt(tmp_path, monkeypatch):
    from nsegaug.train import runlog

    saved = []
    monkeypatch.setattr(runlog, "save_checkpoint", lambda path, state: saved.append(path.name))
    log = runlog.RunLog(tmp_path, print, main=True)
    log.checkpoint(dict, best=True)
    log.checkpoint(dict)
    assert saved == ["best.pt", "last.pt", "last.pt"]


@needs_torch
@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_copy_damaged_after_generate_stops_training_with_one_line(tmp_path, workers):
    labels, images = example_pairs(tmp_path / "data")
    out = tmp_path / "gen"
    assert generate("--labels", labels, "--images", images, "--copies", 1, "--out", out).exit_code == 0
    damaged = out / "scene_0002_nsp1.png"
    data = damaged.read_bytes()
    # Cut inside the pixel data: the header and palette survive, so the start-up check (sizes) passes it.
    damaged.write_bytes(data[: data.index(b"IDAT") + 64])
    arguments = ["--prob", "1", "--batch-size", "4", "--workers", workers]
    result = train(out / MANIFEST_NAME, tmp_path / "run", *arguments)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {damaged}: "), result.stderr
    assert result.stderr.splitlines()[-1] == errors[0]  # the last word, after the headline


ONE_STEP_TRAIN = ["--num-classes", "19", "--width", "4", "--batch-size", "2", "--crop", "64", "64", "--iters", "1"]


def train_one_step(manifest: Path, out: Path, *extra):
    val = DATA / "val"
    return run(
        "train",
        "--manifest",
        manifest,
        "--val-labels",
        val / "labels",
        "--val-images",
        val / "images",
        *ONE_STEP_TRAIN,
        "--out",
        out,
        *extra,
    )


@needs_torch
def test_a_source_edited_after_generate_stops_training_naming_it_unless_allowed(tmp_path):
    out = generated_run(tmp_path)
    edited = tmp_path / "data" / "labels" / "scene_0001.png"
    edit_label(edited)
    refused = train_one_step(out, tmp_path / "run", "--workers", "0")
    assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
    assert f"{edited}: changed since generate" in refused.stderr
    assert [line for line in refused.stderr.splitlines() if "changed since generate" in line] == [
        line for line in refused.stderr.splitlines() if str(edited) in line
    ]
    assert not (tmp_path / "run").exists()  # refused before the run folder is started
    allowed = train_one_step(out, tmp_path / "run", "--workers", "0", "--allow-changed-labels")
    assert allowed.exit_code == 0, allowed.output


@needs_torch
@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_copy_edited_after_generate_stops_training_with_one_line_from_any_worker(tmp_path, workers):
    out = generated_run(tmp_path)
    edited = out / "scene_0002_nsp1.png"
    edit_label(edited)  # still a valid map of the right size: only its checksum tells
    result = train_one_step(out, tmp_path / "run", "--prob", "1", "--batch-size", "4", "--workers", workers)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [result.stderr.splitlines()[-1]]
    assert errors[0].startswith(f"Error: {edited}: changed since generate")


@needs_torch
def test_the_evaluation_line_shows_a_loss_of_zero_as_zero_and_a_missing_figure_as_missing():
    from nsegaug.train.runlog import evaluation_line

    row = {"step": 10, "epoch": 1.0, "train_loss": 0.0, "miou": None, "boundary_miou": 0.5, "band_miou": 0.0}
    line = evaluation_line({**row, "pixel_acc": 1.0, "images_per_s": 12.34}, 5, 50)
    assert line == (
        "epoch 1/5 step 10/50: loss 0.0000, mIoU n/a, boundary mIoU 0.5000, band mIoU 0.0000, pixel acc 1.0000, "
        "12.3 img/s"
    )
