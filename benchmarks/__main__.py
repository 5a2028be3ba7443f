"""``make bench``: every comparison, one process per side, into one report (benchmarks/RESULTS.md).

    python -m benchmarks                            # everything at Flickr8k size (about half an hour on 2 cores)
    python -m benchmarks --small                    # a quick check of the whole machinery (a few minutes)
    python -m benchmarks --only glove,decoding      # some stages only
    python -m benchmarks --course-epochs 10 --feature-images 1024

Stages, in this order, each a module of its own (``python -m benchmarks.<stage> --help``): features, precision,
training, decoding, glove, course, share, attention. The synthetic workload is made first, once; before each stage the run waits (a
minute at most) for the load of the one before to die down, and the report states the load around every stage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from benchmarks import attention, course, decoding, features, glove, precision, report, settle, share, training
from benchmarks.workload import FULL_IMAGES, WORK, make_workload

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PARTIAL = WORK / "RESULTS-partial.md"
#: Sizes at Flickr8k scale and for --small: (option, full, small, help).
SIZES = [
    ("workload", FULL_IMAGES, 200, "images of the synthetic workload (features, precision and course stages)"),
    ("feature_images", 512, 64, "images for the feature pipeline and the model alone"),
    ("feature_loop_images", 128, 16, "images for the per-image predict loop"),
    ("precision_images", 256, 32, "images for float32 vs bfloat16 (and their agreement)"),
    ("captions", 30_000, 2_000, "training captions of the training stage"),
    ("train_epochs", 1, 1, "epochs of the training stage"),
    ("decode_images", 1000, 100, "images for the batched decoders"),
    ("decode_loop_images", 20, 5, "images for the per-word predict loop"),
    ("course_epochs", 5, 1, "training epochs of the whole course"),
    ("share_photos", 256, 32, "test photos captioned by lesson 12's artifacts (after the course stage)"),
    ("glove_words", 400_000, 400_000, "words in the GloVe text file"),
]
#: Each stage's module (its ``summary`` and ``section`` turn the results into the report) and its run at these sizes.
STAGES: dict[str, tuple[ModuleType, Callable[[argparse.Namespace], dict]]] = {
    "features": (features, lambda o: features.bench(o.feature_images, o.feature_loop_images, o.workload)),
    "precision": (precision, lambda o: precision.bench(o.precision_images, o.workload)),
    "training": (training, lambda o: training.bench(o.captions, o.train_epochs)),
    "decoding": (decoding, lambda o: decoding.bench(o.decode_images, o.decode_loop_images)),
    "glove": (glove, lambda o: glove.bench(o.glove_words)),
    "course": (course, lambda o: course.bench(o.workload, o.course_epochs)),
    "share": (share, lambda o: share.bench(o.workload, o.share_photos)),
    "attention": (attention, lambda o: attention.bench(o.captions)),
}


def options() -> argparse.Namespace:
    """The command line: ``--only``, ``--small``, ``--output`` and every size (its default from ``--small``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help=f"comma-separated stages to run (default all: {','.join(STAGES)})")
    parser.add_argument("--small", action="store_true", help="small sizes: a quick check, not figures to quote")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"report file (default benchmarks/{RESULTS.name}; with --small or --only {PARTIAL}, "
        "so a check never overwrites the full report)",
    )
    for name, full, small, text in SIZES:
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, help=f"{text} (default {full}, {small} with --small)"
        )
    o = parser.parse_args()
    for name, full, small, _ in SIZES:
        if getattr(o, name) is None:
            setattr(o, name, small if o.small else full)
    o.stages = list(STAGES) if not o.only else [s.strip() for s in o.only.split(",")]
    unknown = set(o.stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(sorted(unknown))}: choose from {', '.join(STAGES)}")
    o.output = o.output or (PARTIAL if o.small or o.only else RESULTS)
    return o


def main() -> None:
    """Run the chosen stages in order, each after the load settles; write the report and print it."""
    o = options()
    if {"features", "precision", "course"} & set(o.stages):
        make_workload(o.workload)  # once, before any timing
    results, loads = {}, {}
    for stage, (_, run) in STAGES.items():
        if stage in o.stages:
            print(f"\n=== {stage}", flush=True)
            settle()
            before, began = os.getloadavg()[0], time.perf_counter()
            results[stage] = run(o)
            loads[stage] = (before, os.getloadavg()[0])
            print(f"=== {stage} done in {time.perf_counter() - began:.0f} s", flush=True)
    ran = [(module, loads[stage]) for stage, (module, _) in STAGES.items() if stage in results]
    goals = [row for module, _ in ran for row in module.summary(results)]
    sections = [(module.section(results), load) for module, load in ran]
    text = report.markdown(" ".join(["python -m benchmarks", *sys.argv[1:]]), o.small, goals, sections)
    o.output.parent.mkdir(parents=True, exist_ok=True)
    o.output.write_text(text)
    print("\n" + text)
    print(f"Written to {o.output}")


if __name__ == "__main__":
    main()
