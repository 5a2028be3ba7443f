"""Image features from a pretrained ResNet50: batched, cached, resumable (lesson 03).

Every image becomes one 2048-number vector: ResNet50 without its classifier, average-pooled
(:func:`build_extractor`). :func:`extract_features` runs a ``tf.data`` pipeline (parallel read,
decode, EXIF orientation, resize, batching, prefetch) into the network compiled as a
``tf.function``, its batch norms folded into the convolutions, in the precision this machine
computes cheapest (``auto``: measured once). Unreadable files are skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from helpers.config import CNN_WEIGHTS, Settings, get_settings
from helpers.data.download import imagenet_weights_file
from helpers.data.images import PIL_ONLY_FORMATS, check_image, inspect_image, open_rgb
from helpers.datasets import Dataset
from helpers.system import cache
from helpers.system import precision as precisions
from helpers.system.cache import FeatureSet
from helpers.system.errors import CourseError

IMAGE_SIZE = (224, 224)
FEATURE_SIZE = 2048
#: ResNet50's last convolutional block at 224 x 224: a 7 x 7 grid of regions (lesson 11).
REGIONS = 49
#: Seed of the random ResNet50 weights (CAPTION_CNN_WEIGHTS=none): same image, same vector.
SEED = 0
#: One image's features of each kind and how they are stored: ``pooled`` is the mean of the ``grid``.
KINDS = {"pooled": ((FEATURE_SIZE,), np.float32), "grid": ((REGIONS, FEATURE_SIZE), np.float16)}
PREPROCESSING = (
    "decode_image to RGB, EXIF orientation applied, resize to 224x224 (bilinear, antialiased), "
    "resnet50.preprocess_input (caffe: RGB->BGR, ImageNet mean subtracted, no scaling)"
)
CACHE_FORMAT = 3


# ---------------------------------------------------------------- the network


def check_weights(weights: str) -> str:
    """``weights``, checked to be 'imagenet' or 'none'."""
    if weights not in CNN_WEIGHTS:
        raise CourseError(f"CNN weights must be 'imagenet' or 'none', got {weights!r}.")
    return weights


def build_extractor(weights: str) -> keras.Model:
    """ResNet50 without its top, average-pooled: (batch, 224, 224, 3) -> (batch, 2048) (lesson 03).

    'imagenet' weights come from Keras' cache; 'none' are random, seeded: same image, same vector.
    """
    return _build_extractor(check_weights(weights), "float32")


@functools.cache
def _build_extractor(weights: str, precision: str) -> keras.Model:
    with precisions.keras_policy(precision):  # float16 only: bfloat16 is a rewrite of a float32 graph
        model = keras.applications.ResNet50(
            include_top=False, weights=None, pooling="avg", input_shape=(*IMAGE_SIZE, 3)
        )
    if weights == "imagenet":
        model.load_weights(imagenet_weights_file())
    else:
        for number, layer in enumerate(model.layers):
            if isinstance(layer, keras.layers.Conv2D):
                layer.kernel.assign(keras.initializers.GlorotUniform(seed=SEED + number)(layer.kernel.shape))
    return model


@functools.cache
def folded_extractor(weights: str, float16: bool = False) -> keras.Model:
    """:func:`build_extractor`'s network with its batch norms folded into the convolutions (float16: Keras' policy)."""
    return precisions.fold_batch_norms(_build_extractor(check_weights(weights), "float16" if float16 else "float32"))


@functools.cache
def extractor_function(weights: str, kinds: tuple[str, ...] = ("pooled",), precision: str = "float32") -> Callable:
    """The extractor as a ``tf.function`` of float32 batches, computing in ``precision`` (lesson 03).

    Returns ``{"pooled": (batch, 2048)}``, with ``"grid"`` in ``kinds`` also the 7 x 7 grid
    before pooling as ``(batch, 49, 2048)`` (lesson 11): one pass for both. Float32 out.
    """
    model = folded_extractor(weights, precision == "float16")
    grid_model = keras.Model(model.input, model.get_layer("conv5_block3_out").output)  # the same layers, unpooled

    def forward(batch):
        if "grid" not in kinds:
            return {"pooled": tf.cast(model(batch, training=False), tf.float32)}
        grid = tf.cast(grid_model(batch, training=False), tf.float32)
        return {"pooled": tf.reduce_mean(grid, axis=[1, 2]), "grid": tf.reshape(grid, (-1, REGIONS, FEATURE_SIZE))}

    signature = [tf.TensorSpec((None, *IMAGE_SIZE, 3), tf.float32)]
    return precisions.in_precision(tf.function(forward, input_signature=signature), precision)


def precision_verdict(weights: str, record: Path | None = None, setting: str = "auto") -> dict:
    """The precision extraction computes in (``chosen``) and why: ``setting`` itself, or auto's measurement of
    this machine, made once and remembered in ``record`` (lesson 03; :func:`helpers.system.precision.describe`)."""
    if setting != "auto":
        return {"chosen": setting, "timings": {}, "agreement": {}, "set": True}

    def run(precision: str) -> Callable:
        forward = extractor_function(check_weights(weights), ("pooled",), precision)
        return lambda batch: forward(batch)["pooled"].numpy()

    return precisions.verdict(record, functools.partial(precisions.measure, run=run))


def choose_precision(setting: str, weights: str, record: Path | None = None) -> str:
    """The precision extraction computes in: ``setting`` itself, or for 'auto' the cheapest measured here (lesson 03)."""
    return precision_verdict(weights, record, setting)["chosen"]


def describe_precision(settings: Settings) -> str:
    """:func:`precision_verdict` of ``settings`` in one line (measured now if it was not yet)."""
    return precisions.describe(precision_verdict(settings.cnn_weights, settings.precision_record, settings.precision))


# ---------------------------------------------------------------- images in


def upright(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turn a decoded image as its EXIF orientation tag (1-8) says, as Pillow's ``exif_transpose`` does (lesson 03)."""
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
    """One image file as the (224, 224, 3) float32 input ResNet50 expects (lesson 03).

    ``decode_image`` reads the content, not the extension, and gives RGB; ``preprocess_input``
    is ResNet50's "caffe" mode: channels reordered to BGR, the ImageNet mean subtracted.
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(upright(image, orientation), IMAGE_SIZE, antialias=True)
    return keras.applications.resnet50.preprocess_input(image)


def image_pipeline(paths: list[Path], orientations: list[int] | None = None, batch_size: int = 32) -> tf.data.Dataset:
    """Batches of (positions in ``paths``, images), decoded in parallel; a file that fails is dropped (lesson 03)."""
    orientations = orientations or [1] * len(paths)
    files = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths], orientations))
    images = files.map(lambda i, path, turn: (i, load_image(path, turn)), num_parallel_calls=tf.data.AUTOTUNE)
    return images.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- extraction


def extract_features(
    paths: Iterable[str | os.PathLike],
    *,
    weights: str | None = None,
    precision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    precision_record: Path | None = None,
    batch_size: int = 32,
    chunk_size: int = 512,
    grid: bool = False,
    read_only: str | None = None,
    memory_mapped: bool = False,
) -> FeatureSet:
    """ResNet50 features of the readable images among ``paths`` (named by file name), the others skipped (lesson 03).

    ``weights`` 'imagenet' or 'none' and ``precision`` ('auto', measured once and kept in
    ``precision_record'', or a precision) default to the environment's settings: one of the
    course's entry points. With ``cache_dir`` only uncached images are computed, saved every
    ``chunk_size``: an interrupted run resumes; ``memory_mapped`` leaves the rows there (lesson 10);
    a ``read_only`` cache (shared) that lacks images raises, ending with it. ``grid``: 7 x 7 (lesson 11).
    """
    if weights is None or precision is None:
        settings = get_settings()
        weights, precision = weights or settings.cnn_weights, precision or settings.precision
        precision_record = precision_record or settings.precision_record
    weights, paths = check_weights(weights), list({Path(p).name: Path(p) for p in paths}.values())
    kinds = ("pooled", "grid") if grid else ("pooled",)

    def network() -> Callable:  # only when there is something to compute: a full cache needs no model
        return extractor_function(weights, kinds, choose_precision(precision, weights, precision_record))

    def compute(todo: list[Path], save: Callable) -> dict[str, str]:
        return _extract(todo, network, save, batch_size, chunk_size)

    if cache_dir is None:
        computed: dict[str, np.ndarray] = {}
        skipped = compute(paths, lambda names, arrays: computed.update(zip(names, arrays[kinds[-1]])))
        keep = [p.name for p in paths if p.name in computed]
        return FeatureSet(np.stack([computed[n] for n in keep]) if keep else _empty(kinds[-1]), keep, skipped)
    recipes = {cache_folder(cache_dir, weights, kind): (cache_recipe(weights, kind), *KINDS[kind]) for kind in kinds}
    skipped, folder = cache.fill(recipes, paths, compute, read_only), list(recipes)[-1]
    rows = cache.rows(folder)
    keep = [p.name for p in paths if p.name in rows]
    if memory_mapped:
        return FeatureSet(cache.mapped(folder), keep, skipped, {name: rows[name] for name in keep})
    return FeatureSet(
        np.asarray(cache.mapped(folder)[[rows[n] for n in keep]]) if keep else _empty(kinds[-1]), keep, skipped
    )


def _empty(kind: str) -> np.ndarray:
    shape, dtype = KINDS[kind]
    return np.zeros((0, *shape), dtype)


def _extract(paths: list[Path], network: Callable, save: Callable, batch_size: int, chunk_size: int) -> dict[str, str]:
    """Run ``network()`` over the readable ``paths``, handing every ``chunk_size`` results to ``save``; return the skipped."""
    infos = {path: inspect_image(path) for path in paths}
    skipped = {path.name: info.problem for path, info in infos.items() if info.problem}
    readable = [path for path, info in infos.items() if not info.problem]
    if not readable:
        return skipped
    forward = network()
    names: list[str] = []
    blocks: dict[str, list[np.ndarray]] = {}
    done: set[int] = set()

    def flush() -> None:
        if names:
            save(list(names), {kind: np.concatenate(parts).astype(KINDS[kind][1]) for kind, parts in blocks.items()})
            names.clear()
            blocks.clear()

    with tempfile.TemporaryDirectory(prefix="caption-course-") as scratch:
        sources = [_decodable(path, infos[path].format, Path(scratch)) for path in readable]
        turns = [1 if source != path else infos[path].orientation for source, path in zip(sources, readable)]
        try:
            with tqdm(total=len(readable), unit="img", desc="ResNet50 features") as bar:
                for positions, batch in image_pipeline(sources, turns, batch_size):
                    for kind, values in forward(batch).items():
                        blocks.setdefault(kind, []).append(values.numpy())
                    names.extend(readable[i].name for i in positions.numpy())
                    done.update(positions.numpy().tolist())
                    bar.update(int(positions[-1]) + 1 - bar.n)  # files dropped on the way count as done
                    if len(names) >= chunk_size:
                        flush()
        finally:  # also on KeyboardInterrupt: nothing computed is lost
            flush()
    failed = [path for i, path in enumerate(readable) if i not in done]
    return skipped | {path.name: check_image(path).problem or "TensorFlow cannot decode it" for path in failed}


def _decodable(path: Path, kind: str | None, scratch: Path) -> Path:
    """``path`` itself, or for a format only Pillow reads (TIFF, HEIC, ...) an upright PNG copy in ``scratch``."""
    if kind not in PIL_ONLY_FORMATS:
        return path
    copy = scratch / f"{len(list(scratch.iterdir()))}.png"
    open_rgb(path).save(copy)
    return copy


def _prefetch(run: Settings, grid: bool) -> str:
    """The command that fills a shared data folder (DESIGN section 6's workshop server)."""
    return f"CAPTION_DATA_DIR={run.shared_dir} CAPTION_DATASET={run.dataset} make prefetch{' GRID=1' * grid}"


def dataset_features(
    dataset: Dataset, *, grid: bool = False, memory_mapped: bool = False, batch_size: int = 32
) -> FeatureSet:
    """Features of every image of ``dataset``, with its settings' weights and precision, cached (lesson 03)."""
    folder, run = dataset.features_dir, dataset.settings
    options = {"weights": run.cnn_weights, "precision": run.precision, "precision_record": run.precision_record}
    options |= {"grid": grid, "memory_mapped": memory_mapped, "batch_size": batch_size}
    read_only = (
        f"the instructor prepares the shared data folder with `{_prefetch(run, grid)}`" if run.shared_dir else None
    )
    return extract_features(
        [dataset.image_path(i) for i in dataset.images()], cache_dir=folder, read_only=read_only, **options
    )


def feature_store(dataset: Dataset, *, grid: bool = False, dtype: str = "float32") -> FeatureSet:
    """The dataset's features memory-mapped from the cache, its missing images extracted first (lessons 10-11).

    ``dtype="float16"``: a half-size copy of the pooled features; ``grid=True``: the 7 x 7 grid (float16).
    With ``unpack_dir`` set (Colab with Drive), the array is copied there: batches read it at random.
    """
    if dtype not in ("float32", "float16"):
        raise CourseError(f"dtype must be 'float32' or 'float16', got {dtype!r}.")
    store, run = dataset_features(dataset, grid=grid, memory_mapped=True), dataset.settings
    source = Path(store.features.filename)
    target = source.with_name(source.stem + "-float16.npy") if dtype == "float16" and not grid else source
    if run.unpack_dir and not source.resolve().is_relative_to(run.unpack_dir.resolve()):
        target = run.unpack_dir / "features" / run.dataset_key / source.parent.name / target.name
    if target != source:
        shared = run.shared_dir and target.resolve().is_relative_to(run.shared_dir.resolve())
        fix = f"the instructor prepares the shared data folder with `{_prefetch(run, grid)}`" if shared else None
        target = cache.copy_array(source, target, "float16" if target.stem.endswith("-float16") else None, fix)
        store = dataclasses.replace(store, features=np.load(target, mmap_mode="r"))
    return store


def cache_recipe(weights: str, kind: str = "pooled") -> dict:
    """Everything that decides the feature values: a cache is reused only for an identical recipe."""
    pooling = "avg" if kind == "pooled" else "none: conv5_block3_out, the 7 x 7 grid as 49 regions, stored float16"
    recipe = {
        "format": CACHE_FORMAT,
        "model": "ResNet50",
        "weights": weights,
        "seed": SEED if weights == "none" else None,
    }
    return recipe | {"pooling": pooling, "image_size": list(IMAGE_SIZE), "preprocessing": PREPROCESSING}


def cache_folder(cache_dir: str | os.PathLike, weights: str, kind: str = "pooled") -> Path:
    """The recipe's folder inside ``cache_dir``, e.g. ``resnet50-imagenet-224`` (``...-224-grid`` for the grid)."""
    return Path(cache_dir) / f"resnet50-{weights}-{IMAGE_SIZE[0]}{'' if kind == 'pooled' else '-' + kind}"
