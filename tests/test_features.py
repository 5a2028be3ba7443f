"""helpers.features and its cache (lesson 03): shapes, caching, resuming, bad images, the missing-weights message.

They run ResNet50 with random (seeded) weights on a few small images: a handful of
seconds, plus one fresh Python process for the reproducibility check.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import configured_dataset, cosines
from helpers import features
from helpers.data import download
from helpers.datasets import Dataset
from helpers.system import cache as feature_cache
from helpers.system.errors import CourseError

SIZE = (96, 72)


def picture(seed: int) -> Image.Image:
    """A small RGB picture: a colour gradient with a few random rectangles."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    pixels = np.stack([x * rng.uniform(1, 2.5), y * rng.uniform(1, 3), (x + y) * rng.uniform(0.5, 1.5)], axis=-1)
    for _ in range(3):
        x0, y0 = rng.integers(0, SIZE[0] - 20), rng.integers(0, SIZE[1] - 20)
        pixels[y0 : y0 + 20, x0 : x0 + 20] = rng.uniform(0, 255, size=3)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def good_images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"good_{k:02d}.jpg" for k in range(count)]
    for k, path in enumerate(paths):
        picture(k).save(path, quality=90)
    return paths


@pytest.fixture(autouse=True)
def random_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", "none")
    monkeypatch.setenv("CAPTION_PRECISION", "float32")  # auto's measurement has tests of its own
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path / "course"))


def test_shape_dtype_and_order(tmp_path):
    paths = good_images(tmp_path / "images", 5)
    result = features.extract_features(paths, batch_size=2)
    assert result.features.shape == (5, 2048)
    assert result.features.dtype == np.float32
    assert np.isfinite(result.features).all()
    assert result.images == [p.name for p in paths]
    assert result.skipped == {}
    assert not np.allclose(result.features[0], result.features[1])  # different images, different vectors
    np.testing.assert_array_equal(result.lookup(["good_03.jpg", "good_00.jpg"]), result.features[[3, 0]])
    with pytest.raises(CourseError, match="nope.jpg"):
        result.lookup(["nope.jpg"])


def test_same_vector_from_cache_and_from_a_fresh_process(tmp_path, monkeypatch):
    paths = good_images(tmp_path / "images", 4)
    cache = tmp_path / "cache"
    first = features.extract_features(paths, cache_dir=cache, batch_size=2)

    def no_model(*args):
        raise AssertionError("the model ran although every image was cached")

    monkeypatch.setattr(features, "extractor_function", no_model)
    again = features.extract_features(paths, cache_dir=cache)
    np.testing.assert_array_equal(again.features, first.features)

    script = (
        "import sys, numpy as np; from helpers.features import extract_features; "
        "np.save(sys.argv[2], extract_features([sys.argv[1]]).features)"
    )
    out = tmp_path / "fresh.npy"
    subprocess.run([sys.executable, "-c", script, str(paths[2]), str(out)], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(out)[0], again.lookup(["good_02.jpg"])[0], rtol=1e-5, atol=1e-5)


def test_complete_cache_needs_no_model_even_with_unreadable_images(tmp_path, monkeypatch):
    paths = good_images(tmp_path / "images", 3)
    paths[2].write_bytes(paths[2].read_bytes()[:400])  # truncated
    paths.append(tmp_path / "images" / "missing.jpg")
    cache = tmp_path / "cache"
    first = features.extract_features(paths, cache_dir=cache)
    assert set(first.skipped) == {"good_02.jpg", "missing.jpg"}

    real = features.extractor_function
    monkeypatch.setattr(features, "extractor_function", lambda *args: pytest.fail("the model ran"))
    again = features.extract_features(paths, cache_dir=cache)
    assert again.skipped == first.skipped
    np.testing.assert_array_equal(again.features, first.features)

    picture(2).save(paths[2], quality=90)  # the truncated image is replaced: it is checked again
    monkeypatch.setattr(features, "extractor_function", real)
    fixed = features.extract_features(paths, cache_dir=cache)
    assert fixed.images == ["good_00.jpg", "good_01.jpg", "good_02.jpg"]
    assert fixed.skipped == {"missing.jpg": "file not found"}


