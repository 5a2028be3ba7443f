"""helpers.generators (lessons 05, 10): the classic generator and the fast path feed the same pairs, streamed
from disk too, and padding never reaches the loss."""

from collections import Counter
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import random_captions
from helpers.features import FeatureSet
from helpers.generators import (
    CaptionPairs,
    caption_dataset,
    caption_pairs,
    captions_by_image,
    stream_caption_dataset,
    teacher_forcing_arrays,
)
from helpers.model import build_captioner

VOCAB = 30
MAX_LEN = 9


def numbered_features(n_images: int) -> np.ndarray:
    """Features whose first value is the image's row number, so batches show which image they hold."""
    features = np.random.default_rng(1).random((n_images, 2048)).astype("float32")
    features[:, 0] = np.arange(n_images)
    return features


def pairs_of_epoch(generator: CaptionPairs) -> Counter:
    """Every (image row, prefix, next word) in one pass over the generator."""
    seen = Counter()
    for index in range(len(generator)):
        x, y = generator[index]
        for image, words, target in zip(x["image"], x["words"], y):
            seen[(int(image[0]), tuple(int(w) for w in words if w), int(target))] += 1
    return seen


def test_caption_pairs_match_the_worked_table():
    # startseq(1) a(4) dog(9) runs(7) endseq(2)
    assert caption_pairs([1, 4, 9, 7, 2]) == [([1], 4), ([1, 4], 9), ([1, 4, 9], 7), ([1, 4, 9, 7], 2)]
    assert caption_pairs([1, 4, 9, 7, 2], max_len=2) == [([1], 4), ([1, 4], 9)]


def test_classic_batch_is_the_right_padded_pairs_of_a_hand_worked_caption():
    features = numbered_features(1)
    x, y = CaptionPairs(features, [[[1, 4, 9, 7, 2]]], max_len=6)[0]
    np.testing.assert_array_equal(
        x["words"], [[1, 0, 0, 0, 0, 0], [1, 4, 0, 0, 0, 0], [1, 4, 9, 0, 0, 0], [1, 4, 9, 7, 0, 0]]
    )
    np.testing.assert_array_equal(y, [4, 9, 7, 2])
    np.testing.assert_array_equal(x["image"], np.repeat(features, 4, axis=0))
    assert x["words"].dtype == np.int32 and y.dtype == np.int32


def test_classic_generator_covers_every_pair_once_per_epoch_in_a_new_order():
    captions = random_captions(11)
    expected = Counter(
        (row, tuple(prefix), word)
        for row, group in enumerate(captions)
        for caption in group
        for prefix, word in caption_pairs(caption)
    )
    generator = CaptionPairs(numbered_features(11), captions, MAX_LEN, images_per_batch=3, seed=0)
    assert len(generator) == 4
    first_order = generator.order.copy()
    assert pairs_of_epoch(generator) == expected
    generator.on_epoch_end()
    assert not np.array_equal(generator.order, first_order)
    assert pairs_of_epoch(generator) == expected


def test_classic_generator_takes_mappings_and_one_hot_targets():
    captions = {"b.jpg": [[1, 5, 2]], "a.jpg": [[1, 6, 7, 2], [1, 8, 2]]}
    features = {"a.jpg": np.full(2048, 1.0, "float32"), "b.jpg": np.full(2048, 2.0, "float32")}
    generator = CaptionPairs(
        features, captions, MAX_LEN, images_per_batch=2, one_hot=True, vocab_size=VOCAB, shuffle=False
    )
    x, y = generator[0]
    assert y.shape == (7, VOCAB) and y.dtype == np.float32
    np.testing.assert_array_equal(y.argmax(axis=1), [5, 2, 6, 7, 2, 8, 2])
    np.testing.assert_array_equal(x["image"][:, 0], [2, 2, 1, 1, 1, 1, 1])


def test_teacher_forcing_rows_hold_the_same_pairs():
    captions = random_captions(7)
    rows, inputs, targets = teacher_forcing_arrays(captions)
    flat = [(row, caption) for row, group in enumerate(captions) for caption in group]
    assert len(rows) == len(flat) and inputs.shape == targets.shape
    for (row, caption), image_row, words, target in zip(flat, rows, inputs, targets):
        assert image_row == row
        n = len(caption) - 1
        assert not words[n:].any() and not target[n:].any()  # right-padded with 0
        for t, (prefix, word) in enumerate(caption_pairs(caption)):
            assert list(words[: t + 1]) == prefix and target[t] == word


def test_fast_dataset_yields_each_caption_once_with_its_image_and_trimmed_padding():
    captions = random_captions(20, seed=3)
    features = numbered_features(20)
    expected = Counter((row, tuple(caption)) for row, group in enumerate(captions) for caption in group)
    data = caption_dataset(features, captions, batch_size=4, seed=0)
    for _ in range(2):  # two epochs, reshuffled
        seen = Counter()
        for x, y in data:
            image, words, target = x["image"].numpy(), x["words"].numpy(), y.numpy()
            assert target[:, -1].any(), "a column of padding only should have been trimmed"
            np.testing.assert_array_equal(image, features[image[:, 0].astype(int)])
            for row, w, t in zip(image[:, 0].astype(int), words, target):
                n = np.count_nonzero(t)
                assert not w[n:].any()
                seen[(row, (*w[:n], t[n - 1]))] += 1
        assert seen == expected


def test_fast_dataset_buckets_similar_lengths():
    captions = random_captions(200, seed=4)
    _, _, targets = teacher_forcing_arrays(captions)
    real = np.count_nonzero(targets)

    def padding_share(buckets):
        total = sum(
            int(np.prod(y.shape))
            for _, y in caption_dataset(numbered_features(200), captions, batch_size=16, buckets=buckets, seed=0)
        )
        return 1 - real / total

    assert padding_share(5) < 0.6 * padding_share(1)


