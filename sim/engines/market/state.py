"""The agent engine's state layout and its jitted per-period step.

Every agent's state lives in rows of preallocated arrays (float state, integer state,
random-stream states); :func:`_close_period` advances one customer by one period with the
model's equations, in the core's order and with the core's draws.
"""

from __future__ import annotations


import numpy as np
from numba import njit

from sim.model.streams import MAX_CUSTOMER, next_exponential, next_normal, next_uniform, seed_stream
from sim.model.names import STAGES
from sim.tables.partials import K_LOYALTY, K_PROFIT, K_SATISFACTION, K_SPEND, SATISFACTION_BINS
from sim.engines.core import customer_attributes
from sim.model.arrays import ROW_ACQUISITION, ROW_ADVANCE, ROW_BASE_PERFORMANCE, ROW_CROSS_SELL, ROW_EFFECTIVENESS, ROW_EXIT, ROW_EXIT_ODDS, ROW_MARGIN, ROW_PRICE_PREMIUM, ROW_SOW, S_ADAPTATION, S_AFFECTION_THRESHOLD, S_ANCHOR, S_ANNOYANCE, S_BETA_ADVANCE, S_BETA_EXIT, S_CARE_GAIN, S_CARE_SCALE, S_COST_FLOOR, S_COST_TO_SERVE, S_CROSS_SELL_MARGIN, S_DEFECTION_THRESHOLD, S_DISCOUNT_FACTOR, S_INDIFFERENCE_HIGH, S_INDIFFERENCE_LOW, S_INITIAL_EXPECTATION, S_MEMORY, S_NEUTRAL_LOYALTY, S_NOISE, S_SAT_SCALE, S_SAT_TOLERANCE, S_SOW_GROWTH, S_TENURE_SCALE
from sim.model.equations import care_response, loyalty_from_satisfaction, next_stage, perceived_performance, period_cash_flows, period_profit, propensity_ends_relationship, satisfaction_type, transition_probabilities, update_expectation, update_satisfaction
from sim.model.names import DECLINE, ENDED, EXPLORATION, STABILITY
from sim.model.streams import COMPONENT_CHURN, COMPONENT_COMPLAINTS, COMPONENT_PERFORMANCE, COMPONENT_PURCHASES, COMPONENT_TRANSITIONS, COMPONENT_WORD_OF_MOUTH

#: The customer index of the market's own streams (no customer can have it).
MARKET_STREAM_CUSTOMER = MAX_CUSTOMER
#: How a customer came to the firm: the initial cohort, the acquisition process, word of mouth.
ORIGINS: tuple[str, ...] = ("cohort", "acquisition", "word_of_mouth")
ORIGIN_COHORT, ORIGIN_ACQUISITION, ORIGIN_WORD_OF_MOUTH = range(3)
#: Columns of :meth:`MarketResult.snapshot` (the state :func:`sim.project_from` needs, plus
#: the optional ``highest_stage`` and ``propensity``).
SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "customer", "segment", "wallet", "fit", "tier", "stage", "satisfaction", "previous_satisfaction",
    "expectation", "tenure", "highest_stage", "propensity",
)
_STATE_NAMES = STAGES + ("ended",)

# --------------------------------------------------------------------------- agent state layout

# float state ``fstate[agent, F_*]``
(
    F_WALLET,
    F_FIT,
    F_PROPENSITY,
    F_EXPECTATION,
    F_SATISFACTION,
    F_PREVIOUS,
    F_LOYALTY,
    F_DISCOUNT,
    F_CLV1,
    F_CLV2,
    F_CLV3,
    F_CLV4,
    F_CLV5,
    F_CLV6,
    F_SPEND_VALUE,
    F_ACQUISITION,
    F_SPEND,
    F_SHIFT,
    F_PURCHASE_FACTOR,
) = range(19)
N_F = 19
# integer state ``istate[agent, I_*]``
I_SEGMENT, I_TIER, I_STAGE, I_HIGHEST, I_JOINED, I_END, I_KIND, I_ORIGIN, I_REFERRER = range(9)
N_I = 9
# stream states ``streams[agent, :]`` (xoroshiro128+ pairs): the core's components and the
# interactions' (purchases, complaints, word of mouth)
R_PERF, R_MOVE, R_CHURN, R_PURCHASES, R_COMPLAINTS, R_WORD_OF_MOUTH = 0, 2, 4, 6, 8, 10
N_R = 12
#: The random-stream component seeding each pair of columns (pair r: columns 2r, 2r + 1).
_STREAM_COMPONENTS = (COMPONENT_PERFORMANCE, COMPONENT_TRANSITIONS, COMPONENT_CHURN,
                      COMPONENT_PURCHASES, COMPONENT_COMPLAINTS, COMPONENT_WORD_OF_MOUTH)

