"""A workshop on one server: a shared data folder, prepared once and read-only, and each learner's own folder.

The instructor runs ``make prefetch`` with ``CAPTION_DATA_DIR`` at the shared folder; learners
run with ``CAPTION_SHARED_DIR`` at it and their own ``CAPTION_DATA_DIR``. The shared folder is
made read-only (``chmod -R a-w``) and, because root ignores those bits, every file's size and
time are compared before and after: the lessons must read it and write only the learner's folder.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.config import get_settings
from helpers.datasets import load_dataset
from helpers.features import feature_store
from helpers.system.errors import CourseError
from scripts.with_solutions import LESSONS

ROOT = Path(__file__).resolve().parents[1]
#: The lessons that read the most of the shared folder: the images and features (03); the dataset, the
#: features memory-mapped and halved, GloVe, and training on several workers (10). Lesson 00 reads nothing
#: these two do not, and costs a minute more.
LESSONS_RUN = ("03", "10")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder``: its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in [folder, *folder.rglob("*")]}


def set_writable(folder: Path, writable: bool) -> None:
    """``chmod -R a-w`` (or ``u+w`` again) on ``folder``."""
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """A shared folder prepared as the instructors' notes say (the test settings, no grid), then made read-only."""
    folder = tmp_path_factory.mktemp("shared")
    env = {**os.environ, "CAPTION_DATA_DIR": str(folder)}
    env.pop("CAPTION_SHARED_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "prefetch"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    set_writable(folder, False)
    yield folder
    set_writable(folder, True)


@pytest.fixture
def learner(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A learner's own folder, with the settings a workshop server gives every learner."""
    monkeypatch.setenv("CAPTION_SHARED_DIR", str(shared))
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path / "learner"))
    monkeypatch.setenv("CAPTION_FLICKR8K_URL", "http://127.0.0.1:9/no-download-expected")
    return tmp_path / "learner"


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS_RUN)
def test_a_lesson_reads_the_shared_folder_and_writes_only_the_learners(lesson, shared, learner, tmp_path):
    before = snapshot(shared)
    notebook = nbformat.read(next(p for p in LESSONS if p.name.startswith(lesson)), as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    after = snapshot(shared)
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not changed, f"the lesson changed the shared folder: {changed}"
    config = next(c for c in notebook.cells if c.cell_type == "code" and "settings = get_settings()" in c.source)
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in config.outputs)
    assert "CAPTION_SHARED_DIR" in shown and str(shared) in shown, "the config cell shows the shared folder"
    assert (learner / "artifacts").is_dir() and not (learner / "data").exists(), "outputs in the learner's folder only"


@pytest.mark.slow
def test_what_the_instructor_did_not_prepare_is_named_with_the_command_that_prepares_it(shared, learner):
    data = load_dataset(settings=get_settings())
    with pytest.raises(CourseError, match=r"make prefetch GRID=1"):
        feature_store(data, grid=True)  # lesson 11's grid: prefetched only with GRID=1


def test_an_unprepared_shared_folder_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTION_SHARED_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path / "learner"))
    (tmp_path / "shared").mkdir()
    with pytest.raises(
        CourseError, match=r"does not hold shapes.*CAPTION_DATA_DIR=\S*shared CAPTION_DATASET=shapes make prefetch"
    ):
        load_dataset(settings=get_settings())
    assert not any((tmp_path / "shared").iterdir()), "nothing written to the shared folder"
