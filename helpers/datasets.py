"""Datasets in one shape: an images folder plus a table ``image, caption, split`` (lesson 01).

``load_dataset()`` reads ``CAPTION_DATASET``:

* ``flickr8k`` downloads and checks the two Flickr8k archives on first use;
* ``shapes`` generates a small offline dataset of coloured shapes, in the Flickr8k layout;
* a folder in the Kaggle layout (``Images/`` + ``captions.txt``) or the Flickr8k layout;
* ``flickr30k`` and ``coco``, or a folder with Karpathy's split file (``dataset_flickr30k.json``,
  ``dataset_coco.json``) and its images (lesson 10): see :func:`read_karpathy`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from helpers.config import Settings, get_settings
from helpers.download import download
from helpers.errors import CourseError

SPLITS = ("train", "dev", "test")

# Flickr8k as published (DESIGN section 4). The image folder really is spelled "Flicker".
FLICKR8K_ARCHIVES = {
    "Flickr8k_Dataset.zip": "f18a1e2920de5bd84dae7cf08ec78978",
    "Flickr8k_text.zip": "bf6c1abcb8e4a833b7f922104de18627",
}
FLICKR8K_IMAGES = "Flicker8k_Dataset"
TOKEN_FILE = "Flickr8k.token.txt"
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
FLICKR8K_COUNTS = {"images": 8091, "train": 6000, "dev": 1000, "test": 1000}

#: Images per split that fast mode (CAPTION_FAST=1) keeps.
FAST_IMAGES = {"train": 1000, "dev": 200, "test": 200}


@dataclass(frozen=True)
class Dataset:
    """An images folder and its captions: a DataFrame with columns ``image, caption, split``.

    ``subfolders`` says, for datasets that keep their images in several folders (COCO's
    ``train2014/`` and ``val2014/``), which folder inside ``images_dir`` holds an image.
    """

    name: str
    images_dir: Path
    captions: pd.DataFrame
    subfolders: dict[str, str] = field(default_factory=dict, repr=False)

    def images(self, split: str | None = None) -> list[str]:
        """Sorted image file names, of one split or of all."""
        table = self.captions if split is None else self.captions[self.captions["split"] == split]
        return sorted(table["image"].unique())

    def image_path(self, image: str) -> Path:
        """Full path of an image file."""
        return self.images_dir / self.subfolders.get(image, "") / image

    def drop_images(self, reasons: dict[str, str]) -> Dataset:
        """The dataset without the given images (image -> why), saying what was dropped."""
        drop = self.captions["image"].isin(list(reasons))
        if drop.any():
            listed = ", ".join(f"{image} ({why})" for image, why in list(reasons.items())[:5])
            more = f" and {len(reasons) - 5} more" if len(reasons) > 5 else ""
            print(f"Dropped {int(drop.sum())} captions of {len(reasons)} unreadable image(s): {listed}{more}.")
        return dataclasses.replace(self, captions=self.captions[~drop].reset_index(drop=True))

    def __repr__(self) -> str:
        counts = ", ".join(f"{split} {len(self.images(split))}" for split in SPLITS)
        return f"Dataset({self.name!r}: {len(self.captions)} captions of {len(self.images())} images ({counts}) in {self.images_dir})"


def load_dataset(name: str | None = None, *, fast: bool | None = None) -> Dataset:
    """Load the dataset named by ``name`` or ``CAPTION_DATASET``, preparing it on first use.

    In fast mode (``CAPTION_FAST=1``, or ``fast=True``) only the first images of each
    split are kept (:data:`FAST_IMAGES`), so every lesson runs in minutes.
    """
    settings = get_settings()
    name = name or settings.dataset
    if name == "flickr8k":
        dataset = read_flickr_layout(prepare_flickr8k(settings), "flickr8k", FLICKR8K_COUNTS)
    elif name == "shapes":
        dataset = read_flickr_layout(make_shapes(settings.data_dir / "shapes"), "shapes")
    elif name in KARPATHY_DATASETS:
        dataset = read_karpathy(prepare_karpathy(name, settings.data_dir / name))
    else:
        dataset = read_folder(Path(name).expanduser())
    use_fast = settings.fast if fast is None else fast
    return fast_subset(dataset) if use_fast else dataset


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
    if karpathy_file(folder) is not None:
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


# ---------------------------------------------------------------- reading caption files


def read_text(path: Path) -> str:
    """A text file as UTF-8, or Latin-1 (with a note) when it is not valid UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        print(f"Note: {path.name} is not UTF-8; read it as Latin-1.")
        return raw.decode("latin-1")


