"""The tables the gallery's figures draw that are not a run's own tables: per-tenure stage means
from runs with nested horizons, the loyalty curve, the Lorenz curve, the spend-response
configs, the survival validation and the market columns. They only select, aggregate and
combine the tidy tables of :func:`sim.project`, :func:`sim.simulate_market` and the closed
forms; no model logic.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import pandas as pd

from sim.model.config import ExperimentConfig
from sim.model.names import STAGES
from sim.runs.projection import project

__all__ = [
    "tenure_stage_table",
    "loyalty_curve_table",
    "lorenz_table",
    "response_config",
    "ABC_REFERENCE",
    "survival_validation_table",
]


def _by_stage_sums(result, policy: str) -> pd.DataFrame:
    """Per-stage sums (not means) over customer-periods of one policy's ``by_stage`` rows."""
    rows = result.by_stage[result.by_stage["policy"] == policy].set_index("stage").loc[list(STAGES)]
    count = rows["customer_periods"].to_numpy(dtype=float)
    sums = {"customer_periods": count}
    for column in ("loyalty_mean", "profit_mean", "satisfaction_mean", "spend_mean"):
        sums[column] = np.where(count > 0, rows[column].to_numpy(dtype=float) * count, 0.0)
    return pd.DataFrame(sums, index=list(STAGES))


def tenure_stage_table(
    config: ExperimentConfig,
    tenure_step: int,
    *,
    policies: Sequence[str] | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
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
        raise ValueError(
            f"policies = {unknown}: not in the config; policies: {', '.join(config.policy_names)}"
        )
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
                row = {
                    "policy": name,
                    "tenure_start": start,
                    "tenure_end": stop,
                    "tenure_mid": (start + stop - 1) / 2,
                    "stage": stage,
                    "customer_periods": int(round(count)),
                }
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
    grid = np.unique(
        np.concatenate(
            [np.linspace(0.0, 1.0, int(points)), [loy.defection_threshold, loy.affection_threshold]]
        )
    )
    loyalty = loyalty_from_satisfaction.py_func(
        grid, loy.defection_threshold, loy.affection_threshold, loy.indifference_low, loy.indifference_high
    )
    zone = np.where(
        grid < loy.defection_threshold,
        "defection",
        np.where(grid < loy.affection_threshold, "indifference", "affection"),
    )
    return pd.DataFrame({"satisfaction": grid, "loyalty": np.asarray(loyalty, dtype=float), "zone": zone})


def lorenz_table(clv: dict, points: int = 201) -> pd.DataFrame:
    """The value-concentration (Lorenz/ABC) curve of per-customer CLVs, per policy.

    Customers are ranked by CLV, highest first; at customer share ``q`` (``points`` values
    from 0 to 1) the curve gives the share of the total CLV earned by the top
    ``round(q n)`` customers. Because some customers have negative CLV (docs/model.md §4.2: the
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
        frames.append(
            pd.DataFrame(
                {
                    "policy": policy,
                    "customer_share": share,
                    "value_share": cumulative[ranks] / total if total != 0 else np.nan,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def response_config(
    config: ExperimentConfig, base_policy: str, stages: Sequence[str], spends: Sequence[float]
) -> ExperimentConfig:
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
        raise ValueError(
            f"base_policy = {base_policy!r}: no such policy; policies: {', '.join(config.policy_names)}"
        )
    if not isinstance(base, StagePolicy):
        raise ValueError(
            f"base_policy = {base_policy!r}: must be a policy of kind 'stage', not {base.kind!r}"
        )
    bad = [stage for stage in stages if stage not in STAGES]
    if bad:
        raise ValueError(f"stages = {bad}: allowed: {', '.join(STAGES)}")
    if 1 + len(stages) * len(spends) > 64:
        raise ValueError(
            f"{len(stages)} stages x {len(spends)} spends + 1 = {1 + len(stages) * len(spends)} policies; "
            "at most 64 are allowed: use fewer spends"
        )
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


#: The ABC rule of thumb (docs/model.md §4.2): cumulative (customer share, value share).
ABC_REFERENCE = pd.DataFrame(
    {"customer_share": [0.0, 0.05, 0.20, 1.0], "value_share": [0.0, 0.50, 0.80, 1.0]}
)


def survival_validation_table(
    cohort: ExperimentConfig,
    survivors: Sequence[int],
    holdout: Sequence[int] = (),
    *,
    policy: str | None = None,
    customers: int | None = None,
    replications: int | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Observed, sBG-fitted and simulated survival of a cohort (the survival panel of the
    ``validation`` figure).

    Fits the shifted-beta-geometric model to ``survivors`` (:func:`sim.analytic.sbg_fit`;
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
    from sim.analytic.sbg import sbg_fit, sbg_survival

    fit = sbg_fit(list(survivors))
    periods = len(survivors) + len(holdout)
    cohort = cohort.with_overrides(
        population={"churn_propensity": {"alpha": float(fit.alpha), "beta": float(fit.beta)}},
        run={"horizon": periods - 1},
    )
    result = project(cohort, threads=threads, customers=customers, replications=replications)
    cohort = result.config
    policy = policy or cohort.policy_names[0]
    ended = result.stages[(result.stages["policy"] == policy) & (result.stages["stage"] == "ended")]
    simulated_survival = 1.0 - ended.set_index("period")["share"].loc[range(periods)].to_numpy()
    n_total = cohort.population.customers * cohort.run.replications
    observed = np.asarray(list(survivors) + list(holdout), dtype=float)
    t = np.arange(periods)
    fitted = np.asarray(sbg_survival(fit.alpha, fit.beta, t), dtype=float)
    return pd.DataFrame(
        {
            "period": t,
            "observed_survivors": observed.astype(np.int64),
            "observed_survival": observed / observed[0],
            "observed_role": ["fit"] * len(survivors) + ["holdout"] * len(holdout),
            "fitted_survival": fitted,
            "simulated_survival": simulated_survival,
            "simulated_se": np.sqrt(simulated_survival * (1.0 - simulated_survival) / n_total),
        }
    )


def _market_columns(market: pd.DataFrame, cohort: int) -> pd.DataFrame:
    """Per-period means over replications: live customers and word-of-mouth joins per
    cohort customer, exit rates by segment, cumulative discounted net cash per cohort customer.
    """
    grouped = market.groupby("period", sort=True)
    sums = grouped[
        [
            "live",
            "live_relationship",
            "live_transactional",
            "exits_relationship",
            "exits_transactional",
            "joined_word_of_mouth",
            "deterred",
            "cash_value",
        ]
    ].sum()
    replications = market["replication"].nunique()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame(
            {
                "period": sums.index.to_numpy(),
                "live_per_cohort": sums["live"].to_numpy() / (replications * cohort),
                "joined_word_of_mouth_per_1000": 1000.0
                * sums["joined_word_of_mouth"].to_numpy()
                / (replications * cohort),
                "exit_rate_relationship": (sums["exits_relationship"] / sums["live_relationship"]).to_numpy(),
                "exit_rate_transactional": (
                    sums["exits_transactional"] / sums["live_transactional"]
                ).to_numpy(),
                "cash_value_cumulative": np.cumsum(sums["cash_value"].to_numpy()) / (replications * cohort),
                "competitor": grouped["competitor"].max().to_numpy().astype(bool),
            }
        )
    return out
