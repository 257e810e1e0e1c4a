"""Plots of the lifecycle model's figures: ``plot_*(table, ..., ax=None) -> Axes`` on the tidy
tables the gallery builds (lifecycle curve, patterns, the satisfaction→loyalty curve,
retention by satisfaction, net CLV, spend response, Lorenz curve, closed-form validations,
market series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.model.names import PATTERNS, STAGES
from sim.tables.result import Z95

__all__ = [
    "plot_lifecycle_curve",
    "plot_pattern_bars",
    "plot_loyalty_curve",
    "plot_retention_by_satisfaction",
    "plot_satisfaction_over_time",
    "plot_net_clv",
    "plot_response_curve",
    "plot_lorenz",
    "plot_markov_validation",
    "plot_survival_validation",
    "plot_market_series",
]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.0, 4.0))
    return ax


def _shade_zones(ax, defection: float, affection: float, *, labels: bool = True) -> None:
    """Shade the Jones & Sasser zones (defection, indifference, affection) of (M6)."""
    for low, high, color, name in (
        (0.0, defection, "#fde0dd", "defection"),
        (defection, affection, "#f0f0f0", "indifference"),
        (affection, 1.0, "#e5f5e0", "affection"),
    ):
        ax.axvspan(low, high, color=color, zorder=0, linewidth=0)
        if labels:
            ax.text(
                (low + high) / 2,
                0.98,
                name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=7,
                color="#525252",
            )


def plot_lifecycle_curve(
    table: pd.DataFrame, value: str = "loyalty_mean", ax=None, *, policy: str | None = None
):
    """The lifecycle curve: a per-customer-period mean against tenure, one line per stage.

    Lines are coloured by stage (:data:`sim.plotting.projection.STAGE_COLORS`); the black dashed line
    pools the stages (the cohort's active customers).

    Parameters
    ----------
    table
        A :func:`~sim.plotting.gallery.tenure_stage_table` (``policy, tenure_mid, stage, <value>``).
    value
        ``"loyalty_mean"`` (relationship level, M6) or ``"profit_mean"`` (profit per period).
    policy
        Which policy (the first in the table if omitted).
    """
    from sim.plotting.projection import STAGE_COLORS

    ax = _axes(ax)
    policy = policy if policy is not None else table["policy"].iloc[0]
    rows = table[table["policy"] == policy]
    for stage in list(STAGES) + ["all"]:
        line = rows[rows["stage"] == stage].sort_values("tenure_mid")
        if line.empty:
            continue
        if stage == "all":
            ax.plot(
                line["tenure_mid"],
                line[value],
                color="black",
                linestyle="--",
                linewidth=1.2,
                label="all active",
            )
        else:
            ax.plot(
                line["tenure_mid"],
                line[value],
                color=STAGE_COLORS[stage],
                marker="o",
                markersize=2.5,
                label=stage,
            )
    ax.set_xlabel("tenure (periods since acquisition)")
    ax.set_ylabel(
        {
            "loyalty_mean": "relationship level (mean loyalty)",
            "profit_mean": "profit per customer-period",
        }.get(value, value)
    )
    if value == "profit_mean":
        ax.axhline(0.0, color="black", linewidth=0.6)
    ax.legend(ncols=1)
    return ax


def plot_pattern_bars(patterns: pd.DataFrame, value: str = "share", ax=None, *, colors: dict | None = None):
    """Lifecycle patterns I–IV: one bar per policy and pattern of ``value`` (``share`` or
    ``clv_mean``).

    Pattern I ended in exploration, II in formation, III reached stability but ended early,
    IV is long-term (docs/model.md §1.3). Parameters: the ``patterns`` table.
    """
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    policies = list(dict.fromkeys(patterns["policy"]))
    colors = colors or policy_colors(policies)
    width = 0.8 / max(len(policies), 1)
    positions = np.arange(len(PATTERNS))
    for index, policy in enumerate(policies):
        rows = patterns[patterns["policy"] == policy].set_index("pattern").reindex(list(PATTERNS))
        ax.bar(
            positions + (index - (len(policies) - 1) / 2) * width,
            rows[value],
            width=width,
            color=colors[policy],
            label=policy,
        )
    ax.set_xticks(positions, [f"{p}" for p in PATTERNS])
    ax.set_xlabel("lifecycle pattern")
    ax.set_ylabel({"share": "share of customers", "clv_mean": "mean CLV of the pattern"}.get(value, value))
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.legend()
    return ax


def plot_loyalty_curve(curve: pd.DataFrame, ax=None):
    """The satisfaction→loyalty curve of the model (M6), with its three zones shaded.

    Parameters
    ----------
    curve
        A :func:`~sim.plotting.gallery.loyalty_curve_table` (``satisfaction, loyalty, zone``).
    """
    ax = _axes(ax)
    defection = curve.loc[curve["zone"] != "defection", "satisfaction"].min()
    affection = curve.loc[curve["zone"] == "affection", "satisfaction"].min()
    _shade_zones(ax, defection, affection)
    ax.plot(curve["satisfaction"], curve["loyalty"], color="#08519c", linewidth=2.0)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("satisfaction")
    ax.set_ylabel("loyalty (model input, M6)")
    ax.grid(axis="x", visible=False)
    return ax


def plot_retention_by_satisfaction(
    simulated: pd.DataFrame, ax=None, *, zones: tuple[float, float] | None = None
):
    """Simulated per-period retention (no exit move) against satisfaction, one line per stage.

    Parameters
    ----------
    simulated
        Rows of the ``satisfaction_retention`` table (``stage, satisfaction_low,
        satisfaction_high, retention``), already filtered to one policy.
    zones
        ``(defection, affection)`` thresholds to shade, if given.
    """
    from sim.plotting.projection import STAGE_COLORS

    ax = _axes(ax)
    if zones is not None:
        _shade_zones(ax, *zones)
    for stage in list(STAGES) + ["all"]:
        rows = simulated[simulated["stage"] == stage].sort_values("satisfaction_low")
        if rows.empty:
            continue
        middle = (rows["satisfaction_low"] + rows["satisfaction_high"]) / 2
        style = dict(color="black", linestyle="--") if stage == "all" else dict(color=STAGE_COLORS[stage])
        ax.plot(
            middle, rows["retention"], marker="o", label="all stages" if stage == "all" else stage, **style
        )
    ax.set_xlim(0, 1)
    ax.set_xlabel("satisfaction (bin midpoint)")
    ax.set_ylabel("simulated P(no exit this period)")
    ax.legend(loc="lower right")
    ax.grid(axis="x", visible=False)
    return ax


def plot_satisfaction_over_time(trajectory: pd.DataFrame, ax=None, *, colors: dict | None = None):
    """Mean satisfaction of the active customers per period, one line per policy
    (``trajectory`` table: ``policy, period, satisfaction_mean``).
    """
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    policies = list(dict.fromkeys(trajectory["policy"]))
    colors = colors or policy_colors(policies)
    for policy in policies:
        rows = trajectory[trajectory["policy"] == policy]
        ax.plot(rows["period"], rows["satisfaction_mean"], color=colors[policy], label=policy)
    ax.set_xlabel("period")
    ax.set_ylabel("mean satisfaction of active customers")
    ax.legend()
    return ax


def plot_net_clv(values: pd.DataFrame, ax=None, *, colors: dict | None = None):
    """Net CLV per policy with 95 % CIs; each bar is labelled with the policy's retention
    spend and mean satisfaction (``policy, clv_mean, ci_low, ci_high, retention_spend,
    satisfaction_mean``).
    """
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    policies = list(values["policy"])
    colors = colors or policy_colors(policies)
    positions = np.arange(len(values))
    ax.bar(positions, values["clv_mean"], color=[colors[p] for p in policies], width=0.6)
    errors = np.vstack([values["clv_mean"] - values["ci_low"], values["ci_high"] - values["clv_mean"]])
    ax.errorbar(positions, values["clv_mean"], yerr=errors, fmt="none", ecolor="black")
    for x, row in zip(positions, values.itertuples()):
        ax.annotate(
            f"spend {row.retention_spend:.0f}\nsat. {row.satisfaction_mean:.2f}",
            (x, row.ci_high),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(positions, policies)
    ax.set_ylabel("net CLV per customer (95 % CI)")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.margins(y=0.15)
    return ax


def plot_response_curve(response: pd.DataFrame, stage: str, ax=None):
    """ΔCLV against the spend per period in one stage (others at the base policy), with
    the paired 95 % band, the optimum (star), the base policy's spend (open circle) and
    the spend that maximises perceived performance (M1; dotted line).

    Parameters
    ----------
    response
        The ``spend_response`` table (``stage, spend, delta_clv, ci_low, ci_high,
        is_optimum, is_base, care_peak_spend``).
    """
    from sim.plotting.projection import STAGE_COLORS

    ax = _axes(ax)
    rows = response[response["stage"] == stage].sort_values("spend")
    color = STAGE_COLORS.get(stage, "#08519c")
    ax.fill_between(rows["spend"], rows["ci_low"], rows["ci_high"], color=color, alpha=0.25, linewidth=0)
    ax.plot(rows["spend"], rows["delta_clv"], color=color, marker="o", markersize=3)
    best = rows[rows["is_optimum"].astype(bool)]
    ax.scatter(
        best["spend"],
        best["delta_clv"],
        marker="*",
        s=160,
        color=color,
        edgecolor="black",
        zorder=3,
        label="best spend on the grid",
    )
    for row in best.itertuples():
        ax.annotate(
            f"{row.spend:g}",
            (row.spend, row.delta_clv),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
            fontweight="bold",
        )
    base = rows[rows["is_base"].astype(bool)]
    ax.scatter(
        base["spend"],
        base["delta_clv"],
        marker="o",
        s=45,
        facecolor="white",
        edgecolor="black",
        zorder=3,
        label="base policy",
    )
    if "care_peak_spend" in rows and len(rows):
        ax.axvline(
            rows["care_peak_spend"].iloc[0],
            color="#636363",
            linestyle=":",
            linewidth=1.0,
            label="peak of care response (M1)",
        )
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_title(stage)
    ax.set_xlabel(f"spend per period in {stage}")
    ax.set_ylabel("ΔCLV vs base (95 % CI)")
    ax.legend(loc="lower left")
    return ax


def plot_lorenz(
    lorenz: pd.DataFrame, ax=None, *, reference: pd.DataFrame | None = None, colors: dict | None = None
):
    """Value concentration: cumulative share of total CLV against the share of customers
    ranked by CLV (highest first), one line per policy, with the ABC rule of thumb (top 5 %
    give 50 %, next 15 % give 30 %, bottom 80 % give 20 %) as markers.

    Parameters
    ----------
    lorenz
        A :func:`~sim.plotting.gallery.lorenz_table` (``policy, customer_share, value_share``).
    reference
        Points ``customer_share, value_share`` of the rule of thumb to draw.
    """
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    policies = list(dict.fromkeys(lorenz["policy"]))
    colors = colors or policy_colors(policies)
    for policy in policies:
        rows = lorenz[lorenz["policy"] == policy]
        ax.plot(rows["customer_share"], rows["value_share"], color=colors[policy], label=policy)
    if reference is not None:
        ax.plot(
            reference["customer_share"],
            reference["value_share"],
            color="#636363",
            linestyle=":",
            marker="D",
            markersize=5,
            label="ABC rule 5/15/80 → 50/30/20",
        )
    ax.plot([0, 1], [0, 1], color="#bdbdbd", linewidth=0.8, label="equal value")
    for x in (0.05, 0.20):
        ax.axvline(x, color="#d9d9d9", linewidth=0.8, zorder=0)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of customers (ranked by CLV, highest first)")
    ax.set_ylabel("cumulative share of total CLV")
    ax.legend(loc="lower right")
    return ax


def plot_markov_validation(
    exact: pd.DataFrame, simulated: pd.DataFrame, ax=None, *, colors: dict | None = None
):
    """Closed-form Markov-chain CLV (lines; Pfeifer & Carraway 2000) against the simulated
    mean CLV (points with 95 % CIs) over the horizon, one colour per policy.

    Parameters
    ----------
    exact
        ``policy, horizon, exact_clv``.
    simulated
        ``policy, horizon, simulated_clv, simulated_se``.
    """
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    policies = list(dict.fromkeys(exact["policy"]))
    colors = colors or policy_colors(policies)
    for policy in policies:
        line = exact[exact["policy"] == policy]
        ax.plot(
            line["horizon"],
            line["exact_clv"],
            color=colors[policy],
            linewidth=1.2,
            label=f"{policy}: closed form",
        )
        points = simulated[simulated["policy"] == policy]
        ax.errorbar(
            points["horizon"],
            points["simulated_clv"],
            yerr=Z95 * points["simulated_se"],
            fmt="o",
            color=colors[policy],
            markerfacecolor="white",
            label=f"{policy}: simulated",
        )
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("horizon H (periods)")
    ax.set_ylabel("expected CLV of a new customer")
    ax.legend(ncols=2, fontsize=7)
    return ax


def plot_survival_validation(survival: pd.DataFrame, ax=None):
    """Cohort survival: observed counts (filled: fitted; open: hold-out), the fitted
    shifted-beta-geometric curve and the simulated cohort with 95 % CIs.

    Parameters
    ----------
    survival
        ``period, observed_survival, observed_role, fitted_survival, simulated_survival,
        simulated_se``.
    """
    ax = _axes(ax)
    ax.plot(survival["period"], survival["fitted_survival"], color="#08519c", linewidth=1.5, label="sBG fit")
    fitted = survival[survival["observed_role"] == "fit"]
    holdout = survival[survival["observed_role"] == "holdout"]
    ax.scatter(
        fitted["period"],
        fitted["observed_survival"],
        color="#969696",
        zorder=3,
        s=70,
        label="observed (fitted)",
    )
    if len(holdout):
        ax.scatter(
            holdout["period"],
            holdout["observed_survival"],
            facecolor="white",
            edgecolor="black",
            zorder=3,
            s=70,
            label="observed (hold-out)",
        )
    ax.errorbar(
        survival["period"],
        survival["simulated_survival"],
        yerr=Z95 * survival["simulated_se"],
        fmt="s",
        color="#D55E00",
        markersize=3.5,
        zorder=4,
        label="simulated (M8, 95 % CI)",
    )
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("period t")
    ax.set_ylabel("share of the cohort active, S(t)")
    ax.legend()
    return ax


def plot_market_series(
    market: pd.DataFrame, column: str, ax=None, *, colors: dict | None = None, entry: float | None = None
):
    """One column of the agent-engine market table against the period, one line per
    scenario (``scenario, period, <column>``); ``entry`` marks the competitor's entry.
    """
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    scenarios = list(dict.fromkeys(market["scenario"]))
    colors = colors or policy_colors(scenarios)
    for scenario in scenarios:
        rows = market[market["scenario"] == scenario]
        ax.plot(rows["period"], rows[column], color=colors[scenario], label=scenario.replace("_", " "))
    if entry is not None:
        ax.axvline(entry, color="#636363", linestyle=":", linewidth=1.0)
        ax.annotate(
            "competitor enters",
            (entry, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -10),
            textcoords="offset points",
            fontsize=7,
            color="#525252",
        )
    ax.set_xlabel("period")
    ax.legend()
    return ax
