"""The ``sim`` command line: one module per command, the only place with argparse and
printing to the terminal.

May import: every subpackage.
"""

from sim.cli._common import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from sim.cli.main import main

__all__ = ["main", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED"]
