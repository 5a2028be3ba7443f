"""helpers.system.precision (lesson 03): auto's choice is measured, kept per machine, and never a precision that
disagrees; bfloat16 and float16 features agree with float32's; the bfloat16 rewrite stays inside its function.

The choice is tested with stubbed measurements, so every kind of machine is covered on any one; the
bfloat16 features run only on a CPU with native bfloat16 (skipped elsewhere, saying so).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import cosines
from helpers import features
from helpers.system import precision

AMX_XEON = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}  # Sapphire Rapids and later
ZEN4 = {"avx2", "avx512f", "avx512_bf16"}  # bfloat16 instructions, no AMX
SKYLAKE_XEON = {"avx2", "avx512f"}  # Colab's CPUs, cloud VMs
LAPTOP = {"avx2", "fma"}
T4, P100 = (7, 5), (6, 0)

NATIVE_BFLOAT16 = "bfloat16" in precision.candidates(precision.cpu_flags(), [])
needs_bfloat16 = pytest.mark.skipif(
    not NATIVE_BFLOAT16, reason="this CPU has no native bfloat16 (avx512_bf16 or amx_bf16)"
)


@pytest.mark.parametrize(
    "flags, gpus, expected",
    [
        (AMX_XEON, [], ["float32", "bfloat16"]),
        (ZEN4, [], ["float32", "bfloat16"]),
        (SKYLAKE_XEON, [], ["float32"]),  # TensorFlow would emulate bfloat16 there
        (set(), [], ["float32"]),  # flags unknown (Windows, Apple silicon)
        (SKYLAKE_XEON, [T4], ["float32", "float16"]),  # Colab: the GPU runs the model
        (AMX_XEON, [P100], ["float32"]),  # no tensor cores
        (LAPTOP, [T4, P100], ["float32"]),  # every GPU must have them
    ],
)
def test_the_candidates_are_what_the_hardware_computes_natively(flags, gpus, expected):
    assert precision.candidates(flags, gpus) == expected


def test_the_cheaper_wins_and_a_precision_that_disagrees_never_does():
    assert precision.choose({"float32": 85.0, "bfloat16": 48.0}, {"bfloat16": 0.99999}) == "bfloat16"
    assert precision.choose({"float32": 40.0, "bfloat16": 48.0}, {"bfloat16": 0.99999}) == "float32"
    assert precision.choose({"float32": 85.0, "bfloat16": 20.0}, {"bfloat16": 0.998}) == "float32"


def stub(timings: dict[str, float], spread: dict[str, float], calls: list):
    """A probe that reports ``timings`` and features ``spread`` away from float32's, counting its calls."""
    base = np.random.default_rng(0).random((4, 16)) + 1

    def measure(options):
        calls.append(options)
        return {
            p: (timings[p], base + spread.get(p, 0.0) * np.random.default_rng(1).normal(size=base.shape))
            for p in options
        }

    return measure


def test_the_verdict_is_measured_once_per_machine_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(ZEN4))
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    record, calls = tmp_path / "precision.json", []
    measure = stub({"float32": 84.1, "bfloat16": 47.8}, {"bfloat16": 1e-4}, calls)
    found = precision.verdict(record, measure)
    assert (
        found["chosen"] == "bfloat16" and calls == [["float32", "bfloat16"]] and found["agreement"]["bfloat16"] > 0.9999
    )
    assert precision.describe(found) == "bfloat16 (measured here: bfloat16 48, float32 84 ms per image)"
    assert precision.verdict(record, measure) == found and len(calls) == 1  # remembered
    monkeypatch.setattr(precision, "machine", lambda: "another CPU | TensorFlow 2.99")  # a new machine or TensorFlow
    assert precision.verdict(record, stub({"float32": 30.0, "bfloat16": 50.0}, {}, calls))["chosen"] == "float32"
    assert len(calls) == 2 and len(precision.read_json(record)) == 2  # both machines' verdicts kept


def test_a_disagreeing_precision_is_reported_and_not_chosen(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(AMX_XEON))
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    found = precision.verdict(None, stub({"float32": 84.0, "bfloat16": 18.0}, {"bfloat16": 0.5}, []))
    assert found["chosen"] == "float32" and "bfloat16 disagreed with float32" in precision.describe(found)


def test_without_a_candidate_nothing_is_measured(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(SKYLAKE_XEON))
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    found = precision.verdict(None, lambda options: pytest.fail("measured"))
    assert found["chosen"] == "float32" and precision.describe(found).startswith("float32 (no native bfloat16")


def test_an_explicit_setting_wins(tmp_path):
    assert features.choose_precision("float32", "none", tmp_path / "never.json") == "float32"
    assert features.choose_precision("bfloat16", "none", tmp_path / "never.json") == "bfloat16"
    assert not (tmp_path / "never.json").exists()


@pytest.mark.slow
@needs_bfloat16
def test_the_real_probe_measures_this_cpu_once(tmp_path, monkeypatch):
    found = features.precision_verdict("none", tmp_path / "precision.json")
    assert set(found["timings"]) == {"float32", "bfloat16"} and min(found["timings"].values()) > 0
    assert found["agreement"]["float32"] == pytest.approx(1.0) and found["agreement"]["bfloat16"] > precision.AGREEMENT
    assert found["chosen"] == min(found["timings"], key=found["timings"].get)
    monkeypatch.setattr(precision, "measure", lambda *a, **k: pytest.fail("measured again"))
    assert features.precision_verdict("none", tmp_path / "precision.json") == found


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
    folded = precision.fold_batch_norms(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    expected = model(images[:2], training=False).numpy()
    assert expected.std() > 0.1  # the comparison means something
    np.testing.assert_allclose(folded(images[:2], training=False).numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "reduced",
    [
        pytest.param("bfloat16", marks=needs_bfloat16),
        "float16",  # the GPU's precision, run here by TensorFlow's CPU kernels: its numbers, not its speed
    ],
)
def test_reduced_precision_features_agree_with_float32(images, reduced):
    expected = features.extractor_function("none", precision="float32")(images)["pooled"].numpy()
    found = features.extractor_function("none", precision=reduced)(images)["pooled"]
    assert found.dtype == tf.float32 and found.shape == (6, 2048)
    found = found.numpy()
    assert not np.array_equal(found, expected)  # it did compute in reduced precision
    assert cosines(found, expected).min() >= 0.9999
    # Random-weight features are nearly parallel; what tells images apart must agree too.
    mean = expected.mean(axis=0)
    # bfloat16 0.9984 over 300 workload JPEGs; float16 0.99996 on these images (2-core Xeon)
    assert cosines(found - mean, expected - mean).min() >= 0.995


def test_a_cache_serves_every_precision(tmp_path):
    """Features of another precision agree (above), so one cache holds rows of both."""
    from PIL import Image

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.png")
        Image.new("RGB", (40 + 8 * i, 32), (60 * i, 120, 200)).save(paths[-1])
    first = features.extract_features(paths[:2], weights="none", cache_dir=tmp_path / "cache", precision="float32")
    both = features.extract_features(paths, weights="none", cache_dir=tmp_path / "cache", precision="bfloat16")
    assert len(both) == 3
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
