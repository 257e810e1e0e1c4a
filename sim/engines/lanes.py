"""The cohort core's kernel: the customers of a block stepped together, period by period.

:func:`simulate_block` simulates the customers of one block (:data:`sim.tables.partials.BLOCK`)
under every policy. It takes them in groups of :data:`GROUP` and steps a group period by
period: in each period, for each policy, one pass over the group's customers that are still
active (:func:`advance_period`) runs the model's equations -- (M1)-(M8) of :mod:`sim.model.equations`
and the accounting of :func:`sim.model.step.account_period`, the functions every engine
calls -- with no branch in its body, so that LLVM vectorises it: several customers per
instruction, and the long dependency chain of one customer's period (disconfirmation, ``exp``,
logistic, satisfaction, loyalty, transition probabilities) overlaps with the other
customers' chains. A scalar pass (:func:`close_period`) then adds the period to the partials
(:mod:`sim.tables.partials`) and handles the few customers whose stage changed or whose
relationship ended.

Layout. Everything the vector pass reads or writes lies in rows of :data:`GROUP` doubles (or
integers), one column per customer, at compile-time row offsets, so every access is a plain
vector load or store (a gather from an argument array would stop LLVM: it cannot rule out
that the array overlaps one the loop writes). Per customer: the attributes and the draws of
the current window of :data:`WINDOW` periods (``customer_floats``), the customer's index and
start tenure (``customer_ints``); per policy and customer: the state, the discounted
accounts and this period's outputs (``policy_floats``), the stage (``policy_ints``). A
stage's parameters are selected among the four stages' values (no table look-up). The spend
and care of the current stage are kept per policy and customer and looked up again only when
the stage changes.

Ended customers. A customer whose relationship ended under a policy is masked there (stage
ENDED: nothing of it is added anywhere); a customer ended under every policy is dropped from
the group's columns (compaction) at the next window of draws, which is also when the draws
of the next :data:`WINDOW` periods are generated, in the new column order.

Numbers. Each customer's arithmetic is the model's, operation for operation, so every
per-customer result (CLV and its parts, stage path, end period, pattern) is the same, bit for
bit, as a customer-by-customer loop gives; the money partials and the pattern CLV sums are
added customer by customer in index order at the end of the group, as such a loop adds them.
The per-stage and per-period sums of profit, satisfaction, loyalty and spend are added in
another order (per period, in :data:`LANES` lanes by column: :func:`sim.tables.partials.add_periods`),
so they may differ from a customer-by-customer loop's in the last bits. Every order depends
only on the block's customers, never on threads or chunking.
"""

from __future__ import annotations

from numba import njit

from sim.model.arrays import (
    ROW_ADVANCE,
    ROW_CROSS_SELL,
    ROW_EFFECTIVENESS,
    ROW_EXIT,
    ROW_MARGIN,
    ROW_SOW,
    S_ADAPTATION,
    S_AFFECTION_THRESHOLD,
    S_ANCHOR,
    S_BETA_ADVANCE,
    S_BETA_EXIT,
    S_CHURN_ALPHA,
    S_DEFECTION_THRESHOLD,
    S_INDIFFERENCE_HIGH,
    S_INDIFFERENCE_LOW,
    S_INITIAL_EXPECTATION,
    S_MEMORY,
    S_NEUTRAL_LOYALTY,
    S_NOISE,
    S_SAT_SCALE,
    S_SAT_TOLERANCE,
)
from sim.model.equations import (
    competing_probabilities,
    loyalty_from_satisfaction,
    next_stage,
    perceived_performance,
    propensity_ends_relationship,
    satisfaction_type,
    select,
    update_expectation,
    update_satisfaction,
)
from sim.model.names import DECLINE, ENDED, N_STAGES, STABILITY
from sim.model.step import Accounts, account_period, cash_parameters
from sim.tables.partials import (
    K_LOYALTY,
    K_PROFIT,
    K_SATISFACTION,
    K_SPEND,
    SATISFACTION_BINS,
    satisfaction_bin,
)

