"""Figures the lessons share (lessons 00-11): image grids with captions, and diagrams drawn from a run's own numbers:
lesson 03's feature maps, lesson 05's unrolled LSTM and its pairs beside one caption, lesson 06's prefix and sequence
models, lesson 08's beam search tree, lesson 10's data-parallel step."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import ConnectionPatch

from helpers.data.images import open_rgb

ARROW = {"arrowstyle": "->", "color": "0.4"}
CENTRED = {"ha": "center", "va": "center"}
ORANGE, GREEN = "#b45f06", "#38761d"


def image_grid(
    paths: Sequence[str | Path],
    captions: Sequence[str | Sequence[str]] | None = None,
    ncols: int = 3,
    width: float = 4.0,
    wrap: int = 42,
) -> plt.Figure:
    """Images in a grid, each with one caption or a list of captions underneath (lessons 00-09).

    Lines are wrapped at ``wrap`` characters; each row of images gets as much room for text as its
    longest caption block needs. Images are shown upright (EXIF orientation applied) and in RGB.
    """
    blocks = [[c] if isinstance(c, str) else list(c) for c in captions] if captions is not None else [[] for _ in paths]
    texts = ["\n".join("\n".join(textwrap.wrap(c, wrap)) for c in caps) for caps in blocks]
    nrows = -(-len(paths) // ncols)
    lines = [max(t.count("\n") + 1 if t else 0 for t in texts[r * ncols : (r + 1) * ncols]) for r in range(nrows)]
    ratios = [h for n in lines for h in (width * 0.92, n * 0.17 + 0.1)]  # an image row, then its text: 0.17 in a line
    size, grid = (width * ncols, sum(ratios)), {"height_ratios": ratios}
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=size, squeeze=False, gridspec_kw=grid)
    for ax in axes.flat:
        ax.axis("off")
    for k, (path, text) in enumerate(zip(paths, texts)):
        image_ax, text_ax = axes[2 * (k // ncols), k % ncols], axes[2 * (k // ncols) + 1, k % ncols]
        image_ax.imshow(open_rgb(path))  # upright, RGB
        image_ax.set_title(Path(path).name, fontsize=8, color="gray")
        text_ax.text(0, 1, text, va="top", ha="left", fontsize=9, transform=text_ax.transAxes)
    fig.tight_layout(h_pad=0.2)
    return fig


def channel_maps(photo: str | Path, maps: np.ndarray, pooled: np.ndarray, channels: Sequence[int]) -> plt.Figure:
    """Lesson 03: the photo at 224x224, the 7x7 maps of a few ``channels`` over it, and every pooled feature as a bar."""
    image, channels = open_rgb(photo).resize((224, 224)), list(channels)
    fig = plt.figure(figsize=(15, 6))
    panels = fig.add_gridspec(2, len(channels) + 1, height_ratios=[3, 2])
    for k, channel in enumerate([None, *channels]):
        ax = fig.add_subplot(panels[0, k])
        ax.imshow(image)
        ax.axis("off")
        if channel is not None:
            ax.imshow(maps[:, :, channel], cmap="magma", alpha=0.65, extent=(0, 224, 224, 0), interpolation="nearest")
        title = "the photo, 224x224" if channel is None else f"channel {channel}: average {pooled[channel]:.2f}"
        ax.set_title(title, fontsize=9)
    bars = fig.add_subplot(panels[1, :])
    bars.bar(np.arange(len(pooled)), pooled, width=1.0, color="gray")
    bars.bar(channels, pooled[channels], width=12, color="C3", label="the channels above")
    bars.set(xlim=(0, len(pooled)), xlabel="channel", ylabel="average of its 7x7 map")
    bars.set_title(f"The {len(pooled):,} features of this image")
    bars.legend()
    return fig


def lstm_unrolled(words: Sequence[str], padding: int = 2) -> plt.Figure:
    """Lesson 05: an LSTM unrolled over a caption's ``words`` and ``padding`` masked steps, its memory carried on."""
    fig, ax = plt.subplots(figsize=(13, 3.2))
    arrow = {"arrowstyle": "->", "color": "gray"}
    for t, word in enumerate([*words, *["<pad>"] * padding]):
        x, pad = 2 * t, t >= len(words)
        box = {"boxstyle": "round,pad=0.6", "facecolor": "lightgray" if pad else "C0"}
        ax.text(x, 1.5, "masked:\nskipped" if pad else "LSTM", color="black" if pad else "white", bbox=box, **CENTRED)
        ax.annotate(word, (x, 1.1), (x, 0.2), ha="center", arrowprops=arrow)
        out = "memory\ncarried on" if pad else f"h{t}"
        ax.annotate(out, (x, 1.9), (x, 2.8), ha="center", arrowprops={**arrow, "arrowstyle": "<-"})
        if t:
            ax.annotate("", (x - 0.6, 1.5), (x - 1.4, 1.5), arrowprops={"arrowstyle": "->", "color": "C3", "lw": 2})
    ax.set(xlim=(-1, 2 * (len(words) + padding) - 1), ylim=(0, 3.1))
    ax.axis("off")
    ax.set_title(
        "An LSTM unrolled over a caption: the red arrows carry its memory (h, c) to the next step;\n"
        "output h$_t$ has read words 0 to t, and nothing after them"
    )
    return fig


