"""One block of the cohort core: its customers in groups, each group stepped period by period.

:func:`simulate_block` is the kernel :func:`sim.engines.core._simulate_customers` runs for
each block of :data:`sim.tables.partials.BLOCK` customers (in parallel over blocks). A group
of :data:`sim.engines.lanes.GROUP` customers is set up in the columns of the work arrays
(:func:`_start_group`), stepped with the vector and scalar passes of
:mod:`sim.engines.lanes` -- the random draws of each customer generated
:data:`sim.engines.lanes.WINDOW` periods at a time (:func:`_draw_window`), ended customers
dropped at those periods -- and closed at the horizon (:func:`_finish_group`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.engines.lanes import (
    C_BASE_PERFORMANCE,
    C_CHURN,
    C_EXIT_LOG_ODDS,
    C_FIT,
    C_NOISE,
    C_PREMIUM_RATE,
    C_PROPENSITY,
    C_RAMP,
    C_UNIFORM,
    C_WALLET,
    D_ACTIVE_POLICIES,
    D_LOCAL,
    D_SEGMENT,
    D_START_TENURE,
    D_TIER,
    F_CLV1,
    F_DISCOUNT,
    F_EXPECTATION,
    F_PREVIOUS,
    F_SATISFACTION,
    F_SPEND_PV,
    F_STAGE_CARE,
    F_STAGE_SPEND,
    GROUP,
    LANES,
    N_CUSTOMER_FLOATS,
    N_CUSTOMER_INTS,
    N_FINAL_PARTS,
    N_POLICY_FLOATS,
    N_POLICY_INTS,
    Q_HIGHEST,
    Q_STAGE,
    ROW,
    UNCOUNTED,
    WINDOW,
    advance_period,
    close_period,
    compact_columns,
)
from sim.model.arrays import (
    ROW_BASE_PERFORMANCE,
    ROW_EXIT_ODDS,
    ROW_PRICE_PREMIUM,
    S_CHURN_ALPHA,
    S_LONG_TERM,
    S_TENURE_SCALE,
)
from sim.model.equations import customer_clv, exit_log_odds, lifecycle_pattern, tenure_ramp
from sim.model.names import ENDED, N_STAGES
from sim.model.step import Accounts
from sim.model.streams import (
    COMPONENT_CHURN,
    COMPONENT_PERFORMANCE,
    COMPONENT_TRANSITIONS,
    next_normal,
    next_uniform,
    seed_stream,
)
from sim.tables.partials import N_PERIOD_SUMS, add_customer, add_periods, add_satisfaction_counts

__all__ = ["ATTRIBUTE_COLUMNS", "START_COLUMNS", "simulate_block"]

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


@njit(cache=True, error_model="numpy")
def _draw_window(
    n,
    window_start,
    horizon,
    group_first,
    customer_floats,
    customer_ints,
    streams,
    ramps,
    tenure_scale,
    beta_churn,
):
    """Draw periods ``window_start .. window_start + WINDOW - 1`` (at most ``horizon - 1``) of
    each customer's streams into the window rows, in column order, and fill the tenure ramps.

    The draws of period ``t`` are the ``t``-th variates of each stream, whichever policy
    needs them, so drawing them ahead changes no number; ``streams[customer]`` holds the
    xoroshiro128+ states ``(s0, s1)`` of components 1, 2 and 3 and is advanced in place.
    The ramp of tenure ``tau`` is ``ramps[tau]`` while the table lasts, else
    :func:`sim.model.equations.tenure_ramp` (the same function made the table).
    """
    g = ROW
    stop = min(window_start + WINDOW, horizon)
    n_ramps = ramps.shape[0]
    for k in range(n):
        customer = customer_ints[D_LOCAL * g + k] - group_first
        s0 = streams[customer, 0]
        s1 = streams[customer, 1]
        for t in range(window_start, stop):
            customer_floats[(C_NOISE + t - window_start) * g + k], s0, s1 = next_normal(s0, s1)
        streams[customer, 0] = s0
        streams[customer, 1] = s1
        s0 = streams[customer, 2]
        s1 = streams[customer, 3]
        for t in range(window_start, stop):
            customer_floats[(C_UNIFORM + t - window_start) * g + k], s0, s1 = next_uniform(s0, s1)
        streams[customer, 2] = s0
        streams[customer, 3] = s1
        if beta_churn:
            s0 = streams[customer, 4]
            s1 = streams[customer, 5]
            for t in range(window_start, stop):
                customer_floats[(C_CHURN + t - window_start) * g + k], s0, s1 = next_uniform(s0, s1)
            streams[customer, 4] = s0
            streams[customer, 5] = s1
        start_tenure = customer_ints[D_START_TENURE * g + k]
        for t in range(window_start, stop):
            tenure = start_tenure + t
            ramp = ramps[tenure] if tenure < n_ramps else tenure_ramp(float(tenure), tenure_scale)
            customer_floats[(C_RAMP + t - window_start) * g + k] = ramp


@njit(cache=True, error_model="numpy")
def _start_group(
    group_first,
    n,
    seed,
    replication,
    customer_ids,
    attributes,
    start,
    segment_table,
    spend_tables,
    care_tables,
    customer_floats,
    customer_ints,
    policy_floats,
    policy_ints,
    streams,
):
    """Columns ``0 .. n - 1`` of the work arrays: customers ``group_first ..`` of the block,
    each in its start state (``start``, :data:`START_COLUMNS`) under every
    policy with opening accounts, and their streams seeded.
    """
    g = ROW
    for k in range(n):
        local = group_first + k
        segment = np.int64(attributes[local, A_SEGMENT])
        tier = np.int64(attributes[local, A_TIER])
        customer_floats[C_WALLET * g + k] = attributes[local, A_WALLET]
        customer_floats[C_FIT * g + k] = attributes[local, A_FIT]
        customer_floats[C_PROPENSITY * g + k] = attributes[local, A_PROPENSITY]
        customer_floats[C_BASE_PERFORMANCE * g + k] = segment_table[ROW_BASE_PERFORMANCE, segment]
        customer_floats[C_EXIT_LOG_ODDS * g + k] = exit_log_odds(segment_table[ROW_EXIT_ODDS, segment])
        customer_floats[C_PREMIUM_RATE * g + k] = segment_table[ROW_PRICE_PREMIUM, segment]
        customer_ints[D_LOCAL * g + k] = local
        customer_ints[D_START_TENURE * g + k] = np.int64(start[local, START_TENURE])
        customer_ints[D_SEGMENT * g + k] = segment
        customer_ints[D_TIER * g + k] = tier
        customer_ints[D_ACTIVE_POLICIES * g + k] = policy_floats.shape[0]
        customer = customer_ids[local]
        streams[k, 0], streams[k, 1] = seed_stream(seed, replication, customer, COMPONENT_PERFORMANCE)
        streams[k, 2], streams[k, 3] = seed_stream(seed, replication, customer, COMPONENT_TRANSITIONS)
        streams[k, 4], streams[k, 5] = seed_stream(seed, replication, customer, COMPONENT_CHURN)
        stage = np.int64(start[local, START_STAGE])
        for policy in range(policy_floats.shape[0]):
            floats = policy_floats[policy]
            ints = policy_ints[policy]
            floats[F_EXPECTATION * g + k] = start[local, START_EXPECTATION]
            floats[F_SATISFACTION * g + k] = start[local, START_SATISFACTION]
            floats[F_PREVIOUS * g + k] = start[local, START_PREVIOUS_SATISFACTION]
            floats[F_DISCOUNT * g + k] = 1.0
            for row in range(F_CLV1, F_SPEND_PV + 1):
                floats[row * g + k] = 0.0
            floats[F_STAGE_SPEND * g + k] = spend_tables[policy, stage, segment, tier]
            floats[F_STAGE_CARE * g + k] = care_tables[policy, stage, segment, tier]
            ints[Q_STAGE * g + k] = stage
            ints[Q_HIGHEST * g + k] = np.int64(start[local, START_HIGHEST_STAGE])


@njit(cache=True, error_model="numpy")
def _finish_group(
    block,
    group_first,
    n_group,
    n,
    horizon,
    long_term,
    start,
    policy_floats,
    policy_ints,
    customer_ints,
    finals,
    final_ints,
    money,
    occupancy,
    pattern_count,
    pattern_clv,
    pair_sums,
    pair_wins,
    clv,
    stage_trace,
):
    """Close the group at the horizon: the customers still active are counted in the last
    occupancy row and their accounts taken as they stand; then, customer by customer in index
    order, every policy's CLV (:func:`sim.model.equations.customer_clv`), money partials
    (:func:`sim.tables.partials.add_customer`), lifecycle pattern and the policies' pairwise
    CLV differences -- the order of a customer-by-customer loop, so these sums are its bits.
    """
    g = ROW
    n_policies = clv.shape[0]
    n_traced = stage_trace.shape[1]
    for policy in range(n_policies):
        floats = policy_floats[policy]
        ints = policy_ints[policy]
        for k in range(n):
            stage = ints[Q_STAGE * g + k]
            if stage == ENDED:
                continue
            occupancy[block, policy, horizon, stage] += 1
            local = customer_ints[D_LOCAL * g + k]
            customer = local - group_first
            for part in range(N_FINAL_PARTS):
                finals[policy, part, customer] = floats[(F_CLV1 + part) * g + k]
            final_ints[policy, 0, customer] = -1
            final_ints[policy, 1, customer] = ints[Q_HIGHEST * g + k]
            if local < n_traced:
                stage_trace[policy, local, horizon] = stage
    for customer in range(n_group):
        local = group_first + customer
        acquisition = start[local, START_ACQUISITION]
        start_tenure = np.int64(start[local, START_TENURE])
        for policy in range(n_policies):
            accounts = Accounts(
                0.0,
                finals[policy, 0, customer],
                finals[policy, 1, customer],
                finals[policy, 2, customer],
                finals[policy, 3, customer],
                finals[policy, 4, customer],
                finals[policy, 5, customer],
                finals[policy, 6, customer],
            )
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
            end_period = final_ints[policy, 0, customer]
            pattern = lifecycle_pattern(final_ints[policy, 1, customer], end_period, start_tenure, long_term)
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


@njit(cache=True, error_model="numpy")
def simulate_block(
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
    """Every customer ``first_local`` to ``stop_local - 1`` of one block under every policy: each
    customer's whole trajectory, adding into the block's partials and writing its CLV.

    The start state of customer ``i`` is ``start[i]`` (:data:`START_COLUMNS`): a newly
    acquired customer starts in exploration with satisfaction 1/2, the initial expectation,
    tenure 0 and pays its acquisition cost; a customer projected from a snapshot
    (:func:`sim.project_from`) starts where the snapshot left it and pays nothing. Customers
    whose chunk-local index is below ``stage_trace.shape[1]`` also write their stage path
    (ENDED after the end) into ``stage_trace[policy, local]``.

    Per period and customer, in this order (the model's, :mod:`sim.model.equations`): the
    retention spend of the stage (zero under a reactive policy outside decline unless
    satisfaction fell by more than the trigger last period) and its care response (M1),
    tabulated per spend level in ``care_tables``; perceived performance (M2), disconfirmation
    and its type (M3), satisfaction (M4), loyalty (M6), expectations (M5); the period's cash
    flows, discounting and accumulation (:func:`sim.model.step.account_period`, tenure ramp
    from ``ramps``); the transition (M7) from one uniform draw and (M8) Beta churn. See the
    module docstring for how customers are stepped together.
    """
    n_policies = clv.shape[0]
    g = ROW
    customer_floats = np.zeros(N_CUSTOMER_FLOATS * g)
    customer_ints = np.zeros(N_CUSTOMER_INTS * g, dtype=np.int64)
    policy_floats = np.zeros((n_policies, N_POLICY_FLOATS * g))
    policy_ints = np.zeros((n_policies, N_POLICY_INTS * g), dtype=np.int64)
    streams = np.zeros((GROUP, 6), dtype=np.uint64)
    finals = np.zeros((n_policies, N_FINAL_PARTS, GROUP))
    final_ints = np.zeros((n_policies, 2, GROUP), dtype=np.int64)
    # per period and policy; row ENDED of counts and lane_sums and the last histogram row take
    # the masked (ended) columns and are never added to the partials
    counts = np.zeros(N_STAGES + 1, dtype=np.int64)
    lane_sums = np.zeros((N_STAGES + 1, N_PERIOD_SUMS, LANES))
    histogram = np.zeros((UNCOUNTED + 1, 2), dtype=np.int64)
    tenure_scale = scalars[S_TENURE_SCALE]
    beta_churn = scalars[S_CHURN_ALPHA] > 0.0
    long_term = scalars[S_LONG_TERM]
    for group_first in range(first_local, stop_local, GROUP):
        n_group = min(GROUP, stop_local - group_first)
        _start_group(
            group_first,
            n_group,
            seed,
            replication,
            customer_ids,
            attributes,
            start,
            segment_table,
            spend_tables,
            care_tables,
            customer_floats,
            customer_ints,
            policy_floats,
            policy_ints,
            streams,
        )
        n = n_group
        for t in range(horizon):
            window = t % WINDOW
            if window == 0:
                if t > 0:
                    n = compact_columns(
                        n, n_policies, customer_floats, customer_ints, policy_floats, policy_ints
                    )
                    if n == 0:
                        break
                _draw_window(
                    n,
                    t,
                    horizon,
                    group_first,
                    customer_floats,
                    customer_ints,
                    streams,
                    ramps,
                    tenure_scale,
                    beta_churn,
                )
            noise = customer_floats[(C_NOISE + window) * g : (C_NOISE + window + 1) * g]
            uniforms = customer_floats[(C_UNIFORM + window) * g : (C_UNIFORM + window + 1) * g]
            churn_uniforms = customer_floats[(C_CHURN + window) * g : (C_CHURN + window + 1) * g]
            ramp_row = customer_floats[(C_RAMP + window) * g : (C_RAMP + window + 1) * g]
            for policy in range(n_policies):
                advance_period(
                    n,
                    t,
                    policy_floats[policy],
                    policy_ints[policy],
                    customer_floats,
                    customer_ints,
                    noise,
                    uniforms,
                    churn_uniforms,
                    ramp_row,
                    stage_table,
                    referral,
                    scalars,
                    reactive_drop[policy],
                    care_without_spend,
                )
                counts[:] = 0
                lane_sums[:] = 0.0
                histogram[:] = 0
                close_period(
                    n,
                    t,
                    horizon,
                    block,
                    policy,
                    group_first,
                    policy_floats[policy],
                    policy_ints[policy],
                    customer_ints,
                    spend_tables,
                    care_tables,
                    counts,
                    lane_sums,
                    histogram,
                    ended_at,
                    finals,
                    final_ints,
                    stage_trace,
                )
                add_periods(
                    stage_periods,
                    stage_sums,
                    period_sums,
                    occupancy,
                    block,
                    policy,
                    t,
                    counts[:N_STAGES],
                    lane_sums[:N_STAGES],
                )
                add_satisfaction_counts(satisfaction_bins, block, policy, histogram)
        _finish_group(
            block,
            group_first,
            n_group,
            n,
            horizon,
            long_term,
            start,
            policy_floats,
            policy_ints,
            customer_ints,
            finals,
            final_ints,
            money,
            occupancy,
            pattern_count,
            pattern_clv,
            pair_sums,
            pair_wins,
            clv,
            stage_trace,
        )
