"""The number format ResNet50 computes the image features in (introduced in lesson 03).

Feature extraction is the course's heaviest computation, and recent hardware does
convolutions much faster in 16-bit floating point than in 32-bit:

* **bfloat16 on CPUs with AMX** (Intel Xeon since Sapphire Rapids: the ``amx_bf16`` CPU
  flag). TensorFlow's oneDNN graph rewrite turns the extractor's convolutions into
  bfloat16 ones run by the AMX tile units: 4.7x the float32 speed by CPU time on a 2-core
  Xeon, with the batch norms folded into the convolutions (``make bench``,
  benchmarks/RESULTS.md). ``avx512_bf16`` without AMX (Cooper Lake, AMD Zen 4) is not
  enough: with oneDNN held to that instruction set, bfloat16 ran at 0.67x float32's speed.
* **float16 on NVIDIA GPUs with tensor cores** (compute capability 7.0 or more: V100,
  T4 on Colab, A100, ...), through Keras' ``mixed_float16`` policy.
* **float32** everywhere else, and whenever ``CAPTION_PRECISION=float32``.

Only the arithmetic inside the network changes: the features come out (and are stored)
as float32, and agree with float32's to a cosine of 0.9999 or better
(``tests/test_precision.py``). The choice is a pure function of the setting and of what
the machine reports (:func:`choose_precision`), so it can be tested for any machine.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import keras
import tensorflow as tf

from helpers.errors import CourseError

SETTINGS = ("auto", "float32")
#: CPU flags (Linux /proc/cpuinfo spelling) under which bfloat16 extraction is faster than float32.
BFLOAT16_CPU_FLAGS = ("amx_bf16",)
#: Smallest CUDA compute capability with tensor cores (Volta).
TENSOR_CORES = (7, 0)
#: TensorFlow's grappler option that rewrites a graph's float32 convolutions and matmuls to bfloat16.
BFLOAT16_REWRITE = "auto_mixed_precision_onednn_bfloat16"


# ---------------------------------------------------------------- what the machine has


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, lower case (``avx512_bf16``, ``amx_bf16``, ...) (lesson 03).

    Linux: the ``flags`` line of ``/proc/cpuinfo`` (``Features`` on ARM). macOS: the
    ``machdep.cpu`` feature lists of ``sysctl`` (Intel Macs; spelled as macOS spells them).
    Anything else, or when they cannot be read: an empty set, which means float32.
    """
    if platform.system() == "Darwin":
        return _sysctl_flags()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            return frozenset(value.lower().split())
    return frozenset()


def _sysctl_flags() -> frozenset[str]:
    """macOS: ``sysctl machdep.cpu.features machdep.cpu.leaf7_features``, lower case (empty on Apple silicon)."""
    try:
        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(done.stdout.lower().split())


def gpu_capabilities() -> list[tuple[int, int]]:
    """CUDA compute capability of each GPU TensorFlow sees, e.g. ``[(7, 5)]`` on a Colab T4 (lesson 03).

    Empty without a GPU; a GPU that reports none (not CUDA) counts as ``(0, 0)``.
    """
    return [
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
        for gpu in tf.config.list_physical_devices("GPU")
    ]


# ---------------------------------------------------------------- the choice


def choose_precision(setting: str, cpu_flags: Iterable[str], gpu_capabilities: Iterable[tuple[int, int]]) -> str:
    """``'bfloat16'``, ``'float16'`` or ``'float32'``: the precision the extractor runs in (lesson 03).

    The rule, for ``setting`` ``'auto'`` (``'float32'`` always gives float32):

    1. With a GPU, the model runs there: float16 if every GPU has tensor cores
       (compute capability 7.0 or more), else float32. The CPU does not matter.
    2. Without one: bfloat16 if the CPU has AMX (``amx_bf16``), else float32.

    Everything else keeps float32, so no machine gets slower: without AMX or tensor cores
    16-bit arithmetic is emulated or barely faster (see the module docstring).
    """
    setting = setting.strip().lower()
    if setting not in SETTINGS:
        raise CourseError(f"CAPTION_PRECISION must be 'auto' or 'float32', got {setting!r}.")
    gpus = list(gpu_capabilities)
    if setting == "float32":
        return "float32"
    if gpus:
        return "float16" if min(tuple(c) for c in gpus) >= TENSOR_CORES else "float32"
    return "bfloat16" if set(BFLOAT16_CPU_FLAGS) & set(cpu_flags) else "float32"


