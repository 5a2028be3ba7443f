"""Settings from environment variables, and atomic writes."""

from __future__ import annotations

import errno

import pytest

from helpers.config import FLICKR8K_URL, get_settings
from helpers.system.errors import CourseError
from helpers.system.files import atomic_path, read_json, write_json


def test_defaults(monkeypatch):
    for name in ("CAPTION_DATASET", "CAPTION_DATA_DIR", "CAPTION_CNN_WEIGHTS", "CAPTION_FAST", "CAPTION_FLICKR8K_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = get_settings()
    assert (settings.dataset, settings.cnn_weights, settings.fast) == ("flickr8k", "imagenet", False)
    assert settings.flickr8k_url == FLICKR8K_URL
    assert (settings.base_dir / "pyproject.toml").exists()  # the course folder
    assert settings.artifacts_dir == settings.base_dir / "artifacts" / "flickr8k"


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTION_DATASET", "shapes")
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", "None")
    monkeypatch.setenv("CAPTION_FAST", "1")
    monkeypatch.setenv("CAPTION_FLICKR8K_URL", "http://127.0.0.1:9/mirror/")
    settings = get_settings()
    assert (settings.dataset, settings.cnn_weights, settings.fast) == ("shapes", "none", True)
    assert settings.data_dir == tmp_path / "data"
    assert settings.artifacts_dir == tmp_path / "artifacts" / "shapes" / "fast-random-cnn"
    assert settings.features_dir == tmp_path / "artifacts" / "shapes" / "features"  # shared by fast and full
    assert settings.flickr8k_url == "http://127.0.0.1:9/mirror"
    text = str(settings)
    assert "CAPTION_DATASET" in text and "shapes" in text and str(tmp_path) in text


@pytest.mark.parametrize(
    "fast, weights, variant",
    [("0", "imagenet", None), ("1", "imagenet", "fast"), ("0", "none", "random-cnn"), ("1", "none", "fast-random-cnn")],
)
def test_each_variant_has_its_own_artifacts(monkeypatch, tmp_path, fast, weights, variant):
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAPTION_DATASET", "flickr8k")
    monkeypatch.setenv("CAPTION_FAST", fast)
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", weights)
    folder = tmp_path / "artifacts" / "flickr8k"
    assert get_settings().artifacts_dir == (folder / variant if variant else folder)


def test_folder_dataset_gets_a_short_key(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTION_DATASET", str(tmp_path / "My Kaggle Flickr8k"))
    assert get_settings().dataset_key == "My-Kaggle-Flickr8k"


@pytest.mark.parametrize(
    "name, value, message",
    [("CAPTION_CNN_WEIGHTS", "vgg", "must be 'imagenet' or 'none'"), ("CAPTION_FAST", "maybe", "must be 1 or 0")],
)
def test_bad_values_are_one_line(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(CourseError, match=message):
        get_settings()


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "vocab.json"
    write_json(target, {"words": ["a"]})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert read_json(target) == {"words": ["a"]}
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]


def test_atomic_path_full_disk_is_one_line(tmp_path):
    with pytest.raises(CourseError, match="disk is full"):
        with atomic_path(tmp_path / "features.npy") as tmp:
            assert tmp.suffix == ".npy"  # writers that insist on a suffix get it
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
