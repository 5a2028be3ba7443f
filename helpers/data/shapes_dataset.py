"""The shapes dataset: coloured shapes with varied captions, generated offline (lesson 01).

Deterministic, in the Flickr8k layout: the test suite's dataset and the workshop's Wi-Fi-proof fallback.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from helpers.data.flickr8k import IMAGES_FOLDER, SPLIT_FILES, SPLITS, TOKEN_FILE

SHAPES_VERSION = "1"
SHAPES_SIZE = 224
SHAPES_SPLIT = {"train": 700, "dev": 150, "test": 150}
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
}
BACKGROUNDS = {"white": (245, 245, 245), "black": (20, 20, 20), "gray": (128, 128, 128)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 26, "large": 46}  # radius in pixels
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
POSITIONS = {
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "center": (0.5, 0.5),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
}
ONE_SHAPE = (
    "a {size} {colour} {shape} in the {position}",
    "there is a {colour} {shape} on a {background} background",
    "a {size} {colour} {shape}",
    "a {colour} {shape} on {background}",
    "one {size} {colour} {shape} in the {position} of the picture",
    "a {background} picture with a {colour} {shape}",
)
TWO_SHAPES = (
    "a {colour2} {shape2} and a {colour} {shape}",
    "two shapes a {colour} {shape} and a {colour2} {shape2}",
    "a {colour} {shape} to the left of a {colour2} {shape2}",
    "a {size} {colour} {shape} next to a {size2} {colour2} {shape2}",
    "two shapes on a {background} background",
    "a {colour2} {shape2} to the right of a {colour} {shape}",
)


def _draw(draw, shape: str, cx: float, cy: float, r: float, fill: tuple[int, int, int]) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=fill)
    else:  # triangle
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)


def _shapes_example(rng: np.random.Generator):
    """Draw one image and write its five captions (the first always names every attribute)."""
    from PIL import Image, ImageDraw

    background = rng.choice(list(BACKGROUNDS))
    image = Image.new("RGB", (SHAPES_SIZE, SHAPES_SIZE), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    two = rng.random() < 0.4
    colours = rng.choice(list(COLOURS), size=2, replace=False)
    things = []
    for k in range(2 if two else 1):
        shape, size = rng.choice(SHAPES), rng.choice(list(SIZES))
        if two:  # left and right halves, so the two never overlap
            cx, cy = SHAPES_SIZE * (0.27 + 0.46 * k), SHAPES_SIZE * rng.uniform(0.35, 0.65)
        else:
            position = rng.choice(list(POSITIONS))
            cx, cy = (SHAPES_SIZE * v for v in POSITIONS[position])
        jitter = rng.uniform(-8, 8, size=2)
        _draw(draw, shape, cx + jitter[0], cy + jitter[1], SIZES[size], COLOURS[colours[k]])
        things.append({"shape": shape, "size": size, "colour": colours[k]})
    words = {"background": background, **things[0]}
    if two:
        words |= {f"{key}2": value for key, value in things[1].items()}
        first = "a {colour} {shape} and a {colour2} {shape2} on a {background} background"
        templates = TWO_SHAPES
    else:
        words["position"] = position
        first = "a {size} {colour} {shape} on a {background} background"
        templates = ONE_SHAPE
    chosen = [first] + list(rng.choice(templates, size=4, replace=False))
    captions = []
    for template in chosen:
        variant = dict(words)
        for key in ("size", "size2"):
            if key in variant:
                variant[key] = rng.choice(SIZE_WORDS[variant[key]])
        text = re.sub(r"\ba (?=[aeiou])", "an ", template.format(**variant))
        captions.append(text.capitalize() + " .")
    return image, captions


def make_shapes(root: Path, split: dict[str, int] = SHAPES_SPLIT, seed: int = 0) -> Path:
    """Generate the shapes dataset (Flickr8k layout) into ``root``, unless it holds this version already (lesson 01)."""
    marker = root / "VERSION"
    stamp = f"{SHAPES_VERSION} {seed} {split}"
    if marker.exists() and marker.read_text().strip() == stamp:
        return root
    print(f"Generating the shapes dataset in {root} ...")
    scratch = root.with_name(root.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / IMAGES_FOLDER).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tokens, split_lists, number = [], {s: [] for s in SPLITS}, 0
    for split_name in SPLITS:
        for _ in range(split[split_name]):
            image, captions = _shapes_example(rng)
            name = f"shapes_{number:05d}.jpg"
            image.save(scratch / IMAGES_FOLDER / name, quality=90)
            tokens += [f"{name}#{k}\t{caption}" for k, caption in enumerate(captions)]
            split_lists[split_name].append(name)
            number += 1
    (scratch / TOKEN_FILE).write_text("\n".join(tokens) + "\n")
    for split_name, filename in SPLIT_FILES.items():
        (scratch / filename).write_text("\n".join(split_lists[split_name]) + "\n")
    (scratch / "VERSION").write_text(stamp + "\n")
    shutil.rmtree(root, ignore_errors=True)
    scratch.rename(root)
    return root
