"""The jitted cohort core: every customer simulated period by period, aggregated on the fly.

Public entry point: :func:`sim.project` (in :mod:`sim.runs.projection`). The kernels are private and
array-only: :func:`_simulate_block` simulates one block of ``BLOCK`` customers under every
policy, and :func:`_simulate_customers` runs the blocks of a set of customers in parallel
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
global customer index) and reduced in block order, so results are bitwise identical for
any thread count and any chunking into multiples of ``BLOCK`` customers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from sim.model.arrays import (
    ROW_ACQUISITION,
    ROW_ADVANCE,
    ROW_BASE_PERFORMANCE,
    ROW_CROSS_SELL,
    ROW_EFFECTIVENESS,
    ROW_EXIT,
    ROW_EXIT_ODDS,
    ROW_MARGIN,
    ROW_PRICE_PREMIUM,
    ROW_SOW,
    S_ADAPTATION,
    S_AFFECTION_THRESHOLD,
    S_ANCHOR,
    S_ANNOYANCE,
    S_BETA_ADVANCE,
    S_BETA_EXIT,
    S_CARE_GAIN,
    S_CARE_SCALE,
    S_CHURN_ALPHA,
    S_DEFECTION_THRESHOLD,
    S_INDIFFERENCE_HIGH,
    S_INDIFFERENCE_LOW,
    S_INITIAL_EXPECTATION,
    S_LONG_TERM,
    S_MEMORY,
    S_NEUTRAL_LOYALTY,
    S_NOISE,
    S_SAT_SCALE,
    S_SAT_TOLERANCE,
    S_TENURE_SCALE,
)
from sim.model.equations import (
    care_response,
    customer_clv,
    lifecycle_pattern,
    loyalty_from_satisfaction,
    next_stage,
    perceived_performance,
    propensity_ends_relationship,
    satisfaction_type,
    tenure_ramp,
    transition_probabilities,
    update_expectation,
    update_satisfaction,
)
from sim.model.names import DECLINE, ENDED, EXPLORATION, N_STAGES, STABILITY
from sim.model.step import account_period, cash_parameters, customer_attributes, opening_accounts
from sim.model.streams import (
    COMPONENT_CHURN,
    COMPONENT_PERFORMANCE,
    COMPONENT_TRANSITIONS,
    next_normal,
    next_uniform,
    seed_stream,
)
from sim.tables.partials import BLOCK, ChunkPartials, add_customer, add_period, add_satisfaction

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "START_COLUMNS",
    "DRAW_BATCH",
    "MAX_RAMP_TABLE",
    "stay_bounds",
    "new_customers",
    "run_customers",
    "simulate_chunk",
]


#: Columns of the customer-attribute array ``attributes[customer, A_*]``.
ATTRIBUTE_COLUMNS = ("segment", "wallet", "fit", "tier", "propensity")
A_SEGMENT, A_WALLET, A_FIT, A_TIER, A_PROPENSITY = range(5)
#: Columns of the start-state array ``start[customer, START_*]``: stage, satisfaction,
#: previous satisfaction, expectation, tenure, highest stage reached, acquisition cost paid
#: at the start.
START_COLUMNS = (
    "stage",
    "satisfaction",
    "previous_satisfaction",
    "expectation",
    "tenure",
    "highest_stage",
    "acquisition",
)
(
    START_STAGE,
    START_SATISFACTION,
    START_PREVIOUS_SATISFACTION,
    START_EXPECTATION,
    START_TENURE,
    START_HIGHEST_STAGE,
    START_ACQUISITION,
) = range(7)

#: Periods of random draws generated at a time per customer (shared by all policies).
DRAW_BATCH = 16


@njit(cache=True)
def _fill_draws(draws, streams, start, horizon, beta_churn):
    """Draw periods ``start .. start + DRAW_BATCH - 1`` (at most ``horizon - 1``) of one
    customer's streams into ``draws``: row 0 the perceived-performance normals (component 1),
    row 1 the transition uniforms (component 2), row 2 the Beta-churn uniforms (component 3,
    only when ``beta_churn``). ``streams`` holds the three xoroshiro128+ states
    ``(s0, s1)`` and is advanced in place. Returns the first period not drawn yet.

    The draws of period ``t`` are the ``t``-th variates of each stream, whichever policy
    asks first, so buffering them changes no number; it only lets every policy of an
    experiment reuse them and keeps the generator out of the model's inner loop.
    """
    stop = min(start + DRAW_BATCH, horizon)
    s0 = streams[0]
    s1 = streams[1]
    for t in range(start, stop):
        draws[0, t], s0, s1 = next_normal(s0, s1)
    streams[0] = s0
    streams[1] = s1
    s0 = streams[2]
    s1 = streams[3]
    for t in range(start, stop):
        draws[1, t], s0, s1 = next_uniform(s0, s1)
    streams[2] = s0
    streams[3] = s1
    if beta_churn:
        s0 = streams[4]
        s1 = streams[5]
        for t in range(start, stop):
            draws[2, t], s0, s1 = next_uniform(s0, s1)
        streams[4] = s0
        streams[5] = s1
    return stop


@njit(cache=True)
def _simulate_block(
    block,
    first_local,
    stop_local,
    stage_table,
    segment_table,
    referral,
    scalars,
    spend_tables,
    care_tables,
    care_without_spend,
    ramps,
    stay_bounds,
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
    """Every customer ``first_local .. stop_local - 1`` of one block under every policy: each
    customer's whole trajectory, adding into the block's partials and writing its CLV.
    Equations: :mod:`sim.model.equations` (M1)-(M8), (C1)-(C6).

    The start state of customer ``i`` is ``start[i]`` (:data:`START_COLUMNS`): a newly
    acquired customer starts in exploration with satisfaction 1/2, the initial
    expectation, tenure 0 and pays its acquisition cost; a customer projected from a
    snapshot (:func:`sim.project_from`) starts where the snapshot left it and pays nothing.
    Customers whose chunk-local index is below ``stage_trace.shape[1]`` also write their
    stage path (ENDED after the end) into ``stage_trace[policy, local]``.

    Hoisted out of the period loop (same numbers, computed once, with the same
    functions): the care response of every spend level (``care_tables``, (M1)), the
    tenure ramp of every tenure (``ramps``, :func:`sim.model.equations.tenure_ramp`), and the
    random draws (:func:`_fill_draws`). When the transition uniform is at or above
    ``stay_bounds[stage, segment]`` -- an upper bound of ``forward + leave`` over every
    loyalty the curve (M6) can produce -- (M7) keeps the stage whatever the loyalty, so the
    two probabilities (two ``exp``) are not evaluated: :func:`sim.model.equations.next_stage` would
    return the same stage.
    """
    n_policies = clv.shape[0]
    n_ramps = ramps.shape[0]
    draws = np.empty((3, horizon))
    streams = np.empty(6, dtype=np.uint64)
    initial_expectation = scalars[S_INITIAL_EXPECTATION]
    memory = scalars[S_MEMORY]
    satisfaction_scale = scalars[S_SAT_SCALE]
    tolerance = scalars[S_SAT_TOLERANCE]
    defection = scalars[S_DEFECTION_THRESHOLD]
    affection = scalars[S_AFFECTION_THRESHOLD]
    indifference_low = scalars[S_INDIFFERENCE_LOW]
    indifference_high = scalars[S_INDIFFERENCE_HIGH]
    adaptation = scalars[S_ADAPTATION]
    anchor = scalars[S_ANCHOR]
    noise_sd = scalars[S_NOISE]
    tenure_scale = scalars[S_TENURE_SCALE]
    neutral_loyalty = scalars[S_NEUTRAL_LOYALTY]
    beta_advance = scalars[S_BETA_ADVANCE]
    beta_exit = scalars[S_BETA_EXIT]
    long_term = scalars[S_LONG_TERM]
    cash = cash_parameters(scalars)
    beta_churn = scalars[S_CHURN_ALPHA] > 0.0
    n_traced = stage_trace.shape[1]
    for local in range(first_local, stop_local):
        customer = customer_ids[local]
        segment = np.int64(attributes[local, A_SEGMENT])
        wallet = attributes[local, A_WALLET]
        fit = attributes[local, A_FIT]
        tier = np.int64(attributes[local, A_TIER])
        propensity = attributes[local, A_PROPENSITY]
        start_tenure = np.int64(start[local, START_TENURE])
        acquisition = start[local, START_ACQUISITION]
        base_performance = segment_table[ROW_BASE_PERFORMANCE, segment]
        exit_odds = segment_table[ROW_EXIT_ODDS, segment]
        premium_rate = segment_table[ROW_PRICE_PREMIUM, segment]
        streams[0], streams[1] = seed_stream(seed, replication, customer, COMPONENT_PERFORMANCE)
        streams[2], streams[3] = seed_stream(seed, replication, customer, COMPONENT_TRANSITIONS)
        streams[4], streams[5] = seed_stream(seed, replication, customer, COMPONENT_CHURN)
        drawn = 0
        traced = local < n_traced
        for policy in range(n_policies):
            expectation = start[local, START_EXPECTATION]
            satisfaction = start[local, START_SATISFACTION]
            previous_satisfaction = start[local, START_PREVIOUS_SATISFACTION]
            stage = np.int64(start[local, START_STAGE])
            highest_stage = np.int64(start[local, START_HIGHEST_STAGE])
            accounts = opening_accounts(0.0)
            end_period = -1
            drop_trigger = reactive_drop[policy]
            for t in range(horizon):
                if t >= drawn:
                    drawn = _fill_draws(draws, streams, drawn, horizon, beta_churn)
                occupancy[block, policy, t, stage] += 1
                if traced:
                    stage_trace[policy, local, t] = stage
                # retention spend, decided on what the firm observed up to last period; (M1)
                spend = spend_tables[policy, stage, segment, tier]
                care = care_tables[policy, stage, segment, tier]
                if (
                    drop_trigger > 0.0
                    and stage != DECLINE
                    and previous_satisfaction - satisfaction <= drop_trigger
                ):
                    spend = 0.0
                    care = care_without_spend
                # (M2)-(M6): perceived performance, satisfaction, loyalty, expectations
                performance = perceived_performance(
                    base_performance, fit, stage_table[ROW_EFFECTIVENESS, stage], care, noise_sd, draws[0, t]
                )
                disconfirmation = performance - expectation
                previous_satisfaction = satisfaction
                satisfaction = update_satisfaction(satisfaction, disconfirmation, memory, satisfaction_scale)
                kind = satisfaction_type(disconfirmation, tolerance)
                loyalty = loyalty_from_satisfaction(
                    satisfaction, defection, affection, indifference_low, indifference_high
                )
                expectation = update_expectation(
                    expectation, performance, initial_expectation, adaptation, anchor
                )
                # (C1)-(C6): this period's cash, received at the end of the period (sim.model.step)
                tenure = start_tenure + t
                ramp = ramps[tenure] if tenure < n_ramps else tenure_ramp(float(tenure), tenure_scale)
                accounts, profit = account_period(
                    accounts,
                    cash,
                    tenure == 0,
                    wallet,
                    ramp,
                    stage_table[ROW_SOW, stage],
                    stage_table[ROW_MARGIN, stage],
                    stage_table[ROW_CROSS_SELL, stage],
                    referral[kind],
                    premium_rate,
                    loyalty,
                    spend,
                    1.0,
                )
                add_period(
                    stage_periods,
                    stage_sums,
                    period_sums,
                    block,
                    policy,
                    stage,
                    t,
                    profit,
                    satisfaction,
                    loyalty,
                    spend,
                )
                # (M7): the stage transition, from one uniform draw
                uniform = draws[1, t]
                if uniform >= stay_bounds[stage, segment]:
                    new_stage = stage  # what next_stage gives for any loyalty (see the docstring)
                else:
                    forward, leave = transition_probabilities(
                        stage,
                        loyalty,
                        neutral_loyalty,
                        stage_table[ROW_ADVANCE, stage],
                        stage_table[ROW_EXIT, stage],
                        beta_advance,
                        beta_exit,
                        exit_odds,
                    )
                    new_stage = next_stage(stage, forward, leave, uniform)
                # (M8): one churn draw per period while the option is on
                if beta_churn and propensity > 0.0 and propensity_ends_relationship(propensity, draws[2, t]):
                    new_stage = ENDED
                add_satisfaction(
                    satisfaction_bins,
                    block,
                    policy,
                    stage,
                    satisfaction,
                    new_stage == ENDED or (new_stage == DECLINE and stage != DECLINE),
                )
                stage = new_stage
                if stage <= STABILITY and stage > highest_stage:
                    highest_stage = stage
                if stage == ENDED:
                    end_period = t + 1
                    break
            if end_period < 0:
                occupancy[block, policy, horizon, stage] += 1
            else:
                ended_at[block, policy, end_period] += 1
            if traced:
                for t in range(end_period if end_period >= 0 else horizon, horizon + 1):
                    stage_trace[policy, local, t] = stage
            value = customer_clv(
                accounts.clv1,
                accounts.clv2,
                accounts.clv3,
                accounts.clv4,
                accounts.clv5,
                accounts.clv6,
                accounts.spend,
                acquisition,
            )
            add_customer(money, block, policy, accounts, acquisition, value)
            pattern = lifecycle_pattern(highest_stage, end_period, start_tenure, long_term)
            pattern_count[block, policy, pattern] += 1
            pattern_clv[block, policy, pattern] += value
            clv[policy, local] = value
        for policy in range(n_policies):
            for other in range(n_policies):
                if policy != other:
                    difference = clv[policy, local] - clv[other, local]
                    pair_sums[block, policy, other, 0] += difference
                    pair_sums[block, policy, other, 1] += difference * difference
                    if difference > 0.0:
                        pair_wins[block, policy, other] += 1


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
    stay_bounds,
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
    blocks of ``BLOCK`` customers (:func:`_simulate_block`); customer ``i`` draws from the
    streams of ``customer_ids[i]``. Writes block partials and per-customer CLVs in place.

    Used for new cohorts (states from :func:`_new_customers`) and for snapshots of live
    customers (:func:`sim.project_from`) alike: one per-customer simulation for both.
    """
    n_customers = clv.shape[1]
    n_blocks = (n_customers + BLOCK - 1) // BLOCK
    for block in prange(n_blocks):
        _simulate_block(
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
            stay_bounds,
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


def stay_bounds(arrays) -> np.ndarray:
    """``bound[stage, segment]``: an upper bound of ``forward + leave`` of (M7) over every
    loyalty (M6) can produce, or 2 where no uniform can be above it.

    The loyalty curve is piecewise linear through (0, 0), (s_D, l_L), (s_A, l_H), (1, 1), so
    loyalty lies in ``[min(0, l_L, l_H), max(1, l_L, l_H)]``; each probability of
    :func:`sim.model.equations.transition_probabilities` is monotone in loyalty (before the
    scaling-down of a sum above 1, which only lowers them), so its largest value is at an
    end of that range. ``1e-12`` is added for the rounding of ``exp`` and the divisions
    (a few ulp). A uniform at or above the bound keeps the stage for every loyalty, so the
    kernel need not evaluate the probabilities (:func:`_simulate_block`).
    """
    scalars = arrays.scalars
    low = min(0.0, scalars[S_INDIFFERENCE_LOW], scalars[S_INDIFFERENCE_HIGH])
    high = max(1.0, scalars[S_INDIFFERENCE_LOW], scalars[S_INDIFFERENCE_HIGH])
    bounds = np.full((N_STAGES, arrays.segment.shape[1]), 2.0)
    for stage in range(N_STAGES):
        for segment in range(arrays.segment.shape[1]):
            ends = [
                transition_probabilities(
                    stage,
                    loyalty,
                    scalars[S_NEUTRAL_LOYALTY],
                    arrays.stage[ROW_ADVANCE, stage],
                    arrays.stage[ROW_EXIT, stage],
                    scalars[S_BETA_ADVANCE],
                    scalars[S_BETA_EXIT],
                    arrays.segment[ROW_EXIT_ODDS, segment],
                )
                for loyalty in (low, high)
            ]
            bound = max(end[0] for end in ends) + max(end[1] for end in ends) + 1e-12
            if math.isfinite(bound) and bound < 1.0:
                bounds[stage, segment] = bound
    return bounds


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
        stay_bounds(arrays),
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