def pairs_and_caption(pairs: Sequence[tuple[Sequence[int], int]], words: Sequence[str], max_len: int) -> plt.Figure:
    """Lesson 05: the classic pairs (prefix ids padded to ``max_len``) beside the fast path's one pass over the caption.

    ``pairs`` are ``(prefix ids, next id)`` of one caption, in order; ``words[i]`` names id ``i``.
    """
    triangle = np.array([[*prefix, *[0] * (max_len - len(prefix))] for prefix, _ in pairs])
    size, grid = (12, 0.3 * len(pairs) + 1.2), {"width_ratios": [3, 1]}
    fig, (left, right) = plt.subplots(1, 2, figsize=size, sharey=True, gridspec_kw=grid)
    left.imshow(triangle > 0, cmap="Blues", vmin=-0.25, vmax=1.4, aspect="auto")
    for (row, col), word in np.ndenumerate(triangle):
        left.text(col, row, word, fontsize=7, color="white" if word else "gray", **CENTRED)
    title = f"classic: {len(pairs)} pairs, one pass each, padded to max_len"
    left.set(title=title, xlabel="position", ylabel="pair / step")
    right.axis("off")
    right.set_title("fast: the whole caption, in one pass")
    for t, (prefix, target) in enumerate(pairs):
        right.text(0, t, f"step {t}: reads {words[prefix[-1]]!r}, predicts {words[target]!r}", va="center", fontsize=8)
    return fig


def _cell(ax, x: float, y: float, text: str, face: str, size: float = 8) -> None:
    """One labelled box of a word-cell diagram, its lower left corner at (x, y)."""
    ax.add_patch(plt.Rectangle((x + 0.04, y + 0.08), 0.92, 0.84, facecolor=face, edgecolor="0.6", linewidth=0.6))
    ax.text(x + 0.5, y + 0.5, text, fontsize=size, **CENTRED)


def prefix_and_sequence(
    words: Sequence[str],
    prefix_probabilities: Sequence[float],
    sequence_probabilities: Sequence[float],
    max_len: int,
    padding_shown: int = 2,
) -> plt.Figure:
    """What the prefix model and the sequence model see for one caption, side by side (lesson 06).

    ``words`` is the caption with ``startseq`` and ``endseq``; ``prefix_probabilities[t]`` and
    ``sequence_probabilities[t]`` are what each model gives the true word ``words[t + 1]``. Left: one
    input row per prefix, right-padded with 0 to ``max_len`` ids (``padding_shown`` padding cells drawn,
    the rest counted), one prediction per row. Right: the whole caption once, a prediction at every position.
    """
    steps = len(words) - 1
    if steps < 1 or len(prefix_probabilities) != steps or len(sequence_probabilities) != steps:
        raise ValueError(f"need a caption of 2+ words and {steps} probabilities per model")
    shown = min(steps + padding_shown, max_len)  # cells drawn per row
    size, grid = (0.62 * (shown + 3 + steps) + 1.5, 0.42 * steps + 1.6), {"width_ratios": [shown + 3.4, steps + 1.3]}
    fig, (left, right) = plt.subplots(1, 2, figsize=size, gridspec_kw=grid)
    for t in range(steps):
        y = steps - 1 - t
        for j in range(shown):
            _cell(left, j, y, words[j] if j <= t else "0", "#cfe2f3" if j <= t else "0.93", size=7)
        if max_len > shown:
            left.text(shown + 0.05, y + 0.5, f"+{max_len - shown} more", va="center", fontsize=7, color="0.45")
        left.annotate("", xy=(shown + 1.45, y + 0.5), xytext=(shown + 1.05, y + 0.5), arrowprops=ARROW)
        label = f"{words[t + 1]}: {prefix_probabilities[t]:.3f}"
        left.text(shown + 1.5, y + 0.5, label, va="center", fontsize=8, color=ORANGE)
        _cell(right, t, 0, words[t], "#cfe2f3", size=7)
        right.annotate("", xy=(t + 0.5, 1.55), xytext=(t + 0.5, 0.95), arrowprops=ARROW)
        _cell(right, t, 1.6, words[t + 1], "#fce5cd", size=7)
        p = f"{sequence_probabilities[t]:.3f}"
        right.text(t + 0.5, 2.65, p, ha="center", va="bottom", fontsize=7, color=ORANGE, rotation=90)
    for y, label, color in ((0.5, "input", "black"), (2.1, "targets", "black"), (3.0, "p(target)", ORANGE)):
        right.text(-0.1, y, label, ha="right", va="center", fontsize=8, color=color)
    title = f"Prefix model: {steps} inputs of max_len = {max_len} ids, one next word each"
    left.set(xlim=(0, shown + 3.4), ylim=(-0.2, steps + 0.1), title=title)
    middle, half = 1.75, max(steps + 0.3, 4.0) / 2  # the same vertical scale as the left panel
    right.set(xlim=(-1.3, steps), ylim=(middle - half, middle + half))
    right.set_title("Sequence model: one input, a next word at every position")
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    return fig


