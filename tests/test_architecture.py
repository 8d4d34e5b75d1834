"""The architecture holds: layers import only downwards, no import cycle, small modules.

Layers, lowest first (README's Layout): parts (lawm's models/ and infrastructure modules, data_pipelines/)
< systems (lawm/systems/) < engine, evaluation and planning (lawm's step, train, flops, evals/, planning/;
api, export, transfer_video and latent_table, which put trained models to use, and the package's own
`lawm.load`) < experiments/ (entry points and configs). The graph is read with `ast` from the source,
module-level and function-level imports alike, so an import hidden inside a function cannot close a cycle
unseen.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("lawm", "data_pipelines", "experiments")
PARTS, SYSTEMS, ENGINE, EXPERIMENTS = range(4)
# Trained models for users (api, export, transfer_video, latent_table) sit with the engine; so does the
# package itself, the front door: `lawm.load` imports lawm.api when called.
ENGINE_MODULES = ("lawm", "lawm.step", "lawm.train", "lawm.flops")
USER_MODULES = ("lawm.api", "lawm.export", "lawm.transfer_video", "lawm.latent_table")
MAX_LINES = 400  # per module of lawm/


def module_names() -> dict[str, pathlib.Path]:
    names = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: pathlib.Path, name: str, known) -> set[str]:
    """The project modules `path` imports anywhere in it (a `from package import module` names the
    module; `from module import function` names the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in known else base for t in targets]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import lawm.x.y` of a module: itself; else its package
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer(name: str) -> int:
    if name.startswith("experiments"):
        return EXPERIMENTS
    if name.startswith("lawm.systems"):
        return SYSTEMS
    if name in ENGINE_MODULES + USER_MODULES or name.startswith(("lawm.evals", "lawm.planning")):
        return ENGINE
    return PARTS


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = module_names()
    return {name: imports_of(path, name, known) for name, path in known.items()}


def test_the_graph_is_read_from_function_level_imports_too(graph):
    # lawm.systems.make imports the controller system inside the function.
    assert "lawm.systems.controller" in graph["lawm.systems"]
    assert "lawm.runs" in graph["lawm.systems.controller"]


def test_no_module_imports_a_higher_layer(graph):
    upward = sorted(
        f"{source} ({layer(source)}) imports {target} ({layer(target)})"
        for source, targets in graph.items()
        for target in targets
        if layer(target) > layer(source)
    )
    assert not upward, "\n".join(upward)


def test_the_library_never_imports_experiments(graph):
    bad = sorted(
        f"{s} -> {t}"
        for s, targets in graph.items()
        for t in targets
        if not s.startswith("experiments") and t.startswith("experiments")
    )
    assert not bad, bad


def find_cycle(graph) -> list[str] | None:
    """One import cycle as a path (depth-first search for a back edge), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_a_cycle_through_a_function_level_import_would_be_found(tmp_path):
    known = {"lawm.a": tmp_path / "a.py", "lawm.b": tmp_path / "b.py", "lawm.c": tmp_path / "c.py"}
    known["lawm.a"].write_text("from lawm import b\n")
    known["lawm.b"].write_text("import lawm.c\n\n\ndef f():\n    from lawm.a import g\n")
    known["lawm.c"].write_text("import numpy\n")
    graph = {name: imports_of(path, name, known) for name, path in known.items()}
    assert graph == {"lawm.a": {"lawm.b"}, "lawm.b": {"lawm.a", "lawm.c"}, "lawm.c": set()}
    assert find_cycle(graph) == ["lawm.a", "lawm.b", "lawm.a"]
    graph["lawm.b"].discard("lawm.a")
    assert find_cycle(graph) is None


def test_library_modules_stay_small():
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "lawm").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long
