"""Training the captioner, resumably, and the trained model bundle (introduced in lesson 07).

:func:`train` fits the *sequence* model on whole captions (the fast path of lesson 05),
or the *prefix* model on the classic generator with ``classic=True``; both views share
their layers, so either trains the same weights. Everything it needs to survive an
interruption lives in one folder (``settings.artifacts_dir`` by default)::

    checkpoints/epoch-07.keras   the model and optimizer after epoch 7 (Keras ModelCheckpoint)
    history.json                 loss, dev loss and seconds of every finished epoch

``history.json`` is written (atomically) only after the epoch's checkpoint is complete,
so the number of epochs it lists always names a whole checkpoint: run ``train`` again
after a crash, a closed laptop or a Colab disconnect and it loads that checkpoint and
continues at the next epoch (``initial_epoch``). Early stopping counts the dev losses of
the earlier run too, and at the end the weights of the best epoch are restored from
their checkpoint. Only the latest and the best checkpoints are kept.

Build and compile the model inside a ``tf.distribute`` strategy scope and call
``train`` there (lesson 10): it creates nothing the strategy has to know about.

The trained **bundle** (lessons 08-10, ``python -m helpers caption --model DIR``) is a
folder with ``model.keras`` (the sequence model), ``vocab.json`` and ``model.json``
(max_len, dataset, CNN weights, ...): :func:`save_bundle`, :func:`load_bundle`, and
:func:`prepare_model`, which loads it or rebuilds every step that leads to it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import keras
import numpy as np

from helpers.config import get_settings
from helpers.errors import CourseError
from helpers.files import read_json, write_json
from helpers.generators import CaptionPairs, GroupedCaptions, caption_dataset, captions_by_image
from helpers.model import Captioner, build_captioner, load_captioner, save_captioner

CHECKPOINT = "epoch-{epoch:02d}.keras"


@dataclass(frozen=True)
class Recipe:
    """How long and in what batches to train on one dataset (lesson 07)."""

    epochs: int  # at most; early stopping usually ends sooner
    fast_epochs: int  # in fast mode (CAPTION_FAST=1)
    batch_size: int  # captions per batch on the fast path
    images_per_batch: int  # images per batch for the classic generator (all their pairs)
    patience: int  # epochs without a better dev loss before stopping


#: Flickr8k: 30,000 training captions (about 330,000 word pairs), 469 batches of 64 per
#: epoch; early stopping (patience 3) ends most runs well before epoch 20. Fast mode
#: keeps 1,000 training images (5,000 captions): 5 epochs. Shapes (3,500 captions, 57
#: batches), random CNN weights (the test setting), seeds 0-2: dev loss about 0.79 after
#: 8 epochs, 0.70 after 12 (fast mode: colours and shapes named right noticeably more
#: often than after 8, for about 12 s more on 2 cores), still falling slowly towards 20.
#: Other datasets (Flickr30k, COCO, your own folder) use the Flickr8k recipe.
RECIPES = {
    "flickr8k": Recipe(epochs=20, fast_epochs=5, batch_size=64, images_per_batch=3, patience=3),
    "shapes": Recipe(epochs=20, fast_epochs=12, batch_size=64, images_per_batch=3, patience=3),
}


def recipe(dataset_key: str | None = None) -> Recipe:
    """The training recipe of a dataset (default: the configured one)."""
    return RECIPES.get(dataset_key or get_settings().dataset_key, RECIPES["flickr8k"])


def input_length(captioner: Captioner) -> int:
    """``max_len``: how many words the prefix model reads."""
    return int(captioner.prefix.get_layer("words").output.shape[1])


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping on dev loss that also counts the epochs of an earlier, interrupted run."""

    def __init__(self, earlier_dev_losses: list[float], patience: int):
        super().__init__(monitor="val_loss", patience=patience, verbose=1)
        self.earlier = list(earlier_dev_losses)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.earlier:
            self.best = min(self.earlier)
            self.wait = len(self.earlier) - 1 - int(np.argmin(self.earlier))


def finished(history: dict[str, list[float]], epochs: int, patience: int) -> bool:
    """Whether a run with this history is done: all epochs, or ``patience`` epochs without progress."""
    dev = history.get("val_loss", [])
    return len(dev) >= epochs or (bool(dev) and len(dev) - 1 - int(np.argmin(dev)) >= patience)


def _checkpoint(folder: Path, epoch: int) -> Path:
    return folder / "checkpoints" / CHECKPOINT.format(epoch=epoch)


