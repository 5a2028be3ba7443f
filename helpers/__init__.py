"""Helpers for the image captioning course: the code later lessons reuse.

Each module follows one lesson: ``config`` and ``datasets`` (01), ``text`` (02),
``features`` (03), ``embeddings`` (04), ``generators`` (05), ``model`` (06),
``training`` (07), ``decoding`` (08), ``evaluation`` (09), ``scale`` (10), and
``plotting`` (figures), ``download``, ``files`` and ``errors`` (shared by all).
"""

from __future__ import annotations

import os
import platform
import sys

# Quieter TensorFlow start-up (C++ info lines) unless the learner asked for logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers.errors import CourseError, install_notebook_handler  # noqa: E402
from helpers.quiet import import_tensorflow  # noqa: E402

__all__ = ["CourseError", "setup"]

COLAB_GPU_HINT = "On Colab: Runtime > Change runtime type > T4 GPU, then run the notebook again."


def setup() -> None:
    """Print versions and the compute device; show course errors as one line (every lesson's setup cell)."""
    install_notebook_handler()
    tf = import_tensorflow()  # first, and without TensorFlow's start-up banner (see helpers.quiet)
    import keras

    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s): {', '.join(g.name for g in gpus)}" if gpus else f"CPU only ({os.cpu_count()} cores)"
    print(f"Python {platform.python_version()} | TensorFlow {tf.__version__} | Keras {keras.__version__} | {device}")
    if not gpus and "google.colab" in sys.modules:
        print(COLAB_GPU_HINT)
