"""Training on every device of this machine, or as one worker of a ``TF_CONFIG`` cluster (lesson 10).

Several machines read their role from ``TF_CONFIG`` and run the same program::

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}' python -m helpers train

``python -m helpers local-cluster --workers 2`` starts such workers on 127.0.0.1 (:func:`local_cluster`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from helpers.system.errors import CourseError


def cluster_from_environment() -> dict:
    """The ``cluster`` part of ``TF_CONFIG`` (empty when it is not set)."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        return json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError):
        raise CourseError(f"TF_CONFIG is not valid JSON: {raw[:80]!r}.") from None


def strategy_from_environment():
    """The strategy this process trains with: MultiWorkerMirrored when ``TF_CONFIG`` names several tasks (call it
    before any other TensorFlow work), Mirrored over several GPUs or logical CPUs, else the default (lesson 10)."""
    import tensorflow as tf

    if sum(len(tasks) for tasks in cluster_from_environment().values()) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` different TCP ports that are free right now on ``host`` (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(workers: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``workers`` (``host:port`` each)."""
    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}})


def local_cluster(
    command: Sequence[str], workers: int = 2, *, timeout: float = 600, log_dir: str | Path | None = None
) -> list[Path]:
    """Run ``command`` (a Python module or script and its arguments) as ``workers`` workers on 127.0.0.1 (lesson 10),
    each logging to ``log_dir/worker-<i>.log``; when one fails, or after ``timeout``, all are stopped."""
    hosts = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    log_dir = Path(log_dir or Path.cwd())
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [log_dir / f"worker-{index}.log" for index in range(workers)]
    processes: list[subprocess.Popen] = []
    deadline = time.monotonic() + timeout
    try:
        for index, log in enumerate(logs):
            env = dict(os.environ, TF_CONFIG=tf_config(hosts, index))
            with open(log, "w") as out:
                worker = subprocess.Popen([sys.executable, *command], env=env, stdout=out, stderr=subprocess.STDOUT)
            processes.append(worker)
        while any(p.poll() is None for p in processes) or any(p.returncode for p in processes):
            failed = next((i for i, p in enumerate(processes) if p.poll() not in (None, 0)), None)
            if failed is not None:
                print(f"--- the end of {logs[failed]}:\n{tail(logs[failed])}")
                raise CourseError(
                    f"Worker {failed} failed (exit status {processes[failed].returncode}): see {logs[failed]}."
                )
            if time.monotonic() > deadline:
                raise CourseError(f"The workers did not finish within {timeout:.0f} s: see {log_dir}/worker-*.log.")
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    return logs


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def train_distributed(settings, *, per_replica_batch: int = 64, lr_rule: str = "linear", epochs=None, dtype="float32"):
    """The whole chain on this machine's devices, or as a worker of TF_CONFIG's cluster (``python -m helpers train``);
    worker 0 saves its bundle in ``distributed/``, the others in ``distributed/worker-<i>``."""
    strategy = strategy_from_environment()  # first: MultiWorkerMirroredStrategy must start before TensorFlow works
    from helpers.course import prepare_course_data
    from helpers.features import feature_store
    from helpers.generators import stream_caption_dataset
    from helpers.model import save_bundle
    from helpers.training import distributed_captioner, global_batch_size, scaled_learning_rate, train

    index = int(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0))
    course = prepare_course_data(settings, on_disk=True)
    store, vocab, plan = feature_store(course.dataset, dtype=dtype), course.vocab, course.recipe
    batch = global_batch_size(per_replica_batch, strategy)
    rate = scaled_learning_rate(batch, rule=lr_rule)
    replicas = strategy.num_replicas_in_sync
    print(f"{replicas} replica(s): global batch {batch} ({per_replica_batch} per replica), learning rate {rate:.2g}.")
    captioner = distributed_captioner(strategy, len(vocab), vocab.max_len, course.embedding_matrix, rate)
    folder = course.folder / "distributed" / ("" if index == 0 else f"worker-{index}")
    options = {"epochs": epochs or plan.epochs, "patience": plan.patience, "batch_size": batch, "seed": 0}
    options |= {"folder": folder, "make_dataset": stream_caption_dataset}
    with strategy.scope():
        history = train(captioner, store, course.train_captions, course.dev_captions, **options)
    info = {"dataset": course.dataset.name, "fast": settings.fast, "cnn_weights": settings.cnn_weights}
    save_bundle(captioner, vocab, folder, **info, replicas=replicas, global_batch=batch, learning_rate=rate)
    return history
