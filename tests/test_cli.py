"""The command group itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import nsegaug
from nsegaug.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert nsegaug.__version__ in result.output


def test_help_lists_the_group():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Usage: main" in result.output or "Usage: nsegaug" in result.output


def test_the_group_lists_each_command_with_its_own_help_line():
    from nsegaug.cli import COMMANDS

    for name, line in COMMANDS.items():
        assert main.get_command(None, name).get_short_help_str(limit=500) == line, name
    listed = CliRunner().invoke(main, ["--help"]).output.split("Commands:\n", 1)[1].splitlines()
    assert [row.split()[0] for row in listed] == sorted(COMMANDS)


def test_the_group_help_imports_no_command_module():
    code = "from nsegaug.cli import main\ntry:\n    main.main(['--help'])\nexcept SystemExit:\n    pass"
    probe = f"import sys\n{code}\nprint(sorted(m for m in sys.modules if m.startswith('nsegaug.cli.')))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert output.splitlines()[-1] == "[]"


def _clicks_own(*arguments: str) -> str:
    code = f"from nsegaug.cli import main\nmain({list(arguments)!r}, prog_name='nsegaug')"
    environment = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment).stdout


def test_the_fast_help_and_version_are_clicks_own_text():
    from nsegaug._entry import HELP

    assert HELP == _clicks_own("--help"), "the group's help changed: paste click's new text into nsegaug/_entry.py"
    environment = {**os.environ, "COLUMNS": "80"}
    for arguments in (["--help"], ["-h"], ["--version"]):
        fast = subprocess.run(
            [sys.executable, "-m", "nsegaug", *arguments], capture_output=True, text=True, env=environment
        )
        assert fast.returncode == 0 and fast.stdout == _clicks_own(*arguments), arguments


def test_the_groups_command_list_is_the_one_click_would_draw_from_the_modules():
    import click

    drawn = []
    for format_commands in (click.Group.format_commands, type(main).format_commands):
        formatter = click.HelpFormatter(width=78)
        format_commands(main, click.Context(main), formatter)
        drawn.append(formatter.getvalue())
    assert drawn[0] == drawn[1] and "generate" in drawn[0]


def test_the_fast_help_into_a_closed_pipe_is_quiet(monkeypatch, tmp_path):
    from nsegaug import _entry

    target = open(tmp_path / "stdout", "w")  # noqa: SIM115 - a real descriptor for the dup2 that follows

    class Closed:  # a reader that stopped (``| head``): every write and flush is a BrokenPipeError
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return target.fileno()

    monkeypatch.setattr(sys, "stdout", Closed())
    monkeypatch.setenv("COLUMNS", "80")
    _entry.run(["--help"])  # no error: the output was not wanted any more
    target.close()


def test_the_fast_help_imports_no_click_and_a_narrow_terminal_gets_clicks_layout():
    probe = "import sys, runpy\ntry:\n    runpy.run_module('nsegaug', run_name='__main__')\n"
    probe += "except SystemExit:\n    pass\nprint('click' in sys.modules)"
    for columns, loads_click in (("80", "False"), ("60", "True")):
        environment = {**os.environ, "COLUMNS": columns}
        result = subprocess.run(
            [sys.executable, "-c", probe, "--help"], capture_output=True, text=True, env=environment, check=True
        )
        assert result.stdout.splitlines()[-1] == loads_click, columns
        assert result.stdout.startswith("Usage: ")


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "nsegaug", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("nsegaug, version")


HEAVY = ("numpy", "cv2", "torch", "PIL", "scipy", "joblib")


def loaded_heavy_modules(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(sorted(set(sys.modules) & set({HEAVY!r})))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return eval(output.splitlines()[-1])  # the last line: what --help printed comes before it


def test_importing_the_package_loads_no_heavy_library_until_a_name_is_used():
    assert loaded_heavy_modules("import nsegaug; nsegaug.__version__") == []
    assert "numpy" in loaded_heavy_modules("import nsegaug; nsegaug.DeformResult")


def test_help_of_every_command_loads_no_heavy_library():
    code = (
        "from nsegaug.cli import main\n"
        "for args in (['--help'], *([name, '--help'] for name in main.list_commands(None))):\n"
        "    try:\n"
        "        main.main(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass"
    )
    assert loaded_heavy_modules(code) == []


def test_the_public_names_resolve_and_unknown_names_are_attribute_errors():
    for name in nsegaug.__all__:
        assert getattr(nsegaug, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(nsegaug, "no_such_name")  # noqa: B009


def test_a_refused_run_is_one_line_with_exit_code_3_and_a_usage_mistake_keeps_the_usage_header(tmp_path):
    """Issue 28, item 4: a run refused by its folder's state is not a usage mistake (real processes)."""
    from pathlib import Path

    from nsegaug.manifest import META_NAME

    labels = Path(__file__).resolve().parents[1] / "examples" / "data" / "val" / "labels"
    out = tmp_path / "out"

    def generate(*extra) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "nsegaug", "generate", "--labels", str(labels), "--out", str(out), "-q"]
        return subprocess.run([*command, *map(str, extra)], capture_output=True, text=True, timeout=300)

    assert generate("--copies", 1).returncode == 0
    (out / META_NAME).unlink()
    refusals = {
        "used": (generate("--copies", 1), "is not empty; pass --resume to continue that run, or --overwrite"),
        "no record": (generate("--copies", 1, "--resume"), f"cannot resume: {out / META_NAME} is missing"),
    }
    for name, (result, message) in refusals.items():
        assert result.returncode == 3, (name, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("Error: ") and message in line, name
    mistake = generate("--copies", 0)
    assert mistake.returncode == 2 and mistake.stderr.startswith("Usage: nsegaug generate [OPTIONS]\nTry ")
