"""Exercise solutions run in ``make test``: scripts/with_solutions.py appends them to their lessons.

``make test`` writes every lesson with its solutions appended into the test data folder and
runs those copies under nbval, so each lesson runs once, solutions included. These tests
check the copying: every lesson's solutions are found, numbered and runnable.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from scripts.with_solutions import LESSONS as NOTEBOOKS
from scripts.with_solutions import runnable, solutions, with_solutions


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_every_lesson_has_solutions_to_run(notebook: Path):
    found = solutions(nbformat.read(notebook, as_version=4))
    assert found, "no ```python block in the Exercises' <details>"
    numbers = [number for number, _ in found]
    assert numbers == sorted(numbers) and numbers[0] >= 1
    for number, code in found:
        compile(code, f"{notebook.name}, exercise {number}", "exec")  # the Markdown holds valid Python


def test_copies_name_the_exercise_and_leave_the_lesson_as_it_is():
    lesson = nbformat.read(NOTEBOOKS[1], as_version=4)
    copy = with_solutions(NOTEBOOKS[1])
    added = copy.cells[len(lesson.cells) :]
    assert [cell.source for cell in copy.cells[: len(lesson.cells)]] == [cell.source for cell in lesson.cells]
    assert added and all(cell.cell_type == "code" for cell in added)
    assert added[0].source.startswith(f"# Lesson {NOTEBOOKS[1].name[:2]}, exercise ")


def test_lines_a_test_cannot_run_are_left_out():
    code = "a = 1\nfiles.upload()  # not run in CI: a person picks a file\nb = 2"
    assert runnable(code) == "a = 1\n# files.upload()  # not run in CI: a person picks a file\nb = 2"
