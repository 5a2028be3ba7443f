"""Karpathy split files (Flickr30k, COCO): reading the JSON, finding the images, downloads on loopback."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from conftest import jpeg_bytes
from helpers.data import karpathy
from helpers.datasets import fast_subset, load_dataset, read_karpathy
from helpers.system.errors import CourseError

#: (filename, Karpathy split, COCO folder, number of sentences)
RECORDS = [
    ("a.jpg", "train", "train2014", 5),
    ("b.jpg", "train", "train2014", 5),
    ("c.jpg", "restval", "val2014", 6),  # COCO has images with more than five captions
    ("d.jpg", "val", "val2014", 5),
    ("e.jpg", "test", "val2014", 5),
    ("f.jpg", "test", "val2014", 5),  # listed, but its file is missing
]


def split_file(name: str = "flickr30k", coco: bool = False) -> dict:
    images = []
    for number, (filename, split, folder, count) in enumerate(RECORDS):
        sentences = [{"raw": f"A dog number {k} runs on {filename} .  ", "tokens": ["a", "dog"]} for k in range(count)]
        record = {"filename": filename, "split": split, "sentences": sentences, "imgid": number}
        if coco:
            record["filepath"] = folder
        images.append(record)
    return {"images": images, "dataset": name}


def write_images(folder: Path, coco: bool = False) -> None:
    for filename, _, sub, _ in RECORDS[:-1]:
        path = folder / (sub if coco else "") / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes())


def check_splits(data) -> None:
    assert data.images("train") == ["a.jpg", "b.jpg", "c.jpg"]  # restval joins train
    assert data.images("dev") == ["d.jpg"] and data.images("test") == ["e.jpg"]
    assert len(data.captions) == 5 + 5 + 6 + 5 + 5
    assert set(data.captions["split"]) == {"train", "dev", "test"}
    assert data.captions["caption"].iloc[0] == "A dog number 0 runs on a.jpg ."  # "raw", stripped


@pytest.mark.parametrize("layout", ["flickr30k-images", "flickr30k_images/flickr30k_images", "images", "."])
def test_flickr30k_layouts(tmp_path, layout, capsys):
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(split_file()))
    write_images(tmp_path / layout)
    data = read_karpathy(tmp_path)
    check_splits(data)
    assert "f.jpg" in capsys.readouterr().out  # the missing image is named
    assert data.image_path("a.jpg") == tmp_path / layout / "a.jpg" and data.image_path("a.jpg").exists()


def test_coco_images_in_two_folders_through_load_dataset(tmp_path, monkeypatch, course_dir):
    folder = tmp_path / "my-coco"
    folder.mkdir()
    (folder / "dataset_coco.json").write_text(json.dumps(split_file("coco", coco=True)))
    write_images(folder, coco=True)
    monkeypatch.setenv("CAPTION_DATASET", str(folder))
    data = load_dataset()
    check_splits(data)
    assert data.image_path("a.jpg") == folder / "train2014" / "a.jpg"
    assert data.image_path("e.jpg") == folder / "val2014" / "e.jpg"
    assert all(data.image_path(image).exists() for image in data.images())
    # the folder map survives the other ways a dataset gets trimmed
    assert fast_subset(data, {"train": 1, "dev": 1, "test": 1}).image_path("d.jpg") == folder / "val2014" / "d.jpg"
    (folder / "train2014" / "a.jpg").write_bytes(b"corrupt")  # left out when the dataset is loaded again
    again = load_dataset()
    assert "a.jpg" not in again.images() and again.image_path("c.jpg") == folder / "val2014" / "c.jpg"


def test_unknown_splits_are_skipped_with_a_note(tmp_path, capsys):
    content = split_file()
    content["images"][0]["split"] = "extra"
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(content))
    write_images(tmp_path / "images")
    data = read_karpathy(tmp_path)
    assert "a.jpg" not in data.images() and "extra" in capsys.readouterr().out


def test_no_images_says_where_to_get_flickr30k(tmp_path):
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(split_file()))
    with pytest.raises(CourseError, match="request them at .*DenotationGraph.*flickr30k-images/"):
        read_karpathy(tmp_path)


def test_bad_split_file(tmp_path):
    (tmp_path / "dataset_coco.json").write_text('{"not": "karpathy"}')
    with pytest.raises(CourseError, match="not a Karpathy split file"):
        read_karpathy(tmp_path)


# ---------------------------------------------------------------- downloads (loopback server)


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, body in files.items():
            z.writestr(name, body)
    return buffer.getvalue()


@pytest.fixture
def karpathy_server(file_server, course_dir, monkeypatch):
    """Karpathy's zip and the two COCO image archives, tiny, on 127.0.0.1."""
    file_server.add(
        "/caption_datasets.zip",
        zipped(
            {
                "dataset_coco.json": json.dumps(split_file("coco", coco=True)).encode(),
                "dataset_flickr30k.json": json.dumps(split_file()).encode(),
                "dataset_flickr8k.json": b"{}",
            }
        ),
    )
    for folder in ("train2014", "val2014"):
        members = {f"{sub}/{name}": jpeg_bytes() for name, _, sub, _ in RECORDS[:-1] if sub == folder}
        file_server.add(f"/{folder}.zip", zipped(members), mode="flaky" if folder == "val2014" else "ok")
    monkeypatch.setattr(karpathy, "KARPATHY_URL", f"{file_server.url}/caption_datasets.zip")
    monkeypatch.setattr(
        karpathy, "COCO_IMAGES", {f: (f"{file_server.url}/{f}.zip", 1000) for f in ("train2014", "val2014")}
    )
    return file_server


def test_coco_download_resumes_and_cleans_up(karpathy_server, monkeypatch):
    monkeypatch.setenv("CAPTION_DATASET", "coco")
    with pytest.raises(CourseError, match="run again"):  # val2014.zip breaks off half way the first time
        load_dataset()
    data = load_dataset()
    check_splits(data)
    root = course_dir_root(data)
    assert data.image_path("e.jpg") == root / "val2014" / "e.jpg" and data.image_path("e.jpg").exists()
    assert not list((root / "archives").glob("*2014.zip*"))  # image archives deleted once extracted
    assert not list(root.glob(".extract-*"))
    assert karpathy_server.routes["/val2014.zip"].requests[-1] is not None  # the second try asked for the rest only


def course_dir_root(data) -> Path:
    return data.image_path("a.jpg").parents[1]


def test_flickr30k_download_gets_the_split_file_and_explains_the_images(karpathy_server, monkeypatch, course_dir):
    monkeypatch.setenv("CAPTION_DATASET", "flickr30k")
    with pytest.raises(CourseError, match="request them at"):
        load_dataset()
    root = course_dir / "data" / "flickr30k"
    assert (root / "dataset_flickr30k.json").exists() and not (root / "dataset_coco.json").exists()
    write_images(root / "flickr30k-images")
    check_splits(load_dataset())


def test_coco_refuses_to_start_without_disk_space(karpathy_server, monkeypatch):
    monkeypatch.setenv("CAPTION_DATASET", "coco")
    monkeypatch.setattr(karpathy.shutil, "disk_usage", lambda path: type("usage", (), {"free": 10})())
    with pytest.raises(CourseError, match="GB free"):
        load_dataset()
