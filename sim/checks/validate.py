r"""``sim validate``: the jitted simulator held against closed-form CLV and retention models.

Every check runs a cohort through :func:`sim.project` (the project's own numba core) in a
setting where the lifecycle model reduces to a textbook model, and compares the simulated
mean with the exact value: ``z = (simulated - exact) / SE``. A check fails when
``|z| > 4`` (:data:`Z_LIMIT`; about 6e-5 false alarms per check when the simulator is right).

The settings and their closed forms
-----------------------------------
``markov``: the Markov-reducible lifecycle model (no satisfaction feedback, no tenure or
loyalty effects on cash; :mod:`sim.analytic.lifecycle_chain`) is a 5-state chain per segment;
expected CLV is Pfeifer & Carraway's (2000) :func:`~sim.analytic.lifecycle_markov_clv`
and the stage occupancy at the start of period ``t`` is ``e_exploration P^t``, mixed over
the two segments.

``constant_retention``: customers stay in exploration (``advance.exploration = 0``) and end
with constant probability ``1 - r`` per period (``exit.exploration``, adjusted by the segment's
exit odds ``omega``: ``1 - r = omega o / (1 + omega o)``, ``o = p0 / (1 - p0)``). Survival to
the start of period ``t`` is ``r**t``; with constant reward ``R`` per active period (received
at the period's END, ``delta = 1 / (1 + d)``) over a horizon of ``H`` periods::

    CLV = R sum_{t=0}^{H-1} r^t delta^(t+1) - acquisition
        = R margin_multiple(r, d, H, timing="start") / (1 + d) - acquisition

(Gupta & Lehmann's multiple with the first margin at time 0, shifted one period because the
model pays at the end of each period the customer *starts*; equivalently ``R / r`` times the
``timing="end"`` multiple), and equals ``markov_clv`` of the two-state chain
``[[r, 1 - r], [0, 1]]`` with ``timing="end"``.

``beta_heterogeneous``: Beta-distributed churn propensity (M8, ``population.churn_propensity``)
with every stage exit off: survival is shifted-beta-geometric,
``S(t) = B(alpha, beta + t) / B(alpha, beta)`` (Fader & Hardie 2007, :func:`sim.analytic.sbg_survival`),
whatever the rest of the dynamics; with constant reward ``R``::

    CLV = R L_H - acquisition,   L_H = sum_{t=0}^{H-1} S(t) delta^(t+1)
        = delta [DEL(d) - delta^H S(H) (1 + delta DERL(d | H))]

:func:`sbg_discounted_periods`, from Fader & Hardie's (2010) ``DEL(d) = sum_{t>=0} S(t)
delta^t`` (:func:`sim.analytic.sbg_del`, cash at the START of each period) and
``DERL(d | n) = sum_{t>n} S(t)/S(n) delta^(t-n-1)`` (:func:`sim.analytic.sbg_derl`): the model's
END-of-period timing multiplies by ``delta``, and the finite horizon removes the tail
``sum_{t>=H} S(t) delta^t = delta^H S(H) [1 + delta DERL(d | H)]``.

Standard errors: for a mean CLV, ``clv_se`` of :attr:`sim.ProjectionResult.summary`
(sample sd / sqrt(n) over the n independent simulated customers); for a share of the
cohort, the binomial ``sqrt(p (1 - p) / n)`` at the exact ``p``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.analytic.margin import margin_multiple
from sim.analytic.markov import markov_clv
from sim.analytic.sbg import sbg_del, sbg_derl, sbg_survival
from sim.model.config import ExperimentConfig, config_from_dict

__all__ = [
    "Z_LIMIT",
    "QUICK_CUSTOMERS",
    "FULL_CUSTOMERS",
    "markov_reducible_config",
    "sbg_discounted_periods",
    "constant_retention_clv",
    "exit_probability",
    "run_checks",
    "scenarios",
]

#: A check fails when the simulated value is more than this many standard errors from the exact one.
Z_LIMIT = 4.0
#: Customers per scenario in quick mode and in the full run.
QUICK_CUSTOMERS = 40_000
FULL_CUSTOMERS = 400_000
#: Seed of the validation runs.
DEFAULT_SEED = 20261122


def markov_reducible_config(**sections: Any) -> ExperimentConfig:
    """The baseline model with satisfaction feedback and tenure/loyalty cash effects off.

    ``transitions.loyalty_effect_advance = loyalty_effect_exit = 0``,
    ``economics.share_of_wallet_growth = 0``, no cross-selling, no cost-to-serve saving, no
    price premium and no word of mouth (:func:`~sim.analytic.markov_reducible_problems`);
    ``sections`` override or extend these (section dicts are merged one level deep).
    """
    data: dict[str, Any] = {
        "transitions": {"loyalty_effect_advance": 0.0, "loyalty_effect_exit": 0.0},
        "economics": {
            "share_of_wallet_growth": 0.0,
            "cross_sell_share": {},
            "cost_to_serve_floor": 1.0,
            "price_premium": {},
        },
        "word_of_mouth": {"talk_probability": 0.0},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return config_from_dict(data)


def sbg_discounted_periods(alpha: float, beta: float, discount: float, horizon: int | None = None) -> float:
    """Expected discounted number of paid periods of an sBG customer, cash at each period's END.

    ``L_H = sum_{t=0}^{H-1} S(t) delta^(t+1)``, ``delta = 1 / (1 + d)``, ``S(t) =
    B(alpha, beta + t) / B(alpha, beta)``: a customer active at the start of period ``t``
    (period 0 counts) pays one unit received at the end of the period. Closed form (module
    docstring)::

        L_H = delta [DEL(d) - delta^H S(H) (1 + delta DERL(d | H))],   L_inf = delta DEL(d)

    with Fader & Hardie's (2010) DEL and DERL (:func:`sim.analytic.sbg_del`,
    :func:`sim.analytic.sbg_derl`). For ``d = 0`` and a finite horizon the finite sum is
    returned (``d = 0`` with ``horizon=None`` needs ``alpha > 1``:
    ``(alpha + beta - 1) / (alpha - 1)``).

    Parameters
    ----------
    alpha, beta : float
        Positive sBG parameters.
    discount : float
        Per-period discount rate ``d >= 0``.
    horizon : int or None
        Periods ``H`` valued (``0 .. H-1``); ``None`` for the infinite horizon.
    """
    if not (alpha > 0 and beta > 0):
        raise ValueError(f"alpha = {alpha!r}, beta = {beta!r}: both must be > 0")
    if not discount >= 0:
        raise ValueError(f"discount = {discount!r}: must be a rate >= 0")
    if horizon is not None and (int(horizon) != horizon or horizon < 0):
        raise ValueError(f"horizon = {horizon!r}: must be None or a whole number >= 0")
    delta = 1.0 / (1.0 + discount)
    if horizon is None:
        return float(delta * sbg_del(alpha, beta, discount))
    horizon = int(horizon)
    if horizon == 0:
        return 0.0
    if discount == 0:
        return float(np.sum(sbg_survival(alpha, beta, np.arange(horizon))))
    tail = (
        delta**horizon
        * sbg_survival(alpha, beta, horizon)
        * (1.0 + delta * sbg_derl(alpha, beta, discount, horizon))
    )
    return float(delta * (sbg_del(alpha, beta, discount) - tail))


def exit_probability(base: float, exit_odds: float) -> float:
    """Per-period exit probability at neutral loyalty with segment odds ``omega`` (M7):
    ``omega o / (1 + omega o)``, ``o = base / (1 - base)`` (``base`` in [0, 1)).
    """
    if not 0.0 <= base < 1.0:
        raise ValueError(f"base = {base!r}: must be in [0, 1)")
    odds = exit_odds * base / (1.0 - base)
    return odds / (1.0 + odds)


def constant_retention_clv(
    reward: float, retention: float, discount: float, horizon: int, acquisition: float
) -> float:
    """Expected CLV with constant retention ``r`` and reward ``R`` per active period, cash at
    the END of each period: ``R margin_multiple(r, d, H, timing="start") / (1 + d) - acquisition``
    (``= R sum_{t<H} r^t delta^(t+1) - acquisition``).
    """
    return float(
        reward * margin_multiple(retention, discount, horizon, timing="start") / (1.0 + discount)
        - acquisition
    )


# --------------------------------------------------------------------------- scenarios


def _exploration_reward(config: ExperimentConfig, spend: float) -> float:
    """Expected cash per active period of a customer who stays in exploration (constant)."""
    eco = config.economics
    return (
        config.population.mean_wallet * eco.share_of_wallet.exploration * eco.margin.exploration
        - eco.cost_to_serve
        - spend
    )


def _share(result, policy: str, stage: str, period: int) -> float:
    stages = result.stages
    row = stages[(stages["policy"] == policy) & (stages["stage"] == stage) & (stages["period"] == period)]
    return float(row["share"].iloc[0])


def _row(group, check, closed_form, exact, simulated, se, n) -> dict:
    if se > 0:
        z = (simulated - exact) / se
    else:
        z = 0.0 if simulated == exact else math.copysign(math.inf, simulated - exact)
    return {
        "group": group,
        "check": check,
        "closed_form": closed_form,
        "exact": float(exact),
        "simulated": float(simulated),
        "se": float(se),
        "z": float(z),
        "customers": int(n),
        "passed": bool(abs(z) <= Z_LIMIT),
    }


def _share_row(group, check, closed_form, exact, simulated, n) -> dict:
    return _row(
        group, check, closed_form, exact, simulated, math.sqrt(max(exact * (1.0 - exact), 0.0) / n), n
    )


def _clv_rows(group, result, exact_by_policy: dict, closed_form: str, label: str) -> list[dict]:
    rows = []
    summary = result.summary.set_index("policy")
    n = int(summary["customers"].iloc[0] * summary["replications"].iloc[0])
    for policy, exact in exact_by_policy.items():
        rows.append(
            _row(
                group,
                f"{label}: mean CLV, policy {policy}",
                closed_form,
                exact,
                summary.loc[policy, "clv_mean"],
                summary.loc[policy, "clv_se"],
                n,
            )
        )
    return rows


def _chain_occupancy(config: ExperimentConfig, policy: str, period: int) -> np.ndarray:
    """Exact share of the cohort in each of the 5 states at the start of ``period``."""
    from sim.analytic.lifecycle_chain import lifecycle_chain
    from sim.model.names import SEGMENTS

    shares = (config.population.relationship_share, 1.0 - config.population.relationship_share)
    occupancy = np.zeros(5)
    for g, segment in enumerate(SEGMENTS):
        if shares[g] == 0.0:
            continue
        P, _ = lifecycle_chain(config, policy, segment)
        occupancy += shares[g] * np.linalg.matrix_power(P, period)[0]
    return occupancy


def _markov_scenarios() -> list[tuple[str, ExperimentConfig, list[tuple[str, int]]]]:
    baseline_rates = markov_reducible_config(
        name="validate_chain_baseline",
        run={"horizon": 60, "replications": 1},
        policies=[
            {"name": "none", "kind": "none"},
            {
                "name": "stage",
                "kind": "stage",
                "spend": {"exploration": 1.0, "formation": 3.0, "stability": 2.0, "decline": 5.0},
            },
            {"name": "value", "kind": "value", "tier_spend": {"A": 5.0, "B": 2.0, "C": 0.5}},
        ],
    )
    fast_quarterly = markov_reducible_config(
        name="validate_chain_quarterly",
        population={"relationship_share": 0.3, "wallet_sigma": 0.6},
        transitions={
            "advance": {"exploration": 0.4, "formation": 0.2},
            "exit": {"exploration": 0.1, "formation": 0.05, "stability": 0.03},
            "churn": 0.3,
            "win_back": 0.25,
            "exit_odds": {"relationship": 0.5, "transactional": 3.0},
        },
        economics={"annual_discount_rate": 0.2, "period_months": 3.0},
        run={"horizon": 40, "replications": 1},
        policies=[
            {"name": "uniform", "kind": "uniform", "spend": 2.5},
            {
                "name": "table",
                "kind": "table",
                "relationship": {"exploration": 1.0, "formation": 2.0, "stability": 3.0, "decline": 0.0},
                "transactional": {"exploration": 0.0, "formation": 1.0, "stability": 0.5, "decline": 4.0},
            },
        ],
    )
    return [
        (
            "lifecycle chain, baseline rates, monthly",
            baseline_rates,
            [("ended", 12), ("stability", 24), ("decline", 36)],
        ),
        (
            "lifecycle chain, fast churn, quarterly",
            fast_quarterly,
            [("ended", 8), ("decline", 4), ("formation", 2)],
        ),
    ]


_EXPLORATION_ECONOMICS = {
    "share_of_wallet": {"exploration": 0.2, "formation": 0.25, "stability": 0.45, "decline": 0.15},
    "margin": {"exploration": 0.4, "formation": 0.25, "stability": 0.3, "decline": 0.2},
}
_EXPLORATION_POLICIES = [
    {"name": "none", "kind": "none"},
    {"name": "uniform", "kind": "uniform", "spend": 1.0},
]


def _constant_retention_scenarios():
    monthly = markov_reducible_config(
        name="validate_constant_monthly",
        population={"relationship_share": 1.0, "wallet_sigma": 0.5},
        transitions={"advance": {"exploration": 0.0, "formation": 0.1}, "exit": {"exploration": 0.1}},
        economics=_EXPLORATION_ECONOMICS,
        run={"horizon": 60, "replications": 1},
        policies=_EXPLORATION_POLICIES,
    )
    transactional = markov_reducible_config(
        name="validate_constant_transactional",
        population={"relationship_share": 0.0, "wallet_sigma": 0.5},
        transitions={
            "advance": {"exploration": 0.0, "formation": 0.1},
            "exit": {"exploration": 0.05},
            "exit_odds": {"relationship": 1.0, "transactional": 2.0},
        },
        economics={**_EXPLORATION_ECONOMICS, "annual_discount_rate": 0.15, "period_months": 3.0},
        run={"horizon": 40, "replications": 1},
        policies=_EXPLORATION_POLICIES,
    )
    return [
        ("constant retention r = 0.9, monthly", monthly, "relationship", (1, 6, 24)),
        ("constant retention, transactional odds x2, quarterly", transactional, "transactional", (1, 4, 16)),
    ]


def _beta_scenarios():
    exits_off = {"exit": {"exploration": 0.0, "formation": 0.0, "stability": 0.0}, "churn": 0.0}
    constant_reward = markov_reducible_config(
        name="validate_sbg_constant_reward",
        population={
            "relationship_share": 1.0,
            "wallet_sigma": 0.5,
            "churn_propensity": {"alpha": 0.8, "beta": 2.5},
        },
        transitions={**exits_off, "advance": {"exploration": 0.0, "formation": 0.1}},
        economics=_EXPLORATION_ECONOMICS,
        run={"horizon": 60, "replications": 1},
        policies=_EXPLORATION_POLICIES,
    )
    full_dynamics = config_from_dict(
        {
            "name": "validate_sbg_full_dynamics",
            "population": {"churn_propensity": {"alpha": 2.0, "beta": 6.0}},
            "transitions": exits_off,
            "run": {"horizon": 36, "replications": 1},
        }
    )
    return constant_reward, full_dynamics


def run_checks(
    quick: bool = True, *, seed: int = DEFAULT_SEED, threads: int | None = None, customers: int | None = None
) -> pd.DataFrame:
    """Run every closed-form check and return one row per check.

    Parameters
    ----------
    quick
        ``QUICK_CUSTOMERS`` (40,000) customers per scenario instead of ``FULL_CUSTOMERS``
        (400,000); the tolerance is in standard errors either way, the full run has about
        3x the power.
    seed
        Seed of every scenario.
    threads
        Numba threads (never changes the numbers).
    customers
        Override the number of customers per scenario.

    Returns
    -------
    DataFrame
        ``group, scenario, check, closed_form, exact, simulated, se, z, customers, passed``
        (``scenario`` names the config in :func:`scenarios`):
        ``z = (simulated - exact) / se``, ``passed = |z| <= 4``. See the module docstring for
        the closed forms and the standard errors.
    """
    from sim.analytic.lifecycle_chain import LIFECYCLE_STATES, lifecycle_markov_clv
    from sim.runs.projection import project

    n = int(customers if customers is not None else (QUICK_CUSTOMERS if quick else FULL_CUSTOMERS))
    if n < 1:
        raise ValueError(f"customers = {customers!r}: must be >= 1")
    rows: list[dict] = []

    def simulate(config):
        return project(config, customers=n, replications=1, seed=seed, threads=threads)

    def tag(config):  # the rows added since the last tag come from this scenario
        for row in rows:
            row.setdefault("scenario", config.name)

    # Markov-reducible lifecycle chains (Pfeifer & Carraway 2000)
    for label, config, occupancy_checks in _markov_scenarios():
        result = simulate(config)
        exact = {policy: lifecycle_markov_clv(config, policy) for policy in config.policy_names}
        rows += _clv_rows("markov", result, exact, "lifecycle_markov_clv (Pfeifer & Carraway 2000)", label)
        policy = config.policy_names[0]
        for state, period in occupancy_checks:
            share = _chain_occupancy(config, policy, period)[LIFECYCLE_STATES.index(state)]
            rows.append(
                _share_row(
                    "markov",
                    f"{label}: share {state} at period {period}",
                    "e_0 P^t (5-state chain)",
                    share,
                    _share(result, policy, state, period),
                    n,
                )
            )
        tag(config)

    # Constant retention (Gupta & Lehmann margin multiple; two-state Pfeifer-Carraway chain)
    for label, config, segment, periods in _constant_retention_scenarios():
        result = simulate(config)
        base_exit = config.transitions.exit.exploration
        odds = getattr(config.transitions.exit_odds, segment)
        retention = 1.0 - exit_probability(base_exit, odds)
        d = config.economics.period_discount_rate
        horizon = config.run.horizon
        acquisition = getattr(config.economics.acquisition_cost, segment)
        for t in periods:
            rows.append(
                _share_row(
                    "constant_retention",
                    f"{label}: survival S({t})",
                    "r^t",
                    retention**t,
                    1.0 - _share(result, config.policy_names[0], "ended", t),
                    n,
                )
            )
        spends = {"none": 0.0, "uniform": 1.0}
        exact_mm = {
            p: constant_retention_clv(
                _exploration_reward(config, spends[p]), retention, d, horizon, acquisition
            )
            for p in config.policy_names
        }
        rows += _clv_rows(
            "constant_retention",
            result,
            exact_mm,
            "R margin_multiple(r, d, H, 'start')/(1+d) - acq (Gupta & Lehmann)",
            f"{label}, vs margin multiple",
        )
        chain = np.array([[retention, 1.0 - retention], [0.0, 1.0]])
        exact_chain = {
            p: float(markov_clv(chain, [_exploration_reward(config, spends[p]), 0.0], d, horizon, "end")[0])
            - acquisition
            for p in config.policy_names
        }
        rows += _clv_rows(
            "constant_retention",
            result,
            exact_chain,
            "markov_clv([[r, 1-r], [0, 1]], timing='end') - acq",
            f"{label}, vs 2-state chain",
        )
        tag(config)

    # Beta-heterogeneous churn (shifted-beta-geometric, Fader & Hardie 2007, 2010)
    constant_reward, full_dynamics = _beta_scenarios()
    result = simulate(constant_reward)
    alpha, beta = (
        constant_reward.population.churn_propensity.alpha,
        constant_reward.population.churn_propensity.beta,
    )
    label = f"sBG alpha = {alpha:g}, beta = {beta:g}, constant reward"
    for t in (1, 3, 12, 48):
        rows.append(
            _share_row(
                "beta_heterogeneous",
                f"{label}: survival S({t})",
                "sbg_survival",
                sbg_survival(alpha, beta, t),
                1.0 - _share(result, "none", "ended", t),
                n,
            )
        )
    d = constant_reward.economics.period_discount_rate
    periods_value = sbg_discounted_periods(alpha, beta, d, constant_reward.run.horizon)
    acquisition = constant_reward.economics.acquisition_cost.relationship
    exact = {
        "none": _exploration_reward(constant_reward, 0.0) * periods_value - acquisition,
        "uniform": _exploration_reward(constant_reward, 1.0) * periods_value - acquisition,
    }
    rows += _clv_rows(
        "beta_heterogeneous",
        result,
        exact,
        "R delta [DEL - delta^H S(H)(1 + delta DERL(H))] - acq (Fader & Hardie 2010)",
        label,
    )
    tag(constant_reward)

    result = simulate(full_dynamics)
    alpha, beta = (
        full_dynamics.population.churn_propensity.alpha,
        full_dynamics.population.churn_propensity.beta,
    )
    label = f"sBG alpha = {alpha:g}, beta = {beta:g}, full lifecycle dynamics"
    for t in (1, 6, 24, 36):
        rows.append(
            _share_row(
                "beta_heterogeneous",
                f"{label}: survival S({t})",
                "sbg_survival",
                sbg_survival(alpha, beta, t),
                1.0 - _share(result, full_dynamics.policy_names[0], "ended", t),
                n,
            )
        )
    tag(full_dynamics)
    columns = [
        "group",
        "scenario",
        "check",
        "closed_form",
        "exact",
        "simulated",
        "se",
        "z",
        "customers",
        "passed",
    ]
    return pd.DataFrame(rows)[columns]


def scenarios() -> dict[str, ExperimentConfig]:
    """The configs :func:`run_checks` simulates, by experiment name (the ``scenario`` column)."""
    configs = [config for _, config, _ in _markov_scenarios()]
    configs += [config for _, config, _, _ in _constant_retention_scenarios()]
    configs += list(_beta_scenarios())
    return {config.name: config for config in configs}


# --------------------------------------------------------------------------- command line
