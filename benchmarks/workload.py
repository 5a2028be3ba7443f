"""The Flickr8k-sized synthetic workload of ``make bench``, in the Flickr8k layout (issue 8).

    python -m benchmarks.workload                 # 8,091 images, 40,455 captions: about 1 GB, once
    python -m benchmarks.workload --images 200    # a small one (what ``--small`` runs use)

Made once into ``benchmarks/work/synthetic-<images>/`` (git-ignored; BENCHMARKS_WORK names
another folder) and reused: about 4 minutes on 2 cores at full size, resumable
(:func:`make_workload`). The course's own loader reads it (``read_flickr_layout``, or
``CAPTION_DATASET=<the folder>``): Flickr-size JPEGs (:func:`photo`), Flickr8k-like captions
and splits (:func:`make_captions`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import shutil
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from helpers.data.flickr8k import IMAGES_FOLDER, SPLIT_FILES, TOKEN_FILE
from helpers.datasets import FACTS

#: Where workloads and other generated files go (git-ignored); BENCHMARKS_WORK moves it, e.g. to a bigger disk.
WORK = Path(os.environ.get("BENCHMARKS_WORK") or Path(__file__).resolve().parent / "work")
IMAGES_VERSION, CAPTIONS_VERSION = "1", "2"  # captions 2: Flickr8k's measured vocabulary and max_len
FULL_IMAGES = FACTS["images"]
CAPTIONS_PER_IMAGE = 5
SPLIT_SHARES = {"train": 6000 / 8091, "dev": 1000 / 8091, "test": 1000 / 8091}
COMMON_WORDS = FACTS["vocab_ids"] - 3  # + padding, startseq, endseq = Flickr8k's vocabulary
MAX_WORDS = FACTS["max_len"] - 2  # + startseq, endseq = Flickr8k's max_len
MIN_COUNT = 10  # the course's Vocabulary.build default
RARE_SHARE = 0.03
RARE_POOL = 6000
LENGTH_MU, LENGTH_SIGMA = 2.33, 0.33  # log-normal caption lengths: mean about 10.9 words
JPEG_QUALITY = 95
#: Flickr photo sizes (width, height) and how often each occurs.
PHOTO_SIZES = {(500, 375): 0.45, (500, 333): 0.25, (375, 500): 0.15, (333, 500): 0.10, (500, 500): 0.05}
#: The most frequent words of Flickr8k's captions, roughly in order.
FLICKR_WORDS = """
a in the on is and dog with man of two white black boy are woman girl to wearing at people
water red young brown an his blue dogs running through playing while shirt down standing
ball little grass snow child person jumping over three front sitting holding up field small
by large green one group yellow her walking children men into air beach near mouth jumps
another for street runs its out rides bike from pink dressed orange that women riding
background crowd other plays rock stands looking sits dirt jacket hat each toy behind
some camera swimming pool climbing outside car picture their wall around tan stick next
""".split()


# ---------------------------------------------------------------- images


def photo(seed: int) -> Image.Image:
    """A photo-like picture of Flickr size: smooth colour fields at six scales, shapes, film grain.

    500 pixels on the long side (500x375, 500x333, 375x500, 333x500, 500x500, as often as on
    Flickr). Grain and fine detail give it a realistic JPEG size (about 125 KB at quality 95:
    Flickr8k's roughly 1 GB of 8,091 images) and a realistic decoding cost. Image ``k`` of a
    workload is drawn from the same seed at every workload size.
    """
    rng = np.random.default_rng(seed)
    sizes = list(PHOTO_SIZES)
    width, height = sizes[rng.choice(len(sizes), p=list(PHOTO_SIZES.values()))]
    canvas = np.zeros((height, width, 3), np.float32) + rng.uniform(60, 190, size=3).astype(np.float32)
    for cells, amplitude in ((3, 70), (6, 45), (12, 30), (24, 55), (48, 40), (96, 25)):
        grid = rng.normal(0, amplitude, size=(max(2, cells * height // width), cells, 3)).astype(np.float32)
        canvas += np.stack(
            [np.asarray(Image.fromarray(grid[..., c]).resize((width, height), Image.BICUBIC)) for c in range(3)],
            axis=-1,
        )
    image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(2, 8)):
        x, y = rng.integers(0, width), rng.integers(0, height)
        rx, ry = rng.integers(10, 140, size=2)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x - rx, y - ry, x + rx, y + ry], fill=colour)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float32)
    pixels += rng.normal(0, rng.uniform(6, 26), size=(height, width, 1)).astype(np.float32)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def image_name(index: int, seed: int = 0) -> str:
    """A Flickr8k-style file name (``1000000042_3f9c0e5a1b.jpg``); sorted names follow ``index``."""
    digest = hashlib.sha1(f"{seed}-{index}".encode()).hexdigest()[:10]
    return f"{1_000_000_000 + index}_{digest}.jpg"


def _write_image(job: tuple[int, int, str]) -> int:
    """Draw image ``index`` and save it atomically (a worker process runs this)."""
    index, seed, path = job
    tmp = f"{path}.tmp-{os.getpid()}"
    photo(seed * 1_000_003 + index).save(tmp, format="JPEG", quality=JPEG_QUALITY)
    os.replace(tmp, path)
    return index


# ---------------------------------------------------------------- captions


def common_words() -> list[str]:
    """The common words (1,650), most frequent first: Flickr8k's top words, then GloVe's."""
    from helpers.embeddings import load_glove

    words = list(dict.fromkeys(FLICKR_WORDS))
    known = set(words) | {"startseq", "endseq"}
    for word in load_glove().words:
        if len(words) == COMMON_WORDS:
            break
        if len(word) > 1 and word.isascii() and word.isalpha() and word.islower() and word not in known:
            words.append(word)
            known.add(word)
    return words


def rare_words(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct made-up words ("tolvar", "mekudo"): the rare words and typos of real captions."""
    rng = np.random.default_rng(seed + 7)
    onsets, vowels, codas = (
        list("bdfgklmnprstvz") + ["br", "st", "tr", "ch"],
        list("aeiou"),
        ["", "", "n", "r", "l", "s"],
    )
    words: dict[str, None] = {}
    while len(words) < count:
        syllables = rng.integers(2, 4)
        word = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables))
        words.setdefault("q" + word, None)  # the leading q keeps them apart from real words
    return list(words)


