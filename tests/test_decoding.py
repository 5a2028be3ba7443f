"""Tests of helpers.decoding: greedy, beam search and sampling on tiny models whose numbers we know."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import keras
import numpy as np
import pytest

from helpers.decoding import beam_search, greedy, sample, step_probabilities
from helpers.features import FEATURE_SIZE as FEATURE_DIM
from helpers.model import UNITS, build_captioner
from helpers.system.errors import CourseError
from helpers.text import Vocabulary

#: sigmoid(20) ~ 1: an LSTM gate that is wide open; sigmoid(-20) ~ 0: shut.
OPEN, SHUT = 20.0, -20.0
#: What the hand-set LSTM outputs for the current word: o * tanh(i * tanh(10)), gates open.
_GATE = 1 / (1 + np.exp(-OPEN))
H = _GATE * np.tanh(_GATE * np.tanh(10.0))


def hand_set_captioner(
    vocab: Vocabulary,
    bigram_logits: np.ndarray,
    image_logits: np.ndarray | None = None,
    memory_logits: np.ndarray | None = None,
):
    """A captioner whose next-word logits we set: ``bigram_logits[previous word] + image_logits[image]``
    ``+ sum over the words w so far of memory_logits[w] * tanh(count of w)``.

    Image j is the one-hot feature vector ``e_j``. The weights route everything through
    the real layers: the embedding makes each word a one-hot vector (x10); LSTM unit w
    (input and output gates open, forget gate shut) outputs ``H`` when the current word
    is w and forgets it at the next step, while unit ``V + w`` (forget gate open) counts
    the w seen so far; the image branch puts image j on unit ``2V + j``; the decoder dense
    layer is the identity, and ``next_word`` reads the logits off its rows.
    """
    v = len(vocab)
    image_logits = np.zeros((1, v)) if image_logits is None else image_logits
    memory_logits = np.zeros((v, v)) if memory_logits is None else memory_logits
    assert v <= 50 and 2 * v + len(image_logits) <= UNITS
    captioner = build_captioner(v, vocab.max_len)
    layer = captioner.sequence.get_layer
    layer("embedding").set_weights([10.0 * np.eye(v, 50)])
    kernel = np.zeros((50, 4 * UNITS))  # gate blocks: input, forget, candidate (g), output
    kernel[np.arange(v), 2 * UNITS + np.arange(v)] = 1.0  # word w drives the candidate of unit w ...
    kernel[np.arange(v), 2 * UNITS + v + np.arange(v)] = 1.0  # ... and of its counter, unit V + w
    forget = np.full(UNITS, SHUT)
    forget[v : 2 * v] = OPEN
    bias = np.concatenate([np.full(UNITS, OPEN), forget, np.zeros(UNITS), np.full(UNITS, OPEN)])
    layer("lstm").set_weights([kernel, np.zeros((UNITS, 4 * UNITS)), bias])
    image_kernel = np.zeros((FEATURE_DIM, UNITS))
    image_kernel[np.arange(len(image_logits)), 2 * v + np.arange(len(image_logits))] = 1.0
    layer("image_dense").set_weights([image_kernel, np.zeros(UNITS)])
    layer("decoder_dense").set_weights([np.eye(UNITS), np.zeros(UNITS)])
    readout = np.zeros((UNITS, v))
    readout[:v] = bigram_logits / H
    readout[v : 2 * v] = memory_logits
    readout[2 * v : 2 * v + len(image_logits)] = image_logits
    layer("next_word").set_weights([readout, np.zeros(v)])
    return captioner


def logits_from(vocab: Vocabulary, table: dict[str, dict[str, float]]) -> np.ndarray:
    """Bigram logits from next-word probabilities given by hand (unlisted words get 1e-9)."""
    probs = np.full((len(vocab), len(vocab)), 1e-9)
    for word, following in table.items():
        for next_word, p in following.items():
            probs[vocab.index[word], vocab.index[next_word]] = p
    return np.log(probs)


def one_hot_images(images: list[int]) -> np.ndarray:
    return np.eye(FEATURE_DIM, dtype="float32")[images]


@pytest.fixture(scope="module")
def abc_vocab() -> Vocabulary:
    return Vocabulary.build(["startseq a b c endseq"], min_count=1)


@pytest.fixture(scope="module")
def trap(abc_vocab):
    """Greedy's trap: "a" is the likelier first word, but "b endseq" is the likelier caption.

    P(a endseq) = 0.55 * 0.34 = 0.187 (greedy's choice) < P(b endseq) = 0.45 * 0.9 = 0.405.
    """
    table = {
        "startseq": {"a": 0.55, "b": 0.45},
        "a": {"endseq": 0.34, "b": 0.33, "c": 0.33},
        "b": {"endseq": 0.9, "a": 0.05, "c": 0.05},
        "c": {"endseq": 1.0},
    }
    return hand_set_captioner(abc_vocab, logits_from(abc_vocab, table))


@pytest.fixture(scope="module")
def random_captioner():
    keras.utils.set_random_seed(0)
    vocab = Vocabulary(["<pad>", "startseq", "endseq"] + [f"w{i}" for i in range(27)], {}, max_len=9, min_count=1)
    return build_captioner(len(vocab), vocab.max_len), vocab


#: 3 words, at most 3 tokens after startseq: 1, 3, 9 live prefixes give 4, 12, 36
#: candidates; a beam of 40 keeps them all, so it must find the brute-force best.
SMALL = Vocabulary.build(["startseq a b endseq", "startseq c endseq"], min_count=1)


@pytest.fixture(scope="module")
def memory_model():
    """8 images whose next word depends on the image and on every word so far."""
    rng = np.random.default_rng(2)
    bigram_logits, memory_logits = rng.normal(size=(2, len(SMALL), len(SMALL)))
    image_logits = rng.normal(size=(8, len(SMALL)))
    return hand_set_captioner(SMALL, bigram_logits, 2.0 * image_logits, 3.0 * memory_logits)


def test_step_by_step_equals_the_prefix_model(random_captioner, memory_model):
    rng = np.random.default_rng(1)
    for captioner, vocab, features in (
        (*random_captioner, rng.random((4, FEATURE_DIM), dtype="float32")),
        (memory_model, SMALL, one_hot_images([0, 3, 5, 7])),
    ):
        words = rng.integers(3, len(vocab), size=(4, vocab.max_len), dtype="int32")
        words[:, 0] = vocab.start_id
        stepped = step_probabilities(captioner, features, words)
        for t in range(vocab.max_len):
            prefix = np.zeros_like(words)
            prefix[:, : t + 1] = words[:, : t + 1]  # right-padded, as the prefix model is fed
            expected = keras.ops.convert_to_numpy(captioner.prefix([features, prefix]))
            np.testing.assert_allclose(stepped[:, t], expected, atol=1e-5)


def test_the_hand_set_model_has_the_probabilities_we_set(abc_vocab, trap):
    i = abc_vocab.index
    probs = step_probabilities(trap, one_hot_images([0]), np.array([[i["startseq"], i["a"]]]))
    assert probs[0, 0, i["a"]] == pytest.approx(0.55, abs=1e-6)
    assert probs[0, 1, i["endseq"]] == pytest.approx(0.34, abs=1e-6)


def test_greedy_falls_into_the_trap_and_beam_search_does_not(abc_vocab, trap):
    image = one_hot_images([0])
    assert greedy(trap, abc_vocab, image) == ["a"]
    assert beam_search(trap, abc_vocab, image, beam_width=2) == ["b"]


def test_greedy_equals_beam_search_of_width_1(abc_vocab, trap, memory_model, random_captioner):
    assert beam_search(trap, abc_vocab, one_hot_images([0]), beam_width=1) == greedy(
        trap, abc_vocab, one_hot_images([0])
    )
    images = one_hot_images(list(range(8)))
    assert beam_search(memory_model, SMALL, images, beam_width=1) == greedy(memory_model, SMALL, images)
    captioner, vocab = random_captioner
    features = np.random.default_rng(2).random((6, FEATURE_DIM), dtype="float32")
    assert beam_search(captioner, vocab, features, beam_width=1) == greedy(captioner, vocab, features)


def brute_force_best(vocab: Vocabulary, log_probs_after: Callable[[list[int]], np.ndarray], alpha: float) -> str:
    """Score every possible caption (ending in endseq, or cut at max_len) as beam search does."""
    words = [w for w in vocab.words if w not in ("<pad>", "startseq", "endseq")]
    steps = vocab.max_len - 1
    scored = []
    for length in range(steps + 1):
        for caption in itertools.product(words, repeat=length):
            ids = [vocab.start_id, *(vocab.index[w] for w in caption)]
            if length < steps:  # ends with endseq, or is cut at max_len with max_len - 1 words
                ids.append(vocab.end_id)
            total = sum(log_probs_after(ids[:t])[ids[t]] for t in range(1, len(ids)))
            scored.append((total / (len(ids) - 1) ** alpha, " ".join(caption)))
    scored.sort(reverse=True)
    assert scored[0][0] - scored[1][0] > 1e-4, "the test needs a unique best caption"
    return scored[0][1]


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_a_wide_beam_finds_the_best_scoring_caption(alpha):
    logits = np.random.default_rng(11).normal(size=(len(SMALL), len(SMALL)))  # best: "", "a", "b c b"
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    captioner = hand_set_captioner(SMALL, logits)
    found = beam_search(captioner, SMALL, one_hot_images([0]), beam_width=40, alpha=alpha)
    assert found == [brute_force_best(SMALL, lambda ids: log_probs[ids[-1]], alpha)]


def test_a_wide_beam_finds_the_best_caption_of_a_model_with_memory(memory_model):
    # greedy misses the best caption of 5 of the 8 images; the brute force asks the prefix model
    captioner = memory_model
    words = [SMALL.index[w] for w in ("a", "b", "c")]
    prefixes = [[SMALL.start_id, *p] for n in range(SMALL.max_len - 1) for p in itertools.product(words, repeat=n)]
    padded = np.array([p + [0] * (SMALL.max_len - len(p)) for p in prefixes])
    expected = []
    for image in range(8):
        features = one_hot_images([image] * len(prefixes))
        log_probs = np.log(keras.ops.convert_to_numpy(captioner.prefix([features, padded])))
        table = {tuple(p): row for p, row in zip(prefixes, log_probs)}
        expected.append(brute_force_best(SMALL, lambda ids, table=table: table[tuple(ids)], 0.7))
    assert greedy(captioner, SMALL, one_hot_images(list(range(8)))) != expected
    assert beam_search(captioner, SMALL, one_hot_images(list(range(8))), beam_width=40) == expected


def test_a_model_that_never_says_endseq_stops_at_max_len(random_captioner):
    captioner, vocab = random_captioner
    next_word = captioner.sequence.get_layer("next_word")
    kernel, bias = next_word.get_weights()
    next_word.set_weights([kernel, np.where(np.arange(len(vocab)) == vocab.end_id, -1e4, bias)])
    try:
        features = np.random.default_rng(4).random((3, FEATURE_DIM), dtype="float32")
        for captions in (
            greedy(captioner, vocab, features),
            beam_search(captioner, vocab, features, beam_width=3),
            sample(captioner, vocab, features, seed=0),
        ):
            assert [len(c.split()) for c in captions] == [vocab.max_len - 1] * 3
        assert [len(c.split()) for c in greedy(captioner, vocab, features, max_len=40)] == [39] * 3
    finally:
        next_word.set_weights([kernel, bias])


@pytest.fixture(scope="module")
def chain():
    """Captions of different lengths: image j starts the chain one -> two -> ... -> six -> endseq at word j."""
    chain_words = ["one", "two", "three", "four", "five", "six"]
    vocab = Vocabulary.build([f"startseq {' '.join(chain_words)} endseq"], min_count=1)
    ids = [vocab.index[w] for w in chain_words]
    logits = np.zeros((len(vocab), len(vocab)))
    logits[vocab.start_id, vocab.end_id] = -10.0
    for word, next_word in itertools.pairwise([*ids, vocab.end_id]):
        logits[word, next_word] = 10.0
    image_logits = np.zeros((len(ids), len(vocab)))
    image_logits[np.arange(len(ids)), ids] = 5.0
    return hand_set_captioner(vocab, logits, image_logits), vocab


def test_the_chain_model_writes_captions_of_different_lengths(chain):
    captioner, vocab = chain
    assert greedy(captioner, vocab, one_hot_images([5, 0, 3])) == [
        "six",
        "one two three four five six",
        "four five six",
    ]


@pytest.mark.parametrize(
    "decode", [greedy, lambda *a, **k: beam_search(*a, beam_width=3, **k)], ids=["greedy", "beam3"]
)
def test_batched_decoding_equals_one_image_at_a_time(chain, random_captioner, decode):
    for captioner, vocab, features in (
        (*chain, one_hot_images([2, 5, 0, 4, 1, 3, 0])),
        (*random_captioner, np.random.default_rng(5).random((7, FEATURE_DIM), dtype="float32")),
    ):
        one_by_one = [decode(captioner, vocab, f[None])[0] for f in features]
        assert decode(captioner, vocab, features, batch_size=3) == one_by_one


def test_sampling_is_reproducible_and_cold_sampling_is_greedy(chain):
    captioner, vocab = chain
    features = one_hot_images([0, 1, 2, 3, 4, 5])
    assert sample(captioner, vocab, features, seed=7) == sample(captioner, vocab, features, seed=7)
    assert sample(captioner, vocab, features, temperature=0.05, seed=0) == greedy(captioner, vocab, features)


def test_bad_arguments_are_explained(random_captioner):
    captioner, vocab = random_captioner
    with pytest.raises(CourseError, match="2048"):
        greedy(captioner, vocab, np.zeros((2, 100)))
    with pytest.raises(CourseError, match="beam_width"):
        beam_search(captioner, vocab, np.zeros((1, FEATURE_DIM)), beam_width=0)
    with pytest.raises(CourseError, match="temperature"):
        sample(captioner, vocab, np.zeros((1, FEATURE_DIM)), temperature=0)
    with pytest.raises(CourseError, match="vocabulary has"):
        greedy(captioner, Vocabulary.build(["startseq a endseq"], min_count=1), np.zeros((1, FEATURE_DIM)))
