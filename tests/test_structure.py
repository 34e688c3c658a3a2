"""The shape of the package: imports only point down (no cycle, counting imports inside functions),
no file over 600 lines, a trainer loop read in one pass, lazy imports only where they are meant."""

import ast
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "cnn_jax"
# Modules allowed to import cnn_jax modules inside functions, and why.
LAZY_IMPORTS = {
    "cnn_jax.cli": "each command imports what it runs, so that `cnn-jax --help` starts without JAX",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules) -> list[tuple[str, bool]]:
    """(imported cnn_jax module, whether the import sits inside a function) for every import."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules) if name.startswith("cnn_jax") else None
            # a package re-exporting its own submodules is not an upward import
            if target and target != module and not (is_package and target.startswith(module + ".")):
                found.add((target, id(node) in inside))
    return sorted(found)


def _graph():
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def test_the_import_graph_of_the_package_has_no_cycle():
    graph = {m: {t for t, _ in edges} for m, edges in _graph().items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, cycles


def test_cnn_jax_modules_are_imported_inside_functions_only_where_lazy_on_purpose():
    lazy = {m for m, edges in _graph().items() if any(inside for _, inside in edges)}
    assert lazy <= set(LAZY_IMPORTS), sorted(lazy - set(LAZY_IMPORTS))


def test_no_module_is_over_600_lines_and_the_loop_is_read_in_one_pass():
    sizes = {str(p.relative_to(REPO_ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) <= 600, {p: n for p, n in sizes.items() if n > 600}
    assert sizes["cnn_jax/training/loop.py"] <= 300


def test_the_checker_sees_a_cycle_and_a_lazy_import_when_there_is_one(tmp_path, monkeypatch):
    # The checks above could pass by reading nothing: build a two-module package with a cycle
    # through a function-level import and check that both are found.
    pkg = tmp_path / "cnn_jax"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cnn_jax import b\n")
    (pkg / "b.py").write_text("def f():\n    from cnn_jax.a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    edges = _graph()
    assert ("cnn_jax.b", False) in edges["cnn_jax.a"] and edges["cnn_jax.b"] == [("cnn_jax.a", True)]
    with pytest.raises(AssertionError, match="cnn_jax.a -> cnn_jax.b -> cnn_jax.a"):
        test_the_import_graph_of_the_package_has_no_cycle()
    with pytest.raises(AssertionError, match="cnn_jax.b"):
        test_cnn_jax_modules_are_imported_inside_functions_only_where_lazy_on_purpose()