def test_cache_made_with_other_weights_is_not_reused(tmp_path, monkeypatch):
    paths = good_images(tmp_path / "images", 2)
    cache = tmp_path / "cache"
    features.extract_features(paths, cache_dir=cache)
    random_folder = features.cache_folder(cache, "none")
    imagenet_folder = features.cache_folder(cache, "imagenet")
    assert imagenet_folder != random_folder

    # Asking for ImageNet features never returns the random ones: it needs the real weights.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    monkeypatch.setattr(download, "download", offline_download)
    with pytest.raises(CourseError, match="ImageNet weights"):
        features.extract_features(paths, weights="imagenet", cache_dir=cache)

    # A folder holding features of another recipe (here: random ones copied under the
    # ImageNet name) is refused, not read.
    meta = imagenet_folder / "meta.json"
    meta.write_text((random_folder / "meta.json").read_text())
    with pytest.raises(CourseError, match="other settings"):
        features.extract_features(paths, weights="imagenet", cache_dir=cache)


def test_resume_after_interruption_gives_the_same_array(tmp_path, monkeypatch):
    paths = good_images(tmp_path / "images", 8)
    whole = features.extract_features(paths, cache_dir=tmp_path / "whole", batch_size=2, chunk_size=4)

    real = features.extractor_function("none", precision="float32")  # what extract_features runs
    calls = []

    def interrupted_on_batch_4(*args):
        def forward(batch):
            calls.append(len(batch))
            if len(calls) == 4:
                raise KeyboardInterrupt
            return real(batch)

        return forward

    monkeypatch.setattr(features, "extractor_function", interrupted_on_batch_4)
    cache = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        features.extract_features(paths, cache_dir=cache, batch_size=2, chunk_size=4)
    folder = features.cache_folder(cache, "none")
    assert feature_cache.done(folder).tolist() == [True] * 6 + [False] * 2  # one chunk, then what was done

    calls.clear()
    resumed = features.extract_features(paths, cache_dir=cache, batch_size=2, chunk_size=4)
    assert calls == [2]  # only the last two images were extracted
    assert resumed.images == whole.images
    np.testing.assert_allclose(resumed.features, whole.features, rtol=1e-6, atol=1e-6)
    assert json.loads((folder / "images.json").read_text()) == [p.name for p in paths]


def tiny_dataset(folder: Path) -> Dataset:
    """Seven small JPEGs of different colours and one file that is not an image."""
    folder.mkdir(parents=True)
    rows = []
    for i in range(7):
        Image.new("RGB", (48 + 8 * i, 40), (30 * i, 200 - 20 * i, 90)).save(folder / f"img{i}.jpg")
        rows.append((f"img{i}.jpg", "a picture", "train" if i < 5 else "dev"))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    rows.append(("broken.jpg", "a broken picture", "test"))
    return configured_dataset("tiny", folder, rows)


def test_features_on_disk_equal_the_in_memory_ones(course_dir, monkeypatch):
    dataset = tiny_dataset(course_dir / "images")
    in_memory = features.extract_features([dataset.image_path(i) for i in dataset.images()])
    some = [dataset.image_path(f"img{i}.jpg") for i in range(3)]
    features.extract_features(some, cache_dir=dataset.features_dir)  # a cache of 3 images
    store = features.feature_store(dataset)  # extracts the other four and maps the whole cache
    assert isinstance(store.features, np.memmap) and store.features.dtype == np.float32
    assert sorted(store.images) == sorted(in_memory.images) and "broken.jpg" in store.skipped
    assert len(store.images) == 7
    np.testing.assert_array_equal(store.lookup(in_memory.images), in_memory.features)

    monkeypatch.setattr(features, "extractor_function", lambda *a: pytest.fail("the cache is complete"))
    half = features.feature_store(dataset, dtype="float16")
    half_file, full_file = Path(half.features.filename), Path(store.features.filename)
    assert half.features.dtype == np.float16 and half_file.stat().st_size < 0.6 * full_file.stat().st_size
    np.testing.assert_array_equal(
        half.features[half.row_numbers(in_memory.images)], in_memory.features.astype(np.float16)
    )
    np.testing.assert_array_equal(
        half.lookup(in_memory.images), in_memory.features.astype(np.float16).astype(np.float32)
    )
    made = half_file.stat().st_mtime_ns
    assert Path(features.feature_store(dataset, dtype="float16").features.filename).stat().st_mtime_ns == made
    with pytest.raises(CourseError, match="No features"):
        store.lookup(["broken.jpg"])


