"""The feature cache on disk, one memory-mapped array per recipe, and the features' container (lesson 03).

A cache folder (``artifacts/flickr8k/features/resnet50-imagenet-224``) holds ``meta.json`` (the
recipe: a folder made with another one is refused), ``images.json`` (the image of each row),
``features.npy`` (every row, preallocated), ``done.npy`` (which rows are computed) and
``unreadable.json`` (images found unreadable, with each file's size and time). Rows are written
in place and marked done chunk by chunk: an interrupted extraction resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from helpers.system.errors import CourseError
from helpers.system.files import atomic_path, read_json, stamp, write_json

#: Rows copied at a time when the array grows (16 MB of pooled float32 features); bytes at a time when it is copied.
BLOCK, COPY_BYTES = 2048, 16 << 20


@dataclass(frozen=True)
class FeatureSet:
    """Features of the readable images and the images skipped, with why (``skipped``).

    In memory, row i of ``features`` belongs to ``images[i]``. :func:`helpers.features.feature_store` gives
    the cache itself memory-mapped, whose ``rows`` say where each image is (lesson 10).
    """

    features: np.ndarray
    images: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.images)

    def row_numbers(self, images: Iterable[str]) -> np.ndarray:
        """The rows of ``features`` holding ``images``, in that order (an image without features: a CourseError)."""
        rows = self.rows or {image: row for row, image in enumerate(self.images)}
        images = list(images)
        unknown = [image for image in images if image not in rows]
        if unknown:
            why = self.skipped.get(unknown[0], "not among the extracted images")
            raise CourseError(f"No features for {len(unknown)} image(s), e.g. {unknown[0]} ({why}).")
        return np.array([rows[image] for image in images], dtype=np.int64)

    def lookup(self, images: Iterable[str]) -> np.ndarray:
        """The float32 features of ``images``, in that order."""
        return np.asarray(self.features[self.row_numbers(images)], dtype=np.float32)

    def __repr__(self) -> str:
        where = f", memory-mapped from {self.features.filename}" if isinstance(self.features, np.memmap) else ""
        shape = " x ".join(str(n) for n in self.features.shape[1:])
        return f"FeatureSet({len(self)} images x {shape} features{where}, {len(self.skipped)} skipped)"


def open_cache(folder: Path, recipe: dict) -> Path:
    """The recipe's folder, created with its ``meta.json``; a folder made with another recipe is refused."""
    meta = folder / "meta.json"
    if not meta.exists():
        write_json(meta, recipe)
        return folder
    found = read_json(meta)
    differ = "; ".join(f"{k} {found.get(k)!r} there, {v!r} here" for k, v in recipe.items() if found.get(k) != v)
    if differ:
        raise CourseError(
            f"The feature cache {folder} was made with other settings ({differ}), so it is not reused: "
            "delete that folder (or set CAPTION_DATA_DIR elsewhere) and run again."
        )
    return folder


def names(folder: Path) -> list[str]:
    """The image of each row (empty for a new cache, or none at all)."""
    return read_json(folder / "images.json") if (folder / "images.json").exists() else []


def done(folder: Path) -> np.ndarray:
    """Which rows are computed: a boolean mask as long as :func:`names` (rows added by a crash-cut growth count as not done)."""
    mask = np.zeros(len(names(folder)), dtype=bool)
    if (folder / "done.npy").exists():
        saved = np.load(folder / "done.npy")[: len(mask)]
        mask[: len(saved)] = saved
    return mask


def rows(folder: Path) -> dict[str, int]:
    """The row of every image whose features are computed."""
    mask = done(folder)
    return {name: row for row, name in enumerate(names(folder)) if mask[row]}


def _save_done(folder: Path, mask: np.ndarray) -> None:
    with atomic_path(folder / "done.npy") as tmp:
        np.save(tmp, mask)


