"""Feature extraction in float32 vs the precision CAPTION_PRECISION=auto picks here (bfloat16 on AMX).

    python -m benchmarks.precision                      # 256 JPEGs, 3 rounds
    python -m benchmarks.precision --images 64 --rounds 1 --workload 200   # a quick check
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python -m benchmarks.precision --precision bfloat16
                                                        # an AMX CPU playing one without AMX

Reads the first ``--images`` JPEGs of the synthetic Flickr8k-sized workload
(:mod:`benchmarks.workload`) and runs ResNet50 (CAPTION_CNN_WEIGHTS, default ``none``:
random weights, the same computation as ImageNet's) in three ways:

* ``float32``: the course's ``helpers.extractor.extractor_function`` in float32 (ResNet50 with
  its batch norms folded into the convolutions, :func:`helpers.extractor.fold_batch_norms`);
* ``float32, unfolded``: the Keras model as ``build_extractor`` returns it, in a ``tf.function``
  of its own: what folding saves, the reason the course keeps it;
* the reduced precision (``--precision``, default what ``auto`` chooses on this machine):
  the course's function in bfloat16 or float16 (:func:`helpers.precision.in_precision`,
  float16's model built under :func:`helpers.precision.keras_policy`). Skipped when that is float32.

Each runs in its own process (the bfloat16 rewrite's option is process-wide; a side's
threads and compiled functions are its own), after a warm-up that traces and optimises
the function, one side after the other, ``--rounds`` times. Per side: images/s and CPU
ms/image (all threads of the process: steadier than the wall clock on a busy machine) of
the model alone on images decoded beforehand, and of the tf.data pipeline (decode and
resize included) into it; medians over the rounds, and their range.

Agreement with float32 (the first side), over every image: the lowest cosine, the largest
relative error ``|b - a| / |a|`` of a feature vector, and the lowest cosine of the
*centred* features (the float32 mean over the images subtracted from both), and how often
an image's centred vector is nearest to its own float32 one among all images': random-weight
vectors are nearly parallel (cosine about 0.99 between different images), so the plain
cosine says little about what tells images apart. Goal: the reduced precision at 1.8x the
float32 speed or more, cosine 0.9999 or more; prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import numpy as np

from benchmarks import decoded_blocks, run_side, timed, write_json
from benchmarks.workload import image_paths

DECODED = 64  # images decoded beforehand for the model-alone runs (cycled)
REDUCED = ("bfloat16", "float16")


def sides(reduced: str) -> list[str]:
    """The sides to compare: float32 as the course runs it, float32 unfolded, and ``reduced`` unless float32."""
    return ["float32", "float32-unfolded"] + ([reduced] if reduced in REDUCED else [])


def side_name(side: str) -> str:
    names = {"float32": "float32 (the course: folded)", "float32-unfolded": "float32, batch norms not folded"}
    return names.get(side, f"{side} (the course on this machine)")


def forward_for(side: str, weights: str):
    """The function from (batch, 224, 224, 3) float32 images to pooled float32 features of ``side``."""
    import tensorflow as tf

    from helpers import features

    if side == "float32-unfolded":
        model = features.build_extractor(weights)
        signature = [tf.TensorSpec((None, *features.IMAGE_SIZE, 3), tf.float32)]
        return tf.function(lambda batch: model(batch, training=False), input_signature=signature)
    course = features.extractor_function(weights, precision=side)
    return lambda batch: course(batch)["pooled"]


def measure(side: str, images: int, workload: int, batch_size: int, features_file: str) -> dict:
    """Run one side in this process: model alone and pipeline; the pipeline's features go to ``features_file``."""
    os.environ.setdefault("CAPTION_CNN_WEIGHTS", "none")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from helpers import features

    weights = features.check_weights(os.environ["CAPTION_CNN_WEIGHTS"])
    paths = image_paths(images, workload)
    forward = forward_for(side, weights)
    blocks = decoded_blocks(paths[:DECODED], batch_size)
    forward(blocks[0]).numpy()  # warm up: trace and optimise
    batches = [blocks[k % len(blocks)] for k in range(-(-images // batch_size))]
    model_wall, model_cpu = timed(lambda: [forward(batch).numpy() for batch in batches])
    rows: list[np.ndarray] = []

    def pipeline() -> None:
        rows.extend(forward(batch).numpy() for _, batch in features.image_pipeline(paths, batch_size=batch_size))

    pipeline_wall, pipeline_cpu = timed(pipeline)
    np.save(features_file, np.concatenate(rows))
    model_images = len(batches) * batch_size
    return {
        "side": side,
        "weights": weights,
        "model_images_per_s": model_images / model_wall,
        "model_cpu_ms": 1000 * model_cpu / model_images,
        "pipeline_images_per_s": images / pipeline_wall,
        "pipeline_cpu_ms": 1000 * pipeline_cpu / images,
    }


def agreement(found: np.ndarray, expected: np.ndarray) -> dict:
    """How closely ``found`` matches ``expected`` (float32), row by row: see the module docstring."""

    def unit(rows: np.ndarray) -> np.ndarray:
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    mean = expected.mean(axis=0)
    centred, reference = unit(found - mean), unit(expected - mean)
    between = reference @ reference.T
    np.fill_diagonal(between, -1.0)
    return {
        "min_cosine": float((unit(found) * unit(expected)).sum(axis=1).min()),
        "max_relative_error": float(
            (np.linalg.norm(found - expected, axis=1) / np.linalg.norm(expected, axis=1)).max()
        ),
        "min_centred_cosine": float((centred * reference).sum(axis=1).min()),
        "nearest_is_itself": float(((centred @ reference.T).argmax(axis=1) == np.arange(len(found))).mean()),
        "between_images_cosine": float(np.median((unit(expected[:-1]) * unit(expected[1:])).sum(axis=1))),
        "max_centred_cosine_between_images": float(between.max()),
    }


def spread(values: list[float], digits: int) -> str:
    """Median and range of ``values``: ``12.3 (11.9-12.8)``."""
    median = statistics.median(values)
    return (
        f"{median:.{digits}f}"
        if len(values) == 1
        else f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256, help="JPEGs to extract (and to compare features on)")
    parser.add_argument(
        "--workload", type=int, default=None, help="size of the workload to read them from (default: --images)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="times every side runs, one after the other")
    parser.add_argument(
        "--precision",
        choices=("auto", *REDUCED),
        default="auto",
        help="the reduced precision to compare (auto: what CAPTION_PRECISION=auto picks here)",
    )
    parser.add_argument("--side", help="run this side only, in this process")
    parser.add_argument("--features", help="with --side: where to save its features (.npy)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    workload = args.workload or args.images
    if args.side:
        write_json(args.json, measure(args.side, args.images, workload, args.batch_size, args.features))
        return

    from benchmarks.__main__ import machine
    from helpers.config import get_settings
    from helpers.features import precision_verdict
    from helpers.system import precision

    flags = precision.cpu_flags()
    verdict = precision_verdict(os.environ.get("CAPTION_CNN_WEIGHTS", "none"), get_settings().precision_record)
    reduced = verdict["chosen"] if args.precision == "auto" else args.precision
    image_paths(args.images, workload)  # made before any timing
    load = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {side: [] for side in sides(reduced)}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.rounds):
            for side in runs:
                common = ["--images", args.images, "--workload", workload, "--batch-size", args.batch_size]
                runs[side].append(run_side("precision", "--side", side, *common, "--features", f"{scratch}/{side}.npy"))
        vectors = {side: np.load(f"{scratch}/{side}.npy") for side in runs}
    agreements = {side: agreement(found, vectors["float32"]) for side, found in vectors.items()}
    bf16_flags = sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})
    auto = precision.describe(verdict)
    write_json(args.json, {"runs": runs, "agreement": agreements, "cpu_flags": bf16_flags, "auto": auto})

    print(
        f"\n{machine()['CPU']}; bfloat16 CPU flags: {', '.join(bf16_flags) or 'none'}; "
        f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}; auto here: {auto}"
    )
    print(
        f"{args.images} JPEGs of the synthetic workload, ResNet50 weights {runs['float32'][0]['weights']}, "
        f"batch {args.batch_size}; {args.rounds} round(s): median (range); load average before {load:.1f}, "
        f"after {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)"
    )
    base = statistics.median(r["model_cpu_ms"] for r in runs["float32"])
    print(
        "\n| side | model alone images/s | CPU ms/image | pipeline images/s | CPU ms/image | "
        "CPU vs float32 | min cosine | max relative error | min centred cosine | nearest is itself |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for side, results in runs.items():
        cpu = [r["model_cpu_ms"] for r in results]
        fit = agreements[side]
        print(
            f"| {side_name(side)} | {spread([r['model_images_per_s'] for r in results], 1)} | {spread(cpu, 1)} | "
            f"{spread([r['pipeline_images_per_s'] for r in results], 1)} | {spread([r['pipeline_cpu_ms'] for r in results], 1)} | "
            f"{base / statistics.median(cpu):.2f}x | {fit['min_cosine']:.6f} | {fit['max_relative_error']:.2e} | "
            f"{fit['min_centred_cosine']:.5f} | {fit['nearest_is_itself']:.0%} |"
        )
    fit = agreements["float32"]
    print(
        f"\nBetween different images (float32): cosine {fit['between_images_cosine']:.3f} (median, consecutive images); "
        f"centred cosine at most {fit['max_centred_cosine_between_images']:.3f}."
    )


if __name__ == "__main__":
    main()
