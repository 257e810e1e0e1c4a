"""A case of the model whose optimal retention spend is known in closed form, to check the
optimiser: the Markov-reducible lifecycle chain with referral value bought by spend
(``docs/model.md`` §10.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.experiments.spend_search import SpendLayout, _objective_config
from sim.model.config import ExperimentConfig
from sim.model.names import EXPLORATION, SEGMENTS, STAGES

__all__ = [
    "referral_case_clv",
    "referral_case_optimum",
]


def _referral_case_problems(config: ExperimentConfig) -> list[str]:
    from sim.analytic.lifecycle_chain import markov_reducible_problems

    silent = config.with_overrides(word_of_mouth={"talk_probability": 0.0})
    problems = [p for p in markov_reducible_problems(silent) if "policy" not in p]
    if config.dynamics.expectation_adaptation != 0.0:
        problems.append("dynamics.expectation_adaptation must be 0 (fixed expectations)")
    return problems


@dataclass(frozen=True)
class _ReferralCase:
    """The exact pieces of a referral case: ``clv(a) = clv_zero + sum_{g,k} share_g
    weight[g, k] (rho_{g,k}(a[k, g]) - a[k, g])``.
    """

    clv_zero: float
    shares: tuple
    weight: np.ndarray  # (segment, stage): expected discounted periods in the stage
    base: np.ndarray  # (segment,) base performance minus the expectation
    effectiveness: np.ndarray  # (stage,)
    referral: np.ndarray  # (type,) expected referral value per period
    spread: float  # sd of the disconfirmation around its mean
    tolerance: float
    care: tuple  # (gain, scale, annoyance) of (M1)

    def rho(self, spend, stage: int, segment: int):
        """Expected referral value per period (C5) in ``stage`` for ``segment`` at ``spend`` (vectorised)."""
        from scipy.stats import norm

        from sim.model.equations import care_response

        gain = care_response.py_func(np.asarray(spend, dtype=float), *self.care)
        m = self.base[segment] + self.effectiveness[stage] * gain
        if self.spread > 0:
            low, high = (
                norm.cdf((-self.tolerance - m) / self.spread),
                norm.cdf((m - self.tolerance) / self.spread),
            )
        else:
            low, high = (m < -self.tolerance).astype(float), (m > self.tolerance).astype(float)
        return self.referral[0] * low + self.referral[2] * high + self.referral[1] * (1.0 - low - high)

    def term(self, spend, stage: int, segments) -> np.ndarray:
        """The CLV contribution of one stage's spend, summed over ``segments``."""
        spend = np.asarray(spend, dtype=float)
        return sum(
            self.shares[g] * self.weight[g, stage] * (self.rho(spend, stage, g) - spend) for g in segments
        )


def _referral_case(config: ExperimentConfig) -> _ReferralCase:
    from sim.analytic.lifecycle_chain import lifecycle_chain, lifecycle_markov_clv
    from sim.analytic.markov import markov_clv

    problems = _referral_case_problems(config)
    if problems:
        raise ValueError("not a referral case: " + "; ".join(problems))
    dyn, wom, eco = config.dynamics, config.word_of_mouth, config.economics
    silent = _objective_config(config).with_overrides(
        word_of_mouth={"talk_probability": 0.0}, policies=[{"name": "zero", "kind": "none"}]
    )
    shares = (config.population.relationship_share, 1.0 - config.population.relationship_share)
    weight = np.zeros((len(SEGMENTS), len(STAGES)))
    for g, segment in enumerate(SEGMENTS):
        P, _ = lifecycle_chain(silent, "zero", segment)
        for k in range(len(STAGES)):
            unit = np.zeros(5)
            unit[k] = 1.0
            weight[g, k] = markov_clv(
                P, unit, eco.period_discount_rate, horizon=config.run.horizon, timing="end"
            )[EXPLORATION]
    return _ReferralCase(
        clv_zero=lifecycle_markov_clv(silent, "zero"),
        shares=shares,
        weight=weight,
        base=np.asarray(dyn.base_performance.as_tuple()) - dyn.initial_expectation,
        effectiveness=np.asarray(dyn.stage_effectiveness.as_tuple()),
        referral=(
            wom.talk_probability
            * np.array(wom.people_told.as_tuple())
            * np.array(wom.influence.as_tuple())
            * wom.referral_value
        ),
        spread=math.hypot(dyn.performance_fit_sd, dyn.performance_noise),
        tolerance=dyn.satisfaction_tolerance,
        care=(dyn.care_gain, dyn.care_scale, dyn.annoyance),
    )


