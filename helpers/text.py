"""Caption cleaning and the vocabulary (lesson 02).

Captions are cleaned with the classic Flickr8k tutorials' rules (but "a" is kept) and wrapped
in ``startseq ... endseq``. The vocabulary keeps the words seen at least ``min_count`` times in
the *training* captions only: counting dev or test captions would leak the evaluation into
the model. Keras 3 has no ``Tokenizer``; :class:`Vocabulary` is a small Python class whose
every rule can be read (lesson 02 says why not ``TextVectorization``).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from helpers.datasets import Dataset
from helpers.system.errors import CourseError
from helpers.system.files import atomic_path, read_json, write_json

START = "startseq"
END = "endseq"
PAD = "<pad>"

#: Unicode categories removed from inside a token: punctuation (P*), symbols (S*),
#: combining accents (Mn, after NFKD decomposition) and invisible format/control characters.
_DROPPED_CATEGORIES = ("P", "S", "Mn", "Cf", "Cc")


def _strip_token(token: str) -> str:
    """A token without accents, punctuation and symbols: "Dog's" -> "dogs", "café" -> "cafe"."""
    decomposed = unicodedata.normalize("NFKD", token).lower()
    return "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith(_DROPPED_CATEGORIES))


def clean_caption(text: str) -> str:
    """Clean one raw caption (lesson 02): the classic Flickr8k rules, made unicode-safe.

    Lower case; punctuation removed *inside* tokens ("dog's" -> "dogs", "t-shirt" -> "tshirt"),
    unicode punctuation and accents too ("café" -> "cafe"); tokens with a digit or another
    non-letter dropped, and 1-letter tokens but "a". Nothing left gives ``""``.
    """
    tokens = (_strip_token(token) for token in text.split())
    return " ".join(t for t in tokens if t.isalpha() and (len(t) > 1 or t == "a"))


def wrap(clean: str) -> str:
    """Put ``startseq`` and ``endseq`` around a cleaned caption (lesson 02)."""
    return f"{START} {clean} {END}" if clean else f"{START} {END}"


class Vocabulary:
    """Words <-> integer ids, built from the training captions (lesson 02).

    ``words[i]`` is the word of id ``i``; id 0 is padding (``"<pad>"``), then the words by
    descending training count (ties alphabetical). ``len(vocab)`` counts padding: it is the
    Embedding's ``input_dim`` and the softmax size. ``max_len`` is the number of ids of the
    longest encoded training caption, ``startseq`` and ``endseq`` included.
    """

    def __init__(self, words: list[str], counts: dict[str, int], max_len: int, min_count: int) -> None:
        if not words or words[0] != PAD or START not in words or END not in words:
            raise CourseError(f"A vocabulary needs {PAD!r} at index 0 and both {START!r} and {END!r}.")
        self.words = list(words)
        self.index = {word: i for i, word in enumerate(self.words)}
        self.counts = dict(counts)
        self.max_len = int(max_len)
        self.min_count = int(min_count)

    @classmethod
    def build(cls, wrapped_captions: Iterable[str], min_count: int = 10) -> Vocabulary:
        """Keep the words seen at least ``min_count`` times in these (training!) captions.

        ``startseq`` and ``endseq`` are kept whatever their count: decoding needs them.
        """
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
        words = []
        for i in map(int, ids):
            if i == self.end_id:
                break
            if i not in (0, self.start_id):
                words.append(self.words[i])
        return " ".join(words)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as readable JSON, atomically."""
        write_json(
            path, {"min_count": self.min_count, "max_len": self.max_len, "words": self.words, "counts": self.counts}
        )

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
    """Cleaned captions (a column ``tokens`` added) and the training split's vocabulary, as lesson 02 makes them.

    Saved as ``captions.csv`` and ``vocab.json`` in ``folder`` (default: the dataset's
    ``artifacts_dir``) and reused while the dataset's captions and ``min_count`` stay the same.
    """
    folder = Path(folder) if folder is not None else dataset.artifacts_dir
    cached = _cached_text(folder, dataset, min_count)
    if cached is not None:
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
