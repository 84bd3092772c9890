"""The layers hold: the import graph of the project, read from the source (imports inside
functions count too), has no cycle; nothing below the command layer imports it or prints; command
modules do not import each other; ``workers`` imports nothing above it and ``db`` only the error
root and the value rules of ``workers``.

    gapsweep  (commands: parse → one library call → render)
       ↓
    orchestrator  (engine: spec, plan, schedule, cluster, engine, analyses, report, tracking …)
       ↓           ↘
    workers  ←──── db      (db imports only workers.errors and workers.rules)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gapsweep", "orchestrator", "workers", "db")
DB_MAY_IMPORT_FROM_WORKERS = {"workers", "workers.errors", "workers.rules"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES
            for path in sorted((ROOT / package).rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, project module) for every import in the file, at any depth."""
    found = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:      # import a.b.c of a function → a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((node.lineno, target))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for _, target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_the_graph_is_read_from_the_whole_tree():
    assert {"gapsweep.main", "orchestrator.engine", "workers.train", "db.store"} <= set(MODULES)
    assert ("orchestrator.engine" in {target for _, target in GRAPH["gapsweep.commands.sweep"]})


def test_no_import_cycles():
    assert _cycles(GRAPH) == [], "import cycles (imports inside functions included)"


def test_the_cycle_check_finds_cycles():
    graph = {"a": [(1, "b")], "b": [(1, "c")], "c": [(1, "a"), (2, "d")], "d": []}
    assert _cycles(graph) == [["a", "b", "c"]]


def _violations(rule) -> list[str]:
    return [f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
            for name, edges in GRAPH.items() for line, target in edges if rule(name, target)]


def test_nothing_below_the_command_layer_imports_it():
    assert _violations(lambda name, target: not name.startswith("gapsweep")
                       and target.startswith("gapsweep")) == []


def test_workers_import_nothing_above_them_and_db_only_the_error_root_and_rules():
    assert _violations(lambda name, target: name.startswith("workers")
                       and target.split(".")[0] in ("orchestrator", "db", "gapsweep")) == []
    assert _violations(lambda name, target: name.startswith("db")
                       and target.split(".")[0] in ("orchestrator", "gapsweep")) == []
    assert _violations(lambda name, target: name.startswith("db") and target.startswith("workers")
                       and target not in DB_MAY_IMPORT_FROM_WORKERS) == []


def test_no_command_module_imports_another():
    commands = {name for name in MODULES if name.startswith("gapsweep.commands.")}
    assert _violations(lambda name, target: name in commands and target in commands) == []


def _prints(path: Path, root: Path = ROOT) -> list[str]:
    """Calls that write to the terminal: print(), sys.stdout/sys.stderr writes, a rich Console
    made without a file of its own."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Name) and function.id == "print":
            found.append(f"{path.relative_to(root)}:{node.lineno} print()")
        elif (isinstance(function, ast.Attribute) and function.attr == "write"
              and isinstance(function.value, ast.Attribute)
              and function.value.attr in ("stdout", "stderr")):
            found.append(f"{path.relative_to(root)}:{node.lineno} sys.{function.value.attr}.write")
        elif (isinstance(function, ast.Name) and function.id == "Console"
              and not any(keyword.arg == "file" for keyword in node.keywords)):
            found.append(f"{path.relative_to(root)}:{node.lineno} Console() on the terminal")
    return found


@pytest.mark.parametrize("package", ["orchestrator", "workers", "db"])
def test_the_engine_never_prints(package):
    assert [hit for name, path in MODULES.items() if name.split(".")[0] == package
            for hit in _prints(path)] == []


def test_the_print_check_finds_prints(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import sys\nprint('x')\nsys.stderr.write('y')\nConsole(width=80)\n"
                      "Console(file=buffer)\n")
    hits = [hit.split(" ", 1)[1] for hit in _prints(sample, tmp_path)]
    assert hits == ["print()", "sys.stderr.write", "Console() on the terminal"]


def test_what_moves_results_does_not_import_jax():
    """A Ray worker of a simulated sweep imports the task body (``orchestrator.schedule``) and
    ``workers.synthetic``; the driver converts results (``orchestrator.records``). None of them
    needs JAX and the model (~2.8 s and ~150 MB a process, times 64 workers of a simulated
    cluster): ``workers.task_output`` holds the result types in NumPy."""
    import subprocess
    import sys

    code = ("import sys, orchestrator.schedule, orchestrator.records, workers.synthetic; "
            "print(sorted(m for m in ('jax', 'flax', 'optax', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
