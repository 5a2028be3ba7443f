"""Tests of helpers.evaluation: metrics checked against hand arithmetic, and the baselines."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from helpers import evaluation
from helpers.evaluation import (
    bootstrap_scores,
    caption_diversity,
    compare,
    consensus_caption,
    most_frequent_caption,
    nearest_neighbour_captions,
    per_image_scores,
    ptb_tokens,
    score,
    tokens,
)
from helpers.system import compat
from helpers.system.errors import CourseError

REFERENCES = [
    ["A dog runs in the grass.", "The dog is running"],  # raw captions: score() cleans them
    ["a black cat sits on the mat", "the cat sleeps"],
]
HYPOTHESES = ["startseq a dog runs in the park endseq", "a cat sits on the sofa"]


def test_bleu_matches_the_hand_computation():
    # Image 1: "a dog runs in the park" vs refs "a dog runs in the grass", "the dog is running"
    #   1-grams: a dog runs in the (park: no)                          5 of 6 match
    #   2-grams: a dog, dog runs, runs in, in the (the park: no)       4 of 5
    #   3-grams: a dog runs, dog runs in, runs in the (in the park)    3 of 4
    #   4-grams: a dog runs in, dog runs in the (runs in the park)     2 of 3
    # Image 2: "a cat sits on the sofa" vs "a black cat sits on the mat", "the cat sleeps"
    #   1-grams: a cat sits on the (sofa: no)                          5 of 6
    #   2-grams: cat sits, sits on, on the (a cat, the sofa: no)       3 of 5
    #   3-grams: cat sits on, sits on the                              2 of 4
    #   4-grams: cat sits on the                                       1 of 3
    # Corpus BLEU pools the counts: p1 = 10/12, p2 = 7/10, p3 = 5/8, p4 = 3/6.
    p = [10 / 12, 7 / 10, 5 / 8, 3 / 6]
    # Brevity: hypotheses 6 + 6 = 12 words; closest reference lengths 6 + 7 = 13 words.
    brevity_penalty = math.exp(1 - 13 / 12)
    expected = {f"BLEU-{n}": brevity_penalty * math.prod(p[:n]) ** (1 / n) for n in range(1, 5)}
    got = score(REFERENCES, HYPOTHESES, meteor=False)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    assert got["BLEU-1"] == pytest.approx(0.76670, abs=1e-5)  # the same, worked out on paper
    assert 0 < got["ROUGE-L"] < 1 and got["CIDEr"] > 0


def test_a_caption_equal_to_a_reference_scores_1():
    got = score([["a dog runs in the grass", "a brown dog"]], ["a dog runs in the grass"], meteor=False)
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"):
        assert got[name] == pytest.approx(1.0), name


def test_special_tokens_and_punctuation_never_count():
    assert tokens("startseq A dog, running! endseq") == ["a", "dog", "running"]
    wrapped = [[f"startseq {r} endseq" for r in refs] for refs in REFERENCES]
    clean = [h.replace("startseq ", "").replace(" endseq", "") for h in HYPOTHESES]
    assert score(wrapped, HYPOTHESES, meteor=False) == score(REFERENCES, clean, meteor=False)


def test_per_image_scores_rank_the_images():
    table = per_image_scores(REFERENCES + [["a red ball on grass"]], HYPOTHESES + ["a red ball on grass"])
    assert list(table.columns) == ["BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"]
    assert len(table) == 3
    assert table.loc[2, "BLEU-4"] == pytest.approx(1.0) and table.loc[2, "ROUGE-L"] == pytest.approx(1.0)
    assert (table.loc[:1, "BLEU-4"] < 1).all()
    corpus = score(REFERENCES + [["a red ball on grass"]], HYPOTHESES + ["a red ball on grass"], meteor=False)
    assert table["ROUGE-L"].mean() == pytest.approx(corpus["ROUGE-L"])
    assert table["CIDEr"].mean() == pytest.approx(corpus["CIDEr"])


def test_mismatched_inputs_are_explained():
    with pytest.raises(CourseError, match="one caption per image"):
        score(REFERENCES, HYPOTHESES[:1])
    with pytest.raises(CourseError, match="list of reference captions"):
        score(["a dog", "a cat"], HYPOTHESES)


def test_meteor_is_skipped_with_a_note_without_java(monkeypatch, capsys):
    monkeypatch.setattr(compat.shutil, "which", lambda name: None)
    got = score(REFERENCES, HYPOTHESES)
    assert "METEOR" not in got
    assert "METEOR skipped" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_runs_with_java():
    # one Java start for both rows; special tokens and punctuation stripped before scoring
    table = compare(
        [["A dog runs in the grass."]], {"same": ["startseq a dog runs in the grass endseq"], "other": ["a cat"]}
    )
    assert table.loc["same", "METEOR"] == pytest.approx(1.0)
    assert table.loc["other", "METEOR"] < 0.5


def test_compare_scores_several_captioners_at_once():
    table = compare(REFERENCES, {"model": HYPOTHESES, "copy": [refs[0] for refs in REFERENCES]}, meteor=False)
    assert list(table.index) == ["model", "copy"]
    assert table.loc["model"].to_dict() == score(REFERENCES, HYPOTHESES, meteor=False)
    assert table.loc["copy", "BLEU-4"] == pytest.approx(1.0)


def test_most_frequent_caption_cleans_then_counts():
    captions = ["A dog runs.", "a cat sleeps", "a dog runs", "A cat sleeps", "a dog  runs"]
    assert most_frequent_caption(captions) == "a dog runs"
    assert most_frequent_caption(["b is second", "a is first"]) == "a is first"  # a tie: alphabetical


def test_consensus_caption_skips_the_odd_one_out():
    assert consensus_caption(["A zebra in a zoo", "a red circle", "A red circle.", "a red square"]) == "a red circle"
    assert consensus_caption(["Only one."]) == "only one"


def test_nearest_neighbour_uses_cosine_similarity():
    train_features = np.array([[1.0, 0.0], [10.0, 10.0]])
    train_captions = [["a cat"], ["a dog", "a dog", "a bird"]]
    # (3, 3.2) is closer to (1, 0) in distance, but points the same way as (10, 10)
    test_features = np.array([[3.0, 3.2], [0.5, 0.01], [30.0, 28.0]])
    assert nearest_neighbour_captions(train_features, train_captions, test_features, batch_size=2) == [
        "a dog",
        "a cat",
        "a dog",
    ]


def test_caption_diversity():
    got = caption_diversity(["a dog runs", "a dog runs", "a cat", "A cat.", "a red ball"], train_captions=["a cat"])
    assert got["captions"] == 5 and got["distinct_captions"] == 3
    assert got["repeated_share"] == pytest.approx(4 / 5)
    assert got["distinct_words"] == 6  # a dog runs cat red ball
    assert got["mean_length"] == pytest.approx(13 / 5)
    assert got["novel_share"] == pytest.approx(3 / 5)


# ---------------------------------------------------------------- PTB tokenizer (lesson 09)

PTB_EXAMPLES = ["A dog's toy, on the 3-year-old's T-shirt.", "Two men (one in red) play.", "", "startseq a dog endseq"]


@pytest.mark.skipif(shutil.which("java") is None, reason="the PTB tokenizer needs Java")
def test_ptb_tokens_are_coco_captions_own():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    coco = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(PTB_EXAMPLES)})
    ours = ptb_tokens(PTB_EXAMPLES)
    assert ours[:3] == [coco[i][0].split() for i in range(3)]
    assert " ".join(ours[0]) == "a dog 's toy on the 3-year-old 's t-shirt"  # unlike lesson 02's cleaning
    assert ours[3] == ["a", "dog"]  # special tokens never count
    assert tokens(PTB_EXAMPLES[0]) == ["a", "dogs", "toy", "on", "the", "tshirt"]


@pytest.mark.skipif(shutil.which("java") is None, reason="the PTB tokenizer needs Java")
def test_scores_with_the_ptb_tokenizer():
    got = score([["A boy's T-shirt."]], ["a boy 's t-shirt"], meteor=False, tokenizer="ptb")
    assert got["BLEU-1"] == pytest.approx(1.0) and got["ROUGE-L"] == pytest.approx(1.0)
    course = score([["A boy's T-shirt."]], ["a boy 's t-shirt"], meteor=False)
    assert course["BLEU-1"] < 1  # the course's cleaning makes "boys tshirt" of the reference, "a boy tshirt" of this
    table = compare(REFERENCES, {"model": HYPOTHESES}, meteor=False, tokenizer="ptb")
    assert table.loc["model"].to_dict() == score(REFERENCES, HYPOTHESES, meteor=False, tokenizer="ptb")


def test_ptb_tokenizer_without_java_is_explained(monkeypatch):
    monkeypatch.setattr(evaluation.shutil, "which", lambda name: None)
    with pytest.raises(CourseError, match="Java"):
        ptb_tokens(["a dog"])
    with pytest.raises(CourseError, match="tokenizer must be one of"):
        score(REFERENCES, HYPOTHESES, meteor=False, tokenizer="nltk")


# ---------------------------------------------------------------- bootstrap (lesson 09)

BOOT_REFERENCES = REFERENCES + [["a red ball on grass", "a ball"], ["two men play football", "men on a field"]]
BOOT_HYPOTHESES = HYPOTHESES + ["a red ball", "a man plays football on a field"]


def test_bootstrap_resamples_are_corpus_scores_of_resampled_images():
    boot = bootstrap_scores(BOOT_REFERENCES, {"model": BOOT_HYPOTHESES}, samples=20, seed=3)
    assert boot.shape == (20, 2) and list(boot.columns) == [("model", "BLEU-4"), ("model", "CIDEr")]
    draws = np.random.default_rng(3).multinomial(4, np.full(4, 1 / 4), size=20)  # the helper's own draws
    cider = per_image_scores(BOOT_REFERENCES, BOOT_HYPOTHESES)["CIDEr"].to_numpy()
    for row, counts in enumerate(draws):
        chosen = np.repeat(np.arange(4), counts)
        refs, hyps = [BOOT_REFERENCES[i] for i in chosen], [BOOT_HYPOTHESES[i] for i in chosen]
        assert boot.loc[row, ("model", "BLEU-4")] == pytest.approx(score(refs, hyps, meteor=False)["BLEU-4"], abs=1e-12)
        assert boot.loc[row, ("model", "CIDEr")] == pytest.approx(cider[chosen].mean(), abs=1e-12)


def test_the_bootstraps_full_sample_is_corpus_bleu_brevity_penalty_included():
    references = [["a dog runs in the green grass today"], ["the cat sits on the red mat all day"]]
    hypotheses = ["a dog runs in the", "the cat sits on the"]  # every n-gram matches; too short: a penalty
    refs = [[tokens(r) for r in image_refs] for image_refs in references]
    counts = evaluation._bleu_counts(refs, [tokens(h) for h in hypotheses])
    full_sample = evaluation._corpus_bleu_from_counts(counts.sum(axis=0, keepdims=True))[0]
    expected = score(references, hypotheses, meteor=False)["BLEU-4"]
    assert expected == pytest.approx(math.exp(1 - 17 / 10))  # all precisions 1: BLEU is the brevity penalty
    assert full_sample == pytest.approx(expected, abs=1e-12)


def test_bootstrap_is_paired_and_repeatable():
    systems = {"a": BOOT_HYPOTHESES, "b": BOOT_HYPOTHESES, "worse": ["a dog"] * 4}
    boot = bootstrap_scores(BOOT_REFERENCES, systems, samples=50, seed=0)
    assert boot["a"].equals(boot["b"])  # the same resamples for every captioner
    assert boot.equals(bootstrap_scores(BOOT_REFERENCES, systems, samples=50, seed=0))
    one = bootstrap_scores(BOOT_REFERENCES[:1], {"m": BOOT_HYPOTHESES[:1]}, samples=5)
    alone = score(BOOT_REFERENCES[:1], BOOT_HYPOTHESES[:1], meteor=False)["BLEU-4"]
    assert one[("m", "BLEU-4")].tolist() == pytest.approx([alone] * 5)
    with pytest.raises(CourseError, match="samples"):
        bootstrap_scores(BOOT_REFERENCES, systems, samples=0)
