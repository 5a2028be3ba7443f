"""The command line captions images with a saved model bundle (issue 6)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from helpers.__main__ import main
from helpers.model import build_captioner
from helpers.text import Vocabulary
from helpers.training import save_bundle


def test_caption_prints_one_line_per_image_and_reports_bad_ones(course_dir, capsys):
    vocab = Vocabulary.build(["startseq a red circle endseq"], min_count=1)
    captioner = build_captioner(len(vocab), vocab.max_len)
    next_word = captioner.sequence.get_layer("next_word")
    kernel, bias = next_word.get_weights()
    bias[vocab.end_id] = -1e4  # an untrained model that never ends: every caption has max_len - 1 words
    next_word.set_weights([kernel, bias])
    bundle = save_bundle(captioner, vocab, course_dir / "model")
    good = course_dir / "red.png"
    Image.fromarray(np.full((64, 80, 3), (200, 30, 30), dtype=np.uint8)).save(good)
    missing = course_dir / "missing.jpg"
    capsys.readouterr()

    status = main(["caption", str(good), str(missing), "--model", str(bundle), "--beam", "2"])

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{good}\t")
    caption = lines[0].split("\t")[1].split()
    assert len(caption) == vocab.max_len - 1 and set(caption) <= {"a", "red", "circle"}
    assert f"skipped {missing}: file not found" in err
    assert status == 1


def test_caption_without_a_model_says_what_to_do(course_dir, capsys):
    assert main(["caption", "x.jpg", "--model", str(course_dir / "nothing")]) == 1
    assert "run lesson 07 first" in capsys.readouterr().err
