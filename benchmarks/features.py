"""Feature extraction speed: per-image ``predict`` loop vs our batched pipeline vs the model alone.

    python -m benchmarks.features --images 512 --loop-images 128
    python -m benchmarks.features --images 64 --workload 200      # a quick check

Reads the first ``--images`` JPEGs of the synthetic Flickr8k-sized workload
(:mod:`benchmarks.workload`, made once: Flickr size, about 125 KB each) and measures images
per second of

* ``loop``: the per-image loop learners meet in the wild: ``load_img``, ``img_to_array``,
  ``expand_dims``, ``preprocess_input``, ``model.predict`` for one image at a time
  (on ``--loop-images``);
* ``pipeline``: ``helpers.features.extract_features``: the tf.data pipeline into the
  tf.function (no cache, so every image is decoded and run);
* ``model``: the same tf.function alone on images decoded beforehand (the first 128,
  cycled): the speed the pipeline should hide behind.

Each method runs in its own process (``--method`` runs one here; ``--json FILE`` writes
its figures), after a warm-up that builds ``predict``'s function or traces the
tf.function. CAPTION_CNN_WEIGHTS defaults to ``none`` (random weights: the same
computation as ImageNet's, no download). Goal (issue 4): the pipeline at 90 % or more of
the model-only speed, and at least 3x the per-image loop. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
from pathlib import Path

import numpy as np

from benchmarks import decoded_blocks, run_side, timed, write_json
from benchmarks.workload import FULL_IMAGES, image_paths

METHODS = {
    "loop": "per-image `model.predict` loop",
    "pipeline": "batched pipeline (`extract_features`)",
    "model": "model alone on decoded tensors",
}
DECODED = 128  # images decoded beforehand for the model-only run (cycled)


def per_image_loop(paths: list[Path], model) -> None:
    """The loop from countless tutorials: one ``model.predict`` call per image."""
    import keras

    for path in paths:
        image = keras.utils.load_img(path, target_size=(224, 224))
        x = np.expand_dims(keras.utils.img_to_array(image), axis=0)
        x = keras.applications.resnet50.preprocess_input(x)
        model.predict(x, verbose=0)


def model_only(batches: list, forward) -> None:
    """The compiled model on batches decoded beforehand: the upper bound for the pipeline."""
    for batch in batches:
        forward(batch).numpy()


def measure(method: str, images: int, workload: int, batch_size: int, repeat: int) -> dict:
    """Run one method in this process; its speed, CPU time and peak memory."""
    os.environ.setdefault("CAPTION_CNN_WEIGHTS", "none")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from helpers import features
    from helpers.config import get_settings

    paths = image_paths(images, workload)
    settings = get_settings()
    weights = settings.cnn_weights
    precision = features.choose_precision(settings.precision, weights, settings.precision_record)  # both alike
    if method == "loop":
        model = features.build_extractor(weights)
        per_image_loop(paths[:2], model)  # warm up: predict's first call builds its function
        run = lambda: per_image_loop(paths, model)  # noqa: E731
    elif method == "pipeline":
        features.extract_features(
            paths[:batch_size], weights=weights, batch_size=batch_size, precision=precision
        )  # trace
        run = lambda: features.extract_features(paths, weights=weights, batch_size=batch_size, precision=precision)  # noqa: E731
    else:
        course = features.extractor_function(weights, precision=precision)
        forward = lambda batch: course(batch)["pooled"]  # noqa: E731
        blocks = decoded_blocks(paths[:DECODED], batch_size)
        cycle, left = [], images
        while left > 0:  # the decoded batches again and again, `images` images in all
            for block in blocks:
                if left > 0:
                    cycle.append(block if left >= len(block) else block[:left])
                    left -= len(block)
        model_only(cycle[:1], forward)  # warm up: trace the tf.function
        run = lambda: model_only(cycle, forward)  # noqa: E731
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        best = min(best, timed(run))
    return {
        "method": method,
        "name": METHODS[method],
        "weights": weights,
        "precision": "float32" if method == "loop" else precision,
        "images": images,
        "seconds": best[0],
        "images_per_s": images / best[0],
        "cpu_ms_per_image": 1000 * best[1] / images,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=512, help="images for the pipeline and the model alone")
    parser.add_argument(
        "--loop-images", type=int, default=None, help="images for the slow per-image loop (default: same)"
    )
    parser.add_argument("--workload", type=int, default=FULL_IMAGES, help="size of the workload to read them from")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each method; the fastest counts")
    parser.add_argument("--method", choices=METHODS, help="run this method only, in this process")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    def count(method: str) -> int:
        return (args.loop_images or args.images) if method == "loop" else args.images

    if args.method:
        write_json(args.json, measure(args.method, count(args.method), args.workload, args.batch_size, args.repeat))
        return
    load = os.getloadavg()[0]
    image_paths(max(args.images, args.loop_images or 0), args.workload)  # made before any timing
    common = ["--workload", args.workload, "--batch-size", args.batch_size, "--repeat", args.repeat]
    results = {m: run_side("features", "--method", m, "--images", count(m), *common) for m in METHODS}
    write_json(args.json, results)
    loop_speed, model_speed = results["loop"]["images_per_s"], results["model"]["images_per_s"]
    print(
        f"\n{args.images} JPEGs of the synthetic Flickr8k workload; ResNet50 weights: {results['model']['weights']}; "
        f"load average before the run {load:.1f} on {os.cpu_count()} CPU(s) (CPU ms/image, all threads of the "
        "process, is steadier than the wall clock on a busy machine)"
    )
    print(
        "\n| method | images | seconds | images/s | CPU ms/image | peak RSS (MB) | vs model alone | vs per-image loop |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results.values():
        speed = r["images_per_s"]
        print(
            f"| {r['name']} | {r['images']} | {r['seconds']:.1f} | {speed:.1f} | {r['cpu_ms_per_image']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {speed / model_speed:.0%} | {speed / loop_speed:.1f}x |"
        )


if __name__ == "__main__":
    main()
