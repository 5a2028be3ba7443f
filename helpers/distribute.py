"""Training on several GPUs or machines with ``tf.distribute`` (introduced in lesson 10).

**Several devices.** Keras trains on several GPUs (``MirroredStrategy``) or machines
(``MultiWorkerMirroredStrategy``) when the model is built and compiled inside a
``tf.distribute`` strategy's scope (:func:`distributed_captioner`); ``model.fit`` then splits
every batch between the replicas and averages their gradients. The batch size you give is
the *global* one, per-replica batch x replicas (:func:`global_batch_size`); a larger batch
usually wants a larger learning rate (:func:`scaled_learning_rate`).

**Several machines** read their role from ``TF_CONFIG`` and run the same program::

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}' python -m helpers train

``python -m helpers local-cluster --workers 2`` starts such workers on this machine, on
127.0.0.1, to try it out (:func:`local_cluster`).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from helpers.errors import CourseError

# TensorFlow, Keras and the helpers that use them are imported inside the functions: a
# multi-worker program must create its strategy before TensorFlow starts working.


def split_cpu(devices: int = 2) -> list[str]:
    """Split the CPU into ``devices`` logical devices, to try MirroredStrategy without GPUs (lesson 10).

    TensorFlow allows this only before it first uses a device: run it right after the setup
    cell (running it again with the same number is fine).
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu) or []
    if len(current) != devices:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        except RuntimeError:
            raise CourseError(
                f"TensorFlow already runs with {max(len(current), 1)} CPU device(s) in this process: "
                "restart the kernel and call split_cpu() right after the setup cell."
            ) from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


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


def global_batch_size(per_replica: int, strategy) -> int:
    """Captions per training step over all replicas: ``per_replica`` x replicas (lesson 10).

    ``model.fit`` under a strategy takes this *global* size and gives each replica
    ``per_replica`` of every batch (TensorFlow's distributed training guide).
    """
    return per_replica * strategy.num_replicas_in_sync


def scaled_learning_rate(
    global_batch: int, base_rate: float = 1e-3, base_batch: int = 64, rule: str = "linear"
) -> float:
    """The learning rate for ``global_batch``, from one that works at ``base_batch`` (lesson 10).

    * ``"linear"``: ``base_rate * global_batch / base_batch`` (Goyal et al. 2017: k times
      the batch, k times the step; the gradient of a larger batch is less noisy). Proven
      for SGD; with Adam it is a starting point, and large factors want a warm-up.
    * ``"sqrt"``: ``base_rate * sqrt(global_batch / base_batch)``, the milder rule often
      used with Adam.
    * ``"none"``: ``base_rate`` unchanged.
    """
    factor = global_batch / base_batch
    if rule == "linear":
        return base_rate * factor
    if rule == "sqrt":
        return base_rate * math.sqrt(factor)
    if rule == "none":
        return base_rate
    raise CourseError(f"rule must be 'linear', 'sqrt' or 'none', got {rule!r}.")


def distributed_captioner(
    strategy, vocab_size: int, max_len: int, embedding_matrix: np.ndarray | None = None, learning_rate: float = 1e-3
):
    """Build and compile the captioner inside ``strategy.scope()``: one mirrored copy per replica (lesson 10).

    Train it with :func:`helpers.training.train` inside the same scope. Under
    MultiWorkerMirroredStrategy it also applies :func:`helpers.compat.keras_multi_worker_fixes`.
    """
    from helpers.compat import keras_multi_worker_fixes
    from helpers.model import build_captioner, compile_captioner

    with strategy.scope():
        captioner = compile_captioner(build_captioner(vocab_size, max_len, embedding_matrix), learning_rate)
    if _multi_worker(strategy):
        keras_multi_worker_fixes(captioner)
    return captioner


def _multi_worker(strategy) -> bool:
    import tensorflow as tf

    workers = len(cluster_from_environment().get("worker", [])) + len(cluster_from_environment().get("chief", []))
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and workers > 1


# ---------------------------------------------------------------- several machines


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
    from helpers.bundle import save_bundle
    from helpers.course import prepare_course_data
    from helpers.features import feature_store
    from helpers.generators import stream_caption_dataset
    from helpers.training import train

    index = int(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0))
    course = prepare_course_data(settings, in_memory=False)
    store = feature_store(course.dataset, settings.cnn_weights, dtype=dtype, precision=settings.precision)
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

    course = prepare_course_data(settings, in_memory=False)
    feature_store(course.dataset, settings.cnn_weights, dtype=dtype, precision=settings.precision)
