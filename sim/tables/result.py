"""The tidy result tables: what the partial aggregates of every engine reduce to.

:class:`ProjectionResult` holds one pandas table per question (summary, stage occupancy,
per-stage means, lifecycle patterns, trajectories, the simulated satisfaction→retention
relation, value concentration, paired comparisons) built from the totals of a
:class:`sim.tables.chunks.ChunkReducer`; :func:`check_finite` makes a numerical failure an
error naming its origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.exceptions import NonFiniteResultError
from sim.model.config import ExperimentConfig
from sim.model.names import PATTERNS, STAGES
from sim.tables.chunks import ChunkReducer, exact_clv_tables
from sim.tables.partials import (
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
)

__all__ = [
    "QUANTILE_LEVELS",
    "STATE_NAMES",
    "Z95",
    "ProjectionResult",
    "NAN_WHEN_EMPTY",
    "check_finite",
    "NONFINITE_HINT",
    "VALUE_GROUPS",
    "COMPARISON_COLUMNS",
]

#: CLV quantiles reported in the summary table.
QUANTILE_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


#: The five states of the stage-occupancy table: the four stages and "ended".
STATE_NAMES = STAGES + ("ended",)


#: Normal quantile for two-sided 95 % intervals.
Z95 = 1.959963984540054


@dataclass
class ProjectionResult:
    """Results of :func:`~sim.project`: tidy pandas tables plus per-customer CLVs.

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
        One row per ordered pair of policies (or, when ``comparison.reference`` is set,
        per policy against that reference): ``policy, reference, delta_clv, se, ci_low,
        ci_high, p_better, delta_spend, roi`` from paired per-customer differences.
        ``roi = delta_clv / delta_spend`` (NaN when the spend is equal); read it with the
        sign of ``delta_spend``: a policy that spends less *and* earns more (it dominates)
        has a negative ``roi``, as does one that spends more and earns less.
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
    def from_partials(
        cls,
        config: ExperimentConfig,
        partials: list[ChunkPartials],
        *,
        wall_seconds: float = float("nan"),
        threads: int = 0,
    ) -> "ProjectionResult":
        """Reduce chunk partials (in the order given: replications, then chunks) into the
        tidy tables (:meth:`from_reducer`), keeping the per-customer CLVs (every one is
        checked finite first).
        """
        names = config.policy_names
        clv = {
            name: np.concatenate([part.clv[index] for part in partials]) for index, name in enumerate(names)
        }
        _check_finite_clv(config, clv)  # before any table is computed from them
        reducer = ChunkReducer(len(names), keep_clv=True)
        for part in partials:
            reducer.add(part)
        del clv
        return cls.from_reducer(config, reducer, wall_seconds=wall_seconds, threads=threads)

    @classmethod
    def from_reducer(
        cls,
        config: ExperimentConfig,
        reducer: ChunkReducer,
        *,
        wall_seconds: float = float("nan"),
        threads: int = 0,
    ) -> "ProjectionResult":
        """The tidy tables from reduced partials (:class:`sim.tables.chunks.ChunkReducer`).

        CLV quantiles and value concentration come from the per-customer CLVs when
        :func:`sim.tables.chunks.exact_clv_tables` holds for ``config`` and the reducer kept
        them (:func:`~sim.project` always keeps them then), else from the reducer's sketch.
        """
        names = config.policy_names
        horizon = config.run.horizon
        n_total = config.population.customers * config.run.replications
        totals = reducer.totals
        money = totals["money"]
        stage_sums = totals["stage_sums"]
        stage_periods = totals["stage_periods"]
        period_sums = totals["period_sums"]
        occupancy = totals["occupancy"]
        ended_at = totals["ended_at"]
        pattern_count = totals["pattern_count"]
        pattern_clv = totals["pattern_clv"]
        pair_sums = totals["pair_sums"]
        pair_wins = totals["pair_wins"]
        satisfaction_bins = totals["satisfaction_bins"]
        clv = reducer.clv(names)
        _check_finite_clv(config, clv)  # before any table is computed from them
        distribution = _ExactClv(clv) if exact_clv_tables(config) and reducer.keep_clv else reducer.sketch

        summary = _summary_table(config, names, money, stage_sums, stage_periods, distribution, n_total)
        stages = _stages_table(names, occupancy, ended_at, n_total)
        active = occupancy[:, :horizon, :].sum(axis=2)
        result = cls(
            config=config,
            summary=summary,
            stages=stages,
            by_stage=_by_stage_table(names, stage_sums, stage_periods),
            patterns=_patterns_table(names, pattern_count, pattern_clv, n_total),
            trajectory=_trajectory_table(names, period_sums, active, n_total),
            satisfaction_retention=_satisfaction_table(names, satisfaction_bins),
            value_concentration=_value_table(names, distribution),
            comparison=_comparison_table(
                names, money, pair_sums, pair_wins, n_total, reference=config.comparison.reference
            ),
            clv=clv,
            timings={"simulate_seconds": wall_seconds, "threads": threads},
        )
        check_finite(result)  # NaN or infinity is an error naming its origin, never silent
        return result

    def table(self, name: str) -> pd.DataFrame:
        """One of the tables by name (see :attr:`TABLES`)."""
        if name not in self.TABLES:
            raise KeyError(f"no table {name!r}; tables: {', '.join(self.TABLES)}")
        return getattr(self, name)

    def save(
        self,
        directory,
        *,
        command: str | None = None,
        force: bool = False,
        extra_manifest: dict | None = None,
        figures: dict | None = None,
    ):
        """Write every table as CSV, the given figures, then ``manifest.json`` into ``directory``.

        See :func:`sim.io.results.save_result` (atomic writes; the manifest is written last;
        a complete folder is not overwritten unless ``force``).
        """
        from sim.io.results import save_result

        return save_result(
            self, directory, command=command, force=force, extra_manifest=extra_manifest, figures=figures
        )


