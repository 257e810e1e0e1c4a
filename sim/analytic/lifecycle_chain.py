"""The lifecycle model's Markov-reducible setting and its exact CLV.

When satisfaction does not feed back into transitions and cash flows do not depend on
tenure, satisfaction or loyalty, the lifecycle model of :mod:`sim.model.equations` is a 5-state
Markov chain per segment (exploration, formation, stability, decline, ended) with constant
per-stage rewards, and its expected cohort CLV has the closed form of Pfeifer & Carraway
(2000), :func:`sim.analytic.markov_clv`. The simulator must reproduce it; this module
builds the chain from a config so that tests and ``sim validate`` can hold the two together.

The setting is reached with (see :func:`markov_reducible_problems`):
``transitions.loyalty_effect_advance = transitions.loyalty_effect_exit = 0`` (no feedback),
``economics.share_of_wallet_growth = 0``, ``economics.cross_sell_share`` all 0,
``economics.cost_to_serve_floor = 1`` (no cost-to-serve saving), ``economics.price_premium``
all 0, ``word_of_mouth.talk_probability = 0`` (or ``referral_value = 0``), and no reactive
policy. Wallets may still vary: rewards are linear in the wallet, so its mean enters.

Timing convention (the core's): the reward of period t is received at the END of the
period, discounted by ``delta**(t+1)``; the horizon covers periods 0 .. H-1; acquisition
cost is paid at period 0 undiscounted.
"""

from __future__ import annotations

import numpy as np

from sim.model.arrays import model_arrays
from sim.model.config import ExperimentConfig
from sim.model.equations import transition_probabilities
from sim.model.names import DECLINE, ENDED, EXPLORATION, FORMATION, SEGMENTS, STABILITY
from sim.model.policies import spend_table
from sim.model.sections import ReactivePolicy

__all__ = ["markov_reducible_problems", "lifecycle_chain", "lifecycle_markov_clv", "LIFECYCLE_STATES"]

#: State order of the chain.
LIFECYCLE_STATES = ("exploration", "formation", "stability", "decline", "ended")


def markov_reducible_problems(config: ExperimentConfig, policy_name: str | None = None) -> list[str]:
    """Why ``config`` (and the named policy) is not Markov-reducible; empty if it is."""
    problems = []
    tr, eco, wom = config.transitions, config.economics, config.word_of_mouth
    if tr.loyalty_effect_advance != 0 or tr.loyalty_effect_exit != 0:
        problems.append(
            "transitions.loyalty_effect_advance and loyalty_effect_exit must be 0 (no satisfaction feedback)"
        )
    if eco.share_of_wallet_growth != 0:
        problems.append("economics.share_of_wallet_growth must be 0")
    if any(eco.cross_sell_share.as_tuple()):
        problems.append("economics.cross_sell_share must be 0 in every stage")
    if eco.cost_to_serve_floor != 1.0 and eco.cost_to_serve != 0.0:
        problems.append("economics.cost_to_serve_floor must be 1 (no tenure saving)")
    if any(eco.price_premium.as_tuple()):
        problems.append("economics.price_premium must be 0")
    if wom.talk_probability != 0 and wom.referral_value != 0 and any(wom.influence.as_tuple()):
        problems.append("word_of_mouth.talk_probability (or referral_value) must be 0")
    if config.population.churn_propensity is not None:
        problems.append(
            "population.churn_propensity must be absent (Beta-heterogeneous churn is not a finite chain)"
        )
    policies = [p for p in config.policies if policy_name is None or p.name == policy_name]
    if policy_name is not None and not policies:
        problems.append(f"no policy named {policy_name!r}; policies: {', '.join(config.policy_names)}")
    for policy in policies:
        if isinstance(policy, ReactivePolicy):
            problems.append(f"policy {policy.name!r} is reactive (its spend depends on satisfaction)")
    return problems


def _tier_probabilities(config: ExperimentConfig, arrays) -> np.ndarray:
    """P(tier A, B, C) of a customer's wallet (the thresholds are the wallet's quantiles)."""
    if config.population.wallet_sigma == 0.0:
        return np.array([1.0, 0.0, 0.0])  # every wallet equals the median = both thresholds
    return np.array([0.05, 0.15, 0.80])