def reserve(folder: Path, images: Sequence[str], row_shape: tuple[int, ...], dtype) -> dict[str, int]:
    """Rows for ``images``: the array grows once, by all the new ones (old rows copied block by block)."""
    known = names(folder)
    new = [name for name in dict.fromkeys(images) if name not in set(known)]
    if new:
        mask = done(folder)
        with atomic_path(folder / "features.npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(known) + len(new), *row_shape))
            if known:
                old = np.load(folder / "features.npy", mmap_mode="r")
                for start in range(0, len(known), BLOCK):
                    end = min(start + BLOCK, len(known))
                    out[start:end] = old[start:end]
                del old
            out.flush()
            del out  # release the file before it is renamed (Windows insists)
        _save_done(folder, np.concatenate([mask, np.zeros(len(new), dtype=bool)]))
        write_json(folder / "images.json", known + new)  # last: until then the old rows are all there is
        known += new
    position = {name: row for row, name in enumerate(known)}
    return {name: position[name] for name in images}


def write_rows(folder: Path, row_numbers: Sequence[int], values: np.ndarray) -> None:
    """Write computed rows in place, flush them, then mark them done."""
    array = np.load(folder / "features.npy", mmap_mode="r+")
    array[np.asarray(row_numbers)] = values
    array.flush()
    del array
    mask = done(folder)
    mask[np.asarray(row_numbers)] = True
    _save_done(folder, mask)


def mapped(folder: Path) -> np.ndarray:
    """``features.npy`` memory-mapped read-only: the operating system reads only the rows used."""
    return np.load(folder / "features.npy", mmap_mode="r")


def fill(
    recipes: dict[Path, tuple[dict, tuple[int, ...], str]], paths: list[Path], compute: Callable, read_only: str | None
) -> dict[str, str]:
    """Compute into the cache folders what they lack of ``paths``; return the unreadable images, and why.

    ``recipes`` maps each folder to its recipe, row shape and dtype; the last folder decides what
    is missing. ``compute(paths, save)`` calls ``save(names, {kind: rows})`` chunk by chunk, the
    kinds in the folders' order, and returns the images it skipped. A ``read_only`` cache that
    lacks images raises a CourseError ending with ``read_only`` (what to do about it).
    """
    folders = [folder if read_only else open_cache(folder, recipe) for folder, (recipe, _, _) in recipes.items()]
    known_bad, done_here = still_unreadable(folders[-1], paths), rows(folders[-1])
    pending = [p for p in paths if p.name not in done_here and p.name not in known_bad]
    if pending and read_only:
        raise CourseError(
            f"{folders[-1]} has no features of {len(pending)} image(s), e.g. {pending[0].name}: {read_only}."
        )
    cached = len(paths) - len(pending) - len(known_bad)
    print(
        f"Feature cache {folders[-1]}: {cached} of {len(paths)} images cached, {len(known_bad)} known unreadable, "
        f"extracting {len(pending)}."
    )
    reserved = []  # rows for what each folder lacks: a folder's finished rows are never rewritten
    for folder, (_, shape, dtype) in zip(folders, recipes.values()):
        finished = rows(folder)
        reserved.append(reserve(folder, [p.name for p in pending if p.name not in finished], shape, dtype))

    def save(images: list[str], arrays: dict[str, np.ndarray]) -> None:
        for folder, where, values in zip(folders, reserved, arrays.values()):  # one pass fills every folder
            new = [i for i, image in enumerate(images) if image in where]
            if new:
                write_rows(folder, [where[images[i]] for i in new], values[new])

    skipped = known_bad | compute(pending, save)
    for folder in folders:
        remember_unreadable(folder, pending, skipped)
    return skipped


def still_unreadable(folder: Path, paths: Iterable[Path]) -> dict[str, str]:
    """Images of ``paths`` an earlier run found unreadable and unchanged since (image -> why)."""
    record = folder / "unreadable.json"
    known = read_json(record) if record.exists() else {}
    return {p.name: known[p.name]["why"] for p in paths if p.name in known and known[p.name]["stamp"] == stamp(p)}


def remember_unreadable(folder: Path, checked: list[Path], skipped: dict[str, str]) -> None:
    """Record in ``unreadable.json`` which of the ``checked`` images were skipped, and why."""
    record = folder / "unreadable.json"
    known = read_json(record) if record.exists() else {}
    checked_names = {path.name for path in checked}
    if not checked_names & (set(known) | set(skipped)):
        return
    known = {name: entry for name, entry in known.items() if name not in checked_names}
    known |= {p.name: {"why": skipped[p.name], "stamp": stamp(p)} for p in checked if p.name in skipped}
    write_json(record, known)


def copy_array(source: Path, target: Path, dtype: str | None = None, read_only: str | None = None) -> Path:
    """A copy of the ``.npy`` file ``source`` at ``target`` (as ``dtype``), remade only when ``source`` changes.

    Lesson 10 halves the pooled cache this way; on Colab, lesson 11 copies its grid from Drive to the VM's disk.
    ``read_only``: how to fix a missing or outdated copy that must not be written here (a shared folder).
    """
    record, made_from = target.with_suffix(".json"), {"source": str(source), "stamp": stamp(source)}
    if target.exists() and record.exists() and read_json(record) == made_from:
        return target
    if read_only:
        raise CourseError(f"{target} is missing or older than {source.name}: {read_only}.")
    array = np.load(source, mmap_mode="r")
    rows = max(1, COPY_BYTES // max(1, array[:1].nbytes))
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype or array.dtype, shape=array.shape)
        for start in tqdm(range(0, len(array), rows), desc=f"copying {source.name}", unit="block", leave=False):
            out[start : start + rows] = array[start : start + rows]
        out.flush()
        del out
    del array
    write_json(record, made_from)
    return target
    array = np.load(source, mmap_mode="r")
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=array.shape)
        for start in range(0, len(array), BLOCK):
            out[start : start + BLOCK] = array[start : start + BLOCK]
        out.flush()
        del out
    del array
    write_json(record, made_from)
    return target
