"""Where to look: a soft-attention captioner beside the merge model (introduced in lesson 11).

The merge model of lesson 06 sees one pooled 2048-d vector per image: by the time the
decoder starts, *where* things were is averaged away. This captioner keeps ResNet50's last
convolutional block before pooling, a 7 x 7 grid of 2048-d region vectors given as
``(batch, 49, 2048)``, and lets the decoder choose, before every word, which regions to
read (Xu et al. 2015, "Show, Attend and Tell", soft attention). As implemented, with
``r_i`` the 49 region vectors, ``y_t`` the current input word and ``h, c`` the LSTM's state::

    a_i   = relu(BatchNorm(W_a r_i))                     region_dense, region_norm, region_relu
    k_i   = W_k a_i + b_k                               region_key: what each region offers for scoring
    h_0   = tanh(W_h mean_i(a_i) + b_h)                 init_h   (c_0 likewise: init_c)
    e_ti  = w^T tanh(k_i + W_q h_{t-1})                 additive (Bahdanau) score of region i
    alpha_t = softmax over the regions of e_t           where to look: 49 weights that sum to 1
    z_t   = sum_i alpha_ti a_i                          what is seen there
    h_t, c_t = LSTM([E y_t ; z_t], h_{t-1}, c_{t-1})     embedding
    p_t   = softmax(W_o relu(W_d (h_t + z_t) + b_d) + b_o)   merge, decoder_dense, next_word

In training, dropout (0.3) hits the word vectors and the image features, as in the merge
model. On the image it drops the same feature channels in all 49 regions of an image:
dropping channel j everywhere is dropping channel j of the regions' mean, the merge model's
pooled vector, and it draws 2,048 random numbers per image instead of 100,352.

Attention reads the regions *projected* to 256-d (``a_i``: the merge model's image branch,
Dense(256, relu) after batch norm, applied to every region), not the raw 2048-d ones. Projecting
first is what makes attention affordable: the 2048 x 256 projection runs once per region
per image (ResNet50's vectors are 4 times as long as the VGG ones of Xu et al.) and all that
follows is 256-d: scoring a region costs 256 x 256 multiply-adds instead of 2048 x 256, the
LSTM reads a 306-d input at every step instead of 2,098-d, the initial state comes from a
256-d mean, and ``z_t`` lands in the LSTM's space, where the output layer adds it to ``h_t``
(a small version of Xu's "deep output"). For the same reason the batch norm sits after the
projection (256 numbers per region to normalise, not 2048; its shift replaces the Dense bias).
Lesson 11 measures what attention costs against the merge model on the same data.

Keras 3's ``RNN`` layer has no ``constants`` argument, so the regions cannot ride along
with each step's input. :class:`AttentionLSTM` runs an ``LSTMCell`` over time itself with
``keras.ops.scan``; the keys and the projected regions are computed before the loop and
captured by the step function. Its :meth:`AttentionLSTM.step` is the one step both the
whole-caption model and the word-by-word decoder run.

Padding: words are right-padded with 0 and the model is causal, so padding can only come
*after* a caption's real words and never changes them. At padded positions the loop simply
carries on (it reads word 0, attends, predicts): those outputs mean nothing, and the loss
skips them (``ignore_class=0``). No mask is needed inside the loop.
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

from helpers.extractor import REGIONS
from helpers.model import DROPOUT, FEATURE_DIM, UNITS, rebuild_from_archive, word_embedding

Step = Callable[..., tuple]
_compiled_steps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package="caption_course")
class AttentionLSTM(layers.Layer):
    """An LSTM that looks at the image regions before every word (lesson 11).

    Called as ``layer(word_vectors, keys, values, h0, c0)`` with word vectors
    ``(batch, T, E)``, keys ``(batch, regions, attention_units)``, values
    ``(batch, regions, units)`` and the initial state ``(batch, units)`` twice; returns
    ``(h, z, alphas)`` at every step: ``(batch, T, units)``, ``(batch, T, units)``,
    ``(batch, T, regions)``.
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
    """Two views of one set of weights (lesson 11): ``sequence`` predicts the next word at every
    position; ``attention`` also returns where it looked, ``alphas`` (batch, T, regions)."""

    sequence: keras.Model
    attention: keras.Model

    @property
    def feature_shape(self) -> tuple[int, int]:
        """``(regions, feature_dim)``: one image's features, the shape the decoders check."""
        return tuple(self.sequence.get_layer("image").output.shape[1:])

    def decoder(self) -> tuple[Callable, Step]:
        """``(start, step)`` for the course's batched decoders: ``start(features) -> (context, h, c)``
        and ``step(context, tokens, h, c) -> (probabilities, h, c)``."""
        return functools.partial(initial_state, self), decoder_step(self)


