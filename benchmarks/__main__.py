"""``make bench``: every comparison, one process per side, into one report (benchmarks/RESULTS.md).

    python -m benchmarks                            # everything at Flickr8k size (about half an hour on 2 cores)
    python -m benchmarks --small                    # a quick check of the whole machinery (a few minutes)
    python -m benchmarks --only glove,decoding      # some stages only
    python -m benchmarks --course-epochs 10 --feature-images 1024

Stages (each a script of its own, ``python -m benchmarks.<stage> --help``):

* ``features``: images/s of the per-image ``predict`` loop, of ``extract_features`` and of the
  model alone on decoded images (benchmarks/features.py);
* ``training``: pairs/s and peak memory of the classic pair generator vs the fast path
  (benchmarks/training.py);
* ``decoding``: ms per caption of the per-word ``predict`` loop vs batched greedy and beam-3
  (benchmarks/decoding.py);
* ``glove``: seconds to a GloVe embedding matrix, from the text file vs the package
  (benchmarks/glove.py);
* ``course``: the whole course on the Flickr8k-sized workload, in minutes (benchmarks/course.py).

The synthetic workload (benchmarks/workload.py) is made first, once, before any timing.
Each side of each comparison runs in a fresh interpreter, one after the other, so
memory, thread pools and compiled functions are its own. Before each stage the run waits
(a minute at most) for the load of the stage before it to die down; the report states the
load average around every stage: on a busy machine the wall clock says little.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

from benchmarks import run_side
from benchmarks.decoding import MAX_LEN, VOCAB_SIZE
from benchmarks.workload import FULL_IMAGES, WORK, make_workload

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PARTIAL = WORK / "RESULTS-partial.md"
STAGES = ("features", "precision", "training", "decoding", "glove", "course")
#: Sizes at Flickr8k scale and for --small: (option, full, small, help).
SIZES = [
    ("workload", FULL_IMAGES, 200, "images of the synthetic workload (features and course stages)"),
    ("feature_images", 512, 64, "images for the feature pipeline and the model alone"),
    ("feature_loop_images", 128, 16, "images for the per-image predict loop"),
    ("precision_images", 256, 32, "images for float32 vs the chosen precision (and their agreement)"),
    ("captions", 30_000, 2_000, "training captions of the training stage"),
    ("train_epochs", 1, 1, "epochs of the training stage"),
    ("decode_images", 1000, 100, "images for the batched decoders"),
    ("decode_loop_images", 20, 5, "images for the per-word predict loop"),
    ("course_epochs", 5, 1, "training epochs of the whole course"),
    ("glove_words", 400_000, 400_000, "words in the GloVe text file"),
]
LOOP = "per-word `model.predict` loop (seed style)"


def machine() -> dict[str, str]:
    """CPU model, cores, memory, versions and date of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        ram = "unknown"
    from importlib.metadata import PackageNotFoundError, version

    def installed(*names: str) -> str:
        for name in names:
            try:
                return version(name)
            except PackageNotFoundError:
                continue
        return "not installed"

    return {
        "CPU": f"{cpu}, {os.cpu_count()} logical CPU(s)",
        "memory": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "TensorFlow / Keras": f"{installed('tensorflow', 'tensorflow-cpu')} / {installed('keras')}",
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
    }


def stage_features(o) -> dict:
    """Loop, pipeline and model alone, each in its own process."""
    common = ["--workload", o.workload]
    return {
        m: run_side(
            "features", "--method", m, "--images", o.feature_loop_images if m == "loop" else o.feature_images, *common
        )
        for m in ("loop", "pipeline", "model")
    }


#: oneDNN held to AVX-512 with bfloat16 instructions but without AMX: a CPU like Cooper Lake or AMD Zen 4.
WITHOUT_AMX = "AVX512_CORE_BF16"


def stage_precision(o) -> dict:
    """Feature extraction in float32 and in the precision auto picks here, each in its own process (benchmarks/precision.py).

    On a CPU with AMX, once more with oneDNN held to :data:`WITHOUT_AMX`: what bfloat16 would do without AMX.
    """
    args = ["--images", o.precision_images, "--workload", o.workload, "--rounds", 1]
    result = run_side("precision", *args)
    if "amx_bf16" in result.get("cpu_flags", []):
        settle()
        held = run_side("precision", *args, "--precision", "bfloat16", env={"ONEDNN_MAX_CPU_ISA": WITHOUT_AMX})
        result["without_amx"] = held
    return result


