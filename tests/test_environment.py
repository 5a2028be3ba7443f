"""One source of truth for dependencies, and the README's commands are the ones CI runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from helpers.system import colab

ROOT = Path(__file__).resolve().parents[1]


def pyproject_pins() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return set(project["dependencies"]) | {pin for name in ("gpu", "lab", "test", "share") for pin in extras[name]}


def requirements_pins() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def environment_pins() -> set[str]:
    text = (ROOT / "environment.yml").read_text()
    pip_block = text.split("- pip:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^\s+- (\S.*)$", pip_block, re.M)} - {"-e ."}


def test_requirements_match_pyproject():
    assert requirements_pins() == pyproject_pins()


def test_environment_yml_matches_pyproject():
    assert environment_pins() == pyproject_pins()


def test_cpu_and_gpu_tensorflow_pinned_alike():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["cpu"][0].replace("tensorflow-cpu", "tensorflow") == extras["gpu"][0]


def test_every_pin_is_a_minor_version():
    for pin in pyproject_pins():
        assert re.fullmatch(r"[a-z0-9-]+==\d+\.\d+(\.\*)?", pin), pin


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make lab" in readme and "make test" in readme
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
    for target in re.findall(r"`make (\w+)", readme):
        assert re.search(rf"^{target}:", makefile, re.M), f"README mentions make {target}, the Makefile lacks it"


def test_the_supported_floors_are_the_versions_test_compat_installs():
    """helpers.system.colab.SUPPORTED (the setup cell's warning) names what requirements-oldest.txt tests."""
    pins = {}
    for line in (ROOT / "requirements-oldest.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].split("#")[0].strip().split("==")
            pins[name.replace("tensorflow-cpu", "tensorflow")] = version
    for name in ("tensorflow", "keras", "numpy", "pandas"):
        assert pins[name].startswith(colab.SUPPORTED[name] + "."), (name, pins[name], colab.SUPPORTED[name])