def read_token_file(path: Path) -> pd.DataFrame:
    """Parse ``IMAGE.jpg#N<TAB>caption`` lines into ``image, caption``, skipping bad lines."""
    rows, bad = [], []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        image = key.rsplit("#", 1)[0].strip()
        if not tab or not caption.strip() or not image:
            bad.append(number)
            continue
        rows.append((image, caption.strip()))
    if bad:
        print(f"Note: skipped {len(bad)} malformed line(s) in {path.name} (no tab or no caption): line(s) {bad[:5]}.")
    return pd.DataFrame(rows, columns=["image", "caption"])


def read_split_file(path: Path) -> list[str]:
    """One image name per line; blank lines ignored."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def _drop_missing_images(table: pd.DataFrame, images_dir: Path, subfolders: dict[str, str] | None = None) -> pd.DataFrame:
    """Drop captions whose image file is absent (Flickr8k's token file lists one bogus id).

    ``subfolders`` (image -> folder inside ``images_dir``) is for datasets kept in several folders.
    """
    subfolders = subfolders or {}
    folders = [sub for sub in set(subfolders.values()) | {""} if (images_dir / sub).is_dir()]
    present = {(sub, path.name) for sub in folders for path in (images_dir / sub).iterdir()}
    missing = sorted(image for image in set(table["image"]) if (subfolders.get(image, ""), image) not in present)
    if missing:
        print(f"Dropped {int(table['image'].isin(missing).sum())} caption(s) of {len(missing)} id(s) with no image file: {missing[:3]}.")
    return table[~table["image"].isin(missing)]


def read_flickr_layout(root: Path, name: str, expected: dict[str, int] | None = None) -> Dataset:
    """Read a folder in the Flickr8k layout; check the counts against ``expected`` if given."""
    images_dir = root / FLICKR8K_IMAGES
    if not images_dir.is_dir():
        raise CourseError(f"{root} has no {FLICKR8K_IMAGES}/ folder of images.")
    table = _drop_missing_images(read_token_file(root / TOKEN_FILE), images_dir)
    splits = {split: read_split_file(root / filename) for split, filename in SPLIT_FILES.items()}
    if expected is not None:
        _check_counts(images_dir, splits, table, expected)
    split_of = {image: split for split, images in splits.items() for image in images}
    table = table.assign(split=table["image"].map(split_of)).dropna(subset=["split"])
    return Dataset(name, images_dir, table.reset_index(drop=True))


def _check_counts(images_dir: Path, splits: dict[str, list[str]], table: pd.DataFrame, expected: dict[str, int]) -> None:
    found = {"images": sum(1 for p in images_dir.iterdir() if p.suffix.lower() == ".jpg")}
    found |= {split: len(set(images)) for split, images in splits.items()}
    problems = [f"{key}: {found[key]} (expected {want})" for key, want in expected.items() if found[key] != want]
    no_captions = {image for images in splits.values() for image in images} - set(table["image"])
    if no_captions:
        problems.append(f"{len(no_captions)} split image(s) with no image file or no caption, e.g. {sorted(no_captions)[0]}")
    if problems:
        raise CourseError(
            f"{images_dir.parent} does not look like complete Flickr8k: {'; '.join(problems)}. "
            f"Delete that folder and run again to download it anew."
        )


def read_kaggle(root: Path) -> Dataset:
    """The Kaggle layout: ``Images/`` and ``captions.txt`` (``image,caption``, commas in captions)."""
    images_dir = root / "Images"
    if not images_dir.is_dir():
        raise CourseError(f"{root} has captions.txt but no Images/ folder.")
    rows, bad = [], 0
    for line in read_text(root / "captions.txt").splitlines()[1:]:  # first line: the header
        image, comma, caption = line.partition(",")  # split at the first comma only
        if comma and caption.strip():
            rows.append((image.strip(), caption.strip().strip('"')))
        elif line.strip():
            bad += 1
    if bad:
        print(f"Note: skipped {bad} malformed line(s) in captions.txt.")
    table = _drop_missing_images(pd.DataFrame(rows, columns=["image", "caption"]), images_dir)
    return Dataset(root.name, images_dir, table.assign(split=_kaggle_splits(root, table)).reset_index(drop=True))


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


# ---------------------------------------------------------------- Flickr8k download


def prepare_flickr8k(settings: Settings) -> Path:
    """Download (resumably) and extract the Flickr8k archives once; return the folder."""
    root = settings.data_dir / "flickr8k"
    needed = [root / FLICKR8K_IMAGES, root / TOKEN_FILE, *(root / f for f in SPLIT_FILES.values())]
    if all(path.exists() for path in needed):
        return root
    for archive, md5 in FLICKR8K_ARCHIVES.items():
        path = download(f"{settings.flickr8k_url}/{archive}", root / "archives" / archive, md5=md5)
        _extract(path, root)
    return root


def _extract(archive: Path, root: Path) -> None:
    """Unzip into a scratch folder, then move the Flickr8k files into ``root`` (skipping __MACOSX)."""
    scratch = root / f".extract-{archive.stem}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.namelist() if not m.startswith("__MACOSX") and "/._" not in m]
            zipped.extractall(scratch, members)
    except zipfile.BadZipFile:
        archive.unlink()
        raise CourseError(f"{archive.name} is not a valid zip archive; it was deleted, run again to download it anew.") from None
    for wanted in [FLICKR8K_IMAGES, TOKEN_FILE, *SPLIT_FILES.values()]:
        for found in scratch.rglob(wanted):
            if not (root / wanted).exists():
                found.rename(root / wanted)
            break
    shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------- Karpathy split files (lesson 10)

#: Karpathy's split files of Flickr8k, Flickr30k and COCO, in one zip (Karpathy & Fei-Fei, CVPR 2015).
KARPATHY_URL = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
#: Dataset names that ``CAPTION_DATASET`` accepts besides a folder, and their split file.
KARPATHY_DATASETS = {"flickr30k": "dataset_flickr30k.json", "coco": "dataset_coco.json"}
#: Karpathy split -> course split: "restval" (COCO val2014 images not in val or test) trains, as is customary.
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "dev", "test": "test"}
#: COCO 2014 image archives (public): folder -> (URL, size in bytes, roughly).
COCO_IMAGES = {
    "train2014": ("http://images.cocodataset.org/zips/train2014.zip", 13_510_000_000),
    "val2014": ("http://images.cocodataset.org/zips/val2014.zip", 6_645_000_000),
}
#: Where Flickr30k-style images usually are, relative to the split file's folder.
IMAGE_FOLDERS = ("flickr30k-images", "flickr30k_images", "flickr30k_images/flickr30k_images", "images", "Images", ".")
FLICKR30K_PAGE = "http://shannon.cs.illinois.edu/DenotationGraph/"


def karpathy_file(folder: Path) -> Path | None:
    """The ``dataset_*.json`` split file in ``folder``, or None."""
    found = sorted(folder.glob("dataset_*.json"))
    return found[0] if found else None


def read_karpathy(folder: Path) -> Dataset:
    """A folder with Karpathy's split file (``dataset_coco.json``, ...) and the images it lists (lesson 10).

    Each image record has ``filename``, ``split`` (train / restval / val / test; restval
    joins train and val becomes dev) and ``sentences`` whose ``raw`` text is the caption.
    COCO images are found through their ``filepath`` (``train2014/``, ``val2014/``), other
    datasets' in the first usual folder that holds them (:data:`IMAGE_FOLDERS`).
    """
    path = karpathy_file(folder)
    if path is None:
        raise CourseError(f"{folder} has no dataset_*.json split file (Karpathy layout).")
    try:
        records = json.loads(path.read_bytes())["images"]
    except (ValueError, KeyError, TypeError) as error:
        raise CourseError(f"{path} is not a Karpathy split file ({error}): download it anew.") from None
    rows, unknown = [], set()
    for record in records:
        split = KARPATHY_SPLITS.get(record.get("split"))
        if split is None:
            unknown.add(str(record.get("split")))
            continue
        rows += [(record["filename"], s["raw"].strip(), split) for s in record.get("sentences", []) if s.get("raw", "").strip()]
    if unknown:
        print(f"Note: skipped images of unknown split(s) {sorted(unknown)} in {path.name}.")
    table = pd.DataFrame(rows, columns=["image", "caption", "split"])
    images_dir, subfolders = _karpathy_images(folder, path, records)
    table = _drop_missing_images(table, images_dir, subfolders)
    return Dataset(folder.name, images_dir, table.reset_index(drop=True), subfolders)


def _karpathy_images(folder: Path, path: Path, records: list[dict]) -> tuple[Path, dict[str, str]]:
    """The images folder and each image's subfolder (COCO), checked to hold some of the images."""
    subfolders = {r["filename"]: r.get("filepath", "") for r in records}
    if len(subfolders) < len(records):
        raise CourseError(f"{path.name} lists the same file name twice: this course keys images by file name.")
    used = set(subfolders.values()) - {""}
    for base in (folder, folder / "images"):
        if used and all((base / sub).is_dir() for sub in used):
            return base, subfolders
    sample = [r["filename"] for r in records[:50]]
    for candidate in IMAGE_FOLDERS:
        if any((folder / candidate / name).exists() for name in sample):
            return folder / candidate, {}
    where = f"{folder}/{IMAGE_FOLDERS[0]}/" if not used else " and ".join(f"{folder}/{sub}/" for sub in sorted(used))
    how = (
        f"Flickr30k's images are not freely downloadable: request them at {FLICKR30K_PAGE} "
        f"(non-commercial research and teaching, Flickr terms of use), then "
        if path.name == KARPATHY_DATASETS["flickr30k"] else ""
    )
    raise CourseError(f"{folder} has {path.name} but none of its images. {how}put the images in {where} and run again.")


def prepare_karpathy(name: str, root: Path) -> Path:
    """Download Karpathy's split file of ``name`` into ``root`` once, and for COCO its images (lesson 10).

    COCO's images are public (about 19 GB of zip archives, resumable; each archive is
    deleted once extracted). Flickr30k's are not: :func:`read_karpathy` says how to get them.
    """
    split_file = root / KARPATHY_DATASETS[name]
    if not split_file.exists():
        archive = download(KARPATHY_URL, root / "archives" / "caption_datasets.zip", desc="Karpathy split files")
        scratch = _unzip(archive, root, lambda member: Path(member).name == split_file.name)
        found = sorted(scratch.rglob(split_file.name))
        if not found:
            raise CourseError(f"{archive} holds no {split_file.name}: delete it and run again to download it anew.")
        found[0].rename(split_file)
        shutil.rmtree(scratch, ignore_errors=True)
    if name == "coco":
        for folder, (url, size) in COCO_IMAGES.items():
            if not (root / folder).is_dir():
                _download_coco_folder(root, folder, url, size)
    return root


def _download_coco_folder(root: Path, folder: str, url: str, size: int) -> None:
    """Download ``<folder>.zip`` (resumable), extract its folder into ``root``, delete the archive."""
    archive = root / "archives" / f"{folder}.zip"
    part = archive.with_name(archive.name + ".part")
    done = archive.stat().st_size if archive.exists() else part.stat().st_size if part.exists() else 0
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < 2 * size - done:  # the archive plus what it extracts to
        raise CourseError(
            f"COCO {folder} needs about {(2 * size - done) / 1e9:.0f} GB free in {root} "
            f"(archive plus images), only {free / 1e9:.0f} GB are: free some space or set CAPTION_DATA_DIR elsewhere."
        )
    print(f"COCO {folder}: {size / 1e9:.1f} GB to download (resumable: run again if it stops), then to extract.")
    archive = download(url, archive, desc=f"COCO {folder}")
    scratch = _unzip(archive, root, lambda member: member.startswith(f"{folder}/"))
    (scratch / folder).rename(root / folder)
    shutil.rmtree(scratch, ignore_errors=True)
    archive.unlink()


def _unzip(archive: Path, root: Path, keep) -> Path:
    """Extract the members ``keep`` accepts into a fresh scratch folder in ``root``; return that folder."""
    scratch = root / f".extract-{archive.stem}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(scratch, [m for m in zipped.namelist() if keep(m) and not m.startswith("__MACOSX")])
    except zipfile.BadZipFile:
        archive.unlink()
        raise CourseError(f"{archive.name} is not a valid zip archive; it was deleted, run again to download it anew.") from None
    except OSError as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise CourseError(f"Extracting {archive.name} into {root} failed ({error}): free some space and run again.") from None
    return scratch


# ---------------------------------------------------------------- the shapes dataset

SHAPES_VERSION = "1"
SHAPES_SIZE = 224
SHAPES_SPLIT = {"train": 700, "dev": 150, "test": 150}
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (240, 210, 40), "purple": (140, 60, 180), "orange": (245, 140, 30),
}
BACKGROUNDS = {"white": (245, 245, 245), "black": (20, 20, 20), "gray": (128, 128, 128)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 26, "large": 46}  # radius in pixels
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
POSITIONS = {
    "top left": (0.28, 0.28), "top right": (0.72, 0.28), "center": (0.5, 0.5),
    "bottom left": (0.28, 0.72), "bottom right": (0.72, 0.72),
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
        side = r * 0.9
        draw.rectangle([cx - side, cy - side, cx + side, cy + side], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    else:  # diamond
        draw.polygon([(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)], fill=fill)


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
    """Generate the shapes dataset in the Flickr8k layout (deterministic, a few seconds).

    Each image holds one or two coloured shapes (colour, shape, size, position, background)
    and comes with five captions in varied wording. Nothing is regenerated if the folder
    already holds this version.
    """
    marker = root / "VERSION"
    stamp = f"{SHAPES_VERSION} {seed} {split}"
    if marker.exists() and marker.read_text().strip() == stamp:
        return root
    print(f"Generating the shapes dataset in {root} ...")
    scratch = root.with_name(root.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / FLICKR8K_IMAGES).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tokens, split_lists, number = [], {s: [] for s in SPLITS}, 0
    for split_name in SPLITS:
        for _ in range(split[split_name]):
            image, captions = _shapes_example(rng)
            name = f"shapes_{number:05d}.jpg"
            image.save(scratch / FLICKR8K_IMAGES / name, quality=90)
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


def caption_words(captions: Iterable[str]) -> list[str]:
    """All lower-case words of some raw captions (for quick counts in lesson 01)."""
    return [word for caption in captions for word in re.findall(r"[a-z]+", caption.lower())]
