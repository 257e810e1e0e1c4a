"""The model's parameters as flat float64 arrays for the jitted kernels.

:func:`model_arrays` packs a validated config into a :class:`ModelArrays`: a per-stage
table, a per-segment table, the referral values per satisfaction type and a vector of
scalars, indexed by the named rows ``ROW_*`` and scalars ``S_*`` of this module (the
kernels take arrays, not config objects).
"""

from __future__ import annotations

import math

import numpy as np

from sim.model.config import ExperimentConfig
from sim.model.equations import loyalty_from_satisfaction
from sim.model.names import N_STAGES

__all__ = [
    "ROW_MARGIN",
    "ROW_SOW",
    "ROW_CROSS_SELL",
    "ROW_EFFECTIVENESS",
    "ROW_ADVANCE",
    "ROW_EXIT",
    "N_STAGE_ROWS",
    "N_SEGMENTS",
    "ROW_BASE_PERFORMANCE",
    "ROW_EXIT_ODDS",
    "ROW_PRICE_PREMIUM",
    "ROW_ACQUISITION",
    "N_SEGMENT_ROWS",
    "S_RELATIONSHIP_SHARE",
    "S_WALLET_MEDIAN",
    "S_WALLET_SIGMA",
    "S_FIT_SD",
    "S_NOISE",
    "S_INITIAL_EXPECTATION",
    "S_ADAPTATION",
    "S_ANCHOR",
    "S_MEMORY",
    "S_SAT_SCALE",
    "S_SAT_TOLERANCE",
    "S_CARE_GAIN",
    "S_CARE_SCALE",
    "S_ANNOYANCE",
    "S_DEFECTION_THRESHOLD",
    "S_AFFECTION_THRESHOLD",
    "S_INDIFFERENCE_LOW",
    "S_INDIFFERENCE_HIGH",
    "S_NEUTRAL_LOYALTY",
    "S_CHURN",
    "S_WIN_BACK",
    "S_BETA_ADVANCE",
    "S_BETA_EXIT",
    "S_LONG_TERM",
    "S_SOW_GROWTH",
    "S_TENURE_SCALE",
    "S_CROSS_SELL_MARGIN",
    "S_COST_TO_SERVE",
    "S_COST_FLOOR",
    "S_DISCOUNT_FACTOR",
    "S_TIER_A_WALLET",
    "S_TIER_B_WALLET",
    "S_CHURN_ALPHA",
    "S_CHURN_BETA",
    "N_SCALARS",
    "ModelArrays",
    "model_arrays",
]

# Rows of the per-stage table (shape (N_STAGE_ROWS, 4)).
ROW_MARGIN, ROW_SOW, ROW_CROSS_SELL, ROW_EFFECTIVENESS, ROW_ADVANCE, ROW_EXIT = range(6)


N_STAGE_ROWS = 6

#: Customer segments (relationship, transactional): the last axis of the stage table.
N_SEGMENTS = 2


# Rows of the per-segment table (shape (N_SEGMENT_ROWS, 2)).
ROW_BASE_PERFORMANCE, ROW_EXIT_ODDS, ROW_PRICE_PREMIUM, ROW_ACQUISITION = range(4)


N_SEGMENT_ROWS = 4


# Rows of the per-satisfaction-type table (shape (1, 3)): expected referral value per period.
# Scalars (shape (N_SCALARS,)).
(
    S_RELATIONSHIP_SHARE,
    S_WALLET_MEDIAN,
    S_WALLET_SIGMA,
    S_FIT_SD,
    S_NOISE,
    S_INITIAL_EXPECTATION,
    S_ADAPTATION,
    S_ANCHOR,
    S_MEMORY,
    S_SAT_SCALE,
    S_SAT_TOLERANCE,
    S_CARE_GAIN,
    S_CARE_SCALE,
    S_ANNOYANCE,
    S_DEFECTION_THRESHOLD,
    S_AFFECTION_THRESHOLD,
    S_INDIFFERENCE_LOW,
    S_INDIFFERENCE_HIGH,
    S_NEUTRAL_LOYALTY,
    S_CHURN,
    S_WIN_BACK,
    S_BETA_ADVANCE,
    S_BETA_EXIT,
    S_LONG_TERM,
    S_SOW_GROWTH,
    S_TENURE_SCALE,
    S_CROSS_SELL_MARGIN,
    S_COST_TO_SERVE,
    S_COST_FLOOR,
    S_DISCOUNT_FACTOR,
    S_TIER_A_WALLET,
    S_TIER_B_WALLET,
    S_CHURN_ALPHA,
    S_CHURN_BETA,
) = range(34)


N_SCALARS = 34


class ModelArrays:
    """The model's parameters as flat float64 arrays for the jitted kernels.

    Attributes
    ----------
    stage : ndarray, shape (6, 4, 2)
        Per-stage rows, ``stage[row, stage, segment]``: margin, share of wallet, cross-sell
        share, care effectiveness, base advance probability, base exit probability. Every
        row has a segment axis; the config sets share of wallet and the transitions per
        segment when ``economics.share_of_wallet_by_segment`` / ``transitions.by_segment``
        are given (a fitted lifecycle model's classes), the other rows are the same for both
        segments.
    segment : ndarray, shape (4, 2)
        Per-segment rows: base performance, exit odds, price premium, acquisition cost.
    referral : ndarray, shape (3,)
        Expected referral value per period for each satisfaction type (C5).
    scalars : ndarray, shape (34,)
        Everything else, indexed by the ``S_*`` constants of this module.
    """

    __slots__ = ("stage", "segment", "referral", "scalars")

    def __init__(self, stage: np.ndarray, segment: np.ndarray, referral: np.ndarray, scalars: np.ndarray):
        self.stage = stage
        self.segment = segment
        self.referral = referral
        self.scalars = scalars


