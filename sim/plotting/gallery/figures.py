r"""The field's figures, regenerated with one command: ``sim figures [--quick] [--only NAME]``.

Every figure is described by a versioned TOML file in ``experiments/figures/`` (one per
figure): a ``[figure]`` table (number, kind, title, caption, sizes for the full run and
for ``--quick``, kind-specific ``params``) and the experiment(s) it simulates
(``[experiment]``, or ``[experiments.<label>]`` for figures that need several). An
experiment table is an ordinary experiment config (see :mod:`sim.model.config`); ``base =
"../baseline.toml"`` starts it from another config file (tables are merged key by key,
lists such as ``policies`` are replaced).

For each figure, :func:`make_figures` writes into the output folder (``results/figures/``
by default; ``results/figures-quick/`` with ``--quick``):

* ``<name>.png`` and ``<name>.svg`` — the figure, drawn in the project style
  (:mod:`sim.plotting.style`);
* ``<name>.csv`` — exactly the data drawn, as one tidy table (a ``panel`` column tells the
  panels apart where a figure has several);
* ``<name>.txt`` — the caption, with the sizes, seed and fitted values filled in;

plus ``README.md`` (an index: each figure, its caption and the command that made it) and
``manifest.json`` (sizes, seeds, timings, package versions, git commit).

No model logic lives here: every number comes from :func:`sim.project` (the numba core),
:func:`sim.engines.market.engine.simulate_market` (the agent engine), :mod:`sim.analytic.closed_forms` and
:mod:`sim.analytic.lifecycle_chain` (closed forms) and the model's own equations in
:mod:`sim.model.equations`; this module selects, aggregates and draws their tidy tables. The one
derived table is :func:`tenure_stage_table`, which obtains per-tenure, per-stage means
from the ``by_stage`` tables of runs with nested horizons (see there).

The figures (``kind``)
----------------------
1. ``lifecycle_curve`` — relationship level (loyalty) and profit per period against
   tenure, per lifecycle stage (MODEL.md §1).
2. ``stage_occupancy`` — shares of the cohort in each stage over time, per policy.
3. ``lifecycle_patterns`` — patterns I–IV: share of customers and mean CLV.
4. ``satisfaction_loyalty`` — the Jones & Sasser (1995) satisfaction→loyalty curve (M6)
   with its zones, and the simulated per-period retention against satisfaction.
5. ``satisfaction_trap`` — "maximise satisfaction" against stage-targeted spend:
   satisfaction over time and net CLV.
6. ``spend_response`` — CLV against the spend in each stage, optimum marked.
7. ``policy_comparison`` — paired ΔCLV with 95 % CIs and the spend–CLV frontier.
8. ``clv_decomposition`` — CLV1…CLV6, spend and acquisition per policy.
9. ``value_concentration`` — Lorenz/ABC curve against the 5/15/80 → 50/30/20 rule.
10. ``validation`` — simulated against closed form: Pfeifer & Carraway (2000) Markov-chain
    CLV, and shifted-beta-geometric survival fitted to Fader & Hardie's (2007) cohort.
11. ``agent_effects`` — agent engine: word of mouth on/off and a competitor's entry.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shlex
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sim.model.config import ExperimentConfig, config_from_dict
from sim.model.names import PATTERNS, STAGES
from sim.exceptions import ConfigError
from sim.experiments.comparison import frontier_table
from sim.io.paths import RUN_MARKER, check_output_dir
from sim.exceptions import UnsafeOutputError
from sim.plotting.projection import plot_comparison_forest, plot_frontier
from sim.tables.result import Z95

__all__ = [
    "FIGURE_KINDS",
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_OUT",
    "DEFAULT_QUICK_OUT",
    "FigureSpec",
    "FigureData",
    "FigureRecord",
    "load_figure_spec",
    "load_figure_specs",
    "figure_data",
    "figure_caption",
    "draw_figure",
    "make_figures",
    "tenure_stage_table",
    "loyalty_curve_table",
    "lorenz_table",
    "response_config",
    "survival_validation_table",
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
    "register",
]

#: Where the figure configs live (relative to the working directory).
DEFAULT_CONFIG_DIR = Path("experiments") / "figures"
#: Where the full run writes.
DEFAULT_OUT = Path("results") / "figures"
#: Where ``--quick`` writes (not committed; keeps the full run's files intact).
DEFAULT_QUICK_OUT = Path("results") / "figures-quick"
#: File types ``sim figures`` writes (rule 3 of :mod:`sim.io.paths`: never over such a file of a
#: folder that is not a sim result, not even with --force).
FIGURE_SUFFIXES = (".csv", ".json", ".md", ".png", ".svg", ".txt")

#: Columns of the frontier panel's data (figure 7).
FRONTIER_COLUMNS = ["policy", "retention_spend", "clv_mean", "clv_se", "ci_low", "ci_high", "efficient"]

_SKIPPED = "skipped"


# =========================================================================== derived tables


def _by_stage_sums(result, policy: str) -> pd.DataFrame:
    """Per-stage sums (not means) over customer-periods of one policy's ``by_stage`` rows."""
    rows = result.by_stage[result.by_stage["policy"] == policy].set_index("stage").loc[list(STAGES)]
    count = rows["customer_periods"].to_numpy(dtype=float)
    sums = {"customer_periods": count}
    for column in ("loyalty_mean", "profit_mean", "satisfaction_mean", "spend_mean"):
        sums[column] = np.where(count > 0, rows[column].to_numpy(dtype=float) * count, 0.0)
    return pd.DataFrame(sums, index=list(STAGES))


def tenure_stage_table(config: ExperimentConfig, tenure_step: int, *, policies: Sequence[str] | None = None,
                       threads: int | None = None) -> pd.DataFrame:
    """Mean loyalty, profit, satisfaction and spend per customer-period by tenure bin and stage.

    The cohort's tables give per-period means over all active customers (``trajectory``)
    and per-stage means over all periods (``by_stage``), not both at once. Runs with nested
    horizons give both exactly: the kernel draws one normal and one uniform per customer
    and period whatever happens (:mod:`sim.engines.core`), so the first ``a`` periods of a run with
    horizon ``b > a`` are those of the run with horizon ``a``, and the ``by_stage`` sums of
    horizon ``b`` minus those of horizon ``a`` are the per-stage sums over periods
    ``a .. b-1``. Tenure equals the period (the whole cohort is acquired at period 0).

    Parameters
    ----------
    config
        The experiment (its ``run.horizon`` is the last tenure covered).
    tenure_step
        Width of the tenure bins in periods (the last bin may be shorter).
    policies
        Policies to include (default: all of the config's).
    threads
        numba threads (never changes the numbers).

    Returns
    -------
    DataFrame
        ``policy, tenure_start, tenure_end, tenure_mid, stage, customer_periods,
        loyalty_mean, profit_mean, satisfaction_mean, spend_mean`` (periods
        ``tenure_start .. tenure_end - 1``; ``stage == "all"`` pools the stages; means are
        NaN where a stage has no customer-periods in the bin). Profit is undiscounted and
        net of retention spend, as in ``by_stage``.

    Notes
    -----
    Cost: ``horizon / tenure_step`` runs of :func:`sim.project` with horizons up to
    ``horizon``, i.e. about ``horizon / (2 tenure_step)`` times one full run.
    """
    from sim.runs.projection import project

    if isinstance(tenure_step, bool) or not isinstance(tenure_step, (int, np.integer)) or tenure_step < 1:
        raise ValueError(f"tenure_step = {tenure_step!r}: must be a whole number >= 1")
    names = list(config.policy_names if policies is None else policies)
    unknown = [name for name in names if name not in config.policy_names]
    if unknown:
        raise ValueError(f"policies = {unknown}: not in the config; policies: {', '.join(config.policy_names)}")
    keep = [policy.model_dump(mode="python") for policy in config.policies if policy.name in names]
    config = config.with_overrides(policies=keep)
    horizon = config.run.horizon
    edges = list(range(0, horizon, int(tenure_step))) + [horizon]
    previous = {name: None for name in names}
    rows = []
    for start, stop in zip(edges[:-1], edges[1:]):
        result = project(config, horizon=stop, threads=threads)
        for name in names:
            sums = _by_stage_sums(result, name)
            bin_sums = sums if previous[name] is None else sums - previous[name]
            previous[name] = sums
            pooled = bin_sums.sum(axis=0).rename("all")
            for stage, values in list(bin_sums.iterrows()) + [("all", pooled)]:
                count = values["customer_periods"]
                row = {"policy": name, "tenure_start": start, "tenure_end": stop, "tenure_mid": (start + stop - 1) / 2,
                       "stage": stage, "customer_periods": int(round(count))}
                for column in ("loyalty_mean", "profit_mean", "satisfaction_mean", "spend_mean"):
                    row[column] = values[column] / count if count > 0 else np.nan
                rows.append(row)
    return pd.DataFrame(rows)


def loyalty_curve_table(config: ExperimentConfig, points: int = 201) -> pd.DataFrame:
    """The model's satisfaction→loyalty curve (M6) on a grid, with its Jones & Sasser zone.

    Evaluates :func:`sim.model.equations.loyalty_from_satisfaction` (its NumPy body) with the
    config's ``[loyalty]`` parameters at ``points`` satisfactions from 0 to 1 (the zone
    boundaries are added as grid points so the kinks are drawn exactly).

    Returns
    -------
    DataFrame
        ``satisfaction, loyalty, zone`` (``defection`` below the defection threshold,
        ``affection`` from the affection threshold, else ``indifference``).
    """
    from sim.model.equations import loyalty_from_satisfaction

    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points = {points!r}: must be a whole number >= 2")
    loy = config.loyalty
    grid = np.unique(np.concatenate([np.linspace(0.0, 1.0, int(points)),
                                     [loy.defection_threshold, loy.affection_threshold]]))
    loyalty = loyalty_from_satisfaction.py_func(grid, loy.defection_threshold, loy.affection_threshold,
                                                loy.indifference_low, loy.indifference_high)
    zone = np.where(grid < loy.defection_threshold, "defection",
                    np.where(grid < loy.affection_threshold, "indifference", "affection"))
    return pd.DataFrame({"satisfaction": grid, "loyalty": np.asarray(loyalty, dtype=float), "zone": zone})


