"""Karpathy's split files of Flickr30k and COCO, and COCO's images (lesson 10).

Karpathy & Fei-Fei (CVPR 2015) list every image with its ``split`` and ``sentences``: the splits papers report on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from helpers.data.download import download, unzip
from helpers.system.errors import CourseError

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
    return min(folder.glob("dataset_*.json"), default=None)


def read_karpathy_file(folder: Path) -> tuple[pd.DataFrame, Path, dict[str, str]]:
    """The captions table, images folder and image subfolders (COCO) of a Karpathy folder (restval trains)."""
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
        sentences = [s["raw"].strip() for s in record.get("sentences", []) if s.get("raw", "").strip()]
        rows += [(record["filename"], sentence, split) for sentence in sentences]
    if unknown:
        print(f"Note: skipped images of unknown split(s) {sorted(unknown)} in {path.name}.")
    images_dir, subfolders = _karpathy_images(folder, path, records)
    return pd.DataFrame(rows, columns=["image", "caption", "split"]), images_dir, subfolders


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
        if path.name == KARPATHY_DATASETS["flickr30k"]
        else ""
    )
    raise CourseError(f"{folder} has {path.name} but none of its images. {how}put the images in {where} and run again.")


def prepare_karpathy(name: str, root: Path) -> Path:
    """Download Karpathy's split file of ``name`` into ``root`` once, and COCO's 19 GB of images (lesson 10)."""
    split_file = root / KARPATHY_DATASETS[name]
    if not split_file.exists():
        archive = download(KARPATHY_URL, root / "archives" / "caption_datasets.zip", desc="Karpathy split files")
        scratch = unzip(archive, root / ".extract-split-files", lambda member: Path(member).name == split_file.name)
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
    scratch = unzip(archive, root / f".extract-{folder}", lambda member: member.startswith(f"{folder}/"))
    (scratch / folder).rename(root / folder)
    shutil.rmtree(scratch, ignore_errors=True)
    archive.unlink()
