"""The image encoder: ResNet50 with ImageNet (or seeded random) weights, as a fast function (introduced in lesson 03).

:func:`build_extractor` is the Keras model lessons look at; :func:`extractor_function` is
what extraction runs: the same network with its batch norms folded into the convolutions
(:func:`fold_batch_norms`), compiled with ``tf.function``, in the precision the machine
computes fastest (:mod:`helpers.precision`: bfloat16 on CPUs with AMX, float16 on GPUs
with tensor cores, float32 elsewhere), returning float32 features.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers.config import CNN_WEIGHTS
from helpers.download import download, md5sum
from helpers.errors import CourseError
from helpers.precision import in_precision, keras_policy

IMAGE_SIZE = (224, 224)
FEATURE_SIZE = 2048
#: ResNet50's last convolutional block at 224 x 224: a 7 x 7 grid of regions (lesson 11).
REGIONS = 49
#: Seed of the random ResNet50 weights (CAPTION_CNN_WEIGHTS=none): same image, same vector
#: (on one machine, or anywhere with CAPTION_PRECISION=float32).
SEED = 0

WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{WEIGHTS_FILE}"


def check_weights(weights: str) -> str:
    """``weights`` in lower case, checked to be 'imagenet' or 'none'."""
    if weights.lower() not in CNN_WEIGHTS:
        raise CourseError(f"CNN weights must be 'imagenet' or 'none', got {weights!r}.")
    return weights.lower()


def build_extractor(weights: str) -> keras.Model:
    """ResNet50 without its top, average-pooled: (batch, 224, 224, 3) -> (batch, 2048) (lesson 03).

    ``weights`` is 'imagenet' or 'none' (random weights, seeded so the same image always
    gives the same vector). Built once per process.
    """
    return _build_extractor(check_weights(weights), "float32")


def _model_precision(precision: str) -> str:
    """The precision the model itself is built in: only float16 has a Keras policy; bfloat16 rewrites the calls."""
    return "float16" if precision == "float16" else "float32"


@functools.cache
def _build_extractor(weights: str, precision: str) -> keras.Model:
    """Built under Keras' ``mixed_float16`` policy for float16, else in float32."""
    with keras_policy(precision):
        model = keras.applications.ResNet50(
            include_top=False, weights=None, pooling="avg", input_shape=(*IMAGE_SIZE, 3)
        )
    if weights == "imagenet":
        model.load_weights(imagenet_weights_file())
    else:
        _seed_weights(model, SEED)
    return model


def _seed_weights(model: keras.Model, seed: int) -> None:
    """Re-draw every convolution kernel from a seeded Glorot initializer (biases and batch norms start constant)."""
    for number, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            layer.kernel.assign(keras.initializers.GlorotUniform(seed=seed + number)(layer.kernel.shape))


def imagenet_weights_path() -> Path:
    """Where Keras keeps the ResNet50 ImageNet weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    return home / "models" / WEIGHTS_FILE


def imagenet_weights_file() -> Path:
    """Path of Keras' cached ResNet50 ImageNet weights (no top), downloaded on first use (lesson 03).

    When the file is missing and cannot be downloaded, raises one CourseError with the three fixes.
    """
    path = imagenet_weights_path()
    if not path.exists():
        try:
            download(WEIGHTS_URL, path, md5=WEIGHTS_MD5, desc="ResNet50 ImageNet weights")
        except (CourseError, OSError) as error:
            raise CourseError(
                f"The ResNet50 ImageNet weights are not in {path.parent} and cannot be downloaded ({error}). "
                f"Fix it one of three ways: connect to the internet once and run again; "
                f"or copy {WEIGHTS_FILE} (MD5 {WEIGHTS_MD5}) into {path.parent}; "
                f"or set CAPTION_CNN_WEIGHTS=none to use random weights (everything runs, captions get worse)."
            ) from None
    elif md5sum(path) != WEIGHTS_MD5:
        raise CourseError(
            f"{path} is damaged (its MD5 is not {WEIGHTS_MD5}): delete it and run again to download it anew."
        )
    return path


def extractor_function(
    weights: str, kinds: tuple[str, ...] = ("pooled",), precision: str = "float32"
) -> Callable[[tf.Tensor], dict]:
    """The extractor as a ``tf.function`` over (batch, 224, 224, 3) float32 batches (lesson 03).

    Calling the model this way, batch after batch, avoids ``model.predict``'s per-call
    overhead; the fixed input signature means one trace for every batch size. It returns
    ``{"pooled": (batch, 2048)}``, and with ``"grid"`` among ``kinds`` also the 7 x 7 grid
    before pooling as ``(batch, 49, 2048)`` (lesson 11): one pass of the network for both.
    ``precision`` is what the network computes in ('float32', 'bfloat16' or 'float16',
    :func:`helpers.precision.machine_precision` chooses); the features are float32 either way.
    """
    return _extractor_function(check_weights(weights), tuple(kinds), precision)


@functools.cache
def _folded(weights: str, precision: str) -> keras.Model:
    return fold_batch_norms(_build_extractor(weights, precision))


@functools.cache
def _extractor_function(weights: str, kinds: tuple[str, ...], precision: str) -> Callable[[tf.Tensor], dict]:
    model = _folded(weights, _model_precision(precision))  # one model for float32 and bfloat16
    signature = [tf.TensorSpec((None, *IMAGE_SIZE, 3), tf.float32)]
    if "grid" not in kinds:

        def forward(batch):
            return {"pooled": tf.cast(model(batch, training=False), tf.float32)}

    else:
        grid_model = keras.Model(model.input, model.get_layer("conv5_block3_out").output)  # the same layers, unpooled

        def forward(batch):
            grid = tf.cast(grid_model(batch, training=False), tf.float32)
            return {"pooled": tf.reduce_mean(grid, axis=[1, 2]), "grid": tf.reshape(grid, (-1, REGIONS, FEATURE_SIZE))}

    return in_precision(tf.function(forward, input_signature=signature), precision)


def fold_batch_norms(model: keras.Model) -> keras.Model:
    """A copy of ResNet50 with every batch norm folded into the convolution before it (lesson 03).

    At inference a batch norm is a fixed scale and shift of each channel,
    ``gamma * (x - mean) / sqrt(variance + epsilon) + beta``. Right after a convolution the
    convolution can do it: its kernel times the scale, its bias shifted. Same features up
    to float rounding (within 1e-5, tests/test_precision.py), and each convolution, its
    bias and its ReLU become one fused oneDNN operation: 23% less CPU time in float32 and
    4.7x the float32 speed in bfloat16 on a CPU with AMX (``make bench``: benchmarks/RESULTS.md,
    "Feature extraction in reduced precision"); unfolded, bfloat16 gained only 1.4x when the
    course was built. ResNet50 names each batch norm
    after its convolution (``conv2_block1_1_conv`` -> ``conv2_block1_1_bn``).
    """

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.layers.BatchNormalization):  # folded into the convolution
            return keras.layers.Lambda(lambda x: x, name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(layer.get_config())

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            norm = model.get_layer(layer.name.removesuffix("_conv") + "_bn")
            gamma, beta, mean, variance = (np.asarray(w, np.float64) for w in norm.get_weights())
            scale = gamma / np.sqrt(variance + norm.epsilon)
            kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
            folded.get_layer(layer.name).set_weights(
                [(kernel * scale).astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]
            )
    return folded