def lorenz_table(clv: dict, points: int = 201) -> pd.DataFrame:
    """The value-concentration (Lorenz/ABC) curve of per-customer CLVs, per policy.

    Customers are ranked by CLV, highest first; at customer share ``q`` (``points`` values
    from 0 to 1) the curve gives the share of the total CLV earned by the top
    ``round(q n)`` customers. Because some customers have negative CLV (MODEL.md §3: the
    "80/20/30" rule), the curve can rise above 1 before it ends at 1.

    Parameters
    ----------
    clv
        ``{policy: per-customer CLVs}``, e.g. :attr:`sim.ProjectionResult.clv`.
    points
        Grid points on the customer-share axis.

    Returns
    -------
    DataFrame
        ``policy, customer_share, value_share``.
    """
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points = {points!r}: must be a whole number >= 2")
    frames = []
    for policy, values in clv.items():
        values = np.sort(np.asarray(values, dtype=float))[::-1]
        if values.size == 0:
            raise ValueError(f"clv[{policy!r}] is empty")
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        total = cumulative[-1]
        share = np.linspace(0.0, 1.0, int(points))
        ranks = np.rint(share * values.size).astype(np.int64)
        frames.append(pd.DataFrame({"policy": policy, "customer_share": share,
                                    "value_share": cumulative[ranks] / total if total != 0 else np.nan}))
    return pd.concat(frames, ignore_index=True)


def response_config(config: ExperimentConfig, base_policy: str, stages: Sequence[str],
                    spends: Sequence[float]) -> ExperimentConfig:
    """An experiment whose policies trace the spend response of each stage.

    For every stage in ``stages`` and every spend in ``spends``, a stage policy named
    ``"<stage>_<spend>"`` spends that amount per period in the stage and the base policy's
    spend in the others (same segment multipliers). The base policy comes first. All
    policies are simulated on the same customers and shocks (common random numbers), so
    the curves are smooth in the spend and their differences to the base are paired.

    Raises
    ------
    ValueError
        If ``base_policy`` is not a ``kind = "stage"`` policy of ``config``, a stage is
        unknown, or there would be more than 64 policies.
    """
    from sim.model.sections import StagePolicy

    base = next((policy for policy in config.policies if policy.name == base_policy), None)
    if base is None:
        raise ValueError(f"base_policy = {base_policy!r}: no such policy; policies: {', '.join(config.policy_names)}")
    if not isinstance(base, StagePolicy):
        raise ValueError(f"base_policy = {base_policy!r}: must be a policy of kind 'stage', not {base.kind!r}")
    bad = [stage for stage in stages if stage not in STAGES]
    if bad:
        raise ValueError(f"stages = {bad}: allowed: {', '.join(STAGES)}")
    if 1 + len(stages) * len(spends) > 64:
        raise ValueError(f"{len(stages)} stages x {len(spends)} spends + 1 = {1 + len(stages) * len(spends)} policies; "
                         "at most 64 are allowed: use fewer spends")
    dumped = base.model_dump(mode="python")
    policies = [dumped]
    for stage in stages:
        for spend in spends:
            policy = copy.deepcopy(dumped)
            policy["name"] = f"{stage}_{float(spend):g}"
            policy["description"] = f"{base_policy} with {float(spend):g} per period in {stage}"
            policy["spend"][stage] = float(spend)
            policies.append(policy)
    return config.with_overrides(policies=policies)


# =========================================================================== plot functions


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.0, 4.0))
    return ax


def _shade_zones(ax, defection: float, affection: float, *, labels: bool = True) -> None:
    """Shade the Jones & Sasser zones (defection, indifference, affection) of (M6)."""
    for low, high, color, name in ((0.0, defection, "#fde0dd", "defection"),
                                   (defection, affection, "#f0f0f0", "indifference"),
                                   (affection, 1.0, "#e5f5e0", "affection")):
        ax.axvspan(low, high, color=color, zorder=0, linewidth=0)
        if labels:
            ax.text((low + high) / 2, 0.98, name, transform=ax.get_xaxis_transform(), ha="center", va="top",
                    fontsize=7, color="#525252")


def plot_lifecycle_curve(table: pd.DataFrame, value: str = "loyalty_mean", ax=None, *, policy: str | None = None):
    """The lifecycle curve: a per-customer-period mean against tenure, one line per stage.

    Lines are coloured by stage (:data:`sim.plotting.projection.STAGE_COLORS`); the black dashed line
    pools the stages (the cohort's active customers).

    Parameters
    ----------
    table
        A :func:`tenure_stage_table` (``policy, tenure_mid, stage, <value>``).
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
            ax.plot(line["tenure_mid"], line[value], color="black", linestyle="--", linewidth=1.2, label="all active")
        else:
            ax.plot(line["tenure_mid"], line[value], color=STAGE_COLORS[stage], marker="o", markersize=2.5, label=stage)
    ax.set_xlabel("tenure (periods since acquisition)")
    ax.set_ylabel({"loyalty_mean": "relationship level (mean loyalty)",
                   "profit_mean": "profit per customer-period"}.get(value, value))
    if value == "profit_mean":
        ax.axhline(0.0, color="black", linewidth=0.6)
    ax.legend(ncols=1)
    return ax


def plot_pattern_bars(patterns: pd.DataFrame, value: str = "share", ax=None, *, colors: dict | None = None):
    """Lifecycle patterns I–IV: one bar per policy and pattern of ``value`` (``share`` or
    ``clv_mean``).

    Pattern I ended in exploration, II in formation, III reached stability but ended early,
    IV is long-term (MODEL.md §1). Parameters: the ``patterns`` table.
    """
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    policies = list(dict.fromkeys(patterns["policy"]))
    colors = colors or policy_colors(policies)
    width = 0.8 / max(len(policies), 1)
    positions = np.arange(len(PATTERNS))
    for index, policy in enumerate(policies):
        rows = patterns[patterns["policy"] == policy].set_index("pattern").reindex(list(PATTERNS))
        ax.bar(positions + (index - (len(policies) - 1) / 2) * width, rows[value], width=width,
               color=colors[policy], label=policy)
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
        A :func:`loyalty_curve_table` (``satisfaction, loyalty, zone``).
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


def plot_retention_by_satisfaction(simulated: pd.DataFrame, ax=None, *, zones: tuple[float, float] | None = None):
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
        ax.plot(middle, rows["retention"], marker="o", label="all stages" if stage == "all" else stage, **style)
    ax.set_xlim(0, 1)
    ax.set_xlabel("satisfaction (bin midpoint)")
    ax.set_ylabel("simulated P(no exit this period)")
    ax.legend(loc="lower right")
    ax.grid(axis="x", visible=False)
    return ax


def plot_satisfaction_over_time(trajectory: pd.DataFrame, ax=None, *, colors: dict | None = None):
    """Mean satisfaction of the active customers per period, one line per policy
    (``trajectory`` table: ``policy, period, satisfaction_mean``)."""
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
    satisfaction_mean``)."""
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    policies = list(values["policy"])
    colors = colors or policy_colors(policies)
    positions = np.arange(len(values))
    ax.bar(positions, values["clv_mean"], color=[colors[p] for p in policies], width=0.6)
    errors = np.vstack([values["clv_mean"] - values["ci_low"], values["ci_high"] - values["clv_mean"]])
    ax.errorbar(positions, values["clv_mean"], yerr=errors, fmt="none", ecolor="black")
    for x, row in zip(positions, values.itertuples()):
        ax.annotate(f"spend {row.retention_spend:.0f}\nsat. {row.satisfaction_mean:.2f}", (x, row.ci_high),
                    textcoords="offset points", xytext=(0, 3), ha="center", va="bottom", fontsize=7)
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
    ax.scatter(best["spend"], best["delta_clv"], marker="*", s=160, color=color, edgecolor="black", zorder=3,
               label="best spend on the grid")
    for row in best.itertuples():
        ax.annotate(f"{row.spend:g}", (row.spend, row.delta_clv), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize=8, fontweight="bold")
    base = rows[rows["is_base"].astype(bool)]
    ax.scatter(base["spend"], base["delta_clv"], marker="o", s=45, facecolor="white", edgecolor="black", zorder=3,
               label="base policy")
    if "care_peak_spend" in rows and len(rows):
        ax.axvline(rows["care_peak_spend"].iloc[0], color="#636363", linestyle=":", linewidth=1.0,
                   label="peak of care response (M1)")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_title(stage)
    ax.set_xlabel(f"spend per period in {stage}")
    ax.set_ylabel("ΔCLV vs base (95 % CI)")
    ax.legend(loc="lower left")
    return ax


