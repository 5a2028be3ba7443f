"""Lesson 12's artifacts on the Flickr8k-sized workload: the SavedModel and the LiteRT models against the Python path.

    python -m benchmarks.share                  # after the course stage, whose trained model it exports
    python -m benchmarks.share --photos 64      # a quick check

The course stage (:mod:`benchmarks.course`) leaves a model trained on the synthetic workload in
``<work>/course/``. This stage bundles it, exports it with lesson 12's helpers (a greedy SavedModel,
int8 and float16 LiteRT) and captions the first ``--photos`` test photos (Flickr-size JPEGs) each
way in one process, after a warm-up: wall and CPU milliseconds per photo, size on disk, the share
of greedy captions identical to the float32 Python path's, and BLEU-4 and CIDEr against the references.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from benchmarks import run_side, write_json
from benchmarks.report import Section, goal, show
from benchmarks.workload import FULL_IMAGES, WORK, make_workload

SIDES = ("Python path (float32)", "SavedModel", "LiteRT int8", "LiteRT float16")


def trained_bundle(workload: int):
    """The course stage's trained model with its vocabulary, saved as a bundle in ``<work>/share/`` and loaded."""
    os.environ.update(CAPTION_DATASET=str(make_workload(workload)), CAPTION_DATA_DIR=str(WORK / "course"))
    os.environ.update(CAPTION_FAST="0", CAPTION_CNN_WEIGHTS="none", TF_CPP_MIN_LOG_LEVEL="2")
    from helpers.config import get_settings
    from helpers.course import prepare_course_data
    from helpers.model import build_captioner, load_bundle, save_bundle

    course = prepare_course_data(get_settings())
    weights = course.folder / "best.weights.h5"
    if not weights.exists():
        raise SystemExit(
            f"No trained model in {course.folder}: run the course stage first (python -m benchmarks.course)."
        )
    captioner = build_captioner(len(course.vocab), course.vocab.max_len, course.embedding_matrix)
    captioner.sequence.load_weights(weights)
    folder = WORK / "share" / "bundle"
    save_bundle(captioner, course.vocab, folder, dataset=course.dataset.name, fast=False, cnn_weights="none")
    return load_bundle(folder), course


def run(workload: int, photos: int) -> dict:
    """Export, caption and score each way; the figures per side."""
    import tensorflow as tf

    from helpers.decoding import greedy
    from helpers.evaluation import compare
    from helpers.photos import caption_photos
    from helpers.share import export_savedmodel, load_lite, quantize

    bundle, course = trained_bundle(workload)
    images = course.split_images("test")[:photos]
    paths, references = [course.dataset.image_path(i) for i in images], course.dataset.references(images)
    out = WORK / "share"
    shutil.rmtree(out / "saved", ignore_errors=True)

    def python_path(batch: list[Path]) -> list[str]:
        found, _ = caption_photos(batch, bundle, 1, precision="float32")
        return [found[p] for p in batch]

    served = tf.saved_model.load(str(export_savedmodel(bundle, out / "saved")))

    def savedmodel(batch: list[Path]) -> list[str]:
        chunks = [batch[i : i + 32] for i in range(0, len(batch), 32)]
        return [
            c.decode() for chunk in chunks for c in served.serve(tf.constant([p.read_bytes() for p in chunk])).numpy()
        ]

    runs = {SIDES[0]: (python_path, None), SIDES[1]: (savedmodel, out / "saved")}
    for weights in ("int8", "float16"):
        lite = load_lite(quantize(bundle, out / f"{weights}.tflite", weights), bundle)
        runs[f"LiteRT {weights}"] = (
            lambda batch, lite=lite: greedy(lite, bundle.vocab, lite.features(batch)),
            out / f"{weights}.tflite",
        )
    results, captions = {}, {}
    for side, (caption, path) in runs.items():
        caption(paths[:4])  # warm-up: traces and builds
        began, cpu = time.perf_counter(), time.process_time()
        captions[side] = caption(paths)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        size = path and (
            path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        )
        same = sum(a == b for a, b in zip(captions[side], captions[SIDES[0]])) / len(paths)
        results[side] = {
            "ms": 1000 * wall / len(paths),
            "cpu_ms": 1000 * cpu / len(paths),
            "mb": size and size / 1e6,
            "same": same,
            "distinct": len(set(captions[side])),
        }
    scores = compare(references, captions, meteor=False)  # the references tokenized once for every side
    for side, row in results.items():
        row.update(bleu4=float(scores.loc[side, "BLEU-4"]), cider=float(scores.loc[side, "CIDEr"]))
    return {"photos": len(paths), "sides": results}


def bench(workload: int, photos: int) -> dict:
    """The whole comparison in its own process (after the course stage)."""
    return run_side("share", "--workload", workload, "--photos", photos)


def summary(r: dict) -> list[dict[str, str]]:
    """Size and agreement of the int8 model against the SavedModel (no goal: lesson 12 reports them)."""
    s = r["share"]["sides"]
    saved, int8 = s["SavedModel"], s["LiteRT int8"]
    return [
        goal(
            "share, int8",
            "MB on disk",
            f"{saved['mb']:.0f} (SavedModel)",
            f"{int8['mb']:.1f}",
            f"{saved['mb'] / int8['mb']:.1f}x",
        ),
        goal("share, int8", "identical greedy captions", "", f"{int8['same']:.0%}", ""),
    ]


def section(r: dict) -> Section:
    """Each side's figures."""
    t = r["share"]
    rows = [
        {
            "artifact": side,
            "MB on disk": "—" if f["mb"] is None else f"{f['mb']:.1f}",
            "ms/photo": f"{f['ms']:.1f}",
            "CPU ms/photo": f"{f['cpu_ms']:.1f}",
            "identical captions": f"{f['same']:.1%}",
            "distinct captions": f["distinct"],
            "BLEU-4": f"{f['bleu4']:.3f}",
            "CIDEr": f"{f['cider']:.3f}",
        }
        for side, f in t["sides"].items()
    ]
    return Section(
        "Sharing the captioner (benchmarks/share.py)",
        f"The course stage's model (random CNN weights, trained on the synthetic workload) on the first {t['photos']} "
        "test photos, greedy, each way in one process after a warm-up: lesson 08's Python path in float32, lesson 12's "
        "SavedModel (photo bytes to caption in one graph), and its LiteRT models (encoder and one-word step; the loop "
        "in Python). Identical captions: against the Python path; distinct captions: how many different ones each "
        "wrote. A model that writes few distinct captions barely looks at the photos, and its agreement says little "
        "about quantization: lesson 12 measures that on a model that does.",
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", type=int, default=FULL_IMAGES, help="images of the synthetic workload")
    parser.add_argument("--photos", type=int, default=256, help="test photos to caption each way")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    if args.json:  # one side of make bench
        write_json(args.json, run(args.workload, args.photos))
        return
    result = {"share": run(args.workload, args.photos)}
    show(section(result), summary(result), before)


if __name__ == "__main__":
    main()
