"""`make lab` serves the lessons: JupyterLab lists them, runs them in its kernels, and renders them.

One headless JupyterLab for the whole module, started the way the Makefile starts it
(`jupyter lab notebooks/`, as root with --allow-root) plus what a test needs: a free
loopback port picked by the OS, a token, and its own runtime, config and data folders.
The tests talk to it the way the browser does: the REST API (`/api/contents`,
`/api/kernels`) and a kernel's websocket channel. Where Debian's `chromium` is installed,
one test also opens lesson 01 in JupyterLab and checks the page it renders.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import setup_and_config_cells
from scripts.with_solutions import LESSONS

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed here (the `lab` extra: `make setup` installs it)")

from tornado.httpclient import HTTPRequest  # noqa: E402 (comes with jupyter_server)
from tornado.websocket import websocket_connect  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIRST_LESSON = NOTEBOOKS / "01_data_exploration.ipynb"
CHROMIUM = shutil.which("chromium")  # Debian's package; CI usually has none
START_TIMEOUT_S = 60
CELL_TIMEOUT_S = 120
CI_SETTINGS = {"CAPTION_DATASET": "shapes", "CAPTION_CNN_WEIGHTS": "none", "CAPTION_FAST": "1"}


@dataclass
class Lab:
    """A running JupyterLab: its address, token, process and log file."""

    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        """Call the server's REST API with the token; the decoded JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"token {self.token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _lab_command() -> list[str]:
    """`make lab`'s command (`jupyter lab notebooks/`, --allow-root as root), headless on an OS-chosen loopback port."""
    command = [sys.executable, "-m", "jupyterlab", str(NOTEBOOKS), "--no-browser", "--ServerApp.ip=127.0.0.1"]
    command += ["--ServerApp.port=0", "--ServerApp.port_retries=0"]  # port 0: the OS picks a free one
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")  # as `make lab` does
    return command


def _server_info(runtime: Path, pid: int) -> dict | None:
    """The jpserver-<pid>.json the server writes once it listens (holds the real port)."""
    info = runtime / f"jpserver-{pid}.json"
    try:
        return json.loads(info.read_text())
    except (OSError, ValueError):  # not written yet, or half written
        return None


