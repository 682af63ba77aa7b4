"""The docs cannot drift from the code.

Every fenced block of the README and of docs/ is checked: ``nsegaug`` commands in bash/console blocks parse
against the real commands (also in examples/), python blocks run (or, marked as fragments, compile), every
``nsegaug`` import in docs/, the README and examples/ imports, and the command reference equals the help.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nsegaug.cli import main
from nsegaug.cli.options import LocalPath, Location

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# The manual: the README and the site's pages (docs/, built by mkdocs.yml).
MANUAL = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# examples/data is generated (its README names no command); the other Markdown of examples/ is written by hand.
EXAMPLE_MARKDOWN = sorted(path for path in EXAMPLES.rglob("*.md") if EXAMPLES / "data" not in path.parents)
DOCUMENTS = [*MANUAL, EXAMPLES / "quickstart.sh", *EXAMPLE_MARKDOWN]


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
            if not isinstance(param.type, (click.Path, Location, LocalPath)) and not value.startswith("$"):
                param.type.convert(value, param, None)
    if "--help" not in arguments and "--version" not in arguments:
        missing = [p.name for p in command.params if p.required and p.name not in given]
        assert not missing, f"{command.name}: required option(s) missing: {missing}"


INVOCATIONS = documented_invocations()


def subcommands() -> list[str]:
    # The group loads its commands on demand, so ``main.commands`` is empty: ask it for their names.
    names = main.list_commands(click.Context(main))
    assert names, "the nsegaug group lists no subcommands"
    return names


def test_the_docs_show_every_subcommand_in_use():
    shown = {arguments[0] for _, arguments in INVOCATIONS if arguments}
    assert set(subcommands()) <= shown, f"no documented example of: {sorted(set(subcommands()) - shown)}"


@pytest.mark.parametrize(("where", "arguments"), INVOCATIONS, ids=[where for where, _ in INVOCATIONS])
def test_documented_command_parses(where, arguments):
    check_parses(arguments)


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name in subcommands():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example" in result.output, f"nsegaug {name} --help shows no example"
    assert "Example" in runner.invoke(main, ["--help"]).output


# --- Fenced blocks ------------------------------------------------------------------------------------------------

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<language>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
# Put on the line(s) before a python block that cannot run as it stands; the reason is said, the block compiled.
FRAGMENT = re.compile(r"<!-- docs-test: fragment: (?P<reason>[^>]+?) -->\s*$")
# What each kind of block is checked for: shell commands parse, python runs; the others are output or data.
CHECKED = {
    "bash": "commands",
    "console": "commands",
    "python": "python",
    "text": "output",
    "bibtex": "data",
    "toml": "a study file",
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    code: str
    fragment: str | None  # why the block does not run as it stands; None: it runs

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        code = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = FRAGMENT.search(before)
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(path, line, match["language"], code, marker["reason"] if marker else None))
    return blocks


MANUAL_BLOCKS = [block for path in MANUAL for block in fenced_blocks(path)]
PYTHON_PAGES = sorted({block.path for block in MANUAL_BLOCKS if block.language == "python"})


def test_the_block_finder_reads_the_manual():
    """Guards the checks below against a finder that finds nothing (they would all pass vacuously)."""
    languages = {block.language for block in MANUAL_BLOCKS}
    assert {"bash", "python", "text"} <= languages
    assert len(PYTHON_PAGES) >= 4


@pytest.mark.parametrize("block", MANUAL_BLOCKS, ids=[block.where for block in MANUAL_BLOCKS])
def test_every_block_says_what_it_is(block):
    """A block without a known language would escape every check: name it bash, console, python, text or bibtex."""
    assert block.language in CHECKED, f"{block.where}: a ```{block.language} block; use one of {sorted(CHECKED)}"
    assert block.fragment is None or block.language == "python", f"{block.where}: only python blocks are fragments"


TOML_BLOCKS = [block for block in MANUAL_BLOCKS if block.language == "toml"]


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=[block.where for block in TOML_BLOCKS])
def test_toml_blocks_are_study_files_nsegaug_reads(block):
    """A study file in the manual is one ``nsegaug study`` accepts: its tables and keys, checked by the spec."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from nsegaug.study.spec import build_spec

    build_spec(tomllib.loads(block.code), block.where)


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[str(page.relative_to(ROOT)) for page in PYTHON_PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    """A page's python blocks run in order in one namespace, from a folder where ``examples/`` is the repository's
    (the blocks read examples/data and write out/...). A block marked as a fragment is compiled only."""
    (tmp_path / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in fenced_blocks(page):
        if block.language != "python":
            continue
        code = compile(block.code, block.where, "exec")
        if block.fragment is None:
            exec(code, namespace)
            ran += 1
    fragments = [block for block in fenced_blocks(page) if block.language == "python" and block.fragment]
    assert ran or fragments, f"{page}: no python block ran"


# --- Imports ------------------------------------------------------------------------------------------------------


def python_sources() -> list[tuple[str, str]]:
    """(where, source) of every .py file of docs/ and examples/ and every python block of Markdown there and in the
    README (fragments too: their imports are meant to work)."""
    sources = []
    for folder in (ROOT / "docs", EXAMPLES):
        for path in sorted(folder.rglob("*.py")):
            sources.append((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")))
    for path in [*MANUAL, *EXAMPLE_MARKDOWN]:
        sources.extend((block.where, block.code) for block in fenced_blocks(path) if block.language == "python")
    return sources


def nsegaug_imports(source: str) -> list[tuple[str, str | None]]:
    """(module, name) for ``from nsegaug... import name``, (module, None) for ``import nsegaug...`` and for the
    modules an mmsegmentation config names in ``custom_imports = dict(imports=[...])``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == "nsegaug":
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names if alias.name.split(".")[0] == "nsegaug")
        elif isinstance(node, ast.keyword) and node.arg == "imports" and isinstance(node.value, (ast.List, ast.Tuple)):
            found.extend(
                (element.value, None)
                for element in node.value.elts
                if isinstance(element, ast.Constant) and str(element.value).split(".")[0] == "nsegaug"
            )
    return found


def documented_imports() -> dict[tuple[str, str | None], list[str]]:
    imports: dict[tuple[str, str | None], list[str]] = {}
    for where, source in python_sources():
        for entry in nsegaug_imports(source):
            imports.setdefault(entry, []).append(where)
    return imports


IMPORTS = documented_imports()


def top_level_names(module: str) -> set[str]:
    """The names a module defines, read from its source: for a module whose import needs an optional package that
    is not installed here (nsegaug.mmseg without mmsegmentation)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"no module {module}"
    names = set()
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def test_the_import_finder_reads_docs_and_examples():
    modules = {module for module, _ in IMPORTS}
    assert {"nsegaug.params", "nsegaug.deform", "nsegaug.torch", "nsegaug.mmseg"} <= modules


@pytest.mark.parametrize(
    ("module", "name"), list(IMPORTS), ids=[f"{m}.{n or ''} ({', '.join(w)})"[:150] for (m, n), w in IMPORTS.items()]
)
def test_documented_import_imports(module, name):
    """``from module import name`` as docs/ and examples/ write it: a name removed or moved fails here."""
    try:
        imported = importlib.import_module(module)
    except ImportError as error:
        missing = missing_package(error)
        if missing is None:
            raise
        # An optional package (mmsegmentation) is missing here: the module must still exist and define the name.
        assert name is None or name in top_level_names(module), f"{module} defines no {name} (read from its source)"
        return
    if name is None or hasattr(imported, name):
        return
    is_submodule = hasattr(imported, "__path__") and importlib.util.find_spec(f"{module}.{name}") is not None
    assert is_submodule, f"cannot import name {name!r} from {module!r}"


def missing_package(error: ImportError) -> str | None:
    """The package outside nsegaug whose absence caused ``error`` (also when re-raised with advice), or None."""
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and error.name and error.name.split(".")[0] != "nsegaug":
            return error.name
        error = error.__cause__ or error.__context__
    return None


# --- The command reference and .ci/run --------------------------------------------------------------------------


def test_the_command_reference_is_the_commands_help():
    """docs/cli/reference.md is what docs/gen_cli_reference.py makes of the commands' --help now."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_cli_reference.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"^pip install torch==\S+ && pip install -e '\.\[test\]' && python -m pytest -q$", readme, re.M)
    assert command, "the README shows no test command"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command.group(0) in ci, ".ci/run does not run the README's test command as written"


def test_the_readme_links_to_files_that_exist():
    """The README links into docs/ by relative paths (they work on GitHub); mkdocs checks the pages' own links."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert len(local) >= 20
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"the README links to files that do not exist: {missing}"


def test_the_api_reference_lists_every_public_name():
    """docs/api/index.md's table of the package's names is nsegaug.__all__: a name added or removed shows here."""
    import nsegaug

    page = (ROOT / "docs" / "api" / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `nsegaug\.(\w+)` \|", page, re.M))
    assert listed == set(nsegaug.__all__), f"listed, not public: {listed - set(nsegaug.__all__)}; " + (
        f"public, not listed: {set(nsegaug.__all__) - listed}"
    )


# --- The built site: no raw Sphinx role, every cross-reference a link -------------------------------------------

# A Sphinx role as written (:func:`x`) and as the site prints it when nothing resolves it (:func:<code>x</code>).
SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|ref|const|any):(?:`|<code>)")
# A mkdocstrings cross-reference: [`name`][nsegaug.module.name] (the part that names the object).
CROSS_REFERENCE = re.compile(r"\]\[(nsegaug[\w.]*)\]")
SOURCES = sorted([*(ROOT / "nsegaug").rglob("*.py"), *EXAMPLES.rglob("*.py"), *MANUAL])


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """The site as CI builds it (mkdocs.yml, strict: an unresolved cross-reference is a warning, so an error)."""
    site = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    built = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    )
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stderr[-4000:]}"
    return site


def test_the_role_finder_sees_roles_written_and_rendered():
    assert SPHINX_ROLE.search("drawn by :func:`draw_noise`") and SPHINX_ROLE.search(":class:<code>DeformDraw</code>")
    assert not SPHINX_ROLE.search("drawn by [`draw_noise`][nsegaug.deform.draw_noise]; :param alpha: the scale")
    assert CROSS_REFERENCE.findall("[`deform`][nsegaug.deform.deform]") == ["nsegaug.deform.deform"]


def test_no_sphinx_role_in_the_sources():
    """Docstrings use the cross-references mkdocstrings resolves ([`name`][nsegaug.module.name]); a Sphinx role is
    printed literally by the site."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in SOURCES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SPHINX_ROLE.search(line)
    ]
    assert not found, "Sphinx roles (write [`name`][nsegaug.module.name]):\n" + "\n".join(found)


def test_the_built_site_shows_no_raw_sphinx_role(built_site):
    pages = sorted(built_site.rglob("*.html"))
    found = sorted({f"{page.relative_to(built_site)}: {match}" for page in pages for match in _roles_in(page)})
    assert len(pages) > 20 and not found, "\n".join(found)


def _roles_in(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return [text[match.start() : match.start() + 60] for match in SPHINX_ROLE.finditer(text)]


def test_every_cross_reference_is_a_link(built_site):
    """A cross-reference in a page is a link (autorefs resolves it, or the strict build fails), never printed as
    text; one in a docstring the site does not show (an internal module's) still names an object that exists."""
    pages = sorted((built_site / "api").rglob("*.html"))
    html = {page: page.read_text(encoding="utf-8") for page in pages}
    printed = sorted(
        f"{page.relative_to(built_site)}: {name}"
        for page, text in html.items()
        for name in CROSS_REFERENCE.findall(text)
    )
    assert not printed, f"cross-references printed as text: {printed}"
    anchors = {anchor for text in html.values() for anchor in re.findall(r'\bid="(nsegaug[\w.]*)"', text)}
    written = {
        (str(path.relative_to(ROOT)), name)
        for path in SOURCES
        for name in CROSS_REFERENCE.findall(path.read_text(encoding="utf-8"))
    }
    links = sum(text.count('class="autorefs autorefs-internal"') for text in html.values())
    assert len(written) > 100 and links > 100, (len(written), links)
    dangling = sorted(f"{path}: {name}" for path, name in written if name not in anchors and not _exists(name))
    assert not dangling, "cross-references to nothing:\n" + "\n".join(dangling)


def _exists(dotted: str) -> bool:
    """Whether ``dotted`` names a module, or an attribute of one (a class's too)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            found = getattr(found, part, _MISSING)
            if found is _MISSING:
                return False
        return True
    return False


_MISSING = object()
