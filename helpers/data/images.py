"""Image files: which ones can be used, and reading them upright (lesson 01).

:func:`check_images` checks a dataset once, remembering each verdict with the file's size and time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from helpers.system.files import read_json, stamp, write_json

#: Formats TensorFlow's ``decode_image`` reads (MPO is the JPEG variant many cameras write).
TF_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP")
#: Other formats Pillow reads: the feature pipeline converts them to PNG first.
PIL_ONLY_FORMATS = ("TIFF", "HEIF", "AVIF", "JPEG2000", "PPM", "TGA", "ICO")
HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")
HEIC_HINT = "an HEIC photo (iPhone): save it as JPEG (or run `pip install pillow-heif` and try again)"

try:  # HEIC photos become readable when the learner installs pillow-heif
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:
    pass


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the header says: ``problem`` (None if usable), format, and EXIF ``orientation`` (1 = upright)."""

    problem: str | None
    format: str | None = None
    orientation: int = 1


def _not_an_image(path: Path) -> str:
    """Why Pillow does not recognise a file, from its first bytes."""
    with open(path, "rb") as file:
        head = file.read(64)
    if not head:
        return "empty file"
    if head[4:8] == b"ftyp" and head[8:12] in HEIC_BRANDS:
        return HEIC_HINT
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "a web page, not an image (a link to a page instead of to the image?)"
    return "not an image file"


def inspect_image(path: str | os.PathLike) -> ImageInfo:
    """Read an image's header only: usable or not (and why), format, EXIF orientation (lesson 03)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            kind = image.format
            orientation = int(image.getexif().get(0x0112, 1) or 1)  # 0x0112: the EXIF Orientation tag
    except FileNotFoundError:
        return ImageInfo("file not found")
    except IsADirectoryError:
        return ImageInfo("a folder, not an image file")
    except Image.DecompressionBombError as error:
        return ImageInfo(f"too large to open safely ({error}); shrink it below 89 megapixels")
    except UnidentifiedImageError:
        return ImageInfo(_not_an_image(path))
    except (OSError, SyntaxError, ValueError) as error:
        return ImageInfo(f"cannot be read ({error})")
    if kind not in TF_FORMATS + PIL_ONLY_FORMATS:
        return ImageInfo(f"{kind} images are not supported: save it as JPEG or PNG", kind)
    return ImageInfo(None, kind, orientation if 1 <= orientation <= 8 else 1)


#: How a whole file of each format ends: JPEG's end-of-image marker, PNG's IEND chunk.
END_MARKERS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}


def _ends_whole(path: Path, kind: str | None) -> bool:
    """Whether the file ends with its format's end marker (trailing zero bytes allowed)."""
    marker = END_MARKERS.get(kind)
    if marker is None:
        return False
    with open(path, "rb") as file:
        file.seek(max(0, path.stat().st_size - 64))
        return file.read().rstrip(b"\x00").endswith(marker)


def check_image(path: str | os.PathLike) -> ImageInfo:
    """:func:`inspect_image`, then whether the file is whole: its end marker, or a reduced-size decode (lesson 01)."""
    info = inspect_image(path)
    if info.problem or _ends_whole(Path(path), info.format):
        return info
    try:
        with Image.open(path) as image:
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))  # JPEG: decode at 1/8 size
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        reason = str(error)
        return ImageInfo("truncated file" if "truncated" in reason else f"cannot be decoded ({reason})", info.format)
    return info


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """An image as upright RGB (EXIF orientation applied), ready to show or to process (lesson 01)."""
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def check_images(
    paths: Iterable[Path], record: Path | None = None, earlier: Path | None = None
) -> dict[Path, ImageInfo]:
    """:func:`check_image` of every path, in threads, remembering the verdicts in ``record`` (JSON) (lesson 01);
    a file whose size and time match the record (or, while there is none, the ``earlier`` one) is not opened again."""
    paths = list(paths)
    source = record if record is not None and record.exists() else earlier
    known = read_json(source) if source is not None and source.exists() else {}
    stamps = {path: stamp(path) for path in paths}
    results, todo = {}, []
    for path in paths:
        entry = known.get(path.name)
        if entry is not None and entry["stamp"] == stamps[path] and stamps[path] is not None:
            results[path] = ImageInfo(entry["problem"], entry["format"], entry["orientation"])
        else:
            todo.append(path)
    if todo:
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            checked = zip(todo, pool.map(check_image, todo))
            results.update(tqdm(checked, total=len(todo), desc="checking images", unit="img", disable=len(todo) < 500))
    if record is not None and todo:
        entries = {path.name: {"stamp": stamps[path], **dataclasses.asdict(info)} for path, info in results.items()}
        write_json(record, {**known, **entries})
    return results
