"""``nsegaug train`` with a user's model: the output forms ``logits_of`` reads, low-resolution logits, in_channels,
``--init-weights``; each trained through the CLI on the example data and then evaluated from its checkpoint.

The factories live in a module written to a temporary folder, as a user's
would: ``nsegaug evaluate`` must import it again from the checkpoint's config.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nsegaug.cli import main
from nsegaug.io import read_label
from train.tiny import ONE_THREAD, TINY, needs_torch, train_cli

USER_MODULE = "user_segmentation_models"
FACTORIES = '''
import torch
from torch import nn


class Net(nn.Module):
    """Two convolutions; ``wrap`` puts the logits (and an unused "aux" head's) into the output form under test."""

    def __init__(self, num_classes, wrap, stride=1, in_channels=3):
        super().__init__()
        self.body = nn.Conv2d(in_channels, 4, 3, padding=1, stride=stride)
        self.head = nn.Conv2d(4, num_classes, 1)
        self.aux = nn.Conv2d(4, num_classes, 1)
        self.wrap = wrap

    def forward(self, images):
        features = torch.relu(self.body(images))
        return self.wrap(self.head(features), self.aux(features))


class LogitsOutput:
    """Like a Hugging Face output, but not a mapping: only the attribute."""

    def __init__(self, logits):
        self.logits = logits
        self.hidden_states = None


def as_dict(num_classes):
    return Net(num_classes, lambda out, aux: {"out": out, "aux": aux})


def as_tuple(num_classes):
    return Net(num_classes, lambda out, aux: (out, aux))


def as_logits_object(num_classes):
    return Net(num_classes, lambda out, aux: LogitsOutput(out))


def stride_4(num_classes):
    return Net(num_classes, lambda out, aux: out, stride=4)


def with_in_channels(num_classes, in_channels):
    return Net(num_classes, lambda out, aux: out, in_channels=in_channels)


def like_torchvision(*, num_classes=21, **kwargs):
    # torchvision's builders pass unknown keywords on to the model, which refuses them.
    if kwargs:
        raise TypeError(f"unexpected keywords {sorted(kwargs)}")
    return Net(num_classes, lambda out, aux: {"out": out})
'''


@pytest.fixture
def user_models(tmp_path, monkeypatch) -> Path:
    """The folder holding the factories' module, on sys.path for this test only."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / f"{USER_MODULE}.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop(USER_MODULE, None)


def evaluate_cli(checkpoint: Path, val):
    arguments = ["evaluate", "--checkpoint", checkpoint, "--labels", val[0], "--images", val[1], "--workers", "0"]
    return CliRunner().invoke(main, [*map(str, arguments)])


def labelled_pixels(labels: Path) -> int:
    return sum(int((read_label(path).indices != 255).sum()) for path in labels.iterdir())


# --- the rule, without training ----------------------------------------------------------------------------------


@needs_torch
def test_logits_of_reads_every_documented_form_and_names_the_keys_of_an_ambiguous_mapping():
    import torch

    from nsegaug.train.config import TrainError
    from nsegaug.train.model import logits_of

    logits, other = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)

    class ModelOutput(dict):  # as Hugging Face's: a mapping whose entries are attributes too
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError as error:
                raise AttributeError(name) from error

    for output in (
        logits,
        {"out": logits, "aux": other},
        {"only": logits},
        ModelOutput(logits=logits, hidden_states=other),
        type("Output", (), {"logits": logits})(),
        (logits, other),
        [logits],
        ({"out": logits},),
    ):
        assert logits_of(output) is logits, type(output)
    with pytest.raises(TrainError, match="keys 'seg', 'edges'"):
        logits_of({"seg": logits, "edges": other})
    for output in ((), "logits", None):
        with pytest.raises(TrainError, match="expected logits"):
            logits_of(output)


@needs_torch
def test_factories_get_in_channels_only_when_they_name_it(user_models):
    from nsegaug.train.config import TrainError
    from nsegaug.train.model import build_model

    assert build_model(f"{USER_MODULE}:with_in_channels", 5).body.in_channels == 3
    assert build_model(f"{USER_MODULE}:like_torchvision", 5).head.out_channels == 5  # no in_channels via **kwargs
    (user_models / "no_classes.py").write_text("import torch\ndef build(classes):\n    return torch.nn.Identity()\n")
    with pytest.raises(TrainError, match="takes no num_classes"):
        build_model("no_classes:build", 5)


# --- training and evaluating a user's model through the CLI ------------------------------------------------------


@needs_torch
@pytest.mark.parametrize(
    "factory", ["as_dict", "as_tuple", "as_logits_object", "stride_4", "with_in_channels", "like_torchvision"]
)
def test_a_users_model_trains_and_evaluate_rebuilds_it_from_the_checkpoint(
    manifest, val, tmp_path, user_models, monkeypatch, factory
):
    out = tmp_path / "run"
    result = train_cli(manifest, val, out, "--iters", "2", "--model", f"{USER_MODULE}:{factory}")
    assert result.exit_code == 0, result.output
    final = json.loads((out / "metrics.json").read_text())
    # Every labelled validation pixel scored: a stride-4 model's logits were brought to the labels' size.
    assert final["pixels"] == labelled_pixels(val[0]) and 0 <= final["miou"] <= 1
    losses = [json.loads(line)["loss"] for line in (out / "loss.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)

    monkeypatch.delitem(sys.modules, USER_MODULE)  # evaluate imports the factory again
    evaluated = evaluate_cli(out / "best.pt", val)
    assert evaluated.exit_code == 0, evaluated.output
    assert f"mIoU {final['miou']:.4f}" in evaluated.output


@needs_torch
def test_a_model_with_an_unused_aux_head_trains_under_torchrun(manifest, val, tmp_path, user_models):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    arguments = ["--manifest", manifest, "--val-labels", val[0], "--val-images", val[1], "--out", out, "--iters", "3"]
    model = ["--model", f"{USER_MODULE}:as_dict"]  # "aux" is never in the loss: DDP must not wait for its gradients
    command = [*launcher, "-m", "nsegaug", "train", *map(str, arguments), *TINY, *model]
    environment = {**ONE_THREAD, "PYTHONPATH": str(user_models)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((out / "metrics.json").read_text())
    assert final["world_size"] == 2 and final["steps"] == 3


# --- --init-weights ----------------------------------------------------------------------------------------------


def unet_weights(path: Path, seed: int, width: int = 4, drop=(), add=()) -> dict:
    """A U-Net state dict (19 classes) other than the one a run with --seed 0 starts from, saved to ``path``."""
    import torch

    from nsegaug.train.model import UNet

    torch.manual_seed(seed)
    weights = UNet(19, width).state_dict()
    for key in drop:
        del weights[key]
    for key in add:
        weights[key] = torch.zeros(2)
    torch.save(weights, path)
    return weights


@needs_torch
def test_init_weights_are_the_starting_weights_and_resume_does_not_read_them_again(manifest, val, tmp_path):
    import torch

    from nsegaug.train.loop import load_checkpoint
    from nsegaug.train.model import UNet

    saved = unet_weights(tmp_path / "start.pt", seed=123)
    parameters = [name for name, _ in UNet(19, 4).named_parameters()]  # BatchNorm's running stats move in a step
    # A learning rate so small that one step leaves the weights where they started.
    still = ["--iters", "1", "--lr", "1e-9"]
    assert train_cli(manifest, val, tmp_path / "plain", *still).exit_code == 0
    result = train_cli(manifest, val, tmp_path / "init", *still, "--init-weights", str(tmp_path / "start.pt"))
    assert result.exit_code == 0, result.output
    plain = load_checkpoint(tmp_path / "plain" / "last.pt")["model"]
    initialised = load_checkpoint(tmp_path / "init" / "last.pt")["model"]
    assert all(torch.allclose(initialised[name], saved[name], atol=1e-6) for name in parameters)
    kernels = [name for name in parameters if saved[name].dim() == 4]  # BatchNorm starts at 1 and 0 in any run
    assert not any(torch.allclose(plain[name], saved[name], atol=1e-3) for name in kernels)
    recorded = json.loads((tmp_path / "init" / "config.json").read_text())["config"]
    assert recorded["init_weights"] == str(tmp_path / "start.pt") and recorded["init_weights_strict"] is True

    (tmp_path / "start.pt").unlink()  # on --resume the checkpoint's weights count; the file is not needed
    resumed = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "init"), "--resume", "--iters", "2"])
    assert resumed.exit_code == 0, resumed.output


@needs_torch
def test_a_partial_state_dict_is_refused_when_strict_and_reported_in_one_line_when_not(manifest, val, tmp_path):
    weights = tmp_path / "partial.pt"
    unet_weights(weights, seed=1, drop=("head.weight", "head.bias"), add=("extra.weight",))
    strict = train_cli(manifest, val, tmp_path / "strict", "--iters", "1", "--init-weights", str(weights))
    assert strict.exit_code == 1
    assert strict.output.strip().splitlines() == [
        f"Error: {weights}: does not match the model (missing 2 key(s): head.weight, head.bias; "
        "unexpected 1: extra.weight); a non-strict load would skip them"
    ]
    assert not (tmp_path / "strict").exists()

    loose = ["--iters", "1", "--init-weights", str(weights), "--no-init-weights-strict"]
    result = train_cli(manifest, val, tmp_path / "loose", *loose)
    assert result.exit_code == 0, result.output
    reports = [line for line in result.output.splitlines() if "non-strictly" in line]
    assert reports == [
        f"{weights}: loaded non-strictly; missing 2 key(s): head.weight, head.bias; unexpected 1: extra.weight"
    ]


@needs_torch
@pytest.mark.parametrize("content", ["garbage", "a list", "another width"])
def test_an_unusable_weights_file_is_one_line_naming_it_and_leaves_no_run_folder(manifest, val, tmp_path, content):
    import torch

    weights = tmp_path / "weights.pt"
    if content == "garbage":
        weights.write_bytes(b"these are not weights\n" * 10)
    elif content == "a list":
        torch.save([torch.zeros(2)], weights)
    else:
        unet_weights(weights, seed=0, width=8)
    result = train_cli(manifest, val, tmp_path / "run", "--iters", "1", "--init-weights", str(weights))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {weights}: "), result.output
    assert not (tmp_path / "run").exists()