def plot_lorenz(lorenz: pd.DataFrame, ax=None, *, reference: pd.DataFrame | None = None,
                colors: dict | None = None):
    """Value concentration: cumulative share of total CLV against the share of customers
    ranked by CLV (highest first), one line per policy, with the ABC rule of thumb (top 5 %
    give 50 %, next 15 % give 30 %, bottom 80 % give 20 %) as markers.

    Parameters
    ----------
    lorenz
        A :func:`lorenz_table` (``policy, customer_share, value_share``).
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
        ax.plot(reference["customer_share"], reference["value_share"], color="#636363", linestyle=":",
                marker="D", markersize=5, label="ABC rule 5/15/80 → 50/30/20")
    ax.plot([0, 1], [0, 1], color="#bdbdbd", linewidth=0.8, label="equal value")
    for x in (0.05, 0.20):
        ax.axvline(x, color="#d9d9d9", linewidth=0.8, zorder=0)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of customers (ranked by CLV, highest first)")
    ax.set_ylabel("cumulative share of total CLV")
    ax.legend(loc="lower right")
    return ax


def plot_markov_validation(exact: pd.DataFrame, simulated: pd.DataFrame, ax=None, *, colors: dict | None = None):
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
        ax.plot(line["horizon"], line["exact_clv"], color=colors[policy], linewidth=1.2, label=f"{policy}: closed form")
        points = simulated[simulated["policy"] == policy]
        ax.errorbar(points["horizon"], points["simulated_clv"], yerr=Z95 * points["simulated_se"], fmt="o",
                    color=colors[policy], markerfacecolor="white", label=f"{policy}: simulated")
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
    ax.scatter(fitted["period"], fitted["observed_survival"], color="#969696", zorder=3, s=70,
               label="observed (fitted)")
    if len(holdout):
        ax.scatter(holdout["period"], holdout["observed_survival"], facecolor="white", edgecolor="black", zorder=3,
                   s=70, label="observed (hold-out)")
    ax.errorbar(survival["period"], survival["simulated_survival"], yerr=Z95 * survival["simulated_se"], fmt="s",
                color="#D55E00", markersize=3.5, zorder=4, label="simulated (M8, 95 % CI)")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("period t")
    ax.set_ylabel("share of the cohort active, S(t)")
    ax.legend()
    return ax


def plot_market_series(market: pd.DataFrame, column: str, ax=None, *, colors: dict | None = None,
                       entry: float | None = None):
    """One column of the agent-engine market table against the period, one line per
    scenario (``scenario, period, <column>``); ``entry`` marks the competitor's entry."""
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    scenarios = list(dict.fromkeys(market["scenario"]))
    colors = colors or policy_colors(scenarios)
    for scenario in scenarios:
        rows = market[market["scenario"] == scenario]
        ax.plot(rows["period"], rows[column], color=colors[scenario], label=scenario.replace("_", " "))
    if entry is not None:
        ax.axvline(entry, color="#636363", linestyle=":", linewidth=1.0)
        ax.annotate("competitor enters", (entry, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                    textcoords="offset points", fontsize=7, color="#525252")
    ax.set_xlabel("period")
    ax.legend()
    return ax


# =========================================================================== figure specs


class _Sizes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    customers: int = Field(ge=1, le=100_000_000)
    replications: int = Field(1, ge=1, le=10_000)
    horizon: int | None = Field(None, ge=1, le=100_000)
    params: dict[str, Any] = Field(default_factory=dict)


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    number: int = Field(ge=1, le=999)
    kind: str
    title: str = Field(min_length=1)
    caption: str = Field(min_length=1)
    full: _Sizes
    quick: _Sizes
    params: dict[str, Any] = Field(default_factory=dict)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class _LifecycleParams(_Params):
    policy: str
    tenure_step: int = Field(3, ge=1)
    min_customer_periods: int = Field(100, ge=1)


class _PoliciesParams(_Params):
    policies: tuple[str, ...] | None = None


class _LoyaltyParams(_Params):
    policy: str
    stages: tuple[Literal["exploration", "formation", "stability", "decline", "all"], ...] = STAGES
    min_customer_periods: int = Field(100, ge=1)
    points: int = Field(201, ge=2, le=100_001)


class _ResponseParams(_Params):
    base_policy: str
    stages: tuple[Literal["exploration", "formation", "stability", "decline"], ...] = STAGES
    spends: tuple[float, ...] = Field(min_length=2)

    @field_validator("spends")
    @classmethod
    def _non_negative_increasing(cls, spends):
        if any(s < 0 or not math.isfinite(s) for s in spends) or list(spends) != sorted(set(spends)):
            raise ValueError(f"spends must be distinct finite numbers >= 0 in increasing order; got {list(spends)}")
        return spends


class _ComparisonParams(_Params):
    reference: str


class _ValueParams(_Params):
    policies: tuple[str, ...] | None = None
    points: int = Field(201, ge=2, le=100_001)


class _ValidationParams(_Params):
    horizons: tuple[int, ...] = Field(min_length=1)
    survivors: tuple[int, ...] = Field(min_length=2)
    holdout: tuple[int, ...] = ()
    cohort_policy: str | None = None

    @field_validator("horizons")
    @classmethod
    def _positive(cls, horizons):
        if any(h < 1 for h in horizons) or list(horizons) != sorted(set(horizons)):
            raise ValueError(f"horizons must be distinct whole numbers >= 1 in increasing order; got {list(horizons)}")
        return horizons


class _AgentParams(_Params):
    policy: str
    scenarios: tuple[str, ...] = Field(min_length=1)


@dataclasses.dataclass(frozen=True)
class _Kind:
    params: type[_Params]
    experiments: tuple[str, ...] | None  # required labels (None: any, at least one)
    build: Callable
    draw: Callable
    facts: Callable  # (spec, parameters, configs) -> {fact: value or a stand-in of its type}, before any work


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """One figure's versioned description (a TOML file of ``experiments/figures/``).

    Attributes
    ----------
    name : str
        The file's stem; the output files are ``<name>.png/.svg/.csv/.txt``.
    path : Path
        The TOML file.
    number : int
        The figure's number (the order of the index).
    kind : str
        One of :data:`FIGURE_KINDS`.
    title, caption : str
        The caption may hold ``{placeholders}`` filled from the sizes and the facts of the
        figure's data (see :class:`FigureData`).
    full, quick : dict
        ``customers``, ``replications``, ``horizon`` (optional) and ``params`` overrides.
    params : dict
        Kind-specific parameters (validated).
    experiments : dict
        ``{label: experiment data}`` merged with its ``base``, not yet sized.
    """

    name: str
    path: Path
    number: int
    kind: str
    title: str
    caption: str
    full: dict
    quick: dict
    params: dict
    experiments: dict

    def sizes(self, quick: bool = False) -> dict:
        """``customers, replications, horizon`` of the full or the quick run."""
        sizes = self.quick if quick else self.full
        return {key: sizes[key] for key in ("customers", "replications", "horizon")}

    def parameters(self, quick: bool = False):
        """The kind's validated parameters (``[figure.params]`` with the quick overrides)."""
        merged = {**self.params, **(self.quick["params"] if quick else self.full["params"])}
        return FIGURE_KINDS[self.kind].params.model_validate(merged)

    def config(self, label: str = "main", quick: bool = False) -> ExperimentConfig:
        """The validated experiment ``label`` at the full or quick sizes."""
        if label not in self.experiments:
            raise KeyError(f"figure {self.name!r} has no experiment {label!r}; it has: {', '.join(self.experiments)}")
        data = copy.deepcopy(self.experiments[label])
        sizes = self.sizes(quick)
        data.setdefault("population", {})["customers"] = sizes["customers"]
        data.setdefault("run", {})["replications"] = sizes["replications"]
        if sizes["horizon"] is not None:
            data["run"]["horizon"] = sizes["horizon"]
        return config_from_dict(data, f"{self.path} [{'experiment' if label == 'main' else 'experiments.' + label}]")


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path, source: str) -> dict:
    if not path.exists():
        raise ConfigError([("", f"no such file: {path}")], source)
    if path.is_dir():
        raise ConfigError([("", f"{path} is a directory, not a TOML file")], source)
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError([("", f"{path} is not UTF-8 text (byte {error.start})")], source) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("", f"{path} is not valid TOML: {error}")], source) from None


def _experiment_data(table: Any, label: str, path: Path, source: str, seen: tuple = ()) -> dict:
    where = "experiment" if label == "main" else f"experiments.{label}"
    if not isinstance(table, dict):
        raise ConfigError([(where, f"must be a table (an experiment config), got {type(table).__name__}")], source)
    table = dict(table)
    base = table.pop("base", None)
    if base is None:
        return table
    if not isinstance(base, str):
        raise ConfigError([(f"{where}.base = {base!r}", "must be a path (relative to the figure file)")], source)
    base_path = (path.parent / base).resolve()
    if base_path in seen:
        raise ConfigError([(f"{where}.base = {base!r}", "the bases refer to each other in a loop")], source)
    base_data = _experiment_data(_read_toml(base_path, source), label, base_path, source, seen + (base_path,))
    return _deep_merge(base_data, table)


def _pydantic_problems(error: ValidationError, prefix: str) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        path = ".".join([prefix] + [str(part) for part in item["loc"]])
        message = item["msg"].replace("Value error, ", "")
        if item["type"] == "extra_forbidden":
            problems.append((path, "unknown key"))
        elif item["type"] == "missing":
            problems.append((path, "is required"))
        else:
            problems.append((f"{path} = {item.get('input')!r}", message))
    return problems


def load_figure_spec(path: str | Path) -> FigureSpec:
    """Read and validate one figure TOML file (every experiment at both sizes).

    Raises
    ------
    ConfigError
        For a missing or malformed file, an unknown key or kind, a bad parameter, an
        experiment that is not a valid config, a caption that is not a valid template or
        uses a placeholder the figure does not provide, or a ``spend_response`` sweep that
        cannot be built (base policy not of kind ``stage``, more than 64 policies) — one
        line per problem, before any work.
    """
    path = Path(path)
    source = str(path)
    data = _read_toml(path, source)
    unknown = [key for key in data if key not in ("figure", "experiment", "experiments")]
    if unknown:
        raise ConfigError([(key, "unknown top-level key; allowed: figure, experiment, experiments") for key in unknown],
                          source)
    if "figure" not in data:
        raise ConfigError([("figure", "is required: the [figure] table (number, kind, title, caption, full, quick)")],
                          source)
    try:
        header = _Header.model_validate(data["figure"])
    except ValidationError as error:
        raise ConfigError(_pydantic_problems(error, "figure"), source) from None
    if header.kind not in FIGURE_KINDS:
        raise ConfigError([(f"figure.kind = {header.kind!r}", f"allowed: {', '.join(FIGURE_KINDS)}")], source)
    kind = FIGURE_KINDS[header.kind]
    if "experiment" in data and "experiments" in data:
        raise ConfigError([("experiment", "give either [experiment] or [experiments.<label>], not both")], source)
    if "experiment" in data:
        raw = {"main": data["experiment"]}
    elif isinstance(data.get("experiments"), dict) and data["experiments"]:
        raw = dict(data["experiments"])
    else:
        raise ConfigError([("experiment", "is required: the experiment config the figure simulates")], source)
    experiments = {label: _experiment_data(table, label, path, source) for label, table in raw.items()}
    if kind.experiments is not None:
        missing = [label for label in kind.experiments if label not in experiments]
        extra = [label for label in experiments if label not in kind.experiments]
        problems = [(("experiment" if label == "main" else f"experiments.{label}"),
                     f"is required by kind {header.kind!r}") for label in missing]
        problems += [(f"experiments.{label}", f"unknown for kind {header.kind!r}; it uses: "
                      f"{', '.join(kind.experiments)}") for label in extra]
        if problems:
            raise ConfigError(problems, source)
    spec = FigureSpec(
        name=path.stem, path=path, number=header.number, kind=header.kind, title=header.title,
        caption=header.caption, full=header.full.model_dump(), quick=header.quick.model_dump(),
        params=dict(header.params), experiments=experiments,
    )
    if header.kind == "agent_effects" and not _agent_engine_available():
        return spec  # reported as skipped when made; its [market] tables need the engine's config
    for quick in (False, True):
        try:
            parameters = spec.parameters(quick)
        except ValidationError as error:
            prefix = "figure.quick.params" if quick and header.quick.params else "figure.params"
            raise ConfigError(_pydantic_problems(error, prefix), source) from None
        configs = {label: spec.config(label, quick) for label in experiments}  # raises ConfigError
        _check_policy_names(spec, parameters, configs, source)
        _check_kind(spec, parameters, configs, source, quick)
        _check_caption(spec, parameters, configs, source)
    return spec


