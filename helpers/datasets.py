"""Datasets in one shape: an images folder plus a table ``image, caption, split`` (lesson 01).

:func:`load_dataset` prepares a dataset on first use and leaves out the captions of unreadable images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.config import Settings, dataset_key, get_settings
from helpers.data import flickr8k, karpathy
from helpers.data.caption_files import read_captions_csv, read_split_file, read_token_file
from helpers.data.flickr8k import COUNTS, IMAGES_FOLDER, SPLIT_FILES, SPLITS, TOKEN_FILE  # noqa: F401 (COUNTS: lesson 01)
from helpers.data.images import check_images
from helpers.data.shapes_dataset import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, make_shapes
from helpers.system.errors import CourseError

#: Images per split that fast mode (CAPTION_FAST=1) keeps.
FAST_IMAGES = {"train": 1000, "dev": 200, "test": 200}

#: The words of the shapes captions, by what they name: the lessons' checks on the test settings use them.
SHAPE_WORDS = dict(colour=tuple(COLOURS), shape=SHAPES, background=tuple(BACKGROUNDS), position=tuple(POSITIONS))
#: Flickr8k's token file lists two keys without an image file: an image the archive lacks, and a bogus copy of its name.
KEYS_WITHOUT_IMAGE = ("2258277193_586949ec62.jpg", "2258277193_586949ec62.jpg.1")
#: Figures of the real Flickr8k text with the course's cleaning and ``min_count=10`` (tests/test_flickr8k_text.py).
FACTS = {
    "images": 8091,  # in the archive (its paper describes 8,000)
    "caption_lines": 40460,  # lines of Flickr8k.token.txt
    "ids_in_token_file": 8093,  # 8,092 .jpg names (one of them not in the archive) and a bogus id
    "captions": 40455,  # of the images in the archive: five each
    "images_in_no_split": 91,
    "train_images": 6000,
    "train_captions": 30000,
    "vocab_ids": 1653,  # padding included: the Embedding's input_dim and the softmax size
    "vocab_words": 1652,
    "max_len": 34,  # ids of the longest encoded training caption, startseq and endseq included
    "train_pairs": 339109,  # (image, prefix) -> next word pairs of the classic generator, per epoch
    "leaky_vocab_ids": 1926,  # train, dev and test captions counted (the leak lesson 02 warns about)
    "leaky_max_len": 35,
    "all_images_vocab_ids": 1951,  # the captions of all 8,091 images, the 91 in no split included
    "train_captions_losing_a_word": 0.35,  # share of training captions with a word below min_count
    "occurrences_of_common_words": 0.958,  # share of training word occurrences (lesson 01's words) seen 10+ times
}


@dataclass(frozen=True)
class Dataset:
    """An images folder and its captions (``image, caption, split``), with the settings naming its folders (lesson 01)."""

    name: str
    images_dir: Path
    captions: pd.DataFrame
    settings: Settings | None = field(default=None, repr=False)
    subfolders: dict[str, str] = field(default_factory=dict, repr=False)
    unreadable: dict[str, str] = field(default_factory=dict, repr=False)

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
        """Where this run's outputs go: vocabulary, embedding matrix, model, metrics."""
        return self._settings().artifacts_dir

    @property
    def features_dir(self) -> Path:
        """Where its images' CNN features are cached, shared by every variant."""
        return self._settings().features_dir

    def _settings(self) -> Settings:
        if self.settings is None:
            raise CourseError(f"Dataset {self.name!r} was not made by load_dataset(): it has no folders of its own.")
        return self.settings

    def __repr__(self) -> str:
        counts = ", ".join(f"{split} {len(self.images(split))}" for split in SPLITS)
        dropped = f", {len(self.unreadable)} unreadable left out" if self.unreadable else ""
        shown = f"{len(self.captions)} captions of {len(self.images())} images ({counts}){dropped}"
        return f"Dataset({self.name!r}: {shown} in {self.images_dir})"