def stage_training(o) -> dict:
    """Classic generator and fast path, each in its own process."""
    args = ["--captions", o.captions, "--epochs", o.train_epochs]
    return {path: run_side("training", "--only", path, *args)[path] for path in ("classic", "fast")}


def stage_decoding(o) -> dict:
    """The per-word loop in one process, the course's decoders in another."""
    args = ["--images", o.decode_images, "--loop-images", o.decode_loop_images]
    return {**run_side("decoding", "--only", "loop", *args), **run_side("decoding", "--only", "course", *args)}


def stage_glove(o) -> dict:
    """Text file and package, each in its own process (the text file is written first, once)."""
    from benchmarks import glove

    glove.prepare(o.glove_words)
    return {source: run_side("glove", "--source", source, "--words", o.glove_words) for source in ("text", "package")}


def stage_course(o) -> dict:
    """The whole course in one process, as CAPTION_PRECISION=auto runs it; then again in float32 throughout."""
    auto = run_side("course", "--workload", o.workload, "--epochs", o.course_epochs)
    settle()
    float32 = run_side(
        "course", "--workload", o.workload, "--epochs", o.course_epochs, env={"CAPTION_PRECISION": "float32"}
    )
    return {**auto, "float32": float32}


RUNNERS = {
    "features": stage_features,
    "precision": stage_precision,
    "training": stage_training,
    "decoding": stage_decoding,
    "glove": stage_glove,
    "course": stage_course,
}


def verdict(met: bool | None) -> str:
    """How a goal reads in the summary."""
    return "—" if met is None else ("**met**" if met else "**not met**")


def summary_rows(r: dict) -> list[tuple]:
    """(stage, measure, classic, course, ratio, goal, met) rows of the stages that ran."""
    rows = []
    if "features" in r:
        loop, pipe, model = (r["features"][m]["images_per_s"] for m in ("loop", "pipeline", "model"))
        rows.append(
            (
                "feature extraction",
                "images/s",
                f"{loop:.1f}",
                f"{pipe:.1f}",
                f"{pipe / loop:.1f}x",
                "≥ 3x",
                verdict(pipe / loop >= 3),
            )
        )
        rows.append(
            (
                "feature extraction",
                "share of the model-only ceiling",
                "",
                f"{pipe:.1f} of {model:.1f}",
                f"{pipe / model:.0%}",
                "≥ 90 %",
                verdict(pipe / model >= 0.9),
            )
        )
    if "precision" in r and len(r["precision"]["runs"]) > 2:
        runs, fit = r["precision"]["runs"], r["precision"]["agreement"]
        reduced = next(side for side in runs if side not in ("float32", "float32-unfolded"))
        f32, low = runs["float32"][0]["model_cpu_ms"], runs[reduced][0]["model_cpu_ms"]
        rows.append(
            (
                "features, " + reduced,
                "CPU ms/image (model)",
                f"{f32:.1f} (float32)",
                f"{low:.1f}",
                f"{f32 / low:.1f}x",
                "≥ 1.8x",
                verdict(f32 / low >= 1.8),
            )
        )
        rows.append(
            (
                "features, " + reduced,
                "lowest cosine to float32",
                "",
                f"{fit[reduced]['min_cosine']:.6f}",
                "",
                "≥ 0.9999",
                verdict(fit[reduced]["min_cosine"] >= 0.9999),
            )
        )
    if "training" in r:
        classic, fast = r["training"]["classic"], r["training"]["fast"]
        ratio = fast["pairs_per_s"] / classic["pairs_per_s"]
        rows.append(
            (
                "training",
                "pairs/s",
                f"{classic['pairs_per_s']:.0f}",
                f"{fast['pairs_per_s']:.0f}",
                f"{ratio:.1f}x",
                "≥ 10x",
                verdict(ratio >= 10),
            )
        )
        rows.append(
            (
                "training",
                "pairs per CPU-second",
                f"{classic['pairs_per_cpu_s']:.0f}",
                f"{fast['pairs_per_cpu_s']:.0f}",
                f"{fast['pairs_per_cpu_s'] / classic['pairs_per_cpu_s']:.1f}x",
                "—",
                "—",
            )
        )
        rows.append(
            (
                "training",
                "peak RSS (MB)",
                f"{classic['peak_rss_mb']:.0f}",
                f"{fast['peak_rss_mb']:.0f}",
                f"{fast['peak_rss_mb'] / classic['peak_rss_mb']:.2f}x",
                "course < 2048 MB",
                verdict(fast["peak_rss_mb"] < 2048),
            )
        )
    if "decoding" in r:
        loop = r["decoding"][LOOP]["ms_per_caption"]
        for name, label, goal in (("batched greedy", "greedy", 100), ("batched beam search, k=3", "beam-3", 20)):
            ms = r["decoding"][name]["ms_per_caption"]
            rows.append(
                (
                    f"decoding, {label}",
                    "ms/caption",
                    f"{loop:.1f}",
                    f"{ms:.2f}",
                    f"{loop / ms:.0f}x",
                    f"≥ {goal}x",
                    verdict(loop / ms >= goal),
                )
            )
    if "glove" in r:
        text, package = r["glove"]["text"]["seconds"], r["glove"]["package"]["seconds"]
        rows.append(
            (
                "GloVe to embedding matrix",
                "seconds",
                f"{text:.2f}",
                f"{package:.2f}",
                f"{text / package:.0f}x",
                "—",
                verdict(None),
            )
        )
    if "course" in r:
        course = r["course"]
        measured = sum(course["seconds"][s] for s in ("dataset", "features", "text", "training", "greedy")) / 60
        classic = classic_course_minutes(r)
        rows.append(
            (
                f"whole course ({course['epochs']} epochs)",
                "minutes",
                "—" if classic is None else f"≈ {classic:.1f} (estimate)",
                f"{measured:.1f}",
                "—" if classic is None else f"{classic / measured:.1f}x",
                "—",
                verdict(None),
            )
        )
    return rows


