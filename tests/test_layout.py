"""The package's layout keeps its layers: read from the source with ``ast``, not by convention.

Layers, lowest first: ``runtime``/``validation``, ``problem``, ``learner``, ``strategies``,
``experiment``, ``analysis``, ``plots``, ``cli``. A module imports only its own layer and the
ones below; the configuration and the records import no algorithm; no cycle, no import after
the first definition, no other module's private name, no re-export outside a package's
``__init__``; no module over 600 lines and no function over 80.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dean_nb"

LAYERS = {
    "dean_nb": 0,
    "dean_nb.runtime": 0,
    "dean_nb.validation": 0,
    "dean_nb.problem": 1,
    "dean_nb.learner": 2,
    "dean_nb.strategies": 3,
    "dean_nb.experiment": 4,
    "dean_nb.analysis": 5,
    "dean_nb.plots": 6,
    "dean_nb.cli": 7,
    "dean_nb.__main__": 7,
}
#: Modules that must not import the algorithms at module level (reading a record or a
#: configuration needs none of them).
LIGHT = ("dean_nb.experiment.config", "dean_nb.experiment.presets", "dean_nb.experiment.records")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
    return LAYERS[module]


def _targets(module: str, node: ast.stmt) -> list[tuple[str, str | None]]:
    """``(imported module, imported name or None)`` pairs of an import inside dean_nb."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names if a.name.startswith("dean_nb")]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    if not base.startswith("dean_nb"):
        return []
    out = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        out.append((submodule, None) if submodule in MODULES else (base, alias.name))
    return out


def _imports(module: str, *, top_level: bool) -> list[tuple[str, str | None, int]]:
    tree = TREES[module]
    nodes = tree.body if top_level else list(ast.walk(tree))
    return [
        (target, name, node.lineno)
        for node in nodes
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target, name in _targets(module, node)
    ]


def _fresh_modules(statement: str) -> list[str]:
    """The dean_nb modules a fresh interpreter has loaded after ``statement``."""
    script = f"import sys\n{statement}\nprint([m for m in sys.modules if m.startswith('dean_nb')])"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip())


def test_the_layout_is_the_documented_one():
    assert {_module_name(p.parent) for p in PACKAGE.glob("*/__init__.py")} == {
        "dean_nb.problem",
        "dean_nb.learner",
        "dean_nb.strategies",
        "dean_nb.experiment",
        "dean_nb.analysis",
        "dean_nb.plots",
    }
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == {"__init__", "__main__", "cli", "runtime", "validation"}


def test_imports_point_down_the_layers():
    upward = [
        f"{module}:{line} imports {target}"
        for module in MODULES
        for target, _, line in _imports(module, top_level=False)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_configs_and_records_import_no_algorithm():
    heavy = [
        f"{module}:{line} imports {target}"
        for module in LIGHT
        for target, _, line in _imports(module, top_level=True)
        if target.startswith(("dean_nb.strategies", "dean_nb.experiment.loop"))
    ]
    assert heavy == []
    loaded = _fresh_modules("import dean_nb.experiment.records, dean_nb.experiment.config")
    assert not [m for m in loaded if m.startswith("dean_nb.strategies")]


def test_no_private_name_crosses_a_module_and_no_import_comes_late():
    private, late = [], []
    for module, tree in TREES.items():
        first_definition = next(
            (n.lineno for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)),
            None,
        )
        for target, name, line in _imports(module, top_level=True):
            if name is not None and name.startswith("_") and not name.startswith("__"):
                private.append(f"{module}:{line} imports {target}.{name}")
            if first_definition is not None and line > first_definition:
                late.append(f"{module}:{line}")
    assert private == []
    assert late == []


def test_only_package_inits_re_export():
    re_exports = []
    for module, tree in TREES.items():
        if MODULES[module].name == "__init__.py":
            continue
        defined = set()
        exported: list[str] = []
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                defined.update(names)
                if names == ["__all__"]:
                    exported = [ast.literal_eval(e) for e in node.value.elts]
        re_exports += [f"{module}.{name}" for name in exported if name not in defined]
    assert re_exports == []


def test_the_module_imports_have_no_cycle():
    graph = {m: {t for t, _, _ in _imports(m, top_level=True) if t in MODULES} for m in MODULES}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_modules_and_functions_stay_short():
    long_modules = [
        f"{m}: {n} lines"
        for m, p in MODULES.items()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    long_functions = [
        f"{m}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for m, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long_modules == []
    assert long_functions == []


def test_strategies_are_registered_in_the_package_init():
    registering = [
        module
        for module, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
        for decorator in getattr(node, "decorator_list", [])
        if isinstance(decorator, ast.Name) and decorator.id == "register"
    ]
    assert registering == []


@pytest.mark.parametrize("layer", ["problem", "learner", "strategies"])
def test_the_library_layers_import_without_the_lab(layer):
    loaded = {m.split(".")[1] for m in _fresh_modules(f"import dean_nb.{layer}") if "." in m}
    assert not loaded & {"experiment", "analysis", "plots", "cli"}, loaded
