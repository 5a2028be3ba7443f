"""Figures the lessons share: image grids with captions (lesson 01), and diagrams drawn from a run's own
numbers (lesson 06's prefix and sequence models, lesson 08's beam search tree, lesson 10's data-parallel step)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import ConnectionPatch

from helpers.data.images import open_rgb


def image_grid(
    paths: Sequence[str | Path],
    captions: Sequence[str | Sequence[str]] | None = None,
    ncols: int = 3,
    width: float = 4.0,
    wrap: int = 42,
) -> plt.Figure:
    """Show images in a grid, each with one caption or a list of captions underneath.

    Lines are wrapped at ``wrap`` characters so long Flickr8k captions stay readable; each
    row of images gets as much room for text as its longest caption block needs. Images are
    shown upright (EXIF orientation applied) and in RGB, whatever their mode.
    """
    blocks = [[c] if isinstance(c, str) else list(c) for c in captions] if captions is not None else [[] for _ in paths]
    texts = ["\n".join("\n".join(textwrap.wrap(c, wrap)) for c in caps) for caps in blocks]
    nrows = -(-len(paths) // ncols)
    line_height = 0.17  # inches per text line at fontsize 9
    text_heights = [
        max([t.count("\n") + 1 if t else 0 for t in texts[r * ncols : (r + 1) * ncols]]) * line_height + 0.1
        for r in range(nrows)
    ]
    image_height = width * 0.92
    ratios = [h for th in text_heights for h in (image_height, th)]
    fig, axes = plt.subplots(
        2 * nrows, ncols, figsize=(width * ncols, sum(ratios)), squeeze=False, gridspec_kw={"height_ratios": ratios}
    )
    for ax in axes.flat:
        ax.axis("off")
    for k, (path, text) in enumerate(zip(paths, texts)):
        image_ax, text_ax = axes[2 * (k // ncols), k % ncols], axes[2 * (k // ncols) + 1, k % ncols]
        image_ax.imshow(open_rgb(path))  # upright, RGB
        image_ax.set_title(Path(path).name, fontsize=8, color="gray")
        text_ax.text(0, 1, text, va="top", ha="left", fontsize=9, transform=text_ax.transAxes)
    fig.tight_layout(h_pad=0.2)
    return fig


def _cell(
    ax, x: float, y: float, text: str, face: str, *, width: float = 1.0, size: float = 8, weight: str = "normal"
) -> None:
    """One labelled box of a word-cell diagram, its lower left corner at (x, y)."""
    ax.add_patch(
        plt.Rectangle((x + 0.04, y + 0.08), width - 0.08, 0.84, facecolor=face, edgecolor="0.6", linewidth=0.6)
    )
    ax.text(x + width / 2, y + 0.5, text, ha="center", va="center", fontsize=size, weight=weight)


def prefix_and_sequence(
    words: Sequence[str],
    prefix_probabilities: Sequence[float],
    sequence_probabilities: Sequence[float],
    max_len: int,
    padding_shown: int = 2,
) -> plt.Figure:
    """What the prefix model and the sequence model see for one caption, side by side (lesson 06).

    ``words`` is the caption with ``startseq`` and ``endseq``; ``prefix_probabilities[t]``
    and ``sequence_probabilities[t]`` are the probabilities each model gives the true word
    ``words[t + 1]`` (printed after each row, and above each target). Left: one input row
    per prefix, right-padded with 0 to ``max_len`` ids (only ``padding_shown`` padding
    cells are drawn, the rest is counted), one prediction per row. Right: the whole caption as one input, a prediction at every position.
    """
    steps = len(words) - 1
    if steps < 1 or len(prefix_probabilities) != steps or len(sequence_probabilities) != steps:
        raise ValueError(f"need a caption of 2+ words and {steps} probabilities per model")
    shown = min(steps + padding_shown, max_len)  # cells drawn per row
    fig, (left, right) = plt.subplots(
        1,
        2,
        figsize=(0.62 * (shown + 3 + steps) + 1.5, 0.42 * steps + 1.6),
        gridspec_kw={"width_ratios": [shown + 3.4, steps + 1.3]},
    )
    for t in range(steps):
        y = steps - 1 - t
        for j in range(shown):
            real = j <= t
            _cell(left, j, y, words[j] if real else "0", "#cfe2f3" if real else "0.93", size=7)
        if max_len > shown:
            left.text(shown + 0.05, y + 0.5, f"+{max_len - shown} more", va="center", fontsize=7, color="0.45")
        left.annotate(
            "",
            xy=(shown + 1.45, y + 0.5),
            xytext=(shown + 1.05, y + 0.5),
            arrowprops={"arrowstyle": "->", "color": "0.4"},
        )
        left.text(
            shown + 1.5,
            y + 0.5,
            f"{words[t + 1]}: {prefix_probabilities[t]:.3f}",
            va="center",
            fontsize=8,
            color="#b45f06",
        )
    left.set(
        xlim=(0, shown + 3.4),
        ylim=(-0.2, steps + 0.1),
        title=f"Prefix model: {steps} inputs of max_len = {max_len} ids, one next word each",
    )
    for t in range(steps):
        _cell(right, t, 0, words[t], "#cfe2f3", size=7)
        right.annotate("", xy=(t + 0.5, 1.55), xytext=(t + 0.5, 0.95), arrowprops={"arrowstyle": "->", "color": "0.4"})
        _cell(right, t, 1.6, words[t + 1], "#fce5cd", size=7)
        right.text(
            t + 0.5,
            2.65,
            f"{sequence_probabilities[t]:.3f}",
            ha="center",
            fontsize=7,
            color="#b45f06",
            rotation=90,
            va="bottom",
        )
    right.text(-0.1, 0.5, "input", ha="right", va="center", fontsize=8)
    right.text(-0.1, 2.1, "targets", ha="right", va="center", fontsize=8)
    right.text(-0.1, 3.0, "p(target)", ha="right", va="center", fontsize=8, color="#b45f06")
    middle, half = 1.75, max(steps + 0.3, 4.0) / 2  # the same vertical scale as the left panel
    right.set(
        xlim=(-1.3, steps),
        ylim=(middle - half, middle + half),
        title="Sequence model: one input, a next word at every position",
    )
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    return fig


def beam_tree(steps: Sequence[Sequence[dict]], title: str = "Beam search, step by step") -> plt.Figure:
    """A beam search as a tree: every candidate of every step, the kept beams highlighted (lesson 08).

    ``steps[s]`` lists the candidates of step ``s + 1``, each a dict with ``parent`` (its
    beam's position among the beams kept at the step before; 0 at the first step),
    ``word``, ``logp`` (the word's log-probability: the edge label) and ``score`` (the
    caption's total log-probability so far: under the word) and ``kept`` (whether it is
    among the beams that go on). The root is ``startseq``.
    """
    if not steps:
        raise ValueError("no steps to draw")
    rows = max(len(candidates) for candidates in steps)
    fig, ax = plt.subplots(figsize=(2.3 * (len(steps) + 1) + 0.5, 0.55 * rows + 1.2))
    positions = [[((rows - 1) / 2, 0)]]  # (y, x) of the kept nodes of each step; the root first
    ax.text(
        0,
        (rows - 1) / 2,
        "startseq",
        ha="center",
        va="center",
        fontsize=9,
        weight="bold",
        bbox={"boxstyle": "round", "facecolor": "#d9ead3", "edgecolor": "#38761d"},
    )
    for s, candidates in enumerate(steps, start=1):
        kept = []
        offset = (rows - len(candidates)) / 2  # a short column is centred
        for row, cand in enumerate(candidates):
            y, on = rows - 1 - row - offset, bool(cand["kept"])
            parent_y, parent_x = positions[-1][cand["parent"]]
            color = "#38761d" if on else "0.7"
            ax.plot([parent_x + 0.2, s - 0.2], [parent_y, y], color=color, linewidth=1.8 if on else 0.7, zorder=1)
            ax.text(
                parent_x + 0.2 + 0.6 * (s - parent_x - 0.4),
                parent_y + 0.6 * (y - parent_y),
                f"{cand['logp']:.2f}",
                fontsize=6.5,
                color=color,
                ha="center",
                va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.2},
                zorder=2,
            )
            ax.text(
                s,
                y,
                f"{cand['word']}\n{cand['score']:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                weight="bold" if on else "normal",
                color="black" if on else "0.5",
                bbox={"boxstyle": "round", "facecolor": "#d9ead3" if on else "white", "edgecolor": color},
            )
            if on:
                kept.append((y, s))
        positions.append(kept)
    ax.set(xlim=(-0.5, len(steps) + 0.5), ylim=(-0.8, rows - 0.2), title=title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def data_parallel_step(
    replica_batches: Sequence[int],
    replica_losses: Sequence[float],
    replica_gradients: np.ndarray,
    reduced: np.ndarray,
    labels: Sequence[str],
    single_device: np.ndarray | None = None,
    caption_lengths: Sequence[int] | None = None,
) -> plt.Figure:
    """One training step of data parallelism: the global batch split, per-replica gradients, the all-reduce (lesson 10).

    ``replica_batches[i]`` captions go to replica i, whose (already scaled) loss is
    ``replica_losses[i]`` and whose gradient, for the components named by ``labels``, is
    ``replica_gradients[i]``. ``reduced`` is what the all-reduce (a sum) hands back to every
    replica; ``single_device``, if given, the gradient of the whole batch on one device;
    ``caption_lengths``, if given, how many words each caption of the batch has (the bar lengths).
    """
    replicas = len(replica_batches)
    gradients = np.asarray(replica_gradients, dtype="float64")
    if gradients.shape != (replicas, len(labels)) or np.shape(reduced) != (len(labels),):
        raise ValueError("one gradient row per replica and one value per label are needed")
    mosaic = [["batch", f"g{i}", "sum"] for i in range(replicas)]
    fig, axes = plt.subplot_mosaic(mosaic, figsize=(13, 1.9 * replicas + 0.8), width_ratios=[1.1, 2.2, 2.2])
    batch, total = axes["batch"], sum(replica_batches)
    lengths = np.ones(total) if caption_lengths is None else np.asarray(caption_lengths, dtype="float64")
    widest, start = lengths.max(), 0
    for i, size in enumerate(replica_batches):
        batch.barh(range(start, start + size), lengths[start : start + size], height=0.9, color=f"C{i}")
        batch.text(
            1.1 * widest, start + size / 2, f"{size} captions\n-> replica {i}", va="center", fontsize=8, color=f"C{i}"
        )
        batch.add_artist(
            ConnectionPatch(
                (2.05 * widest, start + size / 2),
                (-0.14, 0.5),
                "data",
                "axes fraction",
                axesA=batch,
                axesB=axes[f"g{i}"],
                arrowstyle="->",
                color="0.5",
            )
        )
        axes[f"g{i}"].add_artist(
            ConnectionPatch(
                (1.01, 0.5),
                (-0.13, 0.5),
                "axes fraction",
                "axes fraction",
                axesA=axes[f"g{i}"],
                axesB=axes["sum"],
                arrowstyle="->",
                color="0.5",
            )
        )
        start += size
    batch.set(ylim=(total, 0), xlim=(0, 2.1 * widest))
    batch.set_title(f"one global batch: {total} captions", fontsize=9, loc="left")
    batch.axis("off")
    x = np.arange(len(labels))
    top = 1.15 * max(np.abs(gradients).max(), np.abs(reduced).max(), 1e-12)
    for i in range(replicas):
        ax = axes[f"g{i}"]
        ax.bar(x, gradients[i], color=f"C{i}")
        ax.set_title(f"replica {i}: loss x 1/{replicas} = {replica_losses[i]:.3f}, its gradient", fontsize=9)
        ax.set(ylim=(-top, top), xticks=x if i == replicas - 1 else [])
        ax.axhline(0, color="0.5", linewidth=0.6)
    axes[f"g{replicas - 1}"].set_xticklabels(labels, rotation=60, fontsize=7)
    axes["sum"].bar(
        x, reduced, color="0.55", edgecolor="black", linewidth=0.8, label="the sum of the replicas' gradients"
    )
    if single_device is not None:
        axes["sum"].plot(x, single_device, "k_", markersize=14, markeredgewidth=2, label="whole batch, one device")
    axes["sum"].axhline(0, color="0.5", linewidth=0.6)
    axes["sum"].set(ylim=(-top, top), xticks=x)
    axes["sum"].set_title("all-reduce (sum): the gradient every replica applies", fontsize=9)
    axes["sum"].set_xticklabels(labels, rotation=60, fontsize=7)
    axes["sum"].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