def test_captions_by_image_groups_encoded_captions_of_one_split():
    import pandas as pd

    class Words:  # the part of helpers.text.Vocabulary this needs
        def encode(self, wrapped):
            return [len(word) for word in wrapped.split()]

    table = pd.DataFrame(
        {
            "image": ["a.jpg", "a.jpg", "b.jpg", "c.jpg"],
            "split": ["train", "train", "train", "dev"],
            "tokens": ["startseq a dog endseq", "startseq dogs endseq", "startseq cat endseq", "startseq x endseq"],
        }
    )
    assert captions_by_image(table, Words(), "train") == {"a.jpg": [[8, 1, 3, 6], [8, 4, 6]], "b.jpg": [[8, 3, 6]]}


# ---------------------------------------------------------------- the two models agree


@pytest.fixture(scope="module")
def captioner():
    keras.utils.set_random_seed(0)
    glove_like = np.random.default_rng(0).normal(size=(VOCAB, 50)).astype("float32")
    return build_captioner(VOCAB, MAX_LEN, glove_like)


def test_prefix_and_sequence_models_agree_on_the_generators_batches(captioner):
    captions = random_captions(6, seed=5)
    features = np.random.default_rng(2).random((6, 2048)).astype("float32")
    x_pairs, y_pairs = CaptionPairs(features, captions, MAX_LEN, images_per_batch=6, shuffle=False)[0]
    x_seq, y_seq = next(iter(caption_dataset(features, captions, batch_size=100, shuffle=False, buckets=1)))
    per_prefix = np.asarray(captioner.prefix(x_pairs))
    per_step = np.asarray(captioner.sequence(x_seq))
    real = y_seq.numpy() != 0  # row-major order = caption by caption, word by word = the pairs' order
    assert real.sum() == len(y_pairs)
    np.testing.assert_array_equal(y_seq.numpy()[real], y_pairs)
    np.testing.assert_allclose(per_step[real], per_prefix, atol=1e-5)
    # and so do the losses: the mean over pairs is the mean over real positions
    pair_loss = captioner.prefix.evaluate(x_pairs, y_pairs, batch_size=1000, verbose=0)
    step_loss = captioner.sequence.evaluate(x_seq, y_seq, batch_size=1000, verbose=0)
    assert abs(pair_loss - step_loss) < 1e-5


def test_padding_never_reaches_the_loss(captioner):
    captions = random_captions(8, seed=6)
    features = np.random.default_rng(3).random((8, 2048)).astype("float32")
    rows, inputs, targets = teacher_forcing_arrays(captions)
    image = features[rows]
    loss = captioner.sequence.loss

    probabilities = np.asarray(captioner.sequence({"image": image, "words": inputs}))
    real = targets != 0
    by_hand = -np.log(probabilities[real, targets[real]]).mean()
    assert abs(float(loss(targets, probabilities)) - by_hand) < 1e-5

    # whatever the model predicts at padded positions changes nothing ...
    noise = np.random.default_rng(4).dirichlet(np.ones(VOCAB), size=targets.shape).astype("float32")
    scrambled = np.where(real[..., None], probabilities, noise)
    assert abs(float(loss(targets, scrambled)) - by_hand) < 1e-5
    # ... while a loss that did not skip class 0 would notice (so this test can fail)
    plain = keras.losses.SparseCategoricalCrossentropy()
    assert abs(float(plain(targets, scrambled)) - float(plain(targets, probabilities))) > 1e-3

    # and neither does more padding: 7 extra all-zero columns give the same loss
    wider = {"image": image, "words": np.pad(inputs, ((0, 0), (0, 7)))}
    wider_loss = captioner.sequence.evaluate(wider, np.pad(targets, ((0, 0), (0, 7))), batch_size=1000, verbose=0)
    narrow_loss = captioner.sequence.evaluate({"image": image, "words": inputs}, targets, batch_size=1000, verbose=0)
    assert abs(wider_loss - narrow_loss) < 1e-5 and abs(narrow_loss - by_hand) < 1e-5


# ---------------------------------------------------------------- streamed from disk (lesson 10)


def synthetic_store(folder: Path, images: list[str], dtype: str) -> tuple[FeatureSet, dict[str, np.ndarray]]:
    vectors = np.random.default_rng(0).random((len(images), 2048), dtype=np.float32) * 10
    np.save(folder / f"features-{dtype}.npy", vectors.astype(dtype))
    store = FeatureSet(np.load(folder / f"features-{dtype}.npy", mmap_mode="r"), images)
    return store, {image: vectors[i].astype(dtype).astype(np.float32) for i, image in enumerate(images)}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_streamed_batches_equal_lesson_05s(tmp_path, dtype, shuffle):
    images = [f"img{i}.jpg" for i in range(30)]
    store, vectors = synthetic_store(tmp_path, images, dtype)
    captions = random_captions(images[5:25][::-1], seed=1)  # some images, not in the store's order
    streamed = stream_caption_dataset(store, captions, batch_size=8, max_len=9, shuffle=shuffle, seed=3)
    reference = caption_dataset(vectors, captions, batch_size=8, max_len=9, shuffle=shuffle, seed=3)
    assert streamed.cardinality() == reference.cardinality()
    count = 0
    for (x, y), (x_ref, y_ref) in zip(streamed, reference, strict=True):
        np.testing.assert_array_equal(x["image"], x_ref["image"])
        np.testing.assert_array_equal(x["words"], x_ref["words"])
        np.testing.assert_array_equal(y, y_ref)
        count += int(y.shape[0])
    assert count == sum(len(group) for group in captions.values())
