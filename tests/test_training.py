"""Training learns a small task, resumes where it stopped, and saves a bundle lessons 08-10 can load."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import MAX_LEN, VOCAB, synthetic_task
from helpers.bundle import load_bundle, save_bundle
from helpers.errors import CourseError
from helpers.generators import CaptionPairs, caption_dataset
from helpers.model import build_captioner
from helpers.training import ResumableEarlyStopping, finished, recipe, train


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
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["val_loss"] == history["val_loss"] and len(saved["seconds"]) == len(saved["loss"])


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
    assert len(json.loads((tmp_path / "history.json").read_text())["loss"]) == 2
    (tmp_path / "checkpoints" / "epoch-03.keras").write_bytes(b"half-written")  # a crash mid-save

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
    assert begun["epochs"] == [2, 3]  # continued with the third epoch
    for loaded, saved in zip(begun["weights"], at_epoch_end[1]):
        np.testing.assert_array_equal(loaded, saved)
    assert begun["steps"] == 2 * 4  # Adam's state came back too (128 captions, 4 batches per epoch)
    assert len(history["loss"]) == 4
    kept = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    best = int(np.argmin(history["val_loss"])) + 1
    assert kept == sorted({f"epoch-{best:02d}.keras", "epoch-04.keras"})

    # run once more (a notebook cell run twice): nothing is trained, the best weights come back
    third = build_captioner(VOCAB, MAX_LEN)
    never = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: pytest.fail("trained again"))
    assert (
        train(third, features, train_captions, dev_captions, folder=tmp_path, epochs=4, callbacks=(never,)) == history
    )
    for mine, theirs in zip(third.sequence.get_weights(), second.sequence.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_early_stopping_remembers_the_run_before_a_resume():
    assert finished({"val_loss": [3.0, 2.0, 2.5, 2.6]}, epochs=10, patience=2)
    assert not finished({"val_loss": [3.0, 2.0, 2.5]}, epochs=10, patience=2)
    assert finished({"val_loss": [3.0, 2.0]}, epochs=2, patience=5)
    stopping = ResumableEarlyStopping([3.0, 2.0, 2.5], patience=2)
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
    assert [captions for captions, _ in calls] == [train_captions, dev_captions]
    assert calls[0][1] == {"batch_size": 32, "max_len": MAX_LEN, "seed": 0}
    assert calls[1][1] == {"batch_size": 32, "max_len": MAX_LEN, "shuffle": False}


def test_bundle_round_trip(task, tmp_path, recwarn):
    from helpers.text import Vocabulary

    features, _, _ = task
    vocab = Vocabulary.build(["startseq a red circle endseq", "startseq a blue square endseq"], min_count=1)
    keras.utils.set_random_seed(0)
    captioner = build_captioner(len(vocab), MAX_LEN)
    save_bundle(captioner, vocab, tmp_path / "bundle", dataset="synthetic", fast=False, cnn_weights="none", epochs=3)
    bundle = load_bundle(tmp_path / "bundle")
    assert not [w for w in recwarn if "optimizer" in str(w.message)]  # loaded for inference: no optimizer state
    assert bundle.info["max_len"] == MAX_LEN and bundle.info["epochs"] == 3 and bundle.info["cnn_weights"] == "none"
    assert bundle.vocab.words == vocab.words
    x = {"image": np.stack(list(features.values())[:3]), "words": np.array([[1, 2, 3, 0, 0, 0]] * 3, "int32")}
    np.testing.assert_allclose(bundle.captioner.prefix(x), captioner.prefix(x), atol=1e-6)
    with pytest.raises(CourseError, match="no trained model"):
        load_bundle(tmp_path / "nothing")


@pytest.mark.slow  # builds a ResNet50 and extracts features of 16 images
def test_prepare_model_builds_the_whole_chain_once(tmp_path, monkeypatch, capsys):
    from helpers.course import prepare_model
    from helpers.shapes import make_shapes

    root = make_shapes(tmp_path / "tiny-shapes", split={"train": 8, "dev": 4, "test": 4})
    monkeypatch.setenv("CAPTION_DATASET", str(root))
    bundle = prepare_model()
    built = capsys.readouterr().out
    assert "No trained model" in built and "lesson 02" in built and "lesson 04" in built
    folder = tmp_path / "artifacts" / "tiny-shapes" / "fast-random-cnn"
    assert {"model.keras", "vocab.json", "model.json", "history.json"} <= {p.name for p in folder.iterdir()}
    assert bundle.info["features"]["weights"] == "none" and bundle.info["vocab_size"] == len(bundle.vocab)
    assert bundle.info["epochs"] == len(json.loads((folder / "history.json").read_text())["loss"])

    again = prepare_model()  # now it only loads
    assert "No trained model" not in capsys.readouterr().out
    assert again.info == bundle.info
