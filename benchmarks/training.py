"""Training speed and memory: the classic pair generator vs the fast path, same model.

    python -m benchmarks.training                      # Flickr8k size: 30,000 captions
    python -m benchmarks.training --captions 2000      # a quick check

Workload (made the same way in each process, from a seed): a Flickr8k-sized synthetic
training set of ``--captions`` captions over ``--captions / 5`` images (5 each), a
vocabulary of 1,653 ids, ``max_len`` 34 (Flickr8k's, ``helpers.flickr8k.FACTS``), caption lengths like Flickr8k's (``startseq`` +
1-33 words + ``endseq``, mean about 12 tokens), words from a Zipf-like distribution that
follows a random Markov chain and a per-image topic (so there is something to learn from
the prefix and from the non-negative 2048-d "image features"). The model is
``helpers.model.build_captioner`` with a random frozen 50-d embedding (as GloVe would be).

* **classic**: ``helpers.generators.CaptionPairs`` with one-hot targets, ``--classic-images``
  images per batch (all their pairs), the prefix model compiled with
  ``categorical_crossentropy``, as tutorials write it;
* **fast**: ``helpers.generators.caption_dataset`` (whole captions, teacher forcing, length
  buckets, sparse targets), ``--batch-size`` captions per batch, the sequence model.

Each runs in its own process (peak RSS = that process's ``ru_maxrss``), after a one-batch
warm-up whose weight and optimizer changes are undone, for ``--epochs`` epochs: both see
every pair of every caption once per epoch, so the same number of pairs. Reported: pairs
per second (wall clock of ``fit``, input pipeline included), pairs per CPU-second (all
threads of the process: steadier than the wall clock on a busy machine), peak memory, the last
epoch's training loss, and the loss per word on 1000 held-out captions.
Goal (issue 5): fast at least 10x the classic pairs/s, peak RSS under 2 GB, the same
held-out loss within a few percent.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

from benchmarks import write_json
from helpers.datasets import FACTS

VOCAB_SIZE, MAX_LEN, CAPTIONS_PER_IMAGE, TOPICS = FACTS["vocab_ids"], FACTS["max_len"], 5, 100
DEV_CAPTIONS = 1000


def synthetic_captions(images: int, seed: int) -> tuple[np.ndarray, list[list[list[int]]]]:
    """Features ``(images, 2048)`` and 5 encoded captions per image (see the module docstring)."""
    rng = np.random.default_rng(seed)
    chain = np.random.default_rng(12345)  # the "language": the same in every workload
    zipf = 1.0 / np.arange(1, VOCAB_SIZE - 2) ** 1.1
    zipf /= zipf.sum()
    successors = chain.choice(VOCAB_SIZE - 3, size=(VOCAB_SIZE, 6), p=zipf) + 3
    topic_words = chain.choice(VOCAB_SIZE - 3, size=(TOPICS, 5), p=zipf) + 3
    topics = rng.integers(0, TOPICS, size=images)
    features = rng.gamma(0.6, 0.7, size=(images, 2048)).astype("float32")  # post-ReLU-like
    features[np.arange(images), topics] += 4.0
    lengths = np.clip(np.round(rng.lognormal(2.25, 0.33, size=(images, CAPTIONS_PER_IMAGE))), 1, MAX_LEN - 2)
    total = int(lengths.sum())  # draw every random choice at once; only the chain needs a loop
    draws, slots = rng.random(total), rng.integers(0, 6, size=total)
    unigram = rng.choice(VOCAB_SIZE - 3, size=total, p=zipf) + 3
    k, captions = 0, []
    for topic, image_lengths in zip(topics, lengths.astype(int)):
        group = []
        for length in image_lengths:
            words, word = [], 1
            for _ in range(length):
                if draws[k] < 0.5:
                    word = successors[word, slots[k]]
                elif draws[k] < 0.75:
                    word = topic_words[topic, slots[k] % 5]
                else:
                    word = unigram[k]
                words.append(int(word))
                k += 1
            group.append([1, *words, 2])
        captions.append(group)
    return features, captions


def held_out_loss(captioner, features, captions) -> float:
    """Mean cross-entropy per word (pair) of the sequence model, exact over all real positions."""
    from helpers.generators import caption_dataset

    total, count = 0.0, 0
    for x, targets in caption_dataset(features, captions, batch_size=256, shuffle=False):
        probabilities = captioner.sequence(x, training=False).numpy()
        targets = targets.numpy()
        real = targets != 0
        total += -np.log(np.maximum(probabilities[real, targets[real]], 1e-12)).sum()
        count += int(real.sum())
    return float(total / count)


def _reset(model, weights) -> None:
    """Undo the warm-up: weights back, optimizer state (step count, Adam moments) zeroed."""
    model.set_weights(weights)
    for variable in model.optimizer.variables:
        if variable.name != "learning_rate":
            variable.assign(np.zeros(variable.shape, variable.dtype))


def run(path: str, captions: int, epochs: int, batch_size: int, classic_images: int, seed: int) -> dict:
    """Train with one path in this (fresh) process and measure it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from helpers.generators import CaptionPairs, caption_dataset, teacher_forcing_arrays
    from helpers.model import build_captioner

    features, grouped = synthetic_captions(captions // CAPTIONS_PER_IMAGE, seed)
    dev_features, dev_grouped = synthetic_captions(DEV_CAPTIONS // CAPTIONS_PER_IMAGE, seed + 1)
    pairs = int(np.count_nonzero(teacher_forcing_arrays(grouped)[2]))
    keras.utils.set_random_seed(seed)
    embedding = np.random.default_rng(seed).normal(0, 0.4, size=(VOCAB_SIZE, 50)).astype("float32")
    captioner = build_captioner(VOCAB_SIZE, MAX_LEN, embedding)
    model = captioner.prefix if path == "classic" else captioner.sequence
    if path == "classic":
        model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")

    def batches(feats, groups):
        if path == "classic":
            return CaptionPairs(
                feats, groups, MAX_LEN, images_per_batch=classic_images, one_hot=True, vocab_size=VOCAB_SIZE, seed=seed
            )
        return caption_dataset(feats, groups, batch_size=batch_size, max_len=MAX_LEN, seed=seed)

    start = model.get_weights()
    model.fit(batches(features[:classic_images], grouped[:classic_images]), epochs=1, verbose=0)  # trace the step
    _reset(model, start)
    data = batches(features, grouped)
    began, cpu = time.perf_counter(), time.process_time()
    history = model.fit(data, epochs=epochs, verbose=0, shuffle=False)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
    return {
        "path": path,
        "captions": sum(len(group) for group in grouped),
        "pairs": pairs * epochs,
        "seconds": seconds,
        "pairs_per_s": pairs * epochs / seconds,
        "pairs_per_cpu_s": pairs * epochs / cpu_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_loss": float(history.history["loss"][-1]),
        "dev_loss": held_out_loss(captioner, dev_features, dev_grouped),
    }


def in_own_process(**kwargs) -> dict:
    """:func:`run` in a fresh interpreter, so peak memory and imports are its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(run, **kwargs).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captions", type=int, default=30_000, help="training captions (5 per image)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64, help="captions per batch on the fast path")
    parser.add_argument("--classic-images", type=int, default=3, help="images per batch of the classic generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("classic", "fast"), help="run one path only")
    parser.add_argument("--json", help="also write the results to this JSON file (make bench reads it)")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    settings = dict(
        captions=args.captions,
        epochs=args.epochs,
        batch_size=args.batch_size,
        classic_images=args.classic_images,
        seed=args.seed,
    )
    paths = [args.only] if args.only else ["classic", "fast"]
    results = {path: in_own_process(path=path, **settings) for path in paths}
    write_json(args.json, results)

    one_hot_gb = next(iter(results.values()))["pairs"] / args.epochs * VOCAB_SIZE * 4 / 1e9
    print(
        f"\n{args.captions} captions, vocabulary {VOCAB_SIZE}, max_len {MAX_LEN}, {args.epochs} epoch(s); "
        f"load average before the run {load:.1f} on {os.cpu_count()} CPU(s). All pairs' one-hot targets "
        f"at once would take {one_hot_gb:.2f} GB."
    )
    print(
        "\n| path | captions | pairs seen | seconds | pairs/s | pairs/CPU-s | peak RSS (MB) | train loss | held-out loss/word |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results.values():
        print(
            f"| {result['path']} | {result['captions']} | {result['pairs']} | {result['seconds']:.1f} | "
            f"{result['pairs_per_s']:.0f} | {result['pairs_per_cpu_s']:.0f} | {result['peak_rss_mb']:.0f} | {result['train_loss']:.3f} | "
            f"{result['dev_loss']:.3f} |"
        )
    if len(results) == 2:
        classic, fast = results["classic"], results["fast"]
        print(
            f"\nfast / classic: {fast['pairs_per_s'] / classic['pairs_per_s']:.1f}x pairs/s (goal 10x), "
            f"{fast['pairs_per_cpu_s'] / classic['pairs_per_cpu_s']:.1f}x pairs per CPU-second; "
            f"held-out loss {fast['dev_loss'] / classic['dev_loss'] - 1:+.1%} relative to classic."
        )


if __name__ == "__main__":
    main()