# market counts accumulated by the step kernel, ``counts[period, C_*]``
(
    C_LIVE_RELATIONSHIP,
    C_LIVE_TRANSACTIONAL,
    C_ENDED_RELATIONSHIP,
    C_ENDED_TRANSACTIONAL,
    C_EXITS_RELATIONSHIP,
    C_EXITS_TRANSACTIONAL,
    C_DISSATISFIED,
    C_SATISFACTION,
    C_PROFIT,
    C_SPEND,
) = range(10)
N_KERNEL_COUNTS = 10
# counts kept by the Python processes
(
    C_JOINED_ACQUISITION,
    C_JOINED_WORD_OF_MOUTH,
    C_ACQUISITION_COST,
    C_PROSPECTS_WON,
    C_DETERRED,
    C_TURNED_AWAY,
    C_COMPLAINTS,
    C_SERVED,
    C_WAIT,
    C_WISHED,
    C_BUDGET,
    C_SERVERS,
    C_COMPETITOR,
    C_PURCHASES,
    C_MARKET_SPEND,
) = range(N_KERNEL_COUNTS, N_KERNEL_COUNTS + 15)
N_COUNTS = N_KERNEL_COUNTS + 15

#: Columns of the ``market`` table (besides policy, replication, period), in order.
MARKET_COLUMNS: tuple[str, ...] = (
    "live", "live_relationship", "live_transactional", "ended_relationship", "ended_transactional",
    "exits_relationship", "exits_transactional", "dissatisfied", "satisfaction_mean",
    "joined_acquisition", "joined_word_of_mouth", "prospects_won", "deterred", "turned_away",
    "complaints", "complaints_served", "wait_mean", "servers", "wished_spend", "retention_spend",
    "budget", "market_spend", "acquisition_cost", "competitor", "purchases", "profit", "cash_value",
)


# --------------------------------------------------------------------------- the jitted step


@njit(cache=True)
def _init_agent(agent, seed, replication, origin, referrer, period, fstate, istate, streams, segment_table, scalars):
    """Draw the attributes of customer ``agent`` with the core's (A1)-(A3), (M8) draw
    (``sim.engines.core.customer_attributes``), seed its streams and set the start state of a new
    customer: exploration, satisfaction 1/2, the initial expectation, tenure 0."""
    segment, wallet, fit, tier, propensity = customer_attributes(seed, replication, np.int64(agent), scalars)
    row = fstate[agent]
    row[:] = 0.0
    row[F_WALLET] = wallet
    row[F_FIT] = fit
    row[F_PROPENSITY] = propensity
    row[F_EXPECTATION] = scalars[S_INITIAL_EXPECTATION]
    row[F_SATISFACTION] = 0.5
    row[F_PREVIOUS] = 0.5
    row[F_DISCOUNT] = 1.0
    row[F_ACQUISITION] = segment_table[ROW_ACQUISITION, segment]
    row[F_PURCHASE_FACTOR] = 1.0
    state = istate[agent]
    state[I_SEGMENT] = segment
    state[I_TIER] = tier
    state[I_STAGE] = EXPLORATION
    state[I_HIGHEST] = EXPLORATION
    state[I_JOINED] = period
    state[I_END] = -1
    state[I_KIND] = 1
    state[I_ORIGIN] = origin
    state[I_REFERRER] = referrer
    customer = np.uint64(agent)
    for slot in range(len(_STREAM_COMPONENTS)):  # stream r of the agent: columns 2r, 2r + 1
        s0, s1 = seed_stream(seed, replication, customer, np.uint64(_STREAM_COMPONENTS[slot]))
        streams[agent, 2 * slot] = s0
        streams[agent, 2 * slot + 1] = s1


@njit(cache=True)
def _stream_uniform(streams, agent, slot):
    """The next uniform of customer ``agent``'s stream held at ``streams[agent, slot:slot+2]``
    (the same numbers as :class:`sim.model.streams.CustomerStream`). Jit-compiled."""
    value, s0, s1 = next_uniform(streams[agent, slot], streams[agent, slot + 1])
    streams[agent, slot] = s0
    streams[agent, slot + 1] = s1
    return value


@njit(cache=True)
def _stream_exponential(streams, agent, slot):
    """The next standard exponential of the stream at ``streams[agent, slot:slot+2]``. Jit-compiled."""
    value, s0, s1 = next_exponential(streams[agent, slot], streams[agent, slot + 1])
    streams[agent, slot] = s0
    streams[agent, slot + 1] = s1
    return value


