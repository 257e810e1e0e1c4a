"""``sim validate``: the simulator against closed forms, as a table and an exit status."""

from __future__ import annotations

import sys

import pandas as pd

from sim.checks.validate import DEFAULT_SEED, FULL_CUSTOMERS, QUICK_CUSTOMERS, Z_LIMIT, run_checks
from sim.cli._common import EXIT_BAD_INPUT, non_negative_int

__all__ = [
    "register",
]


def _csv_problem(path, force: bool) -> str | None:
    """Why ``--csv path`` cannot be written (checked before any work), or None."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        return f"--csv {path} is a directory; give a file name such as {path / 'validate.csv'}"
    if path.exists() and not force:
        return f"--csv {path} already exists; choose another file or pass --force to overwrite it"
    if not path.parent.is_dir():
        return f"--csv {path}: the folder {path.parent} does not exist"
    return None


def _validate_command(args) -> int:

    from sim.exceptions import ConfigError

    problem = _csv_problem(args.csv, args.force) if args.csv is not None else None
    if problem:
        print(f"sim: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = __import__("time").perf_counter()
    try:
        table = run_checks(quick=args.quick, seed=args.seed, threads=args.threads)
    except (ConfigError, ValueError) as error:  # e.g. a seed or thread count out of range
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    elapsed = __import__("time").perf_counter() - started
    columns = ["group", "check", "exact", "simulated", "se", "z", "passed"]
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.max_rows", 500, "display.max_colwidth", 80
    ):
        print(table[columns].to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    print()
    print("closed forms:")
    for group, closed_form in table[["group", "closed_form"]].drop_duplicates().itertuples(index=False):
        print(f"  {group}: {closed_form}")
    failed = table[~table["passed"]]
    n = int(table["customers"].iloc[0])
    print(
        f"\n{len(table) - len(failed)} of {len(table)} checks within {Z_LIMIT:g} SE ({n:,} customers per "
        "scenario, "
        f"seed {args.seed}, {elapsed:.1f} s)"
    )
    if args.csv is not None:
        from sim.io.results import atomic_write_text

        atomic_write_text(args.csv, table.to_csv(index=False))
        print(f"wrote {args.csv}")
    if len(failed):
        print(
            f"sim validate: {len(failed)} check(s) off by more than {Z_LIMIT:g} SE: "
            + "; ".join(failed["check"]),
            file=sys.stderr,
        )
        return 1
    return 0


def register(subparsers) -> None:
    """Add ``sim validate [--quick] [--seed S] [--threads K] [--csv FILE]`` to the ``sim`` parser."""
    from pathlib import Path

    parser = subparsers.add_parser(
        "validate",
        help="hold the simulator against closed-form CLV and retention models (exit 1 if |z| > 4)",
        description="Closed form vs Monte Carlo through the jitted core: Markov-reducible lifecycle chains, "
        "constant-retention cohorts and Beta-heterogeneous (sBG) cohorts.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_CUSTOMERS:,} customers per scenario instead of {FULL_CUSTOMERS:,}",
    )
    parser.add_argument("--seed", type=non_negative_int, default=DEFAULT_SEED, help="seed of every scenario")
    parser.add_argument(
        "--threads", type=non_negative_int, default=None, help="numba threads (never changes results)"
    )
    parser.add_argument("--csv", type=Path, default=None, help="also write the table to this CSV file")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --csv file")
    parser.set_defaults(handler=_validate_command)