def load_dataset(
    name: str | None = None, *, fast: bool | None = None, settings: Settings | None = None, images: bool = True
) -> Dataset:
    """Load the dataset ``name``, preparing it on first use (lesson 01); ``settings`` default to the environment's.
    ``images=False``: Flickr8k's captions only, for lessons that read no image."""
    settings = settings or get_settings()
    settings = settings.replace(dataset=name or settings.dataset, fast=settings.fast if fast is None else fast)
    dataset = _read(settings, images)
    dataset = fast_subset(dataset) if settings.fast else dataset
    dataset = dataclasses.replace(dataset, name=settings.dataset_key, settings=settings)
    if not dataset.images_dir.is_dir():  # the text alone (images=False)
        return dataset
    record = Path("artifacts", settings.dataset_key, "image-check.json")  # an instructor's, while the learner has none
    shared = settings.shared_dir / record if settings.shared_dir else None
    return without_unreadable(dataset, settings.outputs_root / "image-check.json", shared)


def _read(settings: Settings, images: bool) -> Dataset:
    name = settings.dataset
    ready, root, _ = on_disk(settings)
    if settings.shared_dir is not None and not ready:
        raise CourseError(
            f"The shared data folder {settings.shared_dir} (CAPTION_SHARED_DIR) does not hold {name}: the instructor "
            f"prepares it once with `CAPTION_DATA_DIR={settings.shared_dir} CAPTION_DATASET={name} make prefetch`."
        )
    if name == "flickr8k":
        flickr8k.prepare_flickr8k(settings.data_dir / "flickr8k" / "archives", root, settings.flickr8k_url, images)
        return read_flickr_layout(root, "flickr8k", flickr8k.COUNTS if (root / IMAGES_FOLDER).is_dir() else None)
    if name == "shapes":
        return read_flickr_layout(make_shapes(root), "shapes")
    if name in karpathy.KARPATHY_DATASETS:
        return read_karpathy(karpathy.prepare_karpathy(name, root))
    return read_folder(root)


def on_disk(settings: Settings) -> tuple[bool, Path, str]:
    """Whether the configured dataset is ready on disk, where, and what to do if not; only looks (``doctor``)."""
    name = settings.dataset
    if name == "flickr8k":
        root = settings.extract_dir / "flickr8k"
        fix = "`make prefetch` (1 GB download), or work offline with CAPTION_DATASET=shapes"
        return flickr8k.is_prepared(root), root, fix
    if name == "shapes":
        root = settings.extract_dir / "shapes"
        return (root / "VERSION").exists(), root, "any lesson (or `make prefetch`) generates it, in seconds"
    if name in karpathy.KARPATHY_DATASETS:
        root = settings.data_dir / name
        return (root / karpathy.KARPATHY_DATASETS[name]).exists(), root, "`make prefetch` downloads it (see lesson 10)"
    folder = Path(name).expanduser()
    layouts = ("captions.txt", TOKEN_FILE)
    found = folder.is_dir() and (any((folder / f).exists() for f in layouts) or karpathy.karpathy_file(folder))
    return bool(found), folder, "CAPTION_DATASET must be flickr8k, shapes, flickr30k, coco or a dataset folder"


def without_unreadable(dataset: Dataset, record: Path | None = None, earlier: Path | None = None) -> Dataset:
    """The dataset without the images :func:`check_images` finds unusable (kept in ``record``), saying which."""
    verdicts = check_images([dataset.image_path(image) for image in dataset.images()], record, earlier)
    bad = {path.name: info.problem for path, info in verdicts.items() if info.problem}
    if not bad:
        return dataset
    drop = dataset.captions["image"].isin(list(bad))
    listed = ", ".join(f"{image} ({why})" for image, why in list(bad.items())[:5])
    more = f" and {len(bad) - 5} more (see .unreadable)" if len(bad) > 5 else ""
    print(f"Left out {int(drop.sum())} captions of {len(bad)} unreadable image(s): {listed}{more}.")
    kept = dataset.captions[~drop].reset_index(drop=True)
    return dataclasses.replace(dataset, captions=kept, unreadable={**dataset.unreadable, **bad})


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
    captions = dataset.captions[dataset.captions["image"].isin(keep)].reset_index(drop=True)
    return dataclasses.replace(dataset, captions=captions)


