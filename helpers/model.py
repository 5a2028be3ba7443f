"""The merge captioner of DESIGN section 2, in its two forms (introduced in lesson 06).

* The **prefix model** is the classic one: ``(image features, padded prefix) -> next word``.
* The **sequence model** runs the same layers over a whole caption at once (teacher
  forcing) and predicts the next word at *every* position.

Both are built from the same layer objects, so training one trains the other. Words are
right-padded with 0 (``padding="post"``), which the masked LSTM skips and which cuDNN
needs on a GPU. The merge ``add`` drops the LSTM's mask (its image input has none), so the
sequence model's loss ignores padding explicitly with ``ignore_class=0``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
from keras import layers, ops

FEATURE_DIM = 2048
EMBEDDING_DIM = 50
UNITS = 256
DROPOUT = 0.3


@keras.saving.register_keras_serializable(package="caption_course")
class LastStep(layers.Layer):
    """Pick each row's output at its last real (non-padding) word.

    ``LSTM(256)`` with ``return_sequences=False`` returns exactly this on a masked,
    right-padded input; picking it from the sequence lets both models share one LSTM.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # it consumes the LSTM's mask: nothing to pass on

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, sequence, words):
        lengths = ops.sum(ops.cast(ops.not_equal(words, 0), "int32"), axis=1)
        last = ops.maximum(lengths - 1, 0)
        return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0, :]


class Captioner(NamedTuple):
    """The two views of one set of weights; unpack as ``prefix, sequence = ...``."""

    prefix: keras.Model
    sequence: keras.Model


def build_layers(vocab_size: int, embedding_matrix: np.ndarray | None = None) -> dict[str, layers.Layer]:
    """Create the model's layers once, named as in the lesson's diagram."""
    return {
        # synchronized: under tf.distribute every replica normalises with the global batch statistics
        # (lesson 10); momentum 0.9: the running averages used at inference settle within a short run
        "image_norm": layers.BatchNormalization(momentum=0.9, synchronized=True, name="image_norm"),
        "image_dropout": layers.Dropout(DROPOUT, name="image_dropout"),
        "image_dense": layers.Dense(UNITS, activation="relu", name="image_dense"),
        "embedding": word_embedding(vocab_size, embedding_matrix, mask_zero=True),
        "words_dropout": layers.Dropout(DROPOUT, name="words_dropout"),
        "lstm": layers.LSTM(UNITS, return_sequences=True, name="lstm"),
        "merge": layers.Add(name="merge"),
        "decoder_dense": layers.Dense(UNITS, activation="relu", name="decoder_dense"),
        "next_word": layers.Dense(vocab_size, activation="softmax", name="next_word"),
    }


def word_embedding(vocab_size: int, embedding_matrix: np.ndarray | None, mask_zero: bool) -> layers.Embedding:
    """The ``embedding`` layer: from ``embedding_matrix`` (GloVe, lesson 04) and frozen, or random and trained."""
    embedding = layers.Embedding(
        vocab_size, EMBEDDING_DIM, mask_zero=mask_zero, trainable=embedding_matrix is None, name="embedding"
    )
    if embedding_matrix is not None:
        if embedding_matrix.shape != (vocab_size, EMBEDDING_DIM):
            raise ValueError(
                f"embedding_matrix has shape {embedding_matrix.shape}, expected ({vocab_size}, {EMBEDDING_DIM})"
            )
        embedding.build((None, None))
        embedding.set_weights([np.asarray(embedding_matrix, dtype="float32")])
    return embedding


def image_vector(model: keras.Model, features) -> keras.KerasTensor:
    """The image branch at inference (batch norm with its learned statistics, no dropout): (n, 2048) -> (n, 256)."""
    normalized = model.get_layer("image_norm")(ops.convert_to_tensor(features, "float32"), training=False)
    return model.get_layer("image_dense")(normalized)


def _connect(parts: dict[str, layers.Layer], image, words, every_step: bool):
    """Wire the merge decoder: image branch + words branch -> add -> Dense -> softmax."""
    image_vector = parts["image_dense"](parts["image_dropout"](parts["image_norm"](image)))
    sequence = parts["lstm"](parts["words_dropout"](parts["embedding"](words)))
    if every_step:  # one image vector, added at every time step (broadcast over time)
        image_vector = layers.Reshape((1, UNITS), name="image_per_step")(image_vector)
    else:
        sequence = LastStep(name="last_word")(sequence, words)
    merged = parts["merge"]([image_vector, sequence])
    return parts["next_word"](parts["decoder_dense"](merged))


