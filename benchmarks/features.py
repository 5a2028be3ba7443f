"""Feature extraction speed: per-image ``predict`` loop vs our batched pipeline vs the model alone.

    python -m benchmarks.features --images 512

Makes Flickr-sized JPEGs (500x375, real JPEG encoding, varied content) in
``benchmarks/work/features/`` once, then measures images per second of

* the per-image loop learners meet in the wild: ``load_img``, ``img_to_array``,
  ``expand_dims``, ``preprocess_input``, ``model.predict`` for one image at a time;
* ``helpers.features.extract_features``: the tf.data pipeline into the tf.function;
* the model alone on images decoded beforehand (the speed the pipeline should hide behind).

Goal (issue 4): the pipeline at 90 % or more of the model-only speed, and at least 3x
the per-image loop. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WORK = Path(__file__).resolve().parent / "work" / "features"
FLICKR_SIZE = (500, 375)


def flickr_like(seed: int) -> Image.Image:
    """A 500x375 photo-like picture: smooth colour fields, shapes, fine texture (JPEG-realistic)."""
    rng = np.random.default_rng(seed)
    width, height = FLICKR_SIZE
    coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize(FLICKR_SIZE, Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 9)):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = rng.integers(10, 120)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x - r, y - r, x + r, y + r], fill=colour)
    texture = rng.normal(0, rng.uniform(4, 18), size=(height, width, 3))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1)), dtype=np.float32) + texture
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def make_workload(count: int, folder: Path = WORK) -> list[Path]:
    """``count`` JPEGs (made once, reused by later runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"flickr_like_{k:05d}.jpg" for k in range(count)]
    for k, path in enumerate(paths):
        if not path.exists():
            flickr_like(k).save(path, quality=90)
    return paths


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


def timed(run, repeat: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process) of the fastest of ``repeat`` runs of ``run()``."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=512, help="images for the pipeline and the model alone")
    parser.add_argument("--loop-images", type=int, default=None, help="images for the slow per-image loop (default: same)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each method; the fastest counts")
    args = parser.parse_args()
    os.environ.setdefault("CAPTION_CNN_WEIGHTS", "none")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf

    from helpers import features

    load = os.getloadavg()[0]
    paths = make_workload(args.images)
    loop_paths = paths[: args.loop_images or args.images]
    weights = features.resolve_weights()
    model, forward = features.build_extractor(weights), features.extractor_function(weights)
    print(f"{len(paths)} JPEGs of {FLICKR_SIZE[0]}x{FLICKR_SIZE[1]} in {WORK}; ResNet50 weights: {weights}; "
          f"{os.cpu_count()} CPU(s); GPU: {bool(tf.config.list_physical_devices('GPU'))}")

    decoded = np.stack([features.load_image(str(p)).numpy() for p in paths])
    batches = [tf.constant(decoded[i : i + args.batch_size]) for i in range(0, len(paths), args.batch_size)]
    per_image_loop(loop_paths[:2], model)  # warm up: predict's first call builds its function
    model_only(batches[:1], forward)  # warm up: trace the tf.function

    runs = {
        "per-image `model.predict` loop": (loop_paths, lambda: per_image_loop(loop_paths, model)),
        "batched pipeline (`extract_features`)": (
            paths, lambda: features.extract_features(paths, weights=weights, batch_size=args.batch_size)),
        "model alone on decoded tensors": (paths, lambda: model_only(batches, forward)),
    }
    speeds = {}
    rows = []
    for name, (images, run) in runs.items():
        wall, cpu = timed(run, args.repeat)
        speeds[name] = len(images) / wall
        rows.append((name, len(images), wall, 1000 * cpu / len(images)))
    loop_speed, model_speed = speeds["per-image `model.predict` loop"], speeds["model alone on decoded tensors"]
    print(f"\nload average before the run: {load:.1f} on {os.cpu_count()} CPU(s) (other work on the machine "
          "slows the wall clock; CPU ms/image, all threads of this process, is steadier)")
    print("\n| method | images | seconds | images/s | CPU ms/image | vs model alone | vs per-image loop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, count, wall, cpu_ms in rows:
        speed = speeds[name]
        print(f"| {name} | {count} | {wall:.1f} | {speed:.1f} | {cpu_ms:.0f} | {speed / model_speed:.0%} | {speed / loop_speed:.1f}x |")

if __name__ == "__main__":
    main()
