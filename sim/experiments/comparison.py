"""Policy experiments on the cohort core: paired comparisons, frontiers, precision control, sweeps.

Every policy of an experiment is simulated on the same customers with the same random
shocks (common random numbers, :mod:`sim.engines.core`), so the difference between two policies is
estimated from per-customer *paired* differences: its standard error is
``sd(CLV_A - CLV_B) / sqrt(n)`` instead of the unpaired ``sqrt(se_A^2 + se_B^2)``, which is
several times larger because most of a customer's CLV (wallet, fit, luck) is common to
both policies. :func:`with_unpaired_se` puts the two side by side.

Public API
----------
:func:`run_experiment`
    ``sim.project`` plus what a policy comparison needs: the reference-restricted
    ``comparison`` table (``[comparison] reference``), a ``frontier`` table, and precision
    control (``[precision]``) when configured. Returns :class:`ExperimentResult`.
:func:`project_to_precision`
    Adds replications until the 95 % CI half-width of every reported ΔCLV is at most the
    target, with a cap; bitwise identical to ``sim.project`` with the reached replications.
:func:`run_sweep`
    Runs every point of a ``[sweep]`` grid (all validated when the config was loaded) and
    returns tidy rows with the swept values as columns (:class:`SweepResult`).
:func:`frontier_table`, :func:`restrict_comparison`, :func:`with_unpaired_se`
    Table helpers usable on the results of any engine with the same tidy columns.

A budget-constrained policy (a fixed spend budget per period shared by all customers)
couples customers and cannot be expressed as a per-customer spend table; it belongs to the
agent engine. The cohort core offers no approximation of it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.exceptions import ConfigError
from sim.model.config import ExperimentConfig, apply_overrides, sweep_grid
from sim.tables.result import ProjectionResult, Z95
from sim.runs.projection import _resolve, _set_threads, project

__all__ = [
    "Z95",
    "ExperimentResult",
    "SweepResult",
    "run_experiment",
    "project_to_precision",
    "run_sweep",
    "frontier_table",
    "restrict_comparison",
    "with_unpaired_se",
    "ci_halfwidth",
    "comparison_figure",
    "sweep_figure",
    "experiment_report",
]

# --------------------------------------------------------------------------- table helpers


def restrict_comparison(comparison: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The rows of a ``comparison`` table that compare every policy with ``reference``.

    Raises
    ------
    ValueError
        If ``reference`` is not a reference in the table (the names present are listed).
    """
    references = list(dict.fromkeys(comparison["reference"])) if "reference" in comparison else []
    if reference not in references:
        raise ValueError(f"reference = {reference!r} is not in the comparison table; references: {', '.join(references)}")
    return comparison[comparison["reference"] == reference].reset_index(drop=True)