def describe(setting: str, cpu_flags: Iterable[str], gpu_capabilities: Iterable[tuple[int, int]]) -> str:
    """The choice and its reason in a few words, for the settings printout (lesson 03).

    E.g. ``'bfloat16 (CPU has amx_bf16)'`` or ``'float32 (no GPU; CPU lacks amx_bf16)'``.
    """
    flags, gpus = frozenset(cpu_flags), [tuple(c) for c in gpu_capabilities]
    precision = choose_precision(setting, flags, gpus)
    if setting.strip().lower() == "float32":
        return "float32 (CAPTION_PRECISION=float32)"
    if gpus:
        capability = ".".join(map(str, min(gpus)))
        cores = "tensor cores" if precision == "float16" else "no tensor cores"
        return f"{precision} (GPU compute capability {capability}: {cores})"
    if precision == "bfloat16":
        return f"bfloat16 (CPU has {', '.join(sorted(set(BFLOAT16_CPU_FLAGS) & flags))})"
    return f"float32 (no GPU; CPU lacks {' and '.join(BFLOAT16_CPU_FLAGS)})"


def _this_machine(setting: str) -> tuple[frozenset[str], list[tuple[int, int]]]:
    """This machine's CPU flags, and its GPUs when ``setting`` is auto (no GPU query otherwise)."""
    return cpu_flags(), gpu_capabilities() if setting.strip().lower() == "auto" else []


def machine_precision(setting: str) -> str:
    """:func:`choose_precision` for this machine: its CPU flags and GPUs (lesson 03).

    A precision itself ('bfloat16', 'float16') is taken as it is: benchmarks and tests force one.
    """
    if setting in ("bfloat16", "float16"):
        return setting
    return choose_precision(setting, *_this_machine(setting))


def describe_machine(setting: str) -> str:
    """:func:`describe` for this machine, e.g. ``'bfloat16 (CPU has amx_bf16)'`` (setup cell, settings, doctor)."""
    return describe(setting, *_this_machine(setting))


# ---------------------------------------------------------------- running in it


@contextlib.contextmanager
def keras_policy(precision: str) -> Iterator[None]:
    """Build the Keras models inside in ``precision``'s Keras dtype policy, then restore the old one (lesson 03).

    Only float16 has one here (``mixed_float16``: float32 weights, float16 arithmetic);
    bfloat16 is done by a graph rewrite instead (:func:`bfloat16_rewrite`), so its
    models are built in float32. Its numbers are tested on the CPU's kernels
    (``tests/test_precision.py``); its speed needs a GPU, which CI has not.
    """
    before = keras.config.dtype_policy()
    if precision == "float16":
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


@contextlib.contextmanager
def bfloat16_rewrite() -> Iterator[None]:
    """Run the ``tf.function`` calls inside with TensorFlow's oneDNN bfloat16 rewrite (lesson 03).

    The option is process-wide and TensorFlow optimises a function's graph again whenever
    its optimiser options change, so it is switched on for the calls inside only: every
    other function (a Keras training step, say) keeps computing in float32. The function
    called inside is optimised in bfloat16 on its first call there and reused after (a
    function first called before the first bfloat16 call is optimised once more after it,
    still in float32). Single-threaded use: a ``tf.function`` another thread calls
    meanwhile would be rewritten too.
    """
    before = tf.config.optimizer.get_experimental_options().get(BFLOAT16_REWRITE, False)
    tf.config.optimizer.set_experimental_options({BFLOAT16_REWRITE: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({BFLOAT16_REWRITE: before})


def in_precision(function: Callable, precision: str) -> Callable:
    """``function`` (a ``tf.function``) made to compute in ``precision`` when called (lesson 03).

    bfloat16: every call runs inside :func:`bfloat16_rewrite` (the rewrite keeps the
    function's inputs and outputs float32). float16 and float32: ``function`` itself (a
    float16 model gets its precision when it is built, under :func:`keras_policy`; cast
    its outputs to float32 inside ``function``). Fold the model's batch norms first
    (:func:`helpers.extractor.fold_batch_norms`): without that, bfloat16 gains little.
    """
    if precision != "bfloat16":
        return function

    @functools.wraps(function)
    def call(*args, **kwargs):
        with bfloat16_rewrite():
            return function(*args, **kwargs)

    return call