@njit(cache=True)
def _arrival_times(streams, agent, slot, rate):
    """Times in [0, 1) of a Poisson process of rate ``rate`` per period, from exponential
    gaps of the stream at ``streams[agent, slot:slot+2]`` (one draw more than arrivals)."""
    times = []
    elapsed = _stream_exponential(streams, agent, slot) / rate
    while elapsed < 1.0:
        times.append(elapsed)
        elapsed += _stream_exponential(streams, agent, slot) / rate
    return np.array(times, dtype=np.float64)


@njit(cache=True)
def _satisfaction_bin(satisfaction):
    """The satisfaction bin ``0 .. SATISFACTION_BINS - 1`` of ``satisfaction``, the core's
    ``min(int(s * BINS), BINS - 1)`` for ``s`` in [0, 1], clamped to [0, 1] first so that it
    is always a valid index; -1 for NaN (``int(NaN)`` is undefined in numba, and an array
    write with it is unchecked). Jit-compiled."""
    if np.isnan(satisfaction):
        return -1
    return min(int(min(max(satisfaction, 0.0), 1.0) * SATISFACTION_BINS), SATISFACTION_BINS - 1)


@njit(cache=True)
def _close_period(
    agent,
    period,
    policy,
    fstate,
    istate,
    streams,
    exit_factor,
    book_referral,
    talk_probability,
    stage_table,
    segment_table,
    referral,
    scalars,
    stage_sums,
    stage_periods,
    period_sums,
    occupancy,
    satisfaction_bins,
    counts,
):
    """Close calendar period ``period`` for customer ``agent``: one iteration of the core's
    loop (``sim.engines.core._simulate_block``), same equations, same draws, same order.

    The spend is ``fstate[agent, F_SPEND]`` (set by the firm's review); the base
    performance of (M2) is lowered by ``fstate[agent, F_SHIFT]`` (complaint waits); the
    purchase cash flow is scaled by ``fstate[agent, F_PURCHASE_FACTOR]`` (event timing);
    the exit odds of (M7) are multiplied by ``exit_factor[segment]`` (competitor); the
    expected referral value (C5) is booked only if ``book_referral``. Cohort customers
    (origin 0, tenure = period) also add into the core's partial aggregates at
    ``[0, policy]``; every customer adds into the market counts ``counts[period]``. With
    ``talk_probability > 0`` (word of mouth on) one uniform of the word-of-mouth stream
    decides whether the customer talks about this period.
    Returns ``(new_stage, satisfaction_type, talked)``. Jit-compiled."""
    f = fstate[agent]
    state = istate[agent]
    segment = state[I_SEGMENT]
    stage = state[I_STAGE]
    tenure = period - state[I_JOINED]
    cohort = state[I_ORIGIN] == 0
    if cohort:
        occupancy[0, policy, tenure, stage] += 1
    spend = f[F_SPEND]
    # (M1)-(M6): perceived performance, satisfaction, loyalty, expectations
    noise, s0, s1 = next_normal(streams[agent, R_PERF], streams[agent, R_PERF + 1])
    streams[agent, R_PERF] = s0
    streams[agent, R_PERF + 1] = s1
    care = care_response(spend, scalars[S_CARE_GAIN], scalars[S_CARE_SCALE], scalars[S_ANNOYANCE])
    performance = perceived_performance(
        segment_table[ROW_BASE_PERFORMANCE, segment] - f[F_SHIFT],
        f[F_FIT],
        stage_table[ROW_EFFECTIVENESS, stage],
        care,
        scalars[S_NOISE],
        noise,
    )
    expectation = f[F_EXPECTATION]
    disconfirmation = performance - expectation
    satisfaction = f[F_SATISFACTION]
    f[F_PREVIOUS] = satisfaction
    satisfaction = update_satisfaction(satisfaction, disconfirmation, scalars[S_MEMORY], scalars[S_SAT_SCALE])
    kind = satisfaction_type(disconfirmation, scalars[S_SAT_TOLERANCE])
    loyalty = loyalty_from_satisfaction(
        satisfaction,
        scalars[S_DEFECTION_THRESHOLD],
        scalars[S_AFFECTION_THRESHOLD],
        scalars[S_INDIFFERENCE_LOW],
        scalars[S_INDIFFERENCE_HIGH],
    )
    f[F_EXPECTATION] = update_expectation(
        expectation, performance, scalars[S_INITIAL_EXPECTATION], scalars[S_ADAPTATION], scalars[S_ANCHOR]
    )
    f[F_SATISFACTION] = satisfaction
    f[F_LOYALTY] = loyalty
    # (C1)-(C6): this period's cash, received at the end of the period
    purchases, cross_sell, cost_saving, referral_value, premium = period_cash_flows(
        f[F_WALLET],
        float(tenure),
        stage_table[ROW_SOW, stage],
        stage_table[ROW_MARGIN, stage],
        stage_table[ROW_CROSS_SELL, stage],
        referral[kind] if book_referral else 0.0,
        segment_table[ROW_PRICE_PREMIUM, segment],
        loyalty,
        scalars[S_INDIFFERENCE_HIGH],
        scalars[S_SOW_GROWTH],
        scalars[S_TENURE_SCALE],
        scalars[S_CROSS_SELL_MARGIN],
        scalars[S_COST_TO_SERVE],
        scalars[S_COST_FLOOR],
    )
    purchases = purchases * f[F_PURCHASE_FACTOR]
    discount = f[F_DISCOUNT] * scalars[S_DISCOUNT_FACTOR]
    f[F_DISCOUNT] = discount
    if tenure == 0:
        f[F_CLV1] += discount * purchases
    else:
        f[F_CLV2] += discount * purchases
    f[F_CLV3] += discount * cross_sell
    f[F_CLV4] += discount * cost_saving
    f[F_CLV5] += discount * referral_value
    f[F_CLV6] += discount * premium
    f[F_SPEND_VALUE] += discount * spend
    profit = period_profit(purchases, cross_sell, cost_saving, referral_value, premium, spend)
    if cohort:
        stage_periods[0, policy, stage] += 1
        stage_sums[0, policy, stage, K_PROFIT] += profit
        stage_sums[0, policy, stage, K_SATISFACTION] += satisfaction
        stage_sums[0, policy, stage, K_LOYALTY] += loyalty
        stage_sums[0, policy, stage, K_SPEND] += spend
        period_sums[0, policy, tenure, K_PROFIT] += profit
        period_sums[0, policy, tenure, K_SATISFACTION] += satisfaction
        period_sums[0, policy, tenure, K_LOYALTY] += loyalty
        period_sums[0, policy, tenure, K_SPEND] += spend
    # (M7): the stage transition, from one uniform draw; (M8) Beta churn when on
    forward, leave = transition_probabilities(
        stage,
        loyalty,
        scalars[S_NEUTRAL_LOYALTY],
        stage_table[ROW_ADVANCE, stage],
        stage_table[ROW_EXIT, stage],
        scalars[S_BETA_ADVANCE],
        scalars[S_BETA_EXIT],
        segment_table[ROW_EXIT_ODDS, segment] * exit_factor[segment],
    )
    uniform, s0, s1 = next_uniform(streams[agent, R_MOVE], streams[agent, R_MOVE + 1])
    streams[agent, R_MOVE] = s0
    streams[agent, R_MOVE + 1] = s1
    new_stage = next_stage(stage, forward, leave, uniform)
    propensity = f[F_PROPENSITY]
    if propensity > 0.0:
        churn_uniform, s0, s1 = next_uniform(streams[agent, R_CHURN], streams[agent, R_CHURN + 1])
        streams[agent, R_CHURN] = s0
        streams[agent, R_CHURN + 1] = s1
        if propensity_ends_relationship(propensity, churn_uniform):
            new_stage = ENDED
    exit_move = new_stage == ENDED or (new_stage == DECLINE and stage != DECLINE)
    satisfaction_bin = _satisfaction_bin(satisfaction)
    if cohort and satisfaction_bin >= 0:  # -1: NaN, no bin (the caller raises NonFiniteResultError)
        satisfaction_bins[0, policy, stage, satisfaction_bin, 0] += 1
        if exit_move:
            satisfaction_bins[0, policy, stage, satisfaction_bin, 1] += 1
    row = counts[period]
    row[C_LIVE_RELATIONSHIP + segment] += 1.0
    if new_stage == ENDED:
        row[C_ENDED_RELATIONSHIP + segment] += 1.0
    if exit_move:
        row[C_EXITS_RELATIONSHIP + segment] += 1.0
    if kind == 0:
        row[C_DISSATISFIED] += 1.0
    row[C_SATISFACTION] += satisfaction
    row[C_PROFIT] += profit
    row[C_SPEND] += spend
    state[I_STAGE] = new_stage
    state[I_KIND] = kind
    if new_stage <= STABILITY and new_stage > state[I_HIGHEST]:
        state[I_HIGHEST] = new_stage
    if new_stage == ENDED:
        state[I_END] = tenure + 1
    talked = False
    if talk_probability > 0.0:
        talked = _stream_uniform(streams, agent, R_WORD_OF_MOUTH) < talk_probability
    return new_stage, kind, talked


# --------------------------------------------------------------------------- policies and budget
