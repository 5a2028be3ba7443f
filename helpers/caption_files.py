"""Caption and split files as people have them: Flickr8k's token file, Kaggle's captions.txt (lesson 01).

Each reader returns a table ``image, caption`` and skips what it cannot read with one note
naming the lines, so a hand-made or re-saved file loads instead of failing.
"""

from __future__ import annotations

import re
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
    rows, bad = [], []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        image = TOKEN_SUFFIX.sub("", key.strip())
        if not tab or not caption.strip() or not image:
            bad.append(number)
            continue
        rows.append((image, caption.strip()))
    _note_bad(path, bad, "no tab or no caption")
    return pd.DataFrame(rows, columns=["image", "caption"])


def read_split_file(path: Path) -> list[str]:
    """One image name per line; blank lines ignored."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def read_captions_csv(path: Path) -> pd.DataFrame:
    """Parse a Kaggle-style ``captions.txt`` into ``image, caption``.

    Kaggle's file is ``image,caption`` under a header line, with commas inside captions left
    unquoted, so a line splits at its first comma. Also read: a file without the header,
    CSV-quoted captions (``"a dog, wet"``, quotes inside doubled), token-file lines
    (``IMAGE.jpg#0<TAB>caption``) saved under this name, Flickr30k's ``image| N| caption``
    lines, blank lines and Windows line ends. Other lines are skipped with a note.
    """
    rows, bad = [], []
    lines = [(number, line) for number, line in enumerate(read_text(path).splitlines(), start=1) if line.strip()]
    for number, line in lines:
        row = caption_row(line)
        if row is None:
            bad.append(number)
        elif number != lines[0][0] or Path(row[0]).suffix:  # a first line without a file name is the header
            rows.append(row)
    _note_bad(path, bad, "no image name and caption")
    return pd.DataFrame(rows, columns=["image", "caption"])


def caption_row(line: str) -> tuple[str, str] | None:
    """``(image, caption)`` from one line of a captions file (see :func:`read_captions_csv`), or None."""
    head = line.split(",", 1)[0]
    if "\t" in head:
        image, _, caption = line.partition("\t")
    elif "|" in head:  # Flickr30k: image| comment_number| comment
        parts = line.split("|", 2)
        image, caption = (parts[0], parts[2]) if len(parts) == 3 else ("", "")
    else:
        image, _, caption = line.partition(",")
    image, caption = TOKEN_SUFFIX.sub("", image.strip().strip('"')), caption.strip()
    if len(caption) > 1 and caption[0] == caption[-1] == '"':
        caption = caption[1:-1].replace('""', '"').strip()
    return (image, caption) if image and caption else None


def _note_bad(path: Path, lines: list[int], why: str) -> None:
    if lines:
        print(f"Note: skipped {len(lines)} malformed line(s) in {path.name} ({why}): line(s) {lines[:5]}.")
