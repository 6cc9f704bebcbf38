"""The house rules of the code base, checked: modules that say what they own, short functions, no import circles,
no private names reached across modules, nothing done at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("study", "models", "objectives")
MAX_FUNCTION_LINES = 60
# What a module may do at import time besides defining things: no environment variables,
# warning filters, SQLAlchemy listeners or thread settings.
SIDE_EFFECTS = ("environ", "getenv", "filterwarnings", "simplefilter", "event.listen",
                "set_num_threads", "setLevel", "set_verbosity")  # fmt: skip


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
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
                up = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{up}.{base}" if base else up
            names = [a.name for a in node.names]
            # `from . import ablate` imports the module study.ablate, not just the package.
            out.append((base, names))
            out += [(f"{base}.{n}", []) for n in names if f"{base}.{n}" in modules()]
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_says_what_it_owns(name):
    """Rooms are split by what they own, not by a count of lines: a long module is fine, so
    long as its docstring says what it owns."""
    doc = ast.get_docstring(tree(modules()[name]))
    assert doc and len(doc.split()) >= 4, f"{name}: no docstring saying what it owns"


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


# study's rooms, top to bottom: a room imports only rooms below it (or itself). The entry
# points (python -m study.X) and the command-line layer they share are the top room.
STUDY_LAYERS = (
    ("entry",),
    ("execution",),
    ("reporting",),
    ("experiments",),
    ("search", "tracking"),
    ("artifacts",),
    ("data",),
    ("settings",),
    ("stores",),
    ("errors", "faces"),
)


def room(name: str) -> str:
    """The room of a study module: its subpackage, or 'entry' for a top-level module that no
    layer names (study.run, study.cli, ...)."""
    parts = name.split(".")
    named = {r for layer in STUDY_LAYERS for r in layer}
    return parts[1] if len(parts) > 1 and parts[1] in named else "entry"


def rank(r: str) -> int:
    return next(i for i, layer in enumerate(STUDY_LAYERS) if r in layer)


def test_study_rooms_point_down():
    """entry points -> execution -> reporting -> experiments -> search / tracking ->
    artifacts -> data -> settings -> stores -> errors: no lower room imports a higher one
    (an entry point least of all), and rooms of one layer do not import each other."""
    mods = modules()
    bad = []
    for name, path in mods.items():
        if not name.startswith("study."):
            continue
        for module, _ in imports(name, path):
            if module in mods and module.startswith("study.") and module != "study":
                a, b = room(name), room(module)
                if a != b and rank(a) >= rank(b):
                    bad.append(f"{name} ({a}) imports {module} ({b})")
    assert bad == []


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


def test_the_tests_mirror_the_rooms():
    """``tests/study/ROOM/`` tests ``study/ROOM/``: a test folder has a room of that name."""
    rooms = {p.name for p in (ROOT / "study").iterdir() if (p / "__init__.py").is_file()}
    folders = {p.name for p in (ROOT / "tests/study").iterdir() if (p / "__init__.py").is_file()}
    assert folders and folders <= rooms, sorted(folders - rooms)


def test_each_room_has_a_small_public_face():
    """Each room's ``__init__`` offers a few names (``__all__``), each from a module of the
    room, and importing the room imports none of its modules until a name is asked for."""
    import importlib

    rooms = sorted(p.name for p in (ROOT / "study").iterdir() if (p / "__init__.py").is_file())
    assert len(rooms) >= 8
    for r in rooms:
        package = importlib.import_module(f"study.{r}")
        assert 0 < len(package.__all__) <= 8, r
        for name in package.__all__:
            obj = getattr(package, name)
            assert obj.__module__.startswith(f"study.{r}."), (r, name, obj.__module__)
        with pytest.raises(AttributeError):
            package.no_such_name  # noqa: B018
    code = (
        "import importlib, sys\n"
        f"for r in {rooms!r}:\n"
        "    importlib.import_module('study.' + r)\n"
        "print(sorted(m for m in sys.modules if m.count('.') >= 2 and m.startswith('study.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
