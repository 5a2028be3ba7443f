"""Google Colab: lessons that continue each other on fresh VMs, and the versions Colab ships (every setup cell).

:func:`keep_on_drive` keeps the course's data on Google Drive, so each lesson's new VM finds the last one's.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

DRIVE_MOUNT = "/content/drive"
DRIVE_FOLDER = f"{DRIVE_MOUNT}/MyDrive/caption-course"
LOCAL_FOLDER = "/content/caption-data"
#: The oldest versions the helpers are tested with (``make test-compat``): Colab's through 2025.
SUPPORTED = {"python": "3.11", "tensorflow": "2.19", "keras": "3.10", "numpy": "2.0", "pandas": "2.2"}


def keep_on_drive(
    mount: Callable[[str], object] | None = None, folder: str = DRIVE_FOLDER, unpack_to: str = LOCAL_FOLDER
) -> Path:
    """Mount Google Drive (with ``mount``) and keep the course's data there, unless ``CAPTION_DATA_DIR`` is set."""
    if mount is None:
        from google.colab import drive

        mount = drive.mount
    mount(DRIVE_MOUNT)
    os.environ.setdefault("CAPTION_DATA_DIR", folder)
    os.environ.setdefault("CAPTION_UNPACK_DIR", unpack_to)
    data = Path(os.environ["CAPTION_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    print(
        f"Course data kept on Google Drive in {data} (archives, features, models); "
        f"images unpacked to {os.environ['CAPTION_UNPACK_DIR']} on this VM."
    )
    return data


def _release(version: str) -> tuple[int, ...]:
    """``"2.19.0rc1"`` -> ``(2, 19)``: the release numbers that decide support."""
    parts = itertools.takewhile(lambda part: part[:1].isdigit(), version.split(".")[:2])
    return tuple(int("".join(filter(str.isdigit, part))) for part in parts)


def too_old(found: dict[str, str], supported: dict[str, str] = SUPPORTED) -> list[str]:
    """The packages of ``found`` (name -> version) older than ``supported``, as ``"keras 3.8 (needs 3.10+)"``."""
    return [
        f"{name} {found[name]} (needs {floor}+)"
        for name, floor in supported.items()
        if name in found and _release(found[name]) < _release(floor)
    ]
