"""Scoring captions against human references, and the baselines a model must beat (introduced in lesson 09).

Every score here compares *cleaned* text: :func:`tokens` runs ``helpers.text.clean_caption``
on hypotheses and references alike (lower case, no punctuation, the lesson 02 rules) and
drops ``startseq``/``endseq``. So raw dataset captions ("A dog runs .") and decoder output
("a dog runs") score the same, and a special token left in a hypothesis can never count as
a matched word — one of the ways tutorials inflate BLEU (lesson 09 shows by how much).
The model cannot produce anything the cleaning would remove, so cleaning only makes the
two sides comparable; the references keep their out-of-vocabulary words, as they should.

* BLEU-1..4: NLTK's *corpus* BLEU (n-gram counts summed over all images, then one
  brevity penalty), cumulative weights (1,0,0,0), (1/2,1/2,0,0), (1/3,1/3,1/3,0),
  (1/4,1/4,1/4,1/4), no smoothing — how papers report it.
* CIDEr and ROUGE-L: the scorers of ``pycocoevalcap`` (the COCO caption evaluation code),
  fed our whitespace tokens. pycocoevalcap's CIDEr is CIDEr-D, and it takes its document
  frequencies (how rare an n-gram is) from the references of the images being scored:
  a CIDEr of 200 images and one of 1,000 are not computed on the same scale.
* ``tokenizer="ptb"`` tokenizes both sides as coco-caption does instead (:func:`ptb_tokens`:
  the Stanford PTBTokenizer jar shipped in ``pycocoevalcap``, Java needed), the way
  published Flickr8k and COCO numbers are computed; lesson 09 shows the difference.
* METEOR: ``pycocoevalcap``'s wrapper of the METEOR 1.5 jar (shipped in the pip package);
  it needs Java, and is skipped with a note when Java is missing or the jar fails
  (:func:`helpers.compat.meteor_scorer`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext

import numpy as np
import pandas as pd
from nltk.translate.bleu_score import (
    SmoothingFunction,
    closest_ref_length,
    corpus_bleu,
    modified_precision,
    sentence_bleu,
)
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer import ptbtokenizer

from helpers.compat import meteor_scorer
from helpers.errors import CourseError
from helpers.text import END, START, clean_caption

#: Cumulative BLEU weights: BLEU-n is the geometric mean of the 1..n-gram precisions.
BLEU_WEIGHTS = {
    "BLEU-1": (1.0, 0.0, 0.0, 0.0),
    "BLEU-2": (1 / 2, 1 / 2, 0.0, 0.0),
    "BLEU-3": (1 / 3, 1 / 3, 1 / 3, 0.0),
    "BLEU-4": (1 / 4, 1 / 4, 1 / 4, 1 / 4),
}
#: How :func:`score` may split captions into words: lesson 02's cleaning, or coco-caption's PTB tokenizer.
TOKENIZERS = ("course", "ptb")
#: Sentence-level BLEU of one image needs smoothing (one missing 4-gram would make it 0):
#: Chen & Cherry's method 1 counts a missing n-gram as 0.1 of a match.
_SMOOTHING = SmoothingFunction().method1


def tokens(caption: str) -> list[str]:
    """The words a caption is scored on: cleaned as in lesson 02, ``startseq``/``endseq`` dropped (lesson 09)."""
    return [word for word in clean_caption(caption).split() if word not in (START, END)]


def ptb_tokens(captions: Sequence[str]) -> list[list[str]]:
    """The words coco-caption scores: Stanford's PTBTokenizer, lower-cased, punctuation tokens dropped (lesson 09).

    The same jar, options and punctuation list as ``pycocoevalcap``'s ``PTBTokenizer``, run
    once for all captions (one Java start, about a second), reading them from its input
    instead of a temporary file inside the installed package. Unlike lesson 02's cleaning it
    keeps tokens with digits ("3-year-old") and hyphenated words ("t-shirt"), splits
    "dog's" into "dog 's" and keeps 1-letter words; ``startseq``/``endseq`` are dropped.
    """
    if shutil.which("java") is None:
        raise CourseError(
            "The PTB tokenizer is a Java program and no `java` was found: install a Java runtime "
            "(Colab has one), or score with tokenizer='course'."
        )
    jar = os.path.join(os.path.dirname(ptbtokenizer.__file__), ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    lines = [" ".join(str(caption).split()) for caption in captions]  # one caption per line, as pycocoevalcap does
    command = ["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase"]
    result = subprocess.run(command, input="\n".join(lines), capture_output=True, text=True, encoding="utf-8")
    output = result.stdout.split("\n")
    if result.returncode != 0 or len(output) < len(lines):
        raise CourseError(f"The PTB tokenizer failed (exit status {result.returncode}): {result.stderr.strip()[-300:]}")
    drop = set(ptbtokenizer.PUNCTUATIONS) | {START, END}
    return [[word for word in line.rstrip().split(" ") if word and word not in drop] for line in output[: len(lines)]]


def _tokenized(
    references: Sequence[Sequence[str]], systems: Mapping[str, Sequence[str]], tokenizer: str = "course"
) -> tuple[list, dict[str, list]]:
    """Check the shapes (references per image, a caption per image from each system); tokenize the references once."""
    for hypotheses in systems.values():
        if len(references) != len(hypotheses):
            raise CourseError(
                f"Got references for {len(references)} images but {len(hypotheses)} captions: "
                "one caption per image is needed."
            )
    if not references or any(isinstance(refs, str) or not refs for refs in references):
        raise CourseError("references must be a list with, for each image, a non-empty list of reference captions.")
    if tokenizer not in TOKENIZERS:
        raise CourseError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}.")
    if tokenizer == "course":
        return [[tokens(r) for r in refs] for refs in references], {
            name: [tokens(h) for h in hypotheses] for name, hypotheses in systems.items()
        }
    every_caption = [r for refs in references for r in refs] + [h for hyps in systems.values() for h in hyps]
    words = iter(ptb_tokens(every_caption))  # one line per caption: the same words however they are batched
    refs = [[next(words) for _ in image_refs] for image_refs in references]
    return refs, {name: [next(words) for _ in hypotheses] for name, hypotheses in systems.items()}


def _coco_format(refs: list[list[list[str]]], hyps: list[list[str]]) -> tuple[dict, dict]:
    """The ``{image: [sentence, ...]}`` dictionaries pycocoevalcap's scorers take."""
    return {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}, {i: [" ".join(h)] for i, h in enumerate(hyps)}


