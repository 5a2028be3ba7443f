"""One kind of error for everything a learner can fix (DESIGN section 9).

A :class:`CourseError` carries a one-line explanation and what to do about it. In a
notebook, :func:`install_notebook_handler` shows it as that line instead of a stack
trace; the command line (``python -m helpers``) prints it and exits with status 1.
"""

from __future__ import annotations


class CourseError(Exception):
    """A problem with data, files, settings or the network, explained in one line."""


def _show_course_error(shell, etype, value, tb, tb_offset=None):
    # IPython calls this for CourseError; returning the short text keeps the cell marked
    # as failed (so notebook tests still notice) without a page of traceback.
    message = f"{etype.__name__}: {value}"
    shell._showtraceback(etype, value, [message])
    return [message]


def install_notebook_handler() -> None:
    """Show CourseError in notebooks as its one-line message (called on ``import helpers``)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((CourseError,), _show_course_error)
