"""Tests of helpers.precision: the choice for every kind of machine, bfloat16 features, the rewrite's scope.

The choice is tested with CPU flags and GPU capabilities given, not detected, so every
machine is covered on any machine. The bfloat16 tests run only on a CPU with AMX (they
are skipped elsewhere, saying so); ResNet50 has random weights, on a few small images.
"""

from __future__ import annotations

import json
import platform

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import extractor, features, precision
from helpers.errors import CourseError

AMX_XEON = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}  # Sapphire Rapids and later
COOPER_LAKE_OR_ZEN4 = {"avx2", "avx512f", "avx512_bf16"}  # bfloat16 instructions, no AMX
SKYLAKE_XEON = {"avx2", "avx512f"}  # Colab's CPUs, cloud VMs
LAPTOP = {"avx2", "fma"}
T4, V100, P100, A100 = (7, 5), (7, 0), (6, 0), (8, 0)

THIS_CPU_HAS_BFLOAT16 = precision.choose_precision("auto", precision.cpu_flags(), []) == "bfloat16"
needs_bfloat16 = pytest.mark.skipif(
    not THIS_CPU_HAS_BFLOAT16, reason="this CPU has no amx_bf16: CAPTION_PRECISION=auto keeps float32 here"
)


@pytest.mark.parametrize(
    "setting, flags, gpus, expected",
    [
        ("auto", AMX_XEON, [], "bfloat16"),
        ("auto", COOPER_LAKE_OR_ZEN4, [], "float32"),  # measured slower than float32 without AMX
        ("auto", SKYLAKE_XEON, [], "float32"),  # TensorFlow would emulate bfloat16 there: slower
        ("auto", LAPTOP, [], "float32"),
        ("auto", set(), [], "float32"),  # flags unknown (Windows, Apple silicon)
        ("auto", SKYLAKE_XEON, [T4], "float16"),  # Colab
        ("auto", AMX_XEON, [A100], "float16"),  # the GPU runs the model, not the CPU
        ("auto", AMX_XEON, [P100], "float32"),  # no tensor cores: float32, on the GPU
        ("auto", LAPTOP, [V100, V100], "float16"),
        ("auto", LAPTOP, [A100, P100], "float32"),  # every GPU must have tensor cores
        ("float32", AMX_XEON, [], "float32"),
        ("float32", LAPTOP, [T4], "float32"),
        (" AUTO ", AMX_XEON, [], "bfloat16"),
    ],
)
def test_choice_for_each_kind_of_machine(setting, flags, gpus, expected):
    assert precision.choose_precision(setting, frozenset(flags), gpus) == expected


def test_unknown_setting_is_refused():
    with pytest.raises(CourseError, match="CAPTION_PRECISION"):
        precision.choose_precision("bfloat16", AMX_XEON, [])


def test_describe_says_why():
    assert precision.describe("auto", AMX_XEON, []) == "bfloat16 (CPU has amx_bf16)"
    assert precision.describe("auto", COOPER_LAKE_OR_ZEN4, []) == "float32 (no GPU; CPU lacks amx_bf16)"
    assert precision.describe("auto", LAPTOP, [T4]) == "float16 (GPU compute capability 7.5: tensor cores)"
    assert precision.describe("auto", AMX_XEON, [P100]) == "float32 (GPU compute capability 6.0: no tensor cores)"
    assert precision.describe("float32", AMX_XEON, [T4]) == "float32 (CAPTION_PRECISION=float32)"


def test_this_machine_is_detected():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset) and all(flag == flag.lower() for flag in flags)
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        assert "sse2" in flags
    assert all(len(capability) == 2 for capability in precision.gpu_capabilities())
    assert precision.machine_precision("float32") == "float32"


def test_keras_policy_is_restored():
    with precision.keras_policy("float16"):
        assert keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(RuntimeError), precision.keras_policy("float16"):
        raise RuntimeError("a failed build")
    assert keras.config.dtype_policy().name == "float32"
    with precision.keras_policy("bfloat16"):  # bfloat16 is a graph rewrite: models stay float32
        assert keras.config.dtype_policy().name == "float32"


# ---------------------------------------------------------------- the features


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Six preprocessed 224x224 pictures: smooth colour fields with a few rectangles."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:224, 0:224] / 224
    pictures = []
    for _ in range(6):
        rgb = np.stack([x * rng.uniform(50, 250), y * rng.uniform(50, 250), (x + y) * rng.uniform(20, 120)], axis=-1)
        for _ in range(3):
            x0, y0 = rng.integers(0, 180, size=2)
            rgb[y0 : y0 + 44, x0 : x0 + 44] = rng.uniform(0, 255, size=3)
        pictures.append(rgb)
    return keras.applications.resnet50.preprocess_input(np.stack(pictures).astype(np.float32))


