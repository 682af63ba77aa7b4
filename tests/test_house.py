"""The house: no import circle in the package, no module too long to read, and one declared public API.

Imports are read from the source (every import, also those inside functions,
which are circles all the same once both functions run); ``if TYPE_CHECKING``
blocks are left out. An import of a package's name that is a module of it
(``from . import storage``) is an arrow to that module; of any other name, to
the package itself (its ``__init__``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nsegaug"
# A module a reader can hold in mind: past this, it is two.
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(node)


def imports_of(name: str) -> set[str]:
    """The package's modules that module ``name`` imports."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target not in MODULES:
            continue
        for alias in node.names:
            found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    found.discard(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (as the modules along it), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for following in sorted(graph.get(node, ())):
            if state.get(following) == 1:
                return path[path.index(following) :] + [following]
            if following not in state and (cycle := visit(following)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_in_the_package():
    graph = {name: imports_of(name) for name in MODULES}
    assert find_cycle(graph) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_longer_than_a_reader_can_hold(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]}: {lines} lines; split it by concern"


# Public modules that need an optional dependency: imported where it is installed.
OPTIONAL = {"nsegaug.mmseg": "mmseg", "nsegaug.albumentations": "albumentations", "nsegaug.torch": "torch"}


def test_every_public_name_and_module_imports():
    import nsegaug

    for name in nsegaug.__all__:
        assert getattr(nsegaug, name) is not None
    for module in nsegaug.PUBLIC_MODULES:
        needs = OPTIONAL.get(module)
        if needs is None or importlib.util.find_spec(needs) is not None:
            importlib.import_module(module)


def test_the_manual_imports_only_public_modules():
    """A page that teaches an import of an internal module would break its readers when that module moves."""
    import nsegaug

    pages = [PACKAGE.parent / "README.md", *sorted((PACKAGE.parent / "docs").rglob("*.md"))]
    pattern = re.compile(r"^\s*(?:from|import)\s+(nsegaug[\w.]*)", re.MULTILINE)
    taught = {(page.name, module) for page in pages for module in pattern.findall(page.read_text(encoding="utf-8"))}
    internal = sorted((page, module) for page, module in taught if module not in nsegaug.PUBLIC_MODULES)
    assert taught and not internal, internal


# The command line's entry point: its one job is to start the commands.
ENTRY_POINTS = ("nsegaug._entry",)


def _named_imports(name: str) -> set[str]:
    """Module names that ``name`` loads by string: ``importlib.import_module("...")``, ``__import__("...")``
    (an f-string counts by its constant start, e.g. ``f"nsegaug.cli.{name}"``)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if function not in ("import_module", "__import__"):
            continue
        argument = node.args[0]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            found.add(argument.value)
        elif isinstance(argument, ast.JoinedStr) and argument.values and isinstance(argument.values[0], ast.Constant):
            found.add(str(argument.values[0].value))
    return found


def _reaches_cli(name: str) -> list[str]:
    """What module ``name`` imports of ``nsegaug.cli``, as a statement or by name."""
    imported = {target for target in imports_of(name) if target == "nsegaug.cli" or target.startswith("nsegaug.cli.")}
    named = {text for text in _named_imports(name) if text.startswith("nsegaug.cli")}
    return sorted(imported | named)


def test_the_seam_finder_sees_lazy_and_named_imports(tmp_path, monkeypatch):
    module = tmp_path / "_seam_probe.py"
    module.write_text(
        "import importlib\n\n\ndef f(name):\n    from ..cli.train import train\n\n"
        "    return importlib.import_module(f'nsegaug.cli.{name}'), __import__('nsegaug.cli')\n"
    )
    monkeypatch.setitem(MODULES, "nsegaug.study._seam_probe", module)
    assert _reaches_cli("nsegaug.study._seam_probe") == ["nsegaug.cli", "nsegaug.cli.", "nsegaug.cli.train"]


def test_nothing_below_the_commands_imports_them():
    """The commands sit on top: a library module that imports ``nsegaug.cli`` (even lazily, even by name) makes
    the layers a circle. Their options live in ``nsegaug.options``, which both read."""
    below = [name for name in MODULES if name != "nsegaug.cli" and not name.startswith("nsegaug.cli.")]
    reaching = {name: found for name in below if name not in ENTRY_POINTS and (found := _reaches_cli(name))}
    assert not reaching, reaching


# A function a reader can see on one screen: past this, it is two.
MAX_FUNCTION_LINES = 80


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_function_is_longer_than_a_screen(name):
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{MODULES[name]}: {', '.join(long)}; split by concern"


# --- the line between public and internal, as the tree shows it ------------------------------------------------

# The command line's own packages: internal, and named after what they hold (every command's body, the options
# declared once, the preview's sheets, the study). Everything else internal at the top starts with an underscore.
COMMAND_LAYER = ("nsegaug.cli", "nsegaug.options", "nsegaug.preview", "nsegaug.study")
# The 2D engine's machinery, behind nsegaug.deform: it moves into a private room once the branch that is changing
# these files now has been merged (moving them under it would make every one of its changes a conflict).
ENGINE_TO_MOVE = ("nsegaug.bands", "nsegaug.components", "nsegaug.draws", "nsegaug.fields", "nsegaug.warp")


def test_the_tree_shows_what_is_public():
    """At the top of the package, a module or package is public (``nsegaug.PUBLIC_MODULES``), private (its name
    starts with an underscore), or one of the command line's packages; a public module lives in no private room."""
    import nsegaug

    top = {name for name in MODULES if name.count(".") == 1}
    unmarked = sorted(
        name
        for name in top
        if name not in nsegaug.PUBLIC_MODULES
        and name not in COMMAND_LAYER
        and name not in ENGINE_TO_MOVE
        and not name.rpartition(".")[2].startswith("_")
    )
    assert not unmarked, f"internal modules without an underscore at the top: {unmarked}"
    hidden = [name for name in nsegaug.PUBLIC_MODULES if any(part.startswith("_") for part in name.split("."))]
    assert not hidden and set(nsegaug.PUBLIC_MODULES) <= set(MODULES), hidden


def test_every_public_module_has_its_page_in_the_api_reference():
    import nsegaug

    pages = (PACKAGE.parent / "docs" / "api").glob("*.md")
    rendered = {line[4:].strip() for page in pages for line in page.read_text().splitlines() if line.startswith("::: ")}
    missing = sorted(set(nsegaug.PUBLIC_MODULES) - {"nsegaug"} - rendered)
    assert not missing, f"public modules without an API page: {missing}"


# --- one reader of generated manifests ---------------------------------------------------------------------------

MANIFEST_READERS = ("nsegaug.manifest.reading", "nsegaug.manifest.samples", "nsegaug.manifest.rows")


def test_generated_manifests_are_read_in_one_place():
    """Whether a manifest is a finished generate run, and which checksum a row's label has, are asked in
    ``nsegaug.manifest`` only: export, train, the mmseg dataset and preview call it instead of asking again."""
    asked = re.compile(r"\.require_kind\(|\.require_complete\(|sha256_output if|if \w+\.copy else \w+\.sha256_label")
    elsewhere = sorted(
        name for name in MODULES if name not in MANIFEST_READERS and asked.search(MODULES[name].read_text())
    )
    assert not elsewhere, f"generated manifests read outside nsegaug.manifest: {elsewhere}"


# --- examples teach the public API -------------------------------------------------------------------------------

EXAMPLES = PACKAGE.parent / "examples"
# Kept as they ran, to reproduce what they produced: the first study's runner (it says so at its top) and the
# long study's record. They may import internal modules; nothing else in examples/ may.
FROZEN = ("robustness/run.py", "robustness/long/")


def imported_modules(path: Path) -> set[str]:
    """The nsegaug modules a file imports (``from nsegaug import x`` counts ``nsegaug.x`` where x is a module), and
    those it names in a string on their own (an mmsegmentation config's ``custom_imports``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "nsegaug")
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "nsegaug":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"nsegaug(\.\w+)+", node.value)
        ):
            found.add(node.value)
    return found


def test_the_import_reader_sees_every_form(tmp_path):
    example = tmp_path / "e.py"
    example.write_text(
        "import nsegaug.torch\nfrom nsegaug import deform, DeformParams\nfrom nsegaug._files.lock import hold\n"
        "custom_imports = dict(imports=['nsegaug.mmseg'])\n"
    )
    assert imported_modules(example) == {
        "nsegaug.torch", "nsegaug", "nsegaug.deform", "nsegaug._files.lock", "nsegaug.mmseg"
    }  # fmt: skip


def test_examples_import_only_public_modules():
    import nsegaug

    scripts = [
        path for path in sorted(EXAMPLES.rglob("*.py")) if not path.relative_to(EXAMPLES).as_posix().startswith(FROZEN)
    ]
    internal = {
        str(path.relative_to(EXAMPLES)): sorted(found - set(nsegaug.PUBLIC_MODULES))
        for path in scripts
        if (found := imported_modules(path)) - set(nsegaug.PUBLIC_MODULES)
    }
    assert len(scripts) >= 5 and not internal, internal
    runner = (EXAMPLES / FROZEN[0]).read_text(encoding="utf-8")
    assert "Frozen:" in runner.split('"""')[1], "the frozen runner says so at its top"


def test_a_lazy_package_lists_what_it_loads():
    """``nsegaug.train`` loads its names on first use: each one it lists is the one its module defines."""
    import nsegaug.train

    assert sorted(nsegaug.train.__all__) == sorted(nsegaug.train._PUBLIC)
