"""The feature cache on disk: one folder per recipe, filled in resumable parts (introduced in lesson 03).

A cache folder (e.g. ``artifacts/flickr8k/features/resnet50-imagenet-224``) holds:

* ``meta.json``: the recipe (model, weights, pooling, image size, preprocessing, seed): a
  folder whose recipe differs from the one asked for is refused with a message;
* ``features.npy``: one row per image (``(n, 2048)`` float32 for pooled features);
* ``images.json``: the image name of each row;
* ``unreadable.json``: images found unreadable, and why, with each file's size and time
  (checked again when the file changes);
* while extracting, ``part-*.npz`` files of freshly computed rows, saved every chunk and on
  interruption. :func:`fold_parts` appends them to ``features.npy`` part by part (memory
  never holds more than one), so nothing computed is lost and the next run resumes.

Images are keyed by file name, so one cache folder serves one dataset.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.errors import CourseError
from helpers.files import atomic_path, read_json, write_json
from helpers.images import stamp


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
        """The float32 features of ``images``, in that order (read from disk when memory-mapped)."""
        return np.asarray(self.features[self.row_numbers(images)], dtype=np.float32)

    def __repr__(self) -> str:
        where = ""
        if isinstance(self.features, np.memmap):
            where = f" ({self.features.dtype}, {self.features.nbytes / 1e6:.1f} MB memory-mapped from {self.features.filename})"
        shape = " x ".join(str(n) for n in self.features.shape[1:])
        return f"FeatureSet({len(self)} images x {shape} features{where}, {len(self.skipped)} skipped)"


def open_cache(folder: Path, recipe: dict) -> Path:
    """The recipe folder, created with its ``meta.json``; refuses a folder made with another recipe."""
    meta = folder / "meta.json"
    if not meta.exists():
        write_json(meta, recipe)
        return folder
    found = read_json(meta)
    differ = "; ".join(
        f"{key} {found.get(key)!r} there, {value!r} here" for key, value in recipe.items() if found.get(key) != value
    )
    if differ:
        raise CourseError(
            f"The feature cache {folder} was made with other settings ({differ}), so it is not reused: "
            f"delete that folder (or set CAPTION_DATA_DIR elsewhere) and run again."
        )
    return folder


def note_precision(folder: Path, precision: str) -> None:
    """Add ``precision`` to the precisions ``meta.json`` says the rows were computed in (``computed_in``)."""
    meta = read_json(folder / "meta.json")
    if precision not in meta.get("computed_in", []):
        write_json(folder / "meta.json", {**meta, "computed_in": sorted({*meta.get("computed_in", []), precision})})


def is_complete(folder: Path) -> bool:
    """Whether the folder holds folded features (``features.npy`` and ``images.json``)."""
    return (folder / "features.npy").exists() and (folder / "images.json").exists()


def cached_images(folder: Path) -> list[str]:
    """Image names of the rows of ``features.npy`` (empty for a new cache)."""
    index = folder / "images.json"
    return read_json(index) if index.exists() else []


def still_unreadable(folder: Path, paths: list[Path]) -> dict[str, str]:
    """Images of ``paths`` found unreadable by an earlier run and unchanged since (image -> why).

    Remembering them means a complete cache needs neither the model nor its weights.
    """
    record = folder / "unreadable.json"
    known = read_json(record) if record.exists() else {}
    return {p.name: known[p.name]["why"] for p in paths if p.name in known and known[p.name]["stamp"] == stamp(p)}


def remember_unreadable(folder: Path, checked: list[Path], skipped: dict[str, str]) -> None:
    """Record in ``unreadable.json`` which of the ``checked`` images were skipped, and why."""
    record = folder / "unreadable.json"
    known = read_json(record) if record.exists() else {}
    names = {path.name for path in checked}
    if not names & (set(known) | set(skipped)):
        return
    known = {name: entry for name, entry in known.items() if name not in names}
    known |= {p.name: {"why": skipped[p.name], "stamp": stamp(p)} for p in checked if p.name in skipped}
    write_json(record, known)


def save_part(folder: Path, images: list[str], features: np.ndarray) -> None:
    """Save one chunk of freshly extracted features as ``part-<time>.npz``, atomically."""
    with atomic_path(folder / f"part-{time.time_ns()}.npz") as tmp:
        np.savez(tmp, images=np.array(images), features=features)


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
            row_shape, dtype = data["features"].shape[1:], data["features"].dtype
        new = []
        for i, name in enumerate(names):
            if name not in seen:
                seen.add(name)
                new.append(i)
        new_rows.append(new)
        images += [names[i] for i in new]
    if len(images) > kept:
        with atomic_path(folder / "features.npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(images), *row_shape))
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


def mapped_features(folder: Path, empty: np.ndarray, skipped: dict[str, str] | None = None) -> FeatureSet:
    """Every image of the cache folder, its ``features.npy`` memory-mapped read-only (lesson 10).

    ``empty`` (an array of 0 rows) stands in for the features while nothing is extracted yet.
    """
    path = folder / "features.npy"
    if not path.exists():
        return FeatureSet(empty, [], skipped or {})
    return FeatureSet(np.load(path, mmap_mode="r"), cached_images(folder), skipped or {})


def select(folder: Path, images: list[str], empty: np.ndarray, skipped: dict[str, str]) -> FeatureSet:
    """A FeatureSet of ``images`` (in that order) read from the cache folder into memory."""
    if not images:
        return FeatureSet(empty, [], skipped)
    mapped = mapped_features(folder, empty, skipped)
    return FeatureSet(np.array(mapped.features[mapped.row_numbers(images)]), images, skipped)


#: Rows copied at a time when the float16 copy is made (16 MB of float32 pooled features).
COPY_ROWS = 2048


def float16_copy(source: Path) -> Path:
    """A float16 copy of a float32 ``.npy`` feature file, next to it, made block by block (lesson 10).

    ``features-float16.json`` records which version of the source it was made from, so the
    copy is remade only when the source changes. float16 keeps about 3 significant digits:
    plenty for features that the model's first Dense layer mixes anyway.
    """
    target = source.with_name(source.stem + "-float16.npy")
    record = source.with_name(source.stem + "-float16.json")
    info = source.stat()
    made_from = {"source_size": info.st_size, "source_mtime_ns": info.st_mtime_ns}
    if target.exists() and record.exists() and read_json(record) == made_from:
        return target
    array = np.load(source, mmap_mode="r")
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=array.shape)
        for start in range(0, len(array), COPY_ROWS):
            out[start : start + COPY_ROWS] = array[start : start + COPY_ROWS]
        out.flush()
        del out  # release the file before it is renamed
    del array
    write_json(record, made_from)
    return target