def test_folded_batch_norms_give_the_same_features(images):
    model = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg", input_shape=(224, 224, 3))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # batch-norm statistics like trained ones, not the initial 1s and 0s
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.2, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 0.5, n), rng.uniform(0.05, 3, n)]
            )
    folded = extractor.fold_batch_norms(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    expected = model(images[:2], training=False).numpy()
    assert expected.std() > 0.1  # the comparison means something
    np.testing.assert_allclose(folded(images[:2], training=False).numpy(), expected, rtol=1e-5, atol=1e-5)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize(
    "reduced",
    [
        pytest.param("bfloat16", marks=needs_bfloat16),
        "float16",  # the GPU's precision, run here by TensorFlow's CPU kernels: its numbers, not its speed
    ],
)
def test_reduced_precision_features_agree_with_float32(images, reduced):
    expected = extractor.extractor_function("none", precision="float32")(images)["pooled"].numpy()
    found = extractor.extractor_function("none", precision=reduced)(images)["pooled"]
    assert found.dtype == tf.float32 and found.shape == (6, 2048)
    found = found.numpy()
    assert not np.array_equal(found, expected)  # it did compute in reduced precision
    assert cosines(found, expected).min() >= 0.9999
    # Random-weight features are nearly parallel; what tells images apart must agree too.
    mean = expected.mean(axis=0)
    # bfloat16 0.9984 over 300 workload JPEGs; float16 0.99996 on these images (2-core Xeon)
    assert cosines(found - mean, expected - mean).min() >= 0.995


def test_a_cache_serves_every_precision_and_says_which_made_it(tmp_path, monkeypatch):
    """Features of another precision agree (above), so the cache is shared; meta.json records the precisions."""
    from PIL import Image

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.png")
        Image.new("RGB", (40 + 8 * i, 32), (60 * i, 120, 200)).save(paths[-1])
    first = features.extract_features(paths[:2], weights="none", cache_dir=tmp_path / "cache", precision="float32")
    both = features.extract_features(paths, weights="none", cache_dir=tmp_path / "cache", precision="bfloat16")
    meta = json.loads((features.cache_folder(tmp_path / "cache", "none") / "meta.json").read_text())
    assert meta["computed_in"] == ["bfloat16", "float32"] and len(both) == 3
    np.testing.assert_array_equal(both.lookup(first.images), first.features)  # the float32 rows were reused


# ---------------------------------------------------------------- the rewrite's scope


X = np.full((8, 64), 1 + 2**-9, np.float32)  # 1 + 2^-9 has no bfloat16: it rounds to 1


def matmul_probe() -> tf.function:
    """A new ``tf.function`` whose result is exactly 1 + 2^-9 + 1 in float32 and 2 in bfloat16."""
    return tf.function(lambda x: tf.nn.relu(tf.matmul(x, tf.eye(64))) + 1.0)


def in_float32(result: tf.Tensor) -> bool:
    return result.dtype == tf.float32 and float(tf.reduce_max(result)) == np.float32(2 + 2**-9)


def training_losses(seed: int = 0) -> list[float]:
    """Two training steps of a small LSTM next-word model (sparse targets), from a seed."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6, 8)), keras.layers.LSTM(16), keras.layers.Dense(5, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy())
    rng = np.random.default_rng(seed)
    inputs, targets = rng.normal(size=(32, 6, 8)).astype(np.float32), rng.integers(0, 5, size=32)
    return [float(model.train_on_batch(inputs, targets)) for _ in range(2)]


@needs_bfloat16
def test_bfloat16_stays_inside_its_function():
    before, reference = matmul_probe(), training_losses()
    assert in_float32(before(X))
    wrapped = precision.in_precision(matmul_probe(), "bfloat16")
    assert float(tf.reduce_max(wrapped(X))) == 2.0  # rewritten
    assert not tf.config.optimizer.get_experimental_options().get(precision.BFLOAT16_REWRITE)
    assert in_float32(before(X))  # a function first called before
    assert in_float32(matmul_probe()(X))  # a function first called after
    assert training_losses() == reference  # Keras training after it: float32, the very same numbers
    assert float(tf.reduce_max(wrapped(X))) == 2.0  # and the wrapped function stays bfloat16
    with precision.bfloat16_rewrite():  # the control: under the rewrite, training would change
        assert training_losses() != reference
