"""Image features from a pretrained ResNet50, batched, cached and resumable (introduced in lesson 03).

Every image becomes one 2048-number vector: ResNet50 without its classification layer,
global-average-pooled (:mod:`helpers.extractor`). :func:`extract_features` runs a
``tf.data`` pipeline (parallel read, decode, EXIF orientation and resize, batching,
prefetch) into the extractor compiled as a ``tf.function``, so the model never waits for
JPEG decoding, in the precision the machine computes fastest (:mod:`helpers.precision`).

Datasets arrive checked (:func:`helpers.datasets.load_dataset` leaves unreadable images
out); this module still guards itself, for images given by path: a header check
(:func:`helpers.images.inspect_image`) skips missing files and non-images before the
pipeline starts, and a file that still fails to decode is dropped inside the pipeline,
before batching, so it never takes its batch down. Either way it is listed in
``FeatureSet.skipped`` with the reason. Grey, RGBA, palette, CMYK and PNG-named-.jpg
images are converted to RGB by the decoder; formats TensorFlow cannot decode but Pillow
can (TIFF, HEIC with pillow-heif) go through a PNG copy in a temporary folder.

With ``cache_dir`` the features are cached on disk (:mod:`helpers.feature_cache`), one
folder per recipe (``resnet50-imagenet-224``): features made with other weights are never
reused, an interrupted extraction resumes where it stopped. The precision is not part of
the recipe: bfloat16, float16 and float32 features agree to a cosine of 0.9999 or better
(``tests/test_precision.py``), so a cache filled on a Colab GPU serves a laptop too;
``meta.json`` lists the precisions its rows were computed in.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from helpers import feature_cache
from helpers.config import get_settings
from helpers.datasets import Dataset
from helpers.errors import CourseError
from helpers.extractor import (  # noqa: F401  (re-exported: lessons 03 and 11 import them from here)
    FEATURE_SIZE,
    IMAGE_SIZE,
    REGIONS,
    SEED,
    _extractor_function,
    build_extractor,
    check_weights,
    extractor_function,
)
from helpers.feature_cache import FeatureSet
from helpers.images import PIL_ONLY_FORMATS, check_image, inspect_image, open_rgb
from helpers.precision import machine_precision

#: The kinds of features: one image's row shape and how it is stored. ``pooled`` is the
#: average of the 49 ``grid`` vectors (lesson 03); lesson 11's attention reads the grid.
KINDS = {"pooled": ((FEATURE_SIZE,), np.float32), "grid": ((REGIONS, FEATURE_SIZE), np.float16)}
PREPROCESSING = (
    "decode_image to RGB, EXIF orientation applied, resize to 224x224 (bilinear, antialiased), "
    "resnet50.preprocess_input (caffe: RGB->BGR, ImageNet mean subtracted, no scaling)"
)
CACHE_FORMAT = 2

# ---------------------------------------------------------------- images in


def upright(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turn a decoded image the way its EXIF orientation tag (1-8) says, as Pillow's ``exif_transpose`` does (lesson 03)."""
    turns = [
        lambda: image,  # 0: no tag
        lambda: image,  # 1: upright
        lambda: tf.image.flip_left_right(image),  # 2: mirrored
        lambda: tf.image.rot90(image, 2),  # 3: upside down
        lambda: tf.image.flip_up_down(image),  # 4: mirrored upside down
        lambda: tf.image.transpose(image),  # 5: mirrored, lying on its side
        lambda: tf.image.rot90(image, 3),  # 6: lying on its side (most portrait phone photos)
        lambda: tf.image.rot90(tf.image.transpose(image), 2),  # 7
        lambda: tf.image.rot90(image, 1),  # 8: lying on its other side
    ]
    return tf.switch_case(tf.cast(orientation, tf.int32), turns)


