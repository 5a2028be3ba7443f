"""Caption cleaning, the vocabulary and the cached text artifacts (helpers.text, lesson 02)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from conftest import configured_dataset
from helpers.datasets import Dataset, load_dataset
from helpers.system.errors import CourseError
from helpers.text import END, PAD, START, Vocabulary, clean_caption, prepare_text, wrap


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("A dog runs .", "a dog runs"),
        # punctuation inside a token is removed (not split on), as in the classic tutorials
        ("A black dog,running.", "a black dogrunning"),
        ("The dog's ball", "the dogs ball"),
        ("The dog\u2019s \u201cball\u201d", "the dogs ball"),  # curly apostrophe and quotes
        ("A boy in a t-shirt", "a boy in a tshirt"),
        ("Two 3-year-old kids and 2 dogs", "two kids and dogs"),  # tokens with digits go
        ("A man with a B2 bomber", "a man with a bomber"),
        ("I see a b c", "see a"),  # 1-letter tokens go, except "a"
        ("A caf\u00e9 in Z\u00fcrich", "a cafe in zurich"),  # accents dropped
        ("A caf\u0065\u0301", "a cafe"),  # decomposed accent (e + combining acute)
        ("\uff21 \uff24\uff2f\uff27", "a dog"),  # full-width letters
        ("a\u00a0dog\tand\na  cat", "a dog and a cat"),  # any white space separates words
        ("A dog \U0001f436 !", "a dog"),  # emoji are symbols
        ("SHOUTING Dog", "shouting dog"),
        ("x\u00b2 and \u00bd", "and"),  # superscript and fraction digits are digits
    ],
)
def test_clean_caption(raw: str, clean: str) -> None:
    assert clean_caption(raw) == clean


@pytest.mark.parametrize("raw", ["", "   ", ". , !", "1 2 3", "I", "\u2014 \u2026"])
def test_caption_empty_after_cleaning_wraps_to_start_end(raw: str) -> None:
    assert clean_caption(raw) == ""
    assert wrap(clean_caption(raw)) == f"{START} {END}"


def test_wrap() -> None:
    assert wrap("a dog runs") == "startseq a dog runs endseq"


def wrapped(*captions: str) -> list[str]:
    return [wrap(clean_caption(c)) for c in captions]


def test_build_orders_by_count_then_alphabet_and_applies_min_count() -> None:
    vocab = Vocabulary.build(wrapped("a dog runs", "a cat runs", "a dog sits", "a bird flies"), min_count=2)
    # a: 4, startseq/endseq: 4, dog 2, runs 2; cat, sits, bird, flies only once
    assert vocab.words == [PAD, "a", END, START, "dog", "runs"]
    assert len(vocab) == 6
    assert vocab.index["dog"] == 4 and vocab.words[0] == PAD
    assert vocab.counts == {"a": 4, END: 4, START: 4, "dog": 2, "runs": 2}
    assert "cat" not in vocab and PAD not in vocab and "dog" in vocab
    assert (vocab.start_id, vocab.end_id) == (3, 2)
    assert vocab.min_count == 2


def test_start_and_end_are_kept_even_when_rare() -> None:
    vocab = Vocabulary.build(wrapped("a dog"), min_count=10)
    assert vocab.words == [PAD, END, START]
    assert vocab.encode("startseq a dog endseq") == [vocab.start_id, vocab.end_id]


def test_encode_drops_unknown_words_and_decode_round_trips() -> None:
    vocab = Vocabulary.build(wrapped("a dog runs on grass", "a dog runs", "a cat on grass"), min_count=2)
    caption = "startseq a dog runs on grass endseq"
    ids = vocab.encode(caption)
    assert ids[0] == vocab.start_id and ids[-1] == vocab.end_id and 0 not in ids
    assert vocab.decode(ids) == "a dog runs on grass"
    assert vocab.encode("startseq a zebra runs endseq") == vocab.encode("startseq a runs endseq")
    # decode skips padding and startseq, stops at the first endseq, accepts numpy ids
    padded = np.array([0, *ids, 0, vocab.index["dog"]], dtype=np.int32)
    assert vocab.decode(padded) == "a dog runs on grass"
    assert vocab.decode([vocab.index["dog"], vocab.index["runs"]]) == "dog runs"  # no endseq: all words


def test_max_len_counts_start_end_and_ignores_dropped_words() -> None:
    vocab = Vocabulary.build(wrapped("a dog runs", "a dog runs", "a dog runs far far far away"), min_count=2)
    # "far" (3 times) is kept, "away" (once) is dropped: startseq a dog runs far far far endseq
    assert vocab.max_len == 8


def test_save_load_round_trip(tmp_path) -> None:
    vocab = Vocabulary.build(wrapped("a dog runs", "a caf\u00e9 dog", "a dog runs"), min_count=2)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded.words == vocab.words and loaded.index == vocab.index and loaded.counts == vocab.counts
    assert (loaded.max_len, loaded.min_count) == (vocab.max_len, vocab.min_count)
    assert loaded.encode("startseq a dog runs endseq") == vocab.encode("startseq a dog runs endseq")


def test_load_bad_or_missing_file_is_a_course_error(tmp_path) -> None:
    (tmp_path / "bad.json").write_text('{"words": ["a"]}')
    with pytest.raises(CourseError, match="not a vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text('{"words": [')
    with pytest.raises(CourseError, match="not a vocabulary"):
        Vocabulary.load(tmp_path / "broken.json")
    with pytest.raises(CourseError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")


# ---------------------------------------------------------------- prepare_text and its cache


def tiny_dataset(tmp_path, train_extra: list[str] = ()) -> Dataset:
    """Three images: the word "zebra" appears often, but only in test captions."""
    rows = [("train1.jpg", "A dog runs on the grass .", "train")] * 3
    rows += [("train2.jpg", 'A dog, "NA" in a t-shirt', "train")] * 2
    rows += [("train2.jpg", caption, "train") for caption in train_extra]
    rows += [("test1.jpg", "A zebra runs .", "test")] * 5
    rows += [("dev1.jpg", "A dog .", "dev")]
    return configured_dataset("tiny", tmp_path / "images", rows)


def test_vocabulary_comes_from_training_captions_only(tmp_path, course_dir) -> None:
    table, vocab = prepare_text(tiny_dataset(tmp_path), min_count=2)
    assert "zebra" not in vocab  # 5 times in test captions, 0 in training ones
    assert "dog" in vocab and vocab.counts["dog"] == 5
    zebra_caption = table.loc[table["split"] == "test", "tokens"].iloc[0]
    assert zebra_caption == "startseq a zebra runs endseq"
    assert vocab.decode(vocab.encode(zebra_caption)) == "a runs"


def test_prepare_text_builds_saves_then_reuses(tmp_path, course_dir, capsys) -> None:
    dataset = tiny_dataset(tmp_path)
    table, vocab = prepare_text(dataset, min_count=2)
    folder = dataset.artifacts_dir
    assert folder == course_dir / "artifacts" / "tiny" / "random-cnn"  # the dataset's own folder
    assert "not found" in capsys.readouterr().out
    assert (folder / "captions.csv").exists() and (folder / "vocab.json").exists()
    assert list(table.columns) == ["image", "caption", "split", "tokens"]
    assert table["tokens"].iloc[3] == "startseq a dog na in a tshirt endseq"

    again, vocab_again = prepare_text(dataset, min_count=2)
    assert capsys.readouterr().out == ""  # read from the cache, no rebuild note
    assert again["caption"].tolist() == table["caption"].tolist()  # commas, quotes and "NA" survive CSV
    assert again["tokens"].tolist() == table["tokens"].tolist()
    assert vocab_again.words == vocab.words and vocab_again.max_len == vocab.max_len


def test_prepare_text_rebuilds_for_other_captions_or_min_count(tmp_path, course_dir, capsys) -> None:
    _, vocab = prepare_text(tiny_dataset(tmp_path), min_count=2)
    _, vocab3 = prepare_text(tiny_dataset(tmp_path), min_count=3)
    assert "rebuilding" in capsys.readouterr().out
    assert vocab3.min_count == 3 and len(vocab3) < len(vocab)
    _, vocab_more = prepare_text(tiny_dataset(tmp_path, ["A cat sleeps"] * 3), min_count=3)
    assert "rebuilding" in capsys.readouterr().out
    assert "cat" in vocab_more and "cat" not in vocab3


def test_prepare_text_without_training_captions_is_a_course_error(tmp_path, course_dir) -> None:
    dataset = tiny_dataset(tmp_path)
    test_only = dataclasses.replace(dataset, captions=dataset.captions[dataset.captions["split"] == "test"])
    with pytest.raises(CourseError, match="no training captions"):
        prepare_text(test_only)


def test_a_dataset_loaded_by_path_writes_into_its_own_folder(tmp_path, course_dir, monkeypatch) -> None:
    """Loading a folder while CAPTION_DATASET names another dataset never touches that dataset's artifacts."""
    monkeypatch.delenv("CAPTION_DATASET")  # the configured dataset is flickr8k
    flickr8k_cache = course_dir / "artifacts" / "flickr8k" / "random-cnn" / "vocab.json"
    flickr8k_cache.parent.mkdir(parents=True)
    flickr8k_cache.write_text("the learner's Flickr8k vocabulary")
    folder = tmp_path / "My Photos"
    (folder / "Images").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (32, 24), (60 * i, 90, 30)).save(folder / "Images" / f"p{i}.jpg")
    (folder / "captions.txt").write_text("image,caption\n" + "".join(f"p{i}.jpg,A dog runs {i}\n" for i in range(4)))
    data = load_dataset(str(folder))
    prepare_text(data, min_count=1)
    assert (course_dir / "artifacts" / "My-Photos" / "random-cnn" / "vocab.json").exists()
    assert flickr8k_cache.read_text() == "the learner's Flickr8k vocabulary"
    assert sorted(p.name for p in folder.rglob("*")) == [
        "Images",
        "captions.txt",
        "p0.jpg",
        "p1.jpg",
        "p2.jpg",
        "p3.jpg",
    ]