def _load_checkpoint(model: keras.Model, path: Path) -> None:
    """Load weights and optimizer state (Adam's moments) saved by ModelCheckpoint."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(path)
    except ValueError as error:
        raise CourseError(
            f"The checkpoint {path} does not fit this model ({str(error).splitlines()[0]}): "
            "train with resume=False to start over."
        ) from None


def _resume(model: keras.Model, folder: Path, resume: bool) -> dict[str, list[float]]:
    """The history of the earlier run, with the model set to its last checkpoint (or a fresh start)."""
    history_path = folder / "history.json"
    if not resume:
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        history_path.unlink(missing_ok=True)
    if not history_path.exists():
        return {"loss": [], "val_loss": [], "seconds": []}
    history = read_json(history_path)
    done = len(history["loss"])
    if done and not _checkpoint(folder, done).exists():
        print(f"{history_path} lists {done} epochs but their checkpoint is gone: training from the start.")
        return {"loss": [], "val_loss": [], "seconds": []}
    if done:
        _load_checkpoint(model, _checkpoint(folder, done))
    return history


def _recorder(folder: Path, history: dict[str, list[float]]) -> keras.callbacks.Callback:
    """After each epoch's checkpoint: add the epoch to history.json, drop stale checkpoints."""
    started = {}

    def begin(epoch, logs=None):
        started["at"] = time.perf_counter()

    def end(epoch, logs=None):
        history["loss"].append(float(logs["loss"]))
        history["val_loss"].append(float(logs["val_loss"]))
        history["seconds"].append(round(time.perf_counter() - started["at"], 2))
        write_json(folder / "history.json", history)
        best = int(np.argmin(history["val_loss"])) + 1
        keep = {_checkpoint(folder, epoch + 1), _checkpoint(folder, best)}
        for path in (folder / "checkpoints").glob("epoch-*.keras"):
            if path not in keep:
                path.unlink()

    return keras.callbacks.LambdaCallback(on_epoch_begin=begin, on_epoch_end=end)


def train(
    captioner: Captioner,
    features,
    train_captions: GroupedCaptions,
    dev_captions: GroupedCaptions,
    *,
    folder: str | Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    classic: bool = False,
    patience: int | None = None,
    resume: bool = True,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
    verbose: int = 2,
    seed: int | None = None,
    make_dataset: Callable[..., object] = caption_dataset,
) -> dict[str, list[float]]:
    """Train the captioner with checkpoints, early stopping and resume (lesson 07).

    ``features`` and the captions are what :func:`helpers.generators.caption_dataset`
    takes (one features object for both splits, e.g. a ``FeatureSet``). ``make_dataset``
    makes the fast path's batches from them, called as ``caption_dataset`` is
    (``make_dataset(features, captions, batch_size=, max_len=, seed=)``, and
    ``shuffle=False`` for dev; not used with ``classic=True``): lesson 10 passes
    :func:`helpers.scale.stream_caption_dataset` to read the features from disk. Epochs, batch
    size and patience default to :func:`recipe` (fewer epochs in fast mode). ``batch_size``
    counts captions, or images with ``classic=True`` (which trains the prefix model on
    the classic generator's pairs). ``resume=False`` throws away an earlier run in
    ``folder``. Returns the history of every epoch, earlier runs included; the captioner
    ends with the weights of the epoch with the lowest dev loss.
    """
    settings = get_settings()
    plan = recipe(settings.dataset_key)
    epochs = epochs or (plan.fast_epochs if settings.fast else plan.epochs)
    patience = patience or plan.patience
    folder = Path(folder or settings.artifacts_dir)
    model = captioner.prefix if classic else captioner.sequence
    history = _resume(model, folder, resume)
    done = len(history["loss"])
    if finished(history, epochs, patience):
        print(f"Already trained: {folder / 'history.json'} lists {done} epochs (train with resume=False to start over).")
    else:
        if done:
            print(f"Resuming from {_checkpoint(folder, done)}: epoch {done + 1} of {epochs}.")
        size = batch_size or (plan.images_per_batch if classic else plan.batch_size)
        train_data, dev_data = _data(captioner, features, train_captions, dev_captions, classic, size, seed, make_dataset)
        model.fit(
            train_data,
            validation_data=dev_data,
            epochs=epochs,
            initial_epoch=done,
            shuffle=False,  # both inputs shuffle themselves: captions, or images between epochs
            callbacks=[
                keras.callbacks.ModelCheckpoint(str(folder / "checkpoints" / CHECKPOINT)),
                _recorder(folder, history),
                ResumableEarlyStopping(history["val_loss"], patience),
                *callbacks,
            ],
            verbose=verbose,
        )
    best = int(np.argmin(history["val_loss"])) + 1
    _load_checkpoint(model, _checkpoint(folder, best))
    print(f"Lowest dev loss {history['val_loss'][best - 1]:.4f} after epoch {best} of {len(history['loss'])}: using those weights.")
    return history


