"""Your own photos: from a file, a URL or an upload, captioned by a trained bundle (lesson 08).

A learner's files are only read; a file that is no usable image gets one line saying what to do.
"""

from __future__ import annotations

import functools
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
    """A file name for the photo at ``url``: a short hash of the whole URL (one name per URL), then its last part."""
    last = unquote(Path(urlparse(url).path).name) or "photo"
    last = re.sub(r"[^A-Za-z0-9_.-]+", "-", last)[-60:]
    return f"{hashlib.sha1(url.encode('utf-8')).hexdigest()[:10]}-{last}"


def fetch_photo(url: str, folder: str | Path) -> Path:
    """Download the image at ``url`` into ``folder`` once (lesson 08); a CourseError says what went wrong."""
    path = download(url, Path(folder) / url_file_name(url), desc="photo", timeout=PHOTO_TIMEOUT_S)
    if problem := inspect_image(path).problem:
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
    """Caption image files (lesson 08): ``({path: caption}, {path: why skipped})``; ``beam_width`` 1 is greedy."""
    if beam_width < 1:
        raise CourseError(f"The beam width must be 1 (greedy) or more, got {beam_width}.")
    paths = [Path(p) for p in paths]
    grid = bundle.feature_kind == "grid"
    features = extract_features(
        paths, weights=bundle.info["cnn_weights"], precision=precision, precision_record=precision_record, grid=grid
    )
    decode = greedy if beam_width == 1 else functools.partial(beam_search, beam_width=beam_width)
    captions = decode(bundle.captioner, bundle.vocab, features.features) if len(features) else []
    by_name = dict(zip(features.images, captions))  # features name images by file name
    captioned = {p: by_name[p.name] for p in paths if p.name in by_name}
    skipped = {p: features.skipped[p.name] for p in paths if p.name in features.skipped}
    return captioned, skipped
