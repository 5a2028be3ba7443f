"""Feature extraction in float32 vs bfloat16 on this CPU, and what ``CAPTION_PRECISION=auto`` chose here.

    python -m benchmarks.precision                                        # 256 JPEGs, 3 rounds
    python -m benchmarks.precision --images 64 --rounds 1 --workload 200  # a quick check
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python -m benchmarks.precision    # an emulation: AMX held back

Sides (:func:`sides`), each in its own process after a warm-up, ``--rounds`` times: the model
alone on decoded images and the tf.data pipeline into it, on JPEGs of the synthetic workload;
then their features' agreement with float32's (:func:`agreement`). Goal: bfloat16 at 1.8x the
float32 speed or more, cosine 0.9999 or more. With ONEDNN_MAX_CPU_ISA the report says it is an emulation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import numpy as np

from benchmarks import decoded_blocks, run_side, timed, write_json
from benchmarks.report import ISA_CAP, Section, goal, show
from benchmarks.workload import image_paths

DECODED = 64  # images decoded beforehand for the model-alone runs (cycled)
NAMES = {"float32": "float32 (the course: folded)", "float32-unfolded": "float32, batch norms not folded"}


def sides() -> list[str]:
    """What to compare on this CPU: float32 as the course runs it, float32 unfolded, and bfloat16 if native here.

    ``float32`` is ``helpers.features.extractor_function`` (batch norms folded into the
    convolutions); ``float32-unfolded`` the Keras model as ``build_extractor`` returns it, in a
    ``tf.function`` of its own (what folding saves); ``bfloat16`` the course's function through
    oneDNN's bfloat16 rewrite, where the CPU has ``avx512_bf16`` or ``amx_bf16``.
    """
    from helpers.system.precision import candidates, cpu_flags

    return ["float32", "float32-unfolded", *(p for p in candidates(cpu_flags(), []) if p != "float32")]


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
    """Run one side in this process: model alone and pipeline (CPU ms/image: all threads); features to ``features_file``."""
    os.environ.setdefault("CAPTION_CNN_WEIGHTS", "none")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from helpers import features
    from helpers.config import get_settings

    weights = get_settings().cnn_weights
    paths = image_paths(images, workload)
    forward = forward_for(side, weights)
    blocks = decoded_blocks(paths[:DECODED], batch_size)
    forward(blocks[0]).numpy()  # warm up: trace and optimise
    batches = [blocks[k % len(blocks)] for k in range(-(-images // batch_size))]
    model_wall, model_cpu = timed(lambda: [forward(batch).numpy() for batch in batches])
    rows: list[np.ndarray] = []

    def pipeline() -> None:
        """Decode, resize and extract every image, keeping the features."""
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


def auto_verdict() -> dict:
    """``CAPTION_PRECISION=auto``'s verdict here (measured now if not yet), with its one-line description as ``line``.

    Under ONEDNN_MAX_CPU_ISA it is measured afresh and not remembered: the record is the real CPU's.
    """
    os.environ.setdefault("CAPTION_CNN_WEIGHTS", "none")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from helpers.config import get_settings
    from helpers.features import precision_verdict
    from helpers.system.precision import cpu_flags, describe

    settings = get_settings()
    found = precision_verdict(settings.cnn_weights, None if os.environ.get(ISA_CAP) else settings.precision_record)
    flags = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile"})
    return {**found, "line": describe(found), "cpu_flags": flags}


def agreement(found: np.ndarray, expected: np.ndarray) -> dict:
    """How closely ``found`` matches ``expected`` (float32), row by row.

    The lowest cosine, the largest relative error ``|b - a| / |a|`` of a vector, the lowest
    cosine of the *centred* vectors (the float32 mean subtracted from both) and how often an
    image's centred vector is nearest to its own float32 one: random-weight vectors are nearly
    parallel (cosine about 0.99 between different images), so the plain cosine says little.
    """

    def unit(rows: np.ndarray) -> np.ndarray:
        """Each row scaled to length 1."""
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


def bench(images: int, workload: int, rounds: int = 1, batch_size: int = 32) -> dict:
    """auto's verdict, then every side ``rounds`` times, each run in its own process; their agreement with float32."""
    image_paths(images, workload)  # made before any timing
    auto = run_side("precision", "--verdict")
    runs: dict[str, list[dict]] = {side: [] for side in sides()}
    common = ["--images", images, "--workload", workload, "--batch-size", batch_size]
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(rounds):
            for side in runs:
                runs[side].append(run_side("precision", "--side", side, *common, "--features", f"{scratch}/{side}.npy"))
        vectors = {side: np.load(f"{scratch}/{side}.npy") for side in runs}
    fit = {side: agreement(found, vectors["float32"]) for side, found in vectors.items()}
    return {
        "images": images,
        "rounds": rounds,
        "runs": runs,
        "agreement": fit,
        "auto": auto,
        "isa_cap": os.environ.get(ISA_CAP),
    }


