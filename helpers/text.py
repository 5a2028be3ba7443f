"""Caption cleaning and the vocabulary (lesson 02).

Captions are cleaned with the classic Flickr8k rules (but "a" is kept); :class:`Vocabulary` counts training captions.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from helpers.datasets import Dataset
from helpers.system.errors import CourseError
from helpers.system.files import atomic_path, read_json, write_json

START, END, PAD = "startseq", "endseq", "<pad>"

#: Unicode categories removed inside a token: punctuation, symbols, accents (after NFKD), format and control.
_DROPPED_CATEGORIES = ("P", "S", "Mn", "Cf", "Cc")


def _strip_token(token: str) -> str:
    """A token without accents, punctuation and symbols: "Dog's" -> "dogs", "café" -> "cafe"."""
    decomposed = unicodedata.normalize("NFKD", token).lower()
    return "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith(_DROPPED_CATEGORIES))


def clean_caption(text: str) -> str:
    """Clean one raw caption (lesson 02): lower case, punctuation and accents removed inside tokens ("dog's" ->
    "dogs", "café" -> "cafe"), tokens with another non-letter dropped, and 1-letter ones but "a"; may give ``""``."""
    tokens = (_strip_token(token) for token in text.split())
    return " ".join(t for t in tokens if t.isalpha() and (len(t) > 1 or t == "a"))


def wrap(clean: str) -> str:
    """Put ``startseq`` and ``endseq`` around a cleaned caption (lesson 02)."""
    return f"{START} {clean} {END}" if clean else f"{START} {END}"


class Vocabulary:
    """Words <-> integer ids, built from the training captions (lesson 02): id 0 is padding, then the words by
    training count; ``max_len`` counts the ids of the longest training caption, ``startseq`` and ``endseq`` too."""

    def __init__(self, words: list[str], counts: dict[str, int], max_len: int, min_count: int) -> None:
        if not words or words[0] != PAD or START not in words or END not in words:
            raise CourseError(f"A vocabulary needs {PAD!r} at index 0 and both {START!r} and {END!r}.")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        self.counts = dict(counts)
        self.max_len, self.min_count = int(max_len), int(min_count)

    @classmethod
    def build(cls, wrapped_captions: Iterable[str], min_count: int = 10) -> Vocabulary:
        """Keep ``startseq``, ``endseq`` and the words seen ``min_count`` times in these (training!) captions."""
        captions = list(wrapped_captions)
        counts = Counter(word for caption in captions for word in caption.split())
        kept = [w for w, n in counts.items() if n >= min_count or w in (START, END)]
        kept.sort(key=lambda w: (-counts[w], w))
        vocab = cls([PAD, *kept], {w: counts[w] for w in kept}, max_len=0, min_count=min_count)
        vocab.max_len = max((len(vocab.encode(c)) for c in captions), default=2)
        return vocab

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index and word != PAD

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids incl. padding, min_count={self.min_count}, max_len={self.max_len})"

    @property
    def start_id(self) -> int:
        """Id of ``startseq``."""
        return self.index[START]

    @property
    def end_id(self) -> int:
        """Id of ``endseq``."""
        return self.index[END]

    def encode(self, wrapped: str) -> list[int]:
        """Ids of a wrapped caption's words; out-of-vocabulary words are DROPPED (as Keras 2's Tokenizer did)."""
        return [self.index[w] for w in wrapped.split() if w in self]

    def decode(self, ids: Iterable[int]) -> str:
        """Words of some ids joined by spaces: padding and ``startseq`` skipped, stop at ``endseq``."""
        before_end = itertools.takewhile(lambda i: i != self.end_id, map(int, ids))
        return " ".join(self.words[i] for i in before_end if i not in (0, self.start_id))

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as readable JSON, atomically."""
        data = {"min_count": self.min_count, "max_len": self.max_len, "words": self.words, "counts": self.counts}
        write_json(path, data)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`."""
        try:
            data = read_json(path)
            return cls(data["words"], data["counts"], data["max_len"], data["min_count"])
        except FileNotFoundError:
            raise CourseError(f"{path} not found: run lesson 02 (or helpers.text.prepare_text) first.") from None
        except (ValueError, KeyError, TypeError):
            raise CourseError(
                f"{path} is not a vocabulary saved by helpers.text: delete it and run lesson 02 again."
            ) from None


def _cached_text(folder: Path, dataset: Dataset, min_count: int) -> tuple[pd.DataFrame, Vocabulary] | None:
    """The saved captions table and vocabulary, if both exist and match this dataset and min_count."""
    table_path, vocab_path = folder / "captions.csv", folder / "vocab.json"
    if not (table_path.exists() and vocab_path.exists()):
        print(f"{table_path.name} or {vocab_path.name} not found in {folder}: building them as lesson 02 does.")
        return None
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    vocab = Vocabulary.load(vocab_path)
    columns = ["image", "caption", "split"]
    same = {*columns, "tokens"} <= set(table.columns) and table[columns].astype(str).equals(
        dataset.captions[columns].astype(str).reset_index(drop=True)
    )
    if not same or vocab.min_count != min_count:
        print(
            f"The saved captions in {folder} were made from other captions or another min_count: "
            "rebuilding them as lesson 02 does."
        )
        return None
    return table, vocab


def prepare_text(
    dataset: Dataset, min_count: int = 10, folder: str | Path | None = None
) -> tuple[pd.DataFrame, Vocabulary]:
    """Captions with a cleaned ``tokens`` column, and the training vocabulary (lesson 02); cached in ``folder``."""
    folder = Path(folder) if folder is not None else dataset.artifacts_dir
    if (cached := _cached_text(folder, dataset, min_count)) is not None:
        return cached
    table = dataset.captions.reset_index(drop=True)
    table = table.assign(tokens=[wrap(clean_caption(c)) for c in table["caption"]])
    training = table.loc[table["split"] == "train", "tokens"]
    if training.empty:
        raise CourseError(f"Dataset {dataset.name!r} has no training captions to build a vocabulary from.")
    vocab = Vocabulary.build(training, min_count=min_count)
    with atomic_path(folder / "captions.csv") as tmp:
        table.to_csv(tmp, index=False)
    vocab.save(folder / "vocab.json")
    print(f"Saved {len(table)} cleaned captions and a vocabulary of {len(vocab)} ids to {folder}.")
    return table, vocab
