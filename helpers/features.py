"""Image features from a pretrained ResNet50, batched, cached and resumable (introduced in lesson 03).

Every image becomes one 2048-number vector: ResNet50 without its classification layer,
global-average-pooled. :func:`extract_features` runs a ``tf.data`` pipeline (parallel
read, decode and resize, batching, prefetch) into the model called through a
``tf.function`` (with its batch norms folded into the convolutions), so the model never
waits for JPEG decoding.

Bad images never stop a run. A cheap header check (Pillow reads only the first bytes)
skips missing files, non-images and formats TensorFlow cannot decode before the pipeline
starts; a file that still fails to decode (truncated, corrupt) is dropped inside the
pipeline, before batching, so it never takes its batch down. Either way it is listed in
``FeatureSet.skipped`` with the reason. Grayscale, RGBA, palette, CMYK and PNG-named-.jpg
images are converted to RGB by the decoder.

The cache (``cache_dir``, e.g. ``settings.features_dir``) holds one folder per feature
recipe, named after the model, weights and image size (``resnet50-imagenet-224``), so
features made with other weights are never reused. The folder holds ``meta.json`` (the
full recipe: model, weights, pooling, image size, preprocessing, seed; a folder whose
recipe differs is refused with a message), ``features.npy`` (n, 2048) float32,
``images.json`` (the image name of each row) and ``unreadable.json`` (skipped images and
why, checked again when the file changes). Extraction saves a ``part-*.npz`` file every
``chunk_size`` images (and what it has when interrupted); the next run folds the parts
into ``features.npy`` (part by part: memory never holds more than one) and extracts
only the images still missing. Images are keyed by file name, so one cache folder serves
one dataset. ``in_memory=False`` returns the cache memory-mapped instead of read, so
COCO-sized caches need no memory (lesson 10).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from helpers.config import CNN_WEIGHTS, get_settings
from helpers.datasets import Dataset
from helpers.download import download, md5sum
from helpers.errors import CourseError
from helpers.files import atomic_path, read_json, write_json

IMAGE_SIZE = (224, 224)
FEATURE_SIZE = 2048
#: Seed of the random ResNet50 weights (CAPTION_CNN_WEIGHTS=none): same image, same vector.
SEED = 0
#: Formats TensorFlow's decode_image reads; anything else is skipped with a note.
DECODABLE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
PREPROCESSING = (
    "decode_image to RGB, resize to 224x224 (bilinear, antialiased), "
    "resnet50.preprocess_input (caffe: RGB->BGR, ImageNet mean subtracted, no scaling)"
)
CACHE_FORMAT = 1

WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{WEIGHTS_FILE}"


@dataclass(frozen=True)
class FeatureSet:
    """Features of the readable images: row i of ``features`` belongs to ``images[i]``.

    ``features`` is an array in memory, or the cache's ``features.npy`` memory-mapped
    (``in_memory=False``, lesson 10): the operating system then reads only the rows you
    use, so a 1 GB file costs no memory until used. ``skipped`` maps each unreadable
    image to the reason it was left out.
    """

    features: np.ndarray
    images: list[str]
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @functools.cached_property
    def rows(self) -> dict[str, int]:
        """Row of each image name."""
        return {image: row for row, image in enumerate(self.images)}

    def row_numbers(self, images: Iterable[str]) -> np.ndarray:
        """The rows of ``images``, in that order (a CourseError names an image without features)."""
        images = list(images)
        unknown = [image for image in images if image not in self.rows]
        if unknown:
            why = self.skipped.get(unknown[0], "not among the extracted images")
            raise CourseError(f"No features for {len(unknown)} image(s), e.g. {unknown[0]} ({why}).")
        return np.array([self.rows[image] for image in images], dtype=np.int64)

    def lookup(self, images: Iterable[str]) -> np.ndarray:
        """The (len(images), 2048) float32 features of ``images``, in that order (read from disk when memory-mapped)."""
        return np.asarray(self.features[self.row_numbers(images)], dtype=np.float32)

    def __repr__(self) -> str:
        where = ""
        if isinstance(self.features, np.memmap):
            where = f" ({self.features.dtype}, {self.features.nbytes / 1e6:.1f} MB memory-mapped from {self.features.filename})"
        return f"FeatureSet({len(self)} images x {self.features.shape[1]} features{where}, {len(self.skipped)} skipped)"


# ---------------------------------------------------------------- the model


def resolve_weights(weights: str | None = None) -> str:
    """``weights``, or CAPTION_CNN_WEIGHTS when None; checked to be 'imagenet' or 'none'."""
    weights = (weights or get_settings().cnn_weights).lower()
    if weights not in CNN_WEIGHTS:
        raise CourseError(f"CNN weights must be 'imagenet' or 'none', got {weights!r}.")
    return weights


def build_extractor(weights: str | None = None) -> keras.Model:
    """ResNet50 without its top, average-pooled: (batch, 224, 224, 3) -> (batch, 2048) (lesson 03).

    ``weights`` is 'imagenet' or 'none' (random weights, seeded so the same image always
    gives the same vector); None reads CAPTION_CNN_WEIGHTS. Built once per process.
    """
    return _build_extractor(resolve_weights(weights))


@functools.cache
def _build_extractor(weights: str) -> keras.Model:
    model = keras.applications.ResNet50(
        include_top=False, weights=None, pooling="avg", input_shape=(*IMAGE_SIZE, 3)
    )
    if weights == "imagenet":
        model.load_weights(imagenet_weights_file())
    else:
        _seed_weights(model, SEED)
    return model


def _seed_weights(model: keras.Model, seed: int) -> None:
    """Re-draw every convolution kernel from a seeded Glorot initializer (biases and batch norms start constant)."""
    for number, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            layer.kernel.assign(keras.initializers.GlorotUniform(seed=seed + number)(layer.kernel.shape))


def imagenet_weights_path() -> Path:
    """Where Keras keeps the ResNet50 ImageNet weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    return home / "models" / WEIGHTS_FILE