def classic_course_minutes(r: dict) -> float | None:
    """The whole course the classic way, estimated from the classic rates measured in this run.

    The course's own dataset, text and GloVe steps, plus: every image through the per-image loop,
    every epoch's pairs at the classic generator's pairs/s, the test images through the
    per-word loop. None unless the features, training and decoding stages ran too.
    """
    if not {"features", "training", "decoding", "course"} <= r.keys():
        return None
    course = r["course"]
    seconds = course["seconds"]["dataset"] + course["seconds"]["text"]
    seconds += course["images"] / r["features"]["loop"]["images_per_s"]
    seconds += course["epochs"] * course["pairs_per_epoch"] / r["training"]["classic"]["pairs_per_s"]
    seconds += course["test_images"] * r["decoding"][LOOP]["ms_per_caption"] / 1000
    return seconds / 60


def table(header: list[str], rows: list) -> list[str]:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    right = ["---" if i == 0 else "---:" for i in range(len(header))]
    return [
        f"| {' | '.join(header)} |",
        f"| {' | '.join(right)} |",
        *(f"| {' | '.join(map(str, row))} |" for row in rows),
    ]


def settle(quiet: float = 0.5, longest: float = 60) -> None:
    """Wait until the 1-minute load average per CPU falls below ``quiet``, ``longest`` seconds at most."""
    end = time.monotonic() + longest
    while os.getloadavg()[0] > quiet * (os.cpu_count() or 1) and time.monotonic() < end:
        time.sleep(5)


