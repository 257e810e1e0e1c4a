"""What every command shares: exit statuses, argument types, the command line as recorded in
manifests, and the figure backend of a command (files, never a window).
"""

from __future__ import annotations

import argparse
import shlex
import sys

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "positive_int",
    "non_negative_int",
    "command_line",
    "use_file_backend",
]

#: Exit status for bad input (configuration, data or arguments).
EXIT_BAD_INPUT = 2

#: Exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130


def positive_int(text: str) -> int:
    """Argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def non_negative_int(text: str) -> int:
    """Argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def command_line() -> str:
    """The command as typed (``sim`` and its quoted arguments), recorded in manifests."""
    return "sim " + " ".join(shlex.quote(part) for part in sys.argv[1:])


def use_file_backend() -> None:
    """Draw figures to files only (matplotlib's Agg backend), whatever ``MPLBACKEND`` says:
    a command never opens a window.
    """
    import matplotlib

    matplotlib.use("Agg")