__all__ = ["GROUP", "ROW", "WINDOW", "LANES", "advance_period", "close_period", "compact_columns"]

#: Customers of a block stepped together (the columns of the work arrays).
GROUP = 512
#: Elements from one row of a work array to the next: GROUP plus one cache line, so that the
#: rows' k-th elements do not all fall in the same L1 cache set (a 4096-byte stride would).
ROW = GROUP + 8
#: Periods of random draws generated at a time per customer (shared by all policies); the
#: group is compacted at the same periods.
WINDOW = 8
#: Lanes of the per-period sums (fixed, so that no sum depends on the CPU's vector width).
LANES = 4

# Rows of ``customer_floats`` (row r holds column k at r * GROUP + k).
C_WALLET, C_FIT, C_PROPENSITY, C_BASE_PERFORMANCE, C_EXIT_LOG_ODDS, C_PREMIUM_RATE = range(6)
N_CUSTOMER_ATTRIBUTES = 6
C_NOISE = N_CUSTOMER_ATTRIBUTES  # + w: the normal of period window_start + w, w < WINDOW
C_UNIFORM = C_NOISE + WINDOW  # + w: the transition uniform
C_CHURN = C_UNIFORM + WINDOW  # + w: the Beta-churn uniform
C_RAMP = C_CHURN + WINDOW  # + w: the tenure ramp
N_CUSTOMER_FLOATS = C_RAMP + WINDOW
# Rows of ``customer_ints``.
D_LOCAL, D_START_TENURE, D_SEGMENT, D_TIER, D_ACTIVE_POLICIES = range(5)
N_CUSTOMER_INTS = 5
# Rows of one policy's part of ``policy_floats``: the state and accounts (moved by compaction),
# then the outputs of the period (written by _advance, read by _close).
(
    F_EXPECTATION,
    F_SATISFACTION,
    F_PREVIOUS,
    F_DISCOUNT,
    F_CLV1,
    F_CLV2,
    F_CLV3,
    F_CLV4,
    F_CLV5,
    F_CLV6,
    F_SPEND_PV,
    F_STAGE_SPEND,
    F_STAGE_CARE,
) = range(13)
N_POLICY_STATE = 13
F_PROFIT, F_LOYALTY, F_SPEND, F_REFERRAL = range(N_POLICY_STATE, N_POLICY_STATE + 4)
N_POLICY_FLOATS = N_POLICY_STATE + 4
# Rows of one policy's part of ``policy_ints``.
Q_STAGE, Q_HIGHEST, Q_NEW_STAGE, Q_BIN, Q_EXIT_MOVE = range(5)
N_POLICY_STATE_INTS = 2
N_POLICY_INTS = 5
#: Index of the satisfaction histogram (:func:`close_period`) that counts what is not counted:
#: ended customers (masked) and NaN satisfaction.
UNCOUNTED = N_STAGES * SATISFACTION_BINS
# Rows of ``finals[policy]`` (accounts of customers whose relationship is over, by group index).
N_FINAL_PARTS = 7  # clv1 .. clv6, spend


@njit(cache=True, error_model="numpy", forceinline=True)
def _by_stage(stage, v0, v1, v2, v3):
    """The value of ``stage`` among the four live stages' (selects, no look-up; any for ENDED)."""
    return v0 if stage == 0 else (v1 if stage == 1 else (v2 if stage == 2 else v3))


@njit(cache=True, error_model="numpy", forceinline=True)
def _four(table, row, segment):
    """``table[row, 0..3, segment]``: a stage parameter of the four live stages."""
    return table[row, 0, segment], table[row, 1, segment], table[row, 2, segment], table[row, 3, segment]


@njit(cache=True, error_model="numpy", forceinline=True)
def _by_stage_and_segment(stage, segment, first, second):
    """The value of ``stage`` for ``segment`` among the segments' four-stage values ``first``
    (relationship) and ``second`` (transactional); selects, no look-up.
    """
    return select(segment == 0, _by_stage(stage, *first), _by_stage(stage, *second))


