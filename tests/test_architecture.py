"""The package's shape, read from the source: no import cycle, no private name imported from
another module of the project, and adapters that import the core by its absolute name.

The graph is built with ``ast`` from the files themselves (nothing is imported), so it sees what
a reader sees: relative imports resolved, ``adapters/`` taken as ``uuid_forge.adapters``, and
imports inside functions counted (a lazy import hides a cycle, it does not remove it), and
imports under ``if TYPE_CHECKING:`` counted too: they never run, but a module that names another's
class for its hints depends on it all the same (a reader must hold both; a Protocol of its own,
such as uuid_forge.forgeview, cuts the tie).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "uuid_forge"


@dataclass(frozen=True)
class Import:
    """One ``import``/``from ... import`` statement's target as it resolves, and where it is."""

    module: str  # the importing module
    target: str  # the module imported from (a submodule when ``from pkg import submodule``)
    names: tuple[str, ...]  # the names taken from ``target`` (empty for ``import x``)
    line: int
    relative: bool


def _modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for ``uuid_forge/`` (with ``uuid_forge.cli.*``) and ``adapters/``."""
    found: dict[str, Path] = {}
    for base, prefix in ((root / PACKAGE, [PACKAGE]), (root / "adapters", [PACKAGE, "adapters"])):
        for path in sorted(base.rglob("*.py")):
            parts = prefix + list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.AST, typing: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement at any depth; without ``typing``, not those under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child) and not typing:
            for other in child.orelse:
                yield from _statements(ast.Module(body=[other], type_ignores=[]), typing)
        else:
            yield from _statements(child, typing)


def imports(root: Path = ROOT, typing: bool = True) -> list[Import]:
    """Every import of a project module by a project module, resolved (with ``typing``, those made
    for type hints only too)."""
    modules = _modules(root)
    out: list[Import] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _statements(ast.parse(path.read_text(encoding="utf-8"), str(path)), typing):
            if isinstance(node, ast.Import):
                out += [Import(name, a.name, (), node.lineno, False) for a in node.names
                        if a.name.split(".")[0] == PACKAGE]
                continue
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            submodules = [a.name for a in node.names if f"{target}.{a.name}" in modules]
            names = tuple(a.name for a in node.names if a.name not in submodules)
            out += [Import(name, f"{target}.{s}", (), node.lineno, node.level > 0) for s in submodules]
            if names or not submodules:
                out.append(Import(name, target, names, node.lineno, node.level > 0))
    return out


def graph(root: Path = ROOT, typing: bool = True) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's ``__init__`` runs first, so importing
    ``a.b.c`` imports ``a.b`` too: that edge is there)."""
    modules = _modules(root)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports(root, typing):
        parts = imp.target.split(".")
        for n in range(2, len(parts) + 1):  # the packages on the way, then the module itself
            target = ".".join(parts[:n])
            if target in modules and target != imp.module and not imp.module.startswith(target + "."):
                edges[imp.module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component of more than one module, as one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_cycle_through(sorted(component), edges))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _cycle_through(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One closed path inside ``component``, from its first module back to it (for the message)."""
    inside = set(component)
    start = component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(edges[v] & inside):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    return component  # unreachable for a strongly connected component


def private_imports(root: Path = ROOT) -> list[str]:
    """``module:line imports _name from other`` for each private name taken from another module."""
    return [f"{imp.module}:{imp.line} imports {n} from {imp.target}" for imp in imports(root) for n in imp.names
            if n.startswith("_") and not (n.startswith("__") and n.endswith("__")) and imp.target != imp.module]


def _fmt(found: list[list[str]]) -> str:
    """Each cycle as a path, and the whole tangle it belongs to when that holds more modules."""
    edges = graph()
    lines = []
    for c in found:
        tangle = _tangle(c[0], edges)
        more = f"  (tangle of {len(tangle)}: {', '.join(sorted(tangle))})" if len(tangle) > len(c) - 1 else ""
        lines.append(" -> ".join(c) + more)
    return "\n".join(lines)


def _tangle(start: str, edges: dict[str, set[str]]) -> set[str]:
    """The modules reachable from ``start`` that reach it back (its strongly connected component)."""
    def reach(v: str, out: dict[str, set[str]]) -> set[str]:
        seen, todo = {v}, [v]
        while todo:
            for w in out.get(todo.pop(), set()):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen
    back: dict[str, set[str]] = {}
    for v, ws in edges.items():
        for w in ws:
            back.setdefault(w, set()).add(v)
    return reach(start, edges) & reach(start, back)


# -- the package ------------------------------------------------------------------------------------
def test_the_package_has_no_import_cycle() -> None:
    found = cycles(graph())
    assert not found, f"import cycles (imports under TYPE_CHECKING included):\n{_fmt(found)}"


def test_no_module_imports_a_private_name_of_another() -> None:
    found = private_imports()
    assert not found, "private names imported across modules (make them public or move them):\n" + "\n".join(found)


def test_no_adapter_imports_the_core_relatively() -> None:
    """Relative imports inside one adapter's own package (adapters/sql/) stay in its folder and are
    fine; one that climbs into the core goes through the package-dir mapping, which readers and
    tools cannot follow."""
    relative = [f"{i.module}:{i.line} imports {i.target} relatively" for i in imports()
                if i.module.startswith(f"{PACKAGE}.adapters") and i.relative
                and not i.target.startswith(f"{PACKAGE}.adapters.")]
    assert not relative, "adapters import the core by absolute name (from uuid_forge.contract import ...):\n" + \
        "\n".join(relative)


def test_the_core_never_imports_an_adapter() -> None:
    found = [f"{m} imports {t}" for m, ts in graph().items() for t in ts
             if not m.startswith(f"{PACKAGE}.adapters") and t.startswith(f"{PACKAGE}.adapters")]
    assert not found, "\n".join(found)


# -- the checks can fail -----------------------------------------------------------------------------
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {f"{PACKAGE}/__init__.py": "", "adapters/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        f"{PACKAGE}/a.py": "from .b import f\n",
        f"{PACKAGE}/b.py": "def f():\n    from . import a\n    return a\n",
        f"{PACKAGE}/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import x\n",
        f"{PACKAGE}/d.py": "from .c import y\n",
        f"{PACKAGE}/cli/__init__.py": "from .app import main\n",
        f"{PACKAGE}/cli/app.py": "from uuid_forge.cli import cmd\n",
        f"{PACKAGE}/cli/cmd.py": "from .app import main\n",
    })
    found = cycles(graph(root))
    assert sorted(sorted(c[:-1]) for c in found) == [
        ["uuid_forge.a", "uuid_forge.b"], ["uuid_forge.c", "uuid_forge.d"], ["uuid_forge.cli.app", "uuid_forge.cli.cmd"]]
    assert all(c[0] == c[-1] for c in found)
    at_run_time = cycles(graph(root, typing=False))  # c -> d for type hints only: no cycle when run
    assert "uuid_forge.c" not in {m for c in at_run_time for m in c} and len(at_run_time) == 2


def test_private_and_relative_imports_are_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        f"{PACKAGE}/core.py": "_x = 1\n__version__ = '1'\n",
        f"{PACKAGE}/user.py": "from .core import _x, __version__\n",
        "adapters/mine.py": "from ..core import __version__\nfrom uuid_forge.core import _x\n",
    })
    assert sorted(private_imports(root)) == ["uuid_forge.adapters.mine:2 imports _x from uuid_forge.core",
                                             "uuid_forge.user:1 imports _x from uuid_forge.core"]
    assert [(i.module, i.target) for i in imports(root) if i.relative and "adapters" in i.module] == [
        ("uuid_forge.adapters.mine", "uuid_forge.core")]


@pytest.mark.parametrize("name", ["uuid_forge.audit", "uuid_forge.forge", "uuid_forge.adapters.memory",
                                  "uuid_forge.cli.commands", "uuid_forge.adapters.sql.adapter"])
def test_the_graph_sees_the_real_modules(name: str) -> None:
    edges = graph()
    assert edges.get(name), f"{name} should import other project modules"
