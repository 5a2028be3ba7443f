"""The trained model bundle: model, vocabulary and how it was made, in one folder (introduced in lesson 07).

A bundle is what lessons 08-10 and ``python -m helpers caption --model DIR`` load::

    model.keras   the sequence model (the prefix model is rebuilt from its layers)
    vocab.json    the vocabulary that maps its ids to words
    model.json    the architecture (merge, or lesson 11's attention), max_len, vocabulary size,
                  dataset, fast mode, how the image features were made, ...

``model.keras`` is written last: when it is there, the bundle is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import keras

from helpers.attention import AttentionCaptioner, load_attention_captioner
from helpers.errors import CourseError
from helpers.features import recipe as feature_recipe
from helpers.files import read_json, write_json
from helpers.model import Captioner, load_captioner, save_captioner
from helpers.text import Vocabulary
from helpers.training import input_length

PARTS = ("model.keras", "vocab.json", "model.json")


#: The image features each architecture reads: pooled vectors, or lesson 11's 7 x 7 grid.
FEATURE_KINDS = {"merge": "pooled", "attention": "grid"}


class Bundle(NamedTuple):
    """A trained captioner with its vocabulary and the settings it was trained with (lesson 07)."""

    captioner: Captioner | AttentionCaptioner
    vocab: Vocabulary
    info: dict

    @property
    def feature_kind(self) -> str:
        """The image features the captioner reads: ``pooled`` vectors, or lesson 11's ``grid``."""
        return FEATURE_KINDS.get(self.info.get("architecture"), "pooled")


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` holds a whole bundle."""
    return all((Path(folder) / name).exists() for name in PARTS)


def save_bundle(
    captioner: Captioner | AttentionCaptioner,
    vocab: Vocabulary,
    folder: str | Path,
    *,
    dataset: str,
    fast: bool,
    cnn_weights: str,
    **info,
) -> Path:
    """Write ``model.keras``, ``vocab.json`` and ``model.json`` to ``folder`` (lesson 07).

    ``model.json`` records ``max_len``, the vocabulary size, the dataset, fast mode and the
    feature recipe (CNN, weights, image size, ...: new images must be turned into features
    the same way), plus any ``info`` given (epochs, dev loss, ...).
    """
    folder = Path(folder)
    architecture = "attention" if isinstance(captioner, AttentionCaptioner) else "merge"
    vocab.save(folder / "vocab.json")
    write_json(
        folder / "model.json",
        {
            "architecture": architecture,
            "max_len": input_length(captioner) or vocab.max_len,
            "vocab_size": len(vocab),
            "dataset": dataset,
            "fast": fast,
            "cnn_weights": cnn_weights,
            "features": feature_recipe(cnn_weights, FEATURE_KINDS[architecture]),
            "keras": keras.__version__,
            **info,
        },
    )
    save_captioner(captioner, folder / "model.keras")
    return folder


def load_bundle(folder: str | Path) -> Bundle:
    """Load a bundle written by :func:`save_bundle` (lessons 08-10 and the command line).

    The model is loaded for inference only (``compile=False``): the optimizer state saved
    with it is not needed (training resumes from ``checkpoints/``, not from the bundle).
    """
    folder = Path(folder)
    missing = [name for name in PARTS if not (folder / name).exists()]
    if missing:
        raise CourseError(f"{folder} holds no trained model ({', '.join(missing)} missing): run lesson 07 first.")
    info = read_json(folder / "model.json")
    vocab = Vocabulary.load(folder / "vocab.json")
    if info.get("architecture") == "attention":
        captioner = load_attention_captioner(folder / "model.keras")
    else:
        captioner = load_captioner(folder / "model.keras", info["max_len"], compile=False)
    if len(vocab) != info["vocab_size"]:
        raise CourseError(
            f"{folder}/vocab.json has {len(vocab)} words but the model {info['vocab_size']}: train again."
        )
    return Bundle(captioner, vocab, info)