def test_with_an_unpack_folder_the_store_is_read_from_a_copy_there(course_dir, tmp_path):
    """On Colab with Drive, lesson 11's grid is read at random every epoch: from a copy on the VM's disk."""
    dataset = tiny_dataset(course_dir / "images")
    on_drive = features.feature_store(dataset, grid=True)
    local = tmp_path / "vm-disk"
    dataset = dataclasses.replace(dataset, settings=dataset.settings.replace(unpack_dir=local))
    copied = features.feature_store(dataset, grid=True)
    copy = Path(copied.features.filename)
    assert copy.is_relative_to(local) and copy.name == "features.npy"
    np.testing.assert_array_equal(np.asarray(copied.features), np.asarray(on_drive.features))
    made = copy.stat().st_mtime_ns
    assert Path(features.feature_store(dataset, grid=True).features.filename).stat().st_mtime_ns == made
    source = Path(on_drive.features.filename)
    changed = np.load(source, mmap_mode="r+")  # the cache on Drive changes: the copy is made again
    changed[0] += 1
    changed.flush()
    del changed
    os.utime(source, ns=(made + 10**9, made + 10**9))
    again = features.feature_store(dataset, grid=True)
    np.testing.assert_array_equal(np.asarray(again.features[0]), np.load(source, mmap_mode="r")[0])
    half = features.feature_store(dataset, dtype="float16")  # lesson 10's half copy goes there too
    assert Path(half.features.filename).is_relative_to(local) and half.features.dtype == np.float16


def test_a_growing_cache_copies_its_rows_one_block_at_a_time(tmp_path):
    """A 41 MB cache of 5,000 rows grows by 2,000: the old rows are copied, not read into memory at once."""
    folder = tmp_path / "cache"
    folder.mkdir()
    rng = np.random.default_rng(0)
    old = [f"old_{i}.jpg" for i in range(5000)]
    rows = feature_cache.reserve(folder, old, (2048,), np.float32)
    vectors = rng.random((5000, 2048), dtype=np.float32)
    feature_cache.write_rows(folder, [rows[name] for name in old], vectors)
    new = [f"new_{i}.jpg" for i in range(2000)]
    tracemalloc.start()
    try:
        grown = feature_cache.reserve(folder, [*old[:3], *new], (2048,), np.float32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    block = feature_cache.BLOCK * 2048 * 4
    assert peak < 1.5 * block, f"growing held {peak / 1e6:.0f} MB at once, a block is {block / 1e6:.0f} MB"
    assert grown["old_2.jpg"] == 2 and sorted(grown.values())[3:] == list(range(5000, 7000))
    assert feature_cache.rows(folder) == {name: i for i, name in enumerate(old)}  # the new rows are not done yet
    np.testing.assert_array_equal(feature_cache.mapped(folder)[:5000], vectors)


# ---------------------------------------------------------------- bad images


def make_bad_images(folder: Path) -> dict[str, Path]:
    """One file of each bad kind, plus the clean images some of them are made from."""
    folder.mkdir(parents=True)
    source = picture(7)
    paths = {
        name: folder / name
        for name in (
            "source.png",
            "corrupt.jpg",
            "truncated.jpg",
            "gray.jpg",
            "gray.png",
            "gray_rgb.png",
            "rgba.png",
            "cmyk.jpg",
            "png_content.jpg",
            "png_content.png",
            "missing.jpg",
        )
    }
    source.save(paths["source.png"])
    paths["corrupt.jpg"].write_bytes(np.random.default_rng(0).bytes(3000))
    source.save(folder / "whole.jpg", quality=90)
    paths["truncated.jpg"].write_bytes((folder / "whole.jpg").read_bytes()[:1500])
    source.convert("L").save(paths["gray.jpg"])
    source.convert("L").save(paths["gray.png"])
    source.convert("L").convert("RGB").save(paths["gray_rgb.png"])
    rgba = source.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(SIZE))
    rgba.save(paths["rgba.png"])
    source.convert("CMYK").save(paths["cmyk.jpg"], quality=95)
    source.save(paths["png_content.jpg"], format="PNG")
    source.save(paths["png_content.png"])
    return paths


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    paths = make_bad_images(tmp_path_factory.mktemp("bad") / "images")
    # batch_size 3: every batch mixes good and bad files
    return paths, features.extract_features(list(paths.values()), weights="none", batch_size=3)


