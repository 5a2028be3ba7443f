"""The shape of helpers/ a teacher forks (issue 14): imports point down, settings flow in, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

HELPERS = Path(__file__).resolve().parents[1] / "helpers"

# The notebook-facing entry points whose documented defaults read the environment (DESIGN
# section 7: `load_dataset(name=None)`, `extract_features(paths)`), and the command line.
SETTINGS_EDGE = {
    ("cli", "main"),
    ("course", "prepare_course_data"),
    ("course", "prepare_model"),
    ("datasets", "load_dataset"),
    ("features", "extract_features"),
}
MAX_LINES = 330  # "no module over about 300 lines"


def _trees() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(HELPERS.glob("*.py"))}


def _imported_modules(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "helpers":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("helpers.")}
    return found


def test_helpers_imports_have_no_cycle():
    graph = {name: _imported_modules(tree) - {name} for name, tree in _trees().items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


def test_settings_are_read_only_at_the_edge():
    callers = set()
    for name, tree in _trees().items():
        if name == "config":
            continue
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "get_settings":
                    callers.add((name, function.name))
    assert callers == SETTINGS_EDGE, f"get_settings() outside the notebook/CLI edge: {sorted(callers - SETTINGS_EDGE)}"


def test_no_module_is_much_over_300_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in HELPERS.glob("*.py")}
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not too_long, f"split these by job: {too_long}"