def details(r: dict, o, loads: dict) -> list[str]:
    """One section per stage with every figure and what was measured."""
    out = []

    def section(stage: str, title: str, text: str) -> None:
        before, after = loads[stage]
        out.extend(
            [
                "",
                f"### {title}",
                "",
                text,
                "",
                f"Load average (1 min) {before:.1f} before, {after:.1f} after, on {os.cpu_count()} CPU(s)."
                + (
                    " **The machine was busy: wall-clock figures are unreliable.**"
                    if before > (os.cpu_count() or 1)
                    else ""
                ),
                "",
            ]
        )

    if "features" in r:
        f = r["features"]
        section(
            "features",
            "Feature extraction (benchmarks/features.py)",
            f"The first {o.feature_images} JPEGs of the synthetic workload ({o.feature_loop_images} for the slow loop), "
            f"ResNet50 weights `{f['model']['weights']}`; each method in its own process after a warm-up. "
            "CPU ms/image counts every thread of the process: steadier than the wall clock on a busy machine.",
        )
        out += table(
            ["method", "images", "seconds", "images/s", "CPU ms/image", "peak RSS (MB)"],
            [
                (
                    x["name"],
                    x["images"],
                    f"{x['seconds']:.1f}",
                    f"{x['images_per_s']:.1f}",
                    f"{x['cpu_ms_per_image']:.0f}",
                    f"{x['peak_rss_mb']:.0f}",
                )
                for x in f.values()
            ],
        )
        pipe_cpu, model_cpu = f["pipeline"]["cpu_ms_per_image"], f["model"]["cpu_ms_per_image"]
        out += [
            "",
            f"By CPU time the pipeline costs {pipe_cpu / model_cpu - 1:+.0%} over the model alone (JPEG decoding and "
            f"resizing): when both keep every core busy, the pipeline reaches about {model_cpu / pipe_cpu:.0%} of the "
            f"model-only speed. The model is the course's `extractor_function`, in {f['pipeline'].get('precision', 'float32')} "
            "(what `CAPTION_PRECISION=auto` picks here); the per-image loop runs the model as `build_extractor` returns it, "
            "in float32.",
        ]
        if f["pipeline"].get("precision", "float32") != "float32" and "precision" in r:
            f32 = r["precision"]["runs"]["float32"][0]
            out[-1] += (
                " The 90 % goal was set when the model ran in float32 and took most of the CPU time; in 16-bit arithmetic "
                f"the model needs only {model_cpu:.0f} CPU ms per image and decoding a Flickr-size JPEG costs about "
                f"{pipe_cpu - model_cpu:.0f}, so on {os.cpu_count()} cores decoding can no longer hide behind the model. "
                f"In float32 the pipeline reaches {f32['pipeline_images_per_s'] / f32['model_images_per_s']:.0%} of the "
                "model alone (the reduced-precision section below)."
            )
    if "precision" in r:
        from benchmarks.precision import side_name

        runs, fit = r["precision"]["runs"], r["precision"]["agreement"]
        section(
            "precision",
            "Feature extraction in reduced precision (benchmarks/precision.py)",
            f"The first {o.precision_images} JPEGs of the workload; each side in its own process after a warm-up that "
            "traces and optimises it. The model alone runs on images decoded beforehand; the pipeline adds decoding. "
            f"The CPU's bfloat16 flags: {', '.join(r['precision'].get('cpu_flags') or ['none'])}; auto here: "
            f"{r['precision'].get('auto', '?')}. Agreement over every image with the float32 features: the lowest "
            "cosine, the largest relative error of a vector, the lowest cosine of the centred vectors (the float32 "
            "mean over the images subtracted from both: what tells random-weight vectors apart).",
        )
        out += table(
            [
                "side",
                "model images/s",
                "model CPU ms/image",
                "pipeline images/s",
                "pipeline CPU ms/image",
                "min cosine",
                "max relative error",
                "min centred cosine",
            ],
            [
                (
                    side_name(side),
                    f"{x[0]['model_images_per_s']:.1f}",
                    f"{x[0]['model_cpu_ms']:.1f}",
                    f"{x[0]['pipeline_images_per_s']:.1f}",
                    f"{x[0]['pipeline_cpu_ms']:.1f}",
                    f"{fit[side]['min_cosine']:.6f}",
                    f"{fit[side]['max_relative_error']:.1e}",
                    f"{fit[side]['min_centred_cosine']:.4f}",
                )
                for side, x in runs.items()
            ],
        )
        if "without_amx" in r["precision"]:
            held = r["precision"]["without_amx"]["runs"]
            f32, b16 = held["float32"][0]["model_cpu_ms"], held["bfloat16"][0]["model_cpu_ms"]
            out += [
                "",
                f"With oneDNN held to `{WITHOUT_AMX}` (`ONEDNN_MAX_CPU_ISA`: AVX-512 with bfloat16 instructions, "
                f"no AMX, like a Cooper Lake or AMD Zen 4 CPU), the model alone: float32 {f32:.1f} CPU ms/image, bfloat16 "
                f"{b16:.1f} ({f32 / b16:.2f}x). That is why `auto` picks bfloat16 only where the CPU has `amx_bf16`.",
            ]
    if "training" in r:
        t = r["training"]
        section(
            "training",
            "Training (benchmarks/training.py)",
            f"{o.captions} synthetic training captions, vocabulary {VOCAB_SIZE}, max_len {MAX_LEN}, {o.train_epochs} epoch(s); classic: "
            "`CaptionPairs` with one-hot targets (3 images per batch) into the prefix model; course: `caption_dataset` "
            "(whole captions, length buckets, 64 per batch) into the sequence model. Each in its own process.",
        )
        out += table(
            [
                "path",
                "pairs seen",
                "seconds",
                "pairs/s",
                "pairs/CPU-s",
                "cores busy",
                "peak RSS (MB)",
                "train loss",
                "held-out loss/word",
            ],
            [
                (
                    x["path"],
                    x["pairs"],
                    f"{x['seconds']:.1f}",
                    f"{x['pairs_per_s']:.0f}",
                    f"{x['pairs_per_cpu_s']:.0f}",
                    f"{x['pairs_per_s'] / x['pairs_per_cpu_s']:.1f}",
                    f"{x['peak_rss_mb']:.0f}",
                    f"{x['train_loss']:.3f}",
                    f"{x['dev_loss']:.3f}",
                )
                for x in t.values()
            ],
        )
        classic, fast = t["classic"], t["fast"]
        out += [
            "",
            "Cores busy = CPU-seconds / wall-clock seconds. Pairs per CPU-second compare the work itself, "
            "whatever share of the machine each process got: "
            f"{fast['pairs_per_cpu_s'] / classic['pairs_per_cpu_s']:.1f}x. Held-out loss after the same pairs: fast "
            f"{fast['dev_loss'] / classic['dev_loss'] - 1:+.1%} relative to classic (fewer, larger optimizer steps: "
            "one per 64 captions instead of one per 3 images, 15 captions).",
        ]
    if "decoding" in r:
        d = r["decoding"]
        loop_texts = d[LOOP]["texts"]
        same = sum(a == b for a, b in zip(loop_texts, d["batched greedy"]["texts"]))
        section(
            "decoding",
            "Decoding (benchmarks/decoding.py)",
            f"An untrained captioner (vocabulary {VOCAB_SIZE}, prefix width {MAX_LEN}) that writes exactly 12 words per caption; "
            f"random image features. The loop on {o.decode_loop_images} images in one process, the course's decoders on "
            f"{o.decode_images} in another. The loop and batched greedy wrote the same caption for {same} of "
            f"{len(loop_texts)} images.",
        )
        out += table(
            ["method", "captions", "seconds", "ms/caption", "vs loop"],
            [
                (
                    name,
                    x["captions"],
                    f"{x['seconds']:.2f}",
                    f"{x['ms_per_caption']:.2f}",
                    f"{d[LOOP]['ms_per_caption'] / x['ms_per_caption']:.0f}x",
                )
                for name, x in d.items()
            ],
        )
    if "glove" in r:
        g = r["glove"]
        section(
            "glove",
            "GloVe (benchmarks/glove.py)",
            f"From the call to `load_glove` until the embedding matrix of a {VOCAB_SIZE:,}-id vocabulary is built, each source "
            "in its own process, both files in the page cache. The text file is the package's vectors written in "
            "the Stanford format: "
            + (
                "all 400,000 words, the same 171 MB as the download."
                if o.glove_words >= 400_000
                else f"only the first {o.glove_words:,} words (a quick check)."
            ),
        )
        out += table(
            ["source", "words", "load_glove s", "embedding matrix s", "total s", "peak RSS (MB)"],
            [
                (
                    x["name"],
                    x["words"],
                    f"{x['load_s']:.2f}",
                    f"{x['matrix_s']:.2f}",
                    f"{x['seconds']:.2f}",
                    f"{x['peak_rss_mb']:.0f}",
                )
                for x in g.values()
            ],
        )
    if "course" in r:
        from benchmarks.course import STEPS

        c = r["course"]
        section(
            "course",
            "The whole course (benchmarks/course.py)",
            f"The course's helpers on the synthetic workload of {c['images']} images ({c['train_captions']} training "
            f"captions, {c['pairs_per_epoch']} pairs per epoch, vocabulary {c['vocab']}, max_len {c['max_len']}, "
            f"ResNet50 weights `{c['weights']}`), from nothing cached, in one process; peak RSS {c['peak_rss_mb']:.0f} MB. "
            f"Seconds per epoch (dev loss and checkpoint included): {', '.join(f'{s:.0f}' for s in c['epoch_s'])}. "
            f"At that pace the recipe's 20 epochs (early stopping usually ends sooner) take about "
            f"{20 * sum(c['epoch_s']) / len(c['epoch_s']) / 60:.0f} min of training. "
            "The summary's course figure is features + training + greedy test captions (with the text and GloVe steps); "
            "the classic estimate replaces those three by the classic rates measured above.",
        )
        rows = [
            (name, f"{c['seconds'][step]:.1f}", f"{c['float32']['seconds'][step]:.1f}") for step, name in STEPS.items()
        ]
        totals = [f"**{x['total_s']:.1f}** ({x['total_s'] / 60:.1f} min)" for x in (c, c["float32"])]
        out += table(["step", "seconds (CAPTION_PRECISION=auto)", "seconds (float32)"], rows + [("**total**", *totals)])
    return out


