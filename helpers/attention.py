"""Where to look: a soft-attention captioner beside the merge model (lesson 11).

It reads ResNet50's 7 x 7 grid of region vectors, ``(batch, 49, 2048)``, instead of their
average, and before every word chooses which regions to read (Xu et al. 2015, "Show, Attend
and Tell", soft attention; lesson 11 writes out the equations). Keras 3's ``RNN`` layer takes
no ``constants``, so :class:`AttentionLSTM` runs an ``LSTMCell`` over time with
``keras.ops.scan``; its :meth:`AttentionLSTM.step` is the one step both the whole-caption model
and the word-by-word decoder run. Padding only ever follows a caption's words and the model is
causal, so the loss's ``ignore_class=0`` is all the masking needed.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from helpers.features import FEATURE_SIZE, REGIONS
from helpers.model import DROPOUT, UNITS, compile_captioner, layers_of, load_sequence, word_embedding

Step = Callable[..., tuple]
_compiled_steps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package="caption_course")
class AttentionLSTM(layers.Layer):
    """An LSTM that looks at the image regions before every word (lesson 11).

    ``layer(word_vectors (b, T, E), keys (b, regions, A), values (b, regions, units), h0, c0)``
    returns ``(h, z, alphas)`` at every step: ``(b, T, units)`` twice and ``(b, T, regions)``.
    """

    def __init__(self, units: int = UNITS, attention_units: int = UNITS, **kwargs):
        super().__init__(**kwargs)
        self.units, self.attention_units = units, attention_units
        self.query = layers.Dense(attention_units, use_bias=False, name="state_query")  # W_q
        self.score = layers.Dense(1, use_bias=False, name="attention_score")  # w
        self.cell = layers.LSTMCell(units, name="cell")

    def build(self, word_vectors_shape, keys_shape, values_shape, h0_shape, c0_shape):
        # built here, not on first use: the first use is inside the scan loop, where no weights can be made
        self.query.build(h0_shape)
        self.score.build((None, None, self.attention_units))
        self.cell.build((None, word_vectors_shape[-1] + values_shape[-1]))

    def attend(self, keys, values, h):
        """Where to look, from ``h``: ``alpha`` (batch, regions); what is seen: ``z`` (batch, units)."""
        scores = self.score(ops.tanh(keys + self.query(h)[:, None, :]))[:, :, 0]
        alpha = ops.softmax(scores, axis=-1)
        return ops.einsum("br,bru->bu", alpha, values), alpha

    def step(self, word_vector, keys, values, h, c):
        """One word: look (with ``h_{t-1}``), then read the word and what was seen; returns ``h, c, z, alpha``."""
        z, alpha = self.attend(keys, values, h)
        _, (h, c) = self.cell(ops.concatenate([word_vector, z], axis=-1), [h, c])
        return h, c, z, alpha

    def call(self, word_vectors, keys, values, h0, c0):
        def step(carry, word_vector):
            h, c, _, _ = carry
            carry = self.step(word_vector, keys, values, h, c)
            return carry, carry  # Keras' TensorFlow scan collects outputs shaped like the carry

        start = (h0, c0, ops.zeros_like(values[:, 0, :]), ops.zeros_like(keys[:, :, 0]))
        _, (h, _, z, alpha) = ops.scan(step, start, ops.transpose(word_vectors, (1, 0, 2)))
        return tuple(ops.transpose(x, (1, 0, 2)) for x in (h, z, alpha))  # time-major -> batch-major

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "attention_units": self.attention_units}


class AttentionCaptioner(NamedTuple):
    """Two views of one set of weights (lesson 11): ``sequence`` predicts the next word at every position;
    ``attention`` also returns where it looked, ``alphas`` (batch, T, regions). It has no prefix model."""

    sequence: keras.Model
    attention: keras.Model
    architecture = "attention"
    prefix = None

    def decoder(self) -> tuple[Callable, Step]:
        """``(start, step)`` for the course's decoders: ``start(features) -> (context, h, c)``,
        ``step(context, tokens, h, c) -> (probabilities, h, c)``."""
        return functools.partial(initial_state, self), decoder_step(self)


def build_layers(
    vocab_size: int,
    embedding_matrix: np.ndarray | None = None,
    units: int = UNITS,
    attention_units: int = UNITS,
    lstm: type[AttentionLSTM] = AttentionLSTM,
) -> dict[str, layers.Layer]:
    """The attention captioner's layers, named as in the lesson's equations; ``lstm``: a subclass for exercise 1 (lesson 11)."""
    return {  # the merge model's image branch, applied to every region: batch norm, dropout, Dense(relu)
        "region_norm": layers.BatchNormalization(momentum=0.9, synchronized=True, name="region_norm"),
        "region_dropout": layers.Dropout(DROPOUT, name="region_dropout"),
        "region_dense": layers.Dense(units, activation="relu", name="region_dense"),
        "region_key": layers.Dense(attention_units, name="region_key"),
        "region_mean": layers.GlobalAveragePooling1D(name="region_mean"),
        "init_h": layers.Dense(units, activation="tanh", name="init_h"),
        "init_c": layers.Dense(units, activation="tanh", name="init_c"),
        "embedding": word_embedding(vocab_size, embedding_matrix, mask_zero=False),
        "words_dropout": layers.Dropout(DROPOUT, name="words_dropout"),
        "attention_lstm": lstm(units, attention_units, name="attention_lstm"),
        "merge": layers.Add(name="merge"),
        "decoder_dense": layers.Dense(units, activation="relu", name="decoder_dense"),
        "next_word": layers.Dense(vocab_size, activation="softmax", name="next_word"),
    }


def _encode(parts: dict[str, layers.Layer], image, training: bool | None = None) -> tuple:
    """The image side, once per image: ``((keys, regions), h0, c0)``, the regions projected to 256-d."""
    normalised = parts["region_norm"](image, training=training)
    regions = parts["region_dense"](parts["region_dropout"](normalised, training=training))
    mean = parts["region_mean"](regions)
    return (parts["region_key"](regions), regions), parts["init_h"](mean), parts["init_c"](mean)


def _head(parts: dict[str, layers.Layer], h, z):
    """Next-word probabilities from the LSTM's output and what it saw: Dense(relu) on h + z, then softmax."""
    return parts["next_word"](parts["decoder_dense"](parts["merge"]([h, z])))


