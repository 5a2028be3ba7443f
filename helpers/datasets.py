"""Datasets in one shape: an images folder plus a table ``image, caption, split`` (lesson 01).

``load_dataset()`` reads ``CAPTION_DATASET`` (or the name it is given):

* ``flickr8k`` downloads and checks the two Flickr8k archives on first use (:mod:`helpers.flickr8k`);
* ``shapes`` generates a small offline dataset of coloured shapes, in the Flickr8k layout (:mod:`helpers.shapes`);
* a folder in the Kaggle layout (``Images/`` + ``captions.txt``) or the Flickr8k layout;
* ``flickr30k`` and ``coco``, or a folder with Karpathy's split file (lesson 10, :mod:`helpers.karpathy`).

Loading checks every image once (:func:`helpers.images.check_images`; the verdicts are
remembered, so the next load costs nothing) and leaves out captions whose image is
missing or unreadable, saying which and why. From there data flows one way: dataset ->
text -> features -> model, and no later stage has to drop images.

A loaded dataset also knows where everything made from it goes (``artifacts_dir``), so a
helper given a dataset writes into that dataset's folder, never into another's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import flickr8k, karpathy
from helpers.caption_files import read_captions_csv, read_split_file, read_token_file
from helpers.config import Settings, dataset_key, get_settings, variant
from helpers.errors import CourseError
from helpers.flickr8k import SPLIT_FILES, SPLITS, TOKEN_FILE
from helpers.images import check_images
from helpers.shapes import make_shapes

#: Images per split that fast mode (CAPTION_FAST=1) keeps.
FAST_IMAGES = {"train": 1000, "dev": 200, "test": 200}
#: Where the verdicts of the image check are remembered, in ``artifacts/<dataset>/``.
CHECK_RECORD = "image-check.json"


@dataclass(frozen=True)
class Dataset:
    """An images folder and its captions: a DataFrame with columns ``image, caption, split``.

    ``subfolders`` says, for datasets that keep their images in several folders (COCO's
    ``train2014/`` and ``val2014/``), which folder inside ``images_dir`` holds an image.
    ``unreadable`` lists the images left out when the dataset was loaded, and why.
    ``artifacts_root`` (``artifacts/<name>``) and ``variant`` (``fast``, ``random-cnn``, ...)
    are set by :func:`load_dataset`: :attr:`artifacts_dir` is where this run's outputs go.
    """

    name: str
    images_dir: Path
    captions: pd.DataFrame
    subfolders: dict[str, str] = field(default_factory=dict, repr=False)
    unreadable: dict[str, str] = field(default_factory=dict, repr=False)
    artifacts_root: Path | None = field(default=None, repr=False)
    variant: str = ""

    def images(self, split: str | None = None) -> list[str]:
        """Sorted image file names, of one split or of all."""
        table = self.captions if split is None else self.captions[self.captions["split"] == split]
        return sorted(table["image"].unique())

    def image_path(self, image: str) -> Path:
        """Full path of an image file."""
        return self.images_dir / self.subfolders.get(image, "") / image

    def references(self, images: Iterable[str]) -> list[list[str]]:
        """The human captions of each image, in the order given (lessons 08-09)."""
        by_image = self.captions.groupby("image")["caption"].apply(list)
        return [by_image[image] for image in images]

    @property
    def artifacts_dir(self) -> Path:
        """Where this run's outputs go: vocabulary, embedding matrix, model, metrics (``artifacts/<name>/<variant>``)."""
        return self._root() / self.variant

    @property
    def features_dir(self) -> Path:
        """Where its images' CNN features are cached (``artifacts/<name>/features``), shared by every variant."""
        return self._root() / "features"

    def _root(self) -> Path:
        if self.artifacts_root is None:
            raise CourseError(
                f"Dataset {self.name!r} was not made by load_dataset(), so it has no artifacts folder: "
                "pass the folder to write to."
            )
        return self.artifacts_root

    def __repr__(self) -> str:
        counts = ", ".join(f"{split} {len(self.images(split))}" for split in SPLITS)
        dropped = f", {len(self.unreadable)} unreadable left out" if self.unreadable else ""
        shown = f"{len(self.captions)} captions of {len(self.images())} images ({counts}){dropped}"
        return f"Dataset({self.name!r}: {shown} in {self.images_dir})"


