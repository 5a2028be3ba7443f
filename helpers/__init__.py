"""Helpers for the image captioning course: the code later lessons reuse.

Each module does one job, for the lesson that introduces it:

* 01: ``config`` (settings), ``datasets`` (one shape for every dataset), ``flickr8k``,
  ``caption_files`` (reading caption and split files), ``shapes`` (the offline dataset),
  ``images`` (checking and reading image files);
* 02 ``text``; 03 ``features``, ``feature_cache``, ``extractor`` and ``precision``; 04 ``embeddings``; 05 ``generators``;
  06 ``model``; 07 ``training`` and ``bundle``; 08 ``decoding`` and ``photos``;
  09 ``evaluation``; 10 ``karpathy`` (Flickr30k, COCO) and ``distribute``; 11 ``attention``;
* ``course``: the preparation chain lessons 05-11 start from;
* shared: ``plotting``, ``download``, ``files``, ``errors``, ``quiet`` (TensorFlow's start-up),
  ``colab`` (Google Drive, versions), ``compat`` (workarounds for library bugs), ``cli``.

Imports point down that list's order of lessons; only the edges (a notebook's config
cell, the command line) read the ``CAPTION_*`` settings.
"""

from __future__ import annotations

import os
import platform
import sys

# Quieter TensorFlow start-up (C++ info lines) unless the learner asked for logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers.colab import keep_on_drive, too_old  # noqa: E402
from helpers.errors import CourseError, install_notebook_handler  # noqa: E402
from helpers.quiet import import_tensorflow  # noqa: E402

__all__ = ["CourseError", "setup"]

COLAB_GPU_HINT = "On Colab: Runtime > Change runtime type > T4 GPU, then run the notebook again."


def setup(keep_data_on_drive: bool = False) -> None:
    """Every lesson's setup cell: versions, the compute device, course errors shown as one line.

    On Colab, ``keep_data_on_drive=True`` keeps the course's data on Google Drive, so a
    lesson opened on a new VM continues from what the earlier lessons made
    (:func:`helpers.colab.keep_on_drive`).
    """
    install_notebook_handler()
    on_colab = "google.colab" in sys.modules
    if keep_data_on_drive and on_colab:
        keep_on_drive()
    elif keep_data_on_drive:
        print(
            "KEEP_ON_DRIVE only applies on Google Colab: here the data stays in the course folder (or CAPTION_DATA_DIR)."
        )
    tf = import_tensorflow()  # first, and without TensorFlow's start-up banner (see helpers.quiet)
    import keras
    import numpy
    import pandas

    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s): {', '.join(g.name for g in gpus)}" if gpus else f"CPU only ({os.cpu_count()} cores)"
    found = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }
    print(f"Python {found['python']} | TensorFlow {found['tensorflow']} | Keras {found['keras']} | {device}")
    if old := too_old(found):
        print(f"Older than the course supports: {', '.join(old)}; upgrade them (pip install -U ...) if a lesson fails.")
    if not gpus and on_colab:
        print(COLAB_GPU_HINT)