def build_layers(
    vocab_size: int,
    embedding_matrix: np.ndarray | None = None,
    units: int = UNITS,
    attention_units: int = UNITS,
) -> dict[str, layers.Layer]:
    """Create the attention captioner's layers once, named as in the lesson's diagram (lesson 11)."""
    return {
        # the same feature channels dropped in every region of an image (see the module's docstring)
        "region_dropout": layers.Dropout(DROPOUT, noise_shape=(None, 1, None), name="region_dropout"),
        "region_dense": layers.Dense(units, use_bias=False, name="region_dense"),
        # as the merge model's image_norm (synchronized for lesson 10's several GPUs)
        "region_norm": layers.BatchNormalization(momentum=0.9, synchronized=True, name="region_norm"),
        "region_relu": layers.Activation("relu", name="region_relu"),
        "region_key": layers.Dense(attention_units, name="region_key"),
        "region_mean": layers.GlobalAveragePooling1D(name="region_mean"),
        "init_h": layers.Dense(units, activation="tanh", name="init_h"),
        "init_c": layers.Dense(units, activation="tanh", name="init_c"),
        "embedding": word_embedding(vocab_size, embedding_matrix, mask_zero=False),
        "words_dropout": layers.Dropout(DROPOUT, name="words_dropout"),
        "attention_lstm": AttentionLSTM(units, attention_units, name="attention_lstm"),
        "merge": layers.Add(name="merge"),
        "decoder_dense": layers.Dense(units, activation="relu", name="decoder_dense"),
        "next_word": layers.Dense(vocab_size, activation="softmax", name="next_word"),
    }


def _encode(parts: dict[str, layers.Layer], image, training: bool | None = None) -> tuple:
    """The image side, once per image: ``((keys, regions), h0, c0)``, the regions projected to 256-d."""
    projected = parts["region_dense"](parts["region_dropout"](image, training=training))
    regions = parts["region_relu"](parts["region_norm"](projected, training=training))
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


def compile_attention_captioner(captioner: AttentionCaptioner, learning_rate: float = 1e-3) -> AttentionCaptioner:
    """Adam and cross-entropy on integer targets, skipping padding (class 0), as for the merge model.

    Only the ``sequence`` view is trained; the ``attention`` view shares its weights.
    """
    captioner.sequence.compile(
        keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy(ignore_class=0)
    )
    return captioner


def build_attention_captioner(
    vocab_size: int,
    embedding_matrix: np.ndarray | None = None,
    regions: int = REGIONS,
    feature_dim: int = FEATURE_DIM,
    units: int = UNITS,
    attention_units: int = UNITS,
) -> AttentionCaptioner:
    """Build and compile the soft-attention captioner (lesson 11).

    Inputs ``{"image": (batch, regions, feature_dim), "words": (batch, T) int ids}``, words
    right-padded with 0, any length. ``vocab_size`` counts index 0 (padding); with
    ``embedding_matrix`` (GloVe, ``(vocab_size, 50)``) the embedding starts from it and is
    frozen. ``units`` sizes the LSTM, ``attention_units`` the scoring layer (smaller in tests).
    """
    parts = build_layers(vocab_size, embedding_matrix, units, attention_units)
    return compile_attention_captioner(_models(parts, regions, feature_dim))


