"""Speed and memory measurements of the course code against the classic approach (make bench).

Every stage module runs one *side* of a comparison per process (``--json FILE`` writes its
figures), so peak memory, thread pools and traced functions never leak from one side to
the other; :func:`run_side` starts such a process, :func:`settle` waits for the machine to
calm down between them. :mod:`benchmarks.report` lays the figures out in markdown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def run_side(module: str, *args: object, env: dict[str, str] | None = None) -> dict:
    """Run ``python -m benchmarks.<module> ARGS --json FILE`` in a fresh interpreter; return what it wrote.

    ``env`` is added to this process's environment. The side's output goes straight to this
    terminal; a failure raises SystemExit with the command.
    """
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-m", f"benchmarks.{module}", *map(str, args), "--json", str(out)]
        done = subprocess.run(command, env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[1])
        if done.returncode != 0 or not out.exists():
            raise SystemExit(f"failed (exit code {done.returncode}): {' '.join(command)}")
        return json.loads(out.read_text())


def write_json(path: str | None, result: dict) -> None:
    """Write a side's figures to ``path`` (the ``--json`` option), if one was given."""
    if path:
        Path(path).write_text(json.dumps(result, indent=1))


def settle(quiet: float = 0.5, longest: float = 60) -> None:
    """Wait until the 1-minute load average per CPU falls below ``quiet``, ``longest`` seconds at most."""
    end = time.monotonic() + longest
    while os.getloadavg()[0] > quiet * (os.cpu_count() or 1) and time.monotonic() < end:
        time.sleep(5)


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (every thread of this process) of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def decoded_blocks(paths: Sequence[str | Path], batch_size: int) -> list:
    """The images at ``paths`` decoded once, as float32 tensors of ``batch_size`` images: the model-alone runs' input."""
    import numpy as np
    import tensorflow as tf

    from helpers.features import load_image

    decoded = np.stack([load_image(str(path)).numpy() for path in paths])
    return [tf.constant(decoded[i : i + batch_size]) for i in range(0, len(decoded), batch_size)]
