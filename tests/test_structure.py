"""The package structure stays as docs/architecture.md draws it: dependencies point one way.

Layers, lowest first (a module may import its own package and any lower layer, nothing else):

0. ``errors``, ``params``, ``model``, ``kernels``, ``_native``, ``mapped``: the vocabulary every stage shares
   (these may import each other, without a circle);
1. ``io`` (every file format) and ``core`` (pure computation): neither imports the other;
2. ``schemes``, ``curation``, ``trials``, ``quality``, ``figures``, ``simulate``, ``interop``: none
   imports another;
3. ``pipeline`` (run, resume, executors, reports): composes the layers below;
4. ``cli``; 5. ``__main__`` (``python -m blechrs``).

Function-local imports count too (they hid the import circles this test now forbids).
"""

from __future__ import annotations

import ast
from pathlib import Path

import blechrs

ROOT = Path(blechrs.__file__).parent
LAYER = {
    "errors": 0, "params": 0, "model": 0, "kernels": 0, "_native": 0, "mapped": 0,
    "io": 1, "core": 1,
    "schemes": 2, "curation": 2, "trials": 2, "quality": 2, "figures": 2, "simulate": 2, "interop": 2,
    "pipeline": 3,
    "cli": 4, "__main__": 5,
}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("blechrs",) + (parts[:-1] if parts[-1] == "__init__" else parts))
        mods[name] = p
    return mods


def _imports(name: str, path: Path) -> set[str]:
    """Every blechrs module ``name`` imports, anywhere in the file."""
    out: set[str] = set()
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("blechrs"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            if base.startswith("blechrs"):
                out.update(f"{base}.{a.name}" for a in node.names)
                out.add(base)
    return out


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    missing = sorted({_top(m) for m in _modules()} - set(LAYER) - {""})
    assert not missing, f"packages without a layer in this test: {missing}"


def test_imports_point_down_the_layers():
    wrong = []
    for name, path in _modules().items():
        src = _top(name)
        if not src:
            continue
        for target in _imports(name, path):
            dst = _top(target)
            if not dst or dst == src or dst not in LAYER:
                continue
            if LAYER[dst] > LAYER[src] or (LAYER[dst] == LAYER[src] and LAYER[src] != 0):
                wrong.append(f"{name} imports {target} (layer {LAYER[src]} -> {LAYER[dst]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle_within_a_package():
    mods = _modules()
    graph = {n: {t for t in _imports(n, p) if t in mods and t != n and not n.startswith(t + ".")}
             for n, p in mods.items()}
    state: dict[str, int] = {}
    circles = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                circles.append(" -> ".join(stack[stack.index(m):] + [m]) if m in stack else f"{n} -> {m}")
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not circles, "\n".join(circles)


def test_no_private_names_used_across_modules():
    mods = _modules()
    wrong = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("blechrs"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__") and a.name != "_native":
                        wrong.append(f"{name} imports {node.module}.{a.name}")
    assert not wrong, "\n".join(wrong)


def test_small_modules_and_functions():
    big = []
    for name, path in _modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    big.append(f"{name}.{node.name}: {n} lines")
    assert not big, "\n".join(big)


def _test_files() -> list[Path]:
    return sorted(Path(__file__).parent.rglob("*.py"))


def test_tests_import_no_other_test_and_no_private_name():
    # A test imports blechrs's public API and tests/support/ references, never another test module
    # nor a private name (``_x``, or ``module._x`` on a blechrs module it imported).
    wrong = []
    for path in _test_files():
        tree = ast.parse(path.read_text())
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if mod.split(".")[-1].startswith("test_") or any(a.name.startswith("test_") for a in node.names):
                    wrong.append(f"{path.name} imports a test module ({mod})")
                if mod.startswith("blechrs"):
                    for a in node.names:
                        if a.name.startswith("_") and a.name != "_native":
                            wrong.append(f"{path.name} imports {mod}.{a.name}")
                        modules.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0].startswith("test_"):
                        wrong.append(f"{path.name} imports a test module ({a.name})")
                    if a.name.startswith("blechrs"):
                        modules.add(a.asname or a.name.split(".")[0])
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__") and node.attr != "_native"):
                wrong.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not wrong, "\n".join(wrong)