def with_unpaired_se(comparison: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The comparison table with ``se_unpaired = sqrt(se_A^2 + se_B^2)`` and ``se_ratio =
    se_unpaired / se``: what the standard error of ΔCLV would be without common random
    numbers (two independent samples of the same size), and how many times smaller the
    paired one is. ``se_ratio`` is NaN when the paired ``se`` is 0 (identical policies)."""
    se = summary.set_index("policy")["clv_se"]
    table = comparison.copy()
    table["se_unpaired"] = np.hypot(se.reindex(table["policy"]).to_numpy(), se.reindex(table["reference"]).to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        table["se_ratio"] = np.where(table["se"] > 0, table["se_unpaired"] / table["se"], np.nan)
    return table


def ci_halfwidth(comparison: pd.DataFrame) -> float:
    """Largest 95 % CI half-width (``1.96 se``) of ΔCLV over the rows of a comparison table
    (0 for an empty table)."""
    if comparison.empty:
        return 0.0
    return float(Z95 * comparison["se"].max())


def frontier_table(summary: pd.DataFrame, cohort_customers: int) -> pd.DataFrame:
    """The spend-vs-CLV frontier across policies, one row per policy, cheapest first.

    Columns: ``policy, retention_spend, clv_mean, clv_se, ci_low, ci_high`` (present values
    per acquired customer; CLV is net of spend), ``total_spend`` and ``total_clv`` (the same
    for the whole cohort of ``cohort_customers``), and ``efficient``: no other policy has
    ``retention_spend <=`` and ``clv_mean >=`` with one of the two strict (the Pareto set of
    spending less and earning more). Point estimates decide ``efficient``; read it with the
    CIs.
    """
    table = summary[["policy", "retention_spend", "clv_mean", "clv_se"]].copy()
    table["ci_low"] = table["clv_mean"] - Z95 * table["clv_se"]
    table["ci_high"] = table["clv_mean"] + Z95 * table["clv_se"]
    table["total_spend"] = table["retention_spend"] * cohort_customers
    table["total_clv"] = table["clv_mean"] * cohort_customers
    spend = table["retention_spend"].to_numpy()
    clv = table["clv_mean"].to_numpy()
    dominated = [
        bool(np.any((spend <= spend[i]) & (clv >= clv[i]) & ((spend < spend[i]) | (clv > clv[i]))))
        for i in range(len(table))
    ]
    table["efficient"] = ~np.asarray(dominated, dtype=bool)
    return table.sort_values(["retention_spend", "policy"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- results


@dataclass
class ExperimentResult(ProjectionResult):
    """A :class:`sim.ProjectionResult` with what a policy comparison adds.

    Attributes
    ----------
    comparison : DataFrame
        As in :class:`sim.ProjectionResult` (every pair, or every policy against
        ``comparison.reference``), plus ``se_unpaired`` and ``se_ratio`` (see
        :func:`with_unpaired_se`).
    frontier : DataFrame
        :func:`frontier_table` of the summary.
    precision : dict
        Empty without precision control; else ``target_ci_halfwidth``,
        ``reached_ci_halfwidth``, ``replications``, ``max_replications``, ``met`` and the
        ``rounds`` (replications and half-width after each round).
    """

    frontier: pd.DataFrame = None
    precision: dict = field(default_factory=dict)

    TABLES = ProjectionResult.TABLES + ("frontier",)

    @classmethod
    def from_projection(cls, result: ProjectionResult, precision: dict | None = None) -> "ExperimentResult":
        """Wrap a projection: add the frontier and the unpaired SEs (no simulation)."""
        values = {item.name: getattr(result, item.name) for item in dataclasses.fields(ProjectionResult)}
        values["comparison"] = with_unpaired_se(result.comparison, result.summary) if len(result.comparison) else result.comparison
        return cls(**values, frontier=frontier_table(result.summary, result.config.population.customers),
                   precision=dict(precision or {}))

    def manifest_extra(self) -> dict:
        """Entries for ``manifest.json``: the comparison reference and precision control."""
        extra = {"comparison_reference": self.config.comparison.reference}
        if self.precision:
            extra["precision"] = self.precision
        return extra


def _add_replications(config: ExperimentConfig, reducer, first: int, stop: int, keep_clv: bool,
                      progress: bool = False) -> None:
    """Simulate replications ``first .. stop-1`` and add their chunks to ``reducer``, in the
    work-item order of :func:`sim.project` (replications, then chunks), so the reduction is
    the same as a single run of ``stop`` replications."""
    from sim.runs.executors import config_data, plan_work, simulate_work_item

    items = [item for item in plan_work(config.with_overrides(run={"replications": stop})) if item.replication >= first]
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"{config.name}: replications {first + 1}-{stop}", unit="chunk", leave=False)
    config_json = config_data(config)
    for item in items:
        reducer.add(simulate_work_item(config_json, item, keep_clv))


def project_to_precision(config: ExperimentConfig, *, progress: bool = False) -> tuple[ProjectionResult, dict]:
    """Project ``config``, adding replications until ΔCLV is known to the target precision.

    Starts with ``run.replications``; after each round computes the largest 95 % CI
    half-width ``h = 1.96 se`` of the paired ΔCLV over the reported comparison rows (every
    policy against ``comparison.reference``, or every ordered pair without one). While
    ``h > precision.target_ci_halfwidth`` and fewer than ``precision.max_replications``
    have run, it grows to ``R' = min(cap, max(R + 1, ceil(R (h / target)^2)))``
    replications (the SE falls as ``1/sqrt(R)``), simulating only the new replications
    ``R .. R'-1`` and adding their chunks to the running totals
    (:class:`sim.tables.chunks.ChunkReducer`, memory independent of ``R``). The tables are
    bitwise identical to those of ``sim.project(config, replications=R_final)``, and so is
    ``result.clv``: the per-customer CLVs are kept while ``customers x R <=
    sim.tables.chunks.CLV_KEEP_LIMIT`` (:func:`sim.tables.chunks.exact_clv_tables`, the rule of
    ``sim.project``) and dropped, for the sketch, at the first round that grows past it.

    Returns
    -------
    (ProjectionResult, dict)
        The result and the precision record: ``target_ci_halfwidth``,
        ``reached_ci_halfwidth``, ``replications``, ``max_replications``, ``met``,
        ``rounds`` (list of ``{"replications", "ci_halfwidth"}``).

    Raises
    ------
    ValueError
        If ``precision.target_ci_halfwidth`` is not set.

    Notes
    -----
    Stopping when the estimated half-width first falls below the target (a sequential
    rule) makes the reported half-width slightly optimistic; with thousands of customers
    per replication the SE estimate is very stable, so the effect is negligible here.
    """
    from sim.tables.chunks import ChunkReducer, exact_clv_tables

    target = config.precision.target_ci_halfwidth
    if target is None:
        raise ValueError("precision.target_ci_halfwidth is not set: nothing to control")
    cap = config.precision.max_replications
    replications = config.run.replications
    threads = _set_threads(config.run.threads)
    started = time.perf_counter()
    # per-customer CLVs are kept exactly when sim.project keeps them for the current R
    # (memory at most CLV_KEEP_LIMIT CLVs per policy); past the limit the sketch takes over
    keep_clv = exact_clv_tables(config)
    reducer = ChunkReducer(len(config.policy_names), keep_clv=keep_clv)
    _add_replications(config, reducer, 0, replications, keep_clv, progress)
    rounds = []
    while True:
        resolved = config.with_overrides(run={"replications": replications})
        result = ProjectionResult.from_reducer(resolved, reducer, threads=threads)
        halfwidth = ci_halfwidth(result.comparison)
        rounds.append({"replications": replications, "ci_halfwidth": halfwidth})
        if halfwidth <= target or replications >= cap:
            break
        wanted = math.ceil(replications * (halfwidth / target) ** 2)
        grown = min(cap, max(replications + 1, wanted))
        if keep_clv and not exact_clv_tables(config.with_overrides(run={"replications": grown})):
            reducer.drop_clv()  # as sim.project with ``grown`` replications: quantiles from the sketch
            keep_clv = False
        _add_replications(config, reducer, replications, grown, keep_clv, progress)
        replications = grown
    result.timings["simulate_seconds"] = time.perf_counter() - started
    record = {
        "target_ci_halfwidth": target,
        "reached_ci_halfwidth": halfwidth,
        "replications": replications,
        "max_replications": cap,
        "met": bool(halfwidth <= target),
        "pairs": (f"every policy vs {config.comparison.reference}" if config.comparison.reference else "every ordered pair"),
        "rounds": rounds,
    }
    return result, record


def run_experiment(
    config: ExperimentConfig,
    *,
    customers: int | None = None,
    replications: int | None = None,
    horizon: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> ExperimentResult:
    """Run a policy-comparison experiment on the cohort core.

    ``sim.project`` on the same customers and random streams for every policy (common
    random numbers), with ``[precision]`` control when ``precision.target_ci_halfwidth``
    is set (:func:`project_to_precision`), and the ``frontier`` table. The keyword
    arguments override the config as in :func:`sim.project`. A config with a ``[sweep]``
    is refused: use :func:`run_sweep`.

    Returns
    -------
    ExperimentResult
    """
    if config.sweep:
        raise ValueError("the config has a [sweep]: run it with sim.experiments.comparison.run_sweep (or sim run)")
    config = _resolve(config, customers, replications, horizon, seed, threads)
    if config.precision.target_ci_halfwidth is not None:
        result, record = project_to_precision(config, progress=progress)
        return ExperimentResult.from_projection(result, record)
    return ExperimentResult.from_projection(project(config, progress=progress))


@dataclass
class SweepResult:
    """The results of a ``[sweep]`` grid: tidy rows with the swept values as columns.

    Attributes
    ----------
    config : ExperimentConfig
        The sweep's configuration (with its ``[sweep]`` section).
    parameters : tuple of str
        The swept dotted paths, which are also columns of the tables.
    sweep : DataFrame
        One row per grid point and policy: ``point`` (1-based), the swept values, then the
        columns of the ``summary`` table (``policy, clv_mean, clv_se, clv1..clv6,
        retention_spend, satisfaction_mean, ...``).
    sweep_comparison : DataFrame
        ``point``, the swept values, then the ``comparison`` columns, per point.
    sweep_frontier : DataFrame
        ``point``, the swept values, then the ``frontier`` columns, per point.
    precision : list of dict
        The precision record of each point (empty dicts without precision control).
    """

    config: ExperimentConfig
    parameters: tuple
    sweep: pd.DataFrame
    sweep_comparison: pd.DataFrame
    sweep_frontier: pd.DataFrame
    precision: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    TABLES = ("sweep", "sweep_comparison", "sweep_frontier")

    def table(self, name: str) -> pd.DataFrame:
        """One of the tables by name (see :attr:`TABLES`)."""
        if name not in self.TABLES:
            raise KeyError(f"no table {name!r}; tables: {', '.join(self.TABLES)}")
        return getattr(self, name)

    def manifest_extra(self) -> dict:
        """Entries for ``manifest.json``: the swept parameters, the points, precision."""
        extra = {"sweep": {"parameters": list(self.parameters), "points": len(self.sweep["point"].unique())}}
        if any(self.precision):
            extra["precision"] = self.precision
        return extra

    def save(self, directory, *, command: str | None = None, force: bool = False,
             extra_manifest: dict | None = None, figures: dict | None = None):
        """Write the tables as CSV, the figures, then ``manifest.json`` (see :func:`sim.io.results.save_result`)."""
        from sim.io.results import save_result

        return save_result(self, directory, command=command, force=force,
                           extra_manifest={**self.manifest_extra(), **(extra_manifest or {})}, figures=figures)


def _with_point(table: pd.DataFrame, number: int, point: dict) -> pd.DataFrame:
    front = pd.DataFrame({"point": [number] * len(table), **{path: [value] * len(table) for path, value in point.items()}})
    return pd.concat([front, table.reset_index(drop=True)], axis=1)


def sweep_point_configs(config: ExperimentConfig) -> tuple[list[dict], list[ExperimentConfig]]:
    """The points of the config's ``[sweep]`` grid and the config of each (the base with the
    swept paths set by ``sim.model.config.apply_overrides``, each validated)."""
    base = config.model_copy(update={"sweep": {}})
    points = sweep_grid(config)
    return points, [apply_overrides(base, point) for point in points]


def sweep_size_problems(config: ExperimentConfig, points: list[dict] | None = None,
                        configs: list[ExperimentConfig] | None = None) -> list[tuple[str, str]]:
    """Why a point of the ``[sweep]`` grid is too large to run on this machine
    (:func:`sim.runs.executors.run_size_problems` of each point, naming the point), checked
    before any work: a sweep over ``population.customers`` must not fail at its last point,
    hours in. ``points, configs`` from :func:`sweep_point_configs` if already built."""
    from sim.runs.executors import run_size_problems

    if points is None or configs is None:
        points, configs = sweep_point_configs(config)
    problems, failing = [], 0
    for number, (point, point_config) in enumerate(zip(points, configs), start=1):
        point_problems = run_size_problems(point_config)
        failing += bool(point_problems)
        if point_problems and failing <= MAX_REPORTED_POINTS:
            where = ", ".join(f"{path} = {value}" for path, value in point.items())
            problems += [(f"{field} (sweep point {number}: {where})", message) for field, message in point_problems]
    if failing > MAX_REPORTED_POINTS:
        problems.append(("sweep", f"and {failing - MAX_REPORTED_POINTS:,} more points too large (of {len(points):,})"))
    return problems


#: Most sweep points whose size problems are listed one by one.
MAX_REPORTED_POINTS = 10


def run_sweep(config: ExperimentConfig, *, progress: bool = False) -> SweepResult:
    """Run every point of the config's ``[sweep]`` grid with :func:`run_experiment`.

    Each point is the config with the swept paths set (``sim.model.config.apply_overrides``);
    every point was validated when the config was loaded and is validated again here, all
    before any simulation. All points use the same ``run.seed``, so differences between
    points are common-random-numbers comparisons too. Precision control, if configured,
    applies to each point.

    Raises
    ------
    ValueError
        If the config has no ``[sweep]``.
    ConfigError
        If a point is too large for this machine (:func:`sweep_size_problems`).
    """
    if not config.sweep:
        raise ValueError("the config has no [sweep] section: nothing to sweep")
    points, configs = sweep_point_configs(config)  # every point validated before any work
    problems = sweep_size_problems(config, points, configs)  # and every point's run size
    if problems:
        raise ConfigError(problems)
    started = time.perf_counter()
    summaries, comparisons, frontiers, precision = [], [], [], []
    for number, (point, point_config) in enumerate(zip(points, configs), start=1):
        if progress:
            print(f"  point {number}/{len(points)}: " + ", ".join(f"{k} = {v}" for k, v in point.items()), flush=True)
        result = run_experiment(point_config)
        summaries.append(_with_point(result.summary, number, point))
        comparisons.append(_with_point(result.comparison, number, point))
        frontiers.append(_with_point(result.frontier, number, point))
        precision.append(result.precision)
    return SweepResult(
        config=config,
        parameters=tuple(config.sweep),
        sweep=pd.concat(summaries, ignore_index=True),
        sweep_comparison=pd.concat(comparisons, ignore_index=True),
        sweep_frontier=pd.concat(frontiers, ignore_index=True),
        precision=precision,
        timings={"simulate_seconds": time.perf_counter() - started, "points": len(points)},
    )


# --------------------------------------------------------------------------- figures + report


def comparison_figure(result):
    """The comparison page of a run: forest plot of paired ΔCLV, frontier and CLV
    decomposition per policy. Returns the Figure."""
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_clv_parts, plot_comparison_forest, plot_frontier

    figure, axes = plt.subplots(1, 3, figsize=(18, 5.2), layout="constrained")
    plot_comparison_forest(result.comparison, reference=result.config.comparison.reference, ax=axes[0])
    frontier = getattr(result, "frontier", None)
    if frontier is None:
        frontier = frontier_table(result.summary, result.config.population.customers)
    plot_frontier(frontier, ax=axes[1])
    plot_clv_parts(result.summary, ax=axes[2])
    figure.suptitle(f"{result.config.name}: policy comparison (common random numbers)", fontsize=12)
    return figure


def sweep_figure(result: SweepResult):
    """CLV and retention spend against the first swept parameter, one line per policy
    (and per value of the other swept parameters). Returns the Figure."""
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_sweep

    parameter, others = result.parameters[0], result.parameters[1:]
    figure, axes = plt.subplots(1, 2, figsize=(14, 5), layout="constrained")
    plot_sweep(result.sweep, parameter, "clv_mean", by=("policy",) + tuple(others), ax=axes[0])
    plot_sweep(result.sweep, parameter, "retention_spend", by=("policy",) + tuple(others), ax=axes[1])
    figure.suptitle(f"{result.config.name}: sweep over {', '.join(result.parameters)}", fontsize=12)
    return figure


def experiment_report(result) -> str:
    """A short text report of a comparison: the paired ΔCLV rows and precision control."""
    lines = []
    comparison = result.comparison
    if len(comparison):
        columns = [c for c in ("policy", "reference", "delta_clv", "ci_low", "ci_high", "p_better", "delta_spend", "roi",
                               "se_ratio") if c in comparison]
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:,.3f}".format):
            lines.append("\npaired differences (common random numbers; se_ratio = unpaired SE / paired SE):")
            lines.append(comparison[columns].to_string(index=False))
    precision = getattr(result, "precision", None)
    if precision:
        state = "met" if precision["met"] else "NOT met (cap reached)"
        lines.append(f"\nprecision: 95 % CI half-width {precision['reached_ci_halfwidth']:.3f} "
                     f"(target {precision['target_ci_halfwidth']:g}, {state}) with {precision['replications']} replications")
    return "\n".join(lines)


def run_sweep_command(config: ExperimentConfig, out, args) -> int:
    """``sim run`` for a config with a ``[sweep]``: run the grid, write the tables, the
    figure and the manifest into ``out`` (already prepared), print a compact table."""
    import shlex
    import sys

    points = sweep_grid(config)
    print(f"{config.name}: sweep over {', '.join(config.sweep)} — {len(points)} points x {len(config.policies)} policies, "
          f"{config.population.customers:,} customers x {config.run.replications} replications x {config.run.horizon} periods, "
          f"seed {config.run.seed}")
    started = time.perf_counter()
    result = run_sweep(config, progress=not getattr(args, "no_progress", False))
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not getattr(args, "no_figure", False):
        import matplotlib

        matplotlib.use("Agg")
        figures["sweep.png"] = sweep_figure(result)
    command = "sim " + " ".join(shlex.quote(part) for part in sys.argv[1:])
    result.save(out, command=command, force=True, figures=figures, extra_manifest={"engine": "core"})
    columns = ["point", *result.parameters, "policy", "clv_mean", "clv_se", "retention_spend", "satisfaction_mean"]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:,.3f}".format):
        print(result.sweep[columns].to_string(index=False))
    print(f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
          f"in {result.timings['total_seconds']:.1f} s")
    return 0
