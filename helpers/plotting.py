"""Figures the lessons share: image grids with captions (introduced in lesson 01)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from helpers.images import open_rgb


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
