"""A lesson's first output is clean: TensorFlow's start-up banner is held back, real errors are not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import setup_and_config_cells
from helpers.system.quiet import is_banner

ROOT = Path(__file__).resolve().parents[1]
FIRST_LESSON = ROOT / "notebooks" / "01_data_exploration.ipynb"

# What TensorFlow 2.21 writes on import (twice), and lines that must never be dropped.
BANNER = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1796149464.226187    8605 port.cc:153] oneDNN custom operations are on. You may see slightly"
    b" different numerical results due to floating-point round-off errors from different computation orders."
    b" To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n",
]
REAL = [
    b"E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Unable to register cuDNN factory\n",
    b"W0000 00:00:1796149464.226187    8605 port.cc:153] TF_ENABLE_ONEDNN_OPTS is not set to either '0', 'false', '1', or 'true'.\n",
    b"Traceback (most recent call last):\n",
]


def test_only_the_banner_counts_as_banner():
    assert all(is_banner(line) for line in BANNER)
    assert not any(is_banner(line) for line in REAL)
    assert is_banner(
        b"2024-08-10 09:16:11.569780: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. More."
    )


def fake_tensorflow(folder: Path, body: str) -> Path:
    """A stand-in ``tensorflow`` package whose import runs ``body`` (no real TensorFlow: fast)."""
    package = folder / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text("import os, sys\n" + body)
    return folder


def import_quietly(path: Path, level: str = "2") -> subprocess.CompletedProcess:
    """``helpers.quiet.import_tensorflow()`` in a fresh Python, finding ``path``'s tensorflow first; stderr is a pipe."""
    code = "import sys, helpers.system.quiet as q\ntry:\n    q.import_tensorflow()\nfinally:\n    print('after', file=sys.stderr)\n"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(path), str(ROOT)]), "TF_CPP_MIN_LOG_LEVEL": level}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60)


def test_real_errors_written_during_the_import_still_come_through(tmp_path: Path):
    lines = [BANNER[0], BANNER[1], REAL[0], BANNER[0], BANNER[1], REAL[1]]
    written = "".join(f"os.write(2, {line!r})\n" for line in lines) + "print('from Python', file=sys.stderr)\n"
    result = import_quietly(fake_tensorflow(tmp_path, written))
    assert result.returncode == 0, result.stderr
    assert result.stderr == REAL[0] + REAL[1] + b"from Python\nafter\n", (
        "everything but the banner, in order, then fd 2 restored"
    )


def test_a_failing_import_restores_stderr_and_shows_the_error(tmp_path: Path):
    body = f"os.write(2, {BANNER[1]!r} + b'E0000 loading failed\\n')\nraise ImportError('no libtensorflow here')\n"
    result = import_quietly(fake_tensorflow(tmp_path, body))
    assert result.returncode == 1
    assert not any(line.rstrip() in result.stderr for line in BANNER)
    assert result.stderr.startswith(b"E0000 loading failed\nafter\nTraceback"), result.stderr
    assert result.stderr.rstrip().endswith(b"ImportError: no libtensorflow here")


def test_nothing_is_held_back_when_all_logs_are_asked_for(tmp_path: Path):
    result = import_quietly(fake_tensorflow(tmp_path, f"os.write(2, {BANNER[1]!r})\n"), level="0")
    assert result.stderr == BANNER[1] + b"after\n"


def test_works_without_any_stderr(tmp_path: Path):
    code = "import os\nos.close(2)\nimport helpers.system.quiet as q\nprint(q.import_tensorflow().MARK)\n"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(fake_tensorflow(tmp_path, "MARK = 'imported'\n")), str(ROOT)])
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stdout == "imported\n", result


@pytest.mark.slow
def test_setup_and_config_cells_write_nothing_to_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in {"CAPTION_DATASET": "shapes", "CAPTION_CNN_WEIGHTS": "none", "CAPTION_FAST": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # as in a learner's fresh kernel
    nb = nbformat.v4.new_notebook(cells=setup_and_config_cells(FIRST_LESSON))
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(FIRST_LESSON.parent)}}
    ).execute()
    outputs = [output for cell in nb.cells for output in cell.outputs]
    stderr = [output.text for output in outputs if output.get("name") == "stderr"]
    assert not stderr, "".join(stderr)
    setup = "".join(output.text for output in nb.cells[0].outputs if output.get("name") == "stdout")
    assert setup.startswith("Python ") and "| TensorFlow " in setup and "| Keras " in setup, setup
    assert any("CAPTION_DATASET" in output.get("data", {}).get("text/plain", "") for output in nb.cells[1].outputs)


@pytest.mark.slow
def test_setup_in_a_terminal_prints_only_the_version_line():
    code = "import helpers; helpers.setup()"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("Python ") and result.stdout.count("\n") == 1, result.stdout
