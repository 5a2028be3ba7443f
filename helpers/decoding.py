"""Captions from a trained captioner: greedy, beam search and sampling (introduced in lesson 08).

Lesson 08 first writes the loop every classic tutorial has: for one image, feed the padded
prefix ``startseq ...`` to the prefix model with ``model.predict``, append the most likely
word, repeat until ``endseq``. It is slow twice over: ``predict`` costs tens of
milliseconds per call (it builds a data pipeline each time), and every call re-runs the
LSTM over the whole padded prefix, so a caption of T words costs T calls of ``max_len``
LSTM steps each on a CPU (the masked padding steps are computed too; on a GPU cuDNN skips
the padding, and re-reading the prefix still costs about T²/2 steps).

The decoders here fix both:

* **Batched**: one call advances the captions of *many* images (and all their beams) by
  one word.
* **Step-wise**: they use the sequence model's own layers (``image_norm``, ``image_dense``, ``embedding``,
  ``lstm.cell``, ``merge``, ``decoder_dense``, ``next_word``; the dropout layers are
  inactive at inference) and carry the LSTM's ``(h, c)`` state from word to word, so each
  step costs the same whatever the caption's length. The step is compiled once per model
  with ``tf.function``. :func:`step_probabilities` gives exactly the prefix model's numbers
  (lesson 08 and ``tests/test_decoding.py`` check it to 1e-5).

Shared rules. ``max_len`` is the most tokens a caption may have, ``startseq`` and ``endseq``
included (the meaning of ``Vocabulary.max_len``, the default), so at most ``max_len - 1``
words follow ``startseq``: a model that never says ``endseq`` stops there. Padding (id 0)
and ``startseq`` are never picked as a next word: neither can follow a word in a real
caption, but an untrained model may rank them first. Captions come back as plain text
without ``startseq``/``endseq`` (``vocab.decode``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
from keras import ops
from tqdm.auto import tqdm

from helpers.errors import CourseError
from helpers.model import FEATURE_DIM, Captioner
from helpers.model import image_vector as model_image_vector
from helpers.text import Vocabulary

#: Length-normalisation exponent of beam search (see :func:`beam_search`).
ALPHA = 0.7
#: Images decoded per call: bounds memory (beam search holds ``batch_size * beam_width`` rows).
BATCH_SIZE = 256

Step = Callable[..., tuple]
_compiled_steps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoder_step(captioner: Captioner) -> Step:
    """The captioner's one-word step, compiled once per model with ``tf.function`` (lesson 08).

    ``step(image_vector, tokens, h, c) -> (next-word probabilities, h, c)``: the newest
    word of every row in, the probabilities of the word after it and the LSTM's new state
    out. Start from :func:`initial_state`.
    """
    model = captioner.sequence
    if model not in _compiled_steps:
        embedding, cell = model.get_layer("embedding"), model.get_layer("lstm").cell
        merge, decoder_dense, next_word = (model.get_layer(n) for n in ("merge", "decoder_dense", "next_word"))

        def step(image_vector, tokens, h, c):
            # the embedding's lookup; calling the layer would attach a padding mask the cell cannot use
            vectors = ops.take(embedding.embeddings, tokens, axis=0)
            output, (h, c) = cell(vectors, [h, c])
            return next_word(decoder_dense(merge([image_vector, output]))), h, c

        _compiled_steps[model] = tf.function(step, reduce_retracing=True)
    return _compiled_steps[model]


def _decoder(captioner) -> tuple[Callable[[np.ndarray], tuple], Step]:
    """``(initial_state, step)`` of a captioner: the merge model's, or the ones it brings (lesson 11)."""
    if hasattr(captioner, "decoder"):
        return captioner.decoder()
    return (lambda features: initial_state(captioner, features)), decoder_step(captioner)


def initial_state(captioner: Captioner, features: np.ndarray) -> tuple:
    """``(image_vector, h, c)`` before the first word: the image branch at inference
    (``image_norm`` and ``image_dense``, no dropout) and an all-zero LSTM state (lesson 08)."""
    image_vector = model_image_vector(captioner.sequence, features)
    units = captioner.sequence.get_layer("lstm").cell.units
    zeros = ops.zeros((len(features), units))
    return image_vector, zeros, zeros


def _as_features(captioner, features: np.ndarray) -> np.ndarray:
    """Features as a float32 array of one row per image, in the shape the captioner reads
    (``(n, 2048)`` for the merge model); one image's features alone are accepted too."""
    row = tuple(getattr(captioner, "feature_shape", (FEATURE_DIM,)))
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


def _banned(captioner: Captioner, vocab: Vocabulary) -> np.ndarray:
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


def _log_probs(step: Step, banned: np.ndarray, image_vector, tokens: np.ndarray, state: tuple) -> tuple:
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
    """Next-word probabilities after every prefix of ``words``, one LSTM step at a time (lesson 08).

    ``words`` is ``(n, T)`` ids starting with ``startseq``; the result ``[:, t]`` is what
    the prefix model returns for the prefix ``words[:, :t+1]`` — the numbers greedy and
    beam search run on, computed in T steps instead of T prefix passes.
    """
    start, step = _decoder(captioner)
    context, *state = start(_as_features(captioner, features))
    probabilities = []
    for t in range(np.shape(words)[1]):
        probs, *state = step(context, ops.convert_to_tensor(np.asarray(words)[:, t], "int32"), *state)
        probabilities.append(ops.convert_to_numpy(probs))
    return np.stack(probabilities, axis=1)


