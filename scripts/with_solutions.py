"""Write every lesson with its exercise solutions appended as code cells, for the tests to run.

    python scripts/with_solutions.py OUT_DIR      # notebooks/NN_*.ipynb -> OUT_DIR/NN_*.ipynb

Solutions stay where learners read them, folded in ``<details>`` blocks of a lesson's
``## Exercises`` section (readable in JupyterLab, on Colab and on GitHub). This script
appends each ```` ```python ```` block folded there as a code cell, headed by a comment that
names the exercise, so that ``make test`` runs each lesson once under nbval, solutions
included, and a failing solution is reported with its lesson and exercise number. A line a
test cannot run (it needs a person to pick a file, say) ends with ``# not run in CI: <why>``;
that line is commented out and the rest of the block runs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
#: The lessons, in order: notebooks/NN_*.ipynb.
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISE = re.compile(r"^\*\*(\d+)\. \((?:easy|medium|open-ended)\)\*\*", re.M)
DETAILS = re.compile(r"<details>(.*?)</details>", re.S)
PYTHON = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
NOT_IN_CI = "# not run in CI:"


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


def with_solutions(notebook: Path) -> nbformat.NotebookNode:
    """The lesson with a code cell per solution block appended, each headed by the exercise it solves."""
    nb = nbformat.read(notebook, as_version=4)
    lesson = notebook.name[:2]
    for number, code in solutions(nb):
        nb.cells.append(nbformat.v4.new_code_cell(f"# Lesson {lesson}, exercise {number}: the folded solution\n{code}"))
    return nb


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for notebook in LESSONS:
        nbformat.write(with_solutions(notebook), out / notebook.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
