"""Layouts are strategy objects: no adapter branches on which layout it has.

Each adapter picks its layout class from one ``LAYOUTS`` table and calls it; a comparison, an
``isinstance`` or a dict dispatch on a layout attribute outside the layout classes would mean the
next layout must be added in several places again. The test reads the source with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ADAPTERS = Path(__file__).resolve().parent.parent / "adapters"
#: parts of attribute, variable and option names that select a layout
LAYOUT_NAMES = ("layout", "envelope")
#: whole attribute names of ``self`` that did (Redis's option was ``value``; MongoDB kept ``flat``)
SELF_LAYOUT_ATTRS = ("value", "flat")


def _names_layout(node: ast.AST) -> bool:
    """True when ``node`` reads a layout selector: ``self.layout``, ``layout``, ``opts["layout"]``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and any(n in sub.attr.lower() for n in LAYOUT_NAMES):
            return True
        if (isinstance(sub, ast.Attribute) and sub.attr in SELF_LAYOUT_ATTRS and isinstance(sub.value, ast.Name)
                and sub.value.id == "self"):
            return True
        if isinstance(sub, ast.Name) and any(n in sub.id.lower() for n in LAYOUT_NAMES):
            return True
        if isinstance(sub, ast.Constant) and sub.value in ("layout", "value") and isinstance(
                getattr(sub, "parent", None), ast.Subscript):
            return True
    return False


def _is_none_test(node: ast.Compare) -> bool:
    """``x is None`` / ``x is not None``: whether a layout is there, not which one."""
    return all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops) and any(
        isinstance(c, ast.Constant) and c.value is None for c in node.comparators)


def _is_flag(test: ast.AST) -> bool:
    """``if self.flat:`` / ``if not self.envelope:``: a boolean standing for a layout."""
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test = test.operand
    if isinstance(test, ast.BoolOp):
        return any(_is_flag(v) for v in test.values)
    return isinstance(test, (ast.Attribute, ast.Name)) and _names_layout(test)


def _layout_classes(tree: ast.Module) -> set[str]:
    """Names of classes in the module deriving (directly or through one another) from a Layout."""
    found: set[str] = set()
    changed = True
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    while changed:
        changed = False
        for cls in classes:
            if cls.name in found:
                continue
            bases = {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in cls.bases}
            if any(b.endswith("Layout") for b in bases) or bases & found:
                found.add(cls.name)
                changed = True
    return found


def layout_branches(source: str, filename: str) -> list[str]:
    """Each place in ``source`` that branches on a layout outside the layout classes."""
    tree = ast.parse(source, filename)
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            child.parent = parent  # type: ignore[attr-defined]
    inside = _layout_classes(tree)
    found: list[str] = []

    def visit(node: ast.AST, in_layout: bool) -> None:
        if isinstance(node, ast.ClassDef):
            in_layout = in_layout or node.name in inside
        if not in_layout:
            problem = None
            if (isinstance(node, ast.Compare) and any(_names_layout(x) for x in (node.left, *node.comparators))
                    and not _is_none_test(node)):
                problem = "compares a layout"
            elif isinstance(node, (ast.If, ast.IfExp, ast.While)) and _is_flag(node.test):
                problem = "tests a layout flag"
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("isinstance", "type", "issubclass") and node.args and _names_layout(node.args[0])):
                problem = f"{node.func.id}() of a layout"
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Dict) and _names_layout(node.slice):
                problem = "dispatches on a layout through a dict"
            elif isinstance(node, ast.Match) and _names_layout(node.subject):
                problem = "matches on a layout"
            if problem:
                found.append(f"{filename}:{node.lineno}: {problem}: {ast.unparse(node)[:100]}")
        for child in ast.iter_child_nodes(node):
            visit(child, in_layout)

    visit(tree, False)
    return found


def _adapter_files() -> list[Path]:
    return sorted(p for p in ADAPTERS.rglob("*.py"))


@pytest.mark.parametrize("path", _adapter_files(), ids=lambda p: str(p.relative_to(ADAPTERS)))
def test_adapter_does_not_branch_on_its_layout(path: Path) -> None:
    assert layout_branches(path.read_text(encoding="utf-8"), str(path.relative_to(ADAPTERS.parent))) == []


@pytest.mark.parametrize("snippet", [
    "def put(self):\n    if self.layout == 'json':\n        pass\n",
    "def put(self, opts):\n    x = 1 if opts['layout'] != 'raw' else 2\n",
    "def put(self):\n    return {'json': 1, 'hash': 2}[self.layout_name]\n",
    "def put(self):\n    if isinstance(self.layout, EnvelopeLayout):\n        pass\n",
    "def put(self):\n    match self.layout:\n        case 'x':\n            pass\n",
    "def put(self, value):\n    if self._layout.name in ('data', 'hash'):\n        pass\n",
    "def put(self):\n    if not self.flat:\n        return\n",
    "def put(self):\n    write = {'json': a, 'hash': b}[self.value]\n",
])
def test_the_check_finds_each_kind_of_layout_branch(snippet: str) -> None:
    assert layout_branches(snippet, "x.py"), snippet


def test_the_check_allows_branches_inside_layout_classes_and_plain_calls() -> None:
    source = ("class EnvelopeLayout(Layout):\n    def put(self):\n        if self.layout == 'x':\n            pass\n"
              "class Adapter:\n    def put(self, r):\n        return self.layout.encode(r)\n")
    assert layout_branches(source, "x.py") == []
