"""Training data for the captioner, the classic way and the fast way (lesson 05).

:class:`CaptionPairs` feeds the *prefix model* one pair per word, :func:`caption_dataset` the *sequence model*
whole captions; both take features and captions (lists of ids) grouped by image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

Captions = Sequence[Sequence[int]]
#: Captions grouped by image: ``{image name: captions}`` or a list aligned with feature rows.
GroupedCaptions = Mapping[Any, Captions] | Sequence[Captions]


def captions_by_image(table: pd.DataFrame, vocab, split: str | None = None) -> dict[str, list[list[int]]]:
    """The ``tokens`` of :func:`helpers.text.prepare_text`'s table, encoded, by image, of one ``split`` (lesson 05)."""
    rows = table if split is None else table[table["split"] == split]
    grouped: dict[str, list[list[int]]] = {}
    for image, tokens in zip(rows["image"], rows["tokens"]):
        grouped.setdefault(image, []).append(vocab.encode(tokens))
    return grouped


def _grouped(captions: GroupedCaptions) -> tuple[list, list[Captions]]:
    """Image keys and their caption lists, in a fixed order."""
    if isinstance(captions, Mapping):
        return list(captions.keys()), list(captions.values())
    return list(range(len(captions))), list(captions)


def feature_rows(features, keys: Sequence) -> np.ndarray:
    """The features of some images: rows of an array, or values of a mapping (image names) or a ``FeatureSet``."""
    if hasattr(features, "lookup"):
        return np.asarray(features.lookup(list(keys)), dtype="float32")
    if isinstance(features, np.ndarray):
        return np.asarray(features[list(keys)], dtype="float32")
    return np.stack([np.asarray(features[key], dtype="float32") for key in keys])


def caption_pairs(caption: Sequence[int], max_len: int | None = None) -> list[tuple[list[int], int]]:
    """All ``(prefix, next word)`` pairs of one encoded caption, unpadded, cut to ``max_len + 1`` tokens (lesson 05):
    ``[1, 4, 9, 2]`` (startseq a dog endseq) gives ``([1], 4), ([1, 4], 9), ([1, 4, 9], 2)``."""
    tokens = list(caption if max_len is None else caption[: max_len + 1])
    return [(tokens[:t], tokens[t]) for t in range(1, len(tokens))]


class CaptionPairs(keras.utils.PyDataset):
    """The classic generator: every (image, padded prefix) -> next word pair, for the prefix model (lesson 05). A
    batch holds all pairs of ``images_per_batch`` images; targets are word ids, or one-hot rows (``one_hot``)."""

    def __init__(
        self,
        features,
        captions: GroupedCaptions,
        max_len: int,
        *,
        images_per_batch: int = 3,
        one_hot: bool = False,
        vocab_size: int | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)  # Keras 3 needs this (workers, use_multiprocessing, ...)
        if one_hot and not vocab_size:
            raise ValueError("one_hot=True needs vocab_size (the length of a one-hot row)")
        self.features = features
        self.keys, self.captions = _grouped(captions)
        self.max_len, self.images_per_batch = max_len, images_per_batch
        self.one_hot, self.vocab_size, self.shuffle = one_hot, vocab_size, shuffle
        self.rng, self.order = np.random.default_rng(seed), np.arange(len(self.keys))
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.keys) / self.images_per_batch)

    def __getitem__(self, index: int):
        chosen = self.order[index * self.images_per_batch : (index + 1) * self.images_per_batch]
        vectors = feature_rows(self.features, [self.keys[i] for i in chosen])
        images, prefixes, next_words = [], [], []
        for vector, i in zip(vectors, chosen):
            for caption in self.captions[i]:
                for prefix, next_word in caption_pairs(caption, self.max_len):
                    images.append(vector)
                    prefixes.append(prefix)
                    next_words.append(next_word)
        words = keras.utils.pad_sequences(prefixes, maxlen=self.max_len, padding="post", dtype="int32")
        targets = np.array(next_words, dtype="int32")
        if self.one_hot:
            targets = keras.utils.to_categorical(targets, self.vocab_size).astype("float32")
        return {"image": np.stack(images), "words": words}, targets

    def on_epoch_end(self) -> None:
        """Keras calls this after every epoch: a new image order for the next one."""
        if self.shuffle:
            self.rng.shuffle(self.order)


