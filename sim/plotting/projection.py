"""Plots drawn from the tidy tables: every function is ``plot_*(table, ..., ax=None) -> Axes``.

No model logic lives here: each function reads a table of :class:`sim.ProjectionResult`
and draws it. One palette for the lifecycle stages is used everywhere.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sim.model.names import STAGES
from sim.tables.result import Z95

__all__ = [
    "STAGE_COLORS",
    "plot_stage_occupancy",
    "plot_clv_by_policy",
    "plot_clv_parts",
    "plot_patterns",
    "plot_satisfaction_retention",
    "result_figure",
    "plot_comparison_forest",
    "plot_frontier",
    "plot_response",
    "plot_sweep",
]

#: One colour per state, used by every plot (exploration → decline, then ended).
STAGE_COLORS = {
    "exploration": "#9ecae1",
    "formation": "#4292c6",
    "stability": "#08519c",
    "decline": "#fd8d3c",
    "ended": "#d9d9d9",
}
_PART_COLORS = ["#1b9e77", "#66a61e", "#7570b3", "#e7298a", "#e6ab02", "#a6761d"]


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0))
    return ax


def _style(ax, title: str, xlabel: str, ylabel: str):
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def plot_stage_occupancy(
    stages: pd.DataFrame, policy: str | None = None, ax=None, *, period_label: str = "period (months)"
):
    """Stacked shares of the cohort in each lifecycle stage (and ended) over time.

    Parameters
    ----------
    stages
        The ``stages`` table (``policy, period, stage, share``).
    policy
        Which policy to draw; the first one if omitted.
    """
    ax = _axes(ax)
    policy = policy if policy is not None else stages["policy"].iloc[0]
    wide = stages[stages["policy"] == policy].pivot(index="period", columns="stage", values="share")
    order = [stage for stage in list(STAGES) + ["ended"] if stage in wide.columns]
    ax.stackplot(
        wide.index, [wide[stage] for stage in order], labels=order, colors=[STAGE_COLORS[s] for s in order]
    )
    ax.set_xlim(wide.index.min(), wide.index.max())
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=1)
    return _style(ax, f"Stage occupancy — {policy}", period_label, "share of cohort")


def plot_clv_by_policy(summary: pd.DataFrame, ax=None):
    """Mean CLV per policy with 95 % confidence intervals (±1.96 SE).

    Parameters
    ----------
    summary
        The ``summary`` table (``policy, clv_mean, clv_se``).
    """
    ax = _axes(ax)
    positions = np.arange(len(summary))
    ax.bar(positions, summary["clv_mean"], color="#4292c6", width=0.6)
    ax.errorbar(
        positions, summary["clv_mean"], yerr=Z95 * summary["clv_se"], fmt="none", ecolor="black", capsize=4
    )
    ax.set_xticks(positions, summary["policy"], rotation=20, ha="right")
    ax.axhline(0, color="black", linewidth=0.8)
    return _style(ax, "Mean CLV per customer (95 % CI)", "policy", "CLV (money units)")


def plot_clv_parts(summary: pd.DataFrame, ax=None):
    """CLV decomposition per policy: CLV1..CLV6 stacked up, spend and acquisition down,
    with the net CLV marked.

    Parameters
    ----------
    summary
        The ``summary`` table (``clv1`` … ``clv6``, ``retention_spend``, ``acquisition_cost``, ``clv_mean``).
    """
    ax = _axes(ax)
    positions = np.arange(len(summary))
    positive = np.zeros(len(summary))
    negative = np.zeros(len(summary))
    labels = [
        "CLV1 initial",
        "CLV2 repeat",
        "CLV3 cross-sell",
        "CLV4 cost to serve",
        "CLV5 referrals",
        "CLV6 price premium",
    ]
    for part, (label, color) in enumerate(zip(labels, _PART_COLORS), start=1):
        values = summary[f"clv{part}"].to_numpy()
        bottoms = np.where(values >= 0, positive, negative)
        ax.bar(positions, values, bottom=bottoms, color=color, width=0.6, label=label)
        positive += np.where(values >= 0, values, 0)
        negative += np.where(values < 0, values, 0)
    for column, label, color in (
        ("retention_spend", "retention spend", "#bdbdbd"),
        ("acquisition_cost", "acquisition", "#636363"),
    ):
        values = -summary[column].to_numpy()
        ax.bar(positions, values, bottom=negative, color=color, width=0.6, label=label)
        negative += values
    ax.scatter(positions, summary["clv_mean"], color="black", marker="D", zorder=3, label="net CLV")
    ax.set_xticks(positions, summary["policy"], rotation=20, ha="right")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _style(ax, "CLV decomposition (present value per customer)", "policy", "money units")


def plot_patterns(patterns: pd.DataFrame, ax=None):
    """Lifecycle patterns I–IV: share of customers per policy (bars).

    Parameters
    ----------
    patterns
        The ``patterns`` table (``policy, pattern, share``).
    """
    ax = _axes(ax)
    wide = patterns.pivot(index="pattern", columns="policy", values="share")
    width = 0.8 / max(len(wide.columns), 1)
    for index, policy in enumerate(wide.columns):
        ax.bar(np.arange(len(wide)) + index * width, wide[policy], width=width, label=policy)
    ax.set_xticks(np.arange(len(wide)) + 0.4 - width / 2, [f"pattern {p}" for p in wide.index])
    ax.legend(fontsize=8, frameon=False)
    return _style(ax, "Lifecycle patterns", "", "share of customers")


def plot_satisfaction_retention(
    satisfaction_retention: pd.DataFrame, policy: str | None = None, stage: str = "stability", ax=None
):
    """Simulated per-period retention against satisfaction (the satisfaction→loyalty curve
    as it shows in behaviour): flat in the zone of indifference, steep at the top.

    Parameters
    ----------
    satisfaction_retention
        The ``satisfaction_retention`` table.
    policy, stage
        Which policy (first if omitted) and stage (``"all"`` pools the stages).
    """
    ax = _axes(ax)
    table = satisfaction_retention
    policy = policy if policy is not None else table["policy"].iloc[0]
    rows = table[(table["policy"] == policy) & (table["stage"] == stage) & (table["customer_periods"] >= 30)]
    middle = (rows["satisfaction_low"] + rows["satisfaction_high"]) / 2
    ax.plot(middle, rows["retention"], marker="o", color=STAGE_COLORS.get(stage, "#08519c"))
    ax.set_xlim(0, 1)
    return _style(
        ax, f"Retention by satisfaction — {stage}, {policy}", "satisfaction", "P(no exit this period)"
    )


def result_figure(result, policy: str | None = None):
    """The overview figure of a run: stage occupancy, CLV by policy, CLV parts and the
    satisfaction→retention relation, on one 2×2 page. Returns the Figure.
    """
    figure, axes = plt.subplots(2, 2, figsize=(13, 8.5), layout="constrained")
    plot_stage_occupancy(result.stages, policy=policy, ax=axes[0, 0])
    plot_clv_by_policy(result.summary, ax=axes[0, 1])
    plot_clv_parts(result.summary, ax=axes[1, 0])
    plot_satisfaction_retention(result.satisfaction_retention, policy=policy, ax=axes[1, 1])
    figure.suptitle(
        f"{result.config.name}: {result.config.population.customers:,} customers × "
        f"{result.config.run.replications} replications, {result.config.run.horizon} periods",
        fontsize=12,
    )
    return figure


# --------------------------------------------------------------------------- policy experiments
# (sim.experiments.comparison and sim.experiments.optimize: paired comparisons, frontiers, response curves,
# sweeps)


def plot_comparison_forest(comparison: pd.DataFrame, reference: str | None = None, ax=None):
    """Forest plot of paired ΔCLV against one reference policy, with 95 % confidence intervals.

    The intervals are the paired (common-random-numbers) ones of the ``comparison``
    table: ``delta_clv`` ± 1.96 ``se`` over per-customer differences.

    Parameters
    ----------
    comparison
        A ``comparison`` table (``policy, reference, delta_clv, ci_low, ci_high``).
    reference
        The reference policy drawn; by default the table's only reference, or the
        first policy when the table holds every pair.
    """
    ax = _axes(ax)
    if comparison.empty:
        return _style(ax, "Paired ΔCLV (no pairs)", "ΔCLV per customer", "")
    if reference is None:  # the table's only reference, else the first policy of an all-pairs table
        references = comparison["reference"].unique()
        reference = references[0] if len(references) == 1 else comparison["policy"].iloc[0]
    rows = comparison[comparison["reference"] == reference].sort_values("delta_clv")
    positions = np.arange(len(rows))
    errors = np.vstack([rows["delta_clv"] - rows["ci_low"], rows["ci_high"] - rows["delta_clv"]])
    colors = np.where(rows["ci_low"] > 0, "#1b7837", np.where(rows["ci_high"] < 0, "#b2182b", "#636363"))
    for position, x, error, color in zip(positions, rows["delta_clv"], errors.T, colors):
        ax.errorbar([x], [position], xerr=error.reshape(2, 1), fmt="s", color=color, ecolor=color, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(positions, rows["policy"])
    ax.grid(axis="x", visible=True, alpha=0.3)
    ax.grid(axis="y", visible=False)
    return _style(ax, f"Paired ΔCLV vs {reference} (95 % CI)", "ΔCLV per customer (money units)", "")


def plot_frontier(frontier: pd.DataFrame, ax=None):
    """Efficient frontier: mean CLV (net of spend) against retention spend per policy.

    Efficient policies (no other policy spends less and earns more) are joined by a line;
    error bars are 95 % CIs of the mean CLV.

    Parameters
    ----------
    frontier
        A ``frontier`` table (``policy, retention_spend, clv_mean, clv_se, efficient``).
    """
    ax = _axes(ax)
    table = frontier.sort_values("retention_spend")
    ax.errorbar(
        table["retention_spend"],
        table["clv_mean"],
        yerr=Z95 * table["clv_se"],
        fmt="o",
        color="#4292c6",
        ecolor="#9ecae1",
        capsize=3,
    )
    efficient = table[table["efficient"].astype(bool)]
    ax.plot(
        efficient["retention_spend"],
        efficient["clv_mean"],
        color="#08519c",
        linewidth=1.5,
        label="efficient frontier",
    )
    for index, row in enumerate(table.itertuples()):  # alternate sides so neighbours do not overlap
        ax.annotate(
            row.policy,
            (row.retention_spend, row.clv_mean),
            textcoords="offset points",
            xytext=(5, -10) if index % 2 == 0 else (5, 5),
            fontsize=7,
        )
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return _style(
        ax,
        "Spend vs CLV across policies",
        "retention spend per customer (present value)",
        "mean CLV net of spend",
    )


def plot_response(response: pd.DataFrame, ax=None, *, delta: bool = False):
    """Spend-response curves: mean CLV against the spend in one stage (others held fixed).

    docs/model.md §5.4 expects each curve to rise, peak and fall ("too little and too much
    both lose"). The spend found by the optimiser is marked with a star on each curve.

    Parameters
    ----------
    response
        A ``response`` table (``stage, segment, spend, clv_mean, clv_se``, and
        ``delta_clv, delta_se, is_optimum``).
    delta
        Draw the paired difference to the optimum (``delta_clv`` ± 1.96 ``delta_se``)
        instead of the CLV level.
    """
    ax = _axes(ax)
    value, spread = ("delta_clv", "delta_se") if delta else ("clv_mean", "clv_se")
    for (stage, segment), rows in response.groupby(["stage", "segment"], sort=False):
        rows = rows.sort_values("spend")
        label = stage if segment == "all" else f"{stage}, {segment}"
        color = STAGE_COLORS.get(stage)
        line = ax.plot(
            rows["spend"],
            rows[value],
            marker=".",
            color=color,
            label=label,
            linestyle="-" if segment in ("all", "relationship") else "--",
        )[0]
        ax.fill_between(
            rows["spend"],
            rows[value] - Z95 * rows[spread],
            rows[value] + Z95 * rows[spread],
            color=line.get_color(),
            alpha=0.15,
            linewidth=0,
        )
        best = rows[rows["is_optimum"].astype(bool)] if "is_optimum" in rows else rows.iloc[0:0]
        ax.scatter(
            best["spend"], best[value], marker="*", s=120, color=line.get_color(), edgecolor="black", zorder=3
        )
    ax.legend(fontsize=8, frameon=False)
    ylabel = "ΔCLV vs the optimum" if delta else "mean CLV net of spend"
    return _style(
        ax, "Spend response per stage (others at the optimum)", "spend per period in the stage", ylabel
    )


def plot_sweep(sweep: pd.DataFrame, parameter: str, value: str = "clv_mean", by=("policy",), ax=None):
    """One line per policy (and per value of the other ``by`` columns) of a swept
    quantity against a swept parameter; 95 % CIs when ``value`` is ``clv_mean``.

    Parameters
    ----------
    sweep
        A ``sweep`` table (one row per grid point and policy; swept values as columns).
    parameter
        The swept column on the x axis, e.g. ``"economics.annual_discount_rate"``.
    value
        The column drawn (``clv_mean``, ``retention_spend``, ``satisfaction_mean`` …).
    by
        Columns whose values each get their own line.
    """
    ax = _axes(ax)
    by = [column for column in by if column in sweep.columns and column != parameter]
    groups = sweep.groupby(by, sort=False) if by else [((), sweep)]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    first_values = list(dict.fromkeys(sweep[by[0]])) if by else []
    rest_values = list(dict.fromkeys(map(tuple, sweep[by[1:]].to_numpy()))) if len(by) > 1 else [()]
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]
    for key, rows in groups:
        rows = rows.sort_values(parameter)
        key = key if isinstance(key, tuple) else (key,)
        colour = colours[first_values.index(key[0]) % len(colours)] if by else None
        linestyle, marker = styles[rest_values.index(tuple(key[1:])) % len(styles)] if by else styles[0]
        label = (
            ", ".join(
                f"{k}" if column == "policy" else f"{column.rsplit('.', 1)[-1]}={k}"
                for column, k in zip(by, key)
            )
            or value
        )
        yerr = Z95 * rows["clv_se"] if value == "clv_mean" and "clv_se" in rows else None
        ax.errorbar(
            rows[parameter],
            rows[value],
            yerr=yerr,
            marker=marker,
            linestyle=linestyle,
            color=colour,
            capsize=3,
            label=label,
        )
    ax.legend(fontsize=7, frameon=False)
    return _style(ax, f"{value} across the sweep", parameter, value)
