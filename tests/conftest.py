"""Shared fixtures and test helpers: a scratch course folder, a loopback HTTP server for
download tests, small images, a synthetic captioning task, an untrained model bundle."""

from __future__ import annotations

import http.server
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.config import get_settings
from helpers.datasets import Dataset


def setup_and_config_cells(notebook: Path) -> list[nbformat.NotebookNode]:
    """A lesson's setup cell (as scripts/sync_notebooks.py writes it) and its config cell."""
    from scripts.sync_notebooks import is_setup_cell  # here: tests/distributed_job.py imports this file as a script

    cells = nbformat.read(notebook, as_version=4).cells
    return [
        next(cell for cell in cells if is_setup_cell(cell)),
        next(cell for cell in cells if cell.cell_type == "code" and "get_settings()" in cell.source),
    ]


@pytest.fixture
def course_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CAPTION_DATA_DIR with the CI settings (shapes, random weights, not fast)."""
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAPTION_DATASET", "shapes")
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", "none")
    monkeypatch.setenv("CAPTION_FAST", "0")
    monkeypatch.delenv("CAPTION_FLICKR8K_URL", raising=False)
    return tmp_path


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` to the same row of ``b``."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30)) -> bytes:
    """A small one-colour JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


#: The synthetic task: 4 classes of images; ids 0-2 are padding, startseq, endseq, then three words per class.
CLASSES = 4
VOCAB = 3 + 3 * CLASSES
MAX_LEN = 6


def random_captions(images: int | list[str], seed: int = 0, vocab: int = 30, max_len: int = 9):
    """1-3 encoded captions per image of 2 to ``max_len`` tokens: startseq (1), random words 3..vocab-1, endseq (2).

    A list aligned with image positions for a number of images, a dict for a list of names.
    """
    rng = np.random.default_rng(seed)
    names = range(images) if isinstance(images, int) else images
    groups = [
        [[1, *rng.integers(3, vocab, size=rng.integers(0, max_len - 1)).tolist(), 2] for _ in range(rng.integers(1, 4))]
        for _ in names
    ]
    return groups if isinstance(images, int) else dict(zip(names, groups))


def synthetic_task(n_images: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, list[list[int]]]]:
    """Images of 4 classes: 2048-d noise with the class's one-hot pattern in 128 dimensions,
    and captions the class decides (``startseq colour shape [other] endseq``, 2 wordings).

    Per word, an untrained model scores about log(15) = 2.7 nats, the best image-blind
    model 0.59 (it must guess the class), a perfect one 0.2 (which wording is a coin flip).
    """
    rng = np.random.default_rng(seed)
    features, captions = {}, {}
    for i in range(n_images):
        label, name = i % CLASSES, f"img{seed}_{i}.jpg"
        vector = rng.random(2048).astype("float32")
        vector[128 * label : 128 * (label + 1)] += 3.0
        features[name] = vector
        colour, shape, other = 3 + label, 3 + CLASSES + label, 3 + 2 * CLASSES + label
        captions[name] = [[1, colour, shape, 2], [1, colour, shape, other, 2]]
    return features, captions


def untrained_bundle(folder: Path | None = None, never_ends: bool = False) -> Path:
    """Save a tiny untrained model bundle (to the configured artifacts folder by default)."""
    from helpers.model import build_captioner, save_bundle
    from helpers.text import Vocabulary

    settings = get_settings()
    vocab = Vocabulary.build(["startseq a red circle endseq"], min_count=1)
    captioner = build_captioner(len(vocab), vocab.max_len)
    if never_ends:  # every caption then has max_len - 1 words
        next_word = captioner.sequence.get_layer("next_word")
        kernel, bias = next_word.get_weights()
        bias[vocab.end_id] = -1e4
        next_word.set_weights([kernel, bias])
    return save_bundle(
        captioner,
        vocab,
        folder or settings.artifacts_dir,
        dataset=settings.dataset_key,
        fast=settings.fast,
        cnn_weights=settings.cnn_weights,
    )


def configured_dataset(name: str, images_dir: Path, rows: list[tuple[str, str, str]]) -> Dataset:
    """A Dataset of ``(image, caption, split)`` rows whose artifacts go where the configured settings say."""
    table = pd.DataFrame(rows, columns=["image", "caption", "split"])
    return Dataset(name, images_dir, table, settings=get_settings().replace(dataset=name))


@dataclass
class Route:
    """What the server sends for one path: ``ok`` (Range supported), ``truncate``
    (announces the full length, sends half, closes) or ``flaky`` (like ``truncate`` the
    first time, then ``ok``)."""

    body: bytes
    mode: str = "ok"
    requests: list[str | None] = field(default_factory=list)  # the Range header of each request


class FileServer:
    """A threaded HTTP server on 127.0.0.1 with an OS-chosen port, serving :class:`Route` s."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                route.requests.append(header)
                start = int(header.split("=")[1].rstrip("-")) if header else 0
                truncate = route.mode == "truncate" or (route.mode == "flaky" and len(route.requests) == 1)
                if start >= len(route.body) and header:
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if header else 200)
                self.send_header("Content-Length", str(len(route.body) - start))
                self.end_headers()
                payload = route.body[start:]
                self.wfile.write(payload[: len(payload) // 2] if truncate else payload)
                if truncate:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, mode: str = "ok") -> Route:
        self.routes[path] = Route(body, mode)
        return self.routes[path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()


#: The real Flickr8k caption text and split lists, gzipped (see its README).
REAL_FLICKR8K_TEXT = Path(__file__).resolve().parents[2] / "shared" / "flickr8k_text"


def real_flickr8k_layout(root: Path) -> Path:
    """Flickr8k unpacked into ``root`` as the course unpacks it: the real text files, and a
    placeholder JPEG for each of the archive's 8,091 images (every key of the token file but two)."""
    import gzip

    from helpers.data.caption_files import read_token_file
    from helpers.data.flickr8k import IMAGES_FOLDER, TOKEN_FILE
    from helpers.datasets import KEYS_WITHOUT_IMAGE

    (root / IMAGES_FOLDER).mkdir(parents=True)
    for packed in REAL_FLICKR8K_TEXT.glob("*.txt.gz"):
        (root / packed.stem).write_bytes(gzip.decompress(packed.read_bytes()))
    placeholder = jpeg_bytes((90, 120, 150), (64, 48))
    for image in set(read_token_file(root / TOKEN_FILE)["image"]) - set(KEYS_WITHOUT_IMAGE):
        (root / IMAGES_FOLDER / image).write_bytes(placeholder)
    return root
