"""Import TensorFlow without its start-up banner, keeping everything else it writes to stderr.

TensorFlow 2.21 prints two lines on stderr when it is imported, once from
``libtensorflow_framework.so`` and once more from the profiler plugin, which carries
its own copy of the C++ logging library (abseil)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796149464.226187    8605 port.cc:153] oneDNN custom operations are on. ...

``TF_CPP_MIN_LOG_LEVEL`` cannot hide them. The oneDNN line is logged while the library
is being loaded, by a static initializer (``threadpool_device.cc``) that runs before the
one that hands that variable to abseil (``logging_initializer.cc``); and until
``absl::InitializeLog()`` is called, which TensorFlow never does, abseil writes messages
of every level to stderr, the first one after its "WARNING: All log messages..." line.
Abseil reads no environment variable, and TensorFlow logs the line whenever oneDNN is
on (also with ``TF_ENABLE_ONEDNN_OPTS=1``); only turning oneDNN off silences it, and
oneDNN is what makes TensorFlow fast on a CPU.

So :func:`import_tensorflow` points file descriptor 2 at a temporary file while
TensorFlow loads, then writes what was captured back to the real stderr, all but the
lines in :data:`BANNER`. A file rather than a pipe: TensorFlow holds Python's lock
while it loads its libraries (up to a second at a time), so a thread reading a pipe
could not keep up and a full pipe would stall the import. Errors, warnings and Python
tracebacks still come through, a few seconds late, once the import returns or fails (if
the process itself dies inside the import, what was held back dies with it). With
``TF_CPP_MIN_LOG_LEVEL=0`` (all of TensorFlow's logs asked for) nothing is held back.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import IO

#: The lines :func:`import_tensorflow` drops, matched against each whole line.
BANNER = (
    re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    # abseil's format (TensorFlow 2.20 and later), then the one TensorFlow used before
    re.compile(rb"I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\..*"),
    re.compile(rb"[\d-]+ [\d:.]+: I \S*port\.cc:\d+\] oneDNN custom operations are on\..*"),
)


def is_banner(line: bytes) -> bool:
    """Whether one line written to stderr (with or without its line break) is TensorFlow's start-up banner."""
    return any(pattern.fullmatch(line.rstrip(b"\r\n")) for pattern in BANNER)


def wants_info_logs() -> bool:
    """Whether the learner asked for TensorFlow's info messages (``TF_CPP_MIN_LOG_LEVEL`` 0 or unset).

    An unset or unreadable value counts as 0, as in TensorFlow; ``import helpers`` sets it to 2.
    """
    value = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    return not value.isdigit() or int(value) < 1


@contextmanager
def stderr_without_banner() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 inside the block, then pass it on without :data:`BANNER` lines.

    Works on the descriptor, so it catches C and C++ code too: in a terminal, and in a
    Jupyter kernel, where descriptor 2 is a pipe that the kernel shows as a red stderr
    block. The real descriptor 2 is put back however the block ends.
    """
    _flush_python_streams()
    diverted = _divert_stderr()
    if diverted is None:
        yield
        return
    captured, saved = diverted
    try:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            _flush_python_streams()  # what Python wrote inside the block belongs to it
            os.dup2(saved, 2)
            captured.seek(0)
            kept = b"".join(line for line in captured.read().splitlines(keepends=True) if not is_banner(line))
            with suppress(OSError):  # stderr gone meanwhile: nowhere to report to
                _write_all(2, kept)
    finally:
        os.close(saved)
        captured.close()


def _divert_stderr() -> tuple[IO[bytes], int] | None:
    """A temporary file and a copy of descriptor 2; None without a stderr or without room for the file (then nothing is held back)."""
    try:
        captured = tempfile.TemporaryFile()
    except OSError:
        return None
    try:
        return captured, os.dup(2)
    except OSError:
        captured.close()
        return None


def _flush_python_streams() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        if stream is not None:
            with suppress(OSError, ValueError):  # closed or broken: nothing buffered to lose
                stream.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def import_tensorflow() -> ModuleType:
    """``import tensorflow``, without the banner lines it prints on stderr (every lesson's setup cell)."""
    if "tensorflow" in sys.modules or wants_info_logs():
        return importlib.import_module("tensorflow")
    with stderr_without_banner():
        return importlib.import_module("tensorflow")
