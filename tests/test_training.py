"""helpers.training (lessons 07 and 10): training learns a small task, resumes where it stopped, and scales."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import MAX_LEN, VOCAB, synthetic_task
from helpers.generators import CaptionPairs, caption_dataset
from helpers.model import build_captioner
from helpers.system.errors import CourseError
from helpers.training import (
    ResumedEarlyStopping,
    finished,
    global_batch_size,
    read_history,
    recipe,
    scaled_learning_rate,
    train,
)


@pytest.fixture(scope="module")
def task():
    train_features, train_captions = synthetic_task(64, seed=0)
    dev_features, dev_captions = synthetic_task(16, seed=1)
    return {**train_features, **dev_features}, train_captions, dev_captions


@pytest.fixture(autouse=True)
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAPTION_DATASET", "shapes")
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", "none")
    monkeypatch.setenv("CAPTION_FAST", "1")


def fresh_captioner():
    keras.utils.set_random_seed(0)
    return build_captioner(VOCAB, MAX_LEN)


def dev_loss(captioner, features, captions) -> float:
    return captioner.sequence.evaluate(caption_dataset(features, captions, shuffle=False), verbose=0)


def test_training_brings_dev_loss_well_below_the_untrained_loss(task, tmp_path):
    features, train_captions, dev_captions = task
    captioner = fresh_captioner()
    untrained = dev_loss(captioner, features, dev_captions)
    history = train(captioner, features, train_captions, dev_captions, folder=tmp_path, epochs=8, batch_size=8, seed=0)
    trained = dev_loss(captioner, features, dev_captions)
    assert untrained > 2.0
    assert trained < 0.5, f"dev loss {trained:.3f} after training (untrained {untrained:.3f}, image-blind floor 0.59)"
    assert trained == pytest.approx(min(history["val_loss"]), abs=1e-4)  # the best epoch's weights
    saved = read_history(tmp_path)
    assert saved == history and len(saved["seconds"]) == len(saved["loss"]) and min(saved["seconds"]) > 0


def test_an_interrupted_run_resumes_at_the_saved_epoch(task, tmp_path):
    features, train_captions, dev_captions = task
    at_epoch_end = {}

    def stop_in_third_epoch(epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt

    first = fresh_captioner()
    spy = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: at_epoch_end.update({epoch: first.sequence.get_weights()})
    )
    stopper = keras.callbacks.LambdaCallback(on_epoch_begin=stop_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(
            first,
            features,
            train_captions,
            dev_captions,
            folder=tmp_path,
            epochs=4,
            batch_size=32,
            callbacks=(spy, stopper),
        )
    assert len(read_history(tmp_path)["loss"]) == 2
    (tmp_path / "backup" / "latest.weights.h5").write_bytes(b"half-written")  # a crash mid-save: the copy before serves

    second = build_captioner(VOCAB, MAX_LEN)  # new random weights, as after a restart
    begun = {}
    watch = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: begun.update(
            weights=second.sequence.get_weights(), steps=int(second.sequence.optimizer.iterations)
        ),
        on_epoch_begin=lambda epoch, logs: begun.setdefault("epochs", []).append(epoch),
    )
    history = train(
        second, features, train_captions, dev_captions, folder=tmp_path, epochs=4, batch_size=32, callbacks=(watch,)
    )
    assert begun["epochs"] == [1, 2, 3]  # the backup before the damaged one: the second epoch runs again
    for loaded, saved in zip(begun["weights"], at_epoch_end[0]):
        np.testing.assert_array_equal(loaded, saved)
    assert begun["steps"] == 1 * 4  # Adam's state came back too (128 captions, 4 batches per epoch)
    assert len(history["loss"]) == 4 and history == read_history(tmp_path)

    # run once more (a notebook cell run twice): nothing is trained, the best weights come back
    third = build_captioner(VOCAB, MAX_LEN)
    never = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: pytest.fail("trained again"))
    assert (
        train(third, features, train_captions, dev_captions, folder=tmp_path, epochs=4, callbacks=(never,)) == history
    )
    for mine, theirs in zip(third.sequence.get_weights(), second.sequence.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_an_epoch_logged_but_not_backed_up_runs_again_and_counts_once(task, tmp_path):
    features, train_captions, dev_captions = task
    train(fresh_captioner(), features, train_captions, dev_captions, folder=tmp_path, epochs=2, batch_size=32)
    logged = (tmp_path / "history.csv").read_text().splitlines()
    assert len(logged) == 1 + 2  # a header, two epochs
    # as if the run stopped after logging its second epoch and before backing it up
    (tmp_path / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 1, "batch": 0}))
    assert len(read_history(tmp_path)["loss"]) == 1

    history = train(fresh_captioner(), features, train_captions, dev_captions, folder=tmp_path, epochs=3, batch_size=32)
    assert len(history["loss"]) == 3 and history["loss"][0] == pytest.approx(float(logged[1].split(",")[1]))
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + 4  # epoch 2 twice: its last run counts


def test_early_stopping_remembers_the_run_before_a_resume():
    assert finished({"val_loss": [3.0, 2.0, 2.5, 2.6]}, epochs=10, patience=2)
    assert not finished({"val_loss": [3.0, 2.0, 2.5]}, epochs=10, patience=2)
    assert finished({"val_loss": [3.0, 2.0]}, epochs=2, patience=5)
    stopping = ResumedEarlyStopping([3.0, 2.0, 2.5], patience=2)
    stopping.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    stopping.on_train_begin()
    stopping.on_epoch_end(3, {"val_loss": 2.4})  # no better than 2.0: patience used up
    assert stopping.model.stop_training


def test_classic_mode_trains_the_shared_weights(task, tmp_path):
    features, train_captions, dev_captions = task
    captioner = fresh_captioner()
    untrained = dev_loss(captioner, features, dev_captions)
    history = train(
        captioner, features, train_captions, dev_captions, folder=tmp_path, epochs=2, batch_size=8, classic=True, seed=0
    )
    # the prefix model was fitted on the classic pairs and kept its best epoch's weights...
    pairs = CaptionPairs(features, dev_captions, MAX_LEN, images_per_batch=8, shuffle=False)
    assert captioner.prefix.evaluate(pairs, verbose=0) == pytest.approx(min(history["val_loss"]), abs=1e-4)
    # ...and the sequence model, which shares its layers, got better as well. (Its loss is not
    # the same number: Keras averages it per batch of captions, the prefix model's per pair.)
    assert dev_loss(captioner, features, dev_captions) < untrained - 0.5


def test_training_works_inside_a_distribution_strategy(task, tmp_path):
    features, train_captions, dev_captions = task
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        captioner = build_captioner(VOCAB, MAX_LEN)
        history = train(captioner, features, train_captions, dev_captions, folder=tmp_path, epochs=1, batch_size=64)
    assert np.isfinite(history["loss"][0])


def test_recipe_defaults_and_fast_mode():
    assert recipe("flickr8k").batch_size == 64 and recipe("flickr8k").epochs > recipe("flickr8k").fast_epochs
    assert recipe("my-folder") == recipe("flickr8k")
    assert recipe("shapes", fast=True).epochs == recipe("shapes").fast_epochs < recipe("shapes").epochs


def test_train_makes_its_batches_with_the_given_function(task, tmp_path):
    features, train_captions, dev_captions = task
    calls = []

    def spy(features, captions, **options):
        calls.append((captions, options))
        return caption_dataset(features, captions, **options)

    train(
        fresh_captioner(),
        features,
        train_captions,
        dev_captions,
        folder=tmp_path,
        epochs=1,
        batch_size=32,
        seed=0,
        make_dataset=spy,
    )
    assert [captions for captions, _ in calls] == [train_captions, dev_captions]  # both splits, from that function


# ---------------------------------------------------------------- batch size and learning rate


class FakeStrategy:
    num_replicas_in_sync = 4


def test_global_batch_and_learning_rate_rules():
    batch = global_batch_size(64, FakeStrategy())
    assert batch == 256
    assert scaled_learning_rate(batch) == pytest.approx(4e-3)
    assert scaled_learning_rate(batch, rule="sqrt") == pytest.approx(2e-3)
    assert scaled_learning_rate(batch, rule="none") == 1e-3
    with pytest.raises(CourseError):
        scaled_learning_rate(batch, rule="cubic")
