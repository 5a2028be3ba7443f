"""Training the captioner, resumably, on one device or several (lessons 07 and 10).

:func:`train` keeps ``backup/``, ``best.weights.h5`` and ``history.csv`` in its folder: run it again and it continues.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from helpers.generators import CaptionPairs, GroupedCaptions, caption_dataset
from helpers.model import Captioner, build_captioner
from helpers.system.errors import CourseError
from helpers.system.files import read_json

BEST, HISTORY, BACKUP = "best.weights.h5", "history.csv", "backup"


@dataclass(frozen=True)
class Recipe:
    """How long and in what batches to train on one dataset (lesson 07)."""

    epochs: int  # at most; early stopping usually ends sooner
    fast_epochs: int  # in fast mode (CAPTION_FAST=1)
    batch_size: int  # captions per batch on the fast path
    images_per_batch: int  # images per batch for the classic generator (all their pairs)
    patience: int  # epochs without a better dev loss before stopping


#: Flickr8k's and the shapes' recipes; other datasets use Flickr8k's (instructors/timings.md has the measurements).
RECIPES = {
    "flickr8k": Recipe(epochs=20, fast_epochs=5, batch_size=64, images_per_batch=3, patience=3),
    "shapes": Recipe(epochs=20, fast_epochs=12, batch_size=64, images_per_batch=3, patience=3),
}


def recipe(dataset_name: str, fast: bool = False) -> Recipe:
    """The training recipe of a dataset; in fast mode its ``epochs`` are the fast ones."""
    plan = RECIPES.get(dataset_name, RECIPES["flickr8k"])
    return dataclasses.replace(plan, epochs=plan.fast_epochs) if fast else plan


def read_history(folder: str | Path) -> dict[str, list[float]]:
    """``loss``, ``val_loss`` and ``seconds`` of the epochs the backup in ``folder`` holds (lesson 07)."""
    path, backup = Path(folder) / HISTORY, Path(folder) / BACKUP / "training_metadata.json"
    if not path.exists() or not backup.exists():
        return {"loss": [], "val_loss": [], "seconds": []}
    table = pd.read_csv(path).drop_duplicates("epoch", keep="last")
    table = table[table["epoch"] < read_json(backup)["epoch"]].sort_values("epoch")
    return {column: table[column].astype(float).tolist() for column in ("loss", "val_loss", "seconds")}


def finished(history: dict[str, list[float]], epochs: int, patience: int) -> bool:
    """Whether a run with this history is done: all epochs, or ``patience`` epochs without a better dev loss."""
    dev = history["val_loss"]
    return len(dev) >= epochs or (bool(dev) and len(dev) - 1 - int(np.argmin(dev)) >= patience)


class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping on the dev loss that also counts the epochs of an earlier, interrupted run."""

    def __init__(self, earlier_dev_losses: list[float], patience: int):
        super().__init__(monitor="val_loss", patience=patience, verbose=1)
        self.earlier = list(earlier_dev_losses)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.earlier:
            self.best = min(self.earlier)
            self.wait = len(self.earlier) - 1 - int(np.argmin(self.earlier))