def teacher_forcing_arrays(captions: GroupedCaptions, max_len: int | None = None) -> tuple[np.ndarray, ...]:
    """Whole captions as three arrays, one row per caption (lesson 05): ``image_rows`` (the position of its image
    in ``captions``), ``inputs`` = ``tokens[:-1]`` and ``targets`` = ``tokens[1:]``, right-padded with 0."""
    _, groups = _grouped(captions)
    end = None if max_len is None else max_len + 1
    cut = [(row, list(caption[:end])) for row, group in enumerate(groups) for caption in group]
    cut = [(row, tokens) for row, tokens in cut if len(tokens) >= 2]
    width = max((len(tokens) - 1 for _, tokens in cut), default=1)
    image_rows, inputs, targets = np.array([row for row, _ in cut], "int32"), *np.zeros((2, len(cut), width), "int32")
    for i, (_, tokens) in enumerate(cut):
        inputs[i, : len(tokens) - 1] = tokens[:-1]
        targets[i, : len(tokens) - 1] = tokens[1:]
    return image_rows, inputs, targets


def caption_dataset(
    features, captions: GroupedCaptions, *, batch_size: int = 64, max_len=None, shuffle=True, buckets=5, seed=None
) -> tf.data.Dataset:
    """The fast path: batches ``({"image": (b, 2048), "words": (b, T)}, targets (b, T))`` of whole captions for
    the sequence model, padded with 0 to the batch's longest; ``buckets > 1`` groups similar lengths (lesson 05)."""
    keys, _ = _grouped(captions)
    return _batches(
        feature_rows(features, keys), np.arange(len(keys)), captions, batch_size, max_len, shuffle, buckets, seed
    )


def stream_caption_dataset(
    store, captions: Mapping[str, Captions], *, batch_size: int = 64, max_len=None, shuffle=True, buckets=5, seed=None
) -> tf.data.Dataset:
    """:func:`caption_dataset`'s batches, features read from ``store``, a memory-mapped FeatureSet (lesson 10)."""
    rows = store.row_numbers(captions.keys())
    return _batches(store.features, rows, captions, batch_size, max_len, shuffle, buckets, seed)


def _batches(array, rows: np.ndarray, captions, batch_size, max_len, shuffle, buckets, seed) -> tf.data.Dataset:
    """Whole captions shuffled, grouped by length, padding trimmed; each batch's image rows read from ``array``."""
    image_rows, inputs, targets = teacher_forcing_arrays(captions, max_len)
    data = tf.data.Dataset.from_tensor_slices((rows[image_rows], inputs, targets))
    if shuffle:
        data = data.shuffle(len(inputs), seed=seed, reshuffle_each_iteration=True)
    lengths = np.count_nonzero(targets, axis=1)
    limits = (
        sorted({int(q) + 1 for q in np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])}) if buckets > 1 else []
    )
    count = lambda row, words, target: tf.math.count_nonzero(target, dtype=tf.int32)  # noqa: E731
    data = data.bucket_by_sequence_length(count, limits, [batch_size] * (len(limits) + 1), no_padding=True)
    # how many batches an epoch has: a progress bar with an end, no "ran out of data"
    per_bucket = np.bincount(np.searchsorted(limits, lengths, side="right"))
    data = data.apply(tf.data.experimental.assert_cardinality(int(np.ceil(per_bucket / batch_size).sum())))
    options = tf.data.Options()  # a batch costs microseconds: left on, the autotuner held training to one of two cores
    options.autotune.enabled = False

    def assemble(batch_rows, words, target):
        image = tf.numpy_function(lambda r: np.asarray(array[r], np.float32), [batch_rows], tf.float32, stateful=False)
        image.set_shape((None, *array.shape[1:]))
        width = tf.reduce_max(tf.math.count_nonzero(target, axis=1, dtype=tf.int32))
        return {"image": image, "words": words[:, :width]}, target[:, :width]

    return data.with_options(options).map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
