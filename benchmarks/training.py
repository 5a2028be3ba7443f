"""Training speed and memory: the classic pair generator vs the fast path, same model.

    python -m benchmarks.training                      # Flickr8k size: 30,000 captions
    python -m benchmarks.training --captions 2000      # a quick check

On Flickr8k-sized synthetic captions (:func:`synthetic_captions`), each path in its own process
(``--only`` runs one here), after a one-batch warm-up that is undone, for ``--epochs`` epochs:
both see every pair of every caption once per epoch. Goal (issue 5): fast at least 10x the
classic pairs/s, peak RSS under 2 GB, the same held-out loss within a few percent.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from benchmarks import run_side, write_json
from benchmarks.report import Section, goal, show
from helpers.datasets import FACTS

VOCAB_SIZE, MAX_LEN, CAPTIONS_PER_IMAGE, TOPICS = FACTS["vocab_ids"], FACTS["max_len"], 5, 100
DEV_CAPTIONS = 1000


def synthetic_captions(images: int, seed: int) -> tuple[np.ndarray, list[list[list[int]]]]:
    """Non-negative features ``(images, 2048)`` and 5 encoded captions per image, the same for the same ``seed``.

    Flickr8k-like: vocabulary 1,653 ids, ``startseq`` + 1-32 words + ``endseq`` (mean about 12
    tokens, ``max_len`` 34: ``helpers.datasets.FACTS``), words from a Zipf-like distribution
    that follows a random Markov chain and a per-image topic, so there is something to learn
    from the prefix and from the "image features" (post-ReLU-like, the topic's feature raised).
    """
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
    """Train with one path in this (fresh) process and measure it.

    The model is ``helpers.model.build_captioner`` with a random frozen 50-d embedding (as GloVe
    would be). ``classic``: ``CaptionPairs`` with one-hot targets, ``classic_images`` images per
    batch (all their pairs), the prefix model with ``categorical_crossentropy``, as tutorials
    write it; ``fast``: ``caption_dataset`` (whole captions, teacher forcing, length buckets,
    sparse targets), ``batch_size`` captions per batch, the sequence model. Pairs/s is the wall
    clock of ``fit`` (input pipeline included), pairs per CPU-second counts all threads, the
    held-out loss is per word on 1000 other captions; peak RSS is this process's.
    """
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
        """The path's batches of ``groups`` (captions) of the images ``feats``."""
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
        "epochs": epochs,
        "batch_size": batch_size,
        "classic_images": classic_images,
        "captions": sum(len(group) for group in grouped),
        "pairs": pairs * epochs,
        "seconds": seconds,
        "pairs_per_s": pairs * epochs / seconds,
        "pairs_per_cpu_s": pairs * epochs / cpu_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "train_loss": float(history.history["loss"][-1]),
        "dev_loss": held_out_loss(captioner, dev_features, dev_grouped),
    }


def bench(captions: int, epochs: int, batch_size: int = 64, classic_images: int = 3, seed: int = 0) -> dict:
    """Both paths, each in its own process, one after the other: ``{path: its figures}``."""
    args = ["--captions", captions, "--epochs", epochs, "--batch-size", batch_size]
    args += ["--classic-images", classic_images, "--seed", seed]
    return {path: run_side("training", "--only", path, *args) for path in ("classic", "fast")}


def summary(r: dict) -> list[dict[str, str]]:
    """The goals: pairs/s and peak memory of the fast path against the classic one (and pairs per CPU-second)."""
    classic, fast = r["training"]["classic"], r["training"]["fast"]
    ratio = fast["pairs_per_s"] / classic["pairs_per_s"]
    per_cpu = fast["pairs_per_cpu_s"] / classic["pairs_per_cpu_s"]
    memory = fast["peak_rss_mb"] / classic["peak_rss_mb"]
    return [
        goal(
            "training",
            "pairs/s",
            f"{classic['pairs_per_s']:.0f}",
            f"{fast['pairs_per_s']:.0f}",
            f"{ratio:.1f}x",
            "≥ 10x",
            ratio >= 10,
        ),
        goal(
            "training",
            "pairs per CPU-second",
            f"{classic['pairs_per_cpu_s']:.0f}",
            f"{fast['pairs_per_cpu_s']:.0f}",
            f"{per_cpu:.1f}x",
        ),
        goal(
            "training",
            "peak RSS (MB)",
            f"{classic['peak_rss_mb']:.0f}",
            f"{fast['peak_rss_mb']:.0f}",
            f"{memory:.2f}x",
            "course < 2048 MB",
            fast["peak_rss_mb"] < 2048,
        ),
    ]


def section(r: dict) -> Section:
    """Both paths' figures, and what the one-hot targets and the larger batches mean."""
    t = r["training"]
    classic, fast = t["classic"], t["fast"]
    one_hot_gb = classic["pairs"] / classic["epochs"] * VOCAB_SIZE * 4 / 1e9
    return Section(
        "Training (benchmarks/training.py)",
        f"{classic['captions']} synthetic training captions, vocabulary {VOCAB_SIZE}, max_len {MAX_LEN}, "
        f"{classic['epochs']} epoch(s); classic: `CaptionPairs` with one-hot targets ({classic['classic_images']} "
        "images per batch) into the prefix model; course: `caption_dataset` (whole captions, length buckets, "
        f"{fast['batch_size']} per batch) into the sequence model. Each in its own process.",
        [
            {
                "path": x["path"],
                "pairs seen": x["pairs"],
                "seconds": f"{x['seconds']:.1f}",
                "pairs/s": f"{x['pairs_per_s']:.0f}",
                "pairs/CPU-s": f"{x['pairs_per_cpu_s']:.0f}",
                "cores busy": f"{x['pairs_per_s'] / x['pairs_per_cpu_s']:.1f}",
                "peak RSS (MB)": f"{x['peak_rss_mb']:.0f}",
                "train loss": f"{x['train_loss']:.3f}",
                "held-out loss/word": f"{x['dev_loss']:.3f}",
            }
            for x in t.values()
        ],
        "Cores busy = CPU-seconds / wall-clock seconds. Pairs per CPU-second compare the work itself, "
        "whatever share of the machine each process got: "
        f"{fast['pairs_per_cpu_s'] / classic['pairs_per_cpu_s']:.1f}x. Held-out loss after the same pairs: fast "
        f"{fast['dev_loss'] / classic['dev_loss'] - 1:+.1%} relative to classic (fewer, larger optimizer steps: "
        f"one per {fast['batch_size']} captions instead of one per {classic['classic_images']} images, "
        f"{classic['classic_images'] * CAPTIONS_PER_IMAGE} captions). All pairs' one-hot targets at once would "
        f"take {one_hot_gb:.2f} GB: the classic generator makes them batch by batch.",
    )


def main() -> None:
    """Train both paths, each in its own process (or ``--only``: one, in this one), and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captions", type=int, default=30_000, help="training captions (5 per image)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64, help="captions per batch on the fast path")
    parser.add_argument("--classic-images", type=int, default=3, help="images per batch of the classic generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("classic", "fast"), help="run this path only, in this process")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    sizes = dict(epochs=args.epochs, batch_size=args.batch_size, classic_images=args.classic_images, seed=args.seed)
    if args.only:
        write_json(args.json, run(args.only, args.captions, **sizes))
        return
    load = os.getloadavg()[0]
    result = bench(args.captions, **sizes)
    write_json(args.json, result)
    show(section({"training": result}), summary({"training": result}), load)


if __name__ == "__main__":
    main()