def report(results: dict, o, loads: dict, command: str) -> str:
    """The whole markdown report."""
    lines = [
        "# Speed and memory: the course vs the classic approach",
        "",
        f"Written by `{command}` ({'SMALL sizes: a check of the machinery, not figures to quote' if o.small else 'Flickr8k sizes'}). "
        "Every side of every comparison ran in its own process, one after the other, on this machine. "
        "Benchmarks are not tests: these are measurements, goals from issue 8, met or not.",
        "",
        "## Machine",
        "",
    ]
    lines += table(["item", "value"], list(machine().items()))
    lines += ["", "## Summary", ""]
    lines += table(["stage", "measure", "classic", "course", "ratio", "goal", "met?"], summary_rows(results))
    lines += ["", "## Details"] + details(results, o, loads)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help=f"comma-separated stages to run (default all: {','.join(STAGES)})")
    parser.add_argument("--small", action="store_true", help="small sizes: a quick check, not figures to quote")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"report file (default benchmarks/{RESULTS.name}; with --small or "
        f"--only {PARTIAL}, so a check never overwrites the full report)",
    )
    for name, full, small, text in SIZES:
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, help=f"{text} (default {full}, {small} with --small)"
        )
    o = parser.parse_args()
    for name, full, small, _ in SIZES:
        if getattr(o, name) is None:
            setattr(o, name, small if o.small else full)
    stages = STAGES if not o.only else tuple(s.strip() for s in o.only.split(","))
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(sorted(unknown))}: choose from {', '.join(STAGES)}")

    if {"features", "course"} & set(stages):
        make_workload(o.workload)  # once, before any timing
    command = " ".join(["python -m benchmarks", *sys.argv[1:]])
    results, loads = {}, {}
    for stage in STAGES:
        if stage in stages:
            print(f"\n=== {stage}", flush=True)
            settle()
            before, began = os.getloadavg()[0], time.perf_counter()
            results[stage] = RUNNERS[stage](o)
            loads[stage] = (before, os.getloadavg()[0])
            print(f"=== {stage} done in {time.perf_counter() - began:.0f} s", flush=True)
    text = report(results, o, loads, command)
    o.output = o.output or (PARTIAL if o.small or o.only else RESULTS)
    o.output.parent.mkdir(parents=True, exist_ok=True)
    o.output.write_text(text)
    print("\n" + text)
    print(f"Written to {o.output}")


if __name__ == "__main__":
    main()