def load_attention_captioner(path: str | Path) -> AttentionCaptioner:
    """Load lesson 11's saved sequence model for inference, with both views (lesson 11).

    A file from a newer Keras is rebuilt as :func:`helpers.model.load_captioner` does.
    """
    try:
        sequence = keras.models.load_model(path, compile=False)
    except (TypeError, ValueError):  # e.g. Keras 3.15's BatchNormalization options read by Keras 3.10
        sequence = rebuild_from_archive(path, _sequence_from_config)
    return attention_captioner_from_sequence(sequence)


def _sequence_from_config(config: dict[str, dict]) -> keras.Model:
    parts = build_layers(
        config["next_word"]["units"],
        units=config["region_dense"]["units"],
        attention_units=config["region_key"]["units"],
    )
    parts["embedding"].trainable = config["embedding"].get("trainable", True)
    _, regions, feature_dim = config["image"]["batch_shape"]
    return _models(parts, regions, feature_dim).sequence


def attention_captioner_from_sequence(sequence: keras.Model) -> AttentionCaptioner:
    """Rebuild both views around a (loaded) sequence model's layers: no weights are copied (lesson 11).

    The views come back uncompiled, as :func:`helpers.model.captioner_from_sequence` returns them.
    """
    parts = _parts(sequence)
    _, regions, feature_dim = sequence.get_layer("image").output.shape
    return _models(parts, regions, feature_dim)


# ------------------------------------------------------------------ word by word (lessons 08 and 11)


def _parts(sequence: keras.Model) -> dict[str, layers.Layer]:
    """The :func:`build_layers` parts of a sequence model, by name: its layers but the inputs."""
    return {layer.name: layer for layer in sequence.layers if not isinstance(layer, layers.InputLayer)}


def initial_state(captioner: AttentionCaptioner, features) -> tuple:
    """``(context, h, c)`` before the first word, for features ``(n, regions, feature_dim)`` (lesson 11).

    ``context = (keys, regions)`` holds every image's projected regions and their keys, one row
    per image; ``h, c`` is the LSTM state made from the regions' mean. Inference mode:
    ``region_norm`` uses its learned statistics, no dropout.
    """
    return _encode(_parts(captioner.sequence), ops.cast(features, "float32"), training=False)


def _compiled(captioner: AttentionCaptioner) -> dict[str, Step]:
    """The one-word step, with and without the alphas, compiled once per model with ``tf.function``."""
    model = captioner.sequence
    if model not in _compiled_steps:
        parts = _parts(model)

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
    """``step(context, tokens, h, c) -> (next-word probabilities, h, c)`` for a batch (lesson 11).

    ``tokens`` (n,) int32 holds the newest word of every row; start from :func:`initial_state`.
    The same protocol as :func:`helpers.decoding.decoder_step`, so greedy and beam search can
    run it; compiled once per model.
    """
    return _compiled(captioner)["step"]


def step_attention(captioner: AttentionCaptioner, features, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``words`` (n, T) (starting with ``startseq``) one word at a time (lesson 11).

    Returns the next-word probabilities (n, T, V) and where the model looked before each
    word, alphas (n, T, regions): ``alphas[:, t]`` is the map it used to predict the word
    after ``words[:, t]``. The numbers of the whole-caption model, computed as a decoder would.
    """
    attend = _compiled(captioner)["attend"]
    context, h, c = initial_state(captioner, features)
    probabilities, alphas = [], []
    for t in range(np.shape(words)[1]):
        probs, h, c, alpha = attend(context, ops.convert_to_tensor(np.asarray(words)[:, t], "int32"), h, c)
        probabilities.append(ops.convert_to_numpy(probs))
        alphas.append(ops.convert_to_numpy(alpha))
    return np.stack(probabilities, axis=1), np.stack(alphas, axis=1)


def attention_weights(captioner: AttentionCaptioner, features, words: np.ndarray) -> np.ndarray:
    """Where the model looked before each word, (n, T, regions) (lesson 11's attention maps).

    Give it a generated caption's ids with ``startseq`` first: ``alphas[:, t]`` is the map
    that chose the word after ``words[:, t]``. Reshape a row to 7 x 7 to lay it over the image.
    """
    return step_attention(captioner, features, words)[1]
