"""The number format ResNet50 computes the features in, chosen by measuring this machine (lesson 03).

``auto`` measures once per machine the cheapest (bfloat16 on CPUs, float16 on GPUs) that agrees with float32.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from helpers.system.files import read_json, write_json

# TensorFlow and Keras are imported where they are used: the settings printout needs none of this module's imports.
#: CPU flags (Linux spelling) of native bfloat16 arithmetic: bfloat16 is then a candidate.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
#: Smallest CUDA compute capability with tensor cores (Volta): float16 is then a candidate.
TENSOR_CORES = (7, 0)
#: Lowest cosine to the float32 features a precision must reach to be chosen.
AGREEMENT = 0.9999
BFLOAT16_REWRITE = "auto_mixed_precision_onednn_bfloat16"
#: ``measure(candidates) -> {precision: (milliseconds per image, features)}``, run by the probe.
Measure = Callable[[list[str]], dict[str, tuple[float, np.ndarray]]]


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from Linux's ``/proc/cpuinfo`` (none elsewhere: float32 only), lower case."""
    return frozenset(_cpuinfo("flags").lower().split())


def _cpuinfo(key: str) -> str:
    """The first ``/proc/cpuinfo`` line named ``key`` (empty elsewhere)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    found = [value.strip() for name, _, value in (line.partition(":") for line in lines) if name.strip() == key]
    return found[0] if found else ""


def gpu_capabilities() -> list[tuple[int, int]]:
    """CUDA compute capability of each GPU TensorFlow sees (``(7, 5)`` on a Colab T4; ``(0, 0)`` if unknown)."""
    import tensorflow as tf

    return [
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
        for gpu in tf.config.list_physical_devices("GPU")
    ]


def candidates(flags: Iterable[str], gpus: Iterable[tuple[int, int]]) -> list[str]:
    """The precisions worth measuring: float32, and the 16-bit one this hardware computes natively."""
    gpus = [tuple(g) for g in gpus]
    if gpus:  # the model runs on the GPU: the CPU does not matter
        return ["float32", "float16"] if min(gpus) >= TENSOR_CORES else ["float32"]
    return ["float32", "bfloat16"] if set(BFLOAT16_FLAGS) & set(flags) else ["float32"]


def choose(timings: dict[str, float], agreement: dict[str, float], tolerance: float = AGREEMENT) -> str:
    """The cheapest precision whose features agree with float32's to ``tolerance`` (float32 always may)."""
    allowed = [p for p in timings if p == "float32" or agreement.get(p, 0.0) >= tolerance]
    return min(allowed, key=timings.__getitem__)


def machine() -> str:
    """What a verdict holds for: CPU model, a digest of its flags, the GPUs, the TensorFlow version."""
    import tensorflow as tf

    flags = hashlib.sha1(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:8]
    cpu = _cpuinfo("model name") or platform.processor() or platform.machine()
    gpus = ",".join(".".join(map(str, g)) for g in gpu_capabilities()) or "none"
    return f"{cpu} | flags {flags} | GPUs {gpus} | TensorFlow {tf.__version__}"


