"""The course's preparation chain, written once: lessons 02-04's outputs, then a trained model (lessons 05-10).

:func:`prepare_course_data` returns everything lessons 05-10 start from: the dataset
(lesson 01), cleaned captions and the vocabulary (02), image features (03), the GloVe
matrix (04) and the encoded captions grouped by image (05). Each piece comes from its
cache when there is one, and each helper says what it reuses or rebuilds.
:func:`prepare_model` adds the trained bundle of lesson 07, training it first if needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from helpers.bundle import Bundle, is_complete, load_bundle, save_bundle
from helpers.config import Settings, get_settings
from helpers.datasets import Dataset, load_dataset
from helpers.embeddings import prepare_embedding_matrix
from helpers.feature_cache import FeatureSet
from helpers.features import dataset_features
from helpers.generators import captions_by_image
from helpers.model import build_captioner
from helpers.text import Vocabulary, prepare_text
from helpers.training import Recipe, recipe, train


@dataclass(frozen=True)
class CourseData:
    """What lessons 05-10 start from; ``table`` holds only images that have features."""

    settings: Settings
    dataset: Dataset
    table: pd.DataFrame
    vocab: Vocabulary
    features: FeatureSet
    embedding_matrix: np.ndarray
    train_captions: dict[str, list[list[int]]]
    dev_captions: dict[str, list[list[int]]]

    @property
    def folder(self):
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


def prepare_course_data(settings: Settings | None = None, *, in_memory: bool = True) -> CourseData:
    """Lessons 01-05's outputs for ``settings`` (default: the environment), each cached (lessons 05-10).

    ``in_memory=False`` keeps the features memory-mapped on disk (lesson 10).
    """
    settings = settings or get_settings()
    dataset = load_dataset(settings=settings)
    table, vocab = prepare_text(dataset)
    features = dataset_features(dataset, settings.cnn_weights, precision=settings.precision, in_memory=in_memory)
    lost = set(dataset.images()) - set(features.images)
    if lost:  # the feature pipeline's own guard found images the load-time check let through
        print(
            f"Note: {len(lost)} image(s) have no features ({next(iter(lost))}: "
            f"{features.skipped.get(next(iter(lost)), 'not extracted')}); their captions are left out."
        )
        table = table[~table["image"].isin(lost)]
    matrix = prepare_embedding_matrix(vocab, dataset.artifacts_dir)
    return CourseData(
        settings,
        dataset,
        table,
        vocab,
        features,
        matrix,
        captions_by_image(table, vocab, "train"),
        captions_by_image(table, vocab, "dev"),
    )


def prepare_model(settings: Settings | None = None, course: CourseData | None = None) -> Bundle:
    """The trained bundle of the configured run, trained first as lesson 07 does if it is missing (lessons 08-10).

    The bundle folder is the run's ``artifacts_dir``, which depends on the CNN weights and
    fast mode, so a model always meets the features it learned from.
    """
    settings = course.settings if course is not None else settings or get_settings()
    folder = course.folder if course is not None else settings.artifacts_dir
    if is_complete(folder):
        return load_bundle(folder)
    print(f"No trained model in {folder}: training one as lesson 07 does (captions, features, GloVe, then training).")
    course = course or prepare_course_data(settings)
    keras.utils.set_random_seed(0)  # as lesson 07 does: the same model whichever lesson trains it
    captioner = build_captioner(len(course.vocab), course.vocab.max_len, course.embedding_matrix)
    plan = course.recipe
    history = train(
        captioner,
        course.features,
        course.train_captions,
        course.dev_captions,
        folder=folder,
        epochs=plan.epochs,
        batch_size=plan.batch_size,
        patience=plan.patience,
    )
    save_bundle(
        captioner,
        course.vocab,
        folder,
        dataset=course.dataset.name,
        fast=settings.fast,
        cnn_weights=settings.cnn_weights,
        epochs=len(history["loss"]),
        dev_loss=min(history["val_loss"]),
    )
    return load_bundle(folder)
