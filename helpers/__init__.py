"""The image captioning course's helpers: what later lessons reuse of earlier ones.

Each top-level module belongs to one lesson and says which in its first line: ``config`` and
``datasets`` (01), ``text`` (02), ``features`` (03), ``embeddings`` (04), ``generators`` (05),
``model`` (06), ``training`` (07, 10), ``decoding`` and ``photos`` (08), ``evaluation`` (09),
``attention`` (11), ``share`` (12); ``course`` chains them, ``plotting`` draws for all. The
machinery lives below: ``data`` (downloads, file formats), ``system`` (errors, caches,
precision, platform shims), ``tools`` (command line, distributed launcher, web page).
"""

from __future__ import annotations

import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines off, unless the learner set it

from helpers.system.colab import keep_on_drive, too_old  # noqa: E402
from helpers.system.errors import CourseError, install_notebook_handler  # noqa: E402
from helpers.system.quiet import import_tensorflow  # noqa: E402

__all__ = ["CourseError", "setup"]


def setup(keep_data_on_drive: bool = False) -> None:
    """Every lesson's setup cell: course errors as one line, Drive on Colab, versions and device printed."""
    install_notebook_handler()
    on_colab = "google.colab" in sys.modules
    if keep_data_on_drive and on_colab:
        keep_on_drive()
    elif keep_data_on_drive:
        print(
            "KEEP_ON_DRIVE only applies on Google Colab: here the data stays in the course folder (or CAPTION_DATA_DIR)."
        )
    tf = import_tensorflow()
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
        print("On Colab: Runtime > Change runtime type > T4 GPU, then run the notebook again.")