def _models(parts: dict[str, layers.Layer], max_len: int) -> Captioner:
    image = keras.Input((FEATURE_DIM,), name="image")
    prefix_words = keras.Input((max_len,), dtype="int32", name="words")
    caption_words = keras.Input((None,), dtype="int32", name="words")
    sequence = keras.Model([image, caption_words], _connect(parts, image, caption_words, True), name="sequence_model")
    prefix = keras.Model([image, prefix_words], _connect(parts, image, prefix_words, False), name="prefix_model")
    return Captioner(prefix, sequence)


def compile_captioner(captioner: Captioner, learning_rate: float = 1e-3) -> Captioner:
    """Adam and cross-entropy on integer targets; the sequence loss skips padding (class 0)."""
    captioner.prefix.compile(keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy())
    captioner.sequence.compile(
        keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy(ignore_class=0)
    )
    return captioner


def build_captioner(vocab_size: int, max_len: int, embedding_matrix: np.ndarray | None = None) -> Captioner:
    """Build and compile the prefix and sequence models from one set of layers.

    ``vocab_size`` counts index 0 (padding); ``max_len`` is the prefix model's input
    length (the sequence model takes any length). With ``embedding_matrix`` (GloVe,
    ``(vocab_size, 50)``) the embedding is initialised from it and frozen.
    """
    return compile_captioner(_models(build_layers(vocab_size, embedding_matrix), max_len))


def captioner_from_sequence(sequence: keras.Model, max_len: int) -> Captioner:
    """Rebuild both views around a (loaded) sequence model's layers: no weights are copied."""
    names = (
        "image_norm",
        "image_dropout",
        "image_dense",
        "embedding",
        "words_dropout",
        "lstm",
        "merge",
        "decoder_dense",
        "next_word",
    )
    return _models({name: sequence.get_layer(name) for name in names}, max_len)


def save_captioner(captioner: Captioner, path: str | Path) -> None:
    """Save the sequence model (the prefix model is rebuilt from its layers on load)."""
    from helpers.files import atomic_path

    with atomic_path(path) as tmp:
        captioner.sequence.save(tmp)


def load_captioner(path: str | Path, max_len: int, compile: bool = True) -> Captioner:
    """Load a model saved by :func:`save_captioner`, with both views sharing its layers.

    ``compile=False`` loads it for inference only, without the optimizer state saved with it.
    """
    try:
        sequence = keras.models.load_model(path, compile=compile)
    except (TypeError, ValueError):  # e.g. a file from a newer Keras, with layer options this one does not know
        sequence = rebuild_from_archive(path, _sequence_from_config)
    return captioner_from_sequence(sequence, max_len)


def _sequence_from_config(config: dict[str, dict]) -> keras.Model:
    parts = build_layers(config["next_word"]["units"])
    parts["embedding"].trainable = config["embedding"].get("trainable", True)
    return _models(parts, max_len=1).sequence


def rebuild_from_archive(path: str | Path, build: Callable[[dict[str, dict]], keras.Model]) -> keras.Model:
    """The sequence model ``build`` makes from the saved layers' configs (by name), with the weights of ``path``.

    A file saved by a newer Keras can hold layer options an older one cannot read (Keras
    3.15 writes ``renorm`` into BatchNormalization's config, which Keras 3.10 rejects: a
    model trained locally, continued on Colab). The layers are the course's own, so only
    their sizes and the weights are taken from the file (lesson 07; lesson 11's model too).
    """
    from helpers.errors import CourseError

    with zipfile.ZipFile(path) as archive:
        saved = json.loads(archive.read("metadata.json")).get("keras_version", "unknown")
        layers_saved = json.loads(archive.read("config.json"))["config"]["layers"]
    sequence = build({layer["config"]["name"]: layer["config"] for layer in layers_saved})
    try:
        sequence.load_weights(path)
    except ValueError:
        raise CourseError(
            f"{path} was saved by Keras {saved}, which this Keras ({keras.__version__}) cannot read: "
            "train the model again here (lesson 07) or use a newer Keras."
        ) from None
    return sequence