def lifecycle_chain(
    config: ExperimentConfig, policy_name: str, segment: str
) -> tuple[np.ndarray, np.ndarray]:
    """The 5-state transition matrix and per-period expected reward of one segment.

    Parameters
    ----------
    config
        A Markov-reducible config (:func:`markov_reducible_problems` is empty).
    policy_name
        The policy whose spend enters the rewards.
    segment
        ``"relationship"`` or ``"transactional"``.

    Returns
    -------
    P : ndarray, shape (5, 5)
        Row-stochastic; states :data:`LIFECYCLE_STATES`, "ended" absorbing.
    R : ndarray, shape (5,)
        Expected net cash flow per period in each state:
        ``E[W] sow_k margin_k - cost_to_serve - E[spend_k]``, 0 when ended.

    Raises
    ------
    ValueError
        If the config is not Markov-reducible, naming what to change.
    """
    problems = markov_reducible_problems(config, policy_name)
    if problems:
        raise ValueError("the config is not Markov-reducible: " + "; ".join(problems))
    if segment not in SEGMENTS:
        raise ValueError(f"segment = {segment!r}: must be one of {SEGMENTS}")
    g = SEGMENTS.index(segment)
    arrays = model_arrays(config)
    from sim.model.arrays import ROW_ADVANCE, ROW_EXIT, ROW_EXIT_ODDS, ROW_MARGIN, ROW_SOW, S_NEUTRAL_LOYALTY

    neutral = arrays.scalars[S_NEUTRAL_LOYALTY]
    P = np.zeros((5, 5))
    for stage, forward_to, exit_to in (
        (EXPLORATION, FORMATION, ENDED),
        (FORMATION, STABILITY, DECLINE),
        (STABILITY, STABILITY, DECLINE),
        (DECLINE, FORMATION, ENDED),
    ):
        forward, leave = transition_probabilities(
            stage,
            neutral,
            neutral,
            arrays.stage[ROW_ADVANCE, stage, g],
            arrays.stage[ROW_EXIT, stage, g],
            0.0,
            0.0,
            arrays.segment[ROW_EXIT_ODDS, g],
        )
        P[stage, forward_to] += forward
        P[stage, exit_to] += leave
        P[stage, stage] += 1.0 - forward - leave
    P[ENDED, ENDED] = 1.0
    policy = next(p for p in config.policies if p.name == policy_name)
    spend, _ = spend_table(policy, config)
    tiers = _tier_probabilities(config, arrays)
    mean_wallet = config.population.mean_wallet
    R = np.zeros(5)
    for stage in (EXPLORATION, FORMATION, STABILITY, DECLINE):
        R[stage] = (
            mean_wallet * arrays.stage[ROW_SOW, stage, g] * arrays.stage[ROW_MARGIN, stage, g]
            - config.economics.cost_to_serve
            - float(spend[stage, g, :] @ tiers)
        )
    return P, R


def lifecycle_markov_clv(config: ExperimentConfig, policy_name: str) -> float:
    """Exact expected CLV of a newly acquired customer in the Markov-reducible setting.

    ``sum_g share_g * (V_H(exploration | g) - acquisition_g)`` with
    ``V_H = markov_clv(P_g, R_g, r, horizon=H, timing="end")`` (Pfeifer & Carraway 2000),
    ``r`` the per-period discount rate and ``H = run.horizon``.
    """
    from sim.analytic.markov import markov_clv

    shares = (config.population.relationship_share, 1.0 - config.population.relationship_share)
    acquisition = config.economics.acquisition_cost.as_tuple()
    total = 0.0
    for g, segment in enumerate(SEGMENTS):
        if shares[g] == 0.0:
            continue
        P, R = lifecycle_chain(config, policy_name, segment)
        values = markov_clv(
            P, R, config.economics.period_discount_rate, horizon=config.run.horizon, timing="end"
        )
        total += shares[g] * (values[EXPLORATION] - acquisition[g])
    return float(total)
