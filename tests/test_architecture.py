"""The shape of helpers/ a teacher forks: the lesson modules on top, the machinery below, imports pointing down,
settings read at the edge, one interface for every captioner, and a library small enough to read."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELPERS = ROOT / "helpers"
MACHINERY = {"data", "system", "tools"}  # the sub-packages: data sources, platform machinery, tools
#: Only the edges call get_settings(): the command line, and the two entry points DESIGN section 6 documents
#: as callable without settings (``load_dataset(name=None)``, ``extract_features(paths)``).
SETTINGS_EDGE = {("tools.cli", "main"), ("datasets", "load_dataset"), ("features", "extract_features")}
MAX_MODULES, MAX_LINES, MAX_MODULE_LINES, MAX_DOCSTRING_LINES = 15, 5000, 330, 10


def modules() -> dict[str, Path]:
    """Every module of the library by dotted name below ``helpers``: ``datasets``, ``system.cache``, ..."""
    found = {}
    for path in sorted(HELPERS.rglob("*.py")):
        parts = path.relative_to(HELPERS).with_suffix("").parts
        found[".".join(parts)] = path
    return found


def trees() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(), str(path)) for name, path in modules().items()}


def imported(tree: ast.Module) -> set[str]:
    """The library modules a module imports, by dotted name below ``helpers``."""
    names = set(modules())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"):
            base = node.module.removeprefix("helpers").lstrip(".")
            for alias in node.names:
                joined = f"{base}.{alias.name}".lstrip(".")
                found.add(joined if joined in names else base)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("helpers.") for a in node.names if a.name.startswith("helpers.")}
    return {name for name in found if name}


def top_level() -> list[str]:
    return [name for name in modules() if "." not in name and not name.startswith("__")]


def test_the_top_level_holds_only_lesson_modules_each_naming_its_lesson():
    assert len(top_level()) <= MAX_MODULES, top_level()
    assert {path.name for path in HELPERS.iterdir() if path.is_dir() and path.name != "__pycache__"} == MACHINERY
    for name in top_level():
        first = ast.get_docstring(trees()[name]).splitlines()[0]
        assert re.search(r"\(lessons? \d\d", first), f"helpers/{name}.py: its first line names its lesson: {first!r}"


def test_the_library_is_small_enough_to_read():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert sum(sizes.values()) <= MAX_LINES, f"{sum(sizes.values())} lines"
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert not too_long, f"split these by job: {too_long}"
    essays = {name: len(doc.splitlines()) for name, tree in trees().items() if (doc := ast.get_docstring(tree))}
    assert all(lines <= MAX_DOCSTRING_LINES for lines in essays.values()), essays


def test_imports_point_down_and_have_no_cycle():
    graph = {name: imported(tree) - {name} for name, tree in trees().items()}
    for name, targets in graph.items():
        layer = name.split(".")[0]
        if layer in ("data", "system"):
            below = {t for t in targets if t.split(".")[0] not in ("data", "system")}
            assert not below, f"{name} (machinery) imports lesson modules or tools: {below}"
        elif layer not in ("tools", "__main__"):
            assert not {t for t in targets if t.startswith("tools")}, f"{name} imports the tools"
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module not in done:
            for target in sorted(graph.get(module, ())):
                visit(target, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())


def test_settings_are_read_only_at_the_edge():
    callers = set()
    for name, tree in trees().items():
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "get_settings":
                        callers.add((name, function.name))
    assert callers - {("config", "get_settings")} == SETTINGS_EDGE


def test_no_code_asks_a_captioner_what_type_it_is():
    probing = re.compile(r"(isinstance|hasattr|getattr)\(\s*(captioner|bundle\.captioner|model)\b")
    found = [
        f"{name}: {line.strip()}"
        for name, path in modules().items()
        for line in path.read_text().splitlines()
        if probing.search(line)
    ]
    assert not found, found


def test_lessons_import_only_the_top_level():
    deeper = []
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            for match in re.finditer(r"(?:from|import) helpers\.(data|system|tools)\b\S*", "".join(cell["source"])):
                deeper.append(f"{notebook.name}: {match[0]}")
    assert not deeper, deeper
