"""Every exercise solution of every lesson runs, on the test settings, after its lesson.

Solutions stay where learners read them, folded in ``<details>`` blocks of the lesson's
``## Exercises`` section (readable in JupyterLab, on Colab and on GitHub). This test takes
each lesson, appends every ```` ```python ```` block of its solutions as a code cell, runs
the whole notebook in a fresh kernel and fails with the lesson, the exercise and the
error. A line a test cannot run (it needs a person to pick a file, say) ends with the
marker ``# not run in CI: <why>``; the test comments out that line and runs the rest.

nbval runs the lessons themselves (``pytest notebooks --nbval-lax``); this test runs them
again, with their solutions, in the same data folder, so most steps come from the caches.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISE = re.compile(r"^\*\*(\d+)\. \((?:easy|medium|open-ended)\)\*\*", re.M)
DETAILS = re.compile(r"<details>(.*?)</details>", re.S)
PYTHON = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
NOT_IN_CI = "# not run in CI:"
CELL_TIMEOUT_S = 900


def exercises_text(nb: nbformat.NotebookNode) -> str:
    """The Markdown of the lesson's ``## Exercises`` section (it runs to the end of the notebook)."""
    cells = [cell.source for cell in nb.cells if cell.cell_type == "markdown"]
    start = next(i for i, source in enumerate(cells) if "## Exercises" in source)
    return "\n".join(cells[start:]).split("## Exercises", 1)[1]


def solutions(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(exercise number, code)`` of every Python block folded in a solution, in order."""
    found = []
    parts = EXERCISE.split(exercises_text(nb))  # text, number, text, number, text, ...
    for number, text in zip(parts[1::2], parts[2::2]):
        for details in DETAILS.findall(text):
            found += [(int(number), runnable(code)) for code in PYTHON.findall(details)]
    return found


def runnable(code: str) -> str:
    """The code with each line marked ``# not run in CI: ...`` commented out."""
    return "\n".join(f"# {line}" if NOT_IN_CI in line else line for line in code.splitlines())


def test_solutions_are_found():
    """The parser sees the exercises: a lesson with solution code yields blocks, marked lines are kept out."""
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    found = solutions(nb)
    assert found and all(number >= 1 for number, _ in found)
    assert runnable("a = 1\nfiles.upload()  # not run in CI: a person picks a file\nb = 2") == (
        "a = 1\n# files.upload()  # not run in CI: a person picks a file\nb = 2"
    )


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_exercise_solutions_run(notebook: Path):
    nb = nbformat.read(notebook, as_version=4)
    blocks = solutions(nb)
    for number, code in blocks:
        nb.cells.append(nbformat.v4.new_code_cell(code, metadata={"exercise": number}))
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    client.execute()
    errors = [
        f"{notebook.name}, {'exercise ' + str(cell.metadata['exercise']) if 'exercise' in cell.metadata else 'lesson cell'}: "
        f"{output.ename}: {output.evalue}\n{cell.source[:300]}"
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert not errors, "\n\n".join(errors)
