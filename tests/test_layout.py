"""The package reads top to bottom: imports run one way, without cycles, and no module or function is too long to
read."""

import ast
import graphlib
import json
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xltlib"
LAYERS = [
    {"errors", "files", "integrity"},
    {"data"},
    {"config"},
    {"models", "run_data"},
    {"methods"},
    {"training", "evaluation"},
    {"store", "records"},
    {"pipeline"},
    {"grid"},
    {"synthetic", "profiles"},
    {"report", "sweep", "runs"},
    {"__main__"},
]
"""Top-level modules and packages, lowest first: a module imports only from its own layer or below."""
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 50


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def runtime_imports(path: Path, name: str) -> set[str]:
    """xltlib modules that ``path`` imports when it runs (at module level or in a function; not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    known = modules()
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("xltlib")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xltlib"):
            for alias in node.names:  # `from xltlib.data import tasks` imports the module xltlib.data.tasks
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
    return found - {name}


def layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


GRAPH = {name: runtime_imports(path, name) for name, path in modules().items() if name != "xltlib"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way(module):
    upward = sorted(imported for imported in GRAPH[module] if imported != "xltlib" and layer(imported) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports from higher layers: {upward}"


def test_no_import_cycles():
    done, active = set(), []

    def visit(module):
        if module in active:
            raise AssertionError(" → ".join(active[active.index(module) :] + [module]))
        if module in done or module not in GRAPH:
            return
        active.append(module)
        for imported in sorted(GRAPH[module]):
            visit(imported)
        active.pop()
        done.add(module)

    for module in GRAPH:
        visit(module)


def test_no_cycles_between_packages():
    """A package is one unit: `config` importing `data` while a `data` module imports `config` is a cycle between the
    two packages even when no module-level cycle exists (layers shared by both once hid one)."""
    between = {}
    for module, imported in GRAPH.items():
        top = module.split(".")[1] if module.count(".") else module
        between.setdefault(top, set()).update(
            i.split(".")[1] for i in imported if i.count(".") and i.split(".")[1] != top
        )
    try:
        tuple(graphlib.TopologicalSorter(between).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"packages import each other: {' → '.join(error.args[1])}") from None


@pytest.mark.parametrize("module", sorted(modules()))
def test_modules_and_functions_stay_short(module):
    path = modules()[module]
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path} has {source.count(chr(10))} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path}: {', '.join(long)}"


def test_the_layers_name_every_top_level_module():
    tops = {name.split(".")[1] for name in GRAPH if name.count(".")}
    assert tops == set().union(*LAYERS)


def test_the_synthesis_notebook_only_calls_formats_and_plots():
    """Its logic lives in tested functions of xltlib.report (issue 41): at most 120 lines of code in its cells."""
    notebook = json.loads((PACKAGE.parent / "notebooks" / "synthesis.ipynb").read_text())
    code = [
        line
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(code) <= 120, f"the synthesis notebook has {len(code)} lines of code"