def median(runs: list[dict], key: str) -> float:
    """The median of ``key`` over a side's rounds."""
    return statistics.median(run[key] for run in runs)


def spread(runs: list[dict], key: str, digits: int = 1) -> str:
    """Median of ``key`` over a side's rounds, with their range when there are several: ``12.3 (11.9-12.8)``."""
    values = [run[key] for run in runs]
    middle = f"{statistics.median(values):.{digits}f}"
    return middle if len(values) == 1 else f"{middle} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def summary(r: dict) -> list[dict[str, str]]:
    """The goals of the 16-bit side measured here, if any: speed of the model alone, and agreement."""
    p = r["precision"]
    rows = []
    for side in (s for s in p["runs"] if s not in NAMES):
        f32, low = median(p["runs"]["float32"], "model_cpu_ms"), median(p["runs"][side], "model_cpu_ms")
        cosine = p["agreement"][side]["min_cosine"]
        stage = f"features, {side}" + (" (emulation)" if p["isa_cap"] else "")
        rows += [
            goal(
                stage,
                "CPU ms/image (model)",
                f"{f32:.1f} (float32)",
                f"{low:.1f}",
                f"{f32 / low:.1f}x",
                "≥ 1.8x",
                f32 / low >= 1.8,
            ),
            goal(stage, "lowest cosine to float32", "", f"{cosine:.6f}", "", "≥ 0.9999", cosine >= 0.9999),
        ]
    return rows


def section(r: dict) -> Section:
    """Every side's speed and agreement, the CPU's bfloat16 flags and auto's verdict."""
    p = r["precision"]
    runs, fit, auto = p["runs"], p["agreement"], p["auto"]
    flags = ", ".join(auto["cpu_flags"]) or "none (float32 only: no native bfloat16 to compare)"
    emulation = (
        f" **An emulation**: oneDNN held to `{p['isa_cap']}` by {ISA_CAP}, so the CPU computes as a lesser one "
        "would (its flags above are the real CPU's); auto's verdict measured afresh under that cap."
        if p["isa_cap"]
        else ""
    )
    base = median(runs["float32"], "model_cpu_ms")
    return Section(
        "Feature extraction in reduced precision (benchmarks/precision.py)" + (", an emulation" if emulation else ""),
        f"The first {p['images']} JPEGs of the workload, ResNet50 weights `{runs['float32'][0]['weights']}`; each "
        "side in its own process after a warm-up that traces and optimises it"
        + (f", {p['rounds']} rounds (median, and range)" if p["rounds"] > 1 else "")
        + ". The model alone runs on images decoded beforehand; the pipeline adds decoding. "
        f"The CPU's bfloat16 flags: {flags}; auto here: {auto['line']}.{emulation} "
        "Agreement over every image with the float32 features: the lowest cosine, the largest relative error of a "
        "vector, the lowest cosine of the centred vectors (the float32 mean over the images subtracted from both: "
        "what tells random-weight vectors apart), and how often an image's centred vector is nearest its own.",
        [
            {
                "side": NAMES.get(side, side),
                "model images/s": spread(x, "model_images_per_s"),
                "model CPU ms/image": spread(x, "model_cpu_ms"),
                "pipeline images/s": spread(x, "pipeline_images_per_s"),
                "pipeline CPU ms/image": spread(x, "pipeline_cpu_ms"),
                "model CPU vs float32": f"{base / median(x, 'model_cpu_ms'):.2f}x",
                "min cosine": f"{fit[side]['min_cosine']:.6f}",
                "max relative error": f"{fit[side]['max_relative_error']:.1e}",
                "min centred cosine": f"{fit[side]['min_centred_cosine']:.4f}",
                "nearest is itself": f"{fit[side]['nearest_is_itself']:.0%}",
            }
            for side, x in runs.items()
        ],
        f"Between different images (float32): cosine {fit['float32']['between_images_cosine']:.3f} (median, "
        f"consecutive images); centred cosine at most {fit['float32']['max_centred_cosine_between_images']:.3f}.",
    )


def main() -> None:
    """Run every side ``--rounds`` times, each in its own process (or ``--side``/``--verdict``: one, in this one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256, help="JPEGs to extract (and to compare features on)")
    parser.add_argument("--workload", type=int, help="size of the workload to read them from (default: --images)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="times every side runs, one after the other")
    parser.add_argument("--side", choices=("float32", "float32-unfolded", "bfloat16"), help="run this side only, here")
    parser.add_argument("--features", help="with --side: where to save its features (.npy)")
    parser.add_argument("--verdict", action="store_true", help="only auto's verdict on this machine, in this process")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    workload = args.workload or args.images
    if args.verdict:
        write_json(args.json, auto_verdict())
    elif args.side:
        write_json(args.json, measure(args.side, args.images, workload, args.batch_size, args.features))
    else:
        load = os.getloadavg()[0]
        result = bench(args.images, workload, args.rounds, args.batch_size)
        write_json(args.json, result)
        show(section({"precision": result}), summary({"precision": result}), load)


if __name__ == "__main__":
    main()
