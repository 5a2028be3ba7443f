"""A model.keras written by a newer Keras still loads (the layers are the course's own; only weights are read)."""

import json
import zipfile

import numpy as np

from helpers.model import build_captioner, load_captioner, save_captioner


def test_a_model_file_from_a_newer_keras_still_loads(tmp_path):
    captioner = build_captioner(12, 5)
    saved, newer = tmp_path / "model.keras", tmp_path / "newer.keras"
    save_captioner(captioner, saved)
    # What Keras 3.15 does to Keras 3.10: an option in a layer's config that the older Keras rejects.
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(newer, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["config"]["name"] == "image_norm":
                        layer["config"]["option_from_the_future"] = False
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    inputs = [
        np.random.default_rng(0).random((2, 2048), dtype=np.float32),
        np.array([[1, 3, 4, 0, 0], [1, 5, 0, 0, 0]], "int32"),
    ]
    loaded = load_captioner(newer, 5, compile=False)
    np.testing.assert_allclose(
        loaded.prefix.predict(inputs, verbose=0), captioner.prefix.predict(inputs, verbose=0), atol=1e-6
    )