def _models(parts: dict[str, layers.Layer], regions: int, feature_dim: int) -> AttentionCaptioner:
    image = keras.Input((regions, feature_dim), name="image")  # float16 features are cast to float32 here
    words = keras.Input((None,), dtype="int32", name="words")
    (keys, values), h0, c0 = _encode(parts, image)
    word_vectors = parts["words_dropout"](parts["embedding"](words))
    h, z, alphas = parts["attention_lstm"](word_vectors, keys, values, h0, c0)
    probabilities = _head(parts, h, z)
    inputs = {"image": image, "words": words}
    return AttentionCaptioner(
        keras.Model(inputs, probabilities, name="attention_sequence_model"),
        keras.Model(inputs, [probabilities, alphas], name="attention_model"),
    )


def build_attention_captioner(
    vocab_size: int,
    embedding_matrix: np.ndarray | None = None,
    regions: int = REGIONS,
    feature_dim: int = FEATURE_SIZE,
    units: int = UNITS,
    attention_units: int = UNITS,
    lstm: type[AttentionLSTM] = AttentionLSTM,
) -> AttentionCaptioner:
    """Build and compile the soft-attention captioner (lesson 11).

    Inputs ``{"image": (batch, regions, feature_dim), "words": (batch, T) ids}``, right-padded
    with 0. As :func:`helpers.model.build_captioner`: ``vocab_size`` counts padding, GloVe is
    frozen. ``units`` sizes the LSTM, ``attention_units`` the scoring layer (smaller in tests).
    """
    parts = build_layers(vocab_size, embedding_matrix, units, attention_units, lstm)
    return compile_captioner(_models(parts, regions, feature_dim))


def load_attention_captioner(path: str | Path, max_len: int | None = None) -> AttentionCaptioner:
    """Lesson 11's saved sequence model, for inference, with both views (``max_len`` is not needed: any length)."""

    def rebuild(config: dict[str, dict]) -> keras.Model:
        units, attention_units = config["region_dense"]["units"], config["region_key"]["units"]
        parts = build_layers(config["next_word"]["units"], units=units, attention_units=attention_units)
        parts["embedding"].trainable = config["embedding"].get("trainable", True)
        _, regions, feature_dim = config["image"]["batch_shape"]
        return _models(parts, regions, feature_dim).sequence

    return attention_captioner_from_sequence(load_sequence(path, rebuild))


def attention_captioner_from_sequence(sequence: keras.Model) -> AttentionCaptioner:
    """Both views around a (loaded) sequence model's layers, uncompiled: no weights are copied (lesson 11)."""
    parts = layers_of(sequence)
    _, regions, feature_dim = sequence.get_layer("image").output.shape
    return _models(parts, regions, feature_dim)


# ------------------------------------------------------------------ word by word (lessons 08 and 11)


def initial_state(captioner: AttentionCaptioner, features) -> tuple:
    """``((keys, regions), h, c)`` before the first word for features ``(n, regions, feature_dim)``, at inference (lesson 11)."""
    return _encode(layers_of(captioner.sequence), ops.cast(features, "float32"), training=False)


def _compiled(captioner: AttentionCaptioner) -> dict[str, Step]:
    """The one-word step, with and without the alphas, compiled once per model with ``tf.function``."""
    model = captioner.sequence
    if model not in _compiled_steps:
        parts = layers_of(model)

        def attend(context, tokens, h, c):
            keys, values = context
            h, c, z, alpha = parts["attention_lstm"].step(parts["embedding"](tokens), keys, values, h, c)
            return _head(parts, h, z), h, c, alpha

        def step(context, tokens, h, c):
            return attend(context, tokens, h, c)[:3]

        _compiled_steps[model] = {
            "step": tf.function(step, reduce_retracing=True),
            "attend": tf.function(attend, reduce_retracing=True),
        }
    return _compiled_steps[model]


def decoder_step(captioner: AttentionCaptioner) -> Step:
    """``step(context, tokens, h, c) -> (next-word probabilities, h, c)``, as the merge model's, compiled once (lesson 11)."""
    return _compiled(captioner)["step"]


def step_attention(captioner: AttentionCaptioner, features, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``words`` (n, T, from ``startseq``) one word at a time: next-word probabilities (n, T, V) and the maps
    (n, T, regions); ``alphas[:, t]`` chose the word after ``words[:, t]``, from the state before reading it (lesson 11)."""
    attend = _compiled(captioner)["attend"]
    context, h, c = initial_state(captioner, features)
    probabilities, alphas = [], []
    for t in range(np.shape(words)[1]):
        probs, h, c, alpha = attend(context, ops.convert_to_tensor(np.asarray(words)[:, t], "int32"), h, c)
        probabilities.append(ops.convert_to_numpy(probs))
        alphas.append(ops.convert_to_numpy(alpha))
    return np.stack(probabilities, axis=1), np.stack(alphas, axis=1)


def attention_weights(captioner: AttentionCaptioner, features, words: np.ndarray) -> np.ndarray:
    """Where the model looked before each word, (n, T, regions): reshape a row to 7 x 7 to lay it over the image (lesson 11)."""
    return step_attention(captioner, features, words)[1]
