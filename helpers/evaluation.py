"""Scoring captions against human references, and the baselines a model must beat (lesson 09).

BLEU is NLTK's corpus BLEU (no smoothing); CIDEr-D, ROUGE-L and METEOR (Java) are ``pycocoevalcap``'s.
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

from helpers.system.compat import meteor_scorer
from helpers.system.errors import CourseError
from helpers.text import END, START, clean_caption

#: Cumulative BLEU weights: BLEU-n is the geometric mean of the 1..n-gram precisions.
BLEU_WEIGHTS = {f"BLEU-{n}": (1 / n,) * n + (0.0,) * (4 - n) for n in range(1, 5)}
#: How :func:`score` may split captions into words: lesson 02's cleaning, or coco-caption's PTB tokenizer.
TOKENIZERS = ("course", "ptb")
#: Each image's human captions, and each captioner's captions by name.
References, Systems = Sequence[Sequence[str]], Mapping[str, Sequence[str]]
#: One image's BLEU is smoothed (Chen & Cherry's method 1: a missing n-gram counts as 0.1 of a match).
_SMOOTHING = SmoothingFunction().method1


def tokens(caption: str) -> list[str]:
    """The words a caption is scored on: cleaned as in lesson 02, ``startseq``/``endseq`` dropped (lesson 09)."""
    return [word for word in clean_caption(caption).split() if word not in (START, END)]


def ptb_tokens(captions: Sequence[str]) -> list[list[str]]:
    """The words coco-caption scores: pycocoevalcap's PTBTokenizer jar, lower-cased, no punctuation (lesson 09)."""
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


def _tokenized(references: References, systems: Systems, tokenizer: str = "course") -> tuple[list, dict[str, list]]:
    """Check the shapes (references per image, a caption per image from each system), then tokenize them all."""
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
    every_caption = [r for refs in references for r in refs] + [h for hyps in systems.values() for h in hyps]
    words = iter(ptb_tokens(every_caption) if tokenizer == "ptb" else map(tokens, every_caption))
    refs = [[next(words) for _ in image_refs] for image_refs in references]
    return refs, {name: [next(words) for _ in hypotheses] for name, hypotheses in systems.items()}


def _coco_format(refs: list[list[list[str]]], hyps: list[list[str]]) -> tuple[dict, dict]:
    """The ``{image: [sentence, ...]}`` dictionaries pycocoevalcap's scorers take."""
    return {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}, {i: [" ".join(h)] for i, h in enumerate(hyps)}