@pytest.mark.parametrize(
    "name, reason", [("corrupt.jpg", "not an image"), ("truncated.jpg", "truncated"), ("missing.jpg", "not found")]
)
def test_unreadable_image_is_skipped_with_its_reason(bad_run, name, reason):
    _, result = bad_run
    assert name not in result.images
    assert reason in result.skipped[name]


def pixels(path: Path) -> np.ndarray:
    return features.load_image(str(path)).numpy()


@pytest.mark.parametrize("name", ["gray.jpg", "rgba.png", "cmyk.jpg", "png_content.jpg"])
def test_readable_odd_image_is_featurised(bad_run, name):
    _, result = bad_run
    assert name in result.images and name not in result.skipped
    assert np.isfinite(result.lookup([name])).all()


def test_every_readable_image_survives_its_batch(bad_run):
    paths, result = bad_run
    assert set(result.images) | set(result.skipped) == set(paths)
    assert len(result.skipped) == 3
    assert result.features.shape == (len(paths) - 3, 2048)


def test_odd_images_are_converted_to_the_right_rgb(bad_run):
    paths, result = bad_run
    np.testing.assert_array_equal(pixels(paths["gray.png"]), pixels(paths["gray_rgb.png"]))
    np.testing.assert_array_equal(pixels(paths["rgba.png"]), pixels(paths["source.png"]))  # alpha dropped
    assert np.abs(pixels(paths["cmyk.jpg"]) - pixels(paths["source.png"])).mean() < 3  # JPEG loss only
    np.testing.assert_array_equal(result.lookup(["png_content.jpg"]), result.lookup(["png_content.png"]))
    gray = pixels(paths["gray.jpg"]) + np.array([103.939, 116.779, 123.68])  # undo the mean subtraction
    np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-3)


def test_dataset_features_skips_unreadable_images_and_caches_in_the_dataset_folder(tmp_path):
    images_dir = tmp_path / "images"
    good_images(images_dir, 2)
    (images_dir / "broken.jpg").write_bytes(b"this is not a JPEG")
    rows = [
        ("good_00.jpg", "a", "train"),
        ("good_00.jpg", "b", "train"),
        ("good_01.jpg", "c", "dev"),
        ("broken.jpg", "d", "test"),
    ]
    result = features.dataset_features(configured_dataset("tiny", images_dir, rows))
    assert result.images == ["good_00.jpg", "good_01.jpg"]
    assert "broken.jpg" in result.skipped
    assert (tmp_path / "course" / "artifacts" / "tiny" / "features" / "resnet50-none-224" / "features.npy").exists()


def test_exif_rotated_photo_gives_the_features_of_the_upright_photo(tmp_path):
    """A phone photo stored sideways with an EXIF orientation tag is turned upright first, whatever the tag."""
    upright = picture(3).resize((96, 64))
    upright.save(tmp_path / "upright.jpg", quality=95)
    paths = [tmp_path / "upright.jpg"]
    undo = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    for tag, stored in undo.items():  # what a camera stores so that turning by `tag` shows `upright`
        exif = Image.Exif()
        exif[0x0112] = tag
        upright.transpose(stored).save(tmp_path / f"tag{tag}.jpg", quality=95, exif=exif)
        paths.append(tmp_path / f"tag{tag}.jpg")
    result = features.extract_features(paths)
    assert result.skipped == {} and len(result) == 8
    base = result.lookup(["upright.jpg"])[0]
    for tag in undo:
        turned = result.lookup([f"tag{tag}.jpg"])[0]
        cosine = turned @ base / np.linalg.norm(turned) / np.linalg.norm(base)
        assert cosine > 0.999, (tag, cosine)
    sideways = features.extract_features([tmp_path / "tag6.jpg"]).features[
        0
    ]  # the check can fail: ignoring the tag differs
    stored_only = tmp_path / "no_tag.jpg"
    upright.transpose(undo[6]).save(stored_only, quality=95)
    plain = features.extract_features([stored_only]).features[0]
    assert plain @ base / np.linalg.norm(plain) / np.linalg.norm(base) < cosines(sideways, base)[0]


