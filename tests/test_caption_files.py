"""Caption files as learners have them: every variant of captions.txt loads, bad lines are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.data.caption_files import caption_row, read_captions_csv, read_token_file

KAGGLE = "image,caption\n1000_a.jpg,A child in a pink dress , climbing .\n1000_a.jpg,A girl goes in .\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1000_a.jpg,A dog , wet , runs .", ("1000_a.jpg", "A dog , wet , runs .")),  # Kaggle: commas unquoted
        ('1000_a.jpg,"A dog, wet, runs."', ("1000_a.jpg", "A dog, wet, runs.")),  # CSV quoting
        ('1000_a.jpg,"He says ""hi"" ."', ("1000_a.jpg", 'He says "hi" .')),
        ('"1000_a.jpg","A dog ."', ("1000_a.jpg", "A dog .")),
        ("1000_a.jpg#3\tA dog , wet .", ("1000_a.jpg", "A dog , wet .")),  # a token-file line
        ("1000092795.jpg| 0| Two young guys , outside .", ("1000092795.jpg", "Two young guys , outside .")),
        ("1000_a.jpg,", None),
        ("1000_a.jpg", None),
        (",A dog .", None),
        ("2199200615.jpg| 4 A dog runs across the grass .", None),  # Flickr30k's merged fields
    ],
)
def test_one_line(line, expected):
    assert caption_row(line) == expected


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "captions.txt"
    path.write_bytes(text.encode(encoding))
    return path


def test_kaggle_file_with_header(tmp_path):
    table = read_captions_csv(write(tmp_path, KAGGLE))
    assert table.values.tolist() == [
        ["1000_a.jpg", "A child in a pink dress , climbing ."],
        ["1000_a.jpg", "A girl goes in ."],
    ]


def test_without_header_the_first_caption_is_kept(tmp_path):
    table = read_captions_csv(write(tmp_path, KAGGLE.split("\n", 1)[1]))
    assert len(table) == 2 and table["image"].tolist() == ["1000_a.jpg"] * 2


def test_windows_line_ends_byte_order_mark_and_blank_lines(tmp_path):
    text = "\ufeff\r\n" + KAGGLE.replace("\n", "\r\n") + "\r\n\r\n"
    assert read_captions_csv(write(tmp_path, text)).equals(read_captions_csv(write(tmp_path, KAGGLE)))


def test_latin1_file_is_read_with_a_note(tmp_path, capsys):
    table = read_captions_csv(write(tmp_path, KAGGLE + "1001_b.jpg,A café .\n", encoding="latin-1"))
    assert table["caption"].iloc[-1] == "A café ." and "not UTF-8" in capsys.readouterr().out


def test_malformed_lines_are_skipped_and_named(tmp_path, capsys):
    table = read_captions_csv(write(tmp_path, KAGGLE + "just some words\n1002_c.jpg,\n1002_c.jpg,A cat .\n"))
    assert table["image"].tolist() == ["1000_a.jpg", "1000_a.jpg", "1002_c.jpg"]
    out = capsys.readouterr().out
    assert "skipped 2 malformed line(s) in captions.txt" in out and "[4, 5]" in out


def test_a_token_file_saved_as_captions_txt(tmp_path):
    tokens = "1000_a.jpg#0\tA dog , wet .\n1000_a.jpg#1\tA dog runs .\n"
    assert read_captions_csv(write(tmp_path, tokens)).equals(read_token_file(write(tmp_path, tokens)))


def test_token_file_flaws(tmp_path, capsys):
    path = tmp_path / "Flickr8k.token.txt"
    text = "a.jpg#0\tA café .\n\n   \nno tab here\nb.jpg#1\t\nc.jpg#2\tA dog .\n"
    path.write_bytes(text.encode("latin-1"))
    table = read_token_file(path)
    assert table.values.tolist() == [["a.jpg", "A café ."], ["c.jpg", "A dog ."]]
    out = capsys.readouterr().out
    assert "Latin-1" in out and "skipped 2 malformed" in out