def _lognormal_quantile(median: float, sigma: float, level: float) -> float:
    from scipy.stats import norm

    return float(median * math.exp(sigma * norm.ppf(level)))


def model_arrays(config: ExperimentConfig) -> ModelArrays:
    """Pack a validated config into :class:`ModelArrays` (no copies kept of the config)."""
    dyn, loy, tr, eco, wom, pop = (
        config.dynamics,
        config.loyalty,
        config.transitions,
        config.economics,
        config.word_of_mouth,
        config.population,
    )
    stage = np.zeros((N_STAGE_ROWS, N_STAGES, N_SEGMENTS))
    stage[ROW_MARGIN] = np.array(eco.margin.as_tuple())[:, None]
    stage[ROW_CROSS_SELL] = np.array(eco.cross_sell_share.as_tuple())[:, None]
    stage[ROW_EFFECTIVENESS] = np.array(dyn.stage_effectiveness.as_tuple())[:, None]
    if eco.share_of_wallet_by_segment is None:
        stage[ROW_SOW] = np.array(eco.share_of_wallet.as_tuple())[:, None]
    else:
        stage[ROW_SOW] = np.array(
            [values.as_tuple() for values in eco.share_of_wallet_by_segment.segments()]
        ).T
    if tr.by_segment is None:
        stage[ROW_ADVANCE] = np.array((tr.advance.exploration, tr.advance.formation, 0.0, tr.win_back))[
            :, None
        ]
        stage[ROW_EXIT] = np.array((tr.exit.exploration, tr.exit.formation, tr.exit.stability, tr.churn))[
            :, None
        ]
    else:  # the decline slot holds the win-back (advance) and the churn (exit)
        stage[ROW_ADVANCE] = np.array([moves.advance.as_tuple() for moves in tr.by_segment.segments()]).T
        stage[ROW_EXIT] = np.array([moves.exit.as_tuple() for moves in tr.by_segment.segments()]).T
    segment = np.zeros((N_SEGMENT_ROWS, 2))
    segment[ROW_BASE_PERFORMANCE] = dyn.base_performance.as_tuple()
    segment[ROW_EXIT_ODDS] = tr.exit_odds.as_tuple()
    segment[ROW_PRICE_PREMIUM] = eco.price_premium.as_tuple()
    segment[ROW_ACQUISITION] = eco.acquisition_cost.as_tuple()
    referral = (
        wom.talk_probability
        * np.array(wom.people_told.as_tuple())
        * np.array(wom.influence.as_tuple())
        * wom.referral_value
    )
    scalars = np.zeros(N_SCALARS)
    scalars[S_RELATIONSHIP_SHARE] = pop.relationship_share
    scalars[S_WALLET_MEDIAN] = pop.wallet_median
    scalars[S_WALLET_SIGMA] = pop.wallet_sigma
    scalars[S_FIT_SD] = dyn.performance_fit_sd
    scalars[S_NOISE] = dyn.performance_noise
    scalars[S_INITIAL_EXPECTATION] = dyn.initial_expectation
    scalars[S_ADAPTATION] = dyn.expectation_adaptation
    scalars[S_ANCHOR] = dyn.expectation_anchor
    scalars[S_MEMORY] = dyn.satisfaction_memory
    scalars[S_SAT_SCALE] = dyn.satisfaction_scale
    scalars[S_SAT_TOLERANCE] = dyn.satisfaction_tolerance
    scalars[S_CARE_GAIN] = dyn.care_gain
    scalars[S_CARE_SCALE] = dyn.care_scale
    scalars[S_ANNOYANCE] = dyn.annoyance
    scalars[S_DEFECTION_THRESHOLD] = loy.defection_threshold
    scalars[S_AFFECTION_THRESHOLD] = loy.affection_threshold
    scalars[S_INDIFFERENCE_LOW] = loy.indifference_low
    scalars[S_INDIFFERENCE_HIGH] = loy.indifference_high
    scalars[S_NEUTRAL_LOYALTY] = loyalty_from_satisfaction(
        0.5, loy.defection_threshold, loy.affection_threshold, loy.indifference_low, loy.indifference_high
    )
    scalars[S_CHURN] = tr.churn
    scalars[S_WIN_BACK] = tr.win_back
    scalars[S_BETA_ADVANCE] = tr.loyalty_effect_advance
    scalars[S_BETA_EXIT] = tr.loyalty_effect_exit
    scalars[S_LONG_TERM] = tr.long_term_periods
    scalars[S_SOW_GROWTH] = eco.share_of_wallet_growth
    scalars[S_TENURE_SCALE] = eco.tenure_scale
    scalars[S_CROSS_SELL_MARGIN] = eco.cross_sell_margin
    scalars[S_COST_TO_SERVE] = eco.cost_to_serve
    scalars[S_COST_FLOOR] = eco.cost_to_serve_floor
    scalars[S_DISCOUNT_FACTOR] = 1.0 / (1.0 + eco.period_discount_rate)
    scalars[S_TIER_A_WALLET] = _lognormal_quantile(pop.wallet_median, pop.wallet_sigma, 0.95)
    scalars[S_TIER_B_WALLET] = _lognormal_quantile(pop.wallet_median, pop.wallet_sigma, 0.80)
    if pop.churn_propensity is not None:  # 0 means "no Beta churn"
        scalars[S_CHURN_ALPHA] = pop.churn_propensity.alpha
        scalars[S_CHURN_BETA] = pop.churn_propensity.beta
    return ModelArrays(stage, segment, referral, scalars)
