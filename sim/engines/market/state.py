"""The agent engine's state layout and its jitted per-period step.

Every agent's state lives in rows of preallocated arrays (float state, integer state,
random-stream states); :func:`_close_period` advances one customer by one period with the
model's equations, in the core's order and with the core's draws.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
    S_DEFECTION_THRESHOLD,
    S_INDIFFERENCE_HIGH,
    S_INDIFFERENCE_LOW,
    S_INITIAL_EXPECTATION,
    S_MEMORY,
    S_NEUTRAL_LOYALTY,
    S_NOISE,
    S_SAT_SCALE,
    S_SAT_TOLERANCE,
    S_TENURE_SCALE,
)
from sim.model.equations import (
    care_response,
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
from sim.model.names import DECLINE, ENDED, EXPLORATION, STABILITY, STAGES
from sim.model.step import Accounts, account_period, cash_parameters, customer_attributes, opening_accounts
from sim.model.streams import (
    COMPONENT_CHURN,
    COMPONENT_COMPLAINTS,
    COMPONENT_PERFORMANCE,
    COMPONENT_PURCHASES,
    COMPONENT_TRANSITIONS,
    COMPONENT_WORD_OF_MOUTH,
    MAX_CUSTOMER,
    next_exponential,
    next_normal,
    next_uniform,
    seed_stream,
)
from sim.tables.partials import add_period, add_satisfaction

__all__ = [
    "MARKET_STREAM_CUSTOMER",
    "ORIGINS",
    "ORIGIN_COHORT",
    "ORIGIN_ACQUISITION",
    "ORIGIN_WORD_OF_MOUTH",
    "SNAPSHOT_COLUMNS",
    "AGENT_DTYPE",
    "R_PERF",
    "R_MOVE",
    "R_CHURN",
    "R_PURCHASES",
    "R_COMPLAINTS",
    "R_WORD_OF_MOUTH",
    "N_R",
    "COUNTS_DTYPE",
    "MARKET_COLUMNS",
    "agent_accounts",
]

#: The customer index of the market's own streams (no customer can have it).
MARKET_STREAM_CUSTOMER = MAX_CUSTOMER
#: How a customer came to the firm: the initial cohort, the acquisition process, word of mouth.
ORIGINS: tuple[str, ...] = ("cohort", "acquisition", "word_of_mouth")
ORIGIN_COHORT, ORIGIN_ACQUISITION, ORIGIN_WORD_OF_MOUTH = range(3)
#: Columns of :meth:`~sim.engines.market.engine.MarketResult.snapshot` (the state
#: :func:`sim.project_from` needs, plus the optional ``highest_stage`` and ``propensity``).
SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "customer",
    "segment",
    "wallet",
    "fit",
    "tier",
    "stage",
    "satisfaction",
    "previous_satisfaction",
    "expectation",
    "tenure",
    "highest_stage",
    "propensity",
)
_STATE_NAMES = STAGES + ("ended",)

# --------------------------------------------------------------------------- agent state layout

#: One agent's state, a row of the structured array ``agents[agent]`` (named fields, read and
#: written by name in the jitted step and by column in NumPy): its attributes, the model's
#: state (M2)-(M6), its discounted accounts (the fields of :class:`sim.model.step.Accounts`),
#: what the firm set at its review (``spend``), what the interactions change
#: (``performance_shift``: complaint waits lower (M2); ``purchase_factor``: realised over
#: expected purchases under event timing), and its bookkeeping.
AGENT_DTYPE = np.dtype(
    [
        ("wallet", np.float64),
        ("fit", np.float64),
        ("propensity", np.float64),
        ("expectation", np.float64),
        ("satisfaction", np.float64),
        ("previous_satisfaction", np.float64),
        ("loyalty", np.float64),
        ("discount", np.float64),
        ("clv1", np.float64),
        ("clv2", np.float64),
        ("clv3", np.float64),
        ("clv4", np.float64),
        ("clv5", np.float64),
        ("clv6", np.float64),
        ("spend_value", np.float64),
        ("acquisition", np.float64),
        ("spend", np.float64),
        ("performance_shift", np.float64),
        ("purchase_factor", np.float64),
        ("segment", np.int64),
        ("tier", np.int64),
        ("stage", np.int64),
        ("highest_stage", np.int64),
        ("joined", np.int64),
        ("ended", np.int64),  # tenure at the end of the relationship, -1 while live
        ("satisfaction_type", np.int64),
        ("origin", np.int64),
        ("referrer", np.int64),
    ]
)
#: Stream states ``streams[agent, :]`` (xoroshiro128+ pairs ``(s0, s1)`` at columns
#: ``R_* , R_* + 1``): the core's components and the interactions'.
R_PERF, R_MOVE, R_CHURN, R_PURCHASES, R_COMPLAINTS, R_WORD_OF_MOUTH = 0, 2, 4, 6, 8, 10
N_R = 12
#: The random-stream component seeding each pair of columns (pair r: columns 2r, 2r + 1).
_STREAM_COMPONENTS = (
    COMPONENT_PERFORMANCE,
    COMPONENT_TRANSITIONS,
    COMPONENT_CHURN,
    COMPONENT_PURCHASES,
    COMPONENT_COMPLAINTS,
    COMPONENT_WORD_OF_MOUTH,
)

#: The market's counts of one period, ``counts[period]`` of a structured array: the step
#: kernel adds the first ten (customers live, ended and leaving by segment, dissatisfied,
#: sums of satisfaction, profit and spend), the market's processes the others. The
#: ``market`` table is built from them (:data:`MARKET_COLUMNS`).
COUNTS_DTYPE = np.dtype(
    [
        (name, np.float64)
        for name in (
            "live_relationship",
            "live_transactional",
            "ended_relationship",
            "ended_transactional",
            "exits_relationship",
            "exits_transactional",
            "dissatisfied",
            "satisfaction",
            "profit",
            "spend",
            "joined_acquisition",
            "joined_word_of_mouth",
            "acquisition_cost",
            "prospects_won",
            "deterred",
            "turned_away",
            "complaints",
            "served",
            "wait",
            "wished",
            "budget",
            "servers",
            "competitor",
            "purchases",
            "market_spend",
        )
    ]
)

#: Columns of the ``market`` table (besides policy, replication, period), in order.
MARKET_COLUMNS: tuple[str, ...] = (
    "live",
    "live_relationship",
    "live_transactional",
    "ended_relationship",
    "ended_transactional",
    "exits_relationship",
    "exits_transactional",
    "dissatisfied",
    "satisfaction_mean",
    "joined_acquisition",
    "joined_word_of_mouth",
    "prospects_won",
    "deterred",
    "turned_away",
    "complaints",
    "complaints_served",
    "wait_mean",
    "servers",
    "wished_spend",
    "retention_spend",
    "budget",
    "market_spend",
    "acquisition_cost",
    "competitor",
    "purchases",
    "profit",
    "cash_value",
)


def agent_accounts(agents) -> Accounts:
    """The :class:`sim.model.step.Accounts` of ``agents`` (a structured array), field by field."""
    return Accounts(
        agents["discount"],
        agents["clv1"],
        agents["clv2"],
        agents["clv3"],
        agents["clv4"],
        agents["clv5"],
        agents["clv6"],
        agents["spend_value"],
    )


# --------------------------------------------------------------------------- the jitted step


@njit(cache=True)
def _init_agent(agent, seed, replication, origin, referrer, period, agents, streams, segment_table, scalars):
    """Draw the attributes of customer ``agent`` with every engine's (A1)-(A3), (M8) draw
    (:func:`sim.model.step.customer_attributes`), seed its streams and set the start state of
    a new customer: exploration, satisfaction 1/2, the initial expectation, tenure 0.
    """
    segment, wallet, fit, tier, propensity = customer_attributes(seed, replication, np.int64(agent), scalars)
    state = agents[agent]
    state.wallet = wallet
    state.fit = fit
    state.propensity = propensity
    state.expectation = scalars[S_INITIAL_EXPECTATION]
    state.satisfaction = 0.5
    state.previous_satisfaction = 0.5
    state.loyalty = 0.0
    accounts = opening_accounts(0.0)
    state.discount = accounts.discount
    state.clv1 = accounts.clv1
    state.clv2 = accounts.clv2
    state.clv3 = accounts.clv3
    state.clv4 = accounts.clv4
    state.clv5 = accounts.clv5
    state.clv6 = accounts.clv6
    state.spend_value = accounts.spend
    state.acquisition = segment_table[ROW_ACQUISITION, segment]
    state.spend = 0.0
    state.performance_shift = 0.0
    state.purchase_factor = 1.0
    state.segment = segment
    state.tier = tier
    state.stage = EXPLORATION
    state.highest_stage = EXPLORATION
    state.joined = period
    state.ended = -1
    state.satisfaction_type = 1
    state.origin = origin
    state.referrer = referrer
    customer = np.uint64(agent)
    for slot in range(len(_STREAM_COMPONENTS)):  # stream r of the agent: columns 2r, 2r + 1
        s0, s1 = seed_stream(seed, replication, customer, np.uint64(_STREAM_COMPONENTS[slot]))
        streams[agent, 2 * slot] = s0
        streams[agent, 2 * slot + 1] = s1


@njit(cache=True)
def _stream_uniform(streams, agent, slot):
    """The next uniform of customer ``agent``'s stream held at ``streams[agent, slot:slot+2]``
    (the same numbers as :class:`sim.model.streams.CustomerStream`). Jit-compiled.
    """
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
    gaps of the stream at ``streams[agent, slot:slot+2]`` (one draw more than arrivals).
    """
    times = []
    elapsed = _stream_exponential(streams, agent, slot) / rate
    while elapsed < 1.0:
        times.append(elapsed)
        elapsed += _stream_exponential(streams, agent, slot) / rate
    return np.array(times, dtype=np.float64)


