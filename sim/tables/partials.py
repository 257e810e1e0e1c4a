"""The partial aggregates of one chunk of customers, as every engine writes them.

An engine adds each customer-period into per-block sums (:class:`ChunkPartials`, one row per
block of :data:`BLOCK` customers aligned on the global customer index), so that the
reduction (:mod:`sim.tables.chunks`) can add blocks in a fixed order and the totals do not
depend on thread count or chunking.
"""

from __future__ import annotations

import numpy as np

from sim.model.names import N_STAGES


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
