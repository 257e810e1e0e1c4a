"""Plots of the agent engine's ``market`` table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.engines.market.engine import MarketResult

__all__ = [
    "plot_market",
    "market_figure",
]

# --------------------------------------------------------------------------- plots


def plot_market(market: pd.DataFrame, column: str = "live", ax=None, *, policy: str | None = None):
    """Plot one column of the ``market`` table against the period, one line per policy
    (mean over replications). Returns the Axes.
    """
    import matplotlib.pyplot as plt

    if column not in market.columns:
        raise KeyError(f"column = {column!r}: not in the market table; columns: {', '.join(market.columns)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    table = market if policy is None else market[market["policy"] == policy]
    means = table.groupby(["policy", "period"], sort=False)[column].mean().unstack(0)
    for name in means.columns:
        ax.plot(means.index, means[name], label=name)
    ax.set_xlabel("period")
    ax.set_ylabel(column.replace("_", " "))
    ax.set_title(column.replace("_", " ").capitalize())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return ax


def market_figure(result: MarketResult):
    """The market overview of an agent-engine run, on one 2×2 page: live customers; exits
    per live customer-period by segment (pooled over replications; solid transactional,
    dashed relationship); new customers joining per period (or mean satisfaction when
    nobody joins); and complaint waits (capacity on) or the retention spend (with the
    budget, when on). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    market = result.market
    config = result.config.market
    figure, axes = plt.subplots(2, 2, figsize=(13, 8.5), layout="constrained")
    plot_market(market, "live", ax=axes[0, 0])
    pooled = market.groupby(["policy", "period"], sort=False)[
        ["exits_relationship", "live_relationship", "exits_transactional", "live_transactional"]
    ].sum()
    ax = axes[0, 1]
    for index, (name, rows) in enumerate(pooled.groupby(level="policy", sort=False)):
        rows = rows.droplevel("policy")
        color = f"C{index}"
        with np.errstate(invalid="ignore", divide="ignore"):
            ax.plot(
                rows.index,
                rows["exits_transactional"] / rows["live_transactional"],
                color=color,
                label=f"{name}, transactional",
            )
            ax.plot(
                rows.index,
                rows["exits_relationship"] / rows["live_relationship"],
                color=color,
                linestyle="--",
                label=f"{name}, relationship",
            )
    if config.competitor.enabled:
        ax.axvline(config.competitor.enters_at, color="grey", linewidth=1)
        if config.competitor.leaves_at is not None:
            ax.axvline(config.competitor.leaves_at, color="grey", linewidth=1, linestyle=":")
    ax.set(xlabel="period", ylabel="exits per live customer", title="Exits (to decline or ended) by segment")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    if config.acquisition.enabled or config.word_of_mouth.enabled:
        joined = market.assign(joined=market["joined_acquisition"] + market["joined_word_of_mouth"])
        plot_market(joined, "joined", ax=axes[1, 0])
        axes[1, 0].set_title("New customers joining (acquisition + word of mouth)")
    else:
        plot_market(market, "satisfaction_mean", ax=axes[1, 0])
    if config.capacity.enabled:
        plot_market(market, "wait_mean", ax=axes[1, 1])
        axes[1, 1].set_title("Mean wait of complaints served (periods)")
    else:
        plot_market(market, "retention_spend", ax=axes[1, 1])
        if config.budget.enabled:
            axes[1, 1].axhline(
                market["budget"].iloc[0], color="black", linewidth=1, linestyle="--", label="budget"
            )
            axes[1, 1].legend(fontsize=8, frameon=False)
    interactions = ", ".join(config.interactions) or "no interactions"
    figure.suptitle(
        f"{result.config.name}: agent-based market ({interactions}; "
        f"{result.config.population.customers:,} customers x {result.config.run.replications} replications)",
        fontsize=12,
    )
    return figure


# --------------------------------------------------------------------------- command line
