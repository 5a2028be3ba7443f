"""Training the captioner, resumably, and the trained model bundle (introduced in lesson 07).

:func:`train` fits the *sequence* model on whole captions (the fast path of lesson 05),
or the *prefix* model on the classic generator with ``classic=True``; both views share
their layers, so either trains the same weights. Everything it needs to survive an
interruption lives in one folder (the dataset's ``artifacts_dir`` in the lessons)::

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

The trained model is saved as a *bundle* (:mod:`helpers.bundle`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from helpers.errors import CourseError
from helpers.files import read_json, write_json
from helpers.generators import CaptionPairs, GroupedCaptions, caption_dataset

CHECKPOINT = "epoch-{epoch:02d}.keras"


@dataclass(frozen=True)
class Recipe:
    """How long and in what batches to train on one dataset (lesson 07)."""

    epochs: int  # at most; early stopping usually ends sooner
    fast_epochs: int  # in fast mode (CAPTION_FAST=1)
    batch_size: int  # captions per batch on the fast path
    images_per_batch: int  # images per batch for the classic generator (all their pairs)
    patience: int  # epochs without a better dev loss before stopping


#: Flickr8k: 30,000 training captions (339,109 word pairs, flickr8k.FACTS), 469 batches of 64 per
#: epoch; early stopping (patience 3) ends most runs well before epoch 20. Fast mode
#: keeps 1,000 training images (5,000 captions): 5 epochs. Shapes (3,500 captions, 57
#: batches), random CNN weights (the test setting), seeds 0-2: dev loss about 0.79 after
#: 8 epochs, 0.70 after 12 (fast mode: colours and shapes named right noticeably more
#: often than after 8, for about 12 s more on 2 cores), still falling slowly towards 20.
#: Other datasets (Flickr30k, COCO, your own folder) use the Flickr8k recipe.
BATCH_SIZE, IMAGES_PER_BATCH = 64, 3
RECIPES = {
    "flickr8k": Recipe(epochs=20, fast_epochs=5, batch_size=BATCH_SIZE, images_per_batch=IMAGES_PER_BATCH, patience=3),
    "shapes": Recipe(epochs=20, fast_epochs=12, batch_size=BATCH_SIZE, images_per_batch=IMAGES_PER_BATCH, patience=3),
}


def recipe(dataset_name: str, fast: bool = False) -> Recipe:
    """The training recipe of a dataset; in fast mode its ``epochs`` are the fast ones."""
    plan = RECIPES.get(dataset_name, RECIPES["flickr8k"])
    return dataclasses.replace(plan, epochs=plan.fast_epochs) if fast else plan


def input_length(captioner) -> int | None:
    """``max_len``: how many words the prefix model reads (None for a captioner without one, as lesson 11's)."""
    prefix = getattr(captioner, "prefix", None)
    return None if prefix is None else int(prefix.get_layer("words").output.shape[1])


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
    captioner,
    features,
    train_captions: GroupedCaptions,
    dev_captions: GroupedCaptions,
    *,
    folder: str | Path,
    epochs: int = 20,
    batch_size: int | None = None,
    classic: bool = False,
    patience: int = 3,
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
    :func:`helpers.generators.stream_caption_dataset` to read the features from disk. :func:`recipe`
    gives each dataset's ``epochs``, ``batch_size`` and ``patience``. ``batch_size`` counts
    captions (default 64), or images with ``classic=True`` (default 3; it trains the
    prefix model on the classic generator's pairs). ``resume=False`` throws away an earlier
    run in ``folder``. Returns the history of every epoch, earlier runs included; the
    captioner ends with the weights of the epoch with the lowest dev loss.
    """
    folder = Path(folder)
    if classic and input_length(captioner) is None:
        raise CourseError(
            "classic=True trains the prefix model on (image, prefix) pairs: only the merge captioner has one."
        )
    model = captioner.prefix if classic else captioner.sequence
    history = _resume(model, folder, resume)
    done = len(history["loss"])
    if finished(history, epochs, patience):
        print(
            f"Already trained: {folder / 'history.json'} lists {done} epochs (train with resume=False to start over)."
        )
    else:
        if done:
            print(f"Resuming from {_checkpoint(folder, done)}: epoch {done + 1} of {epochs}.")
        size = batch_size or (IMAGES_PER_BATCH if classic else BATCH_SIZE)
        train_data, dev_data = _data(
            captioner, features, train_captions, dev_captions, classic, size, seed, make_dataset
        )
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
    print(
        f"Lowest dev loss {history['val_loss'][best - 1]:.4f} after epoch {best} of {len(history['loss'])}: using those weights."
    )
    return history


def _data(
    captioner, features, train_captions, dev_captions, classic: bool, size: int, seed: int | None, make_dataset
) -> tuple:
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
