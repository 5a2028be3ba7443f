"""Tests of the benchmark machinery (benchmarks/): the synthetic workload and the report.

Benchmarks are not timed tests: nothing here asserts a speed. The workload is checked at
a tiny size on disk and at full size in memory (captions only, a few seconds); the report
is written by a real ``python -m benchmarks`` run of its quickest stage, in a scratch folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import workload
from helpers.datasets import FACTS, read_flickr_layout
from helpers.text import Vocabulary, clean_caption, wrap

ROOT = Path(__file__).resolve().parents[1]


def training_vocabulary(grouped: list[list[str]], splits: dict[str, list[int]]) -> Vocabulary:
    """The course's vocabulary (min_count 10) of a workload's training captions."""
    return Vocabulary.build(wrap(clean_caption(c)) for i in splits["train"] for c in grouped[i])


def test_tiny_workload_is_a_flickr8k_folder_the_course_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(workload, "WORK", tmp_path)
    root = workload.make_workload(20, processes=1)
    dataset = read_flickr_layout(root, root.name)

    files = sorted(dataset.images_dir.iterdir())
    assert len(files) == 20 and all(p.suffix == ".jpg" for p in files)
    with Image.open(files[0]) as image:
        assert image.format == "JPEG" and max(image.size) == 500 and min(image.size) >= 333
    assert 40_000 < np.mean([p.stat().st_size for p in files]) < 300_000  # photo-like, not flat colour
    assert {s: len(dataset.images(s)) for s in ("train", "dev", "test")} == {"train": 14, "dev": 2, "test": 2}
    assert len(dataset.captions) == 18 * 5  # the 2 images in no split are left out, as in Flickr8k
    assert (dataset.captions.groupby("image").size() == 5).all()
    assert dataset.captions["caption"].str.match(r"^[A-Z][a-z]*( [a-z]+)* \.$").all()

    stamp = (root / "VERSION").read_text()
    again = workload.make_workload(20, processes=1)  # made once: a second call changes nothing
    assert again == root and (root / "VERSION").read_text() == stamp
    assert sorted(dataset.images_dir.iterdir()) == files


def test_interrupted_workload_resumes_without_redrawing(tmp_path, monkeypatch):
    monkeypatch.setattr(workload, "WORK", tmp_path)
    root = workload.make_workload(6, processes=1)
    images = root / "Flicker8k_Dataset"
    kept = images / workload.image_name(0)
    before = kept.stat().st_mtime_ns
    (root / "VERSION").rename(root / "PLAN")  # as if stopped before the end
    (images / workload.image_name(5)).unlink()
    workload.make_workload(6, processes=1)
    assert kept.stat().st_mtime_ns == before and (images / workload.image_name(5)).exists()
    assert (root / "VERSION").exists() and not (root / "PLAN").exists()


@pytest.mark.parametrize("images", [20, 300])
def test_small_workload_captions(images):
    grouped, splits = workload.make_captions(images)
    assert len(grouped) == images and all(len(group) == 5 for group in grouped)
    words = [len(clean_caption(c).split()) for group in grouped for c in group]
    assert min(words) >= 1 and max(words) <= FACTS["max_len"] - 2
    assert 9 < np.mean(words) < 13
    vocab = training_vocabulary(grouped, splits)
    assert 3 < len(vocab) <= FACTS["vocab_ids"] and vocab.max_len == FACTS["max_len"]


def test_full_size_captions_are_flickr8k_like():
    grouped, splits = workload.make_captions(workload.FULL_IMAGES)
    assert sum(map(len, grouped)) == 40_455
    assert {s: len(images) for s, images in splits.items()} == {"train": 6000, "dev": 1000, "test": 1000}
    vocab = training_vocabulary(grouped, splits)
    assert (len(vocab), vocab.max_len) == (1653, 34) == (FACTS["vocab_ids"], FACTS["max_len"])  # Flickr8k's, measured
    words = np.array([len(clean_caption(c).split()) for group in grouped for c in group])
    assert 10.5 < words.mean() < 11.5 and 3 < words.std() < 4.5 and words.max() == FACTS["max_len"] - 2
    assert workload.make_captions(workload.FULL_IMAGES)[0][:50] == grouped[:50]  # seeded: the same every time


def test_bench_writes_a_report(tmp_path):
    out = tmp_path / "RESULTS.md"
    env = {**os.environ, "BENCHMARKS_WORK": str(tmp_path / "work")}
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--small",
        "--only",
        "glove",
        "--glove-words",
        "20000",
        "--output",
        str(out),
    ]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    report = out.read_text()
    assert "## Machine" in report and "TensorFlow / Keras" in report and "SMALL" in report
    row = next(line for line in report.splitlines() if line.startswith("| GloVe to embedding matrix |"))
    classic, course, ratio = (cell.strip() for cell in row.split("|")[3:6])
    assert float(classic) > 0 and float(course) > 0 and ratio.endswith("x")
    assert "| text file, `load_glove(path)` | 20000 |" in report
    assert "| package, `load_glove()` | 400000 |" in report
    assert (tmp_path / "work" / "glove.6B.50d-first20000.txt").exists()


def test_unknown_stage_is_refused():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "glove,speed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "unknown stage(s) speed" in done.stderr


def test_the_attention_and_share_stages_report_what_they_measured():
    """Invented figures through the two newest stages' summary and section, into the report's markdown."""
    from benchmarks import attention, report, share

    results = {
        "attention": {side: {"captions": 30000, "batches": 470, "seconds": s, "parameters": p}
                      for side, s, p in (("merge", 30.0, 1_420_367), ("attention", 120.0, 1_945_679))},
        "share": {"photos": 256, "sides": {
            side: {"ms": ms, "cpu_ms": 2 * ms, "mb": mb, "same": same, "distinct": 200, "bleu4": 0.2, "cider": 0.5}
            for side, ms, mb, same in zip(share.SIDES, (40, 39, 33, 85), (None, 98.1, 24.8, 48.8), (1, 1, 0.8, 0.99))}},
    }  # fmt: skip
    goals = attention.summary(results) + share.summary(results)
    text = report.markdown(
        "python -m benchmarks", False, goals, [(m.section(results), (0.1, 0.2)) for m in (attention, share)]
    )
    assert "| attention | s per epoch | 30 | 120 | 4.0x | — | — |" in text
    assert "| attention | parameters | 1,420,367 | 1,945,679 | 1.37x | — | — |" in text
    assert "| share, int8 | MB on disk | 98 (SavedModel) | 24.8 | 4.0x | — | — |" in text
    assert "| LiteRT int8 | 24.8 | 33.0 | 66.0 | 80.0% | 200 | 0.200 | 0.500 |" in text
    assert "| Python path (float32) | — | 40.0 |" in text
