"""Shared fixtures: a scratch course folder and a loopback HTTP server for download tests."""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from helpers.config import get_settings, variant
from helpers.datasets import Dataset


@pytest.fixture
def course_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CAPTION_DATA_DIR with the CI settings (shapes, random weights, not fast)."""
    monkeypatch.setenv("CAPTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAPTION_DATASET", "shapes")
    monkeypatch.setenv("CAPTION_CNN_WEIGHTS", "none")
    monkeypatch.setenv("CAPTION_FAST", "0")
    monkeypatch.delenv("CAPTION_FLICKR8K_URL", raising=False)
    return tmp_path


def configured_dataset(name: str, images_dir: Path, rows: list[tuple[str, str, str]]) -> Dataset:
    """A Dataset of ``(image, caption, split)`` rows whose artifacts go where the configured settings say."""
    settings = get_settings()
    table = pd.DataFrame(rows, columns=["image", "caption", "split"])
    return Dataset(name, images_dir, table, artifacts_root=settings.base_dir / "artifacts" / name,
                   variant=variant(settings.fast, settings.cnn_weights))


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
