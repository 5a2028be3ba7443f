"""helpers.course: the chain lessons 05-12 start from, built once and then read from its caches."""

import pytest

from helpers.config import get_settings
from helpers.course import prepare_model
from helpers.data.shapes_dataset import make_shapes
from helpers.training import read_history


@pytest.fixture(autouse=True)
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", "none")
    monkeypatch.setenv("CAPTION_FAST", "1")


@pytest.mark.slow  # builds a ResNet50 and extracts features of 16 images
def test_prepare_model_builds_the_whole_chain_once(tmp_path, monkeypatch, capsys):
    root = make_shapes(tmp_path / "tiny-shapes", split={"train": 8, "dev": 4, "test": 4})
    monkeypatch.setenv("CAPTION_DATASET", str(root))
    bundle = prepare_model(get_settings())
    built = capsys.readouterr().out
    assert "No trained model" in built and "lesson 02" in built and "lesson 04" in built
    folder = tmp_path / "artifacts" / "tiny-shapes" / "fast-random-cnn"
    assert {"model.keras", "vocab.json", "model.json", "history.csv"} <= {p.name for p in folder.iterdir()}
    assert bundle.info["features"]["weights"] == "none" and bundle.info["vocab_size"] == len(bundle.vocab)
    assert bundle.info["epochs"] == len(read_history(folder)["loss"])

    again = prepare_model(get_settings())  # now it only loads
    assert "No trained model" not in capsys.readouterr().out
    assert again.info == bundle.info