def split_sizes(images: int) -> dict[str, int]:
    """Images per split: 6000/1000/1000 of 8,091, in proportion (at least one each)."""
    return {split: max(1, int(images * share)) for split, share in SPLIT_SHARES.items()}


def make_captions(images: int, seed: int = 0) -> tuple[list[list[str]], dict[str, list[int]]]:
    """Five raw captions per image and the image indices of each split, written like Flickr8k's.

    "A dog runs through the grass ." Lengths are log-normal, mean about 11 words, a long tail;
    the first training caption has exactly 32 of the most frequent words, so ``max_len``
    (startseq and endseq included) is 34 at every size, as on the real Flickr8k
    (``helpers.datasets.FACTS``). Words: the 1,650 :func:`common_words` with Zipf frequencies
    (probability 1/rank), plus 3 % rare made-up words used at most 5 times each (Flickr8k's long
    tail of rare words and typos). At full size every common word occurs 10 or more times in
    the training captions, so the course's vocabulary (``min_count=10``) has exactly 1,653
    entries, Flickr8k's; smaller workloads have fewer. Splits: 6,000 / 1,000 / 1,000 images
    of 8,091 (91 in none, as in Flickr8k), in proportion for other sizes.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(images)
    sizes, splits, start = split_sizes(images), {}, 0
    for split, size in sizes.items():
        splits[split] = sorted(order[start : start + size].tolist())
        start += size
    train = np.zeros(images, bool)
    train[splits["train"]] = True

    count = images * CAPTIONS_PER_IMAGE
    lengths = np.clip(np.rint(rng.lognormal(LENGTH_MU, LENGTH_SIGMA, size=count)), 1, MAX_WORDS).astype(int)
    longest = splits["train"][0] * CAPTIONS_PER_IMAGE  # the first caption of the first training image
    lengths[longest] = MAX_WORDS
    ends = np.cumsum(lengths)
    starts = ends - lengths
    caption_image = np.repeat(np.arange(images), CAPTIONS_PER_IMAGE)
    token_train = np.repeat(train[caption_image], lengths)

    common = common_words()
    zipf = 1.0 / np.arange(1, len(common) + 1)
    zipf /= zipf.sum()
    ids = rng.choice(len(common), size=int(ends[-1]), p=zipf)
    rare = rng.random(ids.size) < RARE_SHARE
    # The longest caption: the 5 most frequent words only, so it is in every vocabulary whole.
    ids[starts[longest] : ends[longest]] = rng.choice(5, size=MAX_WORDS, p=zipf[:5] / zipf[:5].sum())
    rare[starts[longest] : ends[longest]] = False
    # Common words expected 15+ times in the training captions are topped up to MIN_COUNT,
    # by taking over random training occurrences of the most frequent word ("a").
    expected = zipf * np.count_nonzero(token_train & ~rare)
    counts = np.bincount(ids[token_train & ~rare], minlength=len(common))
    missing = np.repeat(np.arange(len(common)), np.where(expected >= 15, np.maximum(MIN_COUNT - counts, 0), 0))
    spare = np.flatnonzero(token_train & ~rare & (ids == 0))
    spare = spare[~((spare >= starts[longest]) & (spare < ends[longest]))]
    ids[rng.choice(spare, size=missing.size, replace=False)] = missing
    # Rare words go round a shuffled pool, so none is used more than 5 times in all.
    pool = rare_words(max(RARE_POOL, math.ceil(np.count_nonzero(rare) / 5)), seed)
    rare_ids = rng.permutation(len(pool))[np.arange(np.count_nonzero(rare)) % len(pool)]

    words = np.array(common, dtype=object)[ids]
    words[rare] = np.array(pool, dtype=object)[rare_ids]
    captions = [" ".join(words[a:b]) for a, b in zip(starts, ends)]
    captions = [caption[0].upper() + caption[1:] + " ." for caption in captions]
    grouped = [captions[i * CAPTIONS_PER_IMAGE : (i + 1) * CAPTIONS_PER_IMAGE] for i in range(images)]
    return grouped, splits


# ---------------------------------------------------------------- the folder


def workload_dir(images: int = FULL_IMAGES) -> Path:
    """Where the workload of ``images`` images lives."""
    return WORK / f"synthetic-{images}"


def make_workload(images: int = FULL_IMAGES, seed: int = 0, processes: int | None = None) -> Path:
    """Generate the workload once; return its folder, in the Flickr8k layout.

    ``Flicker8k_Dataset/*.jpg``, ``Flickr8k.token.txt`` and the three split lists. Images are
    written atomically, ``processes`` at a time (default one per CPU); an interrupted run
    resumes where it stopped, and the folder counts as complete once its ``VERSION`` file is
    written (last).
    """
    from tqdm.auto import tqdm

    from helpers.system.files import atomic_path

    root = workload_dir(images) if seed == 0 else WORK / f"synthetic-{images}-seed{seed}"
    stamp = f"{IMAGES_VERSION} images={images} seed={seed}"
    complete = f"{stamp} captions={CAPTIONS_VERSION}"
    done, plan = root / "VERSION", root / "PLAN"
    if done.exists() and done.read_text().strip() == complete:
        return root
    made = next((p.read_text().split(" captions=")[0].strip() for p in (plan, done) if p.exists()), None)
    if root.exists() and made != stamp:
        shutil.rmtree(root)  # images made by another version of this generator
    folder = root / IMAGES_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    plan.write_text(stamp + "\n")
    for leftover in folder.glob("*.tmp-*"):
        leftover.unlink()

    names = [image_name(i, seed) for i in range(images)]
    pending = [(i, seed, str(folder / name)) for i, name in enumerate(names) if not (folder / name).exists()]
    if pending:
        print(f"Generating {len(pending)} of {images} synthetic Flickr-size JPEGs in {folder} ...")
        processes = processes or os.cpu_count() or 1
        with get_context("spawn").Pool(processes) if processes > 1 else contextlib.nullcontext() as pool:
            jobs = pool.imap_unordered(_write_image, pending, chunksize=8) if pool else map(_write_image, pending)
            for _ in tqdm(jobs, total=len(pending), unit="img", desc="workload images"):
                pass

    grouped, splits = make_captions(images, seed)
    lines = [f"{names[i]}#{k}\t{caption}" for i, captions in enumerate(grouped) for k, caption in enumerate(captions)]
    with atomic_path(root / TOKEN_FILE) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    for split, filename in SPLIT_FILES.items():
        with atomic_path(root / filename) as tmp:
            Path(tmp).write_text("\n".join(names[i] for i in splits[split]) + "\n")
    done.write_text(complete + "\n")
    plan.unlink()
    return root


def image_paths(images: int, workload_images: int = FULL_IMAGES) -> list[Path]:
    """The first ``images`` JPEGs (in name order) of the workload of ``workload_images``, made if needed."""
    if images > workload_images:
        raise SystemExit(f"{images} images asked for, but the workload has only {workload_images}.")
    folder = make_workload(workload_images) / IMAGES_FOLDER
    return [folder / image_name(i) for i in range(images)]


def main() -> None:
    """Make the workload (or find it made) and print its sizes: JPEG bytes, caption words."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=FULL_IMAGES, help=f"images (default {FULL_IMAGES}, Flickr8k's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = make_workload(args.images, args.seed)

    from helpers.datasets import read_flickr_layout

    dataset = read_flickr_layout(root, root.name)
    sizes = [p.stat().st_size for p in dataset.images_dir.iterdir()]
    lengths = dataset.captions["caption"].str.split().str.len() - 1  # the final " ."
    print(f"{root}: {len(sizes)} JPEGs, {np.mean(sizes) / 1e3:.0f} KB on average, {sum(sizes) / 1e9:.2f} GB; {dataset}")
    print(f"caption words: mean {lengths.mean():.1f}, median {lengths.median():.0f}, max {lengths.max()}")


if __name__ == "__main__":
    main()
