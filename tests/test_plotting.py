"""Tests of helpers.plotting: the diagrams of lessons 03, 05, 06, 08 and 10 show the numbers they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from helpers.plotting import (  # noqa: E402
    beam_tree,
    channel_maps,
    data_parallel_step,
    lstm_unrolled,
    pairs_and_caption,
    prefix_and_sequence,
)


def texts(fig: plt.Figure) -> list[str]:
    titles = [ax.get_title(loc) for ax in fig.axes for loc in ("left", "center")]
    return [text.get_text() for ax in fig.axes for text in ax.texts] + titles


def test_prefix_and_sequence_draws_every_prefix_and_target():
    words = "startseq a red circle endseq".split()
    prefix_p, sequence_p = [0.5, 0.25, 0.125, 0.0625], [0.5, 0.25, 0.125, 0.0625]
    fig = prefix_and_sequence(words, prefix_p, sequence_p, max_len=10, padding_shown=2)
    shown = texts(fig)
    left, right = fig.axes
    assert [t for t in shown if t.endswith(": 0.500") or t.endswith(": 0.062")] == ["a: 0.500", "endseq: 0.062"]
    # 4 prefix rows of 4 + 2 cells: 1 + 2 + 3 + 4 real words, the rest padding
    cells = [t.get_text() for t in left.texts]
    assert cells.count("0") == 4 * 6 - (1 + 2 + 3 + 4) and cells.count("startseq") == 4
    assert cells.count("+4 more") == 4  # 10 - 6 padding ids not drawn
    assert [t.get_text() for t in right.texts].count("0.125") == 1
    assert "max_len = 10" in left.get_title()
    plt.close(fig)
    full = prefix_and_sequence(words, prefix_p, sequence_p, max_len=5)  # the longest caption: no padding beyond max_len
    cells = [t.get_text() for t in full.axes[0].texts]
    assert cells.count("0") == 4 * 5 - (1 + 2 + 3 + 4) and not any("more" in c for c in cells)
    plt.close(full)
    with pytest.raises(ValueError):
        prefix_and_sequence(words, prefix_p[:2], sequence_p, max_len=10)


def test_beam_tree_highlights_the_kept_beams():
    steps = [
        [{"parent": 0, "word": w, "logp": lp, "score": lp, "kept": True} for w, lp in (("a", -0.1), ("two", -2.0))],
        [
            {"parent": 0, "word": "dog", "logp": -0.5, "score": -0.6, "kept": True},
            {"parent": 0, "word": "cat", "logp": -3.0, "score": -3.1, "kept": False},
            {"parent": 1, "word": "dogs", "logp": -0.2, "score": -2.2, "kept": True},
            {"parent": 1, "word": "men", "logp": -4.0, "score": -6.0, "kept": False},
        ],
    ]
    fig = beam_tree(steps)
    (ax,) = fig.axes
    nodes = {t.get_text(): t for t in ax.texts if "\n" in t.get_text()}
    assert set(nodes) == {"a\n-0.10", "two\n-2.00", "dog\n-0.60", "cat\n-3.10", "dogs\n-2.20", "men\n-6.00"}
    bold = [name for name, t in nodes.items() if t.get_weight() == "bold"]
    assert bold == ["a\n-0.10", "two\n-2.00", "dog\n-0.60", "dogs\n-2.20"]
    assert len(ax.lines) == 6  # one edge per candidate
    edge_ends = sorted(round(line.get_ydata()[0], 3) for line in ax.lines[2:])
    assert len(set(edge_ends)) == 2  # the second step's edges start at the two kept beams
    plt.close(fig)


def test_data_parallel_step_shows_each_replica_and_the_sum():
    gradients = np.array([[0.1, -0.2, 0.3], [0.1, 0.2, -0.1]])
    fig = data_parallel_step(
        [3, 2],
        [0.61, 0.52],
        gradients,
        gradients.sum(0),
        ["x", "y", "z"],
        single_device=gradients.sum(0),
        caption_lengths=[3, 4, 5, 6, 7],
    )
    shown = texts(fig)
    assert any("replica 0: loss x 1/2 = 0.610" in t for t in shown) and any("0.520" in t for t in shown)
    assert "3 captions\n-> replica 0" in shown and "2 captions\n-> replica 1" in shown
    assert "one global batch: 5 captions" in shown
    batch = next(ax for ax in fig.axes if "global batch" in ax.get_title("left"))
    widths = [bar.get_width() for bars in batch.containers for bar in bars]
    assert widths == [3, 4, 5, 6, 7]  # one bar per caption, as long as it is
    total = next(ax for ax in fig.axes if "all-reduce" in ax.get_title())
    heights = [bar.get_height() for bar in total.containers[0]]
    assert heights == pytest.approx([0.2, 0.0, 0.2])
    plt.close(fig)
    with pytest.raises(ValueError):
        data_parallel_step([3, 2], [0.6, 0.5], gradients[:1], gradients.sum(0), ["x", "y", "z"])


def test_channel_maps_draws_the_photo_each_channel_and_every_feature(tmp_path):
    Image.new("RGB", (300, 200), "red").save(tmp_path / "photo.jpg")
    maps = np.random.default_rng(0).random((7, 7, 16)).astype("float32")
    pooled = maps.mean(axis=(0, 1))
    fig = channel_maps(tmp_path / "photo.jpg", maps, pooled, [3, 9])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == [
        "the photo, 224x224",
        f"channel 3: average {pooled[3]:.2f}",
        f"channel 9: average {pooled[9]:.2f}",
    ]
    assert [len(ax.images) for ax in fig.axes[:3]] == [1, 2, 2]  # the photo, then the photo under a 7x7 map
    assert fig.axes[1].images[1].get_array().shape == (7, 7) and fig.axes[0].images[0].get_array().shape[:2] == (
        224,
        224,
    )
    bars = fig.axes[3]
    assert bars.get_title() == "The 16 features of this image"
    assert [bar.get_height() for bar in bars.containers[0]] == pytest.approx(pooled.tolist())
    assert [bar.get_height() for bar in bars.containers[1]] == pytest.approx(pooled[[3, 9]].tolist())
    plt.close(fig)


def test_lstm_unrolled_shows_a_step_per_word_and_the_masked_padding():
    fig = lstm_unrolled("startseq a red circle endseq".split(), padding=2)
    shown = texts(fig)
    assert shown.count("LSTM") == 5 and shown.count("masked:\nskipped") == 2
    assert [f"h{t}" in shown for t in range(6)] == [True] * 5 + [False]
    assert shown.count("<pad>") == 2 and shown.count("memory\ncarried on") == 2
    plt.close(fig)


def test_pairs_and_caption_pads_every_prefix_and_names_each_step():
    words = ["<pad>", "startseq", "a", "circle", "endseq"]
    ids = [1, 2, 3, 4]
    pairs = [(ids[:t], ids[t]) for t in range(1, len(ids))]
    fig = pairs_and_caption(pairs, words, max_len=6)
    left, right = fig.axes
    assert left.images[0].get_array().shape == (3, 6)  # one row per pair, max_len positions
    assert [t.get_text() for t in left.texts].count("0") == 3 * 6 - (1 + 2 + 3)
    assert [t.get_text() for t in right.texts] == [
        "step 0: reads 'startseq', predicts 'a'",
        "step 1: reads 'a', predicts 'circle'",
        "step 2: reads 'circle', predicts 'endseq'",
    ]
    assert left.get_title() == "classic: 3 pairs, one pass each, padded to max_len"
    plt.close(fig)
