"""The whole course on the Flickr8k-sized workload, step by step, with the course's own helpers.

    python -m benchmarks.course --epochs 5
    python -m benchmarks.course --workload 200 --epochs 1      # a quick check

What the lessons compute, in one fresh process, from nothing cached: the dataset with its
image check (lesson 01), ResNet50 features of every image (lesson 03), then the rest of
``helpers.course.prepare_course_data`` (captions and vocabulary of lesson 02, the GloVe
matrix of lesson 04, the grouped captions of lesson 05; the features now come from the
cache), ``--epochs`` epochs of training with a dev loss, checkpoints and history after
each (lesson 07, ``helpers.training.train``), greedy and beam-3 captions of every test
image (lesson 08) and their scores (lesson 09, without METEOR's Java). The
dataset is the synthetic workload (:mod:`benchmarks.workload`) read through
``CAPTION_DATASET``; artifacts go to ``benchmarks/work/course/`` and are deleted first.
CAPTION_CNN_WEIGHTS defaults to ``none`` (random weights: the same computation as
ImageNet's, no download). Instructors scale the per-epoch seconds to their epoch count.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time

from benchmarks import write_json
from benchmarks.workload import FULL_IMAGES, WORK, make_workload

STEPS = {
    "dataset": "the dataset and its image check (lesson 01)",
    "features": "ResNet50 features of every image (lesson 03)",
    "text": "captions, vocabulary, GloVe matrix, grouped captions (prepare_course_data: lessons 02, 04, 05)",
    "training": "training (lesson 07)",
    "greedy": "greedy captions of the test images (lesson 08)",
    "beam": "beam-3 captions of the test images (lesson 08)",
    "scores": "BLEU, ROUGE-L, CIDEr of the greedy captions (lesson 09)",
}


def run(workload: int, epochs: int) -> dict:
    """Run the course path in this process; seconds per step and what it worked on."""
    root = make_workload(workload)
    os.environ.update(CAPTION_DATASET=str(root), CAPTION_DATA_DIR=str(WORK / "course"), CAPTION_FAST="0")
    os.environ.setdefault("CAPTION_CNN_WEIGHTS", "none")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from helpers.config import get_settings

    settings = get_settings()
    shutil.rmtree(settings.outputs_root, ignore_errors=True)

    from helpers.course import prepare_course_data
    from helpers.datasets import load_dataset
    from helpers.decoding import beam_search, greedy
    from helpers.evaluation import score
    from helpers.features import dataset_features
    from helpers.generators import teacher_forcing_arrays
    from helpers.model import build_captioner
    from helpers.training import train

    seconds: dict[str, float] = {}
    began = time.perf_counter()

    def lap(step: str) -> None:
        seconds[step] = time.perf_counter() - began - sum(seconds.values())

    dataset = load_dataset(settings=settings)
    lap("dataset")
    dataset_features(dataset)
    lap("features")
    course = prepare_course_data(settings)
    vocab, feature_set, train_captions = course.vocab, course.features, course.train_captions
    lap("text")
    captioner = build_captioner(len(vocab), vocab.max_len, course.embedding_matrix)
    history = train(
        captioner,
        feature_set,
        train_captions,
        course.dev_captions,
        folder=course.folder,
        epochs=epochs,
        patience=epochs,
        resume=False,
        seed=0,
    )
    lap("training")
    images = course.split_images("test")
    test_features = feature_set.lookup(images)
    greedy_captions = greedy(captioner, vocab, test_features)
    lap("greedy")
    beam_search(captioner, vocab, test_features, beam_width=3)
    lap("beam")
    scores = score(course.dataset.references(images), greedy_captions, meteor=False)
    lap("scores")
    return {
        "seconds": seconds,
        "total_s": sum(seconds.values()),
        "epoch_s": history["seconds"],
        "epochs": len(history["loss"]),
        "images": len(feature_set),
        "train_captions": sum(map(len, train_captions.values())),
        "pairs_per_epoch": int((teacher_forcing_arrays(train_captions)[2] > 0).sum()),
        "test_images": len(images),
        "vocab": len(vocab),
        "max_len": vocab.max_len,
        "weights": settings.cnn_weights,
        "dev_loss": history["val_loss"][-1],
        "scores": scores,
        "mean_greedy_words": sum(len(c.split()) for c in greedy_captions) / max(1, len(greedy_captions)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", type=int, default=FULL_IMAGES, help="images of the synthetic workload")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    result = run(args.workload, args.epochs)
    write_json(args.json, result)
    print(
        f"\nThe course on {result['images']} images, {result['train_captions']} training captions "
        f"({result['pairs_per_epoch']} pairs per epoch), vocabulary {result['vocab']}, max_len {result['max_len']}:"
    )
    print("\n| step | seconds |\n| --- | ---: |")
    for step, name in STEPS.items():
        print(f"| {name} | {result['seconds'][step]:.1f} |")
    print(f"| **total** | **{result['total_s']:.1f}** ({result['total_s'] / 60:.1f} min) |")
    print(f"\nseconds per epoch: {result['epoch_s']}; peak RSS {result['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