def imagenet_weights_file() -> Path:
    """Path of Keras' cached ResNet50 ImageNet weights (no top), downloaded on first use (lesson 03).

    Looks where Keras does: ``$KERAS_HOME/models`` or ``~/.keras/models``. When the file
    is missing and cannot be downloaded, raises one CourseError with the three fixes.
    """
    path = imagenet_weights_path()
    if not path.exists():
        try:
            download(WEIGHTS_URL, path, md5=WEIGHTS_MD5, desc="ResNet50 ImageNet weights")
        except (CourseError, OSError) as error:
            raise CourseError(
                f"The ResNet50 ImageNet weights are not in {path.parent} and cannot be downloaded ({error}). "
                f"Fix it one of three ways: connect to the internet once and run again; "
                f"or copy {WEIGHTS_FILE} (MD5 {WEIGHTS_MD5}) into {path.parent}; "
                f"or set CAPTION_CNN_WEIGHTS=none to use random weights (everything runs, captions get worse)."
            ) from None
    elif md5sum(path) != WEIGHTS_MD5:
        raise CourseError(
            f"{path} is damaged (its MD5 is not {WEIGHTS_MD5}): delete it and run again to download it anew."
        )
    return path


def extractor_function(weights: str | None = None) -> Callable[[tf.Tensor], tf.Tensor]:
    """The extractor as a ``tf.function`` over (batch, 224, 224, 3) float32 batches (lesson 03).

    Calling the model this way, batch after batch, avoids ``model.predict``'s per-call
    overhead; the fixed input signature means one trace for every batch size. It runs
    the extractor with its batch norms folded away (:func:`fold_batch_norms`).
    """
    return _extractor_function(resolve_weights(weights))


@functools.cache
def _extractor_function(weights: str) -> Callable[[tf.Tensor], tf.Tensor]:
    model = fold_batch_norms(_build_extractor(weights))
    signature = [tf.TensorSpec((None, *IMAGE_SIZE, 3), tf.float32)]
    return tf.function(lambda batch: model(batch, training=False), input_signature=signature)


