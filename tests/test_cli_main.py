"""The command group itself."""

from __future__ import annotations

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
