"""The merge captioner of DESIGN section 2 in its two forms, one word at a time, and saved as a bundle (lessons 06-07).

The classic *prefix model* ``(image, padded prefix) -> next word`` and the *sequence model* share their layers.
"""

from __future__ import annotations

import importlib
import json
import weakref
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from helpers.features import FEATURE_SIZE, cache_recipe
from helpers.system.errors import CourseError
from helpers.system.files import atomic_path, read_json, write_json
from helpers.text import Vocabulary

EMBEDDING_DIM, UNITS, DROPOUT = 50, 256, 0.3
#: A bundle names its architecture; this table finds its loader (module, function) and the features it reads.
ARCHITECTURES = {
    "merge": ("helpers.model", "load_captioner", "pooled"),
    "attention": ("helpers.attention", "load_attention_captioner", "grid"),
}


class Captioner(Protocol):
    """What decoding, training and a bundle use of any captioner."""

    architecture: str  # its name in :data:`ARCHITECTURES`
    sequence: keras.Model  # next word at every position of a caption: trained, and saved as model.keras
    prefix: keras.Model | None  # the classic (image, padded prefix) -> next word model, where there is one

    def decoder(self) -> tuple[Callable, Callable]:
        """``(start, step)``: ``start(features) -> (context, h, c)``, ``step(context, tokens, h, c) -> (probs, h, c)``."""


@keras.saving.register_keras_serializable(package="caption_course")
class LastStep(layers.Layer):
    """Each row's output at its last real word: what ``LSTM(return_sequences=False)`` returns on a right-padded input."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # it consumes the LSTM's mask: nothing to pass on

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, sequence, words):
        last = ops.maximum(ops.sum(ops.cast(ops.not_equal(words, 0), "int32"), axis=1) - 1, 0)
        return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0, :]


class MergeCaptioner(NamedTuple):
    """The two views of one set of weights (lesson 06); unpack as ``prefix, sequence = ...``."""

    prefix: keras.Model
    sequence: keras.Model
    architecture = "merge"

    def decoder(self) -> tuple[Callable, Callable]:
        """The one-word decoder of lesson 08: :func:`initial_state` and :func:`decoder_step`."""
        return (lambda features: initial_state(self, features)), decoder_step(self)


def build_layers(vocab_size: int, embedding_matrix: np.ndarray | None = None) -> dict[str, layers.Layer]:
    """The model's layers, created once and named as in the lesson's diagram."""
    return {
        # synchronized: under tf.distribute every replica normalises with the global batch (lesson 10)
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
            raise ValueError(f"embedding_matrix has shape {embedding_matrix.shape}, expected ({vocab_size}, 50)")
        embedding.build((None, None))
        embedding.set_weights([np.asarray(embedding_matrix, dtype="float32")])
    return embedding


def _connect(parts: dict[str, layers.Layer], image, words, every_step: bool):
    """Wire the merge decoder: image branch + words branch -> add -> Dense -> softmax."""
    image_vector = parts["image_dense"](parts["image_dropout"](parts["image_norm"](image)))
    sequence = parts["lstm"](parts["words_dropout"](parts["embedding"](words)))
    if every_step:  # one image vector, added at every time step (broadcast over time)
        image_vector = layers.Reshape((1, UNITS), name="image_per_step")(image_vector)
    else:
        sequence = LastStep(name="last_word")(sequence, words)
    return parts["next_word"](parts["decoder_dense"](parts["merge"]([image_vector, sequence])))


def _models(parts: dict[str, layers.Layer], max_len: int) -> MergeCaptioner:
    image = keras.Input((FEATURE_SIZE,), name="image")
    prefix_words = keras.Input((max_len,), dtype="int32", name="words")
    caption_words = keras.Input((None,), dtype="int32", name="words")
    sequence = keras.Model([image, caption_words], _connect(parts, image, caption_words, True), name="sequence_model")
    prefix = keras.Model([image, prefix_words], _connect(parts, image, prefix_words, False), name="prefix_model")
    return MergeCaptioner(prefix, sequence)


def compile_captioner(captioner: Captioner, learning_rate: float = 1e-3) -> Captioner:
    """Adam and cross-entropy on integer targets for each view; the sequence loss skips padding (class 0)."""
    for model, ignore in ((captioner.prefix, None), (captioner.sequence, 0)):
        if model is not None:
            loss = keras.losses.SparseCategoricalCrossentropy(ignore_class=ignore)
            model.compile(keras.optimizers.Adam(learning_rate), loss)
    return captioner


def build_captioner(vocab_size: int, max_len: int, embedding_matrix: np.ndarray | None = None) -> MergeCaptioner:
    """The compiled prefix and sequence models on one set of layers (lesson 06); ``max_len`` is the prefix model's
    input length, ``vocab_size`` counts padding; with ``embedding_matrix`` (GloVe) the embedding is frozen."""
    return compile_captioner(_models(build_layers(vocab_size, embedding_matrix), max_len))


# ---------------------------------------------------------------- one word at a time (lesson 08)

_compiled_steps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def image_vector(model: keras.Model, features) -> tf.Tensor:
    """The image branch at inference (batch norm's learned statistics, no dropout): (n, 2048) -> (n, 256)."""
    normalized = model.get_layer("image_norm")(ops.convert_to_tensor(features, "float32"), training=False)
    return model.get_layer("image_dense")(normalized)


def initial_state(captioner: MergeCaptioner, features) -> tuple:
    """``(image vector, h, c)`` before the first word: the image branch, and an all-zero LSTM state (lesson 08)."""
    vector = image_vector(captioner.sequence, features)
    zeros = tf.zeros([tf.shape(vector)[0], captioner.sequence.get_layer("lstm").cell.units])
    return vector, zeros, zeros


def decoder_step(captioner: MergeCaptioner) -> Callable:
    """``step(image_vector, tokens, h, c) -> (next-word probabilities, h, c)``, compiled once per model (lesson 08)."""
    model = captioner.sequence
    if model not in _compiled_steps:
        embedding, cell = model.get_layer("embedding"), model.get_layer("lstm").cell
        merge, decoder_dense, next_word = (model.get_layer(n) for n in ("merge", "decoder_dense", "next_word"))

        def step(image_vector, tokens, h, c):
            vectors = ops.take(embedding.embeddings, tokens, axis=0)  # the layer would attach a mask the cell rejects
            output, (h, c) = cell(vectors, [h, c])
            return next_word(decoder_dense(merge([image_vector, output]))), h, c

        _compiled_steps[model] = tf.function(step, reduce_retracing=True)
    return _compiled_steps[model]


# ---------------------------------------------------------------- saved (lesson 07)


def layers_of(model: keras.Model) -> dict[str, layers.Layer]:
    """A built model's layers by name, its inputs left out: the parts to wire into new views of the same weights."""
    return {layer.name: layer for layer in model.layers if not isinstance(layer, layers.InputLayer)}


def load_captioner(path: str | Path, max_len: int) -> MergeCaptioner:
    """A sequence model saved by :func:`save_bundle` (or ``.sequence.save``), with both views around its layers."""

    def rebuild(config: dict[str, dict]) -> keras.Model:
        parts = build_layers(config["next_word"]["units"])
        parts["embedding"].trainable = config["embedding"].get("trainable", True)
        return _models(parts, max_len=1).sequence

    return _models(layers_of(load_sequence(path, rebuild)), max_len)


def load_sequence(path: str | Path, rebuild: Callable[[dict[str, dict]], keras.Model]) -> keras.Model:
    """A saved sequence model, uncompiled; one Keras cannot load (3.15's configs in 3.10) is made anew by
    ``rebuild(configs by layer name)``, and given the file's weights."""
    try:
        return keras.models.load_model(path, compile=False)
    except (TypeError, ValueError):
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("metadata.json")).get("keras_version", "unknown")
            saved_layers = json.loads(archive.read("config.json"))["config"]["layers"]
        sequence = rebuild({layer["config"]["name"]: layer["config"] for layer in saved_layers})
        try:
            sequence.load_weights(path)
        except ValueError:
            raise CourseError(
                f"{path} was saved by Keras {saved}, which this Keras ({keras.__version__}) cannot read: "
                "train the model again here (lesson 07) or use a newer Keras."
            ) from None
        return sequence


