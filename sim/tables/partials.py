"""The partial aggregates of one chunk of customers, as every engine writes them.

An engine adds each customer-period into per-block sums (:class:`ChunkPartials`, one row per
block of :data:`BLOCK` customers aligned on the global customer index), so that the
reduction (:mod:`sim.tables.chunks`) can add blocks in a fixed order and the totals do not
depend on thread count or chunking.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.model.equations import select
from sim.model.names import N_STAGES

__all__ = [
    "BLOCK",
    "SATISFACTION_BINS",
    "N_MONEY",
    "N_PERIOD_SUMS",
    "ChunkPartials",
    "satisfaction_bin",
    "add_period",
    "add_periods",
    "add_satisfaction",
    "add_satisfaction_counts",
    "add_customer",
]


#: Customers per reduction block (partial sums are kept per block and reduced in order).
BLOCK = 4096


#: Equal-width satisfaction bins for the simulated satisfaction→retention relation.
SATISFACTION_BINS = 10


# Columns of the per-policy money partials ``money[block, policy, :]``.
(
    M_CLV1,
    M_CLV2,
    M_CLV3,
    M_CLV4,
    M_CLV5,
    M_CLV6,
    M_SPEND,
    M_ACQUISITION,
    M_CLV,
    M_CLV_SQUARED,
) = range(10)


N_MONEY = 10


# Columns of the per-stage and per-period partials (sums over customer-periods).
K_PROFIT, K_SATISFACTION, K_LOYALTY, K_SPEND = range(4)


N_PERIOD_SUMS = 4


class ChunkPartials:
    """Partial aggregates of one chunk of customers, one row per block of ``BLOCK`` customers.

    Every array has the block as its first axis; the per-customer CLV array is
    ``clv[policy, customer]``. Integer counts are ``int64``; money and satisfaction sums
    are ``float64``.
    """

    FIELDS = (
        "money",
        "stage_sums",
        "stage_periods",
        "period_sums",
        "occupancy",
        "ended_at",
        "pattern_count",
        "pattern_clv",
        "pair_sums",
        "pair_wins",
        "satisfaction_bins",
    )
    __slots__ = FIELDS + ("clv", "stage_trace")

    def __init__(self, n_blocks: int, n_policies: int, horizon: int, n_customers: int):
        p = n_policies
        self.money = np.zeros((n_blocks, p, N_MONEY))
        self.stage_sums = np.zeros((n_blocks, p, N_STAGES, N_PERIOD_SUMS))
        self.stage_periods = np.zeros((n_blocks, p, N_STAGES), dtype=np.int64)
        self.period_sums = np.zeros((n_blocks, p, horizon, N_PERIOD_SUMS))
        self.occupancy = np.zeros((n_blocks, p, horizon + 1, N_STAGES), dtype=np.int64)
        self.ended_at = np.zeros((n_blocks, p, horizon + 1), dtype=np.int64)
        self.pattern_count = np.zeros((n_blocks, p, 4), dtype=np.int64)
        self.pattern_clv = np.zeros((n_blocks, p, 4))
        self.pair_sums = np.zeros((n_blocks, p, p, 2))
        self.pair_wins = np.zeros((n_blocks, p, p), dtype=np.int64)
        self.satisfaction_bins = np.zeros((n_blocks, p, N_STAGES, SATISFACTION_BINS, 2), dtype=np.int64)
        self.clv = np.zeros((p, n_customers))


# --------------------------------------------------------------------------- writing partials (every engine)


@njit(cache=True, error_model="numpy", forceinline=True)
def satisfaction_bin(satisfaction):
    """The bin (``0`` to ``SATISFACTION_BINS - 1``) of a satisfaction (equal-width bins of [0, 1];
    values outside [0, 1] go to the end bins), or -1 for NaN, which is counted in no bin
    (the run then stops with :class:`sim.exceptions.NonFiniteResultError`). The one rule
    of every engine. Jit-compiled; works on arrays through ``.py_func``.
    """
    finite = satisfaction == satisfaction
    clamped = np.minimum(np.maximum(select(finite, satisfaction, 0.0), 0.0), 1.0)
    index = np.minimum(np.int64(clamped * SATISFACTION_BINS), SATISFACTION_BINS - 1)
    return select(finite, index, -1)


@njit(cache=True, error_model="numpy")
def add_period(
    stage_periods, stage_sums, period_sums, block, policy, stage, period, profit, satisfaction, loyalty, spend
):
    """Add one customer-period to the per-stage and per-period sums of ``[block, policy]``
    (columns ``K_PROFIT``, ``K_SATISFACTION``, ``K_LOYALTY``, ``K_SPEND``). Jit-compiled.
    """
    stage_periods[block, policy, stage] += 1
    stage_sums[block, policy, stage, K_PROFIT] += profit
    stage_sums[block, policy, stage, K_SATISFACTION] += satisfaction
    stage_sums[block, policy, stage, K_LOYALTY] += loyalty
    stage_sums[block, policy, stage, K_SPEND] += spend
    period_sums[block, policy, period, K_PROFIT] += profit
    period_sums[block, policy, period, K_SATISFACTION] += satisfaction
    period_sums[block, policy, period, K_LOYALTY] += loyalty
    period_sums[block, policy, period, K_SPEND] += spend


@njit(cache=True, error_model="numpy")
def add_periods(stage_periods, stage_sums, period_sums, occupancy, block, policy, period, counts, lane_sums):
    """Add one period of many customers to the partials of ``[block, policy]``: ``counts[stage]``
    customer-periods per stage (occupancy of the period and :func:`add_period`'s count) and
    ``lane_sums[stage, column, lane]``, their sums (columns ``K_PROFIT`` .. ``K_SPEND``) split in
    lanes. A stage's sum is its lanes added in lane order, the period's sum the stages' in
    stage order. Jit-compiled; the cohort core's way of writing :func:`add_period`'s sums.
    """
    for stage in range(lane_sums.shape[0]):
        stage_periods[block, policy, stage] += counts[stage]
        occupancy[block, policy, period, stage] += counts[stage]
    for column in range(lane_sums.shape[1]):
        period_total = 0.0
        for stage in range(lane_sums.shape[0]):
            stage_total = 0.0
            for lane in range(lane_sums.shape[2]):
                stage_total += lane_sums[stage, column, lane]
            stage_sums[block, policy, stage, column] += stage_total
            period_total += stage_total
        period_sums[block, policy, period, column] += period_total


@njit(cache=True, error_model="numpy")
def add_satisfaction_counts(satisfaction_bins, block, policy, histogram):
    """Add many customer-periods' satisfaction counts to ``[block, policy]``:
    ``histogram[stage * SATISFACTION_BINS + bin, column]`` counted with
    :func:`add_satisfaction`'s rule (bin :func:`satisfaction_bin`, NaN in no bin; column 1 for
    an exit move). Rows past the last stage's are not added. Jit-compiled; the cohort core's
    way of writing :func:`add_satisfaction`'s counts.
    """
    for stage in range(satisfaction_bins.shape[2]):
        for index in range(SATISFACTION_BINS):
            for column in range(2):
                satisfaction_bins[block, policy, stage, index, column] += histogram[
                    stage * SATISFACTION_BINS + index, column
                ]


@njit(cache=True, error_model="numpy")
def add_satisfaction(satisfaction_bins, block, policy, stage, satisfaction, exit_move):
    """Count one customer-period in its satisfaction bin of ``stage`` (column 0) and, if the
    customer left the stage by an exit move (to decline or ended), in column 1: the
    simulated satisfaction→retention relation. Jit-compiled.
    """
    index = satisfaction_bin(satisfaction)
    if index >= 0:
        satisfaction_bins[block, policy, stage, index, 0] += 1
        if exit_move:
            satisfaction_bins[block, policy, stage, index, 1] += 1


@njit(cache=True, error_model="numpy")
def add_customer(money, block, policy, accounts, acquisition, value):
    """Add one customer's discounted accounts (:class:`sim.model.step.Accounts`), acquisition
    cost and CLV ``value`` to the money partials of ``[block, policy]``. Jit-compiled.
    """
    row = money[block, policy]
    row[M_CLV1] += accounts.clv1
    row[M_CLV2] += accounts.clv2
    row[M_CLV3] += accounts.clv3
    row[M_CLV4] += accounts.clv4
    row[M_CLV5] += accounts.clv5
    row[M_CLV6] += accounts.clv6
    row[M_SPEND] += accounts.spend
    row[M_ACQUISITION] += acquisition
    row[M_CLV] += value
    row[M_CLV_SQUARED] += value * value
