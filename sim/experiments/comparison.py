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
:func:`~sim.run_sweep`
    Runs every point of a ``[sweep]`` grid (all validated when the config was loaded) and
    returns tidy rows with the swept values as columns (:class:`~sim.SweepResult`).
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

from sim.model.config import ExperimentConfig, with_run_overrides
from sim.runs.projection import project, set_threads
from sim.tables.result import Z95, ProjectionResult

__all__ = [
    "ExperimentResult",
    "run_experiment",
    "project_to_precision",
    "frontier_table",
    "restrict_comparison",
    "with_unpaired_se",
    "ci_halfwidth",
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
        raise ValueError(
            f"reference = {reference!r} is not in the comparison table; references: {', '.join(references)}"
        )
    return comparison[comparison["reference"] == reference].reset_index(drop=True)


def with_unpaired_se(comparison: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """The comparison table with ``se_unpaired = sqrt(se_A^2 + se_B^2)`` and ``se_ratio =
    se_unpaired / se``: what the standard error of ΔCLV would be without common random
    numbers (two independent samples of the same size), and how many times smaller the
    paired one is. ``se_ratio`` is NaN when the paired ``se`` is 0 (identical policies).
    """
    se = summary.set_index("policy")["clv_se"]
    table = comparison.copy()
    table["se_unpaired"] = np.hypot(
        se.reindex(table["policy"]).to_numpy(), se.reindex(table["reference"]).to_numpy()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        table["se_ratio"] = np.where(table["se"] > 0, table["se_unpaired"] / table["se"], np.nan)
    return table


def ci_halfwidth(comparison: pd.DataFrame) -> float:
    """Largest 95 % CI half-width (``1.96 se``) of ΔCLV over the rows of a comparison table
    (0 for an empty table).
    """
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
        :func:`~sim.experiments.comparison.with_unpaired_se`).
    frontier : DataFrame
        :func:`~sim.experiments.comparison.frontier_table` of the summary.
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
        values["comparison"] = (
            with_unpaired_se(result.comparison, result.summary)
            if len(result.comparison)
            else result.comparison
        )
        return cls(
            **values,
            frontier=frontier_table(result.summary, result.config.population.customers),
            precision=dict(precision or {}),
        )

    def manifest_extra(self) -> dict:
        """Entries for ``manifest.json``: the comparison reference and precision control."""
        extra = {"comparison_reference": self.config.comparison.reference}
        if self.precision:
            extra["precision"] = self.precision
        return extra


def _add_replications(
    config: ExperimentConfig, reducer, first: int, stop: int, keep_clv: bool, progress: bool = False
) -> None:
    """Simulate replications ``first .. stop-1`` and add their chunks to ``reducer``, in the
    work-item order of :func:`sim.project` (replications, then chunks), so the reduction is
    the same as a single run of ``stop`` replications.
    """
    from sim.runs.executors import config_data, plan_work, simulate_work_item

    items = [
        item
        for item in plan_work(config.with_overrides(run={"replications": stop}))
        if item.replication >= first
    ]
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"{config.name}: replications {first + 1}-{stop}", unit="chunk", leave=False)
    config_json = config_data(config)
    for item in items:
        reducer.add(simulate_work_item(config_json, item, keep_clv))


def project_to_precision(
    config: ExperimentConfig, *, progress: bool = False
) -> tuple[ProjectionResult, dict]:
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
    threads = set_threads(config.run.threads)
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
        "pairs": (
            f"every policy vs {config.comparison.reference}"
            if config.comparison.reference
            else "every ordered pair"
        ),
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
    is refused: use :func:`~sim.run_sweep`.

    Returns
    -------
    ExperimentResult
    """
    if config.sweep:
        raise ValueError("the config has a [sweep]: run it with sim.run_sweep (or sim run)")
    config = with_run_overrides(config, customers, replications, horizon, seed, threads)
    if config.precision.target_ci_halfwidth is not None:
        result, record = project_to_precision(config, progress=progress)
        return ExperimentResult.from_projection(result, record)
    return ExperimentResult.from_projection(project(config, progress=progress))


# --------------------------------------------------------------------------- figures + report
