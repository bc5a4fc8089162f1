"""The layering of DESIGN.md, checked on the source: imports point down, no circles, and the
workflow layer knows phase kinds only through their protocol."""

from __future__ import annotations

import ast
from pathlib import Path

from admf_assets.phases import KINDS

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "admf_assets"


def _modules() -> dict[str, Path]:
    out = {}
    for root in (PKG, REPO / "resources"):
        for path in root.rglob("*.py"):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    out["definitions"] = REPO / "definitions.py"
    return out


MODULES = _modules()


def _imports(path: Path, module: str) -> set[str]:
    """Every project module ``path`` imports, anywhere in the file (lazy imports too)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


GRAPH = {m: _imports(p, m) for m, p in MODULES.items()}


def _in(prefix: str) -> list[str]:
    return [m for m in MODULES if m == prefix or m.startswith(prefix + ".")]


def test_phases_never_import_the_workflow_layer():
    bad = {m: sorted(i for i in GRAPH[m] if i.startswith("admf_assets.workflow")) for m in _in("admf_assets.phases")}
    assert not {m: v for m, v in bad.items() if v}


def test_the_engine_imports_no_dagster_and_nothing_above_it():
    for m in _in("admf_assets.engine"):
        text = MODULES[m].read_text()
        assert "import dagster" not in text and "from dagster" not in text, m
        assert all(i.startswith("admf_assets.engine") for i in GRAPH[m]), (m, GRAPH[m])


def test_the_cli_and_runner_never_import_a_phase_module():
    for m in ("admf_assets.cli", "admf_assets.runner"):
        assert not [i for i in GRAPH[m] if i.startswith("admf_assets.phases")], m


def test_no_import_circles():
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    # a package importing its own submodules is not a circle unless a submodule imports the package
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_workflow_code_names_no_phase_kind():
    """No string literal of the workflow layer (or the runner) is a kind name or alias:
    whatever it decides about a kind is a declared property or hook of the kind."""
    names = {s for k in KINDS for s in (k.name, *k.aliases)}
    offenders = []
    paths = [*(PKG / "workflow").glob("*.py"), PKG / "runner.py", PKG / "cli.py", PKG / "defs.py"]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in names:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not offenders, offenders