def beam_tree(steps: Sequence[Sequence[dict]], title: str = "Beam search, step by step") -> plt.Figure:
    """A beam search as a tree: every candidate of every step, the kept beams highlighted (lesson 08).

    ``steps[s]`` lists the candidates of step ``s + 1``, each a dict with ``parent`` (its beam's
    position among the beams kept at the step before; 0 at the first step), ``word``, ``logp`` (the
    word's log-probability: the edge label), ``score`` (the caption's total log-probability so far:
    under the word) and ``kept`` (whether it is among the beams that go on). The root is ``startseq``.
    """
    if not steps:
        raise ValueError("no steps to draw")
    rows = max(len(candidates) for candidates in steps)
    fig, ax = plt.subplots(figsize=(2.3 * (len(steps) + 1) + 0.5, 0.55 * rows + 1.2))
    box, plain = {"boxstyle": "round", "facecolor": "#d9ead3"}, {"facecolor": "white", "edgecolor": "none", "pad": 0.2}
    ax.text(0, (rows - 1) / 2, "startseq", fontsize=9, weight="bold", bbox={**box, "edgecolor": GREEN}, **CENTRED)
    positions = [[((rows - 1) / 2, 0)]]  # (y, x) of the kept nodes of each step; the root first
    for s, candidates in enumerate(steps, start=1):
        kept, offset = [], (rows - len(candidates)) / 2  # a short column is centred
        for row, cand in enumerate(candidates):
            y, on = rows - 1 - row - offset, bool(cand["kept"])
            (parent_y, parent_x), color = positions[-1][cand["parent"]], GREEN if on else "0.7"
            ax.plot([parent_x + 0.2, s - 0.2], [parent_y, y], color=color, linewidth=1.8 if on else 0.7, zorder=1)
            edge = (parent_x + 0.2 + 0.6 * (s - parent_x - 0.4), parent_y + 0.6 * (y - parent_y))
            ax.text(*edge, f"{cand['logp']:.2f}", fontsize=6.5, color=color, bbox=plain, zorder=2, **CENTRED)
            node = {**box, "facecolor": "#d9ead3" if on else "white", "edgecolor": color}
            style = {"weight": "bold" if on else "normal", "color": "black" if on else "0.5"}
            ax.text(s, y, f"{cand['word']}\n{cand['score']:.2f}", fontsize=8, bbox=node, **style, **CENTRED)
            kept += [(y, s)] if on else []
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

    ``replica_batches[i]`` captions go to replica i, whose (already scaled) loss is ``replica_losses[i]``
    and whose gradient, for the components named by ``labels``, is ``replica_gradients[i]``. ``reduced``
    is what the all-reduce (a sum) hands back to every replica; ``single_device``, if given, the gradient
    of the whole batch on one device; ``caption_lengths``, if given, each caption's words (the bar lengths).
    """
    replicas = len(replica_batches)
    gradients = np.asarray(replica_gradients, dtype="float64")
    if gradients.shape != (replicas, len(labels)) or np.shape(reduced) != (len(labels),):
        raise ValueError("one gradient row per replica and one value per label are needed")
    mosaic = [["batch", f"g{i}", "sum"] for i in range(replicas)]
    fig, axes = plt.subplot_mosaic(mosaic, figsize=(13, 1.9 * replicas + 0.8), width_ratios=[1.1, 2.2, 2.2])
    batch, total = axes["batch"], sum(replica_batches)
    lengths = np.ones(total) if caption_lengths is None else np.asarray(caption_lengths, dtype="float64")
    widest, start, link = lengths.max(), 0, {"arrowstyle": "->", "color": "0.5", "coordsB": "axes fraction"}
    for i, size in enumerate(replica_batches):
        batch.barh(range(start, start + size), lengths[start : start + size], height=0.9, color=f"C{i}")
        label = f"{size} captions\n-> replica {i}"
        batch.text(1.1 * widest, start + size / 2, label, va="center", fontsize=8, color=f"C{i}")
        to_replica = ((2.05 * widest, start + size / 2), (-0.14, 0.5), "data")
        batch.add_artist(ConnectionPatch(*to_replica, axesA=batch, axesB=axes[f"g{i}"], **link))
        to_sum = ((1.01, 0.5), (-0.13, 0.5), "axes fraction")
        axes[f"g{i}"].add_artist(ConnectionPatch(*to_sum, axesA=axes[f"g{i}"], axesB=axes["sum"], **link))
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
    total_ax = axes["sum"]
    total_ax.bar(x, reduced, color="0.55", edgecolor="black", linewidth=0.8, label="the sum of the replicas' gradients")
    if single_device is not None:
        total_ax.plot(x, single_device, "k_", markersize=14, markeredgewidth=2, label="whole batch, one device")
    total_ax.axhline(0, color="0.5", linewidth=0.6)
    total_ax.set(ylim=(-top, top), xticks=x)
    total_ax.set_title("all-reduce (sum): the gradient every replica applies", fontsize=9)
    total_ax.set_xticklabels(labels, rotation=60, fontsize=7)
    total_ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
