"""Course settings, read from environment variables in one place (introduced in lesson 01).

Every notebook's config cell prints them. To change one for a single notebook, set the
variable in that cell before calling :func:`get_settings`, e.g.
``os.environ["CAPTION_DATASET"] = "shapes"``: every helper reads the same variables, so
the change reaches all of them (and any process the notebook starts).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from helpers.errors import CourseError

#: Folder that holds ``pyproject.toml`` when the course is installed from a checkout.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

FLICKR8K_URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k"
CNN_WEIGHTS = ("imagenet", "none")
BUILTIN_DATASETS = ("flickr8k", "shapes", "flickr30k", "coco")

#: environment variable -> (Settings field, default shown to learners, what it does)
VARIABLES = {
    "CAPTION_DATASET": ("dataset", "flickr8k", "flickr8k, shapes, flickr30k, coco, or a folder (Kaggle or Karpathy layout)"),
    "CAPTION_DATA_DIR": ("base_dir", "the course folder", "holds data/ (downloads) and artifacts/ (outputs)"),
    "CAPTION_CNN_WEIGHTS": ("cnn_weights", "imagenet", "imagenet, or none for random ResNet50 weights"),
    "CAPTION_FAST": ("fast", "0", "1 = workshop/CI mode: fewer images, fewer epochs"),
    "CAPTION_FLICKR8K_URL": ("flickr8k_url", FLICKR8K_URL, "base URL of the Flickr8k archives (mirrors)"),
}


@dataclass(frozen=True)
class Settings:
    """Where data lives and which variant of the course runs. Build it with :func:`get_settings`."""

    dataset: str
    base_dir: Path
    cnn_weights: str
    fast: bool
    flickr8k_url: str

    @property
    def data_dir(self) -> Path:
        """Download cache: archives and extracted datasets."""
        return self.base_dir / "data"

    @property
    def dataset_key(self) -> str:
        """Short folder-safe name of the dataset (a folder path becomes its last part)."""
        if self.dataset in BUILTIN_DATASETS:
            return self.dataset
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(self.dataset).name).strip("-") or "custom"

    @property
    def features_dir(self) -> Path:
        """Cached CNN features of the dataset's images, shared by fast and full runs."""
        return self.base_dir / "artifacts" / self.dataset_key / "features"

    @property
    def artifacts_dir(self) -> Path:
        """Vocabulary, embedding matrix, model, history, metrics of this dataset and variant.

        Fast mode trains on a subset and random CNN weights give other features, so those
        runs get their own subfolder (``fast/``, ``random-cnn/``, ``fast-random-cnn/``):
        no run overwrites another's outputs or is mistaken for it.
        """
        variant = "-".join(name for name, on in (("fast", self.fast), ("random-cnn", self.cnn_weights == "none")) if on)
        folder = self.base_dir / "artifacts" / self.dataset_key
        return folder / variant if variant else folder

    def __str__(self) -> str:
        rows = [f"{var:<22}{getattr(self, field)!s}" for var, (field, _, _) in VARIABLES.items()]
        rows += [f"{'-> downloads':<22}{self.data_dir}", f"{'-> artifacts':<22}{self.artifacts_dir}"]
        return "Course settings (change one with os.environ[...] before get_settings())\n  " + "\n  ".join(rows)

    def _repr_pretty_(self, printer, cycle) -> None:  # how IPython shows it in a notebook
        printer.text(str(self))


def _flag(name: str, value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    raise CourseError(f"{name} must be 1 or 0, got {value!r}.")


def get_settings() -> Settings:
    """Read the ``CAPTION_*`` environment variables (DESIGN section 5) into a frozen Settings."""
    env = os.environ
    dataset = env.get("CAPTION_DATASET", "").strip() or "flickr8k"
    weights = env.get("CAPTION_CNN_WEIGHTS", "").strip().lower() or "imagenet"
    if weights not in CNN_WEIGHTS:
        raise CourseError(f"CAPTION_CNN_WEIGHTS must be 'imagenet' or 'none', got {weights!r}.")
    base = env.get("CAPTION_DATA_DIR", "").strip()
    default_base = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return Settings(
        dataset=dataset,
        base_dir=Path(base).expanduser().resolve() if base else default_base,
        cnn_weights=weights,
        fast=_flag("CAPTION_FAST", env.get("CAPTION_FAST", "0")),
        flickr8k_url=(env.get("CAPTION_FLICKR8K_URL", "").strip() or FLICKR8K_URL).rstrip("/"),
    )
