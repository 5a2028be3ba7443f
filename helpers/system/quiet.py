"""Import TensorFlow without the start-up lines it writes to stderr, keeping everything else (every setup cell).

:func:`import_tensorflow` catches stderr in a file while TensorFlow loads, then writes back all but those lines.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from contextlib import suppress
from types import ModuleType

#: The start-up lines: abseil's first line, then oneDNN's in abseil's format or TensorFlow's older one.
BANNER = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|(I\d{4} [\d:.]+ +\d+ |[\d-]+ [\d:.]+: I \S*)port\.cc:\d+\] oneDNN custom operations are on\..*"
)


def is_banner(line: bytes) -> bool:
    """Whether one line written to stderr is one of TensorFlow's start-up lines."""
    return BANNER.fullmatch(line.rstrip(b"\r\n")) is not None


def _flush() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        with suppress(AttributeError, OSError, ValueError):  # no stream, or a closed one: nothing to flush
            stream.flush()


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` without its start-up lines on stderr (every lesson's setup cell)."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    if "tensorflow" in sys.modules or not level.isdigit() or int(level) < 1:
        return importlib.import_module("tensorflow")
    _flush()
    try:
        caught, saved = tempfile.TemporaryFile(), os.dup(2)
    except OSError:  # no stderr, or no room for the file: hold nothing back
        return importlib.import_module("tensorflow")
    with caught:
        os.dup2(caught.fileno(), 2)
        try:
            return importlib.import_module("tensorflow")
        finally:
            _flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = memoryview(b"".join(line for line in caught.read().splitlines(True) if not is_banner(line)))
            with suppress(OSError):  # stderr gone meanwhile: nowhere to report to
                while kept:
                    kept = kept[os.write(2, kept) :]
