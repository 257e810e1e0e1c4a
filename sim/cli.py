"""Command line: ``sim run CONFIG [--out DIR] [--seed S] [--replications R] [--customers N] [--threads K]``.

Configuration problems are printed as one line each (field, value, what is allowed) and
exit with status 2, without a traceback.

Subcommands live in their own modules: each module listed in :data:`COMMAND_MODULES` has
``register(subparsers)``, which adds its parser and sets ``handler=<function(args) -> int>``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser", "EXIT_BAD_INPUT", "COMMAND_MODULES"]

#: Exit status for bad input (configuration or arguments).
EXIT_BAD_INPUT = 2

#: Modules that add subcommands (each defines ``register(subparsers)``), besides ``run``.
COMMAND_MODULES: tuple[str, ...] = ("sim.calibration", "sim.validate")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``sim`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sim",
        description="Customer-lifecycle simulator: cohort CLV under relationship-investment policies.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run an experiment config and write results/<name>/")
    run.add_argument("config", type=Path, help="experiment TOML file (e.g. experiments/baseline.toml)")
    run.add_argument("--out", type=Path, default=None, help="result folder (default: results/<experiment name>)")
    run.add_argument("--seed", type=_non_negative_int, default=None, help="override run.seed")
    run.add_argument("--replications", type=_positive_int, default=None, help="override run.replications")
    run.add_argument("--customers", type=_positive_int, default=None, help="override population.customers")
    run.add_argument("--horizon", type=_positive_int, default=None, help="override run.horizon")
    run.add_argument("--threads", type=_non_negative_int, default=None, help="numba threads (0 = all; never changes results)")
    run.add_argument("--force", action="store_true", help="overwrite a complete result folder")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--no-figure", action="store_true", help="skip the figure")
    run.set_defaults(handler=_run)
    import importlib

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def _print_summary(result) -> None:
    import pandas as pd

    columns = ["policy", "clv_mean", "clv_se", "clv_p05", "clv_p50", "clv_p95", "retention_spend", "satisfaction_mean"]
    table = result.summary[columns].copy()
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:,.2f}".format):
        print(table.to_string(index=False))


def _run(args) -> int:
    from .config import ConfigError, load_config
    from .projection import project
    from .results import ResultExistsError, prepare_result_dir

    try:
        config = load_config(args.config)
        overrides = {}
        run_overrides = {k: v for k, v in (("seed", args.seed), ("replications", args.replications),
                                           ("horizon", args.horizon), ("threads", args.threads)) if v is not None}
        if run_overrides:
            overrides["run"] = run_overrides
        if args.customers is not None:
            overrides["population"] = {"customers": args.customers}
        if overrides:
            config = config.with_overrides(**overrides)
    except ConfigError as error:
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = args.out if args.out is not None else Path("results") / config.name
    try:
        prepare_result_dir(out, force=args.force)  # fail before any work, not after
    except ResultExistsError as error:
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{config.name}: {config.population.customers:,} customers x {config.run.replications} replications x "
          f"{config.run.horizon} periods, {len(config.policies)} policies, seed {config.run.seed}")
    started = time.perf_counter()
    result = project(config, progress=not args.no_progress)
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not args.no_figure:
        import matplotlib

        matplotlib.use("Agg")
        from .plotting import result_figure

        figures["overview.png"] = result_figure(result)
    command = "sim " + " ".join(shlex.quote(part) for part in sys.argv[1:])
    result.save(out, command=command, force=True, figures=figures,
                extra_manifest={"engine": "core"})
    _print_summary(result)
    print(f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
          f"in {result.timings['total_seconds']:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sim`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
