"""The ``sim`` command line: ``sim COMMAND ...``, one module of :mod:`sim.cli` per command.

Bad input (configuration, data, arguments) is printed as one message, exit status 2, never a
traceback; Ctrl-C exits with status 130 and one line.
"""

from __future__ import annotations

import argparse
import sys

from sim.cli import bench, calibrate, fit, optimize, run, validate
from sim.cli import figures as figures_command
from sim.cli._common import EXIT_INTERRUPTED

__all__ = [
    "main",
    "build_parser",
    "COMMANDS",
]

#: The command modules, in the order ``sim --help`` lists them; each has ``register(subparsers)``,
#: which adds its parser and sets ``handler=<function(args) -> int>``.
COMMANDS = (run, calibrate, fit, validate, optimize, figures_command, bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``sim`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sim",
        description="Customer-lifecycle simulator: cohort CLV under relationship-investment policies.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sim`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        # Completed chunks and every finished file are already on disk (written atomically);
        # a folder without manifest.json is an unfinished run that ``--resume`` continues.
        print(
            "\ninterrupted: nothing written so far is lost; a run continues with the same command "
            "plus --resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