def referral_case_clv(config: ExperimentConfig, spend) -> float:
    r"""Exact expected CLV of a spend table ``spend[stage, segment]`` in the *referral case*.

    The referral case is the Markov-reducible setting (:mod:`sim.analytic.lifecycle_chain`: no
    satisfaction feedback on transitions, no tenure or loyalty effects on cash) with word
    of mouth switched ON and fixed expectations (``dynamics.expectation_adaptation = 0``).
    Spend then changes nothing but (i) its own cost and (ii) the satisfaction type of each
    period, hence the referral value C5. With expectation ``Q0``, base performance
    ``b_g``, stage effectiveness ``e_k`` and care response ``g(a)`` (M1), the
    disconfirmation is ``d = b_g + f + e_k g(a) + sigma eps - Q0`` (M2, M3) with
    ``f ~ N(0, sigma_f^2)``, ``eps ~ N(0, 1)`` independent, so ``d ~ N(m, s^2)`` with
    ``m = b_g + e_k g(a) - Q0`` and ``s^2 = sigma_f^2 + sigma^2``, and the expected
    referral value per period is

    .. math:: \\rho_{g,k}(a) = r_d\\,\\Phi\\left(\\frac{-\\tau - m}{s}\\right)
              + r_h\\,\\Phi\\left(\\frac{m - \\tau}{s}\\right)
              + r_s\\left(1 - \\Phi\\left(\\frac{-\\tau - m}{s}\\right)
              - \\Phi\\left(\\frac{m - \\tau}{s}\\right)\\right)

    (``r`` the expected referral value of a dissatisfied, satisfied and highly satisfied
    period, C5; ``tau`` the tolerance, M3). The stage process does not depend on
    satisfaction, so it is independent of these draws, and

    .. math:: CLV(a) = CLV_{Markov}(0) + \\sum_g \\pi_g \\sum_k w_{g,k}\\,(\\rho_{g,k}(a_{k,g}) - a_{k,g})

    with ``CLV_Markov(0)`` = :func:`~sim.analytic.lifecycle_markov_clv` without spend
    and without word of mouth, segment shares ``pi_g``, and ``w_{g,k}`` the expected
    discounted number of periods in stage ``k`` (the Pfeifer-Carraway value of the chain
    with reward 1 in ``k``, :func:`sim.analytic.markov_clv`, timing "end", horizon
    ``run.horizon``). Everything is exact; nothing is simulated.

    Raises
    ------
    ValueError
        If ``config`` is not a referral case (the message says what to change).
    """
    case = _referral_case(config)
    spend = np.asarray(spend, dtype=float)
    total = case.clv_zero
    for k in range(len(STAGES)):
        for g in range(len(SEGMENTS)):
            total += float(case.term(spend[k, g], k, [g]))
    return float(total)


def referral_case_optimum(config: ExperimentConfig) -> pd.DataFrame:
    """The exact CLV-maximising spend of a referral case (see :func:`referral_case_clv`).

    The CLV is a sum of one term per stage (and segment), so each coordinate of the
    ``[optimize]`` layout maximises its own term on ``[0, max_spend]``: with one spend per
    stage, ``sum_g pi_g w_{g,k} (rho_{g,k}(a) - a)``; per segment, ``rho_{g,k}(a) - a``.
    Each 1-D problem is smooth; it is bracketed on a grid of 20,001 spends and solved to
    1e-10 money units by :func:`scipy.optimize.minimize_scalar` (bounded), so the result
    is the exact optimum to that tolerance. Stages not searched keep ``optimize.start``.

    Returns
    -------
    DataFrame
        ``stage, segment, spend, curvature, clv``: ``curvature`` is the second derivative
        of the CLV in that coordinate at the optimum (negative at an interior maximum);
        ``clv`` the exact CLV at the optimum (same in every row).
    """
    from scipy.optimize import minimize_scalar

    case = _referral_case(config)
    layout = SpendLayout.from_config(config)
    x = layout.initial()
    curvature = np.zeros(len(x))
    fine = np.linspace(0.0, layout.max_spend, 20_001)
    for j, (stage, segment) in enumerate(layout.coordinates):
        k = STAGES.index(stage)
        segments = range(len(SEGMENTS)) if segment == "all" else [SEGMENTS.index(segment)]

        def term(value, k=k, segments=segments):
            return case.term(value, k, segments)

        values = term(fine)
        best = int(np.argmax(values))
        low, high = fine[max(best - 1, 0)], fine[min(best + 1, len(fine) - 1)]
        refined = minimize_scalar(
            lambda v: -float(term(v)), bounds=(low, high), method="bounded", options={"xatol": 1e-10}
        )
        x[j] = refined.x if -refined.fun >= values[best] else fine[best]
        h = 1e-3
        curvature[j] = float(term(x[j] + h) - 2 * term(x[j]) + term(max(x[j] - h, 0.0))) / h**2
    frame = layout.frame(x)
    frame["curvature"] = curvature
    frame["clv"] = referral_case_clv(config, layout.table(x))
    return frame
