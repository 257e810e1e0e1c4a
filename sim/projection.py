"""Cohort CLV projection with the jitted core: :func:`project` and :class:`ProjectionResult`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterable

import numba
import numpy as np
import pandas as pd

from .config import PATTERNS, STAGES, ExperimentConfig
from .core import (
    BLOCK,
    K_LOYALTY,
    K_PROFIT,
    K_SATISFACTION,
    K_SPEND,
    M_ACQUISITION,
    M_CLV,
    M_CLV1,
    M_CLV_SQUARED,
    M_SPEND,
    SATISFACTION_BINS,
    ChunkPartials,
    simulate_chunk,
)
from .model import model_arrays
from .policies import policy_tables

__all__ = ["project", "ProjectionResult", "QUANTILE_LEVELS", "STATE_NAMES"]

#: CLV quantiles reported in the summary table.
QUANTILE_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
#: The five states of the stage-occupancy table: the four stages and "ended".
STATE_NAMES = STAGES + ("ended",)
#: Normal quantile for two-sided 95 % intervals.
Z95 = 1.959963984540054


def _resolve(config: ExperimentConfig, customers, replications, horizon, seed, threads) -> ExperimentConfig:
    overrides_run = {key: value for key, value in
                     (("replications", replications), ("horizon", horizon), ("seed", seed), ("threads", threads))
                     if value is not None}
    overrides = {}
    if overrides_run:
        overrides["run"] = overrides_run
    if customers is not None:
        overrides["population"] = {"customers": customers}
    return config.with_overrides(**overrides) if overrides else config


def _chunks(n_customers: int, chunk_customers: int) -> list[tuple[int, int]]:
    return [(start, min(chunk_customers, n_customers - start)) for start in range(0, n_customers, chunk_customers)]


def _set_threads(threads: int) -> int:
    available = numba.config.NUMBA_NUM_THREADS
    wanted = available if threads == 0 else min(threads, available)
    numba.set_num_threads(wanted)
    return wanted


def project(
    config: ExperimentConfig,
    *,
    customers: int | None = None,
    replications: int | None = None,
    horizon: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> "ProjectionResult":
    """Project the cohort CLV of every policy in ``config`` with the numba core.

    Each of ``customers`` customers is acquired at period 0 and simulated for ``horizon``
    periods under every policy, with common random numbers across policies, in each of
    ``replications`` independent replications. The model is :mod:`sim.model`.

    Parameters
    ----------
    config
        A validated experiment (:func:`sim.load_config`).
    customers, replications, horizon, seed, threads
        Override the config's values (validated like the config).
    progress
        Show a progress bar over chunks of work.

    Returns
    -------
    ProjectionResult
        Tidy tables (``summary``, ``stages``, ``by_stage``, ``patterns``, ``trajectory``,
        ``satisfaction_retention``, ``value_concentration``, ``comparison``) and the
        per-customer CLVs.

    Notes
    -----
    Results are bitwise identical for any ``threads`` and any ``run.chunk_customers``.
    Memory is O(customers x policies) for the per-customer CLVs kept for quantiles, plus
    per-block partial sums; never O(customers x periods).
    """
    config = _resolve(config, customers, replications, horizon, seed, threads)
    run = config.run
    n_customers = config.population.customers
    arrays = model_arrays(config)
    tables = policy_tables(config)
    used_threads = _set_threads(run.threads)
    chunks = _chunks(n_customers, run.chunk_customers)
    work = [(replication, start, size) for replication in range(run.replications) for start, size in chunks]
    iterator: Iterable = work
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(work, desc=f"{config.name}: chunks", unit="chunk", leave=False)
    started = time.perf_counter()
    partials = [
        simulate_chunk(arrays, tables, run.seed, replication, start, size, run.horizon)
        for replication, start, size in iterator
    ]
    elapsed = time.perf_counter() - started
    return ProjectionResult.from_partials(config, partials, wall_seconds=elapsed, threads=used_threads)


def _reduce(partials: list[ChunkPartials], name: str) -> np.ndarray:
    """Sum one partial over all blocks of all chunks, in (replication, block) order."""
    return np.concatenate([getattr(part, name) for part in partials], axis=0).sum(axis=0)


@dataclass
class ProjectionResult:
    """Results of :func:`project`: tidy pandas tables plus per-customer CLVs.

    Attributes
    ----------
    config : ExperimentConfig
        The resolved configuration that produced the results.
    summary : DataFrame
        One row per policy: ``customers`` (per replication), ``replications``, ``clv_mean``,
        ``clv_se`` (standard error of the mean over all simulated customers, who are
        independent), ``clv_sd``, CLV quantiles ``clv_p05`` … ``clv_p95``, the mean parts
        ``clv1`` … ``clv6``, ``retention_spend`` and ``acquisition_cost`` (present values
        per customer; ``clv_mean = clv1 + … + clv6 - retention_spend - acquisition_cost``),
        and ``satisfaction_mean`` over customer-periods.
    stages : DataFrame
        ``policy, period, stage, share``: the share of the cohort in each of the four stages
        and "ended" at the start of each period 0 … horizon (shares sum to 1).
    by_stage : DataFrame
        ``policy, stage, customer_periods, profit_mean, satisfaction_mean, loyalty_mean,
        spend_mean`` per customer-period (profit undiscounted, net of spend).
    patterns : DataFrame
        ``policy, pattern, customers, share, clv_mean`` for lifecycle patterns I–IV.
    trajectory : DataFrame
        ``policy, period, active_share, satisfaction_mean, loyalty_mean, spend_mean,
        profit_mean`` (means over customers active in the period).
    satisfaction_retention : DataFrame
        ``policy, stage, satisfaction_low, satisfaction_high, customer_periods, retention``:
        the simulated share of customer-periods with no exit move (to decline or ended), by
        satisfaction bin, per stage and over all stages (``stage == "all"``).
    value_concentration : DataFrame
        ``policy, group, customer_share, value_share, negative_share`` for ABC groups
        (top 5 %, next 15 %, bottom 80 % of customers ranked by CLV): share of total CLV
        and share of the group with negative CLV.
    comparison : DataFrame
        One row per ordered pair of policies: ``policy, reference, delta_clv, se, ci_low,
        ci_high, p_better, delta_spend, roi`` from paired per-customer differences.
    clv : dict of str to ndarray
        Per-customer CLV by policy, replications concatenated.
    """

    config: ExperimentConfig
    summary: pd.DataFrame
    stages: pd.DataFrame
    by_stage: pd.DataFrame
    patterns: pd.DataFrame
    trajectory: pd.DataFrame
    satisfaction_retention: pd.DataFrame
    value_concentration: pd.DataFrame
    comparison: pd.DataFrame
    clv: dict = field(repr=False)
    timings: dict = field(default_factory=dict)

    TABLES = (
        "summary",
        "stages",
        "by_stage",
        "patterns",
        "trajectory",
        "satisfaction_retention",
        "value_concentration",
        "comparison",
    )

    @classmethod
    def from_partials(cls, config: ExperimentConfig, partials: list[ChunkPartials], *, wall_seconds: float = float("nan"), threads: int = 0) -> "ProjectionResult":
        """Reduce chunk partials (in a fixed order) into the tidy tables."""
        names = config.policy_names
        horizon = config.run.horizon
        n_total = config.population.customers * config.run.replications
        money = _reduce(partials, "money")
        stage_sums = _reduce(partials, "stage_sums")
        stage_periods = _reduce(partials, "stage_periods")
        period_sums = _reduce(partials, "period_sums")
        occupancy = _reduce(partials, "occupancy")
        ended_at = _reduce(partials, "ended_at")
        pattern_count = _reduce(partials, "pattern_count")
        pattern_clv = _reduce(partials, "pattern_clv")
        pair_sums = _reduce(partials, "pair_sums")
        pair_wins = _reduce(partials, "pair_wins")
        satisfaction_bins = _reduce(partials, "satisfaction_bins")
        clv = {name: np.concatenate([part.clv[index] for part in partials]) for index, name in enumerate(names)}

        summary = _summary_table(config, names, money, stage_sums, stage_periods, clv, n_total)
        stages = _stages_table(names, occupancy, ended_at, n_total)
        active = occupancy[:, :horizon, :].sum(axis=2)
        return cls(
            config=config,
            summary=summary,
            stages=stages,
            by_stage=_by_stage_table(names, stage_sums, stage_periods),
            patterns=_patterns_table(names, pattern_count, pattern_clv, n_total),
            trajectory=_trajectory_table(names, period_sums, active, n_total),
            satisfaction_retention=_satisfaction_table(names, satisfaction_bins),
            value_concentration=_value_table(names, clv, summary),
            comparison=_comparison_table(names, money, pair_sums, pair_wins, n_total),
            clv=clv,
            timings={"simulate_seconds": wall_seconds, "threads": threads},
        )

    def table(self, name: str) -> pd.DataFrame:
        """One of the tables by name (see :attr:`TABLES`)."""
        if name not in self.TABLES:
            raise KeyError(f"no table {name!r}; tables: {', '.join(self.TABLES)}")
        return getattr(self, name)

    def save(self, directory, *, command: str | None = None, force: bool = False,
             extra_manifest: dict | None = None, figures: dict | None = None):
        """Write every table as CSV, the given figures, then ``manifest.json`` into ``directory``.

        See :func:`sim.results.save_result` (atomic writes; the manifest is written last;
        a complete folder is not overwritten unless ``force``).
        """
        from .results import save_result

        return save_result(self, directory, command=command, force=force,
                           extra_manifest=extra_manifest, figures=figures)


def _summary_table(config, names, money, stage_sums, stage_periods, clv, n_total) -> pd.DataFrame:
    rows = []
    for index, name in enumerate(names):
        total = money[index, M_CLV]
        mean = total / n_total
        variance = max(money[index, M_CLV_SQUARED] / n_total - mean * mean, 0.0) * n_total / max(n_total - 1, 1)
        quantiles = np.quantile(clv[name], QUANTILE_LEVELS)
        periods = stage_periods[index].sum()
        row = {
            "policy": name,
            "customers": config.population.customers,
            "replications": config.run.replications,
            "clv_mean": mean,
            "clv_se": math.sqrt(variance / n_total),
            "clv_sd": math.sqrt(variance),
        }
        row.update({f"clv_p{round(level * 100):02d}": value for level, value in zip(QUANTILE_LEVELS, quantiles)})
        row.update({f"clv{part + 1}": money[index, M_CLV1 + part] / n_total for part in range(6)})
        row["retention_spend"] = money[index, M_SPEND] / n_total
        row["acquisition_cost"] = money[index, M_ACQUISITION] / n_total
        row["satisfaction_mean"] = stage_sums[index, :, K_SATISFACTION].sum() / max(periods, 1)
        rows.append(row)
    return pd.DataFrame(rows)


def _stages_table(names, occupancy, ended_at, n_total) -> pd.DataFrame:
    n_policies, n_times, _ = occupancy.shape
    ended = np.cumsum(ended_at, axis=1)  # customers ended at or before each period
    counts = np.concatenate([occupancy, ended[:, :, None]], axis=2)
    share = counts / n_total
    return pd.DataFrame(
        {
            "policy": np.repeat(np.asarray(names, dtype=object), n_times * len(STATE_NAMES)),
            "period": np.tile(np.repeat(np.arange(n_times), len(STATE_NAMES)), n_policies),
            "stage": np.tile(np.asarray(STATE_NAMES, dtype=object), n_policies * n_times),
            "share": share.reshape(-1),
        }
    )


def _by_stage_table(names, stage_sums, stage_periods) -> pd.DataFrame:
    rows = []
    for index, name in enumerate(names):
        for stage_index, stage in enumerate(STAGES):
            count = stage_periods[index, stage_index]
            sums = stage_sums[index, stage_index]
            denominator = count if count else np.nan
            rows.append(
                {
                    "policy": name,
                    "stage": stage,
                    "customer_periods": int(count),
                    "profit_mean": sums[K_PROFIT] / denominator,
                    "satisfaction_mean": sums[K_SATISFACTION] / denominator,
                    "loyalty_mean": sums[K_LOYALTY] / denominator,
                    "spend_mean": sums[K_SPEND] / denominator,
                }
            )
    return pd.DataFrame(rows)


def _patterns_table(names, pattern_count, pattern_clv, n_total) -> pd.DataFrame:
    rows = []
    for index, name in enumerate(names):
        for pattern_index, pattern in enumerate(PATTERNS):
            count = pattern_count[index, pattern_index]
            rows.append(
                {
                    "policy": name,
                    "pattern": pattern,
                    "customers": int(count),
                    "share": count / n_total,
                    "clv_mean": pattern_clv[index, pattern_index] / count if count else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _trajectory_table(names, period_sums, active, n_total) -> pd.DataFrame:
    n_policies, horizon, _ = period_sums.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        means = period_sums / active[:, :, None]
    return pd.DataFrame(
        {
            "policy": np.repeat(np.asarray(names, dtype=object), horizon),
            "period": np.tile(np.arange(horizon), n_policies),
            "active_share": (active / n_total).reshape(-1),
            "satisfaction_mean": means[:, :, K_SATISFACTION].reshape(-1),
            "loyalty_mean": means[:, :, K_LOYALTY].reshape(-1),
            "spend_mean": means[:, :, K_SPEND].reshape(-1),
            "profit_mean": means[:, :, K_PROFIT].reshape(-1),
        }
    )


def _satisfaction_table(names, satisfaction_bins) -> pd.DataFrame:
    edges = np.round(np.linspace(0.0, 1.0, SATISFACTION_BINS + 1), 12)
    rows = []
    for index, name in enumerate(names):
        by_stage = [(stage, satisfaction_bins[index, stage_index]) for stage_index, stage in enumerate(STAGES)]
        for stage, bins in by_stage + [("all", satisfaction_bins[index].sum(axis=0))]:
            for bin_index in range(SATISFACTION_BINS):
                periods, exits = bins[bin_index]
                rows.append(
                    {
                        "policy": name,
                        "stage": stage,
                        "satisfaction_low": edges[bin_index],
                        "satisfaction_high": edges[bin_index + 1],
                        "customer_periods": int(periods),
                        "retention": 1.0 - exits / periods if periods else np.nan,
                    }
                )
    return pd.DataFrame(rows)


#: ABC groups of the value-concentration table: (name, share of customers), ranked by value.
VALUE_GROUPS = (("A", 0.05), ("B", 0.15), ("C", 0.80))


def _value_table(names, clv, summary) -> pd.DataFrame:
    rows = []
    for index, name in enumerate(names):
        values = np.sort(clv[name])[::-1]
        total = values.sum()
        n = len(values)
        start = 0
        cumulative = 0.0
        for group, share in VALUE_GROUPS:
            cumulative += share
            stop = n if group == VALUE_GROUPS[-1][0] else int(round(cumulative * n))
            group_values = values[start:stop]
            rows.append(
                {
                    "policy": name,
                    "group": group,
                    "customer_share": (stop - start) / n,
                    "value_share": group_values.sum() / total if total else np.nan,
                    "negative_share": float(np.mean(group_values < 0.0)) if len(group_values) else np.nan,
                }
            )
            start = stop
    return pd.DataFrame(rows)


def _comparison_table(names, money, pair_sums, pair_wins, n_total) -> pd.DataFrame:
    rows = []
    for index, name in enumerate(names):
        for other, reference in enumerate(names):
            if index == other:
                continue
            mean = pair_sums[index, other, 0] / n_total
            variance = max(pair_sums[index, other, 1] / n_total - mean * mean, 0.0) * n_total / max(n_total - 1, 1)
            se = math.sqrt(variance / n_total)
            delta_spend = (money[index, M_SPEND] - money[other, M_SPEND]) / n_total
            rows.append(
                {
                    "policy": name,
                    "reference": reference,
                    "delta_clv": mean,
                    "se": se,
                    "ci_low": mean - Z95 * se,
                    "ci_high": mean + Z95 * se,
                    "p_better": pair_wins[index, other] / n_total,
                    "delta_spend": delta_spend,
                    "roi": mean / delta_spend if delta_spend != 0.0 else np.nan,
                }
            )
    return pd.DataFrame(rows)
