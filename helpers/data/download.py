"""Resumable, checksummed downloads with a progress bar; zip extraction; Keras' ResNet50 weights (lessons 01, 03).

A download goes to ``<name>.part``, resumed by the next attempt; only a whole file with the right MD5 is kept.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from helpers.system.errors import CourseError

CHUNK = 1 << 20
TIMEOUT_S = 60


def md5sum(path: str | os.PathLike) -> str:
    """MD5 of a file, read in chunks (archives can be larger than memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "caption-course"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # nothing left to send: the .part file is complete
            return None
        raise CourseError(f"Download failed: the server answered HTTP {error.code} for {url}.") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise CourseError(
            f"Cannot reach {url} ({reason}). Check the network, or work offline with CAPTION_DATASET=shapes."
        ) from None


def download(
    url: str, dest: str | os.PathLike, md5: str | None = None, desc: str | None = None, timeout: float = TIMEOUT_S
) -> Path:
    """Download ``url`` to ``dest`` unless it exists, resuming a ``.part`` file; check its MD5; raise CourseError."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    response = _open(url, start, timeout)
    if response is not None:
        with response:
            if start and response.status != 206:  # the server ignored Range: start over
                start = 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            _copy(response, part, start, total, desc or dest.name, url)
    if md5 is not None:
        actual = md5sum(part)
        if actual != md5:
            part.unlink()
            raise CourseError(
                f"{dest.name} is corrupt (MD5 {actual}, expected {md5}); it was deleted, run again to download it anew."
            )
    os.replace(part, dest)
    return dest


def _copy(response, part: Path, start: int, total: int | None, desc: str, url: str) -> None:
    done = start
    try:
        with (
            open(part, "ab" if start else "wb") as out,
            tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=desc) as bar,
        ):
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                done += len(block)
                bar.update(len(block))
    except (OSError, http.client.HTTPException) as error:
        if getattr(error, "errno", None) == errno.ENOSPC:
            raise CourseError(f"The disk is full while downloading to {part}: free some space and run again.") from None
        raise CourseError(
            f"Download of {url} interrupted after {done:,} bytes ({error}); run again to resume."
        ) from None
    if total is not None and done < total:
        raise CourseError(
            f"Download of {url} stopped after {done:,} of {total:,} bytes; run again to resume where it stopped."
        )


def unzip(archive: Path, scratch: Path, keep: Callable[[str], bool] = lambda member: True) -> Path:
    """Extract the members ``keep`` accepts into a fresh ``scratch`` folder, with their times; delete a bad archive."""
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if keep(m.filename) and not m.filename.startswith("__MACOSX")]
            for member in members:
                target = Path(zipped.extract(member, scratch))
                if not member.is_dir():
                    moment = time.mktime((*member.date_time, 0, 0, -1))
                    os.utime(target, (moment, moment))
    except zipfile.BadZipFile:
        archive.unlink()
        raise CourseError(
            f"{archive.name} is not a valid zip archive; it was deleted, run again to download it anew."
        ) from None
    except OSError as error:
        shutil.rmtree(scratch, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise CourseError(
                f"The disk is full while extracting {archive.name} into {scratch.parent}: free some space."
            ) from None
        raise CourseError(f"Extracting {archive.name} into {scratch.parent} failed ({error}).") from None
    return scratch


WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{WEIGHTS_FILE}"


def imagenet_weights_path() -> Path:
    """Where Keras keeps the ResNet50 ImageNet weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    return home / "models" / WEIGHTS_FILE


def imagenet_weights_file() -> Path:
    """Keras' cached ResNet50 ImageNet weights (no top), downloaded on first use; else one error with three fixes."""
    path = imagenet_weights_path()
    if not path.exists():
        try:
            download(WEIGHTS_URL, path, md5=WEIGHTS_MD5, desc="ResNet50 ImageNet weights")
        except (CourseError, OSError) as error:
            raise CourseError(
                f"The ResNet50 ImageNet weights are not in {path.parent} and cannot be downloaded ({error}). "
                f"Fix it one of three ways: connect to the internet once and run again; "
                f"or copy {WEIGHTS_FILE} (MD5 {WEIGHTS_MD5}) into {path.parent}; "
                f"or set CAPTION_CNN_WEIGHTS=none to use random weights (everything runs, captions get worse)."
            ) from None
    elif md5sum(path) != WEIGHTS_MD5:
        raise CourseError(
            f"{path} is damaged (its MD5 is not {WEIGHTS_MD5}): delete it and run again to download it anew."
        )
    return path
