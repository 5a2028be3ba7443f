"""The default dataset on the real Flickr8k caption text (``../shared/flickr8k_text/``), placeholder images.

Every figure ``FACTS`` takes from the text is computed here with the course's own loader,
cleaning and vocabulary; lessons 01 and 02 (solutions included) run on the unpacked layout
in fast and full mode, so each of their ``if settings.dataset == "flickr8k"`` checks runs.
"""

from __future__ import annotations

import collections
import re

import pytest
from nbclient import NotebookClient

from conftest import REAL_FLICKR8K_TEXT, real_flickr8k_layout
from helpers.config import get_settings
from helpers.data.caption_files import read_token_file
from helpers.datasets import FACTS, KEYS_WITHOUT_IMAGE, TOKEN_FILE, load_dataset
from helpers.text import Vocabulary, clean_caption, wrap
from scripts.with_solutions import LESSONS, with_solutions

pytestmark = pytest.mark.skipif(
    not REAL_FLICKR8K_TEXT.is_dir(), reason=f"the real Flickr8k text is not here ({REAL_FLICKR8K_TEXT})"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A CAPTION_DATA_DIR holding Flickr8k unpacked as the course unpacks it (placeholder images)."""
    base = tmp_path_factory.mktemp("flickr8k-real-text")
    real_flickr8k_layout(base / "data" / "flickr8k")
    return base


@pytest.fixture
def flickr8k_settings(data_dir, monkeypatch):
    monkeypatch.setenv("CAPTION_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CAPTION_DATASET", "flickr8k")
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", "none")
    monkeypatch.setenv("CAPTION_FAST", "0")
    return get_settings()


def test_the_token_file_as_it_is(data_dir):
    listed = read_token_file(data_dir / "data" / "flickr8k" / TOKEN_FILE)
    assert len(listed) == FACTS["caption_lines"]
    assert listed["image"].nunique() == FACTS["ids_in_token_file"]
    sizes = listed.groupby("image").size()
    image, bogus = KEYS_WITHOUT_IMAGE
    assert (sizes[bogus], sizes[image]) == (1, 4) and (sizes.drop([bogus, image]) == 5).all()


def test_every_facts_figure_the_text_determines(flickr8k_settings, capsys):
    data = load_dataset(settings=flickr8k_settings)
    assert "Dropped 5 caption(s) of 2 id(s) with no image file" in capsys.readouterr().out
    every_image = len(data.captions) + 5 * FACTS["images_in_no_split"]  # the loader keeps the split images only
    assert every_image == FACTS["captions"] and len(data.images()) + FACTS["images_in_no_split"] == FACTS["images"]
    assert {split: len(data.images(split)) for split in ("train", "dev", "test")} == {
        "train": FACTS["train_images"],
        "dev": 1000,
        "test": 1000,
    }
    wrapped = data.captions.assign(tokens=[wrap(clean_caption(c)) for c in data.captions["caption"]])
    train = wrapped.loc[wrapped["split"] == "train", "tokens"]
    assert len(train) == FACTS["train_captions"]
    vocab = Vocabulary.build(train, min_count=10)
    assert (len(vocab), len(vocab) - 1, vocab.max_len) == (FACTS["vocab_ids"], FACTS["vocab_words"], FACTS["max_len"])
    assert sum(len(vocab.encode(c)) - 1 for c in train) == FACTS["train_pairs"]
    leaky = Vocabulary.build(wrapped["tokens"], min_count=10)
    assert (len(leaky), leaky.max_len) == (FACTS["leaky_vocab_ids"], FACTS["leaky_max_len"])
    losing = sum(len(vocab.encode(c)) < len(c.split()) for c in train) / len(train)
    assert round(losing, 2) == FACTS["train_captions_losing_a_word"]
    raw = data.captions.loc[data.captions["split"] == "train", "caption"]
    counts = collections.Counter(w for c in raw for w in re.findall(r"[a-z]+", c.lower()))
    common = sum(n for n in counts.values() if n >= 10) / sum(counts.values())
    assert round(common, 3) == FACTS["occurrences_of_common_words"]


def test_the_vocabulary_of_all_8091_images(data_dir):
    listed = read_token_file(data_dir / "data" / "flickr8k" / TOKEN_FILE)
    listed = listed[~listed["image"].isin(KEYS_WITHOUT_IMAGE)]
    assert (len(listed), listed["image"].nunique()) == (FACTS["captions"], FACTS["images"])
    every = Vocabulary.build([wrap(clean_caption(c)) for c in listed["caption"]], min_count=10)
    assert (len(every), every.max_len) == (FACTS["all_images_vocab_ids"], FACTS["leaky_max_len"])


@pytest.mark.slow
@pytest.mark.parametrize("fast", ["0", "1"], ids=["full", "fast"])
@pytest.mark.parametrize("lesson", ["01", "02"])
def test_lesson_runs_on_the_real_text(lesson, fast, data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTION_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CAPTION_DATASET", "flickr8k")
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", "none")
    monkeypatch.setenv("CAPTION_FAST", fast)
    monkeypatch.setenv("CAPTION_FLICKR8K_URL", "http://127.0.0.1:9/no-download-expected")
    notebook = next(path for path in LESSONS if path.name.startswith(lesson))
    nb = with_solutions(notebook)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    ran = [
        cell
        for cell in nb.cells
        if cell.cell_type == "code" and 'settings.dataset == "flickr8k"' in cell.source and cell.execution_count
    ]
    assert ran, "the lesson has checks of the Flickr8k figures, and they ran"
