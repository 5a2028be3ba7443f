"""Lesson 10's helpers: features on disk, streaming batches, several devices and workers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import configured_dataset
from helpers import distribute
from helpers import features as feature_module
from helpers.cli import main
from helpers.datasets import Dataset
from helpers.errors import CourseError
from helpers.generators import caption_dataset, stream_caption_dataset

JOB = Path(__file__).with_name("distributed_job.py")


# ---------------------------------------------------------------- features on disk


def tiny_dataset(folder: Path) -> Dataset:
    """Seven small JPEGs of different colours and one file that is not an image."""
    folder.mkdir(parents=True)
    rows = []
    for i in range(7):
        Image.new("RGB", (48 + 8 * i, 40), (30 * i, 200 - 20 * i, 90)).save(folder / f"img{i}.jpg")
        rows.append((f"img{i}.jpg", "a picture", "train" if i < 5 else "dev"))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    rows.append(("broken.jpg", "a broken picture", "test"))
    return configured_dataset("tiny", folder, rows)


def test_features_on_disk_equal_the_in_memory_ones(course_dir, monkeypatch):
    dataset = tiny_dataset(course_dir / "images")
    in_memory = feature_module.extract_features([dataset.image_path(i) for i in dataset.images()])
    some = [dataset.image_path(f"img{i}.jpg") for i in range(3)]
    feature_module.extract_features(some, cache_dir=dataset.features_dir)  # a cache of 3 images
    store = feature_module.feature_store(dataset, "none")  # extracts the other four and maps the whole cache
    assert isinstance(store.features, np.memmap) and store.features.dtype == np.float32
    assert sorted(store.images) == sorted(in_memory.images) and "broken.jpg" in store.skipped
    assert len(store.images) == 7
    np.testing.assert_array_equal(store.lookup(in_memory.images), in_memory.features)

    monkeypatch.setattr(feature_module, "_extractor_function", lambda *a: pytest.fail("the cache is complete"))
    half = feature_module.feature_store(dataset, "none", dtype="float16")
    half_file, full_file = Path(half.features.filename), Path(store.features.filename)
    assert half.features.dtype == np.float16 and half_file.stat().st_size < 0.6 * full_file.stat().st_size
    np.testing.assert_array_equal(
        half.features[half.row_numbers(in_memory.images)], in_memory.features.astype(np.float16)
    )
    np.testing.assert_array_equal(
        half.lookup(in_memory.images), in_memory.features.astype(np.float16).astype(np.float32)
    )
    made = half_file.stat().st_mtime_ns
    assert (
        Path(feature_module.feature_store(dataset, "none", dtype="float16").features.filename).stat().st_mtime_ns
        == made
    )
    with pytest.raises(CourseError, match="No features"):
        store.lookup(["broken.jpg"])


def synthetic_store(
    folder: Path, images: list[str], dtype: str
) -> tuple[feature_module.FeatureSet, dict[str, np.ndarray]]:
    vectors = np.random.default_rng(0).random((len(images), 2048), dtype=np.float32) * 10
    np.save(folder / f"features-{dtype}.npy", vectors.astype(dtype))
    store = feature_module.FeatureSet(np.load(folder / f"features-{dtype}.npy", mmap_mode="r"), images)
    return store, {image: vectors[i].astype(dtype).astype(np.float32) for i, image in enumerate(images)}


def random_captions(images: list[str], seed: int) -> dict[str, list[list[int]]]:
    rng = np.random.default_rng(seed)
    return {image: [[1, *rng.integers(3, 40, rng.integers(1, 12)).tolist(), 2] for _ in range(3)] for image in images}


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
    assert count == 20 * 3


# ---------------------------------------------------------------- batch size and learning rate


class FakeStrategy:
    num_replicas_in_sync = 4


def test_global_batch_and_learning_rate_rules():
    batch = distribute.global_batch_size(64, FakeStrategy())
    assert batch == 256
    assert distribute.scaled_learning_rate(batch) == pytest.approx(4e-3)
    assert distribute.scaled_learning_rate(batch, rule="sqrt") == pytest.approx(2e-3)
    assert distribute.scaled_learning_rate(batch, rule="none") == 1e-3
    with pytest.raises(CourseError):
        distribute.scaled_learning_rate(batch, rule="cubic")


def test_tf_config_and_free_ports(monkeypatch):
    ports = distribute.free_ports(3)
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)
    config = json.loads(distribute.tf_config([f"127.0.0.1:{p}" for p in ports], 2))
    assert config["task"] == {"type": "worker", "index": 2} and len(config["cluster"]["worker"]) == 3
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(CourseError, match="TF_CONFIG"):
        distribute.cluster_from_environment()


# ---------------------------------------------------------------- several devices and workers


def read_result(folder: Path, index: int) -> dict:
    return json.loads((folder / f"result-{index}.json").read_text())


def check_learned(result: dict) -> None:
    assert result["replicas"] == 2
    loss, dev = np.array(result["loss"]), np.array(result["val_loss"])
    assert len(loss) == 2 and np.isfinite(loss).all() and np.isfinite(dev).all()
    assert loss[1] < loss[0], f"training loss did not fall: {loss}"
    assert dev.min() < result["dev_before"] - 0.3, f"dev loss {dev} vs {result['dev_before']:.3f} before training"
    assert result["replicas_agree"]


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(course_dir, tmp_path):
    run = subprocess.run(
        [sys.executable, str(JOB), "mirrored", str(tmp_path)], capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    result = read_result(tmp_path, 0)
    check_learned(result)
    assert result["local_replicas"] == 2  # both logical devices hold a copy, and they agree


@pytest.mark.slow
def test_multi_worker_strategy_with_two_workers_on_loopback(course_dir, tmp_path):
    distribute.local_cluster([str(JOB), "worker", str(tmp_path)], workers=2, timeout=180, log_dir=tmp_path)
    first, second = read_result(tmp_path, 0), read_result(tmp_path, 1)
    check_learned(first)
    assert first["local_replicas"] == 1 and first["loss"] == second["loss"] and first["val_loss"] == second["val_loss"]
    with np.load(tmp_path / "weights-0.npz") as a, np.load(tmp_path / "weights-1.npz") as b:
        assert (
            len(a.files) == 14
        )  # image_norm (4), embedding, image_dense (2), lstm (3), decoder_dense (2), next_word (2)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])


def test_local_cluster_stops_every_worker_when_one_fails(tmp_path):
    code = (
        "import json, os, sys, time\n"
        "index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
        "sys.exit(3) if index == 1 else time.sleep(60)\n"
    )
    began = time.monotonic()
    with pytest.raises(CourseError, match="Worker 1 failed"):
        distribute.local_cluster(["-c", code], workers=2, timeout=30, log_dir=tmp_path)
    assert time.monotonic() - began < 20  # worker 0 was killed, not waited for


def test_local_cluster_timeout(tmp_path):
    with pytest.raises(CourseError, match="did not finish within 1 s"):
        distribute.local_cluster(["-c", "import time; time.sleep(60)"], workers=2, timeout=1, log_dir=tmp_path)


@pytest.mark.slow
def test_train_command_runs_the_whole_chain_on_a_karpathy_folder(course_dir, monkeypatch, capsys):
    """``python -m helpers train`` on a small Karpathy-layout copy of the shapes data, one device."""
    from helpers.bundle import load_bundle
    from helpers.config import get_settings
    from helpers.datasets import read_flickr_layout
    from helpers.shapes import make_shapes

    source = read_flickr_layout(make_shapes(course_dir / "src", {"train": 30, "dev": 6, "test": 6}), "src")
    folder = course_dir / "tiny-karpathy"
    (folder / "images").mkdir(parents=True)
    records = []
    for image, rows in source.captions.groupby("image"):
        (folder / "images" / image).write_bytes(source.image_path(image).read_bytes())
        split = {"train": "train", "dev": "val", "test": "test"}[rows["split"].iloc[0]]
        records.append({"filename": image, "split": split, "sentences": [{"raw": c} for c in rows["caption"]]})
    (folder / "dataset_tiny.json").write_text(json.dumps({"dataset": "tiny", "images": records}))
    monkeypatch.setenv("CAPTION_DATASET", str(folder))
    assert main(["train", "--epochs", "1", "--per-replica-batch", "16", "--dtype", "float16"]) == 0
    assert "1 replica(s): global batch 16" in capsys.readouterr().out
    bundle = load_bundle(get_settings().artifacts_dir / "distributed")
    assert bundle.info["replicas"] == 1 and bundle.info["global_batch"] == 16
    assert (
        course_dir / "artifacts" / "tiny-karpathy" / "features" / "resnet50-none-224" / "features-float16.npy"
    ).exists()
