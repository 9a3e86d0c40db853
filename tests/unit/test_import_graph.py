"""The package's layout, checked from its source: no import circles between its modules, the
job's side imports nothing of the hub's, the dashboard reaches none of the hub's internals,
and no module grows past 500 lines. The graph is read with `ast` (tests/unit/importgraph.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .importgraph import Import, find_cycles, import_graph, project_edges

PACKAGE = Path(__file__).resolve().parents[2] / "hubdash"
MAX_LINES = 500

# Runs inside the batch job on a compute node: the standard library, third-party packages
# and these only (the hub's side may be absent there, or another version of it).
JOB_SIDE = "hubdash.job"
# Importing hubdash.job.x runs these packages' __init__ first: they count as the job's side.
JOB_SIDE_PARENTS = ("hubdash", "hubdash.job")
# The dashboard talks to the hub through its REST API only; small shared modules at the top
# of the package (hubdash.walltime ...) are allowed, but nothing reaching into these.
HUB_INTERNALS = ("spawner", "cluster", "transport", "schedulers", "job")
DASHBOARD = "hubdash.dashboard"


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph(PACKAGE)


# ------------------------------------------------------------------- the cycle finder ---


def test_a_graph_without_circles_has_none():
    diamond = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
    assert find_cycles(diamond) == []


def test_two_modules_importing_each_other_are_a_circle():
    assert find_cycles({"a": ["b"], "b": ["a"], "c": ["a"]}) == [["a", "b", "a"]]


def test_a_longer_circle_is_named_in_import_order():
    graph = {"x": ["m"], "m": ["n"], "n": ["o"], "o": ["m", "z"]}
    assert find_cycles(graph) == [["m", "n", "o", "m"]]


def test_each_separate_circle_is_named_once():
    graph = {"a": ["b"], "b": ["a"], "c": ["d"], "d": ["e"], "e": ["c"]}
    assert find_cycles(graph) == [["a", "b", "a"], ["c", "d", "e", "c"]]


def test_a_tangle_is_named_by_its_shortest_circle_through_its_first_module():
    graph = {"a": ["b"], "b": ["c", "a"], "c": ["a"]}
    assert find_cycles(graph) == [["a", "b", "a"]]


def test_a_module_importing_itself_is_no_circle():
    assert find_cycles({"a": ["a", "b"], "b": []}) == []


def test_targets_outside_the_graph_are_leaves():
    assert find_cycles({"a": ["os", "b"], "b": ["json"]}) == []


# ------------------------------------------------------------------- reading a tree -----


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_imports_resolve_to_modules_packages_and_outside_names(tmp_path):
    package = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "from .sub import thing\n",
            "pkg/sub/__init__.py": "from . import leaf\nthing = 1\n",
            "pkg/sub/leaf.py": (
                "import os\nfrom .. import top\nfrom .sibling import Name\n"
                "def late():\n    import pkg.top\n"
            ),
            "pkg/sub/sibling.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg.sub.leaf import x\n",
            "pkg/top.py": "from pkg.sub import thing\n",
        },
    )
    edges = {
        name: sorted(i.target for i in imports) for name, imports in import_graph(package).items()
    }
    assert edges == {
        "pkg": ["pkg.sub"],
        "pkg.sub": ["pkg.sub.leaf"],
        "pkg.sub.leaf": ["os", "pkg.sub.sibling", "pkg.top", "pkg.top"],
        "pkg.sub.sibling": ["pkg.sub.leaf", "typing"],
        "pkg.top": ["pkg.sub"],
    }
    # The imports inside a function and under TYPE_CHECKING count as any other.
    assert find_cycles(project_edges(import_graph(package))) == [
        ["pkg.sub", "pkg.sub.leaf", "pkg.top", "pkg.sub"]
    ]


# ------------------------------------------------------------------- the package --------


def test_no_import_circles_between_the_packages_modules(graph):
    edges = project_edges(graph)
    where = {
        (name, i.target): f"{i.path.relative_to(PACKAGE.parent)}:{i.line}"
        for name, imports in graph.items()
        for i in imports
    }
    circles = []
    for cycle in find_cycles(edges):
        steps = [f"{a} -> {b} ({where[a, b]})" for a, b in zip(cycle, cycle[1:], strict=False)]
        circles.append(" -> ".join(cycle) + "\n    " + "\n    ".join(steps))
    assert not circles, "import circles between hubdash's modules:\n" + "\n".join(circles)


def test_the_job_side_imports_nothing_of_the_hub_side(graph):
    job_modules = [name for name in graph if _within(name, JOB_SIDE)]
    assert job_modules, f"no {JOB_SIDE} package under {PACKAGE}"
    wrong = [
        f"{name} imports {i.target} ({i.path.relative_to(PACKAGE.parent)}:{i.line})"
        for name in [*job_modules, *JOB_SIDE_PARENTS]
        for i in graph[name]
        if _within(i.target, "hubdash") and not _within(i.target, JOB_SIDE)
    ]
    assert not wrong, (
        f"the job's side ({JOB_SIDE}.*, and the packages above it) may import the standard "
        f"library, third-party packages and {JOB_SIDE}.* only:\n" + "\n".join(wrong)
    )


def test_the_dashboard_reaches_none_of_the_hubs_internals(graph):
    edges = project_edges(graph)
    forbidden = tuple(f"hubdash.{name}" for name in HUB_INTERNALS)
    dashboard = sorted(name for name in graph if _within(name, DASHBOARD))
    assert dashboard, f"no {DASHBOARD} package under {PACKAGE}"
    wrong = []
    for name in dashboard:
        # Through a shared top-level module counts too: the path is named.
        seen, todo = {name: [name]}, [name]
        while todo:
            here = todo.pop()
            for nxt in sorted(edges[here]):
                if nxt in seen or _within(nxt, DASHBOARD):  # those are checked on their own
                    continue
                seen[nxt] = [*seen[here], nxt]
                if any(_within(nxt, f) for f in forbidden):
                    wrong.append(" -> ".join(seen[nxt]))
                else:
                    todo.append(nxt)
    assert not wrong, (
        f"the dashboard talks to the hub through its REST API; it must not import "
        f"{', '.join(forbidden)}:\n" + "\n".join(wrong)
    )


def test_no_module_is_over_500_lines():
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by concern):\n" + "\n".join(
        f"{path}: {lines} lines" for path, lines in long.items()
    )
