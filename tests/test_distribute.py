"""helpers.tools.distribute (lesson 10): TF_CONFIG, workers on loopback, and training under tf.distribute strategies."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.system.errors import CourseError
from helpers.tools import distribute
from helpers.tools.cli import main

JOB = Path(__file__).with_name("distributed_job.py")


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
    from helpers.config import get_settings
    from helpers.data.shapes_dataset import make_shapes
    from helpers.datasets import read_flickr_layout
    from helpers.model import load_bundle

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
