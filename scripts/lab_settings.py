"""The course's JupyterLab defaults, written into the environment by ``make setup``.

JupyterLab reads ``<environment>/share/jupyter/lab/settings/overrides.json`` as the default
settings of every user of that environment (JupyterLab's "Overriding default settings").
The course switches off one thing: the question "Would you like to get notified about
official Jupyter news?", which JupyterLab 4 otherwise shows over the first lesson, and with
it the news and update checks (they call a website). A learner can still turn them on in
Settings; keys already in the file are kept.

    python scripts/lab_settings.py            # write or update the file; prints its path
"""

from __future__ import annotations

import json
from pathlib import Path

#: Plugin id -> settings: no news question, no news fetched, no update check.
COURSE_DEFAULTS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def overrides_file() -> Path:
    """Where this environment's JupyterLab looks for the overrides (its application folder's ``settings``)."""
    from jupyterlab.commands import get_app_dir

    return Path(get_app_dir()) / "settings" / "overrides.json"


def install(path: Path) -> dict:
    """Merge :data:`COURSE_DEFAULTS` into the JSON file at ``path`` (made if missing); return what it now holds."""
    settings = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for plugin, values in COURSE_DEFAULTS.items():
        settings[plugin] = {**settings.get(plugin, {}), **values}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return settings


if __name__ == "__main__":
    target = overrides_file()
    install(target)
    print(f"JupyterLab defaults: {target}")
