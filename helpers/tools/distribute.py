"""Training on every device of this machine, or as one worker of a ``TF_CONFIG`` cluster (lesson 10).

Several machines read their role from ``TF_CONFIG`` and run the same program::

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}' python -m helpers train

``python -m helpers local-cluster --workers 2`` starts such workers on 127.0.0.1 (:func:`local_cluster`).
TensorFlow and the helpers are imported inside the functions: a multi-worker strategy must
start before TensorFlow does any work.
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
    """The ``tf.distribute`` strategy this process should train with (lesson 10).

    * ``TF_CONFIG`` names more than one task: ``MultiWorkerMirroredStrategy`` (several
      machines; every worker runs the same program). Call this first, before any other
      TensorFlow work, as TensorFlow requires.
    * Otherwise several GPUs, or several logical CPUs (:func:`split_cpu`): ``MirroredStrategy``.
    * Otherwise the default strategy: one device, no distribution.
    """
    import tensorflow as tf

    if sum(len(tasks) for tasks in cluster_from_environment().values()) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    if not gpus and len(cpus) > 1:
        return tf.distribute.MirroredStrategy([cpu.name for cpu in cpus])
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
    """Run ``command`` (a Python module or script and its arguments) as ``workers`` workers on 127.0.0.1 (lesson 10).

    Each worker gets its ``TF_CONFIG`` (ports chosen by the OS) and writes its output to
    ``worker-<i>.log`` in ``log_dir``. When a worker fails, the end of its log is printed and
    the others are stopped at once (they would wait for it); after ``timeout`` seconds all
    are. Returns the logs.
    """
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
                processes.append(
                    subprocess.Popen([sys.executable, *command], env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        while any(p.poll() is None for p in processes) or any(p.returncode for p in processes):
            failed = [i for i, p in enumerate(processes) if p.poll() not in (None, 0)]
            if failed:
                print(f"--- the end of {logs[failed[0]]}:\n{tail(logs[failed[0]])}")
                raise CourseError(
                    f"Worker {failed[0]} failed (exit status {processes[failed[0]].returncode}): see {logs[failed[0]]}."
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


# ---------------------------------------------------------------- the whole chain, distributed


def train_distributed(
    settings,
    *,
    per_replica_batch: int = 64,
    lr_rule: str = "linear",
    epochs: int | None = None,
    dtype: str = "float32",
    seed: int = 0,
) -> dict[str, list[float]]:
    """The whole chain on every device of this machine, or of the cluster in TF_CONFIG (``python -m helpers train``).

    Captions, vocabulary, features from the disk store (float32 or float16) and GloVe from
    :func:`helpers.course.prepare_course_data`, then :func:`helpers.training.train` with the
    global batch and scaled learning rate. Every worker loads the same data and shuffles it
    with the same ``seed``: TensorFlow then gives each worker its own share of every batch.
    Each worker keeps its checkpoints in ``distributed/worker-<i>`` and saves its model
    there (worker 0 in ``distributed/`` itself: use that one, e.g. ``python -m helpers
    caption --model``).
    """
    strategy = strategy_from_environment()  # first: MultiWorkerMirroredStrategy must start before TensorFlow works
    from helpers.course import prepare_course_data
    from helpers.features import feature_store
    from helpers.generators import stream_caption_dataset
    from helpers.model import save_bundle
    from helpers.training import distributed_captioner, global_batch_size, scaled_learning_rate, train

    index = int(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0))
    course = prepare_course_data(settings, on_disk=True)
    store = feature_store(course.dataset, dtype=dtype)
    batch = global_batch_size(per_replica_batch, strategy)
    rate = scaled_learning_rate(batch, rule=lr_rule)
    print(
        f"{strategy.num_replicas_in_sync} replica(s): global batch {batch} ({per_replica_batch} per replica), "
        f"learning rate {rate:.2g} ({lr_rule} rule)."
    )
    vocab = course.vocab
    captioner = distributed_captioner(strategy, len(vocab), vocab.max_len, course.embedding_matrix, rate)
    folder = course.folder / "distributed"
    folder = folder if index == 0 else folder / f"worker-{index}"
    plan = course.recipe
    with strategy.scope():
        history = train(
            captioner,
            store,
            course.train_captions,
            course.dev_captions,
            folder=folder,
            epochs=epochs or plan.epochs,
            patience=plan.patience,
            batch_size=batch,
            seed=seed,
            make_dataset=stream_caption_dataset,
        )
    save_bundle(
        captioner,
        vocab,
        folder,
        dataset=course.dataset.name,
        fast=settings.fast,
        cnn_weights=settings.cnn_weights,
        replicas=strategy.num_replicas_in_sync,
        global_batch=batch,
        learning_rate=rate,
    )
    return history


def prepare_for_workers(settings, dtype: str = "float32") -> None:
    """Build what every worker reads (captions, vocabulary, features, GloVe matrix) once, before they start.

    Workers on one machine (or one shared disk) would otherwise all build them at the same time.
    """
    from helpers.course import prepare_course_data
    from helpers.features import feature_store

    feature_store(prepare_course_data(settings, on_disk=True).dataset, dtype=dtype)
