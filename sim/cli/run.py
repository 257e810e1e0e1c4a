"""``sim run CONFIG``: an experiment on the core (a comparison, a sweep, precision control) or
on the agent engine, written to a result folder with its figures and manifest.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from sim.cli._common import EXIT_BAD_INPUT, command_line, non_negative_int, positive_int, use_file_backend
from sim.engines.market.engine import MarketResult, simulate_market
from sim.experiments.sweep import run_sweep
from sim.model.config import ExperimentConfig, sweep_grid
from sim.plotting.experiments import sweep_figure
from sim.plotting.market import market_figure

__all__ = [
    "run_snapshot_command",
    "register",
    "experiment_report",
    "run_sweep_command",
    "run_market_command",
]


def register(subparsers) -> None:
    """Add ``sim run CONFIG`` to the ``sim`` command line."""
    run = subparsers.add_parser("run", help="run an experiment config and write results/<name>/")
    run.add_argument("config", type=Path, help="experiment TOML file (e.g. experiments/baseline.toml)")
    run.add_argument(
        "--out", type=Path, default=None, help="result folder (default: results/<experiment name>)"
    )
    run.add_argument("--seed", type=non_negative_int, default=None, help="override run.seed")
    run.add_argument("--replications", type=positive_int, default=None, help="override run.replications")
    run.add_argument("--customers", type=positive_int, default=None, help="override population.customers")
    run.add_argument("--horizon", type=positive_int, default=None, help="override run.horizon")
    run.add_argument(
        "--threads",
        type=non_negative_int,
        default=None,
        help="numba threads (0 = all; never changes results)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="overwrite a complete result folder, or write into a folder holding other files "
        "(never the root or home folder; rules in sim.io.paths)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--no-figure", action="store_true", help="skip the figure")
    run.add_argument(
        "--engine",
        choices=("core", "abm"),
        default=None,
        help="core: the numba cohort core; abm: the SimPy agent-based market (default: the config's engine)",
    )
    run.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where the chunks run: this process, or a Dask cluster (never changes results; README 'Dask')",
    )
    run.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler address (tcp://host:8786) or scheduler file; default: a LocalCluster",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from the chunk files in OUT/.chunks "
        "(same numbers as an uninterrupted run)",
    )
    run.set_defaults(handler=_run)


def _print_summary(result) -> None:
    import pandas as pd

    columns = [
        "policy",
        "clv_mean",
        "clv_se",
        "clv_p05",
        "clv_p50",
        "clv_p95",
        "retention_spend",
        "satisfaction_mean",
    ]
    table = result.summary[columns].copy()
    with pd.option_context(
        "display.width", 160, "display.max_columns", 20, "display.float_format", "{:,.2f}".format
    ):
        print(table.to_string(index=False))


def _run(args) -> int:
    from sim.exceptions import ConfigError, ExecutorError, ResultExistsError
    from sim.io.results import prepare_result_dir
    from sim.model.config import load_config
    from sim.runs.projection import project

    try:
        config = load_config(args.config)
        overrides = {}
        run_overrides = {
            k: v
            for k, v in (
                ("seed", args.seed),
                ("replications", args.replications),
                ("horizon", args.horizon),
                ("threads", args.threads),
            )
            if v is not None
        }
        if run_overrides:
            overrides["run"] = run_overrides
        if args.customers is not None:
            overrides["population"] = {"customers": args.customers}
        if overrides:
            config = config.with_overrides(**overrides)
        engine_problems = _engine_problems(config, args.engine or config.engine) + _snapshot_problems(
            args, config
        )
        if engine_problems:
            raise ConfigError(engine_problems, str(args.config))  # before the result folder exists
    except ConfigError as error:
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = _executor_problem(args, config)
    if problem:
        print(f"sim: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    snapshot = None
    if config.population.snapshot is not None:  # live customers, read and checked before any folder exists
        from sim.exceptions import DataError
        from sim.runs.snapshot import check_snapshot, read_snapshot

        try:
            snapshot = check_snapshot(read_snapshot(config.population.snapshot), config)
        except (DataError, ValueError) as error:
            print(f"sim: {config.population.snapshot}: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:  # fail before any work, not after (output-path rules: sim/io/paths.py)
        from sim.io.paths import default_result_dir

        out = args.out if args.out is not None else default_result_dir(config.name, force=args.force)
        problem = _resume_problem(out, resume=getattr(args, "resume", False), force=args.force, config=config)
        if problem:
            print(f"sim: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
        prepare_result_dir(out, force=args.force)
    except ResultExistsError as error:
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # e.g. no permission to create the folder
        print(
            f"sim: cannot create the result folder {error.filename or out}: {error.strerror or error}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if (args.engine or config.engine) == "abm":  # the SimPy agent-based market (sim/engines/market/)
        return run_market_command(config, out, args)
    if config.sweep:  # a grid of experiments (sim/experiments/sweep.py)
        return run_sweep_command(config, out, args)
    if snapshot is not None:  # a firm's live customers (sim/runs/snapshot.py)
        return run_snapshot_command(config, snapshot, out, args)
    print(
        f"{config.name}: {config.population.customers:,} customers x {config.run.replications} replications "
        "x "
        f"{config.run.horizon} periods, {len(config.policies)} policies, seed {config.run.seed}"
    )
    started = time.perf_counter()
    from sim.experiments.comparison import ExperimentResult, run_experiment
    from sim.plotting.experiments import comparison_figure

    try:
        if config.precision.target_ci_halfwidth is not None:
            # sim.project plus the frontier table and [precision] control (sim/experiments/comparison.py)
            result = run_experiment(config, progress=not args.no_progress)
        else:
            # chunk files in out/.chunks make the run resumable (sim/runs/checkpoint.py)
            result = ExperimentResult.from_projection(
                project(
                    config,
                    progress=not args.no_progress,
                    executor=getattr(args, "executor", "local"),
                    scheduler=getattr(args, "scheduler", None),
                    checkpoint=out,
                    resume=getattr(args, "resume", False),
                    keep_clv=False,
                )
            )
    except ConfigError as error:  # checked above; available memory can still shrink before a chunk starts
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ExecutorError as error:  # the Dask scheduler could not be reached, or a chunk never completed
        print(f"sim: {error}", file=sys.stderr)
        return 1
    rejected = result.timings.get("chunk_files_rejected") or []
    if result.timings.get("chunks_resumed") or rejected:
        print(
            f"resumed {result.timings.get('chunks_resumed', 0)} of {result.timings['chunks']} chunks from "
            f"{out}/.chunks"
            + (
                f"; recomputed {len(rejected)} untrusted chunk files: {'; '.join(rejected)}"
                if rejected
                else ""
            )
        )
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not args.no_figure:
        use_file_backend()
        from sim.plotting.projection import result_figure

        figures["overview.png"] = result_figure(result)
        if len(config.policies) > 1:
            figures["comparison.png"] = comparison_figure(result)
    command = command_line()
    result.save(
        out,
        command=command,
        force=True,
        figures=figures,
        extra_manifest={"engine": "core", **result.manifest_extra()},
    )
    from sim.runs.checkpoint import ChunkStore

    ChunkStore(out, config).remove()  # the manifest marks the run complete: chunk files are no longer needed
    _print_summary(result)
    print(experiment_report(result))
    print(
        f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
        f"in {result.timings['total_seconds']:.1f} s"
    )
    return 0


def _snapshot_problems(args, config) -> list[tuple[str, str]]:
    """What a config with ``population.snapshot`` cannot be combined with: the agent engine,
    a [sweep], [precision] control, the Dask executor and --resume (a snapshot run is one
    projection of the given customers in this process), --customers (the snapshot is the
    population).
    """
    if config.population.snapshot is None:
        return []
    field = f"population.snapshot = {config.population.snapshot!r}"
    conflicts = [
        ((args.engine or config.engine) == "abm", 'the agent engine (engine = "abm" or --engine abm)'),
        (bool(config.sweep), "a [sweep]"),
        (config.precision.target_ci_halfwidth is not None, "[precision] control"),
        (getattr(args, "executor", "local") == "dask", "--executor dask"),
        (getattr(args, "resume", False), "--resume"),
        (args.customers is not None, "--customers (the snapshot is the population)"),
    ]
    return [
        (
            field,
            f"a snapshot of live customers is projected by the core in this process; it cannot use {what}",
        )
        for present, what in conflicts
        if present
    ]


def run_snapshot_command(config, snapshot, out, args) -> int:
    """``sim run`` for a config with ``population.snapshot``: project the live customers with
    :func:`sim.project_from` under every policy, write the tables (residual CLVs, paired
    comparisons), the figures and the manifest into ``out``.
    """
    from sim.experiments.comparison import ExperimentResult
    from sim.plotting.experiments import comparison_figure
    from sim.plotting.projection import result_figure
    from sim.runs.snapshot import project_from

    print(
        f"{config.name}: {len(snapshot):,} live customers of {config.population.snapshot} x "
        f"{config.run.replications} replications x {config.run.horizon} periods, {len(config.policies)} "
        f"policies, seed {config.run.seed} (residual CLV from the snapshot on)"
    )
    started = time.perf_counter()
    result = ExperimentResult.from_projection(project_from(snapshot, config))
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not args.no_figure:
        use_file_backend()
        figures["overview.png"] = result_figure(result)
        if len(config.policies) > 1:
            figures["comparison.png"] = comparison_figure(result)
    result.save(
        out,
        command=command_line(),
        force=True,
        figures=figures,
        extra_manifest={"engine": "core", "snapshot": config.population.snapshot, **result.manifest_extra()},
    )
    _print_summary(result)
    print(experiment_report(result))
    print(
        f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
        f"in {result.timings['total_seconds']:.1f} s"
    )
    return 0


def _engine_problems(config, engine: str) -> list[tuple[str, str]]:
    """Why ``engine`` (the config's, or ``--engine``'s) cannot run ``config`` on this machine,
    as ``(field, message)`` pairs: the agent engine's checks (no [sweep], cohort and memory,
    :func:`sim.engines.market.engine.agent_engine_problems`), or the core's run size
    (:func:`sim.runs.executors.run_size_problems`) and market interactions it would ignore.
    """
    if engine == "abm":
        from sim.engines.market.engine import agent_engine_problems

        problems = []
        if config.sweep:
            problems.append(
                (
                    f"sweep ({len(config.sweep)} swept paths)",
                    "the agent engine does not run [sweep] grids; run the sweep on the core engine "
                    '(engine = "core" or --engine core)',
                )
            )
        return problems + agent_engine_problems(config)
    from sim.runs.executors import run_size_problems

    if config.sweep:  # every point of the grid (sim/experiments/sweep.py)
        from sim.experiments.sweep import sweep_size_problems

        problems = sweep_size_problems(config)
    else:
        problems = run_size_problems(config)
    interactions = config.market.interactions
    if interactions:  # an agent-engine file under --engine core (a core file with them is refused at load)
        fields = ", ".join(f"market.{name}.enabled" for name in interactions)
        problems.append(
            (
                f"{fields} = true",
                "the market interactions run only on the agent engine; --engine core would ignore them: "
                "drop --engine core, or switch them off in the file",
            )
        )
    return problems


def _executor_problem(args, config) -> str | None:
    """Why the executor options cannot apply to this run (None if they can)."""
    executor = getattr(args, "executor", "local")
    scheduler = getattr(args, "scheduler", None)
    resume = getattr(args, "resume", False)
    if scheduler and executor != "dask":
        return f"--scheduler {scheduler} needs --executor dask"
    if executor == "dask" or resume:
        option = "--resume" if resume else "--executor dask"
        if (args.engine or config.engine) == "abm":
            return (
                f"{option} applies to the cohort core; the agent-based engine (--engine abm) runs in this "
                "process"
            )
        if config.sweep:
            return f"{option} applies to single experiments; a [sweep] runs its points one after another"
        if config.precision.target_ci_halfwidth is not None:
            return f"{option} is not available with [precision] control (replications are added adaptively)"
    if executor == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            return 'the Dask executor needs dask.distributed: pip install -e ".[dask]"'
    return None


def _resume_problem(out: Path, *, resume: bool, force: bool, config=None) -> str | None:
    """The result-folder rules for chunk files (sim/runs/checkpoint.py): a folder with chunk files
    but no manifest holds an interrupted run, continued with --resume or replaced with
    --force; --resume on a complete folder has nothing to do; --resume with chunk files of
    another config, seed or code version is refused (they would be discarded).
    """
    from sim.io.results import MANIFEST
    from sim.runs.checkpoint import CHUNK_DIR, ChunkStore

    out = Path(out)
    chunks = sorted((out / CHUNK_DIR).glob("*.npz")) if (out / CHUNK_DIR).is_dir() else []
    complete = (out / MANIFEST).exists()
    if resume and complete and not force:
        return (
            f"{out} already holds a complete result ({MANIFEST}); nothing to resume. "
            "Choose another --out, or pass --force to run it again"
        )
    if resume and force:
        return "--resume continues an interrupted run and --force starts over: pass one of them"
    if resume and chunks and not complete and config is not None:
        foreign = ChunkStore(out, config).foreign_files()
        if foreign:
            return (
                f"--resume: {len(foreign)} of the {len(chunks)} chunk files in {out / CHUNK_DIR} were "
                "written "
                "for another config, seed or version of the code (was a setting such as --seed changed?); "
                "resume with the original settings, or run without --resume and with --force to discard "
                "them and start over"
            )
    if chunks and not complete and not resume and not force:
        return (
            f"{out} holds an interrupted run ({len(chunks)} chunk files in {out / CHUNK_DIR}, no "
            f"{MANIFEST}): "
            "pass --resume to continue it, or --force to start over"
        )
    return None


def experiment_report(result) -> str:
    """A short text report of a comparison: the paired ΔCLV rows and precision control."""
    lines = []
    comparison = result.comparison
    if len(comparison):
        columns = [
            c
            for c in (
                "policy",
                "reference",
                "delta_clv",
                "ci_low",
                "ci_high",
                "p_better",
                "delta_spend",
                "roi",
                "se_ratio",
            )
            if c in comparison
        ]
        with pd.option_context(
            "display.width", 160, "display.max_columns", 20, "display.float_format", "{:,.3f}".format
        ):
            lines.append("\npaired differences (common random numbers; se_ratio = unpaired SE / paired SE):")
            lines.append(comparison[columns].to_string(index=False))
    precision = getattr(result, "precision", None)
    if precision:
        state = "met" if precision["met"] else "NOT met (cap reached)"
        lines.append(
            f"\nprecision: 95 % CI half-width {precision['reached_ci_halfwidth']:.3f} "
            f"(target {precision['target_ci_halfwidth']:g}, {state}) with {precision['replications']} "
            "replications"
        )
    return "\n".join(lines)


def run_sweep_command(config: ExperimentConfig, out, args) -> int:
    """``sim run`` for a config with a ``[sweep]``: run the grid, write the tables, the
    figure and the manifest into ``out`` (already prepared), print a compact table.
    """
    points = sweep_grid(config)
    print(
        f"{config.name}: sweep over {', '.join(config.sweep)} — {len(points)} points x "
        f"{len(config.policies)} policies, "
        f"{config.population.customers:,} customers x {config.run.replications} replications x "
        f"{config.run.horizon} periods, "
        f"seed {config.run.seed}"
    )
    started = time.perf_counter()
    result = run_sweep(config, progress=not getattr(args, "no_progress", False))
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not getattr(args, "no_figure", False):
        use_file_backend()
        figures["sweep.png"] = sweep_figure(result)
    command = command_line()
    result.save(out, command=command, force=True, figures=figures, extra_manifest={"engine": "core"})
    columns = [
        "point",
        *result.parameters,
        "policy",
        "clv_mean",
        "clv_se",
        "retention_spend",
        "satisfaction_mean",
    ]
    with pd.option_context(
        "display.width", 200, "display.max_columns", 30, "display.float_format", "{:,.3f}".format
    ):
        print(result.sweep[columns].to_string(index=False))
    print(
        f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
        f"in {result.timings['total_seconds']:.1f} s"
    )
    return 0


def run_market_command(config: ExperimentConfig, out, args) -> int:
    """``sim run CONFIG --engine abm`` (or ``engine = "abm"`` in the config): simulate the
    market and write the result folder in the core's layout — one CSV per table (the
    core's tables plus ``market``, ``customers`` and ``events``), ``overview.png``,
    ``market.png`` and ``manifest.json`` (written last). Returns the exit status.
    """
    interactions = ", ".join(config.market.interactions) or "none"
    print(
        f"{config.name} (agent engine, interactions: {interactions}, timing: {config.market.timing}): "
        f"{config.population.customers:,} customers x {config.run.replications} replications x "
        f"{config.run.horizon} periods, {len(config.policies)} policies, seed {config.run.seed}"
    )
    started = time.perf_counter()
    result = simulate_market(config, progress=not args.no_progress)
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not args.no_figure:
        use_file_backend()
        from sim.plotting.projection import result_figure

        figures["overview.png"] = result_figure(result)
        figures["market.png"] = market_figure(result)
    command = command_line()
    result.save(
        out,
        command=command,
        force=True,
        figures=figures,
        extra_manifest={"engine": "abm", "interactions": list(config.market.interactions)},
    )
    _print_summary(result)
    print()
    print(_market_report(result))
    print(
        f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
        f"in {result.timings['total_seconds']:.1f} s"
    )
    return 0


def _market_report(result: MarketResult) -> str:
    """Per policy, totals over the horizon (means over replications) of the market table."""
    market = result.market
    totals = market.groupby(["policy", "replication"], sort=False).agg(
        customer_periods=("live", "sum"),
        joined=("joined_acquisition", "sum"),
        joined_wom=("joined_word_of_mouth", "sum"),
        deterred=("deterred", "sum"),
        complaints=("complaints", "sum"),
        retention_spend=("retention_spend", "sum"),
        firm_value=("cash_value", "sum"),
    )
    waits = market.groupby(["policy", "replication"], sort=False)[["wait_mean"]].mean()
    table = totals.join(waits).groupby("policy", sort=False).mean()
    table = table.rename(columns={"joined": "joined_acquisition", "joined_wom": "joined_word_of_mouth"})
    with pd.option_context(
        "display.width", 160, "display.max_columns", 20, "display.float_format", "{:,.2f}".format
    ):
        heading = "market totals per replication (firm_value: net cash discounted to period 0)\n"
        return heading + table.reset_index().to_string(index=False)
