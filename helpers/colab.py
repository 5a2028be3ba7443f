"""Google Colab: lessons that continue each other on fresh VMs, and the versions Colab ships (every setup cell).

Every lesson's Colab badge opens a new virtual machine, and whatever the last lesson
made on the old one is gone. With ``KEEP_ON_DRIVE = True`` in the setup cell,
:func:`keep_on_drive` mounts Google Drive and points the course's data folder
(``CAPTION_DATA_DIR``) at a folder there: the downloaded archives, the image features,
the vocabulary and the trained models then survive from lesson to lesson. The 8,091
Flickr8k images themselves are unpacked from the archive to the VM's own disk
(``CAPTION_UNPACK_DIR``), which takes seconds, because reading thousands of small files
from Drive is slow.

:func:`too_old` says which installed packages are older than the course supports
(:data:`SUPPORTED`); the setup cell prints it in one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

#: Where the course keeps its data on Google Drive, and where the images are unpacked on the VM.
DRIVE_MOUNT = "/content/drive"
DRIVE_FOLDER = f"{DRIVE_MOUNT}/MyDrive/caption-course"
LOCAL_FOLDER = "/content/caption-data"

#: The oldest versions the helpers are tested with (``make test-compat``): Colab's through 2025.
SUPPORTED = {"python": "3.11", "tensorflow": "2.19", "keras": "3.10", "numpy": "2.0", "pandas": "2.2"}


def keep_on_drive(
    mount: Callable[[str], object] | None = None, folder: str = DRIVE_FOLDER, unpack_to: str = LOCAL_FOLDER
) -> Path:
    """Mount Google Drive and keep the course's data there; unpack archives to the VM's disk (setup cell).

    ``mount`` is ``google.colab.drive.mount`` (asks for permission the first time). A data
    folder set before (``CAPTION_DATA_DIR``) is kept as it is.
    """
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
    numbers = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def too_old(found: dict[str, str], supported: dict[str, str] = SUPPORTED) -> list[str]:
    """The packages of ``found`` (name -> version) older than ``supported``, as ``"keras 3.8 (needs 3.10+)"``."""
    return [
        f"{name} {found[name]} (needs {floor}+)"
        for name, floor in supported.items()
        if name in found and _release(found[name]) < _release(floor)
    ]
