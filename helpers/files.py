"""Atomic file writes: nothing half-written ever sits at a final path (DESIGN section 9)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers.errors import CourseError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only if the block succeeds.

    Used by every helper that saves something: an interruption or a full disk leaves the
    old file (or no file), never a truncated one.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Same folder (so the rename is atomic) and same suffix (Keras and NumPy insist on it).
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except OSError as error:
        tmp_path.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise CourseError(f"The disk is full while writing {final}: free some space and run again.") from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