def cosines(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``features`` to the same row of ``reference``."""
    norms = np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1)
    return (features * reference).sum(axis=1) / np.maximum(norms, 1e-12)


def measure(options: list[str], run: Callable[[str], Callable], images: int = 16, repeats: int = 3) -> dict:
    """``{precision: (ms per image, features)}`` of ``images`` synthetic photos; ``run(precision)`` is the extractor.
    Without a GPU the milliseconds are CPU time (a shared machine's wall clock is noisy)."""
    import keras
    import tensorflow as tf

    rng, (y, x) = np.random.default_rng(0), np.mgrid[0:224, 0:224] / 224
    photos = np.stack([np.stack([x, y, x * y], -1) * rng.uniform(40, 250, 3) for _ in range(images)])
    batch = tf.constant(
        keras.applications.resnet50.preprocess_input(photos + rng.normal(0, 8, photos.shape)).astype(np.float32)
    )
    clock = time.perf_counter if tf.config.list_physical_devices("GPU") else time.process_time
    results = {}
    for option in options:
        forward = run(option)
        forward(batch)  # warm-up: trace and optimise
        spent = []
        for _ in range(repeats):
            start = clock()
            rows = forward(batch)
            spent.append(clock() - start)
        results[option] = (1000 * min(spent) / images, rows)
    return results


def verdict(record: Path | None, measure: Measure) -> dict:
    """``auto``'s choice here and the numbers behind it, measured once per :func:`machine` into ``record``."""
    here, options = machine(), candidates(cpu_flags(), gpu_capabilities())
    if len(options) == 1:
        return {"chosen": "float32", "timings": {}, "agreement": {}, "machine": here}
    known = read_json(record) if record is not None and record.exists() else {}
    if here in known:
        return known[here]
    results = measure(options)
    reference = results["float32"][1]
    timings = {p: round(ms, 2) for p, (ms, _) in results.items()}
    agreement = {p: round(float(cosines(rows, reference).min()), 7) for p, (_, rows) in results.items()}
    found = {"chosen": choose(timings, agreement), "timings": timings, "agreement": agreement, "machine": here}
    if record is not None:
        write_json(record, {**known, here: found})
    return found


def describe(found: dict) -> str:
    """A verdict in one line: ``'bfloat16 (measured here: bfloat16 48, float32 85 ms per image)'``."""
    if found.get("set"):
        return f"{found['chosen']} (CAPTION_PRECISION={found['chosen']})"
    if not found["timings"]:
        return "float32 (no native bfloat16 on this CPU, no tensor-core GPU: nothing to measure)"
    numbers = ", ".join(f"{p} {ms:.0f}" for p, ms in sorted(found["timings"].items(), key=lambda item: item[1]))
    disagree = [p for p, c in found["agreement"].items() if c < AGREEMENT]
    note = f"; {', '.join(disagree)} disagreed with float32 beyond {AGREEMENT}" if disagree else ""
    return f"{found['chosen']} (measured here: {numbers} ms per image{note})"


def summary(setting: str, record: Path) -> str:
    """What a run computes the features in, for the settings printout: the setting, or auto's recorded verdict."""
    if setting != "auto":
        return f"{setting} (CAPTION_PRECISION={setting})"
    if len(candidates(cpu_flags(), gpu_capabilities())) == 1:
        return describe({"timings": {}})
    found = (read_json(record) if record.exists() else {}).get(machine())
    return describe(found) if found else "auto: measured the first time features are extracted here (a few seconds)"


@contextlib.contextmanager
def keras_policy(precision: str) -> Iterator[None]:
    """Build the models inside in ``precision``'s Keras policy (float16: ``mixed_float16``), then restore the old one."""
    import keras

    before = keras.config.dtype_policy()
    if precision == "float16":
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


@contextlib.contextmanager
def bfloat16_rewrite() -> Iterator[None]:
    """Run the ``tf.function`` calls inside with oneDNN's bfloat16 rewrite (process-wide: one thread at a time)."""
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get(BFLOAT16_REWRITE, False)
    tf.config.optimizer.set_experimental_options({BFLOAT16_REWRITE: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({BFLOAT16_REWRITE: before})


def in_precision(function: Callable, precision: str) -> Callable:
    """A ``tf.function`` that computes in bfloat16 when called, float32 in and out; other precisions: ``function``."""
    if precision != "bfloat16":
        return function

    @functools.wraps(function)
    def call(*args, **kwargs):
        with bfloat16_rewrite():
            return function(*args, **kwargs)

    return call


def fold_batch_norms(model):
    """A copy of ResNet50, each batch norm folded into the convolution before it: faster, same features (lesson 03)."""
    import keras

    def clone(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
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
