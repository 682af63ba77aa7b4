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
    import re

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
