"""The course's chain, written once: lessons 01-05's outputs, then a trained model (lessons 05-12).

:func:`prepare_course_data` gives what lessons 05-11 start from, :func:`prepare_model` a trained bundle; each is cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from helpers.config import Settings
from helpers.datasets import Dataset, load_dataset
from helpers.embeddings import prepare_embedding_matrix
from helpers.features import FeatureSet, dataset_features, feature_store
from helpers.generators import captions_by_image
from helpers.model import Bundle, build_captioner, has_bundle, load_bundle, save_bundle
from helpers.text import Vocabulary, prepare_text
from helpers.training import Recipe, recipe, train


@dataclass(frozen=True)
class CourseData:
    """What lessons 05-11 start from; ``table`` holds only images that have features."""

    settings: Settings
    dataset: Dataset
    table: pd.DataFrame
    vocab: Vocabulary
    features: FeatureSet
    embedding_matrix: np.ndarray
    train_captions: dict[str, list[list[int]]]
    dev_captions: dict[str, list[list[int]]]

    @property
    def folder(self) -> Path:
        """Where this run's outputs go: the dataset's ``artifacts_dir``."""
        return self.dataset.artifacts_dir

    @property
    def recipe(self) -> Recipe:
        """How lesson 07 trains on this dataset (fast mode: fewer epochs)."""
        return recipe(self.dataset.name, self.settings.fast)

    def split_images(self, split: str) -> list[str]:
        """The images of a split that have features, sorted."""
        return sorted(self.table.loc[self.table["split"] == split, "image"].unique())

    def __repr__(self) -> str:
        return (
            f"CourseData({self.dataset.name}: {len(self.train_captions)} training and {len(self.dev_captions)} dev "
            f"images, {self.vocab}, features {self.features.features.shape}, in {self.folder})"
        )


def prepare_course_data(settings: Settings, *, on_disk: bool = False) -> CourseData:
    """Lessons 01-05's outputs for ``settings``, each cached; ``on_disk=True``: the features memory-mapped (lesson 10)."""
    dataset = load_dataset(settings=settings)
    table, vocab = prepare_text(dataset)
    features = feature_store(dataset) if on_disk else dataset_features(dataset)
    if lost := set(dataset.images()) - set(features.images):  # found by the feature pipeline's own check
        example = next(iter(lost))
        print(f"Note: {len(lost)} image(s) have no features ({example}: {features.skipped.get(example)}); left out.")
        table = table[~table["image"].isin(lost)]
    matrix = prepare_embedding_matrix(vocab, dataset.artifacts_dir, settings.glove)
    by_image = {split: captions_by_image(table, vocab, split) for split in ("train", "dev")}
    return CourseData(settings, dataset, table, vocab, features, matrix, by_image["train"], by_image["dev"])


def prepare_model(settings: Settings, course: CourseData | None = None) -> Bundle:
    """The trained bundle of the configured run, trained first as lesson 07 does if it is missing (lessons 08-12)."""
    folder = course.folder if course is not None else settings.artifacts_dir
    if has_bundle(folder):
        return load_bundle(folder)
    print(f"No trained model in {folder}: training one as lesson 07 does (captions, features, GloVe, then training).")
    course = course or prepare_course_data(settings)
    keras.utils.set_random_seed(0)  # as lesson 07 does: the same model whichever lesson trains it
    captioner = build_captioner(len(course.vocab), course.vocab.max_len, course.embedding_matrix)
    plan = course.recipe
    options = {"epochs": plan.epochs, "batch_size": plan.batch_size, "patience": plan.patience, "folder": folder}
    history = train(captioner, course.features, course.train_captions, course.dev_captions, **options)
    info = {"dataset": course.dataset.name, "fast": settings.fast, "cnn_weights": settings.cnn_weights}
    save_bundle(captioner, course.vocab, folder, **info, epochs=len(history["loss"]), dev_loss=min(history["val_loss"]))
    return load_bundle(folder)