def _word_by_word(
    captioner: Captioner,
    vocab: Vocabulary,
    features: np.ndarray,
    steps: int,
    choose: Callable[..., np.ndarray],
    batch_size: int,
) -> list[str]:
    """Write one caption per image, ``choose``-ing each next word from the log-probabilities.

    All images of a batch advance together; an image whose caption has ended is fed
    padding until the whole batch is done or ``steps`` words are written.
    """
    (start, step), banned = _decoder(captioner), _banned(captioner, vocab)
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
    """Caption every image by always taking the most likely next word (lesson 08).

    ``features`` is ``(n, 2048)`` (or one image's ``(2048,)``); the result holds n captions.
    """

    def most_likely(log_probs) -> np.ndarray:
        return ops.convert_to_numpy(ops.argmax(log_probs, axis=1))

    return _word_by_word(captioner, vocab, features, _steps(vocab, max_len), most_likely, batch_size)


def _beam_batch(
    captioner: Captioner, vocab: Vocabulary, features: np.ndarray, steps: int, k: int, alpha: float
) -> list[list[int]]:
    """Beam search for one batch of images; returns each image's best word ids."""
    (start, step), banned, n = _decoder(captioner), _banned(captioner, vocab), len(features)
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
        history = np.concatenate(
            [np.take_along_axis(history, parent[keep][:, :, None], axis=1), tokens[:, :, None]], axis=2
        )
        rows = (np.arange(n)[:, None] * k + parent[keep]).ravel()
        state = tuple(ops.take(s, rows, axis=0) for s in state)
        tokens = tokens.ravel().astype("int32")
    for i, j in zip(*np.nonzero(np.isfinite(scores))):  # max_len reached: live beams compete, unfinished
        finished[i].append((scores[i, j] / history.shape[2] ** alpha, list(history[i, j])))
    return [max(f, key=lambda hypothesis: hypothesis[0], default=(0.0, []))[1] for f in finished]


def beam_search(
    captioner: Captioner,
    vocab: Vocabulary,
    features: np.ndarray,
    beam_width: int = 3,
    max_len: int | None = None,
    alpha: float = ALPHA,
    batch_size: int = BATCH_SIZE,
) -> list[str]:
    """Caption every image with beam search, keeping the ``beam_width`` best partial captions (lesson 08).

    At each step every live beam proposes its best next words; per image the
    ``beam_width`` best-scoring continuations (score = sum of word log-probabilities)
    stay live. A candidate ending in ``endseq`` that ranks among those ``beam_width``
    best is set aside as *finished*; an image is done once it has ``beam_width`` finished
    captions (with ``beam_width=1`` this is exactly :func:`greedy`). At ``max_len`` the
    live beams join the finished ones.

    Length normalisation: the winner is the finished caption with the highest
    ``log P(caption) / length ** alpha``, where ``length`` counts the words written
    including ``endseq``. Every word multiplies in a probability below 1, so the raw
    log-probability (``alpha = 0``) always prefers short captions ("a dog"); dividing by
    the length (``alpha = 1``, the mean log-probability per word) removes that bias
    completely and starts to favour rambling. ``alpha = 0.7`` sits between; it is a starting
    point, not tuned for captions: choose it (and the beam width) on dev (lessons 08 and 09).
    Wu et al. (2016) divide by a different penalty, ``((5 + length) / 6) ** alpha``, tuned on
    translation; their alpha does not carry over.
    """
    if beam_width < 1:
        raise CourseError(f"beam_width must be 1 or more, got {beam_width}.")
    steps = _steps(vocab, max_len)
    captions = []
    for batch in _batches(_as_features(captioner, features), batch_size):
        captions += [vocab.decode(ids) for ids in _beam_batch(captioner, vocab, batch, steps, beam_width, alpha)]
    return captions


def sample(
    captioner: Captioner,
    vocab: Vocabulary,
    features: np.ndarray,
    temperature: float = 1.0,
    seed: int | None = None,
    max_len: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[str]:
    """Caption every image by drawing each next word at random (lesson 08's decoding playground).

    Words are drawn from ``softmax(log p / temperature)``: 1 samples the model's own
    probabilities, below 1 sharpens them towards greedy, above 1 flattens them towards
    word salad. The draw uses the Gumbel-max trick (``argmax(log p / T + Gumbel noise)``
    is an exact sample), which does a whole batch in one line. Same ``seed``, same captions.
    """
    if temperature <= 0:
        raise CourseError(
            f"temperature must be above 0 (try 0.5 to 1.5; use greedy for the limit 0), got {temperature}."
        )
    rng = np.random.default_rng(seed)

    def draw(log_probs) -> np.ndarray:
        return np.argmax(ops.convert_to_numpy(log_probs) / temperature + rng.gumbel(size=log_probs.shape), axis=1)

    return _word_by_word(captioner, vocab, features, _steps(vocab, max_len), draw, batch_size)
