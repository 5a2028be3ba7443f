"""Lesson 11's comparison of costs: an epoch of the attention model against one of the merge model.

    python -m benchmarks.attention                    # Flickr8k size: 30,000 captions, 6,000 images
    python -m benchmarks.attention --captions 2000    # a quick check

Both train one epoch of lesson 07's recipe (batches of 64 whole captions, Adam) on the same
Flickr8k-like synthetic captions (``benchmarks.training.synthetic_captions``), each in its own
process, after a warm-up batch: the merge model on pooled features in memory
(``caption_dataset``), the attention model on a 7 x 7 grid of float16 features memory-mapped
from disk (``stream_caption_dataset``), as lesson 11 trains them. Also counted: each model's
parameters at Flickr8k's vocabulary.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import run_side, write_json
from benchmarks.report import Section, goal, show
from benchmarks.training import CAPTIONS_PER_IMAGE, MAX_LEN, VOCAB_SIZE, synthetic_captions

SIDES = ("merge", "attention")


def grid_file(features: np.ndarray, folder: Path, seed: int) -> np.memmap:
    """A float16 ``(images, 49, 2048)`` grid on disk whose mean over the regions is about ``features``."""
    grid = np.lib.format.open_memmap(folder / "grid.npy", "w+", np.float16, (len(features), 49, 2048))
    rng = np.random.default_rng(seed)
    for start in range(0, len(features), 256):  # 256 images (51 MB of float16) at a time
        block = features[start : start + 256, None, :] * rng.gamma(2.0, 0.5, size=(1, 49, 1))
        grid[start : start + 256] = block * rng.uniform(0.5, 1.5, size=block.shape)
    grid.flush()
    return np.load(folder / "grid.npy", mmap_mode="r")


def run(side: str, captions: int, seed: int) -> dict:
    """One epoch of ``side`` in this (fresh) process: seconds, batches, parameters."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from helpers.attention import build_attention_captioner
    from helpers.generators import caption_dataset, stream_caption_dataset
    from helpers.model import build_captioner
    from helpers.system.cache import FeatureSet

    features, grouped = synthetic_captions(captions // CAPTIONS_PER_IMAGE, seed)
    names = [f"image{i}" for i in range(len(features))]
    embedding = np.random.default_rng(seed).normal(0, 0.4, size=(VOCAB_SIZE, 50)).astype("float32")
    keras.utils.set_random_seed(seed)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCHMARKS_WORK")) as scratch:
        if side == "merge":
            captioner = build_captioner(VOCAB_SIZE, MAX_LEN, embedding)
            batches = caption_dataset(features, grouped, batch_size=64, max_len=MAX_LEN, seed=seed)
        else:
            captioner = build_attention_captioner(VOCAB_SIZE, embedding)
            store = FeatureSet(grid_file(features, Path(scratch), seed), names)
            batches = stream_caption_dataset(store, dict(zip(names, grouped)), max_len=MAX_LEN, seed=seed)
        model = captioner.sequence
        model.fit(batches.take(1), epochs=1, verbose=0)  # traces the training step: not timed
        began = time.perf_counter()
        model.fit(batches, epochs=1, verbose=0)
        seconds = time.perf_counter() - began
    return {
        "side": side,
        "captions": captions,
        "batches": int(batches.cardinality()),
        "seconds": seconds,
        "parameters": model.count_params(),
    }


def bench(captions: int, seed: int = 0) -> dict:
    """Both models, each in its own process: ``{side: its figures}``."""
    return {side: run_side("attention", "--only", side, "--captions", captions, "--seed", seed) for side in SIDES}


def summary(r: dict) -> list[dict[str, str]]:
    """Seconds per epoch and parameters, attention against merge (no goal: lesson 11 reports the price)."""
    merge, attention = r["attention"]["merge"], r["attention"]["attention"]
    return [
        goal(
            "attention",
            "s per epoch",
            f"{merge['seconds']:.0f}",
            f"{attention['seconds']:.0f}",
            f"{attention['seconds'] / merge['seconds']:.1f}x",
        ),
        goal(
            "attention",
            "parameters",
            f"{merge['parameters']:,}",
            f"{attention['parameters']:,}",
            f"{attention['parameters'] / merge['parameters']:.2f}x",
        ),
    ]


def section(r: dict) -> Section:
    """Both sides' figures and how they were made."""
    rows = [
        {
            "model": side,
            "batches": s["batches"],
            "s per epoch": f"{s['seconds']:.1f}",
            "parameters": f"{s['parameters']:,}",
        }
        for side, s in r["attention"].items()
    ]
    first = next(iter(r["attention"].values()))
    return Section(
        "Attention against merge (benchmarks/attention.py)",
        f"One epoch of {first['captions']} synthetic captions (vocabulary {VOCAB_SIZE}, batches of 64), after a "
        "traced warm-up batch: merge on pooled features in memory, attention on a float16 7 x 7 grid "
        "memory-mapped from disk, as lesson 11 trains them. Parameters at Flickr8k's vocabulary.",
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=SIDES, help="run one side in this process (what bench does)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.only:
        write_json(args.json, run(args.only, args.captions, args.seed))
        return
    result = {"attention": bench(args.captions, args.seed)}
    write_json(args.json, result)
    show(section(result), summary(result), os.getloadavg()[0])


if __name__ == "__main__":
    main()