def _scores(refs: list, hyps: list, meteor: Callable[[dict, dict], float | None] | None) -> dict[str, float]:
    """All corpus scores of tokenized captions (see :func:`score`)."""
    results = dict(zip(BLEU_WEIGHTS, map(float, corpus_bleu(refs, hyps, weights=list(BLEU_WEIGHTS.values())))))
    gts, res = _coco_format(refs, hyps)
    if meteor and (value := meteor(gts, res)) is not None:
        results["METEOR"] = value
    results["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    results["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return results


def score(
    references: References, hypotheses: Sequence[str], meteor: bool = True, tokenizer: str = "course"
) -> dict[str, float]:
    """Corpus scores of ``hypotheses[i]`` against image i's human captions ``references[i]`` (lesson 09):
    ``BLEU-1`` .. ``BLEU-4``, ``METEOR`` (when Java runs it and ``meteor``), ``ROUGE-L``, ``CIDEr`` (0 to 10)."""
    return compare(references, {"": hypotheses}, meteor, tokenizer).iloc[0].to_dict()


def compare(references: References, systems: Systems, meteor: bool = True, tokenizer: str = "course") -> pd.DataFrame:
    """:func:`score` of several captioners (``{name: captions}``) on the same images, one row each (lesson 09)."""
    refs, tokenized = _tokenized(references, systems, tokenizer)
    with meteor_scorer() if meteor else nullcontext() as meteor_score:
        rows = {name: _scores(refs, hyps, meteor_score) for name, hyps in tokenized.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def per_image_scores(references: References, hypotheses: Sequence[str]) -> pd.DataFrame:
    """One row per image (lesson 09): ``BLEU-1``, ``BLEU-4`` (sentence BLEU, smoothed), ``ROUGE-L``, ``CIDEr``."""
    refs, hyps = _tokenized(references, {"": hypotheses})
    hyps = hyps[""]
    gts, res = _coco_format(refs, hyps)
    scores = {
        "BLEU-1": [sentence_bleu(r, h, weights=(1.0,)) for r, h in zip(refs, hyps)],
        "BLEU-4": [sentence_bleu(r, h, smoothing_function=_SMOOTHING) for r, h in zip(refs, hyps)],
        "ROUGE-L": Rouge().compute_score(gts, res)[1],
        "CIDEr": Cider().compute_score(gts, res)[1],
    }
    return pd.DataFrame(scores)


def most_frequent_caption(train_captions: Iterable[str]) -> str:
    """The training caption seen most often, cleaned (ties: alphabetical first): lesson 09's image-blind baseline."""
    counts = Counter(" ".join(tokens(caption)) for caption in train_captions)
    if not counts:
        raise CourseError("No training captions given: most_frequent_caption needs the training split's captions.")
    return min(counts, key=lambda caption: (-counts[caption], caption))


def consensus_caption(captions: Sequence[str]) -> str:
    """Of one image's captions, the one with the highest smoothed BLEU-4 against the others (Devlin et al. 2015)."""
    tokenized = [tokens(c) for c in captions]
    if len(tokenized) == 1:
        return " ".join(tokenized[0])
    agreement = [
        sentence_bleu(tokenized[:i] + tokenized[i + 1 :], candidate, smoothing_function=_SMOOTHING)
        for i, candidate in enumerate(tokenized)
    ]
    return " ".join(tokenized[int(np.argmax(agreement))])


def nearest_neighbour_captions(
    train_features: np.ndarray, train_captions: References, test_features: np.ndarray, batch_size: int = 1024
) -> list[str]:
    """Lesson 09's retrieval baseline: each test image gets its nearest training image's :func:`consensus_caption`."""
    if len(train_features) != len(train_captions):
        raise CourseError(f"{len(train_features)} training feature rows but captions for {len(train_captions)} images.")
    # rows scaled to length 1: a dot product is the cosine similarity
    train, test = (np.asarray(rows, dtype="float32") for rows in (train_features, test_features))
    train, test = (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12) for rows in (train, test))
    starts = range(0, len(test), batch_size)
    nearest = np.concatenate([np.argmax(test[start : start + batch_size] @ train.T, axis=1) for start in starts])
    chosen = {j: consensus_caption(train_captions[j]) for j in set(nearest.tolist())}
    return [chosen[j] for j in nearest.tolist()]


def caption_diversity(captions: Sequence[str], train_captions: Iterable[str] | None = None) -> dict[str, float]:
    """How varied generated captions are (lesson 09): ``distinct_captions``, ``repeated_share`` (given to another
    image too), ``distinct_words``, ``mean_length``, and with the training captions ``novel_share`` (not copied)."""
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
    """Per image: clipped n-gram matches and counts for n = 1..max_n, hypothesis and closest reference lengths."""
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
    references: References, systems: Systems, samples: int = 1000, seed: int = 0, tokenizer: str = "course"
) -> pd.DataFrame:
    """Corpus BLEU-4 and CIDEr of each captioner on the same bootstrap resamples, by ``(name, score)`` (lesson 09)."""
    if samples < 1:
        raise CourseError(f"samples must be 1 or more, got {samples}.")
    rng, n = np.random.default_rng(seed), len(references)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=samples).astype("float64")  # how often each image is drawn
    columns = {}
    refs, tokenized = _tokenized(references, systems, tokenizer)
    for name, hyps in tokenized.items():
        columns[(name, "BLEU-4")] = _corpus_bleu_from_counts(weights @ _bleu_counts(refs, hyps))
        gts, res = _coco_format(refs, hyps)
        columns[(name, "CIDEr")] = weights @ np.asarray(Cider().compute_score(gts, res)[1]) / n
    return pd.DataFrame(columns)