def _scores(refs: list, hyps: list, meteor: Callable[[dict, dict], float | None] | None) -> dict[str, float]:
    """All corpus scores of tokenized captions (see :func:`score`)."""
    results = dict(zip(BLEU_WEIGHTS, map(float, corpus_bleu(refs, hyps, weights=list(BLEU_WEIGHTS.values())))))
    gts, res = _coco_format(refs, hyps)
    value = meteor(gts, res) if meteor else None
    if value is not None:
        results["METEOR"] = value
    results["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    results["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return results


def score(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str], meteor: bool = True, tokenizer: str = "course"
) -> dict[str, float]:
    """Corpus scores of one caption per image against that image's references (lesson 09).

    ``references[i]`` is the list of human captions of image i, ``hypotheses[i]`` the
    caption to score. Returns ``BLEU-1`` .. ``BLEU-4``, ``METEOR`` (when Java runs it, else
    a note is printed; ``meteor=False`` skips it: Java takes about 10 s to start it),
    ``ROUGE-L`` and ``CIDEr``, all between 0 and 1 except CIDEr (0 to 10). Papers print
    them x100. ``tokenizer="ptb"`` splits both sides into words as coco-caption does
    (:func:`ptb_tokens`) instead of with lesson 02's cleaning.
    """
    refs, hyps = _tokenized(references, {"": hypotheses}, tokenizer)
    with meteor_scorer() if meteor else nullcontext() as meteor_score:
        return _scores(refs, hyps[""], meteor_score)


