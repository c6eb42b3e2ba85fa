"""The package's layers go one way: notebook -> jobs -> api -> contract, with no import cycle.

Every import counts - at module level and inside functions alike, including
``importlib.import_module("luma_nb...")`` with a literal name - except those under
``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "luma_nb"
#: Rank of each layer; an import may only go to the same rank or lower.
LAYERS = {"contract": 0, "api": 1, "jobs": 2, "notebook": 3}
TOP = 4
#: Separate programs: what each may import from the rest of the package.
PROGRAMS = {"sandbox": {"contract"}, "relay": {"contract", "api"}}
#: The only modules that may start a separate program (and only inside functions): the sandbox
#: from the top of the package or from the relay's launcher (``--upstream sandbox``), the
#: relay's commands from the CLI.
LAUNCHERS = {"luma_nb.defaults", "luma_nb._demo", "luma_nb.cli", "luma_nb.relay.launch"}
#: Leaf modules any layer may use.
LEAVES = {"luma_nb._version"}
FRONT_END = ("ipywidgets", "IPython")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """``(target, line, local)`` of every import that runs, ``local`` when inside a function."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.found: list[tuple[str, int, bool]] = []
        self.depth = 0

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, target: str, line: int) -> None:
        self.found.append((target, line, self.depth > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            self._add(sub if sub in self.known else target, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self._add(first.value, node.lineno)
        self.generic_visit(node)


def _graph() -> dict[str, list[tuple[str, int, bool]]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[name] = visitor.found
    return graph


def _room(module: str) -> str:
    """``contract``, ``api``, ``jobs``, ``notebook``, a program's name, or ``top``."""
    parts = module.split(".")
    if len(parts) > 1 and (parts[1] in LAYERS or parts[1] in PROGRAMS):
        return parts[1]
    return "leaf" if module in LEAVES else "top"


def _rank(room: str) -> int:
    return LAYERS.get(room, 0 if room == "leaf" else TOP)


def _internal(graph: dict[str, list[tuple[str, int, bool]]]) -> dict[str, set[str]]:
    return {
        name: {t for t, _, _ in found if t in graph and t != name} for name, found in graph.items()
    }


def test_the_graph_sees_every_layer_and_function_local_imports() -> None:
    graph = _graph()
    rooms = {_room(name) for name in graph}
    assert set(LAYERS) <= rooms and "sandbox" in rooms
    local = [t for found in graph.values() for t, _, is_local in found if is_local]
    assert any(t.startswith("luma_nb.") for t in local)


def test_no_import_cycle() -> None:
    edges = _internal(_graph())
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_go_down_the_layers_only() -> None:
    wrong = []
    for name, found in _graph().items():
        room = _room(name)
        for target, line, local in found:
            if not target.startswith("luma_nb"):
                continue
            there = _room(target)
            if there == "sandbox" and room != "sandbox":
                if name not in LAUNCHERS or not local:
                    wrong.append(f"{name}:{line} starts the sandbox ({target})")
                continue
            if room in PROGRAMS:
                if there != room and there not in PROGRAMS[room] and there != "leaf":
                    wrong.append(
                        f"{name}:{line} -> {target} (the {room} uses only {PROGRAMS[room]})"
                    )
                continue
            if there in PROGRAMS:
                if name not in LAUNCHERS or not local:
                    wrong.append(f"{name}:{line} -> {target} (a separate program)")
            elif _rank(there) > _rank(room):
                wrong.append(f"{name}:{line} -> {target} ({room} may not import {there})")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def test_only_the_notebook_layer_imports_the_front_end() -> None:
    wrong = [
        f"{name}:{line} imports {target}"
        for name, found in _graph().items()
        for target, line, _ in found
        if target.split(".")[0] in FRONT_END and _room(name) != "notebook"
    ]
    assert not wrong, "\n".join(wrong)
