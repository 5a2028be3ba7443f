"""helpers.share (lesson 12): the exported SavedModel captions with TensorFlow alone, as the course's decoders do;
the LiteRT models keep the captions close and the files small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import cosines
from helpers.attention import build_attention_captioner
from helpers.data.shapes_dataset import make_shapes
from helpers.decoding import beam_search, greedy
from helpers.features import extract_features
from helpers.model import build_captioner, load_bundle, save_bundle
from helpers.photos import caption_photos
from helpers.share import export_savedmodel, load_lite, quantize
from helpers.text import Vocabulary

WORDS = ["a", "red", "blue", "green", "circle", "square", "triangle", "on", "white", "black", "big", "small"]


def listening(captioner, vocab: Vocabulary, features: np.ndarray, seed: int) -> None:
    """Random weights that make the captions depend on the image, with endseq likely enough to end them at
    different lengths (captions that can tell a decoder's mistakes apart), and batch norms that have seen
    the images' features, as trained ones have."""
    rng = np.random.default_rng(seed)
    model = captioner.sequence
    model.set_weights([w + rng.normal(scale=0.2, size=w.shape) for w in model.get_weights()])
    kernel, bias = model.get_layer("next_word").get_weights()
    bias[vocab.end_id] += 1.5
    model.get_layer("next_word").set_weights([rng.normal(scale=0.6, size=kernel.shape), bias])
    norm = model.get_layer("region_norm" if captioner.architecture == "attention" else "image_norm")
    gamma, beta, _, _ = norm.get_weights()
    flat = features.reshape(-1, features.shape[-1])
    norm.set_weights([gamma, beta, flat.mean(axis=0), flat.var(axis=0) + 1e-3])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    root = make_shapes(tmp_path_factory.mktemp("shapes"), split={"train": 16, "dev": 0, "test": 0})
    return sorted((root / "Flicker8k_Dataset").iterdir())


@pytest.fixture(scope="module", params=["merge", "attention"])
def bundle(request, tmp_path_factory, photos):
    vocab = Vocabulary.build([f"startseq {w} endseq" for w in WORDS], min_count=1)
    vocab.max_len = 8
    keras.utils.set_random_seed(0)
    grid = request.param == "attention"
    if grid:
        captioner = build_attention_captioner(len(vocab), units=32, attention_units=16)
    else:
        captioner = build_captioner(len(vocab), vocab.max_len)
    features = extract_features(photos, weights="none", precision="float32", grid=grid).features.astype("float32")
    listening(captioner, vocab, features, seed=1)
    folder = tmp_path_factory.mktemp(request.param)
    return load_bundle(save_bundle(captioner, vocab, folder, dataset="tiny", fast=True, cnn_weights="none"))


@pytest.mark.slow
@pytest.mark.parametrize("beam_width", [1, 3])
def test_the_savedmodel_writes_the_course_decoders_captions(bundle, photos, beam_width, tmp_path):
    expected, skipped = caption_photos(photos, bundle, beam_width, precision="float32")
    assert not skipped and len(set(expected.values())) > 3 and len({len(c.split()) for c in expected.values()}) > 1
    served = tf.saved_model.load(str(export_savedmodel(bundle, tmp_path / "saved", beam_width)))
    captions = served.serve(tf.constant([photo.read_bytes() for photo in photos])).numpy()
    assert [c.decode() for c in captions] == [expected[photo] for photo in photos]


@pytest.mark.slow
def test_the_savedmodel_needs_only_tensorflow(bundle, photos, tmp_path):
    folder = export_savedmodel(bundle, tmp_path / "saved", beam_width=2)
    expected, _ = caption_photos(photos[:3], bundle, 2, precision="float32")
    code = (
        "import sys, tensorflow as tf\n"
        "sys.modules['helpers'] = None; sys.modules['keras'] = None  # importing either now fails\n"
        "model = tf.saved_model.load(sys.argv[1])\n"
        "images = tf.constant([open(path, 'rb').read() for path in sys.argv[2:]])\n"
        "print('\\n'.join(c.decode() for c in model.serve(images).numpy()))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(folder), *map(str, photos[:3])],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == [expected[photo] for photo in photos[:3]]


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["int8", "float16"])
def test_the_litert_model_is_smaller_and_captions_alike(bundle, photos, weights, tmp_path):
    pytest.importorskip("ai_edge_litert", reason="LiteRT's interpreter: pip install ai-edge-litert")
    path = quantize(bundle, tmp_path / f"{weights}.tflite", weights)
    assert path.stat().st_size < {"int8": 0.35, "float16": 0.6}[weights] * 94_700_000  # ResNet50's float32 weights
    lite = load_lite(path, bundle)
    found = lite.features(photos)
    grid = bundle.feature_kind == "grid"
    exact = extract_features(photos, weights="none", precision="float32", grid=grid).features.astype(np.float32)
    assert (
        found.shape == exact.shape
        and cosines(found.reshape(len(photos), -1), exact.reshape(len(photos), -1)).min() > 0.99
    )
    with Image.open(photos[0]) as upright:  # a phone photo stored sideways, its EXIF tag saying how to turn it
        exif = Image.Exif()
        exif[0x0112] = 6
        upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.jpg", quality=95, exif=exif)
    turned = lite.features([tmp_path / "sideways.jpg"])
    assert cosines(turned.reshape(1, -1), found[:1].reshape(1, -1))[0] > 0.99, "the LiteRT encoder turns photos upright"
    expected, _ = caption_photos(photos, bundle, 1, precision="float32")
    same = np.mean([caption == expected[photo] for caption, photo in zip(greedy(lite, bundle.vocab, found), photos)])
    # 56% for the merge model when the converter folds image_norm into image_dense (int8 zeroes half the weights)
    assert same >= 0.8, f"only {same:.0%} of the greedy captions unchanged"
    assert (
        beam_search(lite, bundle.vocab, exact, beam_width=3) == beam_search(bundle.captioner, bundle.vocab, exact, 3)
        or weights == "int8"
    )
