"""Your own photos: from a file, a URL or an upload, captioned by a trained bundle (lesson 08).

A learner's files are only read: downloads and uploads go to a folder of the course's, each
under a name of its own. A web page saved as ``.jpg``, an iPhone HEIC photo or an image too
large to open gets one line saying what to do, and the others are still captioned.
``python -m helpers caption`` and lesson 12's page use the same code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from helpers.data.download import download
from helpers.data.images import inspect_image
from helpers.decoding import beam_search, greedy
from helpers.features import extract_features
from helpers.model import Bundle
from helpers.system.errors import CourseError

#: Seconds to wait for a photo's server: a photo is small, and a learner is waiting.
PHOTO_TIMEOUT_S = 15


def url_file_name(url: str) -> str:
    """A file name for the photo at ``url``: a short hash of the whole URL, then its last part.

    Two different URLs never share a name (so a new URL is fetched, not the previous photo
    captioned again); the same URL always gets the same name (so it is fetched once).
    """
    last = unquote(Path(urlparse(url).path).name) or "photo"
    last = re.sub(r"[^A-Za-z0-9_.-]+", "-", last)[-60:]
    return f"{hashlib.sha1(url.encode('utf-8')).hexdigest()[:10]}-{last}"


def fetch_photo(url: str, folder: str | Path) -> Path:
    """Download the image at ``url`` into ``folder`` once (lesson 08); a CourseError says what went wrong.

    An HTTP error names its status (404: no such file there); a web page served instead
    of an image is deleted and explained; an unreachable server says so.
    """
    path = download(url, Path(folder) / url_file_name(url), desc="photo", timeout=PHOTO_TIMEOUT_S)
    problem = inspect_image(path).problem
    if problem:
        path.unlink()
        raise CourseError(
            f"{url} did not give an image: {problem}. Use the address of the image itself "
            "(right-click the picture > Copy image address)."
        )
    return path


def photos_in(folder: str | Path) -> list[Path]:
    """The files in ``folder`` that could be photos: no hidden files, no interrupted ``.part`` downloads (lesson 08)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".part")


def save_upload(name: str, content: bytes, folder: str | Path) -> Path:
    """Save an uploaded file into ``folder`` under its own (cleaned) name, never outside it (lesson 08)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name).lstrip(".") or "upload"
    path = Path(folder) / safe
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def caption_photos(
    paths: Iterable[str | Path],
    bundle: Bundle,
    beam_width: int = 1,
    *,
    precision: str = "auto",
    precision_record: Path | None = None,
) -> tuple[dict[Path, str], dict[Path, str]]:
    """Caption image files: ``({path: caption}, {path: why it was skipped})``, keyed by ``Path(p)`` (lesson 08).

    Features are made as the model's training features were (the bundle records the CNN
    weights); ``beam_width`` 1 is greedy, more is beam search; ``precision`` is the extraction's.
    """
    if beam_width < 1:
        raise CourseError(f"The beam width must be 1 (greedy) or more, got {beam_width}.")
    paths = [Path(p) for p in paths]
    grid = bundle.feature_kind == "grid"
    features = extract_features(
        paths, weights=bundle.info["cnn_weights"], precision=precision, precision_record=precision_record, grid=grid
    )
    captions: list[str] = []
    if len(features):
        if beam_width == 1:
            captions = greedy(bundle.captioner, bundle.vocab, features.features)
        else:
            captions = beam_search(bundle.captioner, bundle.vocab, features.features, beam_width=beam_width)
    by_name = dict(zip(features.images, captions))  # features name images by file name
    captioned = {p: by_name[p.name] for p in paths if p.name in by_name}
    skipped = {p: features.skipped[p.name] for p in paths if p.name in features.skipped}
    return captioned, skipped