def fold_batch_norms(model: keras.Model) -> keras.Model:
    """A copy of ResNet50 with every batch norm folded into the convolution before it (lesson 03).

    At inference a batch norm is a fixed scale and shift of each channel,
    ``gamma * (x - mean) / sqrt(variance + epsilon) + beta``. Right after a convolution the
    convolution can do it: its kernel times the scale, its bias shifted. The copy gives the
    same features up to float rounding (within 1e-5, checked by tests/test_features.py) with
    two passes fewer over every activation map: about 10 % less work on a CPU. ResNet50 names each batch norm after its
    convolution (``conv2_block1_1_conv`` -> ``conv2_block1_1_bn``).
    """
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.layers.BatchNormalization):
            return keras.layers.Lambda(lambda x: x, name=layer.name)  # folded into the convolution
        return layer.__class__.from_config(layer.get_config())

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            norm = model.get_layer(layer.name.removesuffix("_conv") + "_bn")
            gamma, beta, mean, variance = (np.asarray(w, np.float64) for w in norm.get_weights())
            scale = gamma / np.sqrt(variance + norm.epsilon)
            kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
            folded.get_layer(layer.name).set_weights(
                [(kernel * scale).astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]
            )
    return folded


# ---------------------------------------------------------------- images in


def load_image(path: tf.Tensor | str) -> tf.Tensor:
    """Read one image file into the (224, 224, 3) float32 input ResNet50 expects (lesson 03).

    decode_image looks at the content, not the extension, and converts grayscale, RGBA,
    palette and CMYK images to RGB. ``preprocess_input`` is ResNet50's "caffe" mode:
    channels reordered to BGR and the ImageNet mean subtracted, no scaling.
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, IMAGE_SIZE, antialias=True)
    return keras.applications.resnet50.preprocess_input(image)


def image_pipeline(paths: list[Path], batch_size: int = 32) -> tf.data.Dataset:
    """Batches of (positions in ``paths``, images): parallel decode, batching, prefetch (lesson 03).

    A file that fails to decode is dropped before batching, so it never takes its batch
    down; the positions tell which files made it.
    """
    files = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths]))
    images = files.map(lambda i, path: (i, load_image(path)), num_parallel_calls=tf.data.AUTOTUNE)
    return images.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)


def image_problem(path: Path) -> str | None:
    """Why an image cannot be used, judged from its header only (fast), or None (lesson 03)."""
    try:
        with Image.open(path) as image:
            kind = image.format
    except FileNotFoundError:
        return "file not found"
    except UnidentifiedImageError:
        return "empty file" if path.stat().st_size == 0 else "not an image file"
    except OSError as error:
        return f"cannot be read ({error})"
    if kind not in DECODABLE_FORMATS:
        return f"{kind} images are not supported: save it as JPEG or PNG"
    return None


def decode_problem(path: Path) -> str:
    """Why a file that passed :func:`image_problem` still failed to decode (asks Pillow)."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError) as error:
        return f"cannot be decoded: {error}"
    return "TensorFlow cannot decode it"


# ---------------------------------------------------------------- extraction


def extract_features(
    paths: Iterable[str | os.PathLike],
    *,
    weights: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    chunk_size: int = 512,
    in_memory: bool = True,
) -> FeatureSet:
    """ResNet50 features of the readable images among ``paths``, unreadable ones skipped (lesson 03).

    With ``cache_dir``, features are read from and saved to its recipe folder (see the
    module docstring): only images not cached yet are extracted, a part file is saved
    every ``chunk_size`` images, and an interrupted run resumes where it stopped.
    Images are named by file name in the result (and in the cache).

    ``in_memory=False`` (lesson 10; needs ``cache_dir``) reads nothing into memory: the
    result is the whole cache, ``features.npy`` memory-mapped, in the cache's row order
    (it may know more images than ``paths``). Memory then holds one chunk of features at
    most, however many images there are.
    """
    weights = resolve_weights(weights)
    paths = [Path(p) for p in paths]
    if cache_dir is None and not in_memory:
        raise CourseError("in_memory=False memory-maps the feature cache: give a cache_dir too.")
    if cache_dir is None:
        parts: list[tuple[list[str], np.ndarray]] = []
        skipped = _extract(paths, weights, batch_size, chunk_size, lambda *part: parts.append(part))
        images = [name for names, _ in parts for name in names]
        vectors = np.concatenate([v for _, v in parts]) if parts else np.zeros((0, FEATURE_SIZE), np.float32)
        return FeatureSet(vectors, images, skipped)

    folder = open_cache(Path(cache_dir), weights)
    fold_parts(folder)
    cached = set(cached_images(folder))
    paths = list({path.name: path for path in paths}.values())  # the cache knows images by name
    known_bad = still_unreadable(folder, paths)
    pending = [path for path in paths if path.name not in cached and path.name not in known_bad]
    print(
        f"Feature cache {folder}: {len(cached & {p.name for p in paths})} of {len(paths)} images cached, "
        f"{len(known_bad)} known unreadable, extracting {len(pending)}."
    )
    skipped = _extract(pending, weights, batch_size, chunk_size, lambda *part: save_part(folder, *part))
    fold_parts(folder)
    remember_unreadable(folder, pending, skipped)
    skipped = known_bad | skipped
    if not in_memory:
        return mapped_features(folder, skipped)
    return _select(folder, [path.name for path in paths if path.name not in skipped], skipped)


