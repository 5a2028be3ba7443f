"""Going further: larger datasets and more than one GPU or machine (introduced in lesson 10).

**Features on disk.** :func:`feature_store` is lesson 03's feature cache opened
memory-mapped (``dataset_features(..., in_memory=False)``): filled resumably with one
chunk of features in memory at most, then a ``FeatureSet`` whose ``features`` is the
``.npy`` file on disk. With ``dtype="float16"`` it maps a half-size copy instead (COCO's
123,287 images: 1.0 GB in float32, 0.5 GB in float16).
:func:`stream_caption_dataset` is lesson 05's fast path, except that each batch's features
are read from that file when the batch is made, instead of from one table in memory.

**Several devices.** Keras trains on several GPUs (``MirroredStrategy``) or machines
(``MultiWorkerMirroredStrategy``) when the model is built and compiled inside a
``tf.distribute`` strategy's scope (:func:`distributed_captioner`); ``model.fit`` then splits
every batch between the replicas and averages their gradients. The batch size you give is
the *global* one, per-replica batch x replicas (:func:`global_batch_size`); a larger batch
usually wants a larger learning rate (:func:`scaled_learning_rate`).

**Several machines** read their role from ``TF_CONFIG`` and run the same program::

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}' python -m helpers.scale train

``python -m helpers.scale local-cluster --workers 2`` starts such workers on this machine,
on 127.0.0.1, to try it out.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

from helpers.datasets import Dataset
from helpers.errors import CourseError
from helpers.files import atomic_path, read_json, write_json

if TYPE_CHECKING:
    from helpers.features import FeatureSet

# TensorFlow, Keras and the helpers that use them are imported inside the functions: a
# multi-worker program must create its strategy before TensorFlow starts working.

FEATURE_SIZE = 2048
DTYPES = ("float32", "float16")
#: Rows copied at a time when the float16 copy is made (16 MB of float32).
COPY_ROWS = 2048


# ---------------------------------------------------------------- features on disk


def feature_store(dataset: Dataset, *, dtype: str = "float32", batch_size: int = 32) -> tuple[FeatureSet, Dataset]:
    """Features of every image of ``dataset`` memory-mapped from disk, and the dataset without unreadable images (lesson 10).

    Lesson 03's cache (``settings.features_dir``) opened with ``in_memory=False``: the
    images it lacks are extracted first (resumable, one chunk in memory at a time), and a
    complete cache is opened without touching the model. ``dtype="float16"`` maps a
    half-size copy instead (:func:`float16_copy`), remade only when the cache changes.
    """
    from helpers.features import dataset_features

    if dtype not in DTYPES:
        raise CourseError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
    features, dataset = dataset_features(dataset, batch_size=batch_size, in_memory=False)
    if dtype == "float16" and isinstance(features.features, np.memmap):
        half = np.load(float16_copy(Path(features.features.filename)), mmap_mode="r")
        features = dataclasses.replace(features, features=half)
    return features, dataset


def float16_copy(source: Path) -> Path:
    """A float16 copy of a float32 ``.npy`` feature file, next to it, made block by block (lesson 10).

    ``features-float16.json`` records which version of the source it was made from, so the
    copy is remade only when the source changes. float16 keeps about 3 significant digits:
    plenty for features that the model's first Dense layer mixes anyway.
    """
    target = source.with_name(source.stem + "-float16.npy")
    record = source.with_name(source.stem + "-float16.json")
    info = source.stat()
    stamp = {"source_size": info.st_size, "source_mtime_ns": info.st_mtime_ns}
    if target.exists() and record.exists() and read_json(record) == stamp:
        return target
    array = np.load(source, mmap_mode="r")
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=array.shape)
        for start in range(0, len(array), COPY_ROWS):
            out[start : start + COPY_ROWS] = array[start : start + COPY_ROWS]
        out.flush()
        del out  # release the file before it is renamed
    del array
    write_json(record, stamp)
    return target


def stream_caption_dataset(
    store: FeatureSet,
    captions: Mapping[str, Sequence[Sequence[int]]],
    *,
    batch_size: int = 64,
    max_len: int | None = None,
    shuffle: bool = True,
    buckets: int = 5,
    seed: int | None = None,
):
    """Lesson 05's fast path, with each batch's features read from ``store`` (memory-mapped: on disk) (lesson 10).

    Same batches as :func:`helpers.generators.caption_dataset` (whole captions, bucketed by
    length, padding trimmed, targets = the next words) for ``captions`` keyed by image name;
    only caption ids and row numbers live in memory. The rows of a batch are read from the
    memory-mapped file in a ``tf.numpy_function``.
    """
    import tensorflow as tf

    from helpers.generators import length_batches, teacher_forcing_arrays, trimmed_batch

    rows_of_images = store.row_numbers(captions.keys())
    image_rows, inputs, targets = teacher_forcing_arrays(captions, max_len)
    rows = rows_of_images[image_rows]
    data = length_batches(rows, inputs, targets, batch_size=batch_size, shuffle=shuffle, buckets=buckets, seed=seed)
    array = store.features

    def read(batch_rows: np.ndarray) -> np.ndarray:
        return np.asarray(array[batch_rows], dtype=np.float32)

    def assemble(batch_rows, words, target):
        image = tf.numpy_function(read, [batch_rows], tf.float32, stateful=False)
        image.set_shape((None, FEATURE_SIZE))
        return trimmed_batch(image, words, target)

    return data.map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- several devices


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


def scaled_learning_rate(global_batch: int, base_rate: float = 1e-3, base_batch: int = 64, rule: str = "linear") -> float:
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


def distributed_captioner(strategy, vocab_size: int, max_len: int, embedding_matrix: np.ndarray | None = None, learning_rate: float = 1e-3):
    """Build and compile the captioner inside ``strategy.scope()``: one mirrored copy per replica (lesson 10).

    Train it with :func:`helpers.training.train` inside the same scope. Under
    MultiWorkerMirroredStrategy it also applies :func:`keras_multi_worker_fixes`.
    """
    from helpers.model import build_captioner, compile_captioner

    with strategy.scope():
        captioner = compile_captioner(build_captioner(vocab_size, max_len, embedding_matrix), learning_rate)
    if _multi_worker(strategy):
        keras_multi_worker_fixes(captioner)
    return captioner


def _multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._num_workers > 1


def keras_multi_worker_fixes(models: Iterable) -> None:
    """Work around two places where Keras 3's ``fit`` fails under MultiWorkerMirroredStrategy (lesson 10).

    Checked with Keras 3.15 and TensorFlow 2.21 (keras-team/keras#20585, tensorflow/tensorflow#72388):

    1. Before training, ``fit`` averages the first input batch over all replicas just to
       learn its shapes; across workers that all-reduce fails on an ``(inputs, targets)``
       structure (and would need equal shapes on every worker). Fixed per model: the
       shapes come from this worker's own part of the batch.
    2. After every step, the loss of each replica is averaged with ``reduce(..., axis=0)``,
       which fails on a scalar. Fixed for this process: scalars are averaged with ``axis=None``.

    Both only touch multi-worker runs. Drop them once Keras fixes the issue: the two-worker
    test in tests/test_scale.py checks that training still works either way.
    """
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    for model in models:
        model._maybe_symbolic_build = functools.partial(_symbolic_build_from_local_batch, model)
    if not getattr(trainer.reduce_per_replica, "course_fix", False):
        original = trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
                return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None if len(v.shape) == 0 else 0), values)
            return original(values, strategy, reduction)

        reduce_per_replica.course_fix = True
        trainer.reduce_per_replica = reduce_per_replica


def _symbolic_build_from_local_batch(model, iterator=None, data_batch=None) -> None:
    """Keras' ``_maybe_symbolic_build``, with the shapes taken from this worker's first replica."""
    from keras import tree

    strategy = model.distribute_strategy
    if iterator is not None:
        for _, _, batches in iterator:
            data_batch = tree.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(batches))
            break
    with strategy.scope():
        model._symbolic_build(data_batch=data_batch)


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


def local_cluster(command: Sequence[str], workers: int = 2, *, timeout: float = 600, log_dir: str | Path | None = None) -> list[Path]:
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
                processes.append(subprocess.Popen([sys.executable, *command], env=env, stdout=out, stderr=subprocess.STDOUT))
        while any(p.poll() is None for p in processes) or any(p.returncode for p in processes):
            failed = [i for i, p in enumerate(processes) if p.poll() not in (None, 0)]
            if failed:
                print(f"--- the end of {logs[failed[0]]}:\n{_tail(logs[failed[0]])}")
                raise CourseError(f"Worker {failed[0]} failed (exit status {processes[failed[0]].returncode}): see {logs[failed[0]]}.")
            if time.monotonic() > deadline:
                raise CourseError(f"The workers did not finish within {timeout:.0f} s: see {log_dir}/worker-*.log.")
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    return logs


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def train_distributed(
    *,
    per_replica_batch: int = 64,
    lr_rule: str = "linear",
    epochs: int | None = None,
    dtype: str = "float32",
    seed: int = 0,
) -> dict[str, list[float]]:
    """The whole chain on every device of this machine, or of the cluster in TF_CONFIG (``python -m helpers.scale train``).

    Captions and vocabulary (lesson 02), features from the disk store (lessons 03 and
    10), GloVe (lesson 04), then :func:`helpers.training.train` with the global batch and
    scaled learning rate. Every worker loads the same data and shuffles it with the same
    ``seed``: TensorFlow then gives each worker its own share of every batch. Each worker
    keeps its checkpoints in ``distributed/worker-<i>`` and saves its model there
    (worker 0 in ``distributed/`` itself: use that one, e.g. ``python -m helpers caption --model``).
    """
    strategy = strategy_from_environment()  # first: MultiWorkerMirroredStrategy must start before TensorFlow works
    from helpers.config import get_settings
    from helpers.datasets import load_dataset
    from helpers.embeddings import prepare_embedding_matrix
    from helpers.generators import captions_by_image
    from helpers.text import prepare_text
    from helpers.training import save_bundle, train

    settings = get_settings()
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    index = int(task.get("index", 0))
    dataset = load_dataset()
    table, vocab = prepare_text(dataset)
    store, dataset = feature_store(dataset, dtype=dtype)
    table = table[table["image"].isin(set(dataset.images()))]
    batch = global_batch_size(per_replica_batch, strategy)
    rate = scaled_learning_rate(batch, rule=lr_rule)
    print(f"{strategy.num_replicas_in_sync} replica(s): global batch {batch} ({per_replica_batch} per replica), learning rate {rate:.2g} ({lr_rule} rule).")
    captioner = distributed_captioner(strategy, len(vocab), vocab.max_len, prepare_embedding_matrix(vocab), rate)
    folder = settings.artifacts_dir / "distributed"
    folder = folder if index == 0 else folder / f"worker-{index}"
    with strategy.scope():
        history = train(
            captioner, store, captions_by_image(table, vocab, "train"), captions_by_image(table, vocab, "dev"),
            folder=folder, epochs=epochs, batch_size=batch, seed=seed, make_dataset=stream_caption_dataset,
        )
    save_bundle(captioner, vocab, folder, replicas=strategy.num_replicas_in_sync, global_batch=batch, learning_rate=rate)
    return history


def prepare_for_workers() -> None:
    """Build what every worker reads (captions, vocabulary, features, GloVe matrix) once, before they start.

    Workers on one machine (or one shared disk) would otherwise all build them at the same time.
    """
    from helpers.datasets import load_dataset
    from helpers.embeddings import prepare_embedding_matrix
    from helpers.text import prepare_text

    dataset = load_dataset()
    _, vocab = prepare_text(dataset)
    feature_store(dataset)
    prepare_embedding_matrix(vocab)


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.scale train | local-cluster``."""
    parser = argparse.ArgumentParser(prog="python -m helpers.scale", description="Train on several GPUs or machines (lesson 10).")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("train", "train on this machine's devices, or as one worker of TF_CONFIG's cluster"),
                       ("local-cluster", "run `train` as several workers on 127.0.0.1")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--per-replica-batch", type=int, default=64, help="captions per replica and step (default 64)")
        command.add_argument("--lr-rule", choices=("linear", "sqrt", "none"), default="linear", help="learning-rate scaling (default linear)")
        command.add_argument("--epochs", type=int, default=None, help="at most this many epochs (default: the dataset's recipe)")
        command.add_argument("--dtype", choices=DTYPES, default="float32", help="features on disk (float16 halves the file)")
    commands.choices["local-cluster"].add_argument("--workers", type=int, default=2, help="number of workers (default 2)")
    commands.choices["local-cluster"].add_argument("--timeout", type=float, default=3600, help="seconds before all workers are stopped")
    args = parser.parse_args(argv)
    try:
        options = {"per_replica_batch": args.per_replica_batch, "lr_rule": args.lr_rule, "epochs": args.epochs, "dtype": args.dtype}
        if args.command == "train":
            train_distributed(**options)
            return 0
        prepare_for_workers()
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in options.items() if value is not None]
        from helpers.config import get_settings

        logs = local_cluster(["-m", "helpers.scale", "train", *flags], args.workers, timeout=args.timeout,
                             log_dir=get_settings().artifacts_dir / "distributed" / "logs")
        print(_tail(logs[0], 25))
        return 0
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
