"""Tests of helpers.attention, lesson 11's soft-attention captioner: tiny models, and a task that needs *where*."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from helpers.attention import (
    attention_captioner_from_sequence,
    attention_weights,
    build_attention_captioner,
    decoder_step,
    step_attention,
)
from helpers.decoding import beam_search, greedy
from helpers.model import compile_captioner
from helpers.text import Vocabulary

VOCAB = 30  # 0 padding, then any ids: these tests need no words


def tiny(regions: int = 9, feature_dim: int = 16, units: int = 16, seed: int = 0):
    keras.utils.set_random_seed(seed)
    return build_attention_captioner(
        VOCAB, regions=regions, feature_dim=feature_dim, units=units, attention_units=units
    )


def random_inputs(n: int, length: int, regions: int, feature_dim: int, seed: int = 0, padded: bool = True) -> dict:
    """Features as a feature cache holds them (float16) and word ids, right-padded to lengths 1..length
    (row 0 is never padded, so the batch keeps its width) or, with ``padded=False``, all of full length."""
    rng = np.random.default_rng(seed)
    words = rng.integers(1, VOCAB, size=(n, length), dtype="int32")
    if padded:
        lengths = rng.integers(1, length + 1, size=n)
        lengths[0] = length
        words[np.arange(length) >= lengths[:, None]] = 0
    return {"image": rng.normal(size=(n, regions, feature_dim)).astype("float16"), "words": words}


def shuffle_weights(captioner, seed: int = 1) -> None:
    """Weights that look trained: every weight moved at random, and region_norm given statistics
    of its own, so the tests notice if inference forgets to use them."""
    rng = np.random.default_rng(seed)
    model = captioner.sequence
    model.set_weights([w + rng.normal(scale=0.1, size=w.shape) for w in model.get_weights()])
    norm = model.get_layer("region_norm")
    gamma, beta, mean, variance = (w.shape for w in norm.get_weights())
    norm.set_weights(
        [rng.uniform(0.5, 2, gamma), rng.normal(size=beta), rng.normal(size=mean), rng.uniform(0.5, 2, variance)]
    )


def test_alphas_sum_to_one_and_padding_changes_nothing_before_it():
    captioner = tiny()
    x = random_inputs(6, 7, 9, 16)
    probabilities, alphas = (keras.ops.convert_to_numpy(y) for y in captioner.attention(x))
    real = x["words"] != 0
    # a distribution over the 9 regions at every position; padded positions attend too (their outputs are ignored)
    np.testing.assert_allclose(alphas.sum(axis=-1), 1.0, atol=1e-5)
    assert (alphas >= 0).all()
    longer = {"image": x["image"], "words": np.pad(x["words"], ((0, 0), (0, 4)))}
    more_probabilities, more_alphas = (keras.ops.convert_to_numpy(y) for y in captioner.attention(longer))
    np.testing.assert_allclose(more_probabilities[:, :7][real], probabilities[real], atol=1e-6)
    np.testing.assert_allclose(more_alphas[:, :7][real], alphas[real], atol=1e-6)
    # padding never reaches the loss: 4 more padded targets per caption, the same loss
    targets = np.where(real, np.roll(x["words"], -1, axis=1), 0)
    loss = captioner.sequence.evaluate(x, targets, verbose=0)
    more_padding = np.pad(targets, ((0, 0), (0, 4)))
    assert captioner.sequence.evaluate(longer, more_padding, verbose=0) == pytest.approx(loss, abs=1e-6)


@pytest.mark.parametrize("size", [(9, 16, 16), (49, 2048, 256)], ids=["tiny", "resnet50-size"])
def test_word_by_word_equals_the_whole_caption_model(size):
    regions, feature_dim, units = size
    captioner = tiny(regions, feature_dim, units)
    shuffle_weights(captioner)
    x = random_inputs(4, 8, regions, feature_dim, seed=2, padded=False)  # every position a real prefix
    expected_probabilities, expected_alphas = (keras.ops.convert_to_numpy(y) for y in captioner.attention(x))
    probabilities, alphas = step_attention(captioner, x["image"], x["words"])
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-5)
    np.testing.assert_allclose(alphas, expected_alphas, atol=1e-5)
    np.testing.assert_allclose(attention_weights(captioner, x["image"], x["words"]), expected_alphas, atol=1e-5)
    # the protocol the batched decoders run: start once, then one step per word
    start, step = captioner.decoder()
    assert step is decoder_step(captioner)  # compiled once per model
    context, h, c = start(x["image"])
    for t in range(x["words"].shape[1]):
        probs, h, c = step(context, keras.ops.convert_to_tensor(x["words"][:, t]), h, c)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(probs), expected_probabilities[:, t], atol=1e-5)


def test_the_course_decoders_run_the_attention_captioner():
    captioner = tiny()
    shuffle_weights(captioner)
    # a next_word layer that listens to its input (a random untrained one says one word everywhere),
    # with endseq favoured so that captions end at different lengths
    next_word = captioner.sequence.get_layer("next_word")
    kernel, bias = next_word.get_weights()
    words = ["<pad>", "startseq", "endseq", *(f"w{i}" for i in range(VOCAB - 3))]
    vocab = Vocabulary(words, {}, max_len=7, min_count=1)
    end_favoured = np.where(np.arange(VOCAB) == vocab.end_id, 10.0, 0.0)
    next_word.set_weights([np.random.default_rng(5).normal(size=kernel.shape), end_favoured])
    features = random_inputs(5, 1, 9, 16, seed=4)["image"]
    # greedy by hand on the whole-caption model: re-read the caption so far, take the likeliest allowed word
    expected = []
    for image in features:
        ids = [vocab.start_id]
        while len(ids) < vocab.max_len and ids[-1] != vocab.end_id:
            probs = keras.ops.convert_to_numpy(captioner.sequence({"image": image[None], "words": np.array([ids])}))
            probs[0, -1, [0, vocab.start_id]] = 0  # the decoders never pick padding or startseq
            ids.append(int(probs[0, -1].argmax()))
        expected.append(vocab.decode(ids))
    assert len({len(caption.split()) for caption in expected}) > 1  # the test's own power: not all alike
    assert greedy(captioner, vocab, features, batch_size=2) == expected
    assert beam_search(captioner, vocab, features, beam_width=1) == expected
    assert beam_search(captioner, vocab, features, beam_width=3, batch_size=2) == [
        beam_search(captioner, vocab, image[None], beam_width=3)[0] for image in features
    ]


def marked_region_task(n: int, seed: int, regions: int = 16, feature_dim: int = 32, classes: int = 4):
    """Captions ``startseq a w_k endseq`` where k is the class of the one *marked* region of the image.

    Every region holds the prototype of a random class (plus noise); one region also has
    feature 0 set to 1, the mark. The mean over the regions sums all 16 prototypes with the
    same weight, so a pooled model cannot tell which one is marked; attention can look there.
    Ids: 0 padding, 1 startseq, 2 endseq, 3 "a", 4 + k the class words.
    """
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(99).normal(size=(classes, feature_dim - 1))  # the same for every split
    kind = rng.integers(0, classes, size=(n, regions))
    marked = rng.integers(0, regions, size=n)
    features = np.zeros((n, regions, feature_dim), dtype="float32")
    features[:, :, 1:] = prototypes[kind] + 0.5 * rng.normal(size=(n, regions, feature_dim - 1))
    features[np.arange(n), marked, 0] = 1.0
    tokens = np.stack([np.full(n, 1), np.full(n, 3), 4 + kind[np.arange(n), marked], np.full(n, 2)], axis=1)
    return {"image": features, "words": tokens[:, :-1].astype("int32")}, tokens[:, 1:].astype("int32"), marked


@pytest.mark.slow  # about 5 s on 2 idle cores, most of it tracing the training step
def test_attention_learns_to_look_at_the_marked_region():
    regions, classes = 16, 4
    keras.utils.set_random_seed(0)
    captioner = build_attention_captioner(4 + classes, regions=regions, feature_dim=32, units=16, attention_units=16)
    compile_captioner(captioner, learning_rate=1e-2)  # a tiny model on an easy task: larger steps
    train_x, train_y, _ = marked_region_task(640, seed=1)
    dev_x, dev_y, dev_marked = marked_region_task(200, seed=2)
    model = captioner.sequence
    before = float(model.loss(dev_y, model(dev_x)))
    model.fit(train_x, train_y, epochs=16, batch_size=64, verbose=0)
    probabilities, alphas = (keras.ops.convert_to_numpy(y) for y in captioner.attention(dev_x))
    assert float(model.loss(dev_y, probabilities)) < before / 4
    # position 1 reads "a" and must name the marked region's class: it looks there, on images it never saw
    on_marked = alphas[np.arange(len(dev_marked)), 1, dev_marked]
    assert on_marked.mean() > 4 / regions
    # measured: about 0.97-1.0 here, while the merge model fed the mean of the same regions names it right
    # 30-36 % of the time (seeds 0-2; chance is 25 %): in the mean, every region weighs the same
    assert (probabilities[:, 1].argmax(axis=-1) == dev_y[:, 1]).mean() > 0.9


def test_save_and_load_round_trip(tmp_path):
    captioner = tiny()
    x = random_inputs(5, 6, 9, 16, seed=3)
    shuffle_weights(captioner)
    captioner.sequence.save(tmp_path / "attention.keras")
    loaded = keras.models.load_model(tmp_path / "attention.keras", compile=False)  # as load_bundle does
    again = attention_captioner_from_sequence(loaded)
    assert again.attention.get_layer("attention_lstm") is loaded.get_layer("attention_lstm")  # no copies
    expected = keras.ops.convert_to_numpy(captioner.sequence(x))
    for reloaded in (loaded, again.sequence):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x)), expected, atol=1e-6)
    expected_alphas = keras.ops.convert_to_numpy(captioner.attention(x)[1])
    np.testing.assert_allclose(attention_weights(again, x["image"], x["words"]), expected_alphas, atol=1e-5)


def test_a_glove_matrix_is_used_frozen_and_a_wrong_shape_is_explained():
    matrix = np.random.default_rng(4).normal(size=(VOCAB, 50)).astype("float32")
    captioner = build_attention_captioner(VOCAB, matrix, regions=9, feature_dim=16, units=16, attention_units=16)
    embedding = captioner.sequence.get_layer("embedding")
    np.testing.assert_array_equal(embedding.get_weights()[0], matrix)
    assert not embedding.trainable
    assert all(weight is not embedding.embeddings for weight in captioner.sequence.trainable_weights)
    with pytest.raises(ValueError, match="expected"):
        build_attention_captioner(VOCAB, matrix[:, :10], regions=9, feature_dim=16)


def test_an_attention_bundle_captions_photos_from_their_grid_features(course_dir, tmp_path):
    """The bundle says which architecture it holds; captioning a photo then extracts the 7 x 7 grid."""
    from PIL import Image

    from helpers.model import load_bundle, save_bundle
    from helpers.photos import caption_photos

    vocab = Vocabulary(["<pad>", "startseq", "endseq", "a", "red", "circle"], {}, max_len=5, min_count=1)
    keras.utils.set_random_seed(0)
    captioner = build_attention_captioner(len(vocab))
    save_bundle(captioner, vocab, tmp_path / "bundle", dataset="tiny", fast=True, cnn_weights="none")
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.info["architecture"] == "attention" and bundle.feature_kind == "grid"
    assert bundle.info["features"]["pooling"].startswith("none") and bundle.info["max_len"] == 5
    photo = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (220, 30, 30)).save(photo)
    captioned, skipped = caption_photos([photo], bundle, beam_width=2)
    assert skipped == {} and set(captioned[photo].split()) <= {"a", "red", "circle"}
