"""helpers.datasets (lesson 01): Flickr8k downloaded from a loopback server and checked, the Kaggle layout, a
learner's folder with broken files, fast mode; the real Flickr8k text is in test_flickr8k_text.py."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from conftest import jpeg_bytes
from helpers import datasets
from helpers.data import flickr8k, images
from helpers.data.flickr8k import SPLIT_FILES, SPLITS
from helpers.data.shapes_dataset import make_shapes
from helpers.datasets import Dataset, load_dataset
from helpers.system.errors import CourseError

BOGUS = "2258277193_586949ec62.jpg.1"
SPLIT = {
    "train": ["img_0.jpg", "img_1.jpg", "img_2.jpg", "img_3.jpg"],
    "dev": ["img_4.jpg", "img_5.jpg"],
    "test": ["img_6.jpg"],
}
UNSPLIT = "img_7.jpg"  # like Flickr8k's 91 images that are in no split list


def token_lines(images: list[str]) -> list[str]:
    return [f"{image}#{k}\tA dog, number {k}, runs on {image}." for image in images for k in range(5)]


def fake_flickr8k() -> dict[str, bytes]:
    """The two Flickr8k archives in the real layout, with the real flaws, but 8 images."""
    images = [i for names in SPLIT.values() for i in names] + [UNSPLIT]
    archives = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for image in images:
            z.writestr(f"Flicker8k_Dataset/{image}", jpeg_bytes())
            z.writestr(f"__MACOSX/Flicker8k_Dataset/._{image}", b"junk")
    archives["Flickr8k_Dataset.zip"] = buffer.getvalue()
    buffer = io.BytesIO()
    lines = token_lines(images) + [f"{BOGUS}#0\tA bogus caption .", "this line has no tab", ""]
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("Flickr8k.token.txt", "\n".join(lines))
        for split, filename in SPLIT_FILES.items():
            z.writestr(filename, "\n".join(SPLIT[split]) + "\n")
        z.writestr("__MACOSX/._Flickr8k.token.txt", b"junk")
    archives["Flickr8k_text.zip"] = buffer.getvalue()
    return archives


@pytest.fixture
def flickr_server(file_server, course_dir, monkeypatch):
    """Serve fake archives at /good/..., with the expected checksums and counts patched to match."""
    archives = fake_flickr8k()
    for name, body in archives.items():
        file_server.add(f"/good/{name}", body)
    monkeypatch.setattr(flickr8k, "ARCHIVES", {n: hashlib.md5(b).hexdigest() for n, b in archives.items()})
    monkeypatch.setattr(flickr8k, "COUNTS", {"images": 8, "train": 4, "dev": 2, "test": 1})
    monkeypatch.setenv("CAPTION_DATASET", "flickr8k")
    return file_server, archives


def use_mirror(monkeypatch, server, prefix: str) -> None:
    monkeypatch.setenv("CAPTION_FLICKR8K_URL", f"{server.url}/{prefix}")


def test_flickr8k_download_extract_parse(flickr_server, monkeypatch, capsys):
    server, _ = flickr_server
    use_mirror(monkeypatch, server, "good")
    data = load_dataset()
    out = capsys.readouterr().out
    assert BOGUS in out and "malformed" in out
    assert data.images("train") == SPLIT["train"] and data.images("test") == SPLIT["test"]
    assert UNSPLIT not in data.images()  # in no split list: left out
    assert len(data.captions) == 7 * 5 and set(data.captions.columns) == {"image", "caption", "split"}
    assert data.captions["caption"].iloc[0] == "A dog, number 0, runs on img_0.jpg."
    root = course_dir_of(data)
    assert not list(root.rglob("__MACOSX")) and not list(root.rglob("._*"))
    assert not list(root.rglob("*.part")) and not list(root.glob(".extract-*"))
    # a second load reads the files and downloads nothing
    requests = sum(len(r.requests) for r in server.routes.values())
    load_dataset()
    assert sum(len(r.requests) for r in server.routes.values()) == requests


def course_dir_of(data: Dataset) -> Path:
    return data.images_dir.parent


def test_truncated_download_keeps_part_and_explains(flickr_server, monkeypatch, course_dir):
    server, archives = flickr_server
    server.add("/cut/Flickr8k_text.zip", archives["Flickr8k_text.zip"])
    server.add("/cut/Flickr8k_Dataset.zip", archives["Flickr8k_Dataset.zip"], "truncate")
    use_mirror(monkeypatch, server, "cut")
    with pytest.raises(CourseError, match="run again to resume") as error:
        load_dataset()
    assert "\n" not in str(error.value)
    target = course_dir / "data" / "flickr8k" / "archives" / "Flickr8k_Dataset.zip"
    assert not target.exists()
    assert target.with_name(target.name + ".part").stat().st_size == len(archives["Flickr8k_Dataset.zip"]) // 2


def test_interrupted_download_resumes(flickr_server, monkeypatch, course_dir):
    server, archives = flickr_server
    for name, body in archives.items():  # the 1 GB image archive is the one that gets cut
        server.add(f"/flaky/{name}", body, "flaky" if name == "Flickr8k_Dataset.zip" else "ok")
    use_mirror(monkeypatch, server, "flaky")
    with pytest.raises(CourseError, match="resume"):
        load_dataset()
    data = load_dataset()  # second attempt continues from the .part file
    assert len(data.images()) == 7
    first = server.routes["/flaky/Flickr8k_Dataset.zip"].requests
    assert first[0] is None and first[1] == f"bytes={len(archives['Flickr8k_Dataset.zip']) // 2}-"
    saved = course_dir / "data" / "flickr8k" / "archives" / "Flickr8k_Dataset.zip"
    assert saved.read_bytes() == archives["Flickr8k_Dataset.zip"]


def test_wrong_checksum_deletes_the_file(flickr_server, monkeypatch, course_dir):
    server, archives = flickr_server
    server.add("/bad/Flickr8k_text.zip", archives["Flickr8k_text.zip"])
    server.add("/bad/Flickr8k_Dataset.zip", b"not the archive at all")
    use_mirror(monkeypatch, server, "bad")
    with pytest.raises(CourseError, match="corrupt.*deleted"):
        load_dataset()
    assert [p.name for p in (course_dir / "data" / "flickr8k" / "archives").iterdir()] == ["Flickr8k_text.zip"]


def test_the_captions_alone_need_only_the_text_archive(flickr_server, monkeypatch, course_dir):
    server, archives = flickr_server
    use_mirror(monkeypatch, server, "good")
    text_only = load_dataset(images=False)
    assert server.routes["/good/Flickr8k_Dataset.zip"].requests == []  # the 1 GB archive was not fetched
    assert (
        not text_only.images_dir.exists() and not (course_dir / "artifacts" / "flickr8k" / "image-check.json").exists()
    )
    full = load_dataset()  # a lesson that needs the images fetches them now
    assert len(server.routes["/good/Flickr8k_Dataset.zip"].requests) == 1
    assert text_only.captions.equals(full.captions)  # the same table: the vocabulary will be the same


def test_404_is_one_line(flickr_server, monkeypatch):
    server, _ = flickr_server
    use_mirror(monkeypatch, server, "missing")
    with pytest.raises(CourseError, match="HTTP 404") as error:
        load_dataset()
    assert "\n" not in str(error.value)


def test_no_network_points_to_shapes(course_dir, monkeypatch, file_server):
    closed = file_server.url
    file_server.close()  # nothing listens there any more
    monkeypatch.setenv("CAPTION_FLICKR8K_URL", closed)
    monkeypatch.setenv("CAPTION_DATASET", "flickr8k")
    with pytest.raises(CourseError, match="CAPTION_DATASET=shapes"):
        load_dataset()
    file_server.close = lambda: None


def test_wrong_counts_say_what_is_wrong(flickr_server, monkeypatch):
    server, _ = flickr_server
    monkeypatch.setattr(flickr8k, "COUNTS", {"images": 8091, "train": 6000, "dev": 1000, "test": 1000})
    use_mirror(monkeypatch, server, "good")
    with pytest.raises(CourseError, match=r"images: 8 \(expected 8091\).*train: 4 \(expected 6000\)"):
        load_dataset()


def write_kaggle(root: Path, with_splits: bool) -> None:
    (root / "Images").mkdir(parents=True)
    images = [f"k{i}.jpg" for i in range(8)]
    for image in images:
        (root / "Images" / image).write_bytes(jpeg_bytes())
    rows = ["image,caption"] + [f"{image},A dog , a cat , and a bird {k}" for image in images for k in range(5)]
    rows += ["", "missing.jpg,A caption for no image"]
    (root / "captions.txt").write_text("\n".join(rows) + "\n")
    if with_splits:
        lists = {"train": images[:5], "dev": images[5:7], "test": images[7:]}
        for split, filename in SPLIT_FILES.items():
            (root / filename).write_text("\n".join(lists[split]))


@pytest.mark.parametrize("with_splits", [True, False])
def test_kaggle_layout(tmp_path, course_dir, with_splits):
    root = tmp_path / "flickr8k-kaggle"
    write_kaggle(root, with_splits)
    data = load_dataset(str(root))
    assert data.name == "flickr8k-kaggle" and "missing.jpg" not in data.images()
    assert data.captions["caption"].iloc[0] == "A dog , a cat , and a bird 0"  # commas kept
    assert data.captions.groupby("image").size().eq(5).all()
    if with_splits:
        assert data.images("train") == [f"k{i}.jpg" for i in range(5)] and data.images("test") == ["k7.jpg"]
    else:
        assert set(data.captions["split"]) == {"train", "dev", "test"}
        assert data.captions.groupby("image")["split"].nunique().eq(1).all()  # split by image


def test_unknown_dataset_is_one_line(course_dir):
    with pytest.raises(
        CourseError, match=r"not a dataset name \(flickr8k, shapes, flickr30k, coco\) nor an existing folder"
    ):
        load_dataset("/no/such/folder")


def test_fast_mode_keeps_the_first_images(course_dir, monkeypatch):
    make_shapes(course_dir / "data" / "shapes")
    monkeypatch.setattr(datasets, "FAST_IMAGES", {"train": 10, "dev": 3, "test": 2})
    monkeypatch.setenv("CAPTION_FAST", "1")
    data = load_dataset()
    full = load_dataset(fast=False)
    assert [len(data.images(s)) for s in SPLITS] == [10, 3, 2]
    assert data.images("train") == full.images("train")[:10]


# ---------------------------------------------------------------- a learner's own folder


def broken_files(images: Path) -> dict[str, str]:
    """The broken files learners' folders hold, written into ``images``: name -> what the check must say."""
    photo = Image.linear_gradient("L").resize((120, 90)).convert("RGB")
    photo.save(images / "whole.jpg", quality=90)
    (images / "empty.jpg").write_bytes(b"")
    (images / "truncated.jpg").write_bytes((images / "whole.jpg").read_bytes()[:900])
    (images / "notes.jpg").write_text("this is not an image")
    (images / "page.jpg").write_text("<!DOCTYPE html><html><body>Sign in to see this photo</body></html>")
    (images / "iphone.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    photo.save(images / "really_a_png.jpg", format="PNG")
    photo.convert("CMYK").save(images / "cmyk.jpg")
    return {
        "empty.jpg": "empty file",
        "truncated.jpg": "truncated",
        "notes.jpg": "not an image file",
        "page.jpg": "web page",
        "iphone.jpg": "HEIC",
    }


def test_a_kaggle_folder_with_broken_files_loads_without_them(tmp_path, course_dir, capsys):
    root = tmp_path / "my-photos"
    write_kaggle(root, with_splits=False)
    expected = broken_files(root / "Images")
    readable = ["whole.jpg", "really_a_png.jpg", "cmyk.jpg"]
    with (root / "captions.txt").open("a") as captions:
        for name in [*expected, *readable]:
            captions.write(f"{name},A picture of something\n")
    data = load_dataset(str(root))
    out = capsys.readouterr().out
    assert f"Left out {len(expected)} captions of {len(expected)} unreadable image(s)" in out
    assert set(data.unreadable) == set(expected)
    for name, why in expected.items():
        assert why in data.unreadable[name] and name not in data.images()
    assert set(readable) <= set(data.images())  # convertible images stay
    assert not (root / "image-check.json").exists()  # nothing is written into the learner's folder
    assert (course_dir / "artifacts" / "my-photos" / "image-check.json").exists()


def test_the_image_check_is_remembered_until_a_file_changes(tmp_path, course_dir, monkeypatch):
    root = tmp_path / "kaggle"
    write_kaggle(root, with_splits=True)
    (root / "Images" / "k3.jpg").write_bytes(b"")
    assert "k3.jpg" in load_dataset(str(root)).unreadable
    checked = []
    real = images.check_image
    monkeypatch.setattr(images, "check_image", lambda path: checked.append(path.name) or real(path))
    again = load_dataset(str(root))
    assert checked == [] and "k3.jpg" in again.unreadable  # every verdict came from the record
    (root / "Images" / "k3.jpg").write_bytes(jpeg_bytes())  # the learner fixes the file
    fixed = load_dataset(str(root))
    assert checked == ["k3.jpg"] and "k3.jpg" in fixed.images() and not fixed.unreadable


def test_a_second_colab_vm_unpacks_from_the_archives_on_drive(flickr_server, monkeypatch, tmp_path):
    """CAPTION_DATA_DIR on Drive keeps the archives; each VM unpacks them to its own disk, downloading nothing."""
    server, _ = flickr_server
    use_mirror(monkeypatch, server, "good")
    drive = tmp_path / "drive"
    monkeypatch.setenv("CAPTION_DATA_DIR", str(drive))
    monkeypatch.setenv("CAPTION_UNPACK_DIR", str(tmp_path / "vm1"))
    first = load_dataset()
    assert first.images_dir == tmp_path / "vm1" / "flickr8k" / "Flicker8k_Dataset"
    assert sorted(p.name for p in (drive / "data" / "flickr8k" / "archives").iterdir()) == sorted(flickr8k.ARCHIVES)
    requests = sum(len(route.requests) for route in server.routes.values())
    monkeypatch.setenv("CAPTION_UNPACK_DIR", str(tmp_path / "vm2"))  # a new VM: its disk is empty
    second = load_dataset()
    assert (
        second.images_dir == tmp_path / "vm2" / "flickr8k" / "Flicker8k_Dataset" and second.images() == first.images()
    )
    assert sum(len(route.requests) for route in server.routes.values()) == requests  # nothing downloaded again
    assert (drive / "artifacts" / "flickr8k" / "image-check.json").exists()  # the verdicts live on Drive too
