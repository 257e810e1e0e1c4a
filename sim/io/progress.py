"""Progress on long runs: tqdm bars and status lines, the only terminal output outside the
command line, and both opt-in (``progress=True``, or a callable that receives each status
line).

A library call is silent by default; ``sim`` commands switch progress on. Bars and lines go
to standard error, so that a command's standard output is only its results.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Progress", "progress_bar", "report_status"]

#: What a ``progress`` argument may be: off, on (tqdm on standard error), or a callable
#: ``(line) -> None`` that receives each status line (bars are then off).
Progress = bool | Callable[[str], Any]


def progress_bar(iterable: Iterable | None = None, *, progress: Progress = False, **options):
    """``iterable`` wrapped in a tqdm bar on standard error when ``progress is True`` (the
    bar disappears when done, ``leave=False``), else ``iterable`` itself; with
    ``iterable=None`` a bar object to ``update`` by hand, or None.
    """
    if progress is not True:
        return iterable
    from tqdm.auto import tqdm

    options.setdefault("leave", False)
    options.setdefault("file", sys.stderr)
    return tqdm(iterable, **options) if iterable is not None else tqdm(**options)


def report_status(line: str, progress: Progress = False) -> None:
    """Say ``line`` (e.g. "searching on 20,000 customers ...") when progress is on: through
    tqdm (so it does not break a bar) when ``progress is True``, to the callable otherwise.
    """
    if progress is True:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)
    elif callable(progress):
        progress(line)
