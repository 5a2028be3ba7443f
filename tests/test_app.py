"""helpers.share's web page (lesson 12): the captioning page answers over HTTP, in a real browser, and explains bad files."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from conftest import jpeg_bytes, untrained_bundle
from helpers.config import get_settings
from helpers.model import load_bundle

gradio = pytest.importorskip("gradio", reason="the web page needs gradio (pip install gradio)")
from gradio_client import Client, handle_file  # noqa: E402

from helpers.share import answer, page  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The page of a tiny bundle, served on 127.0.0.1 for the module's tests."""
    folder = tmp_path_factory.mktemp("app")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CAPTION_DATA_DIR", str(folder))
        env.setenv("CAPTION_CNN_WEIGHTS", "none")
        env.setenv("CAPTION_PRECISION", "float32")
        env.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        settings = get_settings()
        bundle = load_bundle(untrained_bundle(folder / "model", never_ends=True))
        demo = page(bundle, settings)
        demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
        yield demo, bundle, settings, folder
        demo.close()


def photo(folder: Path, name: str, colour=(200, 30, 30)) -> Path:
    path = folder / name
    path.write_bytes(jpeg_bytes(colour, (96, 64)))
    return path


def test_the_page_answers_over_http(served):
    demo, bundle, _, folder = served
    client = Client(demo.local_url, verbose=False)
    caption, beams, _, _ = client.predict(handle_file(str(photo(folder, "red.jpg"))), None, "", 3, api_name="/caption")
    assert caption.split() and set(caption.split()) <= {"a", "red", "circle"}
    assert beams["data"][0][0] == caption and len(beams["data"]) >= 1


def test_bad_files_get_a_sentence(served):
    _, bundle, settings, folder = served
    (folder / "page.jpg").write_text("<!DOCTYPE html><html><body>a photo page</body></html>")
    (folder / "notes.jpg").write_text("not a photo")
    heic = folder / "IMG_0001.HEIC"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(300))
    assert "web page" in answer(bundle, settings, str(folder / "page.jpg"), 2)[0]
    assert answer(bundle, settings, str(folder / "notes.jpg"), 2)[0] == "Could not read it: not an image file."
    assert "HEIC" in answer(bundle, settings, str(heic), 2)[0]
    assert answer(bundle, settings, None, 2)[0].startswith("Choose a photo")


def test_two_requests_at_once_get_their_own_captions(served):
    demo, _, _, folder = served
    red, blank = photo(folder, "red2.jpg"), folder / "empty.jpg"
    blank.write_bytes(b"")
    results = {}

    def ask(name, path):
        results[name] = Client(demo.local_url, verbose=False).predict(
            handle_file(str(path)), None, "", 2, api_name="/caption"
        )[0]

    threads = [threading.Thread(target=ask, args=item) for item in (("red", red), ("empty", blank))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results["empty"] == "Could not read it: empty file." and set(results["red"].split()) <= {
        "a",
        "red",
        "circle",
    }


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `apt-get install chromium` (Debian) for the browser test")
def test_a_real_browser_uploads_a_photo_and_reads_its_caption(served):
    from playwright.sync_api import sync_playwright

    demo, _, _, folder = served
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            view = browser.new_page()
            view.goto(demo.local_url)
            view.locator("#upload input[type=file]").set_input_files(str(photo(folder, "browser.jpg")))
            view.locator("#caption-button").click()
            caption = view.locator("#caption textarea")
            view.wait_for_function("() => document.querySelector('#caption textarea').value.length > 0", timeout=60_000)
            assert set(caption.input_value().split()) <= {"a", "red", "circle"} and caption.input_value()
            view.screenshot(path=str(folder / "page.png"), full_page=True)
        finally:
            browser.close()


def test_the_command_line_serves_the_page(served, tmp_path):
    import subprocess
    import sys
    import time
    import urllib.request

    from helpers.tools.distribute import free_ports

    _, _, _, folder = served
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "helpers", "app", "--model", str(folder / "model"), "--port", str(port)]
    env = {**__import__("os").environ, "CAPTION_CNN_WEIGHTS": "none", "CAPTION_PRECISION": "float32"}
    server = subprocess.Popen(
        command, env=env, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()[-2000:]
                time.sleep(0.5)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert client.predict(handle_file(str(photo(tmp_path, "cli.jpg"))), None, "", 1, api_name="/caption")[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