def _data(captioner, features, train_captions, dev_captions, classic: bool, size: int, seed: int | None, make_dataset):
    """Training and dev batches: the fast path (``make_dataset``), or the classic generator of (image, prefix) pairs."""
    max_len = input_length(captioner)
    if classic:
        return (
            CaptionPairs(features, train_captions, max_len, images_per_batch=size, seed=seed),
            CaptionPairs(features, dev_captions, max_len, images_per_batch=size, shuffle=False),
        )
    return (
        make_dataset(features, train_captions, batch_size=size, max_len=max_len, seed=seed),
        make_dataset(features, dev_captions, batch_size=size, max_len=max_len, shuffle=False),
    )


# ------------------------------------------------------------------------ the model bundle


class Bundle(NamedTuple):
    """A trained captioner with its vocabulary and the settings it was trained with (lesson 07)."""

    captioner: Captioner
    vocab: object  # helpers.text.Vocabulary
    info: dict


def save_bundle(captioner: Captioner, vocab, folder: str | Path | None = None, **info) -> Path:
    """Write ``model.keras``, ``vocab.json`` and ``model.json`` to ``folder`` (lesson 07).

    ``model.json`` records ``max_len``, the vocabulary size, the dataset, fast mode and
    the feature recipe (CNN, weights, image size, ...: new images must be turned into
    features the same way), plus any ``info`` given. ``model.keras`` is written last: when
    it is there, the bundle is complete.
    """
    from helpers.features import recipe as feature_recipe

    settings = get_settings()
    folder = Path(folder or settings.artifacts_dir)
    vocab.save(folder / "vocab.json")
    write_json(
        folder / "model.json",
        {
            "max_len": input_length(captioner),
            "vocab_size": len(vocab),
            "dataset": settings.dataset_key,
            "fast": settings.fast,
            "cnn_weights": settings.cnn_weights,
            "features": feature_recipe(settings.cnn_weights),
            "keras": keras.__version__,
            **info,
        },
    )
    save_captioner(captioner, folder / "model.keras")
    return folder


def load_bundle(folder: str | Path | None = None) -> Bundle:
    """Load a bundle written by :func:`save_bundle` (lessons 08-10 and the command line).

    The model is loaded for inference only (``compile=False``): the optimizer state saved
    with it is not needed (training resumes from ``checkpoints/``, not from the bundle).
    """
    from helpers.text import Vocabulary

    folder = Path(folder or get_settings().artifacts_dir)
    missing = [name for name in ("model.keras", "vocab.json", "model.json") if not (folder / name).exists()]
    if missing:
        raise CourseError(f"{folder} holds no trained model ({', '.join(missing)} missing): run lesson 07 first.")
    info = read_json(folder / "model.json")
    vocab = Vocabulary.load(folder / "vocab.json")
    captioner = load_captioner(folder / "model.keras", info["max_len"], compile=False)
    if len(vocab) != info["vocab_size"]:
        raise CourseError(f"{folder}/vocab.json has {len(vocab)} words but the model {info['vocab_size']}: train again.")
    return Bundle(captioner, vocab, info)


def prepare_model(dataset=None) -> Bundle:
    """The trained bundle of the configured dataset, trained first if it is missing (lessons 08-10).

    Rebuilds what lesson 07 needs, each step from its own cache when there is one:
    captions and vocabulary (lesson 02), image features (lesson 03), the GloVe matrix
    (lesson 04), then :func:`train` and :func:`save_bundle`. The bundle folder depends on
    the CNN weights (``settings.artifacts_dir``), so a model always meets the features it learned from.
    """
    from helpers.datasets import load_dataset
    from helpers.embeddings import prepare_embedding_matrix
    from helpers.features import dataset_features
    from helpers.text import prepare_text

    folder = get_settings().artifacts_dir
    if (folder / "model.keras").exists():
        return load_bundle(folder)
    print(f"No trained model in {folder}: training one as lesson 07 does (captions, features, GloVe, then training).")
    dataset = dataset or load_dataset()
    table, vocab = prepare_text(dataset)
    feature_set, dataset = dataset_features(dataset)
    table = table[table["image"].isin(set(feature_set.images))]
    captioner = build_captioner(len(vocab), vocab.max_len, prepare_embedding_matrix(vocab))
    history = train(
        captioner, feature_set, captions_by_image(table, vocab, "train"), captions_by_image(table, vocab, "dev")
    )
    save_bundle(captioner, vocab, folder, epochs=len(history["loss"]), dev_loss=min(history["val_loss"]))
    return load_bundle(folder)
