"""A model.keras written by a newer Keras still loads (the layers are the course's own; only weights are read)."""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers.attention import build_attention_captioner, load_attention_captioner
from helpers.model import build_captioner, load_captioner, save_captioner


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
    save_captioner(captioner, tmp_path / "model.keras")
    newer = as_if_from_a_newer_keras(tmp_path / "model.keras", "image_norm")
    inputs = [
        np.random.default_rng(0).random((2, 2048), dtype=np.float32),
        np.array([[1, 3, 4, 0, 0], [1, 5, 0, 0, 0]], "int32"),
    ]
    loaded = load_captioner(newer, 5, compile=False)
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
