"""``sim bench``: measure the engines' speed, compile time and memory; print the table and
write the JSON report under ``results/benchmarks/``. ``sim bench --fit`` measures the
customer-base models on transaction logs instead (:mod:`sim.checks.bench_fit`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.checks.bench import format_table, run_benchmarks, write_report
from sim.cli._common import EXIT_BAD_INPUT

__all__ = [
    "register",
    "main",
]


def _handle(args) -> int:
    if args.repeats is not None and args.repeats < 1:
        print(f"sim: --repeats {args.repeats}: must be >= 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json is not None and args.json.exists() and args.json.is_dir():
        print(f"sim: --json {args.json} is a folder; give a file name", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.lifecycle and not args.fit:
        print("sim: --lifecycle is a part of --fit: give both (sim bench --fit --lifecycle)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.fit:
        return _handle_fit(args)
    report = run_benchmarks(
        args.quick,
        include_compile=not args.no_compile,
        include_memory=not args.no_memory,
        include_abm=not args.no_abm,
        repeats=args.repeats,
    )
    written = write_report(report, args.json)
    print(format_table(report))
    print("\nwrote " + ", ".join(str(path) for path in written))
    return 0


def _handle_fit(args) -> int:
    from sim.checks.bench_fit import format_fit_table, run_fit_benchmark, write_fit_report

    sizes = "quick" if args.quick else "full"
    print(f"sim bench --fit: the customer-base models on transaction logs ({sizes} sizes)")
    report = run_fit_benchmark(args.quick, repeats=args.repeats, log=print, lifecycle=args.lifecycle)
    written = write_fit_report(report, args.json)
    print()
    print(format_fit_table(report))
    print("\nwrote " + ", ".join(str(path) for path in written))
    return 0


def register(subparsers) -> None:
    """Add ``sim bench`` to the ``sim`` command line."""
    parser = subparsers.add_parser(
        "bench", help="measure the engines' speed, compile time and memory (results/benchmarks/)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and 3 repetitions (about a minute)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the report to FILE"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repetitions of the speed measurements")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile-time measurement")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--no-abm", action="store_true", help="skip the SimPy agent engine")
    parser.add_argument(
        "--fit",
        action="store_true",
        help="instead: read, summarise, fit and predict BG/NBD, Pareto/NBD and Gamma-Gamma on a CDNOW-sized "
        "and a 10^6-customer log (results/benchmarks/fit-*.json)",
    )
    parser.add_argument(
        "--lifecycle",
        action="store_true",
        help="with --fit: also time the lifecycle HMM (one EM iteration and the whole fit) on a CDNOW-sized "
        "and a 10^6-customer simulated cohort (about half an hour in full sizes)",
    )
    parser.set_defaults(handler=_handle)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/bench.py [--quick] [--json FILE]``: the same as ``sim bench``."""
    parser = argparse.ArgumentParser(prog="sim bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(["bench", *(argv if argv is not None else sys.argv[1:])])
    return int(args.handler(args) or 0)
