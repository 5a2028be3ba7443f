"""Caption and split files as people have them: Flickr8k's token file, Kaggle's captions.txt (lesson 01).

Each reader returns a table ``image, caption`` and skips the lines it cannot read with one note.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

TOKEN_SUFFIX = re.compile(r"#\d+$")  # Flickr8k's "IMAGE.jpg#N": the N-th caption of the image


def read_text(path: Path) -> str:
    """A text file as UTF-8 (a byte-order mark dropped), or Latin-1 (with a note) when it is not valid UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        print(f"Note: {path.name} is not UTF-8; read it as Latin-1.")
        return raw.decode("latin-1")


def read_token_file(path: Path) -> pd.DataFrame:
    """Parse ``IMAGE.jpg#N<TAB>caption`` lines into ``image, caption``, skipping bad lines."""
    return _read_rows(path, _token_row, "no tab or no caption")


def read_split_file(path: Path) -> list[str]:
    """One image name per line; blank lines ignored."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def read_captions_csv(path: Path) -> pd.DataFrame:
    """Parse a Kaggle-style ``captions.txt`` (``image,caption`` lines under a header) into ``image, caption``;
    also no header, CSV-quoted captions, token-file lines and Flickr30k's ``image| N| caption``."""
    return _read_rows(path, caption_row, "no image name and caption", header=True)


def caption_row(line: str) -> tuple[str, str] | None:
    """``(image, caption)`` from one line of a captions file (see :func:`read_captions_csv`), or None."""
    head = line.split(",", 1)[0]
    if "\t" in head:
        return _token_row(line)
    if "|" in head:  # Flickr30k: image| comment_number| comment
        parts = line.split("|", 2)
        image, caption = (parts[0], parts[2]) if len(parts) == 3 else ("", "")
    else:
        image, _, caption = line.partition(",")
    image, caption = TOKEN_SUFFIX.sub("", image.strip().strip('"')), caption.strip()
    if len(caption) > 1 and caption[0] == caption[-1] == '"':
        caption = caption[1:-1].replace('""', '"').strip()
    return (image, caption) if image and caption else None


def _token_row(line: str) -> tuple[str, str] | None:
    key, tab, caption = line.partition("\t")
    image, caption = TOKEN_SUFFIX.sub("", key.strip()), caption.strip()
    return (image, caption) if tab and image and caption else None


def _read_rows(
    path: Path, parse: Callable[[str], tuple[str, str] | None], why: str, header: bool = False
) -> pd.DataFrame:
    """The rows ``parse`` makes of the file's non-blank lines (but a ``header``), the others named in one note."""
    rows, bad = [], []
    lines = [(number, line) for number, line in enumerate(read_text(path).splitlines(), start=1) if line.strip()]
    for number, line in lines:
        row = parse(line)
        if row is None:
            bad.append(number)
        elif not (header and number == lines[0][0] and not Path(row[0]).suffix):
            rows.append(row)
    if bad:
        print(f"Note: skipped {len(bad)} malformed line(s) in {path.name} ({why}): line(s) {bad[:5]}.")
    return pd.DataFrame(rows, columns=["image", "caption"])