def load_image(path: tf.Tensor | str, orientation: tf.Tensor | int = 1) -> tf.Tensor:
    """Read one image file into the (224, 224, 3) float32 input ResNet50 expects (lesson 03).

    decode_image looks at the content, not the extension, and converts grey, RGBA,
    palette and CMYK images to RGB; ``orientation`` (EXIF, 1 = upright) turns phone photos
    upright before resizing. ``preprocess_input`` is ResNet50's "caffe" mode: channels
    reordered to BGR and the ImageNet mean subtracted, no scaling.
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(upright(image, orientation), IMAGE_SIZE, antialias=True)
    return keras.applications.resnet50.preprocess_input(image)


def image_pipeline(paths: list[Path], orientations: list[int] | None = None, batch_size: int = 32) -> tf.data.Dataset:
    """Batches of (positions in ``paths``, images): parallel decode, batching, prefetch (lesson 03).

    A file that fails to decode is dropped before batching, so it never takes its batch
    down; the positions tell which files made it.
    """
    orientations = orientations or [1] * len(paths)
    files = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths], orientations))
    images = files.map(lambda i, path, turn: (i, load_image(path, turn)), num_parallel_calls=tf.data.AUTOTUNE)
    return images.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- extraction


def extract_features(
    paths: Iterable[str | os.PathLike],
    *,
    weights: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    chunk_size: int = 512,
    in_memory: bool = True,
    grid: bool = False,
    precision: str | None = None,
) -> FeatureSet:
    """ResNet50 features of the readable images among ``paths``, unreadable ones skipped (lesson 03).

    ``weights`` is 'imagenet' or 'none'; None reads CAPTION_CNN_WEIGHTS (this is one of the
    course's entry points). With ``cache_dir``, features are read from and saved to its
    recipe folder: only images not cached yet are extracted, a part file is saved every
    ``chunk_size`` images, and an interrupted run resumes where it stopped. Images are
    named by file name in the result (and in the cache).

    ``in_memory=False`` (lesson 10; needs ``cache_dir``) reads nothing into memory: the
    result is the whole cache, ``features.npy`` memory-mapped, in the cache's row order
    (it may know more images than ``paths``).

    ``grid=True`` (lesson 11) gives the 7 x 7 grid before pooling, ``(n, 49, 2048)`` stored
    as float16, from a cache folder of its own; the pooled cache gets the same pass's
    pooled vectors of any image it lacks.

    ``precision`` is CAPTION_PRECISION's 'auto' (the fastest this machine has: see
    :func:`helpers.precision.choose_precision`) or 'float32', or a precision itself
    ('bfloat16', 'float16'); None reads CAPTION_PRECISION.
    """
    settings = get_settings() if weights is None or precision is None else None  # the entry point's defaults
    weights = check_weights(weights or settings.cnn_weights)
    precision = machine_precision(precision or settings.precision)
    paths = [Path(p) for p in paths]
    kinds = ("pooled", "grid") if grid else ("pooled",)
    wanted = kinds[-1]
    empty = _empty(wanted)
    if cache_dir is None and not in_memory:
        raise CourseError("in_memory=False memory-maps the feature cache: give a cache_dir too.")
    if cache_dir is None:
        parts: list[tuple[list[str], dict]] = []
        skipped = _extract(paths, weights, kinds, precision, batch_size, chunk_size, lambda *part: parts.append(part))
        images = [name for names, _ in parts for name in names]
        arrays = [arrays[wanted] for _, arrays in parts]
        return FeatureSet(np.concatenate(arrays) if arrays else empty, images, skipped)

    folders = {
        kind: feature_cache.open_cache(cache_folder(Path(cache_dir), weights, kind), recipe(weights, kind))
        for kind in kinds
    }
    for folder in folders.values():
        feature_cache.fold_parts(folder)
    folder = folders[wanted]
    cached = set(feature_cache.cached_images(folder))
    paths = list({path.name: path for path in paths}.values())  # the cache knows images by name
    known_bad = feature_cache.still_unreadable(folder, paths)
    pending = [path for path in paths if path.name not in cached and path.name not in known_bad]
    print(
        f"Feature cache {folder}: {len(cached & {p.name for p in paths})} of {len(paths)} images cached, "
        f"{len(known_bad)} known unreadable, extracting {len(pending)}."
    )

    def save(names: list[str], arrays: dict[str, np.ndarray]) -> None:
        for kind, kind_folder in folders.items():  # a pooled row it has already is left out when folding
            feature_cache.save_part(kind_folder, names, arrays[kind])

    if pending:
        for kind_folder in folders.values():
            feature_cache.note_precision(kind_folder, precision)
    skipped = _extract(pending, weights, kinds, precision, batch_size, chunk_size, save)
    for kind_folder in folders.values():
        feature_cache.fold_parts(kind_folder)
        feature_cache.remember_unreadable(kind_folder, pending, skipped)
    skipped = known_bad | skipped
    if not in_memory:
        return feature_cache.mapped_features(folder, empty, skipped)
    return feature_cache.select(folder, [path.name for path in paths if path.name not in skipped], empty, skipped)


def _empty(kind: str) -> np.ndarray:
    """No features yet, of one kind: an array of 0 rows."""
    shape, dtype = KINDS[kind]
    return np.zeros((0, *shape), dtype)


def _extract(
    paths: list[Path],
    weights: str,
    kinds: tuple[str, ...],
    precision: str,
    batch_size: int,
    chunk_size: int,
    save: Callable[[list[str], dict[str, np.ndarray]], None],
) -> dict[str, str]:
    """Run the pipeline over ``paths``, handing every ``chunk_size`` results to ``save``; return the skipped."""
    infos = {path: inspect_image(path) for path in paths}
    skipped = {path.name: info.problem for path, info in infos.items() if info.problem}
    readable = [path for path, info in infos.items() if not info.problem]
    if not readable:
        return skipped
    forward = _extractor_function(weights, kinds, precision)
    names: list[str] = []
    blocks: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    done: set[int] = set()

    def chunk() -> dict[str, np.ndarray]:
        return {kind: np.concatenate(parts).astype(KINDS[kind][1]) for kind, parts in blocks.items()}

    with tempfile.TemporaryDirectory(prefix="caption-course-") as scratch:
        sources = [_decodable(path, infos[path].format, Path(scratch)) for path in readable]
        turns = [1 if source != path else infos[path].orientation for source, path in zip(sources, readable)]
        try:
            with tqdm(total=len(readable), unit="img", desc="ResNet50 features") as bar:
                for positions, batch in image_pipeline(sources, turns, batch_size):
                    for kind, values in forward(batch).items():
                        blocks[kind].append(values.numpy())
                    names += [readable[i].name for i in positions.numpy()]
                    done.update(positions.numpy().tolist())
                    bar.update(int(positions[-1]) + 1 - bar.n)  # files dropped on the way count as done
                    if len(names) >= chunk_size:
                        save(names, chunk())
                        names, blocks = [], {kind: [] for kind in kinds}
        finally:  # also on KeyboardInterrupt: nothing computed is lost
            if names:
                save(names, chunk())
    failed = [path for i, path in enumerate(readable) if i not in done]
    return skipped | {path.name: check_image(path).problem or "TensorFlow cannot decode it" for path in failed}


def _decodable(path: Path, kind: str | None, scratch: Path) -> Path:
    """``path`` itself, or for a format only Pillow reads (TIFF, HEIC, ...) an upright PNG copy in ``scratch``."""
    if kind not in PIL_ONLY_FORMATS:
        return path
    copy = scratch / f"{len(list(scratch.iterdir()))}.png"
    open_rgb(path).save(copy)
    return copy


def dataset_features(
    dataset: Dataset,
    weights: str,
    *,
    precision: str = "auto",
    batch_size: int = 32,
    in_memory: bool = True,
    grid: bool = False,
) -> FeatureSet:
    """Features of every image of ``dataset`` (cached in its ``features_dir``, resumable) (lesson 03).

    The cache is shared by fast and full mode. ``precision`` takes CAPTION_PRECISION's
    values (lessons pass ``settings.precision``). ``in_memory=False`` returns the cache
    memory-mapped (lesson 10), for datasets whose features would not fit in memory;
    ``grid=True`` the 7 x 7 grid before pooling (lesson 11). See :func:`extract_features`.
    """
    paths = [dataset.image_path(image) for image in dataset.images()]
    return extract_features(
        paths,
        weights=weights,
        cache_dir=dataset.features_dir,
        batch_size=batch_size,
        in_memory=in_memory,
        grid=grid,
        precision=precision,
    )


def feature_store(
    dataset: Dataset, weights: str, *, dtype: str = "float32", precision: str = "auto", batch_size: int = 32
) -> FeatureSet:
    """Features of every image of ``dataset`` memory-mapped from disk, float32 or float16 (lesson 10).

    Lesson 03's cache opened with ``in_memory=False``: the images it lacks are extracted
    first (resumable, one chunk in memory at a time), and a complete cache is opened
    without touching the model. ``dtype="float16"`` maps a half-size copy instead
    (:func:`helpers.feature_cache.float16_copy`), remade only when the cache changes.
    ``precision`` is the arithmetic of any extraction, as for :func:`dataset_features`.
    """
    if dtype not in ("float32", "float16"):
        raise CourseError(f"dtype must be 'float32' or 'float16', got {dtype!r}.")
    features = dataset_features(dataset, weights, precision=precision, batch_size=batch_size, in_memory=False)
    if dtype == "float16" and isinstance(features.features, np.memmap):
        half = np.load(feature_cache.float16_copy(Path(features.features.filename)), mmap_mode="r")
        features = FeatureSet(half, features.images, features.skipped)
    return features


# ---------------------------------------------------------------- the cache's recipe


def recipe(weights: str, kind: str = "pooled") -> dict:
    """Everything that decides the feature values; a cache is reused only for an identical recipe."""
    pooling = "avg" if kind == "pooled" else "none: conv5_block3_out, the 7 x 7 grid as 49 regions, stored float16"
    return {
        "format": CACHE_FORMAT,
        "model": "ResNet50",
        "weights": weights,
        "seed": SEED if weights == "none" else None,
        "pooling": pooling,
        "image_size": list(IMAGE_SIZE),
        "preprocessing": PREPROCESSING,
    }


def cache_folder(cache_dir: Path, weights: str, kind: str = "pooled") -> Path:
    """The recipe's folder inside ``cache_dir``, e.g. ``resnet50-imagenet-224`` (``...-224-grid`` for the grid)."""
    return Path(cache_dir) / f"resnet50-{weights}-{IMAGE_SIZE[0]}{'' if kind == 'pooled' else '-' + kind}"
