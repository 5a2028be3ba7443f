"""Course settings, read from environment variables in one place (introduced in lesson 01).

Only the edges read them: a notebook's config cell (``settings = get_settings()``), the
command line, and the entry points named in DESIGN section 6 when called without
settings (``load_dataset()``, ``extract_features(paths)``). Everything below takes what it
needs as arguments, so what a notebook prints as its settings is what its helpers use.

To change a setting for one notebook, set the variable in its config cell before
``get_settings()``, e.g. ``os.environ["CAPTION_DATASET"] = "shapes"``.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.errors import CourseError

#: Folder that holds ``pyproject.toml`` when the course is installed from a checkout.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

FLICKR8K_URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k"
CNN_WEIGHTS = ("imagenet", "none")
PRECISIONS = ("auto", "float32")
BUILTIN_DATASETS = ("flickr8k", "shapes", "flickr30k", "coco")

#: environment variable -> (Settings field, default shown to learners, what it does)
VARIABLES = {
    "CAPTION_DATASET": (
        "dataset",
        "flickr8k",
        "flickr8k, shapes, flickr30k, coco, or a folder (Kaggle or Karpathy layout)",
    ),
    "CAPTION_DATA_DIR": ("base_dir", "the course folder", "holds data/ (downloads) and artifacts/ (outputs)"),
    "CAPTION_CNN_WEIGHTS": ("cnn_weights", "imagenet", "imagenet, or none for random ResNet50 weights"),
    "CAPTION_FAST": ("fast", "0", "1 = workshop/CI mode: fewer images, fewer epochs"),
    "CAPTION_FLICKR8K_URL": ("flickr8k_url", FLICKR8K_URL, "base URL of the Flickr8k archives (mirrors)"),
    "CAPTION_PRECISION": ("precision", "auto", "auto = bfloat16/float16 feature extraction where the hardware has it"),
    "CAPTION_UNPACK_DIR": ("unpack_dir", "data/ (above)", "where archives are unpacked (Colab: the VM's local disk)"),
}


def dataset_key(name: str) -> str:
    """Short folder-safe name of a dataset: a built-in name, or a folder path's last part."""
    if name in BUILTIN_DATASETS:
        return name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name).strip("-") or "custom"


def variant(fast: bool, cnn_weights: str) -> str:
    """Name of a run's variant: ``""``, ``fast``, ``random-cnn`` or ``fast-random-cnn``.

    Fast mode trains on a subset and random CNN weights give other features, so those
    runs keep their outputs in a subfolder of their own: no run overwrites another's.
    """
    return "-".join(name for name, on in (("fast", fast), ("random-cnn", cnn_weights == "none")) if on)


@dataclass(frozen=True)
class Settings:
    """Where data lives and which variant of the course runs. Build it with :func:`get_settings`."""

    dataset: str
    base_dir: Path
    cnn_weights: str
    fast: bool
    flickr8k_url: str
    precision: str = "auto"
    unpack_dir: Path | None = None

    @property
    def data_dir(self) -> Path:
        """Download cache: archives (and, unless ``unpack_dir`` says otherwise, the extracted datasets)."""
        return self.base_dir / "data"

    @property
    def extract_dir(self) -> Path:
        """Where downloaded archives are unpacked and the shapes dataset is generated."""
        return self.unpack_dir or self.data_dir

    @property
    def dataset_key(self) -> str:
        """Short folder-safe name of the dataset (a folder path becomes its last part)."""
        return dataset_key(self.dataset)

    @property
    def artifacts_root(self) -> Path:
        """Everything made from this dataset: ``artifacts/<dataset>``."""
        return self.base_dir / "artifacts" / self.dataset_key

    @property
    def features_dir(self) -> Path:
        """Cached CNN features of the dataset's images, shared by fast and full runs."""
        return self.artifacts_root / "features"

    @property
    def artifacts_dir(self) -> Path:
        """Vocabulary, embedding matrix, model, history, metrics of this dataset and variant (:func:`variant`)."""
        return self.artifacts_root / variant(self.fast, self.cnn_weights)

    def __str__(self) -> str:
        rows = [f"{var:<22}{_shown(getattr(self, field))}" for var, (field, _, _) in VARIABLES.items()]
        rows += [f"{'-> downloads':<22}{self.data_dir}", f"{'-> artifacts':<22}{self.artifacts_dir}"]
        if "tensorflow" in sys.modules:  # the choice depends on the GPUs, which only TensorFlow lists
            from helpers.precision import describe_machine

            rows.append(f"{'-> features in':<22}{describe_machine(self.precision)}")
        return "Course settings (change one with os.environ[...] before get_settings())\n  " + "\n  ".join(rows)

    def _repr_pretty_(self, printer, cycle) -> None:  # how IPython shows it in a notebook
        printer.text(str(self))


def _shown(value) -> str:
    return "(not set)" if value is None else str(value)


def _flag(name: str, value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    raise CourseError(f"{name} must be 1 or 0, got {value!r}.")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    value = value.strip().lower() or allowed[0]
    if value not in allowed:
        raise CourseError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}.")
    return value


def _folder(value: str) -> Path | None:
    return Path(value).expanduser().resolve() if value.strip() else None


def get_settings() -> Settings:
    """Read the ``CAPTION_*`` environment variables (DESIGN section 5) into a frozen Settings."""
    env = os.environ
    default_base = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return Settings(
        dataset=env.get("CAPTION_DATASET", "").strip() or "flickr8k",
        base_dir=_folder(env.get("CAPTION_DATA_DIR", "")) or default_base,
        cnn_weights=_choice("CAPTION_CNN_WEIGHTS", env.get("CAPTION_CNN_WEIGHTS", ""), CNN_WEIGHTS),
        fast=_flag("CAPTION_FAST", env.get("CAPTION_FAST", "0")),
        flickr8k_url=(env.get("CAPTION_FLICKR8K_URL", "").strip() or FLICKR8K_URL).rstrip("/"),
        precision=_choice("CAPTION_PRECISION", env.get("CAPTION_PRECISION", ""), PRECISIONS),
        unpack_dir=_folder(env.get("CAPTION_UNPACK_DIR", "")),
    )
