"""Flickr8k as published: archives, layout, counts, and the figures measured on it (introduced in lesson 01).

Hodosh, Young & Hockenmaier (2013), *Framing Image Description as a Ranking Task*, JAIR 47.
The de facto standard mirror holds two archives; :func:`prepare_flickr8k` downloads them
(resumably, checked by MD5), unpacks them once and checks the counts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers.download import download, unzip

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
BOGUS_ID = "2258277193_586949ec62.jpg.1"  # listed in the token file, no such image
#: The token file's two keys without an image file: the bogus id and the image it copies, absent from the archive.
KEYS_WITHOUT_IMAGE = (BOGUS_ID.removesuffix(".1"), BOGUS_ID)

#: Figures measured on the real Flickr8k text files with this course's cleaning
#: (``helpers.text.clean_caption``) and ``Vocabulary.build(min_count=10)`` on the training split,
#: loaded through ``load_dataset``. Lessons and benchmarks read them from here.
FACTS = {
    "images": 8091,  # in the archive
    "caption_lines": 40460,  # lines of Flickr8k.token.txt
    "ids_in_token_file": 8093,  # 8,092 .jpg names (one of them not in the archive) and the bogus id
    "captions": 40455,  # of the images that exist: five each (5 lines of the 2 keys without an image dropped)
    "images_in_no_split": 91,
    "train_images": 6000,
    "train_captions": 30000,
    "vocab_ids": 1653,  # padding included: the Embedding's input_dim and the softmax size
    "vocab_words": 1652,
    "max_len": 34,  # ids of the longest encoded training caption, startseq and endseq included
    "train_pairs": 339109,  # (image, prefix) -> next word pairs of the classic generator, per epoch
    "leaky_vocab_ids": 1926,  # train, dev and test captions counted (the leak lesson 02 warns about)
    "leaky_max_len": 35,
    "all_images_vocab_ids": 1951,  # the captions of all 8,091 images, the 91 in no split included
    "original_project_words": 1848,  # what the original project reported, with its own cleaning
    "train_captions_losing_a_word": 0.35,  # about: share of training captions with a word below min_count
    "occurrences_of_common_words": 0.958,  # share of training word occurrences (lesson 01's lower-case words) seen 10+ times
}


def is_prepared(root: Path) -> bool:
    """Whether ``root`` holds the unpacked images, captions and split lists."""
    return all(
        path.exists() for path in (root / IMAGES_FOLDER, root / TOKEN_FILE, *(root / f for f in SPLIT_FILES.values()))
    )


def prepare_flickr8k(archives_dir: Path, root: Path, url: str) -> Path:
    """Download the archives into ``archives_dir`` (resumably) and unpack them into ``root`` once; return ``root``.

    ``url`` is the base URL of a mirror (``CAPTION_FLICKR8K_URL``). On Colab with the
    course's data on Google Drive, the archives stay on Drive and ``root`` is the VM's
    own disk: unpacking takes seconds, reading 8,091 small files from Drive would not.
    """
    if is_prepared(root):
        return root
    for archive, md5 in ARCHIVES.items():
        path = download(f"{url}/{archive}", archives_dir / archive, md5=md5)
        _unpack(path, root)
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
