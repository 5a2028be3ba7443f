"""A learner's own photos (lesson 08): from a URL, an upload or a file, never written to, each problem explained."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg_bytes, untrained_bundle
from helpers.model import load_bundle
from helpers.photos import caption_photos, fetch_photo, photos_in, save_upload, url_file_name
from helpers.system.errors import CourseError

HTML = b"<!DOCTYPE html><html><head><title>Photo</title></head><body><img src='x.jpg'></body></html>"


def test_each_url_gets_its_own_file_and_is_fetched_once(file_server, tmp_path):
    first = file_server.add("/photos/dog.jpg", jpeg_bytes((200, 150, 90)))
    second = file_server.add("/other/dog.jpg", jpeg_bytes((20, 50, 220)))  # the same file name, another photo
    a = fetch_photo(f"{file_server.url}/photos/dog.jpg", tmp_path)
    b = fetch_photo(f"{file_server.url}/other/dog.jpg", tmp_path)
    assert a != b and a.name.endswith("-dog.jpg") and b.name.endswith("-dog.jpg")
    assert a.read_bytes() == first.body and b.read_bytes() == second.body
    assert fetch_photo(f"{file_server.url}/photos/dog.jpg", tmp_path) == a
    assert len(first.requests) == 1  # the second time it came from the folder
    assert url_file_name("https://x.org/a%20b/My Photo.JPG?size=large").endswith("-My-Photo.JPG")


def test_a_missing_photo_is_a_404_not_offline(file_server, tmp_path):
    with pytest.raises(CourseError, match="HTTP 404") as error:
        fetch_photo(f"{file_server.url}/nothing.jpg", tmp_path)
    assert "Cannot reach" not in str(error.value) and list(tmp_path.iterdir()) == []


def test_a_web_page_instead_of_an_image_is_explained_and_not_kept(file_server, tmp_path):
    file_server.add("/share/photo", HTML)
    with pytest.raises(CourseError, match="web page, not an image.*image address"):
        fetch_photo(f"{file_server.url}/share/photo", tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing cached: fixing the URL fetches anew


def test_no_network_says_so(file_server, tmp_path):
    closed = file_server.url
    file_server.close()
    with pytest.raises(CourseError, match="Cannot reach"):
        fetch_photo(f"{closed}/dog.jpg", tmp_path)
    file_server.close = lambda: None


def test_uploads_stay_in_their_folder_and_part_files_are_not_photos(tmp_path):
    folder = tmp_path / "uploads"
    saved = save_upload("../../escape me.jpg", jpeg_bytes(), folder)
    assert saved == folder / "escape-me.jpg" and saved.exists()
    save_upload(".hidden.jpg", jpeg_bytes(), folder)
    (folder / "half.jpg.part").write_bytes(b"\xff\xd8")  # an interrupted download
    (folder / ".DS_Store").write_bytes(b"junk")
    assert [p.name for p in photos_in(folder)] == ["escape-me.jpg", "hidden.jpg"]
    assert photos_in(tmp_path / "not there") == []


@pytest.fixture
def bundle(course_dir):
    return load_bundle(untrained_bundle(course_dir / "model", never_ends=True))  # it always writes words


def test_caption_files_explains_every_bad_upload_and_captions_the_rest(bundle, tmp_path, monkeypatch):
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes((30, 160, 60), (96, 64)))
    heic = tmp_path / "IMG_0001.HEIC"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(300))
    page = tmp_path / "page.jpg"
    page.write_bytes(HTML)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    huge = tmp_path / "huge.png"
    Image.new("RGB", (120, 100), "white").save(huge)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 12,000 pixels: above twice the limit
    captioned, skipped = caption_photos([good, heic, page, text, huge], bundle, beam_width=2)
    assert list(captioned) == [good] and captioned[good].split()
    assert "HEIC" in skipped[heic] and "JPEG" in skipped[heic]
    assert "web page" in skipped[page]
    assert skipped[text] == "not an image file"
    assert "too large" in skipped[huge]


def test_nothing_readable_gives_no_captions_and_no_error(bundle, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    captioned, skipped = caption_photos([tmp_path / "empty.jpg"], bundle)
    assert captioned == {} and skipped == {tmp_path / "empty.jpg": "empty file"}


def test_a_learners_photo_is_byte_identical_after_captioning(bundle, tmp_path):
    mine = tmp_path / "my photos"
    mine.mkdir()
    photo = mine / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, as phones do
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(photo, exif=exif)
    before = hashlib.sha256(photo.read_bytes()).hexdigest(), photo.stat().st_mtime_ns
    caption_photos([photo], bundle, beam_width=3)
    assert (hashlib.sha256(photo.read_bytes()).hexdigest(), photo.stat().st_mtime_ns) == before
    assert sorted(p.name for p in mine.iterdir()) == ["portrait.jpg"]


def test_a_relative_path_with_a_space_comes_back_as_given(bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my dog.jpg").write_bytes(jpeg_bytes((30, 160, 60), (96, 64)))
    given = Path("./my dog.jpg")
    captioned, skipped = caption_photos([given], bundle)
    assert skipped == {} and captioned[given] == captioned[Path("my dog.jpg")] and captioned[given].split()
