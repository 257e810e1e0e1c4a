"""``sim optimize CONFIG``: search the retention spend that maximises CLV, re-evaluate it on
fresh seeds, write the tables, the page of figures and the manifest.
"""

from __future__ import annotations

import sys
import time

import pandas as pd

from sim.cli._common import command_line, non_negative_int, positive_int, use_file_backend
from sim.exceptions import ConfigError
from sim.experiments.optimize import (
    OPTIMUM,
    OptimizationResult,
    optimize_problems,
    optimize_spend,
    optimum_name,
    optimum_policy_toml,
)
from sim.experiments.spend_search import SpendLayout
from sim.plotting.experiments import optimize_figure

__all__ = [
    "register",
]


def _report(result: OptimizationResult) -> str:
    lines = ["optimal spend per period (CRN search):"]
    with pd.option_context("display.width", 160, "display.float_format", "{:,.3f}".format):
        lines.append(result.optimum.to_string(index=False))
        row = result.evaluation.set_index("policy").loc[OPTIMUM]
        lines.append(
            f"\nCLV at the optimum: {row['clv_mean']:,.2f} (95 % CI {row['ci_low']:,.2f} .. "
            f"{row['ci_high']:,.2f}) "
            f"on fresh seeds; in-sample {result.search.clv:,.2f}"
        )
        columns = ["policy", "reference", "delta_clv", "ci_low", "ci_high", "p_better", "delta_spend", "roi"]
        lines.append(f"\npaired ΔCLV against {result.reference} (fresh seeds):")
        lines.append(result.comparison[columns].to_string(index=False))
    lines.append(
        f"\n{result.search.evaluations} evaluations in {result.search.kernel_calls} kernel calls, "
        f"{result.search.cycles} cycle(s)"
    )
    lines.append("\nthe optimum as a policy for an experiment config:\n" + optimum_policy_toml(result))
    return "\n".join(lines)


def _optimize_command(args) -> int:

    from sim.exceptions import ResultExistsError
    from sim.io.paths import default_result_dir
    from sim.io.results import prepare_result_dir
    from sim.model.config import load_config

    try:
        config = load_config(args.config)
        overrides = {}
        run = {
            k: v
            for k, v in (("seed", args.seed), ("replications", args.replications), ("threads", args.threads))
            if v is not None
        }
        if run:
            overrides["run"] = run
        if args.customers is not None:
            overrides["population"] = {"customers": args.customers}
        optimize = {
            k: v
            for k, v in (("method", args.method), ("per_segment", True if args.per_segment else None))
            if v is not None
        }
        if optimize:
            overrides["optimize"] = optimize
        if overrides:
            config = config.with_overrides(**overrides)
        optimum_name(config)
        problems = optimize_problems(config)
        if problems:
            raise ConfigError(problems, str(args.config))
    except ConfigError as error:
        print(f"sim: {error}", file=sys.stderr)
        return 2
    try:  # the output-path rules of sim.io.paths, before any work
        out = args.out if args.out is not None else default_result_dir(config.name, force=args.force)
        prepare_result_dir(out, force=args.force)  # --force: the old result's files are removed
    except ResultExistsError as error:
        print(f"sim: {error}", file=sys.stderr)
        return 2
    layout = SpendLayout.from_config(config)
    print(
        f"{config.name}: optimising {len(layout.coordinates)} spend(s) ({', '.join(layout.names())}) "
        f"in [0, {layout.max_spend:g}] by {config.optimize.method} search"
    )
    started = time.perf_counter()
    try:
        result = optimize_spend(config, progress=print)
    except ConfigError as error:  # checked above; memory can still shrink before a chunk starts
        print(f"sim: {error}", file=sys.stderr)
        return 2
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not args.no_figure:
        use_file_backend()
        figures["optimize.png"] = optimize_figure(result)
    command = command_line()
    result.save(out, command=command, force=True, figures=figures, extra_manifest={"engine": "core"})
    print(_report(result))
    print(
        f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
        f"in {result.timings['total_seconds']:.1f} s"
    )
    return 0


def register(subparsers) -> None:
    """Add ``sim optimize CONFIG`` to the ``sim`` command line (see :data:`sim.cli.main.COMMANDS`)."""
    from pathlib import Path

    parser = subparsers.add_parser(
        "optimize",
        help="find the per-stage retention spend that maximises CLV (common random numbers, scipy.optimize)",
        description="Search the per-stage (optionally per-segment) retention spend maximising mean CLV "
        "net of "
        "spend on a fixed-seed objective, then re-evaluate it with CIs on fresh seeds; writes the "
        "optimum, evaluation, comparison, frontier, response and trace tables and optimize.png.",
    )
    parser.add_argument(
        "config",
        type=Path,
        help="experiment TOML with an [optimize] section (e.g. experiments/optimize.toml)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="result folder (default: results/<experiment name>)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=None, help="override run.seed (the objective's seed)"
    )
    parser.add_argument("--replications", type=positive_int, default=None, help="override run.replications")
    parser.add_argument("--customers", type=positive_int, default=None, help="override population.customers")
    parser.add_argument(
        "--threads",
        type=non_negative_int,
        default=None,
        help="numba threads (0 = all; never changes results)",
    )
    parser.add_argument(
        "--method", choices=("coordinate", "powell"), default=None, help="override optimize.method"
    )
    parser.add_argument("--per-segment", action="store_true", help="one spend per stage and segment")
    parser.add_argument("--force", action="store_true", help="overwrite a complete result folder")
    parser.add_argument("--no-figure", action="store_true", help="skip the figure")
    parser.set_defaults(handler=_optimize_command)
