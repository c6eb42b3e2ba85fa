"""The package's layers go one way: notebook -> client -> contract, with no import cycle.

Every import counts - at module level and inside functions alike, including
``importlib.import_module("luma_nb...")`` with a literal name. Imports under
``if TYPE_CHECKING:`` never run, so they make no runtime cycle; but they still count for the
arrows between packages: two packages that name each other, even for the type checker, are one
package in truth. No lower layer may leave a hole for a higher one to fill (a slot, a registry).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "luma_nb"
#: Rank of each layer; an import may only go to the same rank or lower.
LAYERS = {"contract": 0, "client": 1, "notebook": 2}
TOP = 4
#: Separate programs: what each may import from the rest of the package.
PROGRAMS = {"sandbox": {"contract"}, "relay": {"contract", "client"}}
#: The only modules that may start a separate program (and only inside functions): the sandbox
#: from the top of the package or from the relay's launcher (``--upstream sandbox``), the
#: relay's commands from the CLI.
LAUNCHERS = {"luma_nb.client.defaults", "luma_nb._demo", "luma_nb.cli", "luma_nb.relay.launch"}
#: Leaf modules any layer may use.
LEAVES = {"luma_nb._version"}
FRONT_END = ("anywidget", "ipywidgets", "IPython")


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
    """``(target, line, local)`` of every import that runs, ``local`` when inside a function;
    with ``typing=True``, also those under ``if TYPE_CHECKING:``."""

    def __init__(self, module: str, is_package: bool, known: set[str], typing: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.typing = typing
        self.found: list[tuple[str, int, bool]] = []
        self.depth = 0

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node) and not self.typing:
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


def _graph(typing: bool = False) -> dict[str, list[tuple[str, int, bool]]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py", known, typing)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[name] = visitor.found
    return graph


def _room(module: str) -> str:
    """``contract``, ``client``, ``notebook``, a program's name, or ``top``."""
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


def test_no_cycle_between_packages_even_for_the_type_checker() -> None:
    """The rooms (contract, client, notebook, sandbox, relay, the top) import each other one
    way only, counting imports under ``if TYPE_CHECKING:``."""
    edges: dict[str, set[str]] = {}
    for name, found in _graph(typing=True).items():
        here = _package(name)
        for target, _, _ in found:
            if target.startswith("luma_nb") and _package(target) != here:
                edges.setdefault(here, set()).add(_package(target))
    cycles = []
    for a, targets in edges.items():
        for b in targets:
            if _reaches(edges, b, a):
                cycles.append(f"{a} <-> {b}")
    assert not cycles, "packages that import each other:\n" + "\n".join(sorted(cycles))


def _package(module: str) -> str:
    """The room a module belongs to: a layer, a program, the top, or the leaf ``_version``."""
    return _room(module)


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        for nxt in edges.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def test_no_slot_or_registry_filled_from_above() -> None:
    """No module defines or fills a slot: a lower layer never leaves a hole for a higher one.

    IPython's own display formatters, which the notebook layer tells how to show a Job, are
    the one registry allowed (they belong to IPython, not to this package's layers).
    """
    wrong = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and "slot" in node.name.lower():
                wrong.append(f"{name}:{node.lineno} class {node.name}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "fill"
                and name.split(".")[1:2] != ["sandbox"]
            ):
                wrong.append(f"{name}:{node.lineno} fills something ({ast.unparse(node)[:60]})")
    assert not wrong, "slots:\n" + "\n".join(wrong)
    assert not (PACKAGE / "contract" / "slots.py").exists()


#: What only the widgets, the videos and the sandbox need: ``import luma_nb`` and the client's
#: own work load none of it (``benchmarks/importtime.py`` times the import).
HEAVY = (
    "anywidget",
    "ipywidgets",
    "IPython",
    "traitlets",
    "comm",
    "av",
    "PIL",
    "luma_nb.notebook.widgets",
    "luma_nb.notebook.media",
    "luma_nb.sandbox",
)


_PROBE = """\
import json, sys
heavy = json.loads(sys.argv[1])
seen = []
import luma_nb
seen.append([m for m in heavy if m in sys.modules])
from luma_nb import DefaultPolicy, Job, LumaClient, LumaError, Task
LumaClient("key", base_url="http://127.0.0.1:9").close()
seen.append([m for m in heavy if m in sys.modules])
luma_nb.extend_form
seen.append([m for m in heavy if m in sys.modules])
print(json.dumps(seen))
"""


def test_import_luma_nb_loads_no_widgets_nor_anywidget() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported, with_a_client, with_the_form = json.loads(done.stdout.splitlines()[-1])
    assert imported == [], f"import luma_nb loaded {imported}"
    assert with_a_client == [], f"making a client loaded {with_a_client}"
    # Asking for a widget is what loads them and anywidget (the probe sees them at all).
    assert {"luma_nb.notebook.widgets", "anywidget"} <= set(with_the_form), with_the_form