def _extract(
    paths: list[Path],
    weights: str,
    batch_size: int,
    chunk_size: int,
    save: Callable[[list[str], np.ndarray], None],
) -> dict[str, str]:
    """Run the pipeline over ``paths``, handing every ``chunk_size`` results to ``save``; return the skipped."""
    problems = {path: image_problem(path) for path in paths}
    skipped = {path.name: why for path, why in problems.items() if why}
    readable = [path for path, why in problems.items() if not why]
    if not readable:
        return skipped
    forward = _extractor_function(weights)
    names: list[str] = []
    vectors: list[np.ndarray] = []
    done: set[int] = set()
    try:
        with tqdm(total=len(readable), unit="img", desc="ResNet50 features") as bar:
            for positions, batch in image_pipeline(readable, batch_size):
                vectors.append(forward(batch).numpy())
                names += [readable[i].name for i in positions.numpy()]
                done.update(positions.numpy().tolist())
                bar.update(int(positions[-1]) + 1 - bar.n)  # files dropped on the way count as done
                if len(names) >= chunk_size:
                    save(names, np.concatenate(vectors))
                    names, vectors = [], []
    finally:  # also on KeyboardInterrupt: nothing computed is lost
        if names:
            save(names, np.concatenate(vectors))
    failed = [path for i, path in enumerate(readable) if i not in done]
    return skipped | {path.name: decode_problem(path) for path in failed}


def dataset_features(dataset: Dataset, *, batch_size: int = 32, in_memory: bool = True) -> tuple[FeatureSet, Dataset]:
    """Features of every image of ``dataset`` (cached, resumable) and the dataset without unreadable images (lesson 03).

    The cache lives in that dataset's ``features_dir`` (artifacts/<dataset>/features),
    shared by fast and full mode; the weights come from CAPTION_CNN_WEIGHTS.
    ``in_memory=False`` returns the cache memory-mapped (see :func:`extract_features`;
    lesson 10), for datasets whose features would not fit in memory.
    """
    paths = [dataset.image_path(image) for image in dataset.images()]
    features = extract_features(paths, cache_dir=features_dir(dataset), batch_size=batch_size, in_memory=in_memory)
    return features, dataset.drop_images(features.skipped)


def features_dir(dataset: Dataset) -> Path:
    """Where the features of ``dataset`` are cached: ``artifacts/<dataset>/features`` (lesson 03)."""
    return dataclasses.replace(get_settings(), dataset=dataset.name).features_dir


# ---------------------------------------------------------------- the cache on disk


def recipe(weights: str) -> dict:
    """Everything that decides the feature values; a cache is reused only for an identical recipe."""
    return {
        "format": CACHE_FORMAT,
        "model": "ResNet50",
        "weights": weights,
        "seed": SEED if weights == "none" else None,
        "pooling": "avg",
        "image_size": list(IMAGE_SIZE),
        "preprocessing": PREPROCESSING,
    }


def cache_folder(cache_dir: Path, weights: str) -> Path:
    """The recipe's folder inside ``cache_dir``, e.g. ``resnet50-imagenet-224``."""
    return Path(cache_dir) / f"resnet50-{weights}-{IMAGE_SIZE[0]}"


def open_cache(cache_dir: Path, weights: str) -> Path:
    """The recipe folder, created with its ``meta.json``; refuses a folder made with another recipe."""
    folder = cache_folder(cache_dir, weights)
    meta, wanted = folder / "meta.json", recipe(weights)
    if not meta.exists():
        write_json(meta, wanted)
        return folder
    found = read_json(meta)
    if found != wanted:
        differ = "; ".join(f"{key} {found.get(key)!r} there, {value!r} here" for key, value in wanted.items() if found.get(key) != value)
        raise CourseError(
            f"The feature cache {folder} was made with other settings ({differ}), so it is not reused: "
            f"delete that folder (or set CAPTION_DATA_DIR elsewhere) and run again."
        )
    return folder