@njit(cache=True)
def _close_period(
    agent,
    period,
    policy,
    agents,
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
    """Close calendar period ``period`` for customer ``agent``: one customer-period of the
    core (``sim.engines.lanes.advance_period``), same equations, same accounting
    (:func:`sim.model.step.account_period`), same draws, same order.

    The spend is ``agents[agent].spend`` (set by the firm's review); the base performance of
    (M2) is lowered by ``performance_shift`` (complaint waits); the purchase cash flow is
    scaled by ``purchase_factor`` (event timing); the exit odds of (M7) are multiplied by
    ``exit_factor[segment]`` (competitor); the expected referral value (C5) is booked only if
    ``book_referral``. Cohort customers (origin 0, tenure = period) also add into the core's
    partial aggregates at ``[0, policy]``; every customer adds into the market counts
    ``counts[period]``. With ``talk_probability > 0`` (word of mouth on) one uniform of the
    word-of-mouth stream decides whether the customer talks about this period.
    Returns ``(new_stage, satisfaction_type, talked)``. Jit-compiled.
    """
    state = agents[agent]
    segment = state.segment
    stage = state.stage
    tenure = period - state.joined
    cohort = state.origin == 0
    if cohort:
        occupancy[0, policy, tenure, stage] += 1
    spend = state.spend
    # (M1)-(M6): perceived performance, satisfaction, loyalty, expectations
    noise, s0, s1 = next_normal(streams[agent, R_PERF], streams[agent, R_PERF + 1])
    streams[agent, R_PERF] = s0
    streams[agent, R_PERF + 1] = s1
    care = care_response(spend, scalars[S_CARE_GAIN], scalars[S_CARE_SCALE], scalars[S_ANNOYANCE])
    performance = perceived_performance(
        segment_table[ROW_BASE_PERFORMANCE, segment] - state.performance_shift,
        state.fit,
        stage_table[ROW_EFFECTIVENESS, stage, segment],
        care,
        scalars[S_NOISE],
        noise,
    )
    expectation = state.expectation
    disconfirmation = performance - expectation
    satisfaction = state.satisfaction
    state.previous_satisfaction = satisfaction
    satisfaction = update_satisfaction(satisfaction, disconfirmation, scalars[S_MEMORY], scalars[S_SAT_SCALE])
    kind = satisfaction_type(disconfirmation, scalars[S_SAT_TOLERANCE])
    loyalty = loyalty_from_satisfaction(
        satisfaction,
        scalars[S_DEFECTION_THRESHOLD],
        scalars[S_AFFECTION_THRESHOLD],
        scalars[S_INDIFFERENCE_LOW],
        scalars[S_INDIFFERENCE_HIGH],
    )
    state.expectation = update_expectation(
        expectation, performance, scalars[S_INITIAL_EXPECTATION], scalars[S_ADAPTATION], scalars[S_ANCHOR]
    )
    state.satisfaction = satisfaction
    state.loyalty = loyalty
    # (C1)-(C6): this period's cash, received at the end of the period (sim.model.step)
    accounts = Accounts(
        state.discount,
        state.clv1,
        state.clv2,
        state.clv3,
        state.clv4,
        state.clv5,
        state.clv6,
        state.spend_value,
    )
    accounts, profit = account_period(
        accounts,
        cash_parameters(scalars),
        tenure == 0,
        state.wallet,
        tenure_ramp(float(tenure), scalars[S_TENURE_SCALE]),
        stage_table[ROW_SOW, stage, segment],
        stage_table[ROW_MARGIN, stage, segment],
        stage_table[ROW_CROSS_SELL, stage, segment],
        referral[kind] if book_referral else 0.0,
        segment_table[ROW_PRICE_PREMIUM, segment],
        loyalty,
        spend,
        state.purchase_factor,
    )
    state.discount = accounts.discount
    state.clv1 = accounts.clv1
    state.clv2 = accounts.clv2
    state.clv3 = accounts.clv3
    state.clv4 = accounts.clv4
    state.clv5 = accounts.clv5
    state.clv6 = accounts.clv6
    state.spend_value = accounts.spend
    if cohort:
        add_period(
            stage_periods,
            stage_sums,
            period_sums,
            0,
            policy,
            stage,
            tenure,
            profit,
            satisfaction,
            loyalty,
            spend,
        )
    # (M7): the stage transition, from one uniform draw; (M8) Beta churn when on
    forward, leave = transition_probabilities(
        stage,
        loyalty,
        scalars[S_NEUTRAL_LOYALTY],
        stage_table[ROW_ADVANCE, stage, segment],
        stage_table[ROW_EXIT, stage, segment],
        scalars[S_BETA_ADVANCE],
        scalars[S_BETA_EXIT],
        segment_table[ROW_EXIT_ODDS, segment] * exit_factor[segment],
    )
    uniform, s0, s1 = next_uniform(streams[agent, R_MOVE], streams[agent, R_MOVE + 1])
    streams[agent, R_MOVE] = s0
    streams[agent, R_MOVE + 1] = s1
    new_stage = next_stage(stage, forward, leave, uniform)
    propensity = state.propensity
    if propensity > 0.0:
        churn_uniform, s0, s1 = next_uniform(streams[agent, R_CHURN], streams[agent, R_CHURN + 1])
        streams[agent, R_CHURN] = s0
        streams[agent, R_CHURN + 1] = s1
        if propensity_ends_relationship(propensity, churn_uniform):
            new_stage = ENDED
    exit_move = new_stage == ENDED or (new_stage == DECLINE and stage != DECLINE)
    if cohort:  # a NaN satisfaction is counted in no bin (the caller raises NonFiniteResultError)
        add_satisfaction(satisfaction_bins, 0, policy, stage, satisfaction, exit_move)
    row = counts[period]
    if segment == 0:
        row.live_relationship += 1.0
        if new_stage == ENDED:
            row.ended_relationship += 1.0
        if exit_move:
            row.exits_relationship += 1.0
    else:
        row.live_transactional += 1.0
        if new_stage == ENDED:
            row.ended_transactional += 1.0
        if exit_move:
            row.exits_transactional += 1.0
    if kind == 0:
        row.dissatisfied += 1.0
    row.satisfaction += satisfaction
    row.profit += profit
    row.spend += spend
    state.stage = new_stage
    state.satisfaction_type = kind
    if new_stage <= STABILITY and new_stage > state.highest_stage:
        state.highest_stage = new_stage
    if new_stage == ENDED:
        state.ended = tenure + 1
    talked = False
    if talk_probability > 0.0:
        talked = _stream_uniform(streams, agent, R_WORD_OF_MOUTH) < talk_probability
    return new_stage, kind, talked