def _drop_missing_images(table: pd.DataFrame, folder: Path, subfolders: dict[str, str] | None = None) -> pd.DataFrame:
    """Drop captions whose image file is not in ``folder`` (Flickr8k's token file lists two such ids), saying which."""
    subfolders = subfolders or {}
    folders = [sub for sub in set(subfolders.values()) | {""} if (folder / sub).is_dir()]
    present = {(sub, path.name) for sub in folders for path in (folder / sub).iterdir()}
    missing = sorted(image for image in set(table["image"]) if (subfolders.get(image, ""), image) not in present)
    if missing:
        count = int(table["image"].isin(missing).sum())
        print(f"Dropped {count} caption(s) of {len(missing)} id(s) with no image file: {missing[:3]}.")
    return table[~table["image"].isin(missing)]


def read_flickr_layout(root: Path, name: str, expected: dict[str, int] | None = None) -> Dataset:
    """A folder in the Flickr8k layout; counts checked against ``expected`` if given; without images, the text alone."""
    images_dir = root / IMAGES_FOLDER
    table = read_token_file(root / TOKEN_FILE)
    if images_dir.is_dir():
        table = _drop_missing_images(table, images_dir)
    elif name != "flickr8k":
        raise CourseError(f"{root} has no {IMAGES_FOLDER}/ folder of images.")
    splits = {split: read_split_file(root / filename) for split, filename in SPLIT_FILES.items()}
    if expected is not None:
        _check_counts(images_dir, splits, table, expected)
    split_of = {image: split for split, images in splits.items() for image in images}
    table = table.assign(split=table["image"].map(split_of)).dropna(subset=["split"])
    return Dataset(dataset_key(name), images_dir, table.reset_index(drop=True))


def _check_counts(images_dir: Path, splits: dict[str, list[str]], table: pd.DataFrame, want: dict[str, int]) -> None:
    found = {"images": sum(1 for p in images_dir.iterdir() if p.suffix.lower() == ".jpg")}
    found |= {split: len(set(images)) for split, images in splits.items()}
    problems = [f"{key}: {found[key]} (expected {count})" for key, count in want.items() if found[key] != count]
    if no_captions := sorted({image for images in splits.values() for image in images} - set(table["image"])):
        problems.append(f"{len(no_captions)} split image(s) with no image file or no caption, e.g. {no_captions[0]}")
    if problems:
        raise CourseError(
            f"{images_dir.parent} does not look like complete Flickr8k: {'; '.join(problems)}. "
            "Delete that folder and run again to download it anew."
        )


def read_kaggle(root: Path) -> Dataset:
    """The Kaggle layout: ``Images/`` and ``captions.txt``; Flickr8k's split lists beside it are used when there."""
    images_dir = root / "Images"
    if not images_dir.is_dir():
        raise CourseError(f"{root} has captions.txt but no Images/ folder.")
    table = _drop_missing_images(read_captions_csv(root / "captions.txt"), images_dir)
    if all((root / filename).exists() for filename in SPLIT_FILES.values()):
        split_of = {image: split for split, f in SPLIT_FILES.items() for image in read_split_file(root / f)}
        splits = table["image"].map(split_of).fillna("unused")
    else:
        print("Note: no Flickr_8k.*Images.txt split lists next to captions.txt; using a seeded 75/12.5/12.5 split.")
        images = sorted(table["image"].unique())
        order = np.random.default_rng(0).permutation(len(images))
        cut1, cut2 = int(len(images) * 0.75), int(len(images) * 0.875)
        split_of = {images[i]: ("train" if r < cut1 else "dev" if r < cut2 else "test") for r, i in enumerate(order)}
        splits = table["image"].map(split_of)
    return Dataset(dataset_key(root.name), images_dir, table.assign(split=splits).reset_index(drop=True))


def read_karpathy(folder: Path) -> Dataset:
    """A folder with Karpathy's split file and the images it lists (lesson 10)."""
    table, images_dir, subfolders = karpathy.read_karpathy_file(folder)
    table = _drop_missing_images(table, images_dir, subfolders)
    return Dataset(dataset_key(folder.name), images_dir, table.reset_index(drop=True), subfolders=subfolders)
