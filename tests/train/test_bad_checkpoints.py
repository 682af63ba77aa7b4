"""A file that is not an nsegaug checkpoint, given to ``evaluate --checkpoint`` or found as a run's ``last.pt``:
one line naming it and why, never torch's several-line advice to load it with ``weights_only=False`` (which would
run any code the file holds)."""

from __future__ import annotations

from click.testing import CliRunner

from nsegaug.cli import main
from train.tiny import EXAMPLES, needs_torch, train_cli

pytestmark = needs_torch


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _foreign_files(tmp_path):
    """Files a user may give by mistake: a run's config.json, a torch file of Python objects, an empty file."""
    import torch

    config = tmp_path / "config.json"
    config.write_text('{"config": {"num_classes": 19}}\n')
    objects = tmp_path / "objects.pt"
    torch.save({"when": __import__("datetime").date(2024, 1, 1)}, objects)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    return {config: "not a file torch.save wrote", objects: "Python objects", empty: "empty", plain: "format"}


def test_evaluate_of_a_file_that_is_no_checkpoint_says_so_in_one_line_naming_it(tmp_path):
    val = EXAMPLES / "val"
    for path, reason in _foreign_files(tmp_path).items():
        arguments = ["evaluate", "--checkpoint", path, "--labels", val / "labels", "--images", val / "images"]
        result = CliRunner().invoke(main, [*map(str, arguments), "--workers", "0"])
        assert result.exit_code == 1, result.output
        (line,) = _error_lines(result.output)
        assert line.startswith(f"Error: {path}: not an nsegaug checkpoint (") and reason in line, line
        assert "weights_only" not in result.output and "Weights only" not in result.output


def test_train_resume_of_a_damaged_last_pt_says_so_in_one_line_naming_it(manifest, val, tmp_path):
    run = tmp_path / "run"
    assert train_cli(manifest, val, run, "--iters", "1").exit_code == 0
    (run / "last.pt").write_bytes((run / "config.json").read_bytes())
    resumed = CliRunner().invoke(main, ["train", "--out", str(run), "--resume", "--iters", "2", "--workers", "0"])
    assert resumed.exit_code == 1, resumed.output
    (line,) = _error_lines(resumed.output)
    assert line == f"Error: {run / 'last.pt'}: not an nsegaug checkpoint (not a file torch.save wrote)"