class EpochSeconds(keras.callbacks.Callback):
    """Adds ``seconds`` (the epoch's wall time) to the logs the callbacks after it see."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["seconds"] = round(time.perf_counter() - self.started, 2)


def train(
    captioner: Captioner,
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
    """Train with backups, early stopping and resume (``resume=False`` starts over), ending with the best weights
    (lesson 07). ``batch_size``: captions (64), or images with ``classic=True`` (3). Returns all epochs' history."""
    folder = Path(folder)
    model = captioner.prefix if classic else captioner.sequence
    if model is None:
        raise CourseError("classic=True trains the prefix model on (image, prefix) pairs: this captioner has none.")
    if not resume:
        shutil.rmtree(folder / BACKUP, ignore_errors=True)
        for name in (BEST, HISTORY):
            (folder / name).unlink(missing_ok=True)
    history = read_history(folder)
    if finished(history, epochs, patience):
        print(f"Already trained: {folder / HISTORY} lists {len(history['loss'])} epochs (resume=False starts over).")
    else:
        if history["loss"]:
            print(f"Resuming from {folder / BACKUP}: epoch {len(history['loss']) + 1} of {epochs}.")
        folder.mkdir(parents=True, exist_ok=True)
        max_len = None if captioner.prefix is None else int(captioner.prefix.get_layer("words").output.shape[1])
        if classic:
            batches = functools.partial(CaptionPairs, features, max_len=max_len, images_per_batch=batch_size or 3)
        else:
            batches = functools.partial(make_dataset, features, batch_size=batch_size or 64, max_len=max_len)
        best = min(history["val_loss"], default=None)
        model.fit(
            batches(train_captions, seed=seed),
            validation_data=batches(dev_captions, shuffle=False),
            epochs=epochs,
            shuffle=False,  # both inputs shuffle themselves
            verbose=verbose,
            callbacks=[
                # the log, the best weights, then the backup (where a resumed run starts): no finished epoch is lost
                EpochSeconds(),
                keras.callbacks.CSVLogger(folder / HISTORY, append=True),
                keras.callbacks.ModelCheckpoint(
                    folder / BEST, save_best_only=True, save_weights_only=True, initial_value_threshold=best
                ),
                keras.callbacks.BackupAndRestore(folder / BACKUP, delete_checkpoint=False, double_checkpoint=True),
                ResumedEarlyStopping(history["val_loss"], patience),
                *callbacks,
            ],
        )
        history = read_history(folder)
    model.load_weights(folder / BEST)
    dev = history["val_loss"]
    best = int(np.argmin(dev))
    print(f"Lowest dev loss {dev[best]:.4f} after epoch {best + 1} of {len(dev)}: using those weights.")
    return history


# ---------------------------------------------------------------- several devices (lesson 10)


def split_cpu(devices: int = 2) -> list[str]:
    """Split the CPU into ``devices`` logical devices for MirroredStrategy (lesson 10): right after the setup cell."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu) or []
    if len(current) != devices:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        except RuntimeError:
            raise CourseError(
                f"TensorFlow already runs with {max(len(current), 1)} CPU device(s) in this process: "
                "restart the kernel and call split_cpu() right after the setup cell."
            ) from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def global_batch_size(per_replica: int, strategy) -> int:
    """Captions per training step over all replicas: ``model.fit`` under a strategy takes this *global* size."""
    return per_replica * strategy.num_replicas_in_sync


def scaled_learning_rate(
    global_batch: int, base_rate: float = 1e-3, base_batch: int = 64, rule: str = "linear"
) -> float:
    """The learning rate for ``global_batch`` from one that works at ``base_batch`` (lesson 10): times the batch
    factor (``linear``), its square root (``sqrt``), or unchanged (``none``)."""
    factors = {"linear": global_batch / base_batch, "sqrt": math.sqrt(global_batch / base_batch), "none": 1.0}
    if rule not in factors:
        raise CourseError(f"rule must be 'linear', 'sqrt' or 'none', got {rule!r}.")
    return base_rate * factors[rule]


def distributed_captioner(strategy, vocab_size: int, max_len: int, embedding_matrix=None, learning_rate: float = 1e-3):
    """The captioner built and compiled inside ``strategy.scope()``, for :func:`train` in that scope (lesson 10)."""
    import tensorflow as tf

    from helpers.model import compile_captioner
    from helpers.system.compat import keras_multi_worker_fixes

    with strategy.scope():
        captioner = compile_captioner(build_captioner(vocab_size, max_len, embedding_matrix), learning_rate)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        tasks = strategy.cluster_resolver.cluster_spec().as_dict().values()
        if sum(len(addresses) for addresses in tasks) > 1:
            keras_multi_worker_fixes(captioner)
    return captioner
