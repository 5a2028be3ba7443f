"""Run every lesson headless, in order, on the configured dataset (``make course``).

Executed copies (with outputs and figures) go to ``artifacts/<dataset>/runs/``, next to
a ``timings.json`` of how long each lesson took. A lesson that fails stops the run with
its error's last line; the copy up to the failing cell is still saved.

    python scripts/run_course.py                 # all lessons
    python scripts/run_course.py 03 04           # only lessons whose file starts with 03 or 04
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.config import get_settings  # noqa: E402
from helpers.system.files import atomic_path, write_json  # noqa: E402
from scripts.with_solutions import LESSONS  # noqa: E402

CELL_TIMEOUT_S = 3 * 3600  # full Flickr8k training on a CPU takes hours
# Curve-encrypted kernel channels: private, and no "Kernel is running over TCP without encryption" warning per lesson
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})


def last_line(error: CellExecutionError) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else repr(error)


def run(notebook: Path, out_dir: Path) -> float:
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        config=KERNEL_CONFIG,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        with atomic_path(out_dir / notebook.name) as tmp:
            nbformat.write(nb, tmp)
    return time.perf_counter() - start


def main(prefixes: list[str]) -> int:
    settings = get_settings()
    print(settings)
    out_dir = settings.artifacts_dir / "runs"
    notebooks = [nb for nb in LESSONS if nb.name.startswith(tuple(prefixes))] if prefixes else LESSONS
    timings = {}
    for notebook in notebooks:
        print(f"running {notebook.name} ...", flush=True)
        try:
            timings[notebook.name] = round(run(notebook, out_dir), 1)
        except CellExecutionError as error:
            print(f"{notebook.name} failed: {last_line(error)}")
            print(f"The executed copy up to the failing cell is in {out_dir / notebook.name}.")
            if settings.dataset == "flickr8k":
                print("No network or no time for the 1 GB download? Run offline: CAPTION_DATASET=shapes make course")
            return 1
        print(f"  done in {timings[notebook.name]:.0f} s -> {out_dir / notebook.name}")
    write_json(out_dir / "timings.json", timings)
    print(f"All {len(timings)} lessons ran in {sum(timings.values()) / 60:.1f} minutes.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
