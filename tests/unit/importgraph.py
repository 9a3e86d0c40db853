"""The import graph of a source tree, read with `ast` (nothing is imported), and the circles in
a graph: what tests/unit/test_import_graph.py checks the package's layout with.

A module is named as Python names it: `pkg/sub/mod.py` is `pkg.sub.mod`, and a package's
`__init__.py` is the module `pkg.sub` of its own. An import counts wherever it stands: at the
top, inside a function, under `if TYPE_CHECKING:` (it does not run there, but the module still
depends on the other one's names, and such an import is how a circle gets hidden, not removed).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One import of one module: the module it names, and where it stands."""

    target: str  # dotted name; a project module where the import names one
    path: Path
    line: int


def module_files(package_dir: Path) -> dict[str, Path]:
    """Every module of the package at `package_dir` (a folder holding `__init__.py`), by
    dotted name; its own `__init__.py` is the package's module."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str:
    """`name` if it is a module, else the longest module it starts with (`pkg.mod.Class` is
    `pkg.mod`); names outside the project come back as they are."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return name


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> list[Import]:
    """What `module` (read from `path`) imports, each resolved to a module of `modules` where
    it names one: `from pkg import mod` is the module `pkg.mod`, `from pkg import name` is
    `pkg`, relative imports count from the module's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(_resolve(alias.name, modules), path, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                # A package's __init__ is inside itself: `.` is the package, not its parent.
                drop = node.level - 1 if is_package else node.level
                anchor = ".".join(package[: len(package) - drop])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                named = f"{base}.{alias.name}"
                target = named if named in modules else _resolve(base, modules)
                found.append(Import(target, path, node.lineno))
    return found


def import_graph(package_dir: Path) -> dict[str, list[Import]]:
    """Every module of the package and what it imports (itself left out)."""
    modules = module_files(package_dir)
    return {
        name: [i for i in imports_of(name, path, modules) if i.target != name]
        for name, path in modules.items()
    }


def project_edges(graph: Mapping[str, Iterable[Import]]) -> dict[str, set[str]]:
    """The graph reduced to imports between the project's own modules."""
    return {
        name: {i.target for i in imports if i.target in graph} for name, imports in graph.items()
    }


def _reachable(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _shortest_path(graph: Mapping[str, Iterable[str]], start: str, goal: str) -> list[str]:
    """A shortest path start -> ... -> goal (breadth first), start and goal included; a
    path from a node to itself has at least one step."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, ())):
            if nxt in came_from:
                continue
            came_from[nxt] = node
            if nxt == goal:
                path = [goal]
                while path[-1] != start or len(path) == 1:
                    path.append(came_from[path[-1]])
                return path[::-1]
            queue.append(nxt)
    return []


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One circle for every group of nodes that reach each other (a strongly connected
    component of two or more): the shortest one through the group's first node, as the list
    of nodes from that node back to it (`[a, b, a]`). A node pointing at itself is no circle
    here. Groups in order of their first node."""
    edges = {node: {n for n in targets if n != node} for node, targets in graph.items()}
    reach = {node: _reachable(edges, node) for node in edges}
    cycles = []
    placed: set[str] = set()
    for node in sorted(edges):
        if node in placed or node not in reach[node]:
            continue
        group = {other for other in reach[node] if node in reach.get(other, ())}
        placed |= group
        inside = {n: edges[n] & group for n in group}
        cycles.append(_shortest_path(inside, node, node))
    return cycles
