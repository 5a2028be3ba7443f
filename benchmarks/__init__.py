"""Speed and memory measurements of the course code against the classic approach (make bench).

Every stage script runs one *side* of a comparison per process (``--json FILE`` writes its
figures), so peak memory, thread pools and traced functions never leak from one side to
the other; :func:`run_side` starts such a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run_side(module: str, *args: str, env: dict[str, str] | None = None) -> dict | list:
    """Run ``python -m benchmarks.<module> ARGS --json FILE`` in a fresh interpreter; return what it wrote.

    Its output goes straight to this terminal; a failure raises SystemExit with the command.
    """
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-m", f"benchmarks.{module}", *map(str, args), "--json", str(out)]
        done = subprocess.run(command, env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[1])
        if done.returncode != 0 or not out.exists():
            raise SystemExit(f"failed (exit code {done.returncode}): {' '.join(command)}")
        return json.loads(out.read_text())


def write_json(path: str | None, result: dict | list) -> None:
    """Write a side's figures to ``path`` (the ``--json`` option), if one was given."""
    if path:
        Path(path).write_text(json.dumps(result, indent=1))
