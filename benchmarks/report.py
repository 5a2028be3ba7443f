"""The markdown report of ``make bench`` (benchmarks/RESULTS.md): the machine, the goals, one section per stage.

Stage modules describe what they measured as data: summary rows made by :func:`goal`, and a
:class:`Section` (a text, table rows as dicts of column to cell, notes); :func:`table` lays
out any such rows, :func:`markdown` the whole report, :func:`show` one stage run on its own.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

#: The summary's columns: a measure of the classic approach and of the course, their ratio, the goal, met or not.
SUMMARY = ("stage", "measure", "classic", "course", "ratio", "goal", "met?")
#: oneDNN's instruction-set cap: when set, the run plays a lesser CPU (an emulation).
ISA_CAP = "ONEDNN_MAX_CPU_ISA"


@dataclass
class Section:
    """One stage's details: what was measured (``text``), its figures (``rows``), what they say (``notes``).

    Each row is a dict of column name to cell, in column order; every row has the same columns.
    """

    title: str
    text: str
    rows: list[dict[str, object]]
    notes: str = ""


def machine() -> dict[str, str]:
    """CPU model, cores, memory, versions and date of this run (and the oneDNN cap, when one emulates a lesser CPU)."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ram = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        ram = "unknown"

    def installed(*names: str) -> str:
        """The version of the first of ``names`` that is installed."""
        for name in names:
            try:
                return version(name)
            except PackageNotFoundError:
                continue
        return "not installed"

    found = {
        "CPU": f"{cpu}, {os.cpu_count()} logical CPU(s)",
        "memory": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "TensorFlow / Keras": f"{installed('tensorflow', 'tensorflow-cpu')} / {installed('keras')}",
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
    }
    if os.environ.get(ISA_CAP):
        found["oneDNN"] = f"held to `{os.environ[ISA_CAP]}` by {ISA_CAP}: an **emulation** of a lesser CPU"
    return found


def table(header: Sequence[str], rows: Iterable[Mapping[str, object]]) -> list[str]:
    """The markdown lines of a table of ``rows`` (dicts of column to cell) in the columns ``header``.

    The first column is left-aligned, the others right-aligned (figures).
    """
    align = ["---" if i == 0 else "---:" for i in range(len(header))]
    return [
        f"| {' | '.join(header)} |",
        f"| {' | '.join(align)} |",
        *(f"| {' | '.join(str(row[column]) for column in header)} |" for row in rows),
    ]


def goal(
    stage: str, measure: str, classic: str, course: str, ratio: str, target: str = "—", met: bool | None = None
) -> dict[str, str]:
    """A summary row: ``measure`` the classic way and the course's, their ratio, the ``target`` and whether it was met.

    ``met`` None: no goal was set (the row shows a dash).
    """
    verdict = "—" if met is None else ("**met**" if met else "**not met**")
    return dict(zip(SUMMARY, (stage, measure, classic, course, ratio, target, verdict)))


def load_line(before: float, after: float) -> str:
    """The load averages around a stage, with a warning when the machine was busier than its CPUs."""
    cpus = os.cpu_count() or 1
    busy = " **The machine was busy: wall-clock figures are unreliable.**" if before > cpus else ""
    return f"Load average (1 min) {before:.1f} before, {after:.1f} after, on {cpus} CPU(s).{busy}"


def section_lines(section: Section, load: tuple[float, float]) -> list[str]:
    """A stage's section in markdown: title, text, the load averages ``(before, after)``, the table, the notes."""
    lines = ["", f"### {section.title}", "", section.text, "", load_line(*load), ""]
    lines += table(list(section.rows[0]), section.rows)
    return lines + (["", section.notes] if section.notes else [])


def markdown(command: str, small: bool, goals: list[dict[str, str]], sections: list[tuple[Section, tuple]]) -> str:
    """The whole report of a ``command`` run: machine, summary of ``goals``, ``sections`` with their load averages."""
    sizes = "SMALL sizes: a check of the machinery, not figures to quote" if small else "Flickr8k sizes"
    lines = [
        "# Speed and memory: the course vs the classic approach",
        "",
        f"Written by `{command}` ({sizes}). Every side of every comparison ran in its own process, one after "
        "the other, on this machine. Benchmarks are not tests: these are measurements, goals from issue 8, met or not.",
        "",
        "## Machine",
        "",
        *table(["item", "value"], ({"item": k, "value": v} for k, v in machine().items())),
        "",
        "## Summary",
        "",
        *table(SUMMARY, goals),
        "",
        "## Details",
    ]
    for section, load in sections:
        lines += section_lines(section, load)
    return "\n".join(lines) + "\n"


def show(section: Section, goals: list[dict[str, str]], load_before: float) -> None:
    """Print one stage run on its own (``python -m benchmarks.<stage>``): its section, then its goals."""
    print("\n".join(section_lines(section, (load_before, os.getloadavg()[0]))))
    if goals:
        print("", *table(SUMMARY, goals), sep="\n")
