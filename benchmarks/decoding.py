"""Caption decoding speed: the per-word ``predict`` loop vs batched greedy vs batched beam search.

    python -m benchmarks.decoding --images 1000 --loop-images 20
    python -m benchmarks.decoding --images 100 --loop-images 5      # a quick check

An untrained captioner on random features (:func:`workload`), every method writing exactly
12 words per caption; the loop in one process (``--only loop``), the course's decoders in
another (``--only course``). Check: the loop and batched greedy write the same captions.
Goal (issue 6): batched greedy at least 100x faster per caption than the loop, beam-3 20x.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from benchmarks import run_side, write_json
from benchmarks.report import Section, goal, show
from helpers.datasets import FACTS

VOCAB_SIZE, MAX_LEN, WORDS = FACTS["vocab_ids"], FACTS["max_len"], 12
LOOP = "per-word `model.predict` loop (seed style)"


def seed_loop(model, vocab, photo: np.ndarray, max_length: int, words: int) -> str:
    """The classic per-word loop, as tutorials write it in Keras 3 (one image).

    Differences from the seed, both forced: ``vocab.encode`` replaces the removed
    ``Tokenizer.texts_to_sequences``, and ``padding="post"`` because the course's model reads
    right-padded prefixes. The seed loops ``range(max_length)``; here ``range(words)``.
    """
    import keras

    in_text = "startseq"
    for _ in range(words):
        sequence = keras.utils.pad_sequences([vocab.encode(in_text)], maxlen=max_length, padding="post")
        yhat = model.predict([photo, sequence], verbose=0)
        word = vocab.words[int(np.argmax(yhat))]
        in_text += " " + word
        if word == "endseq":
            break
    return in_text


def workload(images: int, seed: int = 0):
    """An untrained captioner that never ends a caption by itself, its vocabulary, random features.

    Vocabulary 1,653 ids, prefix width ``max_len`` 34 (Flickr8k's); the features are random,
    non-negative, 2048-d (ResNet50's are post-ReLU averages). An untrained model has not
    learnt when to say ``endseq``, so the biases of ``endseq``, padding and ``startseq`` are
    set to -1e4: no method ever picks them, and every method stops after 12 words (about the
    mean Flickr8k caption). The loop still pads each prefix to 34 ids, as the classic code does.
    """
    import keras

    from helpers.model import build_captioner
    from helpers.text import END, PAD, START, Vocabulary

    keras.utils.set_random_seed(seed)
    vocab = Vocabulary([PAD, START, END] + [f"w{i}" for i in range(VOCAB_SIZE - 3)], {}, max_len=MAX_LEN, min_count=10)
    captioner = build_captioner(len(vocab), MAX_LEN)
    next_word = captioner.sequence.get_layer("next_word")
    kernel, bias = next_word.get_weights()
    bias[[0, vocab.start_id, vocab.end_id]] = -1e4
    next_word.set_weights([kernel, bias])
    features = np.abs(np.random.default_rng(seed).normal(size=(images, 2048))).astype("float32")
    return captioner, vocab, features


def clocked(run: Callable[[], list[str]]) -> tuple[float, list[str]]:
    """Wall seconds of ``run()`` and the captions it returned."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def measure(only: str, images: int, loop_images: int) -> dict:
    """Run the per-word loop (``only="loop"``) or the course's decoders in this process, after a warm-up.

    ``{method: {captions, seconds, ms_per_caption, texts}}``; ms per caption = wall time / captions.
    The course's: ``greedy`` one image per call (step-wise, unbatched) on ``loop_images``
    images, then batched ``greedy`` and ``beam_search(beam_width=3)`` on ``images``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from helpers.decoding import beam_search, greedy

    captioner, vocab, features = workload(max(images, loop_images))
    batch, few = features[:images], features[:loop_images]
    steps = WORDS + 1  # decoders' max_len counts startseq: 12 words after it
    if only == "loop":
        seed_loop(captioner.prefix, vocab, few[:1], MAX_LEN, 2)  # warm up: predict builds its function
        runs = {
            LOOP: lambda: [
                seed_loop(captioner.prefix, vocab, f[None], MAX_LEN, WORDS).removeprefix("startseq ") for f in few
            ]
        }
    else:
        greedy(captioner, vocab, few[:2], max_len=steps)  # warm up: trace the step function
        beam_search(captioner, vocab, few[:2], beam_width=3, max_len=steps)
        runs = {
            "step-wise greedy, one image per call": lambda: [
                greedy(captioner, vocab, f, max_len=steps)[0] for f in few
            ],
            "batched greedy": lambda: greedy(captioner, vocab, batch, max_len=steps),
            "batched beam search, k=3": lambda: beam_search(captioner, vocab, batch, beam_width=3, max_len=steps),
        }
    results = {}
    for name, run in runs.items():
        seconds, texts = clocked(run)
        count = len(texts)
        results[name] = {
            "captions": count,
            "seconds": seconds,
            "ms_per_caption": 1000 * seconds / count,
            "texts": texts,
        }
    return results


def bench(images: int, loop_images: int) -> dict:
    """The per-word loop in one process, the course's decoders in another: ``{method: its figures}``."""
    args = ["--images", images, "--loop-images", loop_images]
    return {**run_side("decoding", "--only", "loop", *args), **run_side("decoding", "--only", "course", *args)}


def summary(r: dict) -> list[dict[str, str]]:
    """The goals: batched greedy and beam-3 against the per-word loop, in ms per caption."""
    loop = r["decoding"][LOOP]["ms_per_caption"]
    rows = []
    for name, label, target in (("batched greedy", "greedy", 100), ("batched beam search, k=3", "beam-3", 20)):
        ms = r["decoding"][name]["ms_per_caption"]
        ratio = loop / ms
        rows.append(
            goal(
                f"decoding, {label}",
                "ms/caption",
                f"{loop:.1f}",
                f"{ms:.2f}",
                f"{ratio:.0f}x",
                f"≥ {target}x",
                ratio >= target,
            )
        )
    return rows


def section(r: dict) -> Section:
    """Every method's figures, and whether the loop and batched greedy wrote the same captions."""
    d = r["decoding"]
    loop_texts = d[LOOP]["texts"]
    same = sum(a == b for a, b in zip(loop_texts, d["batched greedy"]["texts"]))
    lengths = sorted({len(text.split()) for x in d.values() for text in x["texts"]})
    return Section(
        "Decoding (benchmarks/decoding.py)",
        f"An untrained captioner (vocabulary {VOCAB_SIZE}, prefix width {MAX_LEN}) that writes exactly {WORDS} words "
        f"per caption (words per caption found: {', '.join(map(str, lengths))}); random image features. The loop on "
        f"{len(loop_texts)} images in one process, the course's decoders on {d['batched greedy']['captions']} in "
        f"another. The loop and batched greedy wrote the same caption for {same} of {len(loop_texts)} images.",
        [
            {
                "method": name,
                "captions": x["captions"],
                "seconds": f"{x['seconds']:.2f}",
                "ms/caption": f"{x['ms_per_caption']:.2f}",
                "vs loop": f"{d[LOOP]['ms_per_caption'] / x['ms_per_caption']:.0f}x",
            }
            for name, x in d.items()
        ],
    )


def main() -> None:
    """Time the loop and the course's decoders, each in its own process (or ``--only``: one side, in this one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="images for the batched decoders")
    parser.add_argument("--loop-images", type=int, default=20, help="images for the slow per-word loop")
    parser.add_argument("--only", choices=("loop", "course"), help="the per-word loop or the course's decoders, here")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.only:
        write_json(args.json, measure(args.only, args.images, args.loop_images))
        return
    load = os.getloadavg()[0]
    result = bench(args.images, args.loop_images)
    write_json(args.json, result)
    show(section({"decoding": result}), summary({"decoding": result}), load)


if __name__ == "__main__":
    main()