def load_dataset(name: str | None = None, *, fast: bool | None = None, settings: Settings | None = None) -> Dataset:
    """Load the dataset named by ``name`` or ``CAPTION_DATASET``, preparing it on first use.

    ``settings`` defaults to the environment (:func:`helpers.config.get_settings`). In fast
    mode (``CAPTION_FAST=1``, or ``fast=True``) only the first images of each split are
    kept (:data:`FAST_IMAGES`), so every lesson runs in minutes.
    """
    settings = settings or get_settings()
    name = name or settings.dataset
    fast = settings.fast if fast is None else fast
    dataset = _read(name, settings)
    dataset = fast_subset(dataset) if fast else dataset
    root = settings.base_dir / "artifacts" / dataset.name
    dataset = dataclasses.replace(dataset, artifacts_root=root, variant=variant(fast, settings.cnn_weights))
    return without_unreadable(dataset, root / CHECK_RECORD)


def _read(name: str, settings: Settings) -> Dataset:
    if name == "flickr8k":
        root = flickr8k.prepare_flickr8k(
            settings.data_dir / "flickr8k" / "archives", settings.extract_dir / "flickr8k", settings.flickr8k_url
        )
        return read_flickr_layout(root, "flickr8k", flickr8k.COUNTS)
    if name == "shapes":
        return read_flickr_layout(make_shapes(settings.extract_dir / "shapes"), "shapes")
    if name in karpathy.KARPATHY_DATASETS:
        return read_karpathy(karpathy.prepare_karpathy(name, settings.data_dir / name))
    return read_folder(Path(name).expanduser())


def on_disk(settings: Settings) -> tuple[bool, Path, str]:
    """Whether the configured dataset is ready on disk, where, and what to do if not (for ``doctor``).

    Only looks: nothing is downloaded or generated.
    """
    name = settings.dataset
    if name == "flickr8k":
        root = settings.extract_dir / "flickr8k"
        return (
            flickr8k.is_prepared(root),
            root,
            "`make prefetch` (1 GB download), or work offline with CAPTION_DATASET=shapes",
        )
    if name == "shapes":
        root = settings.extract_dir / "shapes"
        return (root / "VERSION").exists(), root, "any lesson (or `make prefetch`) generates it, in seconds"
    if name in karpathy.KARPATHY_DATASETS:
        root = settings.data_dir / name
        return (root / karpathy.KARPATHY_DATASETS[name]).exists(), root, "`make prefetch` downloads it (see lesson 10)"
    folder = Path(name).expanduser()
    found = folder.is_dir() and (
        (folder / "captions.txt").exists()
        or (folder / TOKEN_FILE).exists()
        or karpathy.karpathy_file(folder) is not None
    )
    return (
        found,
        folder,
        "CAPTION_DATASET must be flickr8k, shapes, flickr30k, coco or a dataset folder (see the README)",
    )


def without_unreadable(dataset: Dataset, record: Path | None = None) -> Dataset:
    """The dataset without the images :func:`helpers.images.check_images` finds unusable, saying which (lesson 01)."""
    verdicts = check_images([dataset.image_path(image) for image in dataset.images()], record)
    bad = {path.name: info.problem for path, info in verdicts.items() if info.problem}
    if not bad:
        return dataset
    drop = dataset.captions["image"].isin(list(bad))
    listed = ", ".join(f"{image} ({why})" for image, why in list(bad.items())[:5])
    more = f" and {len(bad) - 5} more (see .unreadable)" if len(bad) > 5 else ""
    print(f"Left out {int(drop.sum())} captions of {len(bad)} unreadable image(s): {listed}{more}.")
    return dataclasses.replace(
        dataset, captions=dataset.captions[~drop].reset_index(drop=True), unreadable={**dataset.unreadable, **bad}
    )


def read_folder(folder: Path) -> Dataset:
    """A dataset folder given by path: the Kaggle layout, the Flickr8k layout or a Karpathy split file."""
    if not folder.is_dir():
        raise CourseError(
            f"CAPTION_DATASET={folder} is not a dataset name (flickr8k, shapes, flickr30k, coco) nor an existing folder."
        )
    if (folder / "captions.txt").exists():
        return read_kaggle(folder)
    if (folder / TOKEN_FILE).exists():
        return read_flickr_layout(folder, folder.name)
    if karpathy.karpathy_file(folder) is not None:
        return read_karpathy(folder)
    raise CourseError(
        f"{folder} holds neither captions.txt (Kaggle layout), {TOKEN_FILE} (Flickr8k layout) "
        f"nor a dataset_*.json split file (Karpathy layout)."
    )


def fast_subset(dataset: Dataset, sizes: dict[str, int] | None = None) -> Dataset:
    """Keep the first ``sizes[split]`` images (in name order) of each split (default :data:`FAST_IMAGES`)."""
    sizes = sizes or FAST_IMAGES
    keep = {image for split in SPLITS for image in dataset.images(split)[: sizes[split]]}
    table = dataset.captions[dataset.captions["image"].isin(keep)].reset_index(drop=True)
    return dataclasses.replace(dataset, captions=table)