class Bundle(NamedTuple):
    """A trained captioner with its vocabulary and how it was made (lesson 07)."""

    captioner: Captioner
    vocab: Vocabulary
    info: dict

    @property
    def feature_kind(self) -> str:
        """The image features the captioner reads: ``pooled`` vectors, or lesson 11's ``grid``."""
        return ARCHITECTURES[self.info.get("architecture", "merge")][2]


BUNDLE_FILES = ("model.keras", "vocab.json", "model.json")


def has_bundle(folder: str | Path) -> bool:
    """Whether ``folder`` holds a whole bundle."""
    return all((Path(folder) / name).exists() for name in BUNDLE_FILES)


def save_bundle(
    captioner: Captioner, vocab: Vocabulary, folder: str | Path, *, dataset: str, fast: bool, cnn_weights: str, **info
) -> Path:
    """Write ``vocab.json``, ``model.json`` (how it was made, ``info``), then ``model.keras`` (lesson 07)."""
    folder = Path(folder)
    kind = ARCHITECTURES[captioner.architecture][2]
    vocab.save(folder / "vocab.json")
    facts = dict(architecture=captioner.architecture, max_len=vocab.max_len, vocab_size=len(vocab), dataset=dataset)
    facts |= dict(fast=fast, cnn_weights=cnn_weights, features=cache_recipe(cnn_weights, kind), keras=keras.__version__)
    write_json(folder / "model.json", {**facts, **info})
    with atomic_path(folder / "model.keras") as tmp:
        captioner.sequence.save(tmp)
    return folder


def load_bundle(folder: str | Path) -> Bundle:
    """Load a bundle for inference (lessons 08-12 and the command line), with the loader its architecture names."""
    folder = Path(folder)
    if missing := [name for name in BUNDLE_FILES if not (folder / name).exists()]:
        raise CourseError(f"{folder} holds no trained model ({', '.join(missing)} missing): run lesson 07 first.")
    info, vocab = read_json(folder / "model.json"), Vocabulary.load(folder / "vocab.json")
    if len(vocab) != info["vocab_size"]:
        raise CourseError(
            f"{folder}/vocab.json has {len(vocab)} words but the model {info['vocab_size']}: train again."
        )
    module, loader, _ = ARCHITECTURES[info.get("architecture", "merge")]
    captioner = getattr(importlib.import_module(module), loader)(folder / "model.keras", info["max_len"])
    return Bundle(captioner, vocab, info)