def _agent_engine_available() -> bool:
    """Whether :func:`sim.engines.market.engine.simulate_market` (the agent engine) can be imported."""
    try:
        from sim.engines.market.engine import simulate_market  # noqa: F401
    except ImportError:
        return False
    return True


def _check_policy_names(spec: FigureSpec, parameters, configs: dict, source: str) -> None:
    """Policy names in the parameters must exist in the experiment they refer to."""
    main = configs.get("main")
    problems = []

    def need(field: str, name: str, config: ExperimentConfig) -> None:
        if name not in config.policy_names:
            problems.append((f"figure.params.{field} = {name!r}",
                             f"no such policy; policies: {', '.join(config.policy_names)}"))

    for field in ("policy", "base_policy", "reference"):
        name = getattr(parameters, field, None)
        if name is not None and main is not None:
            need(field, name, main)
    for name in getattr(parameters, "policies", None) or ():
        if main is not None:
            need("policies", name, main)
    if spec.kind == "validation" and parameters.cohort_policy is not None:
        need("cohort_policy", parameters.cohort_policy, configs["cohort"])
    if spec.kind == "agent_effects":
        for label in parameters.scenarios:
            if label not in configs:
                problems.append((f"figure.params.scenarios: {label!r}",
                                 f"no [experiments.{label}]; experiments: {', '.join(configs)}"))
            else:
                need("policy", parameters.policy, configs[label])
    if problems:
        raise ConfigError(problems, source)


def _check_kind(spec: FigureSpec, parameters, configs: dict, source: str, quick: bool) -> None:
    """What a kind builds from its parameters, built once here without simulating (the
    spend-response sweep: a stage base policy, at most 64 policies)."""
    if spec.kind == "spend_response":
        try:
            response_config(configs["main"], parameters.base_policy, parameters.stages, parameters.spends)
        except (ConfigError, ValueError) as error:
            where = " (quick sizes)" if quick else ""
            raise ConfigError([(f"figure.params{where}", " ".join(str(error).split()))], source) from None


def _check_caption(spec: FigureSpec, parameters, configs: dict, source: str) -> None:
    """The caption formats with the facts the figure will provide (names, syntax and format
    specifications, with each fact's value or a stand-in of its type), before any work."""
    facts = FIGURE_KINDS[spec.kind].facts(spec, parameters, configs)
    try:
        _format_caption(spec.caption, facts)
    except KeyError as error:
        raise ConfigError([(f"figure.caption: {{{error.args[0]}}}",
                            f"the figure does not provide it; available: {', '.join(sorted(facts))}")], source) from None
    except (IndexError, ValueError, TypeError, AttributeError) as error:
        raise ConfigError([("figure.caption", (f"not a valid caption template: {error}; placeholders are "
                                               "{name} or {name:format}, literal braces {{ and }}"))],
                          source) from None