def _wait_until_it_answers(lab_process: subprocess.Popen, runtime: Path, token: str, log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if lab_process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {lab_process.returncode}:\n{log.read_text(errors='replace')}")
        info = _server_info(runtime, lab_process.pid)
        if info:
            url = f"http://127.0.0.1:{info['port']}"
            try:
                request = urllib.request.Request(url + "/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5):
                    return url
            except OSError:
                pass
        time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer within {START_TIMEOUT_S} s:\n{log.read_text(errors='replace')}")


def _stop(lab: Lab) -> None:
    """Shut the server down through its API (it stops its kernels), else terminate, then kill."""
    if lab.process.poll() is None:
        try:
            if not lab.url:
                raise OSError("the server never answered")
            for kernel in lab.api("GET", "/api/kernels"):
                lab.api("DELETE", f"/api/kernels/{kernel['id']}")
            lab.api("POST", "/api/shutdown")
            lab.process.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            lab.process.terminate()
            try:
                lab.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                lab.process.kill()
                lab.process.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on the lessons, with the CI settings for its kernels; always stopped afterwards."""
    home = tmp_path_factory.mktemp("lab")
    runtime, config, data, ipython, course = (
        home / name for name in ("runtime", "config", "data", "ipython", "course")
    )
    for folder in (runtime, config, data, ipython, course):
        folder.mkdir()
    token = secrets.token_hex(16)
    env = (
        os.environ
        | CI_SETTINGS
        | {
            "CAPTION_DATA_DIR": str(course),
            "JUPYTER_RUNTIME_DIR": str(runtime),
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(data),
            "IPYTHONDIR": str(ipython),
            "JUPYTER_TOKEN": token,
        }
    )
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _lab_command(), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    lab = Lab(url="", token=token, process=process, log=log)
    try:
        lab.url = _wait_until_it_answers(process, runtime, token, log)
        yield lab
    finally:
        _stop(lab)


def test_lab_lists_every_lesson(lab: Lab):
    listing = lab.api("GET", "/api/contents")
    served = {item["name"]: item["type"] for item in listing["content"]}
    assert LESSONS, "no lessons found"
    for lesson in LESSONS:
        assert served.get(lesson.name) == "notebook", f"{lesson.name} is not served: {sorted(served)}"
    first = lab.api("GET", f"/api/contents/{FIRST_LESSON.name}")
    assert first["content"]["cells"][0]["source"].startswith("# Lesson 01"), "the lesson's own content comes back"


@dataclass
class CellRun:
    """What one cell did in the kernel: the reply's status and the outputs, as iopub messages."""

    status: str
    outputs: list[dict]

    def text(self, name: str) -> str:
        return "".join(
            o["content"]["text"] for o in self.outputs if o["msg_type"] == "stream" and o["content"]["name"] == name
        )


def _execute_request(code: str, session: str) -> dict:
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "session": session,
        "username": "test",
        "version": "5.3",
        "date": "",
    }
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    return {
        "header": header,
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": "shell",
        "buffers": [],
    }


async def run_cells(lab: Lab, kernel_id: str, sources: list[str]) -> list[CellRun]:
    """Run code cells one after the other over the kernel's websocket, as JupyterLab does."""
    ws_url = lab.url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    connection = await websocket_connect(
        HTTPRequest(ws_url, headers={"Authorization": f"token {lab.token}"}, connect_timeout=30)
    )
    session = uuid.uuid4().hex
    runs = []
    try:
        for code in sources:
            request = _execute_request(code, session)
            connection.write_message(json.dumps(request))
            reply, idle, outputs = None, False, []
            while reply is None or not idle:
                raw = await asyncio.wait_for(connection.read_message(), CELL_TIMEOUT_S)
                assert raw is not None, "the kernel's websocket closed"
                message = json.loads(raw)
                if message["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                    continue
                kind = message["header"]["msg_type"]
                if kind == "execute_reply":
                    reply = message["content"]
                elif kind == "status":
                    idle = message["content"]["execution_state"] == "idle"
                elif kind in ("stream", "execute_result", "display_data", "error"):
                    outputs.append({"msg_type": kind, "content": message["content"]})
            runs.append(CellRun(reply["status"], outputs))
    finally:
        connection.close()
    return runs


@pytest.mark.slow
def test_lesson_runs_in_a_lab_kernel(lab: Lab):
    kernel = lab.api("POST", "/api/kernels", {"name": "python3"})
    try:
        setup, config = asyncio.run(
            run_cells(lab, kernel["id"], [cell.source for cell in setup_and_config_cells(FIRST_LESSON)])
        )
    finally:
        lab.api("DELETE", f"/api/kernels/{kernel['id']}")
    for run in (setup, config):
        errors = [o["content"] for o in run.outputs if o["msg_type"] == "error"]
        assert run.status == "ok" and not errors, errors
        assert not run.text("stderr"), f"stderr in the lesson's first cells:\n{run.text('stderr')}"
    assert setup.text("stdout").startswith("Python ") and "| TensorFlow " in setup.text("stdout"), setup.outputs
    shown = "".join(o["content"]["data"]["text/plain"] for o in config.outputs if o["msg_type"] == "execute_result")
    assert "CAPTION_DATASET" in shown and "shapes" in shown, shown


def test_the_course_switches_jupyterlab_news_off_and_keeps_other_overrides(tmp_path: Path):
    """``make setup`` writes the course's defaults into the environment; a teacher's own overrides stay."""
    from scripts.lab_settings import COURSE_DEFAULTS, install, overrides_file

    installed = json.loads(overrides_file().read_text(encoding="utf-8"))  # written by make setup
    for plugin, values in COURSE_DEFAULTS.items():
        assert installed[plugin].items() >= values.items(), installed
    theirs = tmp_path / "overrides.json"
    plugin = "@jupyterlab/apputils-extension:notification"
    theirs.write_text(
        json.dumps(
            {plugin: {"doNotDisturbMode": True}, "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
        )
    )
    merged = install(theirs)
    assert (
        merged == json.loads(theirs.read_text())
        and merged["@jupyterlab/apputils-extension:themes"]["theme"] == "JupyterLab Dark"
    )
    assert merged[plugin] == {"doNotDisturbMode": True, "fetchNews": "false", "checkForUpdates": False}


def _chromium(lab: Lab, profile: Path, *options: str) -> subprocess.CompletedProcess:
    """Headless Chromium on lesson 01 in JupyterLab, with a fresh profile and no calls home."""
    url = f"{lab.url}/lab/tree/{FIRST_LESSON.name}?token={lab.token}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    flags += [f"--user-data-dir={profile}", "--window-size=1280,900", "--virtual-time-budget=30000"]
    return subprocess.run([CHROMIUM, *flags, *options, url], capture_output=True, text=True, timeout=90)


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="no headless browser: `apt-get install chromium` (Debian) to check the rendered page"
)
def test_lesson_renders_in_a_browser(lab: Lab, tmp_path: Path):
    page = _chromium(lab, tmp_path / "profile-dom", "--dump-dom")
    assert page.returncode == 0, page.stderr[-3000:]
    assert re.search(r'class="[^"]*\bjp-Notebook\b', page.stdout), (
        f"no notebook on the page:\n{page.stdout[-3000:]}\n{lab.server_log()}"
    )
    assert re.search(r"<h1[^>]*>(<[^>]*>)*Lesson 01 · Data exploration", page.stdout), (
        "the title, rendered from the lesson's Markdown"
    )
    assert not re.search(r'class="[^"]*\bjp-Dialog(?![\w-])', page.stdout), "a dialog opened (a kernel or file problem)"
    assert "official Jupyter news" not in page.stdout, "JupyterLab asks about its news over the lesson: make setup"
    assert not re.search(r'class="[^"]*lm-TabBar-tab[^"]*jp-mod-dirty', page.stdout), "opening the lesson modified it"
    screenshot = tmp_path / "lesson01.png"  # kept with pytest's temporary folders, to look at
    shot = _chromium(lab, tmp_path / "profile-shot", f"--screenshot={screenshot}")
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-3000:]
