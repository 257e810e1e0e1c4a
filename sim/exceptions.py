"""Every exception the package raises on purpose, in one place.

Each one says what went wrong in terms of the user's input (a config field, a data
column, row or value, an output folder); the command line prints ``str(error)`` as one
message and exits with status 2, never a traceback. This module imports nothing from
the package, so every subpackage may import it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "NonFiniteResultError",
    "ResultExistsError",
    "UnsafeOutputError",
    "ExecutorError",
]


class ConfigError(ValueError):
    """A configuration that cannot be run.

    ``problems`` lists one ``(path, message)`` pair per problem; ``str(error)`` gives one
    line per problem, each naming the field's TOML path, the value and what is allowed.
    """

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the configuration{where}:"
        lines = [head] + [
            f"  {path}: {message}" if path else f"  {message}" for path, message in self.problems
        ]
        super().__init__("\n".join(lines))


class DataError(ValueError):
    """A data file or table that cannot be used (a transaction log, survivor counts, a
    snapshot): the message names the file, column, row or value and what is allowed.
    """


class NonFiniteResultError(FloatingPointError):
    """A result would hold NaN or infinity where the model guarantees a finite number.

    A numerical failure is an error naming its origin — the policy and customer, or the
    table, column and row — never a silent NaN in a saved table.
    """


class ResultExistsError(FileExistsError):
    """A complete result folder is already there and ``force`` was not given."""


class UnsafeOutputError(ResultExistsError):
    """An output folder that the output rules refuse (root, home, someone else's folder,
    or a default path that leads outside ``results/``).
    """


class ExecutorError(RuntimeError):
    """An executor could not be started or lost its work (e.g. no Dask installed, the
    scheduler unreachable, a task failed on every retry).
    """