def load_figure_specs(directory: str | Path = DEFAULT_CONFIG_DIR, only: Sequence[str] | None = None) -> list[FigureSpec]:
    """Every figure spec of ``directory`` (``*.toml``), in figure-number order.

    Parameters
    ----------
    only
        Names (file stems) to load; all if ``None``.

    Raises
    ------
    ConfigError
        For a missing folder, two figures with one number, or any problem of a spec
        (:func:`load_figure_spec`).
    ValueError
        For a name in ``only`` that is not a figure (the names are listed).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError([("", f"no figure configs: {directory} is not a folder")])
    paths = {path.stem: path for path in sorted(directory.glob("*.toml"))}
    if not paths:
        raise ConfigError([("", f"no figure configs (*.toml) in {directory}")])
    if only is not None and (isinstance(only, str) or not all(isinstance(name, str) and name.strip() for name in only)
                             or not len(only)):
        raise ValueError(f"--only {only!r}: give one or more figure names (file stems; an empty name is not a "
                         f"figure, and no --only makes them all); figures: {', '.join(paths)}")
    if only:
        unknown = [name for name in only if name not in paths]
        if unknown:
            import difflib

            hints = [f"{name!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, paths, 1)) else "")
                     for name in unknown]
            raise ValueError(f"--only: no figure {', '.join(hints)}; figures: {', '.join(paths)}")
        paths = {name: paths[name] for name in only}
    specs = [load_figure_spec(path) for path in paths.values()]
    numbers: dict[int, str] = {}
    for spec in specs:
        if spec.number in numbers:
            raise ConfigError([(f"figure.number = {spec.number}", f"used by both {numbers[spec.number]} and {spec.name}")],
                              str(spec.path))
        numbers[spec.number] = spec.name
    return sorted(specs, key=lambda spec: spec.number)


# =========================================================================== figure data


@dataclasses.dataclass
class FigureData:
    """What a figure draws: ``table`` (written as ``<name>.csv``, exactly the plotted
    data), ``facts`` (values for the caption's placeholders), and ``status`` (``"ok"``, or
    ``"skipped: <why>"`` when the figure cannot be made here)."""

    table: pd.DataFrame
    facts: dict = dataclasses.field(default_factory=dict)
    status: str = "ok"


def _size_facts(config: ExperimentConfig) -> dict:
    return {"customers": config.population.customers, "replications": config.run.replications,
            "horizon": config.run.horizon, "seed": config.run.seed,
            "long_term": config.transitions.long_term_periods}


def _with_panel(frame: pd.DataFrame, panel: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "panel", panel)
    return frame


def _project(config: ExperimentConfig, threads: int | None, **overrides):
    from sim.runs.projection import project

    return project(config, threads=threads, **overrides)


def _build_lifecycle_curve(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    table = tenure_stage_table(config, params.tenure_step, policies=[params.policy], threads=threads)
    table = table[table["customer_periods"] >= params.min_customer_periods]
    table = table[["policy", "tenure_start", "tenure_end", "tenure_mid", "stage", "customer_periods",
                   "loyalty_mean", "profit_mean"]].reset_index(drop=True)
    return FigureData(table, {**_size_facts(config), "policy": params.policy, "tenure_step": params.tenure_step,
                              "min_customer_periods": params.min_customer_periods})


def _draw_lifecycle_curve(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    plot_lifecycle_curve(data.table, "loyalty_mean", ax=axes[0])
    plot_lifecycle_curve(data.table, "profit_mean", ax=axes[1])
    axes[0].set_title("Relationship level")
    axes[1].set_title("Profit per period (net of retention spend)")
    axes[1].get_legend().remove()
    label_panels(axes)
    return figure


def _build_stage_occupancy(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    result = _project(config, threads)
    policies = list(params.policies or config.policy_names)
    table = result.stages[result.stages["policy"].isin(policies)].reset_index(drop=True)
    return FigureData(table, {**_size_facts(config), "policies": ", ".join(policies)})


def _draw_stage_occupancy(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_stage_occupancy
    from sim.plotting.style import label_panels

    policies = list(dict.fromkeys(data.table["policy"]))
    figure, axes = plt.subplots(1, len(policies), figsize=(4.2 * len(policies), 3.8), sharey=True, squeeze=False)
    axes = axes[0]
    for index, (ax, policy) in enumerate(zip(axes, policies)):
        plot_stage_occupancy(data.table, policy=policy, ax=ax)
        ax.set_title(policy, loc="left", fontsize=10, fontweight="bold")
        ax.grid(False)
        if index > 0:
            ax.get_legend().remove()
            ax.set_ylabel("")
    label_panels(axes)
    return figure


def _build_lifecycle_patterns(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    result = _project(config, threads)
    table = result.patterns[["policy", "pattern", "customers", "share", "clv_mean"]].reset_index(drop=True)
    return FigureData(table, _size_facts(config))


def _draw_lifecycle_patterns(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    plot_pattern_bars(data.table, "share", ax=axes[0])
    plot_pattern_bars(data.table, "clv_mean", ax=axes[1])
    axes[0].set_title("Share of customers")
    axes[1].set_title("Mean CLV")
    axes[1].get_legend().remove()
    for ax in axes:
        ax.set_xticks(range(len(PATTERNS)), ["I\nended in\nexploration", "II\nended in\nformation",
                                             "III\nleft stability\nearly", "IV\nlong-term"])
    label_panels(axes)
    return figure


def _build_satisfaction_loyalty(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    curve = loyalty_curve_table(config, params.points)
    result = _project(config, threads)
    table = result.satisfaction_retention
    simulated = table[(table["policy"] == params.policy) & table["stage"].isin(params.stages)
                      & (table["customer_periods"] >= params.min_customer_periods)]
    simulated = simulated[["policy", "stage", "satisfaction_low", "satisfaction_high", "customer_periods", "retention"]]
    frame = pd.concat([_with_panel(curve, "model"), _with_panel(simulated, "simulated")], ignore_index=True)
    loy = config.loyalty
    return FigureData(frame, {**_size_facts(config), "policy": params.policy,
                              "defection_threshold": loy.defection_threshold,
                              "affection_threshold": loy.affection_threshold,
                              "indifference_low": loy.indifference_low, "indifference_high": loy.indifference_high,
                              "min_customer_periods": params.min_customer_periods})


def _draw_satisfaction_loyalty(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    table = data.table
    figure, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    curve = table[table["panel"] == "model"]
    plot_loyalty_curve(curve, ax=axes[0])
    axes[0].set_title("Model input: loyalty from satisfaction (M6)")
    zones = (data.facts["defection_threshold"], data.facts["affection_threshold"])
    plot_retention_by_satisfaction(table[table["panel"] == "simulated"], ax=axes[1], zones=zones)
    axes[1].set_title(f"Simulated retention by satisfaction ({data.facts['policy']})")
    label_panels(axes)
    return figure


def _build_satisfaction_trap(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    result = _project(config, threads)
    policies = list(params.policies or config.policy_names)
    trajectory = result.trajectory[result.trajectory["policy"].isin(policies)]
    trajectory = trajectory[["policy", "period", "active_share", "satisfaction_mean"]]
    summary = result.summary.set_index("policy").loc[policies].reset_index()
    values = summary[["policy", "clv_mean", "clv_se", "retention_spend", "satisfaction_mean"]].copy()
    values["ci_low"] = values["clv_mean"] - Z95 * values["clv_se"]
    values["ci_high"] = values["clv_mean"] + Z95 * values["clv_se"]
    frame = pd.concat([_with_panel(trajectory, "trajectory"), _with_panel(values, "value")], ignore_index=True)
    facts = {**_size_facts(config)}
    for row in values.itertuples():
        facts[f"clv_{row.policy}"] = row.clv_mean
        facts[f"spend_{row.policy}"] = row.retention_spend
        facts[f"satisfaction_{row.policy}"] = row.satisfaction_mean
    return FigureData(frame, facts)


def _draw_satisfaction_trap(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels, policy_colors

    table = data.table
    values = table[table["panel"] == "value"]
    colors = policy_colors(list(values["policy"]))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.0), width_ratios=[1.4, 1])
    plot_satisfaction_over_time(table[table["panel"] == "trajectory"], ax=axes[0], colors=colors)
    axes[0].set_title("Satisfaction of active customers")
    plot_net_clv(values, ax=axes[1], colors=colors)
    axes[1].set_title("Net CLV (after retention spend)")
    label_panels(axes)
    return figure


def _build_spend_response(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    from sim.model.equations import best_care_spend

    config = spec.config("main", quick)
    params = spec.parameters(quick)
    sweep = response_config(config, params.base_policy, params.stages, params.spends)
    result = _project(sweep, threads)
    summary = result.summary.set_index("policy")
    comparison = result.comparison[result.comparison["reference"] == params.base_policy].set_index("policy")
    base = next(policy for policy in sweep.policies if policy.name == params.base_policy)
    dyn = config.dynamics
    peak = best_care_spend(dyn.care_gain, dyn.care_scale, dyn.annoyance)
    rows = []
    for stage in params.stages:
        for spend in params.spends:
            name = f"{stage}_{float(spend):g}"
            delta = comparison.loc[name]
            rows.append({"stage": stage, "spend": float(spend), "policy": name,
                         "clv_mean": summary.loc[name, "clv_mean"], "clv_se": summary.loc[name, "clv_se"],
                         "retention_spend": summary.loc[name, "retention_spend"],
                         "delta_clv": delta["delta_clv"], "delta_se": delta["se"],
                         "ci_low": delta["ci_low"], "ci_high": delta["ci_high"],
                         "is_base": float(spend) == getattr(base.spend, stage), "care_peak_spend": peak})
    table = pd.DataFrame(rows)
    table["is_optimum"] = False
    for stage, group in table.groupby("stage", sort=False):
        table.loc[group["clv_mean"].idxmax(), "is_optimum"] = True
    optimum = table[table["is_optimum"]].set_index("stage")["spend"]
    facts = {**_size_facts(config), "base_policy": params.base_policy, "care_peak_spend": peak,
             "optimum": ", ".join(f"{stage} {optimum[stage]:g}" for stage in params.stages),
             "base_spend": ", ".join(f"{stage} {getattr(base.spend, stage):g}" for stage in params.stages)}
    return FigureData(table, facts)


def _draw_spend_response(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    stages = list(dict.fromkeys(data.table["stage"]))
    columns = 2 if len(stages) > 1 else 1
    rows = math.ceil(len(stages) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False)
    axes = axes.ravel()
    for index, (ax, stage) in enumerate(zip(axes, stages)):
        plot_response_curve(data.table, stage, ax=ax)
        if index > 0:
            ax.get_legend().remove()
    for ax in axes[len(stages):]:
        ax.set_visible(False)
    label_panels(axes[:len(stages)])
    return figure


def _build_policy_comparison(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    result = _project(config, threads)
    forest = result.comparison[result.comparison["reference"] == params.reference]
    forest = forest[["policy", "reference", "delta_clv", "se", "ci_low", "ci_high", "delta_spend"]]
    front = frontier_table(result.summary, 1)[FRONTIER_COLUMNS]
    frame = pd.concat([_with_panel(forest, "forest"), _with_panel(front, "frontier")], ignore_index=True)
    best = front.loc[front["clv_mean"].idxmax()]
    return FigureData(frame, {**_size_facts(config), "reference": params.reference, "best_policy": best["policy"],
                              "efficient": ", ".join(front.loc[front["efficient"].astype(bool), "policy"])})


def _draw_policy_comparison(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    table = data.table
    figure, axes = plt.subplots(1, 2, figsize=(11.5, 4.2), width_ratios=[1, 1.3])
    plot_comparison_forest(table[table["panel"] == "forest"], reference=data.facts["reference"], ax=axes[0])
    plot_frontier(table[table["panel"] == "frontier"], ax=axes[1])
    axes[1].set_title("Spend–CLV frontier (95 % CI)", loc="left", fontsize=11, fontweight="bold")
    label_panels(axes)
    return figure


def _build_clv_decomposition(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    result = _project(config, threads)
    columns = ["policy"] + [f"clv{part}" for part in range(1, 7)] + ["retention_spend", "acquisition_cost",
                                                                      "clv_mean", "clv_se"]
    return FigureData(result.summary[columns].reset_index(drop=True), _size_facts(config))


def _draw_clv_decomposition(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_clv_parts

    figure, ax = plt.subplots(figsize=(8.5, 4.2))
    plot_clv_parts(data.table, ax=ax)
    ax.set_title("")
    ax.set_xlabel("")
    ax.set_ylabel("present value per customer (money units)")
    return figure


#: The ABC rule of thumb (MODEL.md §3): cumulative (customer share, value share).
ABC_REFERENCE = pd.DataFrame({"customer_share": [0.0, 0.05, 0.20, 1.0], "value_share": [0.0, 0.50, 0.80, 1.0]})


def _build_value_concentration(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    config = spec.config("main", quick)
    params = spec.parameters(quick)
    result = _project(config, threads)
    policies = list(params.policies or config.policy_names)
    clv = getattr(result, "clv", None)
    frames = []
    if clv:
        frames.append(_with_panel(lorenz_table({policy: clv[policy] for policy in policies}, params.points), "lorenz"))
    else:  # per-customer CLVs not kept: the ABC points of the value_concentration table
        rows = []
        for policy in policies:
            groups = result.value_concentration[result.value_concentration["policy"] == policy]
            rows.append({"policy": policy, "customer_share": 0.0, "value_share": 0.0})
            rows += [{"policy": policy, "customer_share": c, "value_share": v} for c, v in
                     zip(groups["customer_share"].cumsum(), groups["value_share"].cumsum())]
        frames.append(_with_panel(pd.DataFrame(rows), "lorenz"))
    abc = result.value_concentration[result.value_concentration["policy"].isin(policies)]
    frames.append(_with_panel(abc[["policy", "group", "customer_share", "value_share", "negative_share"]], "abc"))
    frames.append(_with_panel(ABC_REFERENCE, "reference"))
    facts = {**_size_facts(config)}
    for row in abc.itertuples():
        facts[f"{row.policy}_{row.group}_value_share"] = row.value_share
        facts[f"{row.policy}_{row.group}_negative_share"] = row.negative_share
    return FigureData(pd.concat(frames, ignore_index=True), facts)


def _draw_value_concentration(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels, policy_colors

    table = data.table
    lorenz = table[table["panel"] == "lorenz"]
    colors = policy_colors(list(dict.fromkeys(lorenz["policy"])))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=[1.3, 1])
    plot_lorenz(lorenz, ax=axes[0], reference=table[table["panel"] == "reference"], colors=colors)
    axes[0].set_title("Lorenz / ABC curve of CLV")
    abc = table[table["panel"] == "abc"]
    policies = list(dict.fromkeys(abc["policy"]))
    groups = ["A", "B", "C"]
    width = 0.8 / (len(policies) + 1)
    positions = np.arange(len(groups))
    for index, policy in enumerate(policies):
        rows = abc[abc["policy"] == policy].set_index("group").loc[groups]
        axes[1].bar(positions + (index - len(policies) / 2) * width, rows["value_share"], width=width,
                    color=colors[policy], label=policy)
        for x, value, negative in zip(positions + (index - len(policies) / 2) * width, rows["value_share"],
                                      rows["negative_share"]):
            if negative > 0.005:
                axes[1].annotate(f"{negative:.0%}", (x, max(value, 0.0)), textcoords="offset points", xytext=(0, 2),
                                 ha="center", va="bottom", fontsize=6.5, color="#b2182b")
    reference = [0.5, 0.3, 0.2]
    axes[1].bar(positions + (len(policies) / 2) * width, reference, width=width, color="white",
                edgecolor="#636363", hatch="//", label="rule of thumb")
    axes[1].set_xticks(positions, ["A: top 5 %", "B: next 15 %", "C: bottom 80 %"])
    axes[1].set_ylabel("share of total CLV")
    axes[1].axhline(0.0, color="black", linewidth=0.6)
    axes[1].set_title("Value share by ABC group (red: share with CLV < 0)")
    axes[1].legend()
    axes[1].margins(y=0.12)
    label_panels(axes)
    return figure


def survival_validation_table(cohort: ExperimentConfig, survivors: Sequence[int], holdout: Sequence[int] = (), *,
                              policy: str | None = None, customers: int | None = None,
                              replications: int | None = None, threads: int | None = None) -> pd.DataFrame:
    """Observed, sBG-fitted and simulated survival of a cohort (the survival panel of the
    ``validation`` figure).

    Fits the shifted-beta-geometric model to ``survivors`` (:func:`sim.analytic.closed_forms.sbg_fit`;
    ``survivors[t]`` = customers active at the start of period ``t``), gives ``cohort`` that
    churn propensity (``population.churn_propensity``, M8) and a horizon covering
    ``survivors`` and the ``holdout`` counts that follow them, and projects it
    (:func:`sim.project`; ``customers``, ``replications`` and ``threads`` override the
    config). For a config from :func:`sim.fitting.calibration.calibrate_survival` on the same counts
    the propensity is the one it already has.

    Returns
    -------
    DataFrame
        One row per period ``t = 0 .. len(survivors) + len(holdout) - 1``: ``period,
        observed_survivors, observed_survival, observed_role`` (``"fit"`` or
        ``"holdout"``), ``fitted_survival`` (sBG), ``simulated_survival`` (share of
        ``policy``'s cohort not ended, default the first policy) and ``simulated_se``
        (binomial, over customers x replications).
    """
    from sim.analytic.closed_forms import sbg_fit, sbg_survival

    fit = sbg_fit(list(survivors))
    periods = len(survivors) + len(holdout)
    cohort = cohort.with_overrides(population={"churn_propensity": {"alpha": float(fit.alpha), "beta": float(fit.beta)}},
                                   run={"horizon": periods - 1})
    result = _project(cohort, threads, customers=customers, replications=replications)
    cohort = result.config
    policy = policy or cohort.policy_names[0]
    ended = result.stages[(result.stages["policy"] == policy) & (result.stages["stage"] == "ended")]
    simulated_survival = 1.0 - ended.set_index("period")["share"].loc[range(periods)].to_numpy()
    n_total = cohort.population.customers * cohort.run.replications
    observed = np.asarray(list(survivors) + list(holdout), dtype=float)
    t = np.arange(periods)
    fitted = np.asarray(sbg_survival(fit.alpha, fit.beta, t), dtype=float)
    return pd.DataFrame({
        "period": t,
        "observed_survivors": observed.astype(np.int64),
        "observed_survival": observed / observed[0],
        "observed_role": ["fit"] * len(survivors) + ["holdout"] * len(holdout),
        "fitted_survival": fitted,
        "simulated_survival": simulated_survival,
        "simulated_se": np.sqrt(simulated_survival * (1.0 - simulated_survival) / n_total),
    })


def _build_validation(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    from sim.analytic.closed_forms import sbg_fit
    from sim.analytic.lifecycle_chain import lifecycle_markov_clv

    params = spec.parameters(quick)
    markov = spec.config("markov", quick)
    exact_rows, simulated_rows = [], []
    largest = max(params.horizons)
    for horizon in range(1, largest + 1):
        at_horizon = markov.with_overrides(run={"horizon": horizon})
        for policy in markov.policy_names:
            exact_rows.append({"policy": policy, "horizon": horizon,
                               "exact_clv": lifecycle_markov_clv(at_horizon, policy)})
    exact = pd.DataFrame(exact_rows)
    for horizon in params.horizons:
        result = _project(markov, threads, horizon=horizon)
        for row in result.summary.itertuples():
            value = exact[(exact["policy"] == row.policy) & (exact["horizon"] == horizon)]["exact_clv"].iloc[0]
            simulated_rows.append({"policy": row.policy, "horizon": horizon, "exact_clv": value,
                                   "simulated_clv": row.clv_mean, "simulated_se": row.clv_se,
                                   "z": (row.clv_mean - value) / row.clv_se})
    simulated = pd.DataFrame(simulated_rows)

    cohort = spec.config("cohort", quick)
    survival = survival_validation_table(cohort, params.survivors, params.holdout, policy=params.cohort_policy,
                                         threads=threads)
    fit = sbg_fit(list(params.survivors))
    periods = len(params.survivors) + len(params.holdout)
    frame = pd.concat([_with_panel(exact, "markov_exact"), _with_panel(simulated, "markov_simulated"),
                       _with_panel(survival, "survival")], ignore_index=True)
    facts = {**_size_facts(markov), "cohort_customers": cohort.population.customers,
             "cohort_replications": cohort.run.replications, "alpha": fit.alpha, "beta": fit.beta,
             "max_abs_z": float(simulated["z"].abs().max()), "fit_periods": len(params.survivors) - 1,
             "periods": periods - 1, "horizons": ", ".join(str(h) for h in params.horizons)}
    return FigureData(frame, facts)


def _draw_validation(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels

    table = data.table
    figure, axes = plt.subplots(1, 2, figsize=(11.5, 4.3), width_ratios=[1.3, 1])
    plot_markov_validation(table[table["panel"] == "markov_exact"], table[table["panel"] == "markov_simulated"],
                           ax=axes[0])
    axes[0].set_title("Markov-reducible model: CLV, closed form vs simulated")
    plot_survival_validation(table[table["panel"] == "survival"], ax=axes[1])
    axes[1].set_title(f"sBG survival (α = {data.facts['alpha']:.3f}, β = {data.facts['beta']:.3f})")
    label_panels(axes)
    return figure


def _market_columns(market: pd.DataFrame, cohort: int) -> pd.DataFrame:
    """Per-period means over replications: live customers and word-of-mouth joins per
    cohort customer, exit rates by segment, cumulative discounted net cash per cohort customer."""
    grouped = market.groupby("period", sort=True)
    sums = grouped[["live", "live_relationship", "live_transactional", "exits_relationship", "exits_transactional",
                    "joined_word_of_mouth", "deterred", "cash_value"]].sum()
    replications = market["replication"].nunique()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame({
            "period": sums.index.to_numpy(),
            "live_per_cohort": sums["live"].to_numpy() / (replications * cohort),
            "joined_word_of_mouth_per_1000": 1000.0 * sums["joined_word_of_mouth"].to_numpy() / (replications * cohort),
            "exit_rate_relationship": (sums["exits_relationship"] / sums["live_relationship"]).to_numpy(),
            "exit_rate_transactional": (sums["exits_transactional"] / sums["live_transactional"]).to_numpy(),
            "cash_value_cumulative": np.cumsum(sums["cash_value"].to_numpy()) / (replications * cohort),
            "competitor": grouped["competitor"].max().to_numpy().astype(bool),
        })
    return out


def _build_agent_effects(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    try:
        from sim.engines.market.engine import simulate_market
    except ImportError as error:
        return FigureData(pd.DataFrame(), {}, status=f"{_SKIPPED}: agent engine not available ({error})")
    params = spec.parameters(quick)
    frames = []
    facts = {}
    entry = None
    for scenario in params.scenarios:
        config = spec.config(scenario, quick)
        facts.update(_size_facts(config))
        keep = [policy.model_dump(mode="python") for policy in config.policies if policy.name == params.policy]
        config = config.with_overrides(policies=keep)
        result = simulate_market(config)
        market = result.market[result.market["policy"] == params.policy]
        table = _market_columns(market, config.population.customers)
        table.insert(0, "scenario", scenario)
        frames.append(table)
        competitor = config.market.competitor
        if competitor.enabled:
            entry = competitor.enters_at
            facts["competitor_enters_at"] = competitor.enters_at
            facts["competitor_exit_odds"] = (f"relationship × {competitor.exit_odds.relationship:g}, "
                                             f"transactional × {competitor.exit_odds.transactional:g}")
    table = pd.concat(frames, ignore_index=True)
    facts["policy"] = params.policy
    facts["entry"] = entry
    return FigureData(table, facts)


def _draw_agent_effects(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.style import label_panels, policy_colors

    table = data.table
    scenarios = list(dict.fromkeys(table["scenario"]))
    colors = policy_colors(scenarios)
    entry = data.facts.get("entry")
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.0))
    plot_market_series(table, "live_per_cohort", ax=axes[0], colors=colors, entry=entry)
    axes[0].set_ylabel("live customers per cohort customer")
    axes[0].set_title("Customers in the market")
    exits = table.melt(id_vars=["scenario", "period"], value_vars=["exit_rate_relationship", "exit_rate_transactional"],
                       var_name="segment", value_name="exit_rate")
    for scenario in scenarios:
        for segment, style in (("exit_rate_relationship", "-"), ("exit_rate_transactional", "--")):
            rows = exits[(exits["scenario"] == scenario) & (exits["segment"] == segment)]
            smooth = rows["exit_rate"].rolling(6, min_periods=1, center=True).mean()
            axes[1].plot(rows["period"], smooth, color=colors[scenario], linestyle=style)
    if entry is not None:
        axes[1].axvline(entry, color="#636363", linestyle=":", linewidth=1.0)
    axes[1].set_xlabel("period")
    axes[1].set_ylabel("exits per live customer (6-period moving mean)")
    axes[1].set_title("Exit rate by segment")
    from matplotlib.lines import Line2D

    axes[1].legend(handles=[Line2D([], [], color="black", linestyle="-", label="relationship customers"),
                            Line2D([], [], color="black", linestyle="--", label="transactional customers")],
                   loc="upper left")
    axes[1].set_ylim(0, None)
    plot_market_series(table, "cash_value_cumulative", ax=axes[2], colors=colors, entry=entry)
    axes[2].set_ylabel("cumulative discounted net cash per cohort customer")
    axes[2].set_title("Value to the firm")
    axes[2].get_legend().remove()
    label_panels(axes)
    return figure


# --------------------------------------------------------------------------- caption facts, before work
# What each builder puts in FigureData.facts, known from the configs alone: the values
# themselves where they do not need a simulation, else a stand-in of the same type
# (tests/test_figures.py checks the names and types against the built figures).


def _main_size_facts(spec, parameters, configs) -> dict:
    return _size_facts(configs["main"])


def _lifecycle_curve_facts(spec, parameters, configs) -> dict:
    return {**_size_facts(configs["main"]), "policy": parameters.policy, "tenure_step": parameters.tenure_step,
            "min_customer_periods": parameters.min_customer_periods}


def _stage_occupancy_facts(spec, parameters, configs) -> dict:
    config = configs["main"]
    return {**_size_facts(config), "policies": ", ".join(parameters.policies or config.policy_names)}


def _satisfaction_loyalty_facts(spec, parameters, configs) -> dict:
    config = configs["main"]
    loy = config.loyalty
    return {**_size_facts(config), "policy": parameters.policy, "defection_threshold": loy.defection_threshold,
            "affection_threshold": loy.affection_threshold, "indifference_low": loy.indifference_low,
            "indifference_high": loy.indifference_high, "min_customer_periods": parameters.min_customer_periods}


def _satisfaction_trap_facts(spec, parameters, configs) -> dict:
    config = configs["main"]
    facts = _size_facts(config)
    for policy in parameters.policies or config.policy_names:
        facts.update({f"clv_{policy}": 0.0, f"spend_{policy}": 0.0, f"satisfaction_{policy}": 0.0})
    return facts


def _spend_response_facts(spec, parameters, configs) -> dict:
    from sim.model.equations import best_care_spend

    config = configs["main"]
    dyn = config.dynamics
    base = next(policy for policy in config.policies if policy.name == parameters.base_policy)
    return {**_size_facts(config), "base_policy": parameters.base_policy,
            "care_peak_spend": best_care_spend(dyn.care_gain, dyn.care_scale, dyn.annoyance),
            "optimum": ", ".join(f"{stage} {spend:g}" for stage, spend in zip(parameters.stages, parameters.spends)),
            "base_spend": ", ".join(f"{stage} {getattr(base.spend, stage):g}" for stage in parameters.stages)}


def _policy_comparison_facts(spec, parameters, configs) -> dict:
    config = configs["main"]
    return {**_size_facts(config), "reference": parameters.reference, "best_policy": config.policy_names[0],
            "efficient": ", ".join(config.policy_names)}


def _value_concentration_facts(spec, parameters, configs) -> dict:
    from sim.tables.result import VALUE_GROUPS

    config = configs["main"]
    facts = _size_facts(config)
    for policy in parameters.policies or config.policy_names:
        for group, _ in VALUE_GROUPS:
            facts.update({f"{policy}_{group}_value_share": 0.0, f"{policy}_{group}_negative_share": 0.0})
    return facts


def _validation_facts(spec, parameters, configs) -> dict:
    cohort = configs["cohort"]
    return {**_size_facts(configs["markov"]), "cohort_customers": cohort.population.customers,
            "cohort_replications": cohort.run.replications, "alpha": 0.0, "beta": 0.0, "max_abs_z": 0.0,
            "fit_periods": len(parameters.survivors) - 1,
            "periods": len(parameters.survivors) + len(parameters.holdout) - 1,
            "horizons": ", ".join(str(h) for h in parameters.horizons)}


def _agent_effects_facts(spec, parameters, configs) -> dict:
    facts, entry = {}, None
    for scenario in parameters.scenarios:
        config = configs[scenario]
        facts.update(_size_facts(config))
        competitor = config.market.competitor
        if competitor.enabled:
            entry = competitor.enters_at
            facts["competitor_enters_at"] = competitor.enters_at
            facts["competitor_exit_odds"] = (f"relationship × {competitor.exit_odds.relationship:g}, "
                                             f"transactional × {competitor.exit_odds.transactional:g}")
    facts["policy"] = parameters.policy
    facts["entry"] = entry
    return facts


FIGURE_KINDS: dict[str, _Kind] = {
    "lifecycle_curve": _Kind(_LifecycleParams, ("main",), _build_lifecycle_curve, _draw_lifecycle_curve,
                             _lifecycle_curve_facts),
    "stage_occupancy": _Kind(_PoliciesParams, ("main",), _build_stage_occupancy, _draw_stage_occupancy,
                             _stage_occupancy_facts),
    "lifecycle_patterns": _Kind(_Params, ("main",), _build_lifecycle_patterns, _draw_lifecycle_patterns,
                                _main_size_facts),
    "satisfaction_loyalty": _Kind(_LoyaltyParams, ("main",), _build_satisfaction_loyalty, _draw_satisfaction_loyalty,
                                  _satisfaction_loyalty_facts),
    "satisfaction_trap": _Kind(_PoliciesParams, ("main",), _build_satisfaction_trap, _draw_satisfaction_trap,
                               _satisfaction_trap_facts),
    "spend_response": _Kind(_ResponseParams, ("main",), _build_spend_response, _draw_spend_response,
                            _spend_response_facts),
    "policy_comparison": _Kind(_ComparisonParams, ("main",), _build_policy_comparison, _draw_policy_comparison,
                               _policy_comparison_facts),
    "clv_decomposition": _Kind(_Params, ("main",), _build_clv_decomposition, _draw_clv_decomposition,
                               _main_size_facts),
    "value_concentration": _Kind(_ValueParams, ("main",), _build_value_concentration, _draw_value_concentration,
                                 _value_concentration_facts),
    "validation": _Kind(_ValidationParams, ("markov", "cohort"), _build_validation, _draw_validation,
                        _validation_facts),
    "agent_effects": _Kind(_AgentParams, None, _build_agent_effects, _draw_agent_effects, _agent_effects_facts),
}
"""The figure kinds: parameters, experiments needed, data builder and drawer."""


def figure_data(spec: FigureSpec, *, quick: bool = False, threads: int | None = None) -> FigureData:
    """Simulate and tabulate what figure ``spec`` draws (no files written).

    Parameters
    ----------
    spec
        A :class:`FigureSpec` (:func:`load_figure_spec`).
    quick
        Use the spec's quick sizes.
    threads
        numba threads (never changes the numbers).
    """
    return FIGURE_KINDS[spec.kind].build(spec, quick, threads)


def draw_figure(spec: FigureSpec, data: FigureData):
    """Draw ``data`` (from :func:`figure_data`) in the project style; returns the Figure
    (``None`` for a skipped figure)."""
    if data.status != "ok":
        return None
    from sim.plotting.style import figure_style

    with figure_style():
        figure = FIGURE_KINDS[spec.kind].draw(spec, data)
        figure.suptitle(f"Figure {spec.number}. {spec.title}", x=0.01, ha="left", fontsize=11, fontweight="bold")
    return figure


class _Facts(dict):
    def __missing__(self, key):
        raise KeyError(key)


def _format_caption(caption: str, facts: dict) -> str:
    return " ".join(caption.split()).format_map(_Facts(facts))


def figure_caption(spec: FigureSpec, data: FigureData) -> str:
    """The figure's caption with its placeholders filled from ``data.facts`` (whitespace
    runs collapsed to one space), as written to ``<name>.txt``.

    Raises
    ------
    ValueError
        If the caption uses a placeholder the data does not provide, or is not a valid
        template (:func:`load_figure_spec` refuses both before any work).
    """
    try:
        return _format_caption(spec.caption, data.facts)
    except KeyError as error:
        raise ValueError(f"{spec.path}: figure.caption uses {{{error.args[0]}}}, which the figure does not provide; "
                         f"available: {', '.join(sorted(data.facts))}") from None
    except (IndexError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{spec.path}: figure.caption is not a valid caption template: {error}") from None


# =========================================================================== making the files


@dataclasses.dataclass
class FigureRecord:
    """What :func:`make_figures` made for one figure (one entry of ``manifest.json``)."""

    name: str
    number: int
    kind: str
    title: str
    caption: str
    status: str
    files: list
    command: str
    quick: bool
    sizes: dict
    seconds: float
    created: str
    config: str = ""


def _command(name: str | None, quick: bool, out: Path, config_dir: Path) -> str:
    parts = ["sim", "figures"]
    if quick:
        parts.append("--quick")
    if name is not None:
        parts += ["--only", name]
    if out != (DEFAULT_QUICK_OUT if quick else DEFAULT_OUT):
        parts += ["--out", str(out)]
    if config_dir != DEFAULT_CONFIG_DIR:
        parts += ["--configs", str(config_dir)]
    return " ".join(shlex.quote(part) for part in parts)


def make_figures(out: str | Path | None = None, *, quick: bool = False, only: Sequence[str] | None = None,
                 config_dir: str | Path = DEFAULT_CONFIG_DIR, threads: int | None = None,
                 log: Callable[[str], None] | None = None) -> list[FigureRecord]:
    """Regenerate figures: PNG, SVG, CSV of the plotted data and caption, plus the index.

    Parameters
    ----------
    out
        Output folder (default ``results/figures``, or ``results/figures-quick`` with
        ``quick``). Files of the figures made are overwritten; the index
        (``README.md``, ``manifest.json``) keeps the entries of figures not remade.
    quick
        Small sizes (for CI and notebooks).
    only
        Figure names (file stems of ``config_dir``) to make; all if ``None``.
    config_dir
        Folder of the figure TOML files.
    threads
        numba threads (never changes the numbers).
    log
        Called with one progress line per figure (e.g. ``print``).

    Returns
    -------
    list of FigureRecord
        One per figure made, in figure-number order.

    Raises
    ------
    ConfigError
        For a bad figure config (before any simulation).
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # a script or the CLI: no display needed
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.io.results import atomic_write_text, git_commit, package_versions
    from sim.plotting.style import save_figure

    config_dir = Path(config_dir)
    out = Path(out) if out is not None else (DEFAULT_QUICK_OUT if quick else DEFAULT_OUT)
    _check_threads(threads)
    specs = load_figure_specs(config_dir, only)  # validates everything first
    out.mkdir(parents=True, exist_ok=True)
    if not (out / RUN_MARKER).exists():  # a sim folder from now on, even if this run is interrupted
        atomic_write_text(out / RUN_MARKER, "a sim figures folder; manifest.json marks it complete\n")
    records = []
    started_all = time.perf_counter()
    cpu_started = time.process_time()
    for spec in specs:
        started = time.perf_counter()
        data = figure_data(spec, quick=quick, threads=threads)
        files = []
        if data.status == "ok":
            caption = figure_caption(spec, data)
            figure = draw_figure(spec, data)
            files += [path.name for path in save_figure(figure, out / f"{spec.name}.png")]
            plt.close(figure)
            files.append(atomic_write_text(out / f"{spec.name}.csv", data.table.to_csv(index=False)).name)
        else:
            caption = f"{spec.title}: {data.status}."
            for suffix in (".png", ".svg", ".csv"):
                (out / f"{spec.name}{suffix}").unlink(missing_ok=True)
        files.append(atomic_write_text(out / f"{spec.name}.txt",
                                       f"Figure {spec.number}. {spec.title}\n\n{caption}\n").name)
        seconds = time.perf_counter() - started
        sizes = {**spec.sizes(quick), "params": spec.quick["params"] if quick else spec.full["params"]}
        record = FigureRecord(name=spec.name, number=spec.number, kind=spec.kind, title=spec.title, caption=caption,
                              status=data.status, files=files, command=_command(spec.name, quick, out, config_dir),
                              quick=quick, sizes=sizes, seconds=round(seconds, 2),
                              created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              config=_relative(spec.path, out))
        records.append(record)
        if log is not None:
            log(f"  {spec.number:>2}. {spec.name:<22} {data.status:<8} {seconds:6.1f} s")
    total = time.perf_counter() - started_all
    cpu = time.process_time() - cpu_started
    manifest_path = out / "manifest.json"
    previous = {}
    if manifest_path.exists():
        try:
            previous = {entry["name"]: entry for entry in json.loads(manifest_path.read_text())["figures"]}
        except (ValueError, KeyError, TypeError):
            previous = {}
    entries = {**previous, **{record.name: dataclasses.asdict(record) for record in records}}
    manifest = {
        "command": _command(",".join(only) if only else None, quick, out, config_dir),
        "quick": quick,
        "configs": str(config_dir),
        "configs_link": _relative(config_dir, out) + "/",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(total, 1),
        "cpu_seconds": round(cpu, 1),
        "versions": package_versions(),
        "git": git_commit(),
        "platform": {"machine": platform.machine(), "system": platform.system(), "cpus": os.cpu_count()},
        "figures": sorted(entries.values(), key=lambda entry: entry["number"]),
    }
    if not only:
        manifest["full_run_wall_seconds"] = round(total, 1)
        manifest["full_run_cpu_seconds"] = round(cpu, 1)
    else:
        previous_manifest = _read_manifest(manifest_path)
        for key in ("full_run_wall_seconds", "full_run_cpu_seconds"):
            if key in previous_manifest:
                manifest[key] = previous_manifest[key]
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    atomic_write_text(out / "README.md", _index(manifest, out))
    return records


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` with forward slashes (a link in the index)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _index(manifest: dict, out: Path) -> str:
    quick = manifest["quick"]
    lines = [
        "# Figures" + (" (quick sizes)" if quick else ""),
        "",
        "Made by `sim figures" + (" --quick" if quick else "") + "` from the configs in "
        f"[`{manifest.get('configs', 'experiments/figures')}/`]({manifest.get('configs_link', '../../experiments/figures/')}); "
        "regenerate one figure with the command in its "
        "entry. Each figure comes with `<name>.csv`, exactly the data drawn (a `panel` column separates panels), "
        "and `<name>.txt`, its caption. Everything is simulated by the project's own engines from versioned "
        "configs and fixed seeds: the same command gives the same numbers.",
        "",
    ]
    wall = manifest.get("full_run_wall_seconds")
    machine = manifest.get("platform", {})
    if wall is not None:
        cpu = manifest.get("full_run_cpu_seconds")
        lines += [f"Whole run: {wall:.0f} s wall time" + (f" ({cpu:.0f} s CPU time)" if cpu is not None else "")
                  + f" on {machine.get('cpus', '?')} CPU cores ({machine.get('system', '')} {machine.get('machine', '')}), "
                  f"sim {manifest.get('versions', {}).get('sim', '?')}, numba {manifest.get('versions', {}).get('numba', '?')}. "
                  "SVGs are written next to the PNGs but not committed (regenerate them with the command).",
                  ""]
    lines += ["| # | figure | files | customers × replications | time | command |", "|---|---|---|---|---|---|"]
    for entry in manifest["figures"]:
        sizes = entry["sizes"]
        size = f"{sizes['customers']:,} × {sizes['replications']}" + (f", H = {sizes['horizon']}" if sizes.get("horizon") else "")
        files = ", ".join(f"[{name.rsplit('.', 1)[-1]}]({name})" for name in entry["files"])
        if entry.get("config"):
            files += f", [config]({entry['config']})"
        status = "" if entry["status"] == "ok" else f" — **{entry['status']}**"
        lines.append(f"| {entry['number']} | [{entry['title']}](#{entry['number']}-{_anchor(entry['title'])}){status} "
                     f"| {files} | {size} | {entry['seconds']:.1f} s | `{entry['command']}` |")
    lines.append("")
    for entry in manifest["figures"]:
        lines += [f"## {entry['number']}. {entry['title']}", ""]
        if entry["status"] == "ok":
            lines += [f"![{entry['title']}]({entry['name']}.png)", ""]
        lines += [entry["caption"], "", f"`{entry['command']}`", ""]
    return "\n".join(lines)


def _anchor(title: str) -> str:
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return keep.strip().replace(" ", "-")


# =========================================================================== command line


def _threads_limit() -> int:
    from sim.model.sections import RunConfig

    return next(item.le for item in RunConfig.model_fields["threads"].metadata if getattr(item, "le", None) is not None)


def _check_threads(threads) -> None:
    """``threads`` is None or a whole number in [0, run.threads' upper bound]; else ValueError."""
    if threads is None:
        return
    limit = _threads_limit()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 0 <= threads <= limit:
        raise ValueError(f"--threads {threads!r}: must be a whole number in [0, {limit}] (numba threads, 0 = all "
                         "cores; the bound of run.threads)")


def _manifest_problem(out: Path, force: bool) -> str | None:
    """A folder whose ``manifest.json`` is not a figure set's (a ``sim run`` or ``sim optimize``
    result: it has ``experiment`` and ``files``, no ``figures`` list) is not overwritten
    without ``--force``: making figures there would replace that manifest."""
    path = Path(out) / "manifest.json"
    if force or not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict) and isinstance(manifest.get("figures"), list):
        return None
    what = ("a result of sim run or sim optimize (its manifest lists 'experiment' and 'files', not 'figures')"
            if isinstance(manifest, dict) and "experiment" in manifest else "not a figure set's")
    return (f"--out {out}: its manifest.json is {what}; making figures there would replace it. "
            "Choose another --out, or pass --force to write into it anyway")


def _figures_command(args) -> int:
    from sim.cli.main import EXIT_BAD_INPUT

    only = None
    if args.only:
        names = [name.strip() for item in args.only for name in item.split(",")]
        if not all(names):
            print(f"sim: --only {','.join(args.only)!r}: an empty figure name; give figure names (file stems, "
                  "repeat --only or separate with commas), or leave --only out to make every figure", file=sys.stderr)
            return EXIT_BAD_INPUT
        only = names
    try:
        _check_threads(args.threads)
        if args.list:
            for spec in load_figure_specs(args.configs):
                print(f"{spec.number:>2}. {spec.name:<22} {spec.kind:<22} {spec.title}")
            return 0
        specs = load_figure_specs(args.configs, only)
    except (ConfigError, ValueError) as error:
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = args.out if args.out is not None else (DEFAULT_QUICK_OUT if args.quick else DEFAULT_OUT)
    try:  # the rules of sim.io.paths: never the root or home folder, nor a folder of other files
        check_output_dir(out, force=args.force, suffixes=FIGURE_SUFFIXES)
    except UnsafeOutputError as error:
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = _manifest_problem(out, args.force)
    if problem:
        print(f"sim: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"sim figures: {len(specs)} figure{'s' if len(specs) != 1 else ''} "
          f"({'quick' if args.quick else 'full'} sizes) -> {out}/")
    started = time.perf_counter()
    try:
        records = make_figures(out, quick=args.quick, only=only, config_dir=args.configs, threads=args.threads,
                               log=print)
    except (ConfigError, ValueError) as error:  # load_figure_specs refuses these before work; never a traceback
        print(f"sim: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    skipped = [record for record in records if record.status != "ok"]
    print(f"wrote {out}/ ({len(records) - len(skipped)} figures, README.md, manifest.json) "
          f"in {time.perf_counter() - started:.1f} s")
    for record in skipped:
        print(f"  figure {record.number} ({record.name}): {record.status}")
    return 0


def register(subparsers) -> None:
    """Add ``sim figures`` to the command line (see :mod:`sim.cli.main`)."""
    from sim.cli.main import _non_negative_int

    parser = subparsers.add_parser(
        "figures", help="regenerate the field's figures (PNG, SVG, data CSV, caption) into results/figures/",
        description="Regenerate every figure from the versioned configs in experiments/figures/: for each a PNG, "
                    "an SVG, the CSV of the plotted data and a caption, plus README.md (index) and manifest.json.",
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"small sizes (CI, notebooks); writes to {DEFAULT_QUICK_OUT}/ unless --out is given")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="make only these figures (file stems; repeat or separate with commas)")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {DEFAULT_OUT}/)")
    parser.add_argument("--configs", type=Path, default=DEFAULT_CONFIG_DIR,
                        help=f"folder of figure configs (default {DEFAULT_CONFIG_DIR}/)")
    parser.add_argument("--threads", type=_non_negative_int, default=None,
                        help="numba threads (0 = all; never changes the numbers)")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder that holds other files (never the root or home folder; "
                             "rules in sim/paths.py)")
    parser.set_defaults(handler=_figures_command)