#: The only cells of the tables that may be NaN, by definition (the mean of an empty
#: group): ``{table: {column: count column}}``; the cell may be NaN only in rows where the
#: count column is 0. ``None`` instead of a count column: NaN only if the column is NaN in
#: every row of that policy (``value_share`` when the policy's CLVs sum to exactly 0).
#: Everything else — the whole ``summary`` and ``stages`` tables, every per-customer CLV —
#: must be finite, and no cell may ever be infinite.
NAN_WHEN_EMPTY = {
    "by_stage": {
        column: "customer_periods"
        for column in ("profit_mean", "satisfaction_mean", "loyalty_mean", "spend_mean")
    },
    "patterns": {"clv_mean": "customers"},
    "trajectory": {
        column: "active_share"
        for column in ("satisfaction_mean", "loyalty_mean", "spend_mean", "profit_mean")
    },
    "satisfaction_retention": {"retention": "customer_periods"},
    "value_concentration": {"negative_share": "customer_share", "value_share": None},
    "comparison": {"roi": "delta_spend"},
}


_ROW_KEYS = ("policy", "reference", "stage", "period", "pattern", "group", "satisfaction_low")


def check_finite(result) -> None:
    """Raise :class:`~sim.exceptions.NonFiniteResultError` if ``result`` holds NaN or infinity
    where it must not.

    Checks every per-customer CLV (naming policy, replication and customer of the first
    bad one), then every numeric column of every table; NaN is allowed only in the
    empty-group cells listed in :data:`NAN_WHEN_EMPTY`.
    """
    _check_finite_clv(result.config, result.clv)
    for name in sorted(result.TABLES, key=lambda table: table == "summary"):  # the most specific table first
        frame = result.table(name)
        allowed = NAN_WHEN_EMPTY.get(name, {})
        for column in frame.columns:
            values = frame[column]
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                continue
            array = values.to_numpy(dtype=float)
            bad = ~np.isfinite(array)
            if not bad.any():
                continue
            if column in allowed:
                count = allowed[column]
                if count is None:
                    empty = values.isna().groupby(frame["policy"]).transform("all").to_numpy(dtype=bool)
                else:
                    empty = frame[count].to_numpy(dtype=float) == 0.0
                bad &= ~(np.isnan(array) & empty)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                keys = ", ".join(
                    f"{key} {_shown(frame[key].iloc[row])}" for key in _ROW_KEYS if key in frame.columns
                )
                raise NonFiniteResultError(
                    f"{name}.{column} is {array[row]} in row {row} ({keys}); {NONFINITE_HINT}"
                )


NONFINITE_HINT = (
    "the model produced NaN or infinity: a numerical failure, not a property of the experiment; "
    "parameters at the limits of their ranges are the usual cause (please report it with the config)"
)


def _check_finite_clv(config, clv: dict) -> None:
    """Every per-customer CLV finite, else :class:`NonFiniteResultError` naming the first bad one."""
    n_customers = config.population.customers
    n_replications = config.run.replications
    for policy, values in clv.items():
        bad = ~np.isfinite(values)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            where = f"customer index {index}"
            if len(values) == n_customers * n_replications:
                replication, customer = divmod(index, n_customers)
                where = f"replication {replication}, customer {customer}"
            raise NonFiniteResultError(
                f"CLV of policy {policy!r} is {values[index]} for {where} "
                f"({int(bad.sum())} of {len(values)} customers non-finite); {NONFINITE_HINT}"
            )


