"""One short training run under a tf.distribute strategy; tests/test_distribute.py starts it in a subprocess.

    python tests/distributed_job.py mirrored OUT         # two logical CPU devices, MirroredStrategy
    python tests/distributed_job.py worker OUT           # one worker of the cluster in TF_CONFIG
    python tests/distributed_job.py worker-unfixed OUT   # the same without helpers.system.compat's Keras fixes

It trains the course's captioner with helpers.training.train, unchanged, on a tiny
synthetic task (4 classes of images, captions the class decides), and writes
``OUT/result-<worker>.json`` (replicas, losses, the dev loss before training, whether all
local replicas hold the same weights) and ``OUT/weights-<worker>.npz`` (the weights right
after training, before ``train`` restores the best epoch).
"""

import json
import os
import sys
from pathlib import Path

from helpers import training
from helpers.tools import distribute

mode, out = sys.argv[1], Path(sys.argv[2])
if mode == "mirrored":
    training.split_cpu(2)
strategy = distribute.strategy_from_environment()  # before any other TensorFlow work

import keras  # noqa: E402
import numpy as np  # noqa: E402

from conftest import MAX_LEN, VOCAB, synthetic_task  # noqa: E402  (tests/ is this script's folder)
from helpers.generators import caption_dataset  # noqa: E402

index = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0)
result: dict = {}


class Snapshot(keras.callbacks.Callback):
    """At the end of training: do all local replicas agree, and what are the weights?"""

    def on_train_end(self, logs=None):
        replicas = [strategy.experimental_local_results(weight.value) for weight in self.model.weights]
        result["replicas_agree"] = all(
            np.array_equal(values[0].numpy(), other.numpy()) for values in replicas for other in values
        )
        result["local_replicas"] = len(replicas[0])
        np.savez(out / f"weights-{index}.npz", *[values[0].numpy() for values in replicas])


train_features, train_captions = synthetic_task(64, seed=0)
dev_features, dev_captions = synthetic_task(16, seed=1)
features = {**train_features, **dev_features}
batch = training.global_batch_size(8, strategy)
keras.utils.set_random_seed(0)
rate = training.scaled_learning_rate(batch, 5e-4, 8)
if mode == "worker-unfixed":  # what Keras does on its own (tests/test_compat.py expects it to fail)
    from helpers.model import build_captioner, compile_captioner  # noqa: E402

    with strategy.scope():
        captioner = compile_captioner(build_captioner(VOCAB, MAX_LEN), rate)
else:
    captioner = training.distributed_captioner(strategy, VOCAB, MAX_LEN, learning_rate=rate)
with strategy.scope():
    before = captioner.sequence.evaluate(
        caption_dataset(features, dev_captions, batch_size=batch, shuffle=False), verbose=0
    )
    history = training.train(
        captioner,
        features,
        train_captions,
        dev_captions,
        folder=out / f"run-{index}",
        epochs=2,
        batch_size=batch,
        seed=0,
        callbacks=(Snapshot(),),
        verbose=0,
    )
result.update(replicas=strategy.num_replicas_in_sync, dev_before=float(before), **history)
(out / f"result-{index}.json").write_text(json.dumps(result))
