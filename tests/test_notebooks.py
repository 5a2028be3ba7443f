"""Every lesson is committed clean, in step with the repository URL, and framed the same way.

(nbval runs the notebooks themselves: `pytest notebooks --nbval-lax`, see the Makefile.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.sync_notebooks import is_setup_cell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def markdown(notebook: Path) -> str:
    return "\n".join("".join(c["source"]) for c in cells(notebook) if c["cell_type"] == "markdown")


def test_lessons_are_numbered():
    assert NOTEBOOKS, "no notebooks found"
    for notebook in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", notebook.name), notebook.name


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(notebook):
    for cell in cells(notebook):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, notebook.name


def test_badges_and_setup_cells_in_step():
    result = subprocess.run(
        [sys.executable, "scripts/sync_notebooks.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_frame(notebook):
    text = markdown(notebook)
    first = "".join(cells(notebook)[0]["source"])
    assert first.startswith("# Lesson ") and "colab-badge.svg" in first, "header with title and Colab badge"
    assert "**Goal:**" in first and "**Time:**" in first and "**You will learn**" in first
    assert "## Setup" in text and "## Summary" in text and "## Exercises" in text
    exercises = text.split("## Exercises", 1)[1]
    assert len(re.findall(r"\*\*\d+\. \((easy|medium|open-ended)\)\*\*", exercises)) >= 3, (
        "at least three graded exercises"
    )
    assert exercises.count("<details>") >= 3, "solutions folded in <details>"
    assert "**Next:**" in text or notebook == NOTEBOOKS[-1], (
        "a link to the next lesson (the last lesson: to the course)"
    )
    code = [c for c in cells(notebook) if c["cell_type"] == "code"]
    assert any(is_setup_cell(c) for c in code), "the setup cell"
    assert any("get_settings()" in "".join(c["source"]) for c in code), "the config cell"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_has_a_lead_in(notebook):
    previous = None
    for cell in cells(notebook):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            assert previous == "markdown", f"{notebook.name}: code cell without a Markdown lead-in:\n{source[:200]}"
        previous = cell["cell_type"]