def _shown(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


class _ExactClv:
    """The per-customer CLVs behind the same two questions a :class:`ClvSketch` answers."""

    def __init__(self, clv: dict):
        self.values = list(clv.values())

    def total(self, policy: int) -> int:
        return len(self.values[policy])

    def quantiles(self, policy: int, levels) -> np.ndarray:
        return np.quantile(self.values[policy], levels)

    def top_group_sums(self, policy: int, stops) -> tuple[np.ndarray, np.ndarray]:
        ranked = np.sort(self.values[policy])[::-1]
        sums, negatives, start = [], [], 0
        for stop in stops:
            sums.append(ranked[start:stop].sum())
            negatives.append(int(np.sum(ranked[start:stop] < 0.0)))
            start = stop
        return np.array(sums), np.array(negatives, dtype=np.int64)


def _summary_table(config, names, money, stage_sums, stage_periods, distribution, n_total) -> pd.DataFrame:
    rows = []
    for index, name in enumerate(names):
        total = money[index, M_CLV]
        mean = total / n_total
        variance = (
            max(money[index, M_CLV_SQUARED] / n_total - mean * mean, 0.0) * n_total / max(n_total - 1, 1)
        )
        quantiles = distribution.quantiles(
            index, QUANTILE_LEVELS
        )  # exact, or within 2^-10 (sim.tables.sketch)
        periods = stage_periods[index].sum()
        row = {
            "policy": name,
            "customers": config.population.customers,
            "replications": config.run.replications,
            "clv_mean": mean,
            "clv_se": math.sqrt(variance / n_total),
            "clv_sd": math.sqrt(variance),
        }
        row.update(
            {f"clv_p{round(level * 100):02d}": value for level, value in zip(QUANTILE_LEVELS, quantiles)}
        )
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
        by_stage = [
            (stage, satisfaction_bins[index, stage_index]) for stage_index, stage in enumerate(STAGES)
        ]
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


def _value_table(names, distribution) -> pd.DataFrame:
    """ABC groups (:data:`VALUE_GROUPS`) of customers ranked by CLV: exact from the
    per-customer CLVs, or from the CLV sketch with group sums within ``2^-10`` of the group's
    sum of ``|CLV|`` (value shares of the sketch's total, so they add to 1) and exact
    negative shares (:mod:`sim.tables.sketch`).
    """
    rows = []
    for index, name in enumerate(names):
        n = distribution.total(index)
        stops = []
        cumulative = 0.0
        for group, share in VALUE_GROUPS:
            cumulative += share
            stops.append(n if group == VALUE_GROUPS[-1][0] else int(round(cumulative * n)))
        sums, negatives = distribution.top_group_sums(index, stops)
        if isinstance(distribution, _ExactClv):
            total = np.sort(distribution.values[index])[::-1].sum()
        else:
            total = float(sums.sum())
        start = 0
        for (group, _), stop, value, negative in zip(VALUE_GROUPS, stops, sums, negatives):
            count = stop - start
            rows.append(
                {
                    "policy": name,
                    "group": group,
                    "customer_share": count / n if n else np.nan,
                    "value_share": value / total if total else np.nan,
                    "negative_share": negative / count if count else np.nan,
                }
            )
            start = stop
    return pd.DataFrame(rows)


#: Columns of the ``comparison`` table (one row per ordered pair of policies).
COMPARISON_COLUMNS = [
    "policy",
    "reference",
    "delta_clv",
    "se",
    "ci_low",
    "ci_high",
    "p_better",
    "delta_spend",
    "roi",
]


def _comparison_table(names, money, pair_sums, pair_wins, n_total, reference=None) -> pd.DataFrame:
    rows = []
    for index, name in enumerate(names):
        for other, reference_name in enumerate(names):
            if index == other or (reference is not None and reference_name != reference):
                continue
            mean = pair_sums[index, other, 0] / n_total
            variance = (
                max(pair_sums[index, other, 1] / n_total - mean * mean, 0.0) * n_total / max(n_total - 1, 1)
            )
            se = math.sqrt(variance / n_total)
            delta_spend = (money[index, M_SPEND] - money[other, M_SPEND]) / n_total
            rows.append(
                {
                    "policy": name,
                    "reference": reference_name,
                    "delta_clv": mean,
                    "se": se,
                    "ci_low": mean - Z95 * se,
                    "ci_high": mean + Z95 * se,
                    "p_better": pair_wins[index, other] / n_total,
                    "delta_spend": delta_spend,
                    "roi": mean / delta_spend if delta_spend != 0.0 else np.nan,
                }
            )
    # one policy: no pairs, but the same columns, so the written CSV loads like any other
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
