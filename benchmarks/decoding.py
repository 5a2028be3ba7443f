"""Caption decoding speed: the per-word ``predict`` loop vs batched greedy vs batched beam search.

    python -m benchmarks.decoding --images 1000 --loop-images 20

Workload: random non-negative 2048-d features (ResNet50 features are post-ReLU averages),
a vocabulary of 1,653 ids, prefix width ``max_len`` 34 (Flickr8k's), an untrained captioner. An untrained
model has not learnt when to say ``endseq``, so for a fair comparison every method writes
exactly 12 words (about the mean Flickr8k caption): the biases of ``endseq``, padding and
``startseq`` are set to -1e4 so none is ever picked, and every method stops after 12
words. The loop still pads each prefix to 34 ids, as the classic code does.

Methods, ms per caption = wall time / captions:

* the loop from countless tutorials (one image at a time, the padded prefix re-fed to the
  prefix model with ``model.predict`` for every word), on ``--loop-images`` images (slow);
* ``helpers.decoding.greedy`` one image per call (the step-wise decoder without batching);
* ``helpers.decoding.greedy`` and ``beam_search(beam_width=3)`` on ``--images`` images.

Check: the loop and batched greedy write the same captions. Goal (issue 6): batched
greedy at least 100x faster per caption than the loop, beam-3 at least 20x.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks import write_json
from helpers.datasets import FACTS

VOCAB_SIZE, MAX_LEN, WORDS = FACTS["vocab_ids"], FACTS["max_len"], 12


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
    """An untrained captioner that never ends a caption by itself, its vocabulary, random features."""
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


def timed(run) -> tuple[float, list[str]]:
    """Wall seconds of ``run()`` and what it returned."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="images for the batched decoders")
    parser.add_argument("--loop-images", type=int, default=20, help="images for the slow per-word loop")
    parser.add_argument(
        "--only",
        choices=("loop", "course"),
        help="run the per-word loop only, or the course's decoders only (make bench runs each in its own process)",
    )
    parser.add_argument("--json", help="also write the results to this JSON file (make bench reads it)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from helpers.decoding import beam_search, greedy

    load = os.getloadavg()[0]
    captioner, vocab, features = workload(max(args.images, args.loop_images))
    batch, few = features[: args.images], features[: args.loop_images]
    steps = WORDS + 1  # decoders' max_len counts startseq: 12 words after it

    if args.only != "course":
        seed_loop(captioner.prefix, vocab, few[:1], MAX_LEN, 2)  # warm up: predict builds its function
    if args.only != "loop":
        greedy(captioner, vocab, few[:2], max_len=steps)  # warm up: trace the step function
        beam_search(captioner, vocab, few[:2], beam_width=3, max_len=steps)

    runs = {
        "per-word `model.predict` loop (seed style)": (
            few,
            lambda: [
                seed_loop(captioner.prefix, vocab, f[None], MAX_LEN, WORDS).removeprefix("startseq ") for f in few
            ],
        ),
        "step-wise greedy, one image per call": (
            few,
            lambda: [greedy(captioner, vocab, f, max_len=steps)[0] for f in few],
        ),
        "batched greedy": (batch, lambda: greedy(captioner, vocab, batch, max_len=steps)),
        "batched beam search, k=3": (batch, lambda: beam_search(captioner, vocab, batch, beam_width=3, max_len=steps)),
    }
    loop_name = "per-word `model.predict` loop (seed style)"
    if args.only:
        runs = {name: run for name, run in runs.items() if (name == loop_name) == (args.only == "loop")}
    results = {name: (len(images), *timed(run)) for name, (images, run) in runs.items()}
    write_json(
        args.json,
        {
            name: {"captions": count, "seconds": seconds, "ms_per_caption": 1000 * seconds / count, "texts": texts}
            for name, (count, seconds, texts) in results.items()
        },
    )
    if args.only:
        for name, (count, seconds, _) in results.items():
            print(f"{name}: {count} captions, {1000 * seconds / count:.2f} ms/caption")
        return
    loop_ms = 1000 * results[loop_name][1] / results[loop_name][0]
    same = sum(a == b for a, b in zip(results[loop_name][2], results["batched greedy"][2]))
    lengths = {len(c.split()) for _, _, captions in results.values() for c in captions}
    print(
        f"vocabulary {VOCAB_SIZE}, prefix width {MAX_LEN}, captions of {sorted(lengths)} words; "
        f"load average before the run {load:.1f} on {os.cpu_count()} CPU(s)"
    )
    print(f"the loop and batched greedy agree on {same} of {results[loop_name][0]} captions\n")
    print("| method | captions | seconds | ms/caption | speed-up vs loop |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (count, seconds, _) in results.items():
        ms = 1000 * seconds / count
        print(f"| {name} | {count} | {seconds:.2f} | {ms:.2f} | {loop_ms / ms:.0f}x |")


if __name__ == "__main__":
    main()
