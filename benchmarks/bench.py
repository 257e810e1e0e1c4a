"""Benchmark the engines from a checkout: ``python benchmarks/bench.py [--quick] [--json FILE]``.

A thin script around ``sim bench`` (:mod:`sim.checks.bench`, :mod:`sim.cli.bench`; the logic lives in
the package so that ``sim bench`` works wherever ``sim`` is installed); see that module for what is
measured and
``benchmarks/NOTES.md`` for the profile and what was tried.
"""

import sys

from sim.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
