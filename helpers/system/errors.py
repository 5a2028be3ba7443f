"""One kind of error for everything a learner can fix, shown in notebooks as one line (DESIGN section 9)."""

from __future__ import annotations


class CourseError(Exception):
    """A problem with data, files, settings or the network, explained in one line with what to do."""


def _show_course_error(shell, etype, value, tb, tb_offset=None):
    # IPython calls this for a CourseError: the short text, and the cell still counts as failed
    message = f"{etype.__name__}: {value}"
    shell._showtraceback(etype, value, [message])
    return [message]


def install_notebook_handler() -> None:
    """Show CourseError in a notebook as its one-line message (every setup cell)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((CourseError,), _show_course_error)
