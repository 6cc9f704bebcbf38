"""The house rules of the code base, checked: short modules and functions, no import circles,
no private names reached across modules, nothing done at import time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("study", "models", "objectives")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# What a module may do at import time besides defining things: no environment variables,
# warning filters, SQLAlchemy listeners or thread settings.
SIDE_EFFECTS = ("environ", "getenv", "filterwarnings", "simplefilter", "event.listen",
                "set_num_threads", "setLevel", "set_verbosity")  # fmt: skip


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out[name] = path
    return out


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import anywhere in the module."""
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}" if base else package
            out.append((base, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_are_short(name):
    lines = modules()[name].read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{name}: {lines} lines"


@pytest.mark.parametrize("name", sorted(modules()))
def test_functions_are_short(name):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree(modules()[name]))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == [], f"{name}: {long}"


def test_no_import_circles():
    mods = modules()
    graph = {
        name: {m for m, _ in imports(name, path) if m in mods and m != name}
        for name, path in mods.items()
    }
    # A package's __init__ re-exports its modules; importing the package from one of its own
    # modules goes through it, so edges into an __init__ from inside count too.
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_layers_point_one_way():
    """study -> objectives -> models; models imports neither optuna nor mlflow."""
    allowed = {"models": {"models"}, "objectives": {"objectives", "models"}}
    for name, path in modules().items():
        top = name.split(".")[0]
        for module, _ in imports(name, path):
            root = module.split(".")[0]
            if top in allowed and root in PACKAGES:
                assert root in allowed[top], f"{name} imports {module}"
            if top == "models":
                assert root not in ("optuna", "mlflow"), f"{name} imports {module}"


def test_no_private_name_is_imported_from_another_module():
    bad = [
        f"{name}: from {module} import {n}"
        for name, path in modules().items()
        for module, names in imports(name, path)
        for n in names
        if n.startswith("_") and not n.startswith("__") and module != "__future__"
    ]
    assert bad == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_nothing_happens_at_import_time(name):
    path = modules()[name]
    source = path.read_text()
    for node in tree(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'":
            continue  # the CLI entry point
        if isinstance(node, ast.Expr):
            assert isinstance(node.value, ast.Constant), f"{name}: {ast.unparse(node)[:80]}"
            continue  # a docstring
        text = ast.get_source_segment(source, node) or ""
        for word in SIDE_EFFECTS:
            assert word not in text, f"{name} at import time: {text[:80]}"