def compare(
    references: Sequence[Sequence[str]],
    systems: Mapping[str, Sequence[str]],
    meteor: bool = True,
    tokenizer: str = "course",
) -> pd.DataFrame:
    """:func:`score` of several captioners on the same images, one row each (lesson 09).

    ``systems`` maps a name ("greedy", "beam 3", "nearest neighbour", ...) to its
    captions; METEOR's Java process starts once for all of them.
    """
    refs, tokenized = _tokenized(references, systems, tokenizer)
    with meteor_scorer() if meteor else nullcontext() as meteor_score:
        rows = {name: _scores(refs, hyps, meteor_score) for name, hyps in tokenized.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def per_image_scores(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> pd.DataFrame:
    """One row of scores per image, for lesson 09's histogram and best/worst gallery.

    Columns: ``BLEU-1`` and ``BLEU-4`` (sentence BLEU, smoothed: see ``_SMOOTHING``),
    ``ROUGE-L``, ``CIDEr`` (its word weights still come from all the images given).
    Their means are *not* the corpus scores of :func:`score` (corpus BLEU pools n-gram
    counts before dividing), except for ROUGE-L and CIDEr, which are means already.
    """
    refs, hyps = _tokenized(references, {"": hypotheses})
    hyps = hyps[""]
    gts, res = _coco_format(refs, hyps)
    return pd.DataFrame(
        {
            "BLEU-1": [sentence_bleu(r, h, weights=(1.0,)) for r, h in zip(refs, hyps)],
            "BLEU-4": [sentence_bleu(r, h, smoothing_function=_SMOOTHING) for r, h in zip(refs, hyps)],
            "ROUGE-L": Rouge().compute_score(gts, res)[1],
            "CIDEr": Cider().compute_score(gts, res)[1],
        }
    )


def most_frequent_caption(train_captions: Iterable[str]) -> str:
    """The training caption seen most often, cleaned (ties: alphabetical first) — baseline 1 of lesson 09.

    Giving it to every test image is what a model that ignores the image does at best;
    a captioner has to beat it to show it looks at pictures at all.
    """
    counts = Counter(" ".join(tokens(caption)) for caption in train_captions)
    if not counts:
        raise CourseError("No training captions given: most_frequent_caption needs the training split's captions.")
    return min(counts, key=lambda caption: (-counts[caption], caption))


def consensus_caption(captions: Sequence[str]) -> str:
    """Of one image's captions, the one that agrees most with the others (cleaned; lesson 09).

    Agreement = smoothed sentence BLEU-4 of a caption against its siblings, as in Devlin
    et al. (2015), "Exploring nearest neighbor approaches for image captioning". It skips
    the odd caption out ("a photo of my dog Rex") that the first caption could be.
    """
    tokenized = [tokens(c) for c in captions]
    if len(tokenized) == 1:
        return " ".join(tokenized[0])
    agreement = [
        sentence_bleu(tokenized[:i] + tokenized[i + 1 :], candidate, smoothing_function=_SMOOTHING)
        for i, candidate in enumerate(tokenized)
    ]
    return " ".join(tokenized[int(np.argmax(agreement))])


def _unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, so a dot product is the cosine similarity."""
    features = np.asarray(features, dtype="float32")
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def nearest_neighbour_captions(
    train_features: np.ndarray,
    train_captions: Sequence[Sequence[str]],
    test_features: np.ndarray,
    batch_size: int = 1024,
) -> list[str]:
    """Baseline 2 of lesson 09: each test image gets a caption of its most similar training image.

    Similarity is the cosine of the ResNet50 feature vectors (what the captioner sees too);
    ``train_captions[j]`` holds the captions of training image j, and of those the
    :func:`consensus_caption` is used. How strong retrieval is depends on how often a
    test image has a near-copy among the training images: a model must beat it to show
    it *composes* captions rather than recalls them.
    """
    if len(train_features) != len(train_captions):
        raise CourseError(f"{len(train_features)} training feature rows but captions for {len(train_captions)} images.")
    train = _unit_rows(train_features)
    test = _unit_rows(test_features)
    nearest = np.concatenate(
        [np.argmax(test[start : start + batch_size] @ train.T, axis=1) for start in range(0, len(test), batch_size)]
    )
    chosen = {j: consensus_caption(train_captions[j]) for j in set(nearest.tolist())}
    return [chosen[j] for j in nearest.tolist()]


def caption_diversity(captions: Sequence[str], train_captions: Iterable[str] | None = None) -> dict[str, float]:
    """How varied a set of generated captions is (lesson 09).

    ``distinct_captions``; ``repeated_share``: the share of captions that some other image
    got word for word too; ``distinct_words`` used at all; ``mean_length`` in words; and,
    with the training captions, ``novel_share``: the share not copied verbatim from them.
    """
    cleaned = [" ".join(tokens(c)) for c in captions]
    counts = Counter(cleaned)
    diversity = {
        "captions": len(cleaned),
        "distinct_captions": len(counts),
        "repeated_share": sum(n for n in counts.values() if n > 1) / max(len(cleaned), 1),
        "distinct_words": len({word for caption in cleaned for word in caption.split()}),
        "mean_length": float(np.mean([len(c.split()) for c in cleaned])) if cleaned else 0.0,
    }
    if train_captions is not None:
        seen = {" ".join(tokens(c)) for c in train_captions}
        diversity["novel_share"] = sum(c not in seen for c in cleaned) / max(len(cleaned), 1)
    return diversity


def _bleu_counts(refs: list[list[list[str]]], hyps: list[list[str]], max_n: int = 4) -> np.ndarray:
    """Per image: clipped n-gram matches and hypothesis n-gram counts for n = 1..max_n, the
    hypothesis length and the closest reference length: what NLTK's corpus BLEU adds up."""
    rows = []
    for references, hypothesis in zip(refs, hyps):
        precisions = [modified_precision(references, hypothesis, n) for n in range(1, max_n + 1)]
        counts = [count for p in precisions for count in (p.numerator, p.denominator)]  # NLTK's, not reduced
        rows.append(counts + [len(hypothesis), closest_ref_length(references, len(hypothesis))])
    return np.array(rows, dtype="float64")


def _corpus_bleu_from_counts(totals: np.ndarray, max_n: int = 4) -> np.ndarray:
    """Corpus BLEU-max_n from summed :func:`_bleu_counts` rows (one row per resample), as NLTK computes it."""
    matches, ngrams = totals[:, 0 : 2 * max_n : 2], totals[:, 1 : 2 * max_n : 2]
    hyp_len, ref_len = totals[:, -2], totals[:, -1]
    # NLTK without smoothing: a precision with no match counts as the smallest float (the score is then ~0)
    precisions = np.where(matches > 0, matches / np.maximum(ngrams, 1), sys.float_info.min)
    penalty = np.where(hyp_len > ref_len, 1.0, np.exp(1 - ref_len / np.maximum(hyp_len, 1e-12)))
    penalty = np.where(hyp_len == 0, 0.0, penalty)
    bleu = penalty * np.exp(np.log(precisions).mean(axis=1))
    return np.where(matches[:, 0] == 0, 0.0, bleu)


def bootstrap_scores(
    references: Sequence[Sequence[str]],
    systems: Mapping[str, Sequence[str]],
    samples: int = 1000,
    seed: int = 0,
    tokenizer: str = "course",
) -> pd.DataFrame:
    """Corpus BLEU-4 and CIDEr of each captioner on ``samples`` bootstrap resamples of the images (lesson 09).

    Each resample draws as many images as there are, with replacement, and the *same*
    resamples are used for every captioner, so the difference of two columns is a paired
    bootstrap of their difference. BLEU-4 is recomputed from each resample's pooled n-gram
    counts (exactly NLTK's corpus BLEU of :func:`score`); CIDEr is the mean of the resampled
    per-image CIDEr values, with the document frequencies of the full set (recomputing them
    for a resample with repeated images would count those images' references twice).
    Returns one row per resample and columns ``(captioner, "BLEU-4" | "CIDEr")``; their
    2.5% and 97.5% quantiles are a 95% interval.
    """
    if samples < 1:
        raise CourseError(f"samples must be 1 or more, got {samples}.")
    rng = np.random.default_rng(seed)
    n = len(references)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=samples).astype("float64")  # how often each image is drawn
    columns = {}
    refs, tokenized = _tokenized(references, systems, tokenizer)
    for name, hyps in tokenized.items():
        columns[(name, "BLEU-4")] = _corpus_bleu_from_counts(weights @ _bleu_counts(refs, hyps))
        gts, res = _coco_format(refs, hyps)
        columns[(name, "CIDEr")] = weights @ np.asarray(Cider().compute_score(gts, res)[1]) / n
    return pd.DataFrame(columns)
