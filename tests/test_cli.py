"""The command line: captions images with a saved model bundle, and the doctor's report (issue 6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import jpeg_bytes, untrained_bundle
from helpers.config import get_settings
from helpers.text import Vocabulary
from helpers.tools.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_caption_prints_one_line_per_image_and_reports_bad_ones(course_dir, capsys):
    bundle = untrained_bundle(course_dir / "model", never_ends=True)
    good = course_dir / "red.png"
    Image.fromarray(np.full((64, 80, 3), (200, 30, 30), dtype=np.uint8)).save(good)
    missing = course_dir / "missing.jpg"
    capsys.readouterr()

    status = main(["caption", str(good), str(missing), "--model", str(bundle), "--beam", "2"])

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{good}\t")
    caption = lines[0].split("\t")[1].split()
    max_len = Vocabulary.load(bundle / "vocab.json").max_len
    assert len(caption) == max_len - 1 and set(caption) <= {"a", "red", "circle"}
    assert f"skipped {missing}: file not found" in err
    assert status == 1


def test_caption_takes_web_addresses_as_lesson_08_does(course_dir, capsys, file_server):
    bundle = untrained_bundle(course_dir / "model", never_ends=True)
    file_server.add("/photos/cat.jpg", jpeg_bytes((200, 30, 30), (80, 64)))
    file_server.add("/share/page.jpg", b"<!DOCTYPE html><html><body>a photo page</body></html>")
    good, gone, page = (f"{file_server.url}{path}" for path in ("/photos/cat.jpg", "/nothing.jpg", "/share/page.jpg"))
    capsys.readouterr()

    status = main(["caption", good, gone, page, "--model", str(bundle)])

    out, err = capsys.readouterr()
    assert [line.split("\t")[0] for line in out.splitlines()] == [good] and out.split("\t")[1].split()
    assert f"skipped {gone}: Download failed: the server answered HTTP 404" in err
    assert f"skipped {page}: {page} did not give an image: a web page" in err
    assert status == 1
    assert [p.name for p in (get_settings().artifacts_dir / "downloads").iterdir()][0].endswith("-cat.jpg")


def test_caption_without_a_model_says_what_to_do(course_dir, capsys):
    assert main(["caption", "x.jpg", "--model", str(course_dir / "nothing")]) == 1
    assert "run lesson 07 first" in capsys.readouterr().err


def test_caption_of_a_missing_file_exits_1_with_one_line_and_no_traceback(course_dir):
    bundle = untrained_bundle(course_dir / "model")
    missing = course_dir / "no such photo.jpg"

    result = subprocess.run(
        [sys.executable, "-m", "helpers", "caption", str(missing), "--model", str(bundle)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    # stderr also holds TensorFlow's own start-up log lines; ours is the one naming the file
    assert [line for line in result.stderr.splitlines() if "no such photo" in line] == [
        f"skipped {missing}: file not found"
    ]


def test_doctor_reports_the_configured_dataset_and_caches(course_dir, capsys, monkeypatch):
    from helpers.datasets import load_dataset
    from helpers.features import extract_features

    settings = get_settings()
    data = load_dataset()  # generates the shapes dataset
    extract_features([data.image_path(image) for image in data.images()[:3]], cache_dir=settings.features_dir)
    monkeypatch.setattr("shutil.which", lambda name: None)  # no Java: only METEOR needs it
    capsys.readouterr()

    status = main(["doctor"])

    out = capsys.readouterr().out
    report = {line.split("]")[1].split()[0]: line for line in out.splitlines() if line.startswith("  [")}
    assert (
        report["dataset"].startswith("  [x] dataset shapes") and str(settings.data_dir / "shapes") in report["dataset"]
    )
    assert "flickr8k" not in "".join(report.values()).lower()  # not the dataset configured
    assert report["ResNet50"].startswith("  [-]") and "not needed" in report["ResNet50"]
    assert report["image"].startswith("  [x]") and "(3 images)" in report["image"]
    model = settings.artifacts_dir / "model.keras"
    assert report["trained"].startswith("  [ ]") and report["trained"].endswith(str(model))
    assert "-> lesson 07 trains it" in out
    assert report["Java"].startswith("  [ ]")
    # the optional items (a trained model, Java) are reported but do not make the check fail
    assert status == 0 and out.rstrip().endswith("(trained model, Java (METEOR): optional).")

    untrained_bundle()  # where lesson 07 saves the model
    assert main(["doctor"]) == 0
    assert f"  [x] trained model     {model}" in capsys.readouterr().out


def test_doctor_fails_when_something_the_run_needs_is_missing(course_dir, capsys):
    settings = get_settings()  # shapes with random weights: dataset and features are needed, not yet made

    status = main(["doctor"])

    out = capsys.readouterr().out
    assert status == 1
    assert out.rstrip().endswith("Not ready: dataset shapes, image features missing (see above).")
    assert "-> any lesson (or `make prefetch`) generates it" in out
    assert not (settings.data_dir / "shapes").exists()  # the doctor only looks
