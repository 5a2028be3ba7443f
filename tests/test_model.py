"""helpers.model (lessons 06-07): one interface for every captioner, bundles, and model files from a newer Keras."""

import ast
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import synthetic_task
from helpers.attention import build_attention_captioner, load_attention_captioner
from helpers.model import ARCHITECTURES, build_captioner, load_bundle, load_captioner, save_bundle
from helpers.system.errors import CourseError
from helpers.text import Vocabulary


def as_if_from_a_newer_keras(saved: Path, layer: str) -> Path:
    """A copy of ``saved`` with what Keras 3.15 does to Keras 3.10: a layer option the older Keras rejects."""
    newer = saved.with_name("newer.keras")
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                for entry in config["config"]["layers"]:
                    if entry["config"]["name"] == layer:
                        entry["config"]["option_from_the_future"] = False
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return newer


def test_a_model_file_from_a_newer_keras_still_loads(tmp_path):
    captioner = build_captioner(12, 5)
    captioner.sequence.save(tmp_path / "model.keras")
    newer = as_if_from_a_newer_keras(tmp_path / "model.keras", "image_norm")
    inputs = [
        np.random.default_rng(0).random((2, 2048), dtype=np.float32),
        np.array([[1, 3, 4, 0, 0], [1, 5, 0, 0, 0]], "int32"),
    ]
    with pytest.raises((TypeError, ValueError)):  # what the fallback is for
        keras.models.load_model(newer, compile=False)
    loaded = load_captioner(newer, 5)
    np.testing.assert_allclose(
        loaded.prefix.predict(inputs, verbose=0), captioner.prefix.predict(inputs, verbose=0), atol=1e-6
    )


def test_an_attention_model_file_from_a_newer_keras_still_loads(tmp_path):
    captioner = build_attention_captioner(12, regions=9, feature_dim=16, units=8, attention_units=4)
    captioner.sequence.save(tmp_path / "model.keras")
    newer = as_if_from_a_newer_keras(tmp_path / "model.keras", "region_norm")
    inputs = {
        "image": np.random.default_rng(0).random((2, 9, 16), dtype=np.float32),
        "words": np.array([[1, 3, 4, 0], [1, 5, 0, 0]], "int32"),
    }
    with pytest.raises((TypeError, ValueError)):  # what the fallback is for
        keras.models.load_model(newer, compile=False)
    loaded = load_attention_captioner(newer)
    np.testing.assert_allclose(
        loaded.sequence.predict(inputs, verbose=0), captioner.sequence.predict(inputs, verbose=0), atol=1e-6
    )
    for found, expected in zip(
        loaded.attention.predict(inputs, verbose=0), captioner.attention.predict(inputs, verbose=0)
    ):
        np.testing.assert_allclose(found, expected, atol=1e-6)  # the probabilities, then the alphas


def test_bundle_round_trip(tmp_path, recwarn):
    features, _ = synthetic_task(3, seed=0)
    vocab = Vocabulary.build(["startseq a red circle endseq", "startseq a blue square endseq"], min_count=1)
    keras.utils.set_random_seed(0)
    captioner = build_captioner(len(vocab), vocab.max_len)
    save_bundle(captioner, vocab, tmp_path / "bundle", dataset="synthetic", fast=False, cnn_weights="none", epochs=3)
    bundle = load_bundle(tmp_path / "bundle")
    assert not [w for w in recwarn if "optimizer" in str(w.message)]  # loaded for inference: no optimizer state
    assert (
        bundle.info["max_len"] == vocab.max_len and bundle.info["epochs"] == 3 and bundle.info["cnn_weights"] == "none"
    )
    assert bundle.vocab.words == vocab.words
    x = {"image": np.stack(list(features.values())[:3]), "words": np.array([[1, 2, 3, 0, 0]] * 3, "int32")}
    np.testing.assert_allclose(bundle.captioner.prefix(x), captioner.prefix(x), atol=1e-6)
    with pytest.raises(CourseError, match="no trained model"):
        load_bundle(tmp_path / "nothing")


@pytest.mark.parametrize("architecture", ["merge", "attention"])
def test_every_captioner_offers_the_interface_and_a_bundle_finds_its_loader(architecture, tmp_path):
    vocab = Vocabulary.build(["startseq a red circle endseq"], min_count=1)
    if architecture == "merge":
        captioner = build_captioner(len(vocab), vocab.max_len)
    else:
        captioner = build_attention_captioner(len(vocab), regions=4, feature_dim=8, units=8, attention_units=4)
    assert captioner.architecture == architecture and callable(captioner.decoder)
    assert (captioner.prefix is None) == (architecture == "attention")
    save_bundle(captioner, vocab, tmp_path, dataset="tiny", fast=True, cnn_weights="none")
    bundle = load_bundle(tmp_path)
    assert bundle.captioner.architecture == architecture and bundle.feature_kind == ARCHITECTURES[architecture][2]
    shape = (1, *captioner.sequence.get_layer("image").output.shape[1:])
    features = np.random.default_rng(0).random(shape).astype("float32")
    start, step = bundle.captioner.decoder()
    context, h, c = start(features)
    probabilities, _, _ = step(context, keras.ops.convert_to_tensor([vocab.start_id], "int32"), h, c)
    assert keras.ops.convert_to_numpy(probabilities).shape == (1, len(vocab))


def test_lesson_07s_module_does_not_import_lesson_11s():
    tree = ast.parse((Path(__file__).resolve().parents[1] / "helpers" / "model.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "helpers.attention" not in imported
