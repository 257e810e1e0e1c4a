"""The jitted cohort core: every customer simulated period by period, aggregated on the fly.

Public entry point: :func:`sim.project` (in :mod:`sim.runs.projection`). The kernels are private and
array-only: :func:`sim.engines.block.simulate_block` simulates one block of ``BLOCK`` customers
under every policy (its customers stepped together in vector lanes, see :mod:`sim.engines.lanes`),
and :func:`_simulate_customers` runs the blocks of a set of customers in parallel
(``prange``). :func:`simulate_chunk` (a new cohort, customers ``first .. first + n - 1``)
and :func:`run_customers` (given customers and start states, e.g. :func:`sim.project_from`)
allocate the :class:`~sim.tables.partials.ChunkPartials` and call them; :func:`sim.project` validates and
reduces.

Reproducibility contract
------------------------
Customer ``c`` of replication ``r`` draws from its own streams, keyed by
``(seed, r, c, component)`` (:mod:`sim.model.streams`): component 0 its attributes (segment,
wallet, fit, churn propensity), 1 its perceived-performance noise, 2 its transition draws,
3 its Beta-churn draws (only when that option is on). Every period uses exactly one draw
of each of components 1 and 2 (and 3) whatever the state or policy, so all
policies of an experiment see the same customers and the same shocks (common random
numbers). Partial sums are kept per fixed block of ``BLOCK`` customers (aligned on the
global customer index) and reduced in block order, and the order of every sum within a
block depends only on the block's customers, so results are bitwise identical for any
thread count and any chunking into multiples of ``BLOCK`` customers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sim.engines.block import (
    A_FIT,
    A_PROPENSITY,
    A_SEGMENT,
    A_TIER,
    A_WALLET,
    ATTRIBUTE_COLUMNS,
    START_ACQUISITION,
    START_COLUMNS,
    START_EXPECTATION,
    START_HIGHEST_STAGE,
    START_PREVIOUS_SATISFACTION,
    START_SATISFACTION,
    START_STAGE,
    START_TENURE,
    simulate_block,
)
from sim.model.arrays import (
    ROW_ACQUISITION,
    S_ANNOYANCE,
    S_CARE_GAIN,
    S_CARE_SCALE,
    S_INITIAL_EXPECTATION,
    S_TENURE_SCALE,
)
from sim.model.equations import care_response, tenure_ramp
from sim.model.names import EXPLORATION
from sim.model.step import customer_attributes
from sim.tables.partials import BLOCK, ChunkPartials

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "START_COLUMNS",
    "MAX_RAMP_TABLE",
    "new_customers",
    "run_customers",
    "simulate_chunk",
]


@njit(cache=True, parallel=True)
def _new_customers(seed, replication, first_customer, scalars, segment_table, attributes, start):
    """Draw the attributes of customers ``first_customer ..`` (A1-A3, M8) and set their
    start state as newly acquired: exploration, satisfaction 1/2, the initial expectation,
    tenure 0, paying the acquisition cost of their segment.

    ``attributes[:, :]`` columns: segment, wallet, fit, tier, propensity;
    ``start[:, :]`` columns: see :data:`START_COLUMNS`.
    """
    for local in prange(attributes.shape[0]):
        segment, wallet, fit, tier, propensity = customer_attributes(
            seed, replication, first_customer + local, scalars
        )
        attributes[local, A_SEGMENT] = segment
        attributes[local, A_WALLET] = wallet
        attributes[local, A_FIT] = fit
        attributes[local, A_TIER] = tier
        attributes[local, A_PROPENSITY] = propensity
        start[local, START_STAGE] = EXPLORATION
        start[local, START_SATISFACTION] = 0.5
        start[local, START_PREVIOUS_SATISFACTION] = 0.5
        start[local, START_EXPECTATION] = scalars[S_INITIAL_EXPECTATION]
        start[local, START_TENURE] = 0
        start[local, START_HIGHEST_STAGE] = EXPLORATION
        start[local, START_ACQUISITION] = segment_table[ROW_ACQUISITION, segment]


@njit(cache=True, parallel=True)
def _simulate_customers(
    stage_table,
    segment_table,
    referral,
    scalars,
    spend_tables,
    care_tables,
    care_without_spend,
    ramps,
    reactive_drop,
    seed,
    replication,
    customer_ids,
    attributes,
    start,
    horizon,
    money,
    stage_sums,
    stage_periods,
    period_sums,
    occupancy,
    ended_at,
    pattern_count,
    pattern_clv,
    pair_sums,
    pair_wins,
    satisfaction_bins,
    clv,
    stage_trace,
):
    """Simulate customers from their start states under every policy, in parallel over
    blocks of ``BLOCK`` customers (:func:`sim.engines.block.simulate_block`); customer ``i`` draws from the
    streams of ``customer_ids[i]``. Writes block partials and per-customer CLVs in place.

    Used for new cohorts (states from :func:`_new_customers`) and for snapshots of live
    customers (:func:`sim.project_from`) alike: one per-customer simulation for both.
    """
    n_customers = clv.shape[1]
    n_blocks = (n_customers + BLOCK - 1) // BLOCK
    for block in prange(n_blocks):
        simulate_block(
            block,
            block * BLOCK,
            min(block * BLOCK + BLOCK, n_customers),
            stage_table,
            segment_table,
            referral,
            scalars,
            spend_tables,
            care_tables,
            care_without_spend,
            ramps,
            reactive_drop,
            seed,
            replication,
            customer_ids,
            attributes,
            start,
            horizon,
            money,
            stage_sums,
            stage_periods,
            period_sums,
            occupancy,
            ended_at,
            pattern_count,
            pattern_clv,
            pair_sums,
            pair_wins,
            satisfaction_bins,
            clv,
            stage_trace,
        )


@njit(cache=True)
def _care_table(spend_tables, gain, scale, annoyance):
    """(M1) :func:`sim.model.equations.care_response` of every entry of ``spend_tables``."""
    care = np.empty_like(spend_tables)
    flat_spend = spend_tables.ravel()
    flat_care = care.ravel()
    for index in range(flat_spend.size):
        flat_care[index] = care_response(flat_spend[index], gain, scale, annoyance)
    return care


@njit(cache=True)
def _ramp_table(n_tenures, tenure_scale):
    """:func:`sim.model.equations.tenure_ramp` of tenures ``0 .. n_tenures - 1``."""
    ramps = np.empty(n_tenures)
    for tenure in range(n_tenures):
        ramps[tenure] = tenure_ramp(float(tenure), tenure_scale)
    return ramps


#: Longest tenure table built by :func:`run_customers` (older tenures call the ramp directly).
MAX_RAMP_TABLE = 1 << 20


def run_customers(
    arrays,
    tables,
    seed: int,
    replication: int,
    customer_ids: np.ndarray,
    attributes: np.ndarray,
    start: np.ndarray,
    horizon: int,
    trace_customers: int = 0,
) -> "ChunkPartials":
    """Simulate the given customers from their start states (checked wrapper of
    :func:`_simulate_customers`) and return their :class:`~sim.tables.partials.ChunkPartials`.
    """
    n_customers = len(customer_ids)
    if attributes.shape != (n_customers, len(ATTRIBUTE_COLUMNS)) or start.shape != (
        n_customers,
        len(START_COLUMNS),
    ):
        raise ValueError(
            f"attributes must be ({n_customers}, {len(ATTRIBUTE_COLUMNS)}) and start "
            f"({n_customers}, {len(START_COLUMNS)})"
        )
    partials = ChunkPartials((n_customers + BLOCK - 1) // BLOCK, len(tables.names), horizon, n_customers)
    partials.stage_trace = np.zeros(
        (len(tables.names), min(trace_customers, n_customers), horizon + 1), dtype=np.int8
    )
    scalars = arrays.scalars
    gain, scale, annoyance = scalars[S_CARE_GAIN], scalars[S_CARE_SCALE], scalars[S_ANNOYANCE]
    oldest = int(start[:, START_TENURE].max()) if n_customers else 0
    ramps = _ramp_table(min(oldest + horizon, MAX_RAMP_TABLE), scalars[S_TENURE_SCALE])
    _simulate_customers(
        arrays.stage,
        arrays.segment,
        arrays.referral,
        scalars,
        tables.spend,
        _care_table(tables.spend, gain, scale, annoyance),
        care_response(0.0, gain, scale, annoyance),
        ramps,
        tables.reactive_drop,
        np.uint64(seed),
        np.uint64(replication),
        np.ascontiguousarray(customer_ids, dtype=np.int64),
        np.ascontiguousarray(attributes, dtype=np.float64),
        np.ascontiguousarray(start, dtype=np.float64),
        np.int64(horizon),
        *(getattr(partials, name) for name in ChunkPartials.FIELDS),
        partials.clv,
        partials.stage_trace,
    )
    return partials


def new_customers(arrays, seed: int, replication: int, first_customer: int, n_customers: int):
    """The attributes and start states of the newly acquired customers ``first_customer`` to
    ``first_customer + n_customers - 1`` of one replication (checked wrapper of the parallel
    kernel :func:`_new_customers`).

    Returns
    -------
    attributes : ndarray, shape (n_customers, 5)
        Columns :data:`ATTRIBUTE_COLUMNS`, drawn with :func:`sim.model.step.customer_attributes`.
    start : ndarray, shape (n_customers, 7)
        Columns :data:`START_COLUMNS`: exploration, satisfaction 1/2, the initial expectation,
        tenure 0, and the acquisition cost of the customer's segment.
    """
    if n_customers < 0 or first_customer < 0:
        raise ValueError(f"first_customer = {first_customer} and n_customers = {n_customers} must be >= 0")
    attributes = np.empty((n_customers, len(ATTRIBUTE_COLUMNS)))
    start = np.empty((n_customers, len(START_COLUMNS)))
    _new_customers(
        np.uint64(seed),
        np.uint64(replication),
        np.int64(first_customer),
        arrays.scalars,
        arrays.segment,
        attributes,
        start,
    )
    return attributes, start


def simulate_chunk(
    arrays,
    tables,
    seed: int,
    replication: int,
    first_customer: int,
    n_customers: int,
    horizon: int,
    trace_customers: int = 0,
) -> ChunkPartials:
    """Simulate the new customers ``first_customer`` to ``first_customer + n_customers - 1`` of
    one replication under every policy and return their :class:`~sim.tables.partials.ChunkPartials`.

    ``first_customer`` must be a multiple of ``BLOCK`` (so blocks align on the global
    customer index and chunking never changes a sum). With ``trace_customers = k > 0`` the
    stage paths of the chunk's first ``k`` customers are kept in
    ``partials.stage_trace[policy, customer, period]`` (periods 0..horizon).
    """
    if first_customer % BLOCK:
        raise ValueError(f"first_customer = {first_customer} must be a multiple of BLOCK = {BLOCK}")
    attributes, start = new_customers(arrays, seed, replication, first_customer, n_customers)
    customer_ids = np.arange(first_customer, first_customer + n_customers, dtype=np.int64)
    return run_customers(
        arrays, tables, seed, replication, customer_ids, attributes, start, horizon, trace_customers
    )
