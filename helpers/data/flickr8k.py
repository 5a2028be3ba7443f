"""Flickr8k's archives and layout (lesson 01; Hodosh, Young & Hockenmaier 2013, JAIR 47).

:func:`prepare_flickr8k` downloads the two archives and unpacks them once; the text one serves lessons 02 and 04.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers.data.download import download, unzip

ARCHIVES = {
    "Flickr8k_Dataset.zip": "f18a1e2920de5bd84dae7cf08ec78978",  # about 1 GB of JPEGs
    "Flickr8k_text.zip": "bf6c1abcb8e4a833b7f922104de18627",  # 2.2 MB: captions and split lists
}
IMAGES_FOLDER = "Flicker8k_Dataset"  # really spelled "Flicker"
TOKEN_FILE = "Flickr8k.token.txt"  # lines IMAGE.jpg#N<TAB>caption, N = 0..4
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
SPLITS = tuple(SPLIT_FILES)
#: What a complete download holds; the loader checks it and says what differs.
COUNTS = {"images": 8091, "train": 6000, "dev": 1000, "test": 1000}
IMAGES_ARCHIVE, TEXT_ARCHIVE = ARCHIVES


def has_text(root: Path) -> bool:
    """Whether ``root`` holds the unpacked captions and split lists."""
    return all((root / name).exists() for name in (TOKEN_FILE, *SPLIT_FILES.values()))


def is_prepared(root: Path) -> bool:
    """Whether ``root`` holds the unpacked images, captions and split lists."""
    return has_text(root) and (root / IMAGES_FOLDER).is_dir()


def prepare_flickr8k(archives_dir: Path, root: Path, url: str, images: bool = True) -> Path:
    """Download the archives from ``url`` (a mirror's base URL) into ``archives_dir`` and unpack them into ``root``
    once; return ``root``. ``images=False`` fetches only the text archive when the images are not there yet."""
    for archive in [TEXT_ARCHIVE, IMAGES_ARCHIVE] if images else [TEXT_ARCHIVE]:
        if not (is_prepared(root) if archive == IMAGES_ARCHIVE else has_text(root)):
            _unpack(download(f"{url}/{archive}", archives_dir / archive, md5=ARCHIVES[archive]), root)
    return root


def _unpack(archive: Path, root: Path) -> None:
    """Unzip into a scratch folder, then move the Flickr8k files into ``root`` (Apple's ``._*`` files left out)."""
    scratch = unzip(archive, root / f".extract-{archive.stem}", lambda member: "/._" not in f"/{member}")
    for wanted in [IMAGES_FOLDER, TOKEN_FILE, *SPLIT_FILES.values()]:
        for found in scratch.rglob(wanted):
            if not (root / wanted).exists():
                found.rename(root / wanted)
            break
    shutil.rmtree(scratch, ignore_errors=True)