@njit(cache=True, error_model="numpy")
def advance_period(
    n,
    period,
    policy_floats,
    policy_ints,
    customer_floats,
    customer_ints,
    noise,
    uniforms,
    churn_uniforms,
    ramps,
    stage_table,
    referral,
    scalars,
    drop_trigger,
    care_without_spend,
):
    """One period of one policy for the ``n`` customers of the group: (M1)-(M8) and the
    period's accounting, branch-free over the columns (LLVM vectorises each loop).

    Reads the state and writes the next state, this period's profit, loyalty and spend and
    the next stage (``Q_NEW_STAGE``: ENDED for customers already ended, which stay masked).
    ``noise``, ``uniforms``, ``churn_uniforms`` and ``ramps`` are the period's rows of the
    draw window. Three loops over the columns, each customer's operations in the model's
    order: satisfaction and loyalty, then the accounts, then the transition. Splitting the
    period's long chain of dependent operations (disconfirmation, ``exp``, logistic,
    satisfaction, loyalty, two more ``exp``, the transition) keeps each loop small enough for
    the CPU to overlap many columns' chains; one loop doing everything ran at half the speed.
    """
    g = ROW
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
    drop_on = drop_trigger > 0.0
    e_first, e_second = _four(stage_table, ROW_EFFECTIVENESS, 0), _four(stage_table, ROW_EFFECTIVENESS, 1)
    r0, r1, r2 = referral[0], referral[1], referral[2]
    # (M1)-(M6): spend, perceived performance, satisfaction, loyalty, expectations
    for k in range(n):
        stage = policy_ints[Q_STAGE * g + k]
        segment = customer_ints[D_SEGMENT * g + k]
        satisfaction = policy_floats[F_SATISFACTION * g + k]
        previous = policy_floats[F_PREVIOUS * g + k]
        expectation = policy_floats[F_EXPECTATION * g + k]
        # retention spend, decided on what the firm observed up to last period; (M1)
        dropped = drop_on & (stage != DECLINE) & (previous - satisfaction <= drop_trigger)
        care = care_without_spend if dropped else policy_floats[F_STAGE_CARE * g + k]
        performance = perceived_performance(
            customer_floats[C_BASE_PERFORMANCE * g + k],
            customer_floats[C_FIT * g + k],
            _by_stage_and_segment(stage, segment, e_first, e_second),
            care,
            noise_sd,
            noise[k],
        )
        disconfirmation = performance - expectation
        kind = satisfaction_type(disconfirmation, tolerance)
        policy_floats[F_SATISFACTION * g + k] = update_satisfaction(
            satisfaction, disconfirmation, memory, satisfaction_scale
        )
        policy_floats[F_EXPECTATION * g + k] = update_expectation(
            expectation, performance, initial_expectation, adaptation, anchor
        )
        policy_floats[F_PREVIOUS * g + k] = satisfaction
        policy_floats[F_SPEND * g + k] = 0.0 if dropped else policy_floats[F_STAGE_SPEND * g + k]
        policy_floats[F_REFERRAL * g + k] = r0 if kind == 0 else (r1 if kind == 1 else r2)
    for k in range(n):
        policy_floats[F_LOYALTY * g + k] = loyalty_from_satisfaction(
            policy_floats[F_SATISFACTION * g + k], defection, affection, indifference_low, indifference_high
        )
    # (C1)-(C6): this period's cash, received at the end of the period (sim.model.step)
    cash = cash_parameters(scalars)
    w_first, w_second = _four(stage_table, ROW_SOW, 0), _four(stage_table, ROW_SOW, 1)
    m_first, m_second = _four(stage_table, ROW_MARGIN, 0), _four(stage_table, ROW_MARGIN, 1)
    x_first, x_second = _four(stage_table, ROW_CROSS_SELL, 0), _four(stage_table, ROW_CROSS_SELL, 1)
    for k in range(n):
        stage = policy_ints[Q_STAGE * g + k]
        segment = customer_ints[D_SEGMENT * g + k]
        accounts, profit = account_period(
            Accounts(
                policy_floats[F_DISCOUNT * g + k],
                policy_floats[F_CLV1 * g + k],
                policy_floats[F_CLV2 * g + k],
                policy_floats[F_CLV3 * g + k],
                policy_floats[F_CLV4 * g + k],
                policy_floats[F_CLV5 * g + k],
                policy_floats[F_CLV6 * g + k],
                policy_floats[F_SPEND_PV * g + k],
            ),
            cash,
            customer_ints[D_START_TENURE * g + k] + period == 0,
            customer_floats[C_WALLET * g + k],
            ramps[k],
            _by_stage_and_segment(stage, segment, w_first, w_second),
            _by_stage_and_segment(stage, segment, m_first, m_second),
            _by_stage_and_segment(stage, segment, x_first, x_second),
            policy_floats[F_REFERRAL * g + k],
            customer_floats[C_PREMIUM_RATE * g + k],
            policy_floats[F_LOYALTY * g + k],
            policy_floats[F_SPEND * g + k],
            1.0,
        )
        policy_floats[F_DISCOUNT * g + k] = accounts.discount
        policy_floats[F_CLV1 * g + k] = accounts.clv1
        policy_floats[F_CLV2 * g + k] = accounts.clv2
        policy_floats[F_CLV3 * g + k] = accounts.clv3
        policy_floats[F_CLV4 * g + k] = accounts.clv4
        policy_floats[F_CLV5 * g + k] = accounts.clv5
        policy_floats[F_CLV6 * g + k] = accounts.clv6
        policy_floats[F_SPEND_PV * g + k] = accounts.spend
        policy_floats[F_PROFIT * g + k] = profit
    # (M7): the stage transition, from one uniform draw; (M8): one churn draw while it is on
    neutral_loyalty = scalars[S_NEUTRAL_LOYALTY]
    beta_advance = scalars[S_BETA_ADVANCE]
    beta_exit = scalars[S_BETA_EXIT]
    beta_churn = scalars[S_CHURN_ALPHA] > 0.0
    a_first, a_second = _four(stage_table, ROW_ADVANCE, 0), _four(stage_table, ROW_ADVANCE, 1)
    l_first, l_second = _four(stage_table, ROW_EXIT, 0), _four(stage_table, ROW_EXIT, 1)
    for k in range(n):
        stage = policy_ints[Q_STAGE * g + k]
        segment = customer_ints[D_SEGMENT * g + k]
        forward, leave = competing_probabilities(
            policy_floats[F_LOYALTY * g + k] - neutral_loyalty,
            _by_stage_and_segment(stage, segment, a_first, a_second),
            _by_stage_and_segment(stage, segment, l_first, l_second),
            beta_advance,
            beta_exit,
            customer_floats[C_EXIT_LOG_ODDS * g + k],
        )
        new_stage = next_stage(stage, forward, leave, uniforms[k])
        propensity = customer_floats[C_PROPENSITY * g + k]
        churned = (
            beta_churn & (propensity > 0.0) & propensity_ends_relationship(propensity, churn_uniforms[k])
        )
        new_stage = ENDED if churned | (stage == ENDED) else new_stage
        policy_ints[Q_NEW_STAGE * g + k] = new_stage
        # the period's satisfaction bin of the stage (sim.tables.partials.add_satisfaction's rule)
        index = satisfaction_bin(policy_floats[F_SATISFACTION * g + k])
        counted = (stage != ENDED) & (index >= 0)
        policy_ints[Q_BIN * g + k] = stage * SATISFACTION_BINS + index if counted else UNCOUNTED
        policy_ints[Q_EXIT_MOVE * g + k] = (new_stage == ENDED) | (
            (new_stage == DECLINE) & (stage != DECLINE)
        )


