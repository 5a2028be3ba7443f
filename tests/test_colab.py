"""Colab: the Drive switch, two VMs continuing each other through one Drive folder, the version check."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from helpers import course, datasets, features
from helpers.config import get_settings
from helpers.data import shapes_dataset
from helpers.system import colab
from helpers.system.colab import too_old


def test_keep_on_drive_mounts_and_points_the_data_folder_there(tmp_path, monkeypatch):
    for name in ("CAPTION_DATA_DIR", "CAPTION_UNPACK_DIR"):  # unset now, and as before once the test ends
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    mounted = []
    folder = colab.keep_on_drive(
        mounted.append, folder=str(tmp_path / "MyDrive" / "course"), unpack_to=str(tmp_path / "vm")
    )
    assert mounted == ["/content/drive"] and folder.is_dir()
    settings = get_settings()
    assert settings.base_dir == folder and settings.extract_dir == tmp_path / "vm"


def test_versions_older_than_supported_are_named():
    found = {"python": "3.12.1", "tensorflow": "2.18.0", "keras": "3.10.0", "numpy": "2.0.2", "pandas": "2.1.4rc1"}
    assert too_old(found) == ["tensorflow 2.18.0 (needs 2.19+)", "pandas 2.1.4rc1 (needs 2.2+)"]
    assert too_old({"keras": "3.15.1", "tensorflow": "2.21.0"}) == []


@pytest.mark.slow
def test_the_next_lesson_on_a_new_vm_continues_from_drive(tmp_path, monkeypatch, capsys):
    """Lesson 07 on one VM, lesson 08 on another: the second captions test images without extracting or training."""
    small = functools.partial(shapes_dataset.make_shapes, split={"train": 40, "dev": 10, "test": 10})
    monkeypatch.setattr(datasets, "make_shapes", small)
    for name, value in {
        "CAPTION_DATASET": "shapes",
        "CAPTION_CNN_WEIGHTS": "none",
        "CAPTION_FAST": "1",
        "CAPTION_DATA_DIR": str(tmp_path / "drive"),
        "CAPTION_UNPACK_DIR": str(tmp_path / "vm1"),
    }.items():
        monkeypatch.setenv(name, value)
    trained = course.prepare_model(get_settings())
    assert "No trained model" in capsys.readouterr().out

    monkeypatch.setenv("CAPTION_UNPACK_DIR", str(tmp_path / "vm2"))  # a fresh VM, the same Drive
    monkeypatch.setattr(features, "extractor_function", lambda *a: pytest.fail("features extracted again"))
    monkeypatch.setattr(course, "train", lambda *a, **k: pytest.fail("trained again"))
    data = course.prepare_course_data(get_settings())
    bundle = course.prepare_model(get_settings(), course=data)
    assert data.dataset.images_dir.is_relative_to(tmp_path / "vm2")  # images unpacked (here: generated) on the new VM
    assert bundle.info == trained.info
    from helpers.decoding import greedy

    test_images = data.split_images("test")
    captions = greedy(bundle.captioner, bundle.vocab, data.features.lookup(test_images))
    assert len(captions) == len(test_images) == 10 and all(isinstance(c, str) for c in captions)
    weights = zip(bundle.captioner.sequence.get_weights(), trained.captioner.sequence.get_weights())
    assert all(np.array_equal(a, b) for a, b in weights)
