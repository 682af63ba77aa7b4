"""The docs cannot drift from the CLI: every ``nsegaug`` command in the README parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nsegaug.cli import main
from nsegaug.cli.options import Location

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "docs" / "study.md",
    ROOT / "examples" / "quickstart.sh",
    ROOT / "examples" / "mmseg" / "README.md",
]


def shell_commands(text: str) -> list[str]:
    """Commands in the README's bash/shell code blocks (and in shell scripts), continuation lines joined."""
    blocks = re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, re.S) if "```" in text else [text]
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip().removeprefix("$ ")
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in re.split(r"&&|\|\||;|\|", line))
    return commands


def nsegaug_arguments(command: str) -> list[str] | None:
    """The arguments after ``nsegaug`` (also ``python -m nsegaug``, ``torchrun ... -m nsegaug``, ``docker run ...
    nsegaug``); None for other commands."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return None
    docker_run = tokens[:2] == ["docker", "run"]
    for index, token in enumerate(tokens):
        if token == "nsegaug" and (index == 0 or tokens[index - 1] == "-m"):
            return tokens[index + 1 :]
        if docker_run and (token == "nsegaug" or token.startswith("nsegaug:")):  # the image, then its arguments
            return tokens[index + 1 :]
    return None


def documented_invocations() -> list[tuple[str, list[str]]]:
    found = []
    for document in DOCUMENTS:
        if document.exists():
            for command in shell_commands(document.read_text()):
                arguments = nsegaug_arguments(command)
                if arguments is not None:
                    found.append((f"{document.relative_to(ROOT)}: {command}", arguments))
    return found


def check_parses(arguments: list[str]) -> None:
    """Resolve the subcommand and check every option is one it has, with a value where it takes one.

    Paths are not checked for existence: the docs may name folders of the reader's.
    """
    command: click.Command = main
    while isinstance(command, click.Group) and arguments and not arguments[0].startswith("-"):
        name, arguments = arguments[0], arguments[1:]
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"unknown subcommand {name!r}"
        command = found
    options = {name: param for param in command.params for name in [*param.opts, *param.secondary_opts]}
    options.update({"--help": None, "-h": None})
    given = set()
    position = 0
    while position < len(arguments):
        token = arguments[position]
        position += 1
        if not token.startswith("-"):
            continue  # a value, or an argument of the command
        name = token.split("=", 1)[0]
        assert name in options, f"{command.name}: unknown option {name}"
        param = options[name]
        if param is None:
            continue
        given.add(param.name)
        if not (param.is_flag or getattr(param, "count", False)) and "=" not in token:
            assert position < len(arguments), f"{name} needs a value"
            value = arguments[position]
            position += 1
            if not isinstance(param.type, (click.Path, Location)) and not value.startswith("$"):
                param.type.convert(value, param, None)
    if "--help" not in arguments and "--version" not in arguments:
        missing = [p.name for p in command.params if p.required and p.name not in given]
        assert not missing, f"{command.name}: required option(s) missing: {missing}"


INVOCATIONS = documented_invocations()


def test_the_docs_show_every_subcommand_in_use():
    shown = {arguments[0] for _, arguments in INVOCATIONS if arguments}
    assert set(main.commands) <= shown, f"no documented example of: {sorted(set(main.commands) - shown)}"


@pytest.mark.parametrize(("where", "arguments"), INVOCATIONS, ids=[where for where, _ in INVOCATIONS])
def test_documented_command_parses(where, arguments):
    check_parses(arguments)


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name in sorted(main.commands):
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example" in result.output, f"nsegaug {name} --help shows no example"
    assert "Example" in runner.invoke(main, ["--help"]).output