# ---------------------------------------------------------------- ImageNet weights missing


def offline_download(url, dest, md5=None, desc=None):
    raise CourseError(f"Cannot reach {url} (no network in tests).")


def test_missing_imagenet_weights_give_one_clear_message(tmp_path, monkeypatch):
    keras_home = tmp_path / "empty-keras"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(download, "download", offline_download)  # never the network
    with pytest.raises(CourseError) as caught:
        features.build_extractor("imagenet")
    message = str(caught.value)
    assert "\n" not in message
    for fix in (
        "connect to the internet",
        download.WEIGHTS_FILE,
        str(keras_home / "models"),
        "CAPTION_CNN_WEIGHTS=none",
    ):
        assert fix in message


def test_damaged_imagenet_weights_file_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / download.WEIGHTS_FILE).write_bytes(b"half a file")
    with pytest.raises(CourseError, match="damaged"):
        features.build_extractor("imagenet")


def test_unknown_weights_are_refused():
    with pytest.raises(CourseError, match="imagenet21k"):
        features.build_extractor("imagenet21k")


# ---------------------------------------------------------------- the 7 x 7 grid (lesson 11)


def test_the_grid_and_the_pooled_vectors_come_from_one_pass(tmp_path, monkeypatch):
    paths = good_images(tmp_path / "images", 3)
    pooled_only = features.extract_features(paths, cache_dir=tmp_path / "pooled-first")
    cache = tmp_path / "cache"
    grid = features.extract_features(paths, cache_dir=cache, grid=True, batch_size=2)
    assert grid.features.shape == (3, 49, 2048) and grid.features.dtype == np.float16
    assert features.cache_folder(cache, "none", "grid").name == "resnet50-none-224-grid"
    # the pooled vector is the average of the 49 region vectors: the same numbers as lesson 03's
    np.testing.assert_allclose(grid.lookup(grid.images).mean(axis=1), pooled_only.features, rtol=2e-3, atol=2e-3)
    monkeypatch.setattr(features, "extractor_function", lambda *args: pytest.fail("the model ran again"))
    pooled = features.extract_features(paths, cache_dir=cache)  # filled by the grid's pass
    np.testing.assert_allclose(pooled.features, pooled_only.features, rtol=1e-5, atol=1e-5)
    again = features.extract_features(paths, cache_dir=cache, grid=True)
    assert again.features.dtype == np.float16 and again.images == grid.images


def test_the_grid_pass_leaves_lesson_03s_pooled_rows_as_they_are(tmp_path):
    """Lesson 07's model was trained on the pooled cache: lesson 11's grid pass adds rows, never rewrites them."""
    paths = good_images(tmp_path / "images", 4)
    cache = tmp_path / "cache"
    features.extract_features(paths[:2], cache_dir=cache)  # lesson 03 (two images, say)
    folder = features.cache_folder(cache, "none")
    array = np.load(folder / "features.npy", mmap_mode="r+")
    array[:] = 7.0  # a marker no extraction would write
    array.flush()
    del array
    features.extract_features(paths, cache_dir=cache, grid=True)  # lesson 11: all four, both kinds
    pooled = features.extract_features(paths, cache_dir=cache)
    marked = [p.name for p in paths[:2]]
    assert (pooled.lookup(marked) == 7.0).all(), "the grid pass rewrote rows lesson 03 had computed"
    assert not (pooled.lookup([p.name for p in paths[2:]]) == 7.0).any()  # the new ones were filled by the pass