def cached_images(folder: Path) -> list[str]:
    """Image names of the rows of ``features.npy`` (empty for a new cache)."""
    index = folder / "images.json"
    return read_json(index) if index.exists() else []


def _stamp(path: Path) -> list[int] | None:
    """Size and modification time of a file (None if it is missing): tells whether it changed."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def still_unreadable(folder: Path, paths: list[Path]) -> dict[str, str]:
    """Images of ``paths`` found unreadable by an earlier run and unchanged since (image -> why).

    Remembering them means a complete cache needs neither the model nor its weights.
    """
    record = folder / "unreadable.json"
    known = read_json(record) if record.exists() else {}
    return {p.name: known[p.name]["why"] for p in paths if p.name in known and known[p.name]["stamp"] == _stamp(p)}


def remember_unreadable(folder: Path, checked: list[Path], skipped: dict[str, str]) -> None:
    """Record in ``unreadable.json`` which of the ``checked`` images were skipped, and why."""
    record = folder / "unreadable.json"
    known = read_json(record) if record.exists() else {}
    names = {path.name for path in checked}
    if not names & (set(known) | set(skipped)):
        return
    known = {name: entry for name, entry in known.items() if name not in names}
    known |= {p.name: {"why": skipped[p.name], "stamp": _stamp(p)} for p in checked if p.name in skipped}
    write_json(record, known)


def save_part(folder: Path, images: list[str], features: np.ndarray) -> None:
    """Save one chunk of freshly extracted features as ``part-<time>.npz``, atomically."""
    with atomic_path(folder / f"part-{time.time_ns()}.npz") as tmp:
        np.savez(tmp, images=np.array(images), features=features.astype(np.float32))


def fold_parts(folder: Path) -> None:
    """Append the part files' new images to ``features.npy`` / ``images.json``, then delete the parts.

    The new ``features.npy`` is written memory-mapped, to a temporary file: the old rows,
    then each part's new rows in turn, so memory holds one part at a time however large
    the cache. It replaces the old file first, ``images.json`` goes second, the parts
    last: after a crash at any point the index names a prefix of the rows, and the parts
    are still there.
    """
    parts = sorted(folder.glob("part-*.npz"))
    if not parts:
        return
    images = cached_images(folder)
    kept = len(images)
    seen, new_rows = set(images), []
    for part in parts:  # the names only: which rows of each part are new
        with np.load(part) as data:
            names = data["images"].tolist()
        new = []
        for i, name in enumerate(names):
            if name not in seen:
                seen.add(name)
                new.append(i)
        new_rows.append(new)
        images += [names[i] for i in new]
    if len(images) > kept:
        with atomic_path(folder / "features.npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(images), FEATURE_SIZE))
            if kept:
                out[:kept] = np.load(folder / "features.npy", mmap_mode="r")[:kept]
            row = kept
            for part, new in zip(parts, new_rows):
                with np.load(part) as data:
                    out[row : row + len(new)] = data["features"][new]
                row += len(new)
            out.flush()
            del out  # release the file before it is renamed (Windows insists)
        write_json(folder / "images.json", images)
    for part in parts:
        part.unlink()


def mapped_features(folder: Path, skipped: dict[str, str] | None = None) -> FeatureSet:
    """Every image of the cache folder, its ``features.npy`` memory-mapped read-only (lesson 10)."""
    path = folder / "features.npy"
    if not path.exists():  # nothing extracted yet
        return FeatureSet(np.zeros((0, FEATURE_SIZE), np.float32), [], skipped or {})
    return FeatureSet(np.load(path, mmap_mode="r"), cached_images(folder), skipped or {})


def _select(folder: Path, images: list[str], skipped: dict[str, str]) -> FeatureSet:
    """A FeatureSet of ``images`` (in that order) read from the cache folder."""
    rows = {name: row for row, name in enumerate(cached_images(folder))}
    stored = np.load(folder / "features.npy", mmap_mode="r")
    vectors = np.asarray(stored[[rows[image] for image in images]], dtype=np.float32) if images else np.zeros((0, FEATURE_SIZE), np.float32)
    del stored
    return FeatureSet(vectors, images, skipped)
