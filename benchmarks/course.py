"""The whole course on the Flickr8k-sized workload, step by step, with the course's own helpers.

    python -m benchmarks.course --epochs 5
    python -m benchmarks.course --workload 200 --epochs 1      # a quick check

What the lessons compute (:data:`STEPS`), from nothing cached, in one fresh process: once as
``CAPTION_PRECISION=auto`` runs it, once in float32 throughout (``--side`` runs one here, in
the environment's precision). The dataset is the synthetic workload (:mod:`benchmarks.workload`)
read through ``CAPTION_DATASET``; artifacts go to ``<work>/course/``, deleted first.
CAPTION_CNN_WEIGHTS defaults to ``none``. Instructors scale the per-epoch seconds to their epoch count.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time

from benchmarks import run_side, settle, write_json
from benchmarks.decoding import LOOP
from benchmarks.report import Section, goal, show
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
    """Run the course path in this process; seconds per step and what it worked on.

    The steps: the dataset with its image check (lesson 01), ResNet50 features of every image
    (lesson 03), the rest of ``helpers.course.prepare_course_data`` (captions and vocabulary,
    GloVe matrix, grouped captions; the features now come from the cache), ``epochs`` epochs of
    ``helpers.training.train`` with a dev loss, checkpoints and history after each (lesson 07),
    greedy and beam-3 captions of every test image (lesson 08), their scores without METEOR's Java (lesson 09).
    """
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
    from helpers.features import choose_precision, dataset_features
    from helpers.generators import teacher_forcing_arrays
    from helpers.model import build_captioner
    from helpers.training import train

    seconds: dict[str, float] = {}
    began = time.perf_counter()

    def lap(step: str) -> None:
        """Charge the time since the last lap to ``step``."""
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
        "precision": choose_precision(settings.precision, settings.cnn_weights, settings.precision_record),
        "dev_loss": history["val_loss"][-1],
        "scores": scores,
        "mean_greedy_words": sum(len(c.split()) for c in greedy_captions) / max(1, len(greedy_captions)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bench(workload: int, epochs: int) -> dict:
    """The course as ``CAPTION_PRECISION=auto`` runs it, then in float32 throughout, each in its own process.

    The auto run's figures, with the float32 run's under ``"float32"``.
    """
    args = ["--side", "--workload", workload, "--epochs", epochs]
    auto = run_side("course", *args, env={"CAPTION_PRECISION": "auto"})
    settle()
    return {**auto, "float32": run_side("course", *args, env={"CAPTION_PRECISION": "float32"})}


def classic_minutes(r: dict) -> float | None:
    """The whole course the classic way, estimated from the classic rates measured in the same run.

    The course's own dataset and text steps, plus: every image through the per-image loop,
    every epoch's pairs at the classic generator's pairs/s, the test images through the
    per-word loop. None unless the features, training and decoding stages ran too.
    """
    if not {"features", "training", "decoding"} <= r.keys():
        return None
    course = r["course"]
    seconds = course["seconds"]["dataset"] + course["seconds"]["text"]
    seconds += course["images"] / r["features"]["loop"]["images_per_s"]
    seconds += course["epochs"] * course["pairs_per_epoch"] / r["training"]["classic"]["pairs_per_s"]
    seconds += course["test_images"] * r["decoding"][LOOP]["ms_per_caption"] / 1000
    return seconds / 60


def summary(r: dict) -> list[dict[str, str]]:
    """The whole course in minutes (dataset, features, text, training, greedy), against the classic estimate."""
    course = r["course"]
    measured = sum(course["seconds"][s] for s in ("dataset", "features", "text", "training", "greedy")) / 60
    classic = classic_minutes(r)
    return [
        goal(
            f"whole course ({course['epochs']} epochs)",
            "minutes",
            "—" if classic is None else f"≈ {classic:.1f} (estimate)",
            f"{measured:.1f}",
            "—" if classic is None else f"{classic / measured:.1f}x",
        )
    ]


def section(r: dict) -> Section:
    """Seconds per step as auto runs the course and in float32, with what the course worked on."""
    c = r["course"]
    rows = [
        {
            "step": name,
            f"seconds (CAPTION_PRECISION=auto: {c['precision']})": f"{c['seconds'][step]:.1f}",
            "seconds (float32)": f"{c['float32']['seconds'][step]:.1f}",
        }
        for step, name in STEPS.items()
    ]
    totals = [f"**{x['total_s']:.1f}** ({x['total_s'] / 60:.1f} min)" for x in (c, c["float32"])]
    rows.append(dict(zip(rows[0], ("**total**", *totals))))
    return Section(
        "The whole course (benchmarks/course.py)",
        f"The course's helpers on the synthetic workload of {c['images']} images ({c['train_captions']} training "
        f"captions, {c['pairs_per_epoch']} pairs per epoch, vocabulary {c['vocab']}, max_len {c['max_len']}, "
        f"ResNet50 weights `{c['weights']}`), from nothing cached, in one process; peak RSS {c['peak_rss_mb']:.0f} MB. "
        f"Seconds per epoch (dev loss and checkpoint included): {', '.join(f'{s:.0f}' for s in c['epoch_s'])}. "
        f"At that pace the recipe's 20 epochs (early stopping usually ends sooner) take about "
        f"{20 * sum(c['epoch_s']) / len(c['epoch_s']) / 60:.0f} min of training. "
        "The summary's course figure is features + training + greedy test captions (with the dataset step and the "
        "text step, GloVe included); the classic estimate replaces those three by the classic rates measured above.",
        rows,
    )


def main() -> None:
    """Run the course with auto and in float32, each in its own process (or ``--side``: once, in this one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", type=int, default=FULL_IMAGES, help="images of the synthetic workload")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--side", action="store_true", help="run the course once, in this process")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.side:
        write_json(args.json, run(args.workload, args.epochs))
        return
    load = os.getloadavg()[0]
    result = bench(args.workload, args.epochs)
    write_json(args.json, result)
    show(section({"course": result}), summary({"course": result}), load)


if __name__ == "__main__":
    main()
