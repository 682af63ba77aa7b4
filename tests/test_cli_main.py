"""The command group itself."""

from __future__ import annotations

import subprocess
import sys

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
