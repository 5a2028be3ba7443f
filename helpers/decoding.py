"""Captions from a trained captioner: greedy, beam search and sampling (lesson 08).

``max_len`` counts a caption's tokens, ``startseq`` and ``endseq`` included; the decoders run batched, word by word.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from keras import ops
from tqdm.auto import tqdm

from helpers.model import Captioner
from helpers.system.errors import CourseError
from helpers.text import Vocabulary

#: Length-normalisation exponent of beam search (see :func:`beam_search`).
ALPHA = 0.7
#: Images decoded per call: bounds memory (beam search holds ``batch_size * beam_width`` rows).
BATCH_SIZE = 256


def _as_features(captioner: Captioner, features: np.ndarray) -> np.ndarray:
    """Features as float32, one row per image, in the shape the captioner reads (one image's alone too)."""
    row = tuple(captioner.sequence.get_layer("image").output.shape[1:])
    array = np.asarray(features, dtype="float32")
    array = array[None] if array.shape == row else array
    if array.shape[1:] != row:
        raise CourseError(
            f"Expected image features of shape (n, {', '.join(map(str, row))}) (lesson 03), got {np.shape(features)}."
        )
    return array


def _batches(features: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive slices of ``batch_size`` images, with a progress bar when there are several."""
    starts = range(0, len(features), batch_size)
    for start in tqdm(starts, desc="captioning", unit="batch", disable=len(starts) < 2, leave=False):
        yield features[start : start + batch_size]


def banned_ids(captioner: Captioner, vocab: Vocabulary) -> np.ndarray:
    """Added to next-word log-probabilities: ``-inf`` for padding and ``startseq``, 0 elsewhere."""
    size = captioner.sequence.get_layer("next_word").units
    if size != len(vocab):
        raise CourseError(
            f"The model predicts {size} word ids but the vocabulary has {len(vocab)}: "
            "use the vocab.json saved with this model."
        )
    banned = np.zeros(len(vocab), dtype="float32")
    banned[[0, vocab.start_id]] = -np.inf
    return banned


def _log_probs(step: Callable, banned: np.ndarray, image_vector, tokens: np.ndarray, state: tuple) -> tuple:
    """One step for every row: masked next-word log-probabilities (a tensor) and the new state."""
    probs, h, c = step(image_vector, ops.convert_to_tensor(tokens, "int32"), *state)
    return ops.log(probs) + banned, (h, c)


def _steps(vocab: Vocabulary, max_len: int | None) -> int:
    """How many words a decoder may write after ``startseq``."""
    max_len = vocab.max_len if max_len is None else max_len
    if max_len < 2:
        raise CourseError(f"max_len must be at least 2 (startseq and one word), got {max_len}.")
    return max_len - 1


def step_probabilities(captioner: Captioner, features: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Next-word probabilities after each prefix of ``words``, ``(n, T)`` ids from ``startseq`` (lesson 08)."""
    start, step = captioner.decoder()
    context, *state = start(_as_features(captioner, features))
    probabilities = []
    for t in range(np.shape(words)[1]):
        probs, *state = step(context, ops.convert_to_tensor(np.asarray(words)[:, t], "int32"), *state)
        probabilities.append(ops.convert_to_numpy(probs))
    return np.stack(probabilities, axis=1)


def _word_by_word(
    captioner: Captioner, vocab: Vocabulary, features: np.ndarray, steps: int, choose: Callable, batch_size: int
) -> list[str]:
    """One caption per image, ``choose``-ing each next word from the log-probabilities; ended captions get padding."""
    (start, step), banned = captioner.decoder(), banned_ids(captioner, vocab)
    captions = []
    for batch in _batches(_as_features(captioner, features), batch_size):
        image_vector, *state = start(batch)
        tokens = np.full(len(batch), vocab.start_id, dtype="int32")
        ids = np.zeros((len(batch), steps), dtype="int32")
        ended = np.zeros(len(batch), dtype=bool)
        for t in range(steps):
            log_probs, state = _log_probs(step, banned, image_vector, tokens, state)
            tokens = np.where(ended, 0, choose(log_probs)).astype("int32")
            ids[:, t] = tokens
            ended |= tokens == vocab.end_id
            if ended.all():
                break
        captions += [vocab.decode(row) for row in ids]
    return captions


def greedy(
    captioner: Captioner,
    vocab: Vocabulary,
    features: np.ndarray,
    max_len: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[str]:
    """Caption every image (features ``(n, 2048)``, or one image's) taking the most likely next word (lesson 08)."""

    def most_likely(log_probs) -> np.ndarray:
        return ops.convert_to_numpy(ops.argmax(log_probs, axis=1))

    return _word_by_word(captioner, vocab, features, _steps(vocab, max_len), most_likely, batch_size)


def _beam_batch(
    captioner: Captioner, vocab: Vocabulary, features: np.ndarray, steps: int, k: int, alpha: float
) -> list[list[tuple[float, list[int]]]]:
    """Beam search for one batch of images: each image's ``(score, word ids)`` candidates, best first."""
    (start, step), banned, n = captioner.decoder(), banned_ids(captioner, vocab), len(features)
    # each beam proposes its `width` best words: at most one is endseq, so k that continue remain
    width = min(k + 1, len(vocab))
    image_vector, *state = start(np.repeat(features, k, axis=0))  # row i*k + j: beam j of image i
    tokens = np.full(n * k, vocab.start_id, dtype="int32")
    scores = np.full((n, k), -np.inf)  # a beam scored -inf is dead: it never finishes nor wins
    scores[:, 0] = 0.0  # one live beam to start with: k copies of "startseq" would fill the beam with duplicates
    history = np.zeros((n, k, 0), dtype="int32")
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
    parent = np.arange(k * width) // width  # which beam each of the k*width candidates extends
    for t in range(1, steps + 1):
        log_probs, state = _log_probs(step, banned, image_vector, tokens, state)
        top_scores, top_words = (ops.convert_to_numpy(x) for x in ops.top_k(log_probs, width))
        candidates = (scores[:, :, None] + top_scores.reshape(n, k, width)).reshape(n, -1)
        words = top_words.reshape(n, -1)
        ends = words == vocab.end_id
        rank = np.argsort(np.argsort(-candidates, axis=1, kind="stable"), axis=1)
        for i, j in zip(*np.nonzero(ends & (rank < k) & np.isfinite(candidates))):
            finished[i].append((candidates[i, j] / t**alpha, [*history[i, parent[j]], vocab.end_id]))
        continuing = np.where(ends, -np.inf, candidates)
        keep = np.argsort(-continuing, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(continuing, keep, axis=1)
        scores[[len(f) >= k for f in finished]] = -np.inf  # images with k finished captions are done
        if np.isneginf(scores).all():
            break
        tokens = np.take_along_axis(words, keep, axis=1)
        kept = np.take_along_axis(history, parent[keep][:, :, None], axis=1)
        history = np.concatenate([kept, tokens[:, :, None]], axis=2)
        rows = (np.arange(n)[:, None] * k + parent[keep]).ravel()
        state = tuple(ops.take(s, rows, axis=0) for s in state)
        tokens = tokens.ravel().astype("int32")
    for i, j in zip(*np.nonzero(np.isfinite(scores))):  # max_len reached: live beams compete, unfinished
        finished[i].append((scores[i, j] / history.shape[2] ** alpha, list(history[i, j])))
    return [sorted(f, key=lambda found: -found[0]) or [(0.0, [])] for f in finished]  # ties: first found first


def beam_search(
    captioner: Captioner,
    vocab: Vocabulary,
    features: np.ndarray,
    beam_width: int = 3,
    max_len: int | None = None,
    alpha: float = ALPHA,
    batch_size: int = BATCH_SIZE,
) -> list[str]:
    """Caption every image with beam search, keeping the ``beam_width`` best partial captions (lesson 08); the
    winner of the finished ones has the highest ``log P / length ** alpha`` (``length`` with ``endseq``)."""
    return [
        beams[0][0] for beams in beam_candidates(captioner, vocab, features, beam_width, max_len, alpha, batch_size)
    ]


def beam_candidates(
    captioner: Captioner,
    vocab: Vocabulary,
    features: np.ndarray,
    beam_width: int = 3,
    max_len: int | None = None,
    alpha: float = ALPHA,
    batch_size: int = BATCH_SIZE,
) -> list[list[tuple[str, float]]]:
    """:func:`beam_search`'s finished captions of each image with their normalised scores, best first (lesson 12)."""
    if beam_width < 1:
        raise CourseError(f"beam_width must be 1 or more, got {beam_width}.")
    steps, found = _steps(vocab, max_len), []
    for batch in _batches(_as_features(captioner, features), batch_size):
        beams = _beam_batch(captioner, vocab, batch, steps, beam_width, alpha)
        found += [[(vocab.decode(ids), float(score)) for score, ids in image] for image in beams]
    return found


def sample(
    captioner: Captioner,
    vocab: Vocabulary,
    features: np.ndarray,
    temperature: float = 1.0,
    seed: int | None = None,
    max_len: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[str]:
    """Caption every image, each next word drawn from ``softmax(log p / temperature)``, seeded (lesson 08)."""
    if temperature <= 0:
        raise CourseError(
            f"temperature must be above 0 (try 0.5 to 1.5; use greedy for the limit 0), got {temperature}."
        )
    rng = np.random.default_rng(seed)

    def draw(log_probs) -> np.ndarray:
        return np.argmax(ops.convert_to_numpy(log_probs) / temperature + rng.gumbel(size=log_probs.shape), axis=1)

    return _word_by_word(captioner, vocab, features, _steps(vocab, max_len), draw, batch_size)