# ---------------------------------------------------------------- the layouts


def _drop_missing_images(
    table: pd.DataFrame, images_dir: Path, subfolders: dict[str, str] | None = None
) -> pd.DataFrame:
    """Drop captions whose image file is absent (Flickr8k's token file lists one bogus id).

    ``subfolders`` (image -> folder inside ``images_dir``) is for datasets kept in several folders.
    """
    subfolders = subfolders or {}
    folders = [sub for sub in set(subfolders.values()) | {""} if (images_dir / sub).is_dir()]
    present = {(sub, path.name) for sub in folders for path in (images_dir / sub).iterdir()}
    missing = sorted(image for image in set(table["image"]) if (subfolders.get(image, ""), image) not in present)
    if missing:
        print(
            f"Dropped {int(table['image'].isin(missing).sum())} caption(s) of {len(missing)} id(s) with no image file: {missing[:3]}."
        )
    return table[~table["image"].isin(missing)]


def read_flickr_layout(root: Path, name: str, expected: dict[str, int] | None = None) -> Dataset:
    """Read a folder in the Flickr8k layout; check the counts against ``expected`` if given."""
    images_dir = root / flickr8k.IMAGES_FOLDER
    if not images_dir.is_dir():
        raise CourseError(f"{root} has no {flickr8k.IMAGES_FOLDER}/ folder of images.")
    table = _drop_missing_images(read_token_file(root / TOKEN_FILE), images_dir)
    splits = {split: read_split_file(root / filename) for split, filename in SPLIT_FILES.items()}
    if expected is not None:
        _check_counts(images_dir, splits, table, expected)
    split_of = {image: split for split, images in splits.items() for image in images}
    table = table.assign(split=table["image"].map(split_of)).dropna(subset=["split"])
    return Dataset(dataset_key(name), images_dir, table.reset_index(drop=True))


def _check_counts(
    images_dir: Path, splits: dict[str, list[str]], table: pd.DataFrame, expected: dict[str, int]
) -> None:
    found = {"images": sum(1 for p in images_dir.iterdir() if p.suffix.lower() == ".jpg")}
    found |= {split: len(set(images)) for split, images in splits.items()}
    problems = [f"{key}: {found[key]} (expected {want})" for key, want in expected.items() if found[key] != want]
    no_captions = {image for images in splits.values() for image in images} - set(table["image"])
    if no_captions:
        problems.append(
            f"{len(no_captions)} split image(s) with no image file or no caption, e.g. {sorted(no_captions)[0]}"
        )
    if problems:
        raise CourseError(
            f"{images_dir.parent} does not look like complete Flickr8k: {'; '.join(problems)}. "
            f"Delete that folder and run again to download it anew."
        )


def read_kaggle(root: Path) -> Dataset:
    """The Kaggle layout: ``Images/`` and ``captions.txt`` (:func:`helpers.caption_files.read_captions_csv`)."""
    images_dir = root / "Images"
    if not images_dir.is_dir():
        raise CourseError(f"{root} has captions.txt but no Images/ folder.")
    table = _drop_missing_images(read_captions_csv(root / "captions.txt"), images_dir)
    return Dataset(
        dataset_key(root.name), images_dir, table.assign(split=_kaggle_splits(root, table)).reset_index(drop=True)
    )


def _kaggle_splits(root: Path, table: pd.DataFrame) -> pd.Series:
    """Official Flickr8k split lists when present (next to captions.txt), else a seeded 75/12.5/12.5 split."""
    if all((root / filename).exists() for filename in SPLIT_FILES.values()):
        split_of = {image: split for split, f in SPLIT_FILES.items() for image in read_split_file(root / f)}
        return table["image"].map(split_of).fillna("unused")
    print("Note: no Flickr_8k.*Images.txt split lists next to captions.txt; using a seeded 75/12.5/12.5 split.")
    images = sorted(table["image"].unique())
    order = np.random.default_rng(0).permutation(len(images))
    cut1, cut2 = int(len(images) * 0.75), int(len(images) * 0.875)
    split_of = {images[i]: ("train" if r < cut1 else "dev" if r < cut2 else "test") for r, i in enumerate(order)}
    return table["image"].map(split_of)


def read_karpathy(folder: Path) -> Dataset:
    """A folder with Karpathy's split file and the images it lists (lesson 10; see :mod:`helpers.karpathy`)."""
    table, images_dir, subfolders = karpathy.read_split_file(folder)
    table = _drop_missing_images(table, images_dir, subfolders)
    return Dataset(dataset_key(folder.name), images_dir, table.reset_index(drop=True), subfolders)