@njit(cache=True, error_model="numpy")
def close_period(
    n,
    period,
    horizon,
    block,
    policy,
    group_first,
    policy_floats,
    policy_ints,
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
):
    """After :func:`advance_period`: add every column's period to ``counts[stage]``,
    ``lane_sums[stage, column, k % LANES]`` and the satisfaction ``histogram[bin, exit]``
    (ended customers land in the extra stage ENDED and the extra bin :data:`UNCOUNTED`, which
    are not added to the partials: no branch on them), write the traced stage paths, and
    move customers to their new stage: the new stage's spend and care, the highest stage
    reached, and, for a relationship that ended, its accounts, end period and highest stage
    into ``finals``/``final_ints`` (by group index). Returns how many ended.
    """
    g = ROW
    n_traced = stage_trace.shape[1]
    ended = 0
    for k in range(n):
        stage = policy_ints[Q_STAGE * g + k]
        new_stage = policy_ints[Q_NEW_STAGE * g + k]
        lane = k % LANES
        counts[stage] += 1
        lane_sums[stage, K_PROFIT, lane] += policy_floats[F_PROFIT * g + k]
        lane_sums[stage, K_SATISFACTION, lane] += policy_floats[F_SATISFACTION * g + k]
        lane_sums[stage, K_LOYALTY, lane] += policy_floats[F_LOYALTY * g + k]
        lane_sums[stage, K_SPEND, lane] += policy_floats[F_SPEND * g + k]
        bin_index = policy_ints[Q_BIN * g + k]
        histogram[bin_index, 0] += 1
        histogram[bin_index, 1] += policy_ints[Q_EXIT_MOVE * g + k]
        local = customer_ints[D_LOCAL * g + k]
        if local < n_traced:
            stage_trace[policy, local, period] = stage
        if new_stage == stage:
            continue
        policy_ints[Q_STAGE * g + k] = new_stage
        if new_stage == ENDED:
            ended += 1
            customer = local - group_first
            for part in range(N_FINAL_PARTS):
                finals[policy, part, customer] = policy_floats[(F_CLV1 + part) * g + k]
            final_ints[policy, 0, customer] = period + 1
            final_ints[policy, 1, customer] = policy_ints[Q_HIGHEST * g + k]
            ended_at[block, policy, period + 1] += 1
            customer_ints[D_ACTIVE_POLICIES * g + k] -= 1
            if local < n_traced:
                for t in range(period + 1, horizon + 1):
                    stage_trace[policy, local, t] = ENDED
            continue
        if new_stage <= STABILITY and new_stage > policy_ints[Q_HIGHEST * g + k]:
            policy_ints[Q_HIGHEST * g + k] = new_stage
        segment = customer_ints[D_SEGMENT * g + k]
        tier = customer_ints[D_TIER * g + k]
        policy_floats[F_STAGE_SPEND * g + k] = spend_tables[policy, new_stage, segment, tier]
        policy_floats[F_STAGE_CARE * g + k] = care_tables[policy, new_stage, segment, tier]
    return ended


@njit(cache=True, error_model="numpy")
def compact_columns(n, n_policies, customer_floats, customer_ints, policy_floats, policy_ints):
    """Drop the columns of customers ended under every policy (order kept); return the new count."""
    g = ROW
    kept = 0
    for k in range(n):
        if customer_ints[D_ACTIVE_POLICIES * g + k] == 0:
            continue
        if kept != k:
            for row in range(N_CUSTOMER_ATTRIBUTES):
                customer_floats[row * g + kept] = customer_floats[row * g + k]
            for row in range(N_CUSTOMER_INTS):
                customer_ints[row * g + kept] = customer_ints[row * g + k]
            for policy in range(n_policies):
                floats = policy_floats[policy]
                for row in range(N_POLICY_STATE):
                    floats[row * g + kept] = floats[row * g + k]
                ints = policy_ints[policy]
                for row in range(N_POLICY_STATE_INTS):
                    ints[row * g + kept] = ints[row * g + k]
        kept += 1
    return kept
