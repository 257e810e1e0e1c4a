r"""The agent-based market engine: customers as SimPy processes, on the model of :mod:`sim.model.equations`.

:func:`simulate_market` runs one SimPy environment per (policy, replication). Every customer
is a process that lives through its relationship period by period in event time; the firm
is a process that reviews every live customer at the start of each period and applies the
policy (MODEL.md §5). Unlike the cohort core, customers can interact through the market:

* a **retention budget** per period, allocated by a stated priority rule
  (:func:`allocate_budget`: value tier, then stage, then lowest satisfaction);
* **service capacity**: dissatisfied customers complain; complaints queue at a
  ``simpy.Resource`` and waiting lowers perceived performance (M2);
* **word of mouth** that creates real agents (positive) or deters prospects (negative), so
  that CLV5 is observed rather than assumed;
* **acquisition** as a Poisson arrival process driven by acquisition spend;
* **market events**: a competitor enters (and leaves) at configured periods and multiplies
  the exit odds of (M7), more for transactional than for relationship customers.

Each is switched on in ``[market]`` of the config (:class:`sim.model.config.MarketConfig`); all
are off by default.

One model
---------
The engine calls the model's equations of :mod:`sim.model.equations` — (M1) ``care_response``, (M2)
``perceived_performance``, (M3) ``satisfaction_type``, (M4) ``update_satisfaction``, (M5)
``update_expectation``, (M6) ``loyalty_from_satisfaction``, (M7)
``transition_probabilities`` and ``next_stage``, (M8) ``propensity_ends_relationship``,
(C1)-(C6) ``period_cash_flows`` — and the core's attribute draw
(``sim.engines.core._customer_attributes``, (A1)-(A3)) and the policies' spend tables of
:mod:`sim.model.policies`. The interactions enter the equations only through their arguments:
a complaint's wait lowers the base performance passed to (M2), the competitor multiplies
the exit odds passed to (M7), a budget changes the spend passed to (M1), and with word of
mouth on the expected referral value passed to (C5) is zero (the referrals are real).

The per-period step of one customer (:func:`_close_period`) is jit-compiled and does what
one iteration of the core's loop (``sim.engines.core._simulate_block``) does, in the same order
with the same draws; so with every interaction off and ``timing = "period"`` the agent
engine reproduces the core customer for customer (``tests/test_abm.py`` checks that the CLVs
are bitwise equal).

Time
----
One SimPy time unit is one period. At integer time ``T`` first every customer closes
period ``T - 1`` (its step), then the firm reviews period ``T``: it admits the prospects
who arrived during the past period (they start in exploration), reads the market state
(competitor present or not), records a snapshot if one is due, and sets every live
customer's retention spend from what it observed up to ``T - 1``. Cash of a customer's
tenure period ``τ`` is discounted by ``δ^(τ+1)`` to the customer's acquisition, as in the
core; the acquisition cost is paid at acquisition, undiscounted.

With ``timing = "event"`` purchases also arrive within each period as a Poisson process
with rate ``purchase_rate[stage]``; each purchase carries an equal share of the period's
expected purchase cash flow (C1/C2), so the period books ``purchases * N / rate`` for
``N`` purchases: the same expected value, more variance (cash is still booked at the end
of the period, the model's timing convention).

Random streams
--------------
Customer ``c`` of replication ``r`` draws from the streams ``(seed, r, c, component)`` of
:mod:`sim.model.streams`, with the core's components 0 (attributes), 1 (performance noise, one
normal per period), 2 (transition, one uniform per period) and 3 (Beta churn, one uniform
per period while on), and further components for the interactions:
8 purchases (event timing), 9 complaints, 10 word of mouth. The market's own draws
(acquisition arrivals) use customer index ``2**32 - 1`` and component 11. Customers of the
initial cohort are ``0 .. N-1``; later arrivals get the next indices in the order they
join. All policies see the same cohort with the same shocks (common random numbers), and
a run is deterministic given its seed (SimPy resolves ties in a fixed order).

Outputs
-------
The tidy tables of :class:`sim.ProjectionResult` (``summary``, ``stages``, ``by_stage``,
``patterns``, ``trajectory``, ``satisfaction_retention``, ``value_concentration``,
``comparison``) describe the **initial cohort** and are built by the same code as the
core's (from the same partial aggregates), so they compare one to one. With word of mouth
on, a cohort customer's CLV5 is the value of the customers it brought in. Customers who
arrive later are in ``customers`` (one row per agent) and the market-level ``market``
table (one row per policy, replication and period); their values are observed up to the
horizon (censored). ``events`` holds the optional event log, and
:meth:`MarketResult.snapshot` the state of every live customer at recorded periods.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import simpy
from numba import njit

from sim.model import streams as _rng
from sim.model.config import AGENT_BYTES_PER_CUSTOMER, ExperimentConfig, MAX_MAGNITUDE, SEGMENTS, STAGES, market_problems, market_servers, word_of_mouth_problems
from sim.exceptions import ConfigError
from sim.tables.partials import ChunkPartials, K_LOYALTY, K_PROFIT, K_SATISFACTION, K_SPEND, M_ACQUISITION, M_CLV, M_CLV1, M_CLV_SQUARED, M_SPEND, SATISFACTION_BINS
from sim.engines.core import _customer_attributes
from sim.model.equations import (
    DECLINE,
    ENDED,
    EXPLORATION,
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
    S_COST_FLOOR,
    S_COST_TO_SERVE,
    S_CROSS_SELL_MARGIN,
    S_DEFECTION_THRESHOLD,
    S_DISCOUNT_FACTOR,
    S_INDIFFERENCE_HIGH,
    S_INDIFFERENCE_LOW,
    S_INITIAL_EXPECTATION,
    S_LONG_TERM,
    S_MEMORY,
    S_NEUTRAL_LOYALTY,
    S_NOISE,
    S_SAT_SCALE,
    S_SAT_TOLERANCE,
    S_SOW_GROWTH,
    S_TENURE_SCALE,
    STABILITY,
    care_response,
    customer_clv,
    lifecycle_pattern,
    loyalty_from_satisfaction,
    model_arrays,
    next_stage,
    perceived_performance,
    period_cash_flows,
    period_profit,
    propensity_ends_relationship,
    satisfaction_type,
    transition_probabilities,
    update_expectation,
    update_satisfaction,
)
from sim.model.policies import policy_tables
from sim.tables.result import NONFINITE_HINT, ProjectionResult
from sim.exceptions import NonFiniteResultError

__all__ = [
    "simulate_market",
    "MarketResult",
    "CustomerState",
    "allocate_budget",
    "ORIGINS",
    "MARKET_COLUMNS",
    "SNAPSHOT_COLUMNS",
    "COMPONENT_PURCHASES",
    "COMPONENT_COMPLAINTS",
    "COMPONENT_WORD_OF_MOUTH",
    "COMPONENT_ACQUISITION",
    "MARKET_STREAM_CUSTOMER",
    "plot_market",
    "market_figure",
]

#: Random-stream components of the interactions (the core uses 0-3; 4-7 are left to it).
COMPONENT_PURCHASES, COMPONENT_COMPLAINTS, COMPONENT_WORD_OF_MOUTH, COMPONENT_ACQUISITION = 8, 9, 10, 11
_COMPONENT_PERFORMANCE, _COMPONENT_TRANSITIONS, _COMPONENT_CHURN = 1, 2, 3
#: The customer index of the market's own streams (no customer can have it).
MARKET_STREAM_CUSTOMER = _rng.MAX_CUSTOMER
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
_STREAM_COMPONENTS = (_COMPONENT_PERFORMANCE, _COMPONENT_TRANSITIONS, _COMPONENT_CHURN,
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
    (``sim.engines.core._customer_attributes``), seed its streams and set the start state of a new
    customer: exploration, satisfaction 1/2, the initial expectation, tenure 0."""
    segment, wallet, fit, tier, propensity = _customer_attributes(seed, replication, np.int64(agent), scalars)
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
        s0, s1 = _rng._seed_stream(seed, replication, customer, np.uint64(_STREAM_COMPONENTS[slot]))
        streams[agent, 2 * slot] = s0
        streams[agent, 2 * slot + 1] = s1


@njit(cache=True)
def _stream_uniform(streams, agent, slot):
    """The next uniform of customer ``agent``'s stream held at ``streams[agent, slot:slot+2]``
    (the same numbers as :class:`sim.model.streams.CustomerStream`). Jit-compiled."""
    value, s0, s1 = _rng._uniform(streams[agent, slot], streams[agent, slot + 1])
    streams[agent, slot] = s0
    streams[agent, slot + 1] = s1
    return value


@njit(cache=True)
def _stream_exponential(streams, agent, slot):
    """The next standard exponential of the stream at ``streams[agent, slot:slot+2]``. Jit-compiled."""
    value, s0, s1 = _rng._exponential(streams[agent, slot], streams[agent, slot + 1])
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
    noise, s0, s1 = _rng._normal(streams[agent, R_PERF], streams[agent, R_PERF + 1])
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
    uniform, s0, s1 = _rng._uniform(streams[agent, R_MOVE], streams[agent, R_MOVE + 1])
    streams[agent, R_MOVE] = s0
    streams[agent, R_MOVE + 1] = s1
    new_stage = next_stage(stage, forward, leave, uniform)
    propensity = f[F_PROPENSITY]
    if propensity > 0.0:
        churn_uniform, s0, s1 = _rng._uniform(streams[agent, R_CHURN], streams[agent, R_CHURN + 1])
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


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What the firm observes about one live customer at its review (MODEL.md §5); the
    argument of a user-defined policy function ``fn(state) -> spend``.

    Attributes
    ----------
    customer : int
        Customer id (its random streams' index).
    segment : int
        0 relationship, 1 transactional.
    tier : int
        ABC value tier from the predicted value: 0 (A, top 5 %), 1 (B), 2 (C).
    wallet : float
        The customer's wallet per period (the predicted value behind the tier).
    stage : int
        0 exploration, 1 formation, 2 stability, 3 decline.
    satisfaction : float
        Satisfaction after the last period (1/2 for a new customer), (M4).
    previous_satisfaction : float
        Satisfaction one period before that.
    tenure : int
        Periods since acquisition (0 in the first period).
    period : int
        The calendar period being reviewed.
    """

    customer: int
    segment: int
    tier: int
    wallet: float
    stage: int
    satisfaction: float
    previous_satisfaction: float
    tenure: int
    period: int


def allocate_budget(wishes, tier, stage, satisfaction, budget: float,
                    stage_priority: Iterable[str] = ("decline", "formation", "exploration", "stability")) -> np.ndarray:
    """Grant retention-spend wishes within a budget by a fixed priority rule.

    If the wishes add up to at most ``budget`` every wish is granted in full (the same
    array values). Otherwise customers are served in priority order — value tier first
    (A = 0 before B before C), then stage in ``stage_priority`` order, then lowest
    satisfaction first, then lowest position — each getting its full wish until the budget
    runs out; the marginal customer gets the remainder and the rest nothing.

    Parameters
    ----------
    wishes, tier, stage, satisfaction : array_like, shape (n,)
        The policy's spend per customer, ABC tier (0-2), stage (0-3), last satisfaction.
    budget : float
        Money available this period (>= 0).
    stage_priority : sequence of str
        The four stage names, most urgent first.

    Returns
    -------
    ndarray, shape (n,)
        Granted spend, ``0 <= granted <= wishes``, summing to ``min(budget, sum(wishes))``
        (up to rounding of the running sum).
    """
    wishes = np.asarray(wishes, dtype=float)
    if not budget >= 0.0:
        raise ValueError(f"budget = {budget!r}: must be a number >= 0")
    if wishes.sum() <= budget:
        return wishes.copy()
    order_of_stage = list(stage_priority)
    if sorted(order_of_stage) != sorted(STAGES):
        raise ValueError(f"stage_priority = {order_of_stage}: must list each of {list(STAGES)} once")
    rank = np.empty(len(STAGES), dtype=np.int64)
    rank[[STAGES.index(name) for name in order_of_stage]] = np.arange(len(STAGES))
    position = np.arange(len(wishes))
    # np.lexsort: the last key is the primary one
    order = np.lexsort((position, np.asarray(satisfaction, dtype=float), rank[np.asarray(stage)], np.asarray(tier)))
    sorted_wishes = wishes[order]
    before = np.zeros_like(sorted_wishes)  # what the customers ahead in the queue got (exclusive running sum)
    np.cumsum(sorted_wishes[:-1], out=before[1:])
    granted = np.empty_like(wishes)
    granted[order] = np.minimum(sorted_wishes, np.maximum(budget - before, 0.0))
    return granted


#: Largest Poisson mean drawn by one inversion in :func:`_poisson` (exp(-mean) is then
#: far from underflow: exp(-500) ~ 7e-218).
_POISSON_CHUNK = 500.0


def _poisson(mean: float, uniform: Callable[[], float]) -> int:
    """A Poisson(``mean``) count by inversion of the distribution function, one uniform
    from ``uniform()`` per inversion.

    A mean up to :data:`_POISSON_CHUNK` takes one inversion (one uniform). A larger mean
    is split into ``k = ceil(mean / 500)`` equal parts and the count is the sum of ``k``
    Poisson(``mean / k``) inversions, ``k`` uniforms: exact in distribution (a sum of
    independent Poisson counts is Poisson with the summed mean), where one inversion
    would start from ``exp(-mean)``, which underflows to 0 above a mean of about 745."""
    if mean <= _POISSON_CHUNK:
        return _poisson_inversion(mean, uniform())
    parts = math.ceil(mean / _POISSON_CHUNK)
    part = mean / parts
    return sum(_poisson_inversion(part, uniform()) for _ in range(parts))


def _poisson_inversion(mean: float, uniform: float) -> int:
    """A Poisson(``mean``) count from one uniform by inversion (``mean <= 500``)."""
    probability = math.exp(-mean)
    cumulative = probability
    count = 0
    while uniform >= cumulative:
        count += 1
        probability *= mean / count
        cumulative += probability
        if probability == 0.0:
            break
    return count


# --------------------------------------------------------------------------- one market


class _Setup:
    """Everything shared by the markets of one call: config, model arrays, spend tables,
    policy functions and the initial cohort's size."""

    def __init__(self, config: ExperimentConfig, names, functions, event_log: bool, snapshot_periods):
        self.config = config
        self.market = config.market
        self.arrays = model_arrays(config)
        self.tables = policy_tables(config)
        self.names = names
        self.functions = functions
        self.event_log = event_log
        self.snapshot_periods = snapshot_periods
        self.customers = config.population.customers
        self.horizon = config.run.horizon
        self.seed = config.run.seed
        scale = self.customers / 1000.0
        market = self.market
        # market-level quantities scale with the initial cohort (so --customers keeps an experiment's meaning)
        self.budget = market.budget.per_customer * self.customers
        capacity = market.capacity
        self.capacity_spend = capacity.spend_per_customer * self.customers
        # at most market.max_customers when capacity is on (sim.model.config.market_problems); unused when off
        self.servers = int(market_servers(config)) if capacity.enabled else 0
        acquisition = market.acquisition
        self.acquisition_spend = acquisition.spend_per_customer * self.customers
        self.acquisition_rate = acquisition.prospects_per_1000 * scale + self.acquisition_spend * acquisition.prospects_per_spend
        wom = config.word_of_mouth
        self.talk_probability = wom.talk_probability
        influence = np.asarray(wom.influence.as_tuple())
        self.wom_means = np.asarray(wom.people_told.as_tuple()) * np.abs(influence)
        self.wom_sign = np.sign(influence).astype(int)
        self.purchase_rate = np.asarray(market.purchase_rate.as_tuple())
        competitor = market.competitor
        self.competitor_factor = np.asarray(competitor.exit_odds.as_tuple(), dtype=float)

    def applies(self, section: str, policy: int) -> bool:
        """Whether interaction ``section`` is on in the market of policy number ``policy``
        (enabled, and the policy listed in its ``policies`` or the list empty)."""
        part = getattr(self.market, section)
        return part.enabled and (not part.policies or self.names[policy] in part.policies)


class _Market:
    """One SimPy market: one policy, one replication."""

    def __init__(self, setup: _Setup, policy: int, replication: int, partials: ChunkPartials):
        self.setup = setup
        self.policy = policy
        self.replication = replication
        self.partials = partials
        self.env = simpy.Environment()
        market = setup.market
        self.horizon = setup.horizon
        self.seed64 = np.uint64(setup.seed)
        self.replication64 = np.uint64(replication)
        self.event_timing = market.timing == "event"
        self.capacity_on = setup.applies("capacity", policy)
        self.wom_on = setup.applies("word_of_mouth", policy)
        self.acquisition_on = setup.applies("acquisition", policy)
        self.competitor_on = setup.applies("competitor", policy)
        self.book_referral = not self.wom_on
        self.budget = setup.budget if setup.applies("budget", policy) else math.inf
        self.servers = setup.servers if self.capacity_on else 0
        self.market_spend = ((setup.capacity_spend if self.capacity_on else 0.0)
                             + (setup.acquisition_spend if self.acquisition_on else 0.0))
        capacity = max(setup.customers + 64, 256)
        self.fstate = np.zeros((capacity, N_F))
        self.istate = np.zeros((capacity, N_I), dtype=np.int64)
        self.streams = np.zeros((capacity, N_R), dtype=np.uint64)
        self.alive = np.zeros(capacity, dtype=bool)
        self.n = 0
        self.period = 0
        self.exit_factor = np.ones(2)
        self.competitor_present = False
        self.counts = np.zeros((self.horizon, N_COUNTS))
        self.pending: list[tuple[int, int]] = []
        self.deterrers: deque = deque()
        self.cancelled: list[tuple[int, int]] = []  # (deterrer, period the prospect would have joined)
        self.log: list | None = [] if setup.event_log else None
        self.snapshots: dict[int, dict] = {}
        # complaint bookkeeping (Python lists: cheap scalar access)
        self.wait_accrued: list[float] = []
        self.waiting_since: list[float] = []
        self.complaint_open: list[bool] = []
        self.queued: dict[int, simpy.resources.resource.Request] = {}  # complaints waiting for a server
        self.resource = simpy.Resource(self.env, capacity=self.servers) if self.capacity_on else None
        self._bind()

    # ----------------------------------------------------------------- agents

    def _grow(self) -> None:
        size = 2 * self.fstate.shape[0]
        for name in ("fstate", "istate", "streams"):
            old = getattr(self, name)
            new = np.zeros((size, old.shape[1]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        alive = np.zeros(size, dtype=bool)
        alive[: self.n] = self.alive[: self.n]
        self.alive = alive
        self._bind()

    def _bind(self) -> None:
        """The step kernel's arguments after ``(agent, period)``, bound once (and again when
        the state arrays grow or the market state changes)."""
        partials = self.partials
        arrays = self.setup.arrays
        talk_probability = self.setup.talk_probability if self.wom_on else 0.0
        self.kernel_arguments = (
            self.policy, self.fstate, self.istate, self.streams, self.exit_factor, self.book_referral, talk_probability,
            arrays.stage, arrays.segment, arrays.referral, arrays.scalars, partials.stage_sums, partials.stage_periods,
            partials.period_sums, partials.occupancy, partials.satisfaction_bins, self.counts,
        )

    def _add_agent(self, origin: int, referrer: int, period: int) -> int:
        if self.n == self.fstate.shape[0]:
            self._grow()
        agent = self.n
        arrays = self.setup.arrays
        _init_agent(agent, self.seed64, self.replication64, origin, referrer, period,
                    self.fstate, self.istate, self.streams, arrays.segment, arrays.scalars)
        self.alive[agent] = True
        self.n += 1
        self.wait_accrued.append(0.0)
        self.waiting_since.append(-1.0)
        self.complaint_open.append(False)
        self.env.process(self._customer(agent))
        if self.log is not None:
            self.log.append((self.env.now, agent, "acquired", "exploration", 0.5))
        return agent

    # ----------------------------------------------------------------- processes

    def _customer(self, agent: int):
        """A customer's life: one step per period, closed at the period's end."""
        timeout = self.env.timeout
        while True:
            if self.event_timing:
                self._schedule_purchases(agent)
            yield timeout(1)
            period = self.period
            stage = self._close(agent, period)
            if stage == ENDED or period + 1 >= self.horizon:
                return

    def _close(self, agent: int, period: int) -> int:
        if self.capacity_on:
            self._wait_penalty(agent)
        log = self.log
        if log is not None:
            old_stage = int(self.istate[agent, I_STAGE])
        new_stage, kind, talked = _close_period(agent, period, *self.kernel_arguments)
        satisfaction = self.fstate[agent, F_SATISFACTION]
        if not math.isfinite(satisfaction):
            raise NonFiniteResultError(
                f"satisfaction of customer {agent} is {satisfaction} after period {period} (policy "
                f"{self.setup.names[self.policy]!r}, replication {self.replication}); {NONFINITE_HINT}")
        if new_stage == ENDED:
            self.alive[agent] = False
            if self.capacity_on and agent in self.queued:  # a customer who left withdraws its complaint
                self.queued.pop(agent).cancel()
        if log is not None and new_stage != old_stage:
            event = {(0, 1): "advanced", (1, 2): "advanced", (3, 1): "won_back"}.get((old_stage, new_stage))
            if event is None:
                event = "ended" if new_stage == ENDED else "declined"
            log.append((self.env.now, agent, event, _STATE_NAMES[new_stage], float(self.fstate[agent, F_SATISFACTION])))
        if talked:
            self._talk(agent, kind)
        if self.capacity_on and kind == 0 and new_stage != ENDED:
            self._maybe_complain(agent)
        return new_stage

    def _firm(self):
        """The firm: reviews every live customer at the start of each period."""
        env = self.env
        for period in range(self.horizon):
            self._review(period)
            yield env.timeout(1)
            yield env.timeout(0)  # same time, after every customer has closed the period
        if self.horizon in self.setup.snapshot_periods:
            self._snapshot(self.horizon)

    def _review(self, period: int) -> None:
        self.period = period
        setup = self.setup
        row = self.counts[period]
        for origin, referrer in self.pending:
            agent = self._add_agent(origin, referrer, period)
            row[C_JOINED_ACQUISITION if origin == ORIGIN_ACQUISITION else C_JOINED_WORD_OF_MOUTH] += 1
            row[C_ACQUISITION_COST] += self.fstate[agent, F_ACQUISITION]
        self.pending = []
        self.exit_factor[:] = setup.competitor_factor if self.competitor_present else 1.0
        row[C_COMPETITOR] = float(self.competitor_present)
        row[C_SERVERS] = self.servers
        row[C_BUDGET] = self.budget
        row[C_MARKET_SPEND] = self.market_spend
        if period in setup.snapshot_periods:
            self._snapshot(period)
        live = np.flatnonzero(self.alive[: self.n])
        if live.size == 0:
            return
        istate, fstate = self.istate, self.fstate
        stage = istate[live, I_STAGE]
        segment = istate[live, I_SEGMENT]
        tier = istate[live, I_TIER]
        satisfaction = fstate[live, F_SATISFACTION]
        previous = fstate[live, F_PREVIOUS]
        tables = setup.tables
        if self.policy < len(tables.names):
            # the spend table of sim.model.policies, and the reactive rule, as in the core
            wishes = tables.spend[self.policy][stage, segment, tier]
            drop = tables.reactive_drop[self.policy]
            if drop > 0.0:
                wishes = np.where((stage != DECLINE) & (previous - satisfaction <= drop), 0.0, wishes)
        else:
            name = setup.names[self.policy]
            function = setup.functions[name]
            joined = istate[live, I_JOINED]
            wallet = fstate[live, F_WALLET]
            wishes = np.empty(live.size)
            for index, agent in enumerate(live.tolist()):
                state = CustomerState(agent, int(segment[index]), int(tier[index]), float(wallet[index]),
                                      int(stage[index]), float(satisfaction[index]), float(previous[index]),
                                      period - int(joined[index]), period)
                try:
                    value = function(state)
                except Exception as error:
                    raise RuntimeError(
                        f"policy function {name!r} raised {type(error).__name__}: {error} for customer {agent} "
                        f"in period {period} (replication {self.replication})") from error
                wishes[index] = _checked_spend(value, name, agent, period)
        row[C_WISHED] = wishes.sum()
        granted = wishes
        if self.budget < math.inf:
            granted = allocate_budget(wishes, tier, stage, satisfaction, self.budget, setup.market.budget.stage_priority)
        fstate[live, F_SPEND] = granted

    def _snapshot(self, period: int) -> None:
        live = np.flatnonzero(self.alive[: self.n])
        istate, fstate = self.istate, self.fstate
        self.snapshots[period] = {
            "customer": live.astype(np.int64),
            "segment": istate[live, I_SEGMENT].copy(),
            "wallet": fstate[live, F_WALLET].copy(),
            "fit": fstate[live, F_FIT].copy(),
            "tier": istate[live, I_TIER].copy(),
            "stage": istate[live, I_STAGE].copy(),
            "satisfaction": fstate[live, F_SATISFACTION].copy(),
            "previous_satisfaction": fstate[live, F_PREVIOUS].copy(),
            "expectation": fstate[live, F_EXPECTATION].copy(),
            "tenure": period - istate[live, I_JOINED],
            "highest_stage": istate[live, I_HIGHEST].copy(),
            "propensity": fstate[live, F_PROPENSITY].copy(),
        }

    # ----------------------------------------------------------------- event timing: purchases

    def _schedule_purchases(self, agent: int) -> None:
        """Poisson purchases within the coming period (rate by stage); each books an equal
        share of the period's expected purchase cash flow, so the step scales it by N / rate."""
        rate = self.setup.purchase_rate[self.istate[agent, I_STAGE]]
        times = _arrival_times(self.streams, agent, R_PURCHASES, rate)
        timeout = self.env.timeout
        for elapsed in times.tolist():
            timeout(elapsed).callbacks.append(lambda event, agent=agent: self._purchase(agent))
        self.fstate[agent, F_PURCHASE_FACTOR] = len(times) / rate

    def _purchase(self, agent: int) -> None:
        self.counts[self.period, C_PURCHASES] += 1
        if self.log is not None:
            self.log.append((self.env.now, agent, "purchase", _STATE_NAMES[self.istate[agent, I_STAGE]],
                             float(self.fstate[agent, F_SATISFACTION])))

    # ----------------------------------------------------------------- capacity: complaints

    def _wait_penalty(self, agent: int) -> None:
        """Set this period's (M2) shift from the time the customer's complaint waited in it."""
        wait = self.wait_accrued[agent]
        since = self.waiting_since[agent]
        now = self.env.now
        if since >= 0.0:
            wait += now - since
            self.waiting_since[agent] = now
        self.wait_accrued[agent] = 0.0
        self.fstate[agent, F_SHIFT] = self.setup.market.capacity.wait_penalty * wait

    def _maybe_complain(self, agent: int) -> None:
        if self.complaint_open[agent]:
            return
        capacity = self.setup.market.capacity
        streams = self.streams
        if _stream_uniform(streams, agent, R_COMPLAINTS) >= capacity.complaint_probability:
            return
        delay = _stream_uniform(streams, agent, R_COMPLAINTS)
        service = _stream_exponential(streams, agent, R_COMPLAINTS) * capacity.service_time
        self.complaint_open[agent] = True
        self.env.process(self._complaint(agent, delay, service))

    def _complaint(self, agent: int, delay: float, service: float):
        env = self.env
        yield env.timeout(delay)
        if not self.alive[agent]:
            self.complaint_open[agent] = False
            return
        raised = env.now
        self.counts[self.period, C_COMPLAINTS] += 1
        self._log_agent(agent, "complaint")
        self.waiting_since[agent] = raised
        request = self.resource.request()
        self.queued[agent] = request
        yield request  # never resumes if the customer leaves first: _close cancels the request
        del self.queued[agent]
        if self.waiting_since[agent] >= 0.0:
            self.wait_accrued[agent] += env.now - self.waiting_since[agent]
            self.waiting_since[agent] = -1.0
        row = self.counts[self.period]
        row[C_SERVED] += 1
        row[C_WAIT] += env.now - raised
        self._log_agent(agent, "complaint_served")
        yield env.timeout(service)
        self.resource.release(request)
        self.complaint_open[agent] = False

    def _log_agent(self, agent: int, event: str) -> None:
        if self.log is not None:
            self.log.append((self.env.now, agent, event, _STATE_NAMES[self.istate[agent, I_STAGE]],
                             float(self.fstate[agent, F_SATISFACTION])))

    # ----------------------------------------------------------------- word of mouth and arrivals

    def _talk(self, agent: int, kind: int) -> None:
        """Word of mouth after a period in which the customer talked (decided in the step):
        it wins (or deters) Poisson(people_told * |influence|) prospects of its satisfaction
        type; won prospects arrive at uniform times within the next period."""
        setup = self.setup
        streams = self.streams
        count = _poisson(setup.wom_means[kind], lambda: _stream_uniform(streams, agent, R_WORD_OF_MOUTH))
        self._log_agent(agent, "talked")
        if count == 0:
            return
        sign = setup.wom_sign[kind]
        if sign > 0:
            self.counts[self.period, C_PROSPECTS_WON] += count
            for _ in range(count):
                delay = _stream_uniform(streams, agent, R_WORD_OF_MOUTH)
                self.env.timeout(delay).callbacks.append(
                    lambda event, agent=agent: self._arrive(ORIGIN_WORD_OF_MOUTH, agent))
        elif sign < 0:
            self.deterrers.extend([agent] * count)

    def _arrive(self, origin: int, referrer: int) -> None:
        """A prospect arrives: cancelled by a deterring word of mouth if one is pending,
        else it joins at the next review (if there is one and the market has room)."""
        if self.env.now > self.horizon - 1:
            return
        if self.deterrers:
            deterrer = self.deterrers.popleft()
            self.cancelled.append((deterrer, self.period + 1))
            self.counts[self.period, C_DETERRED] += 1
            if self.log is not None:
                self.log.append((self.env.now, deterrer, "deterred", _STATE_NAMES[self.istate[deterrer, I_STAGE]],
                                 float(self.fstate[deterrer, F_SATISFACTION])))
            return
        if self.n + len(self.pending) >= self.setup.market.max_customers:
            self.counts[self.period, C_TURNED_AWAY] += 1
            return
        self.pending.append((origin, referrer))

    def _acquisition(self):
        """Prospects arriving as a Poisson process (organic plus acquisition spend). Stops
        once the market is full (``market.max_customers`` customers, ended ones included,
        and prospects waiting to join): nobody can join any more, since ``n`` never falls."""
        rate = self.setup.acquisition_rate
        if not self.acquisition_on or rate <= 0.0:
            return
        stream = _rng.CustomerStream(self.setup.seed, self.replication, MARKET_STREAM_CUSTOMER, COMPONENT_ACQUISITION)
        env = self.env
        max_customers = self.setup.market.max_customers
        while self.n + len(self.pending) < max_customers:
            yield env.timeout(stream.exponential() / rate)
            if env.now > self.horizon - 1:
                return
            self._arrive(ORIGIN_ACQUISITION, -1)

    def _competitor(self):
        """A competitor entering at ``enters_at`` (and leaving at ``leaves_at``)."""
        competitor = self.setup.market.competitor
        env = self.env
        if competitor.enters_at > 0:
            yield env.timeout(competitor.enters_at)
        self.competitor_present = True
        if self.log is not None:
            self.log.append((env.now, -1, "competitor_entered", "", math.nan))
        if competitor.leaves_at is not None:
            yield env.timeout(competitor.leaves_at - competitor.enters_at)
            self.competitor_present = False
            if self.log is not None:
                self.log.append((env.now, -1, "competitor_left", "", math.nan))

    # ----------------------------------------------------------------- run and results

    def run(self) -> None:
        setup = self.setup
        if self.competitor_on:
            self.env.process(self._competitor())  # first: an entry at period 0 precedes the first review
        self.env.process(self._firm())
        for _ in range(setup.customers):
            self._add_agent(ORIGIN_COHORT, -1, 0)
        self.counts[0, C_ACQUISITION_COST] += self.fstate[: self.n, F_ACQUISITION].sum()
        if self.acquisition_on:
            self.env.process(self._acquisition())
        self.env.run(until=self.horizon + 0.5)


_SPEND_RULE = f"a spend must be a finite number >= 0 and <= {MAX_MAGNITUDE:g} (sim.model.config.MAX_MAGNITUDE)"


def _checked_spend(value, name: str, agent: int, period: int) -> float:
    try:
        spend = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"policy function {name!r} returned {value!r} for customer {agent} in period {period}; "
                         f"{_SPEND_RULE}") from None
    if not (math.isfinite(spend) and 0.0 <= spend <= MAX_MAGNITUDE):
        raise ValueError(f"policy function {name!r} returned {spend!r} for customer {agent} in period {period}; "
                         f"{_SPEND_RULE}")
    return spend


def _sum_clv(f: np.ndarray, clv5: np.ndarray) -> np.ndarray:
    """CLV = CLV1 + ... + CLV6 - spend - acquisition, summed in the core's order (so equal to
    the core's per-customer value bit for bit), with the given CLV5 column."""
    return customer_clv.py_func(f[:, F_CLV1], f[:, F_CLV2], f[:, F_CLV3], f[:, F_CLV4], clv5, f[:, F_CLV6],
                                f[:, F_SPEND_VALUE], f[:, F_ACQUISITION])


def _finish(market: _Market, clv_out: np.ndarray, money: np.ndarray, ended_at: np.ndarray, occupancy: np.ndarray,
            pattern_count: np.ndarray, pattern_clv: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-customer CLVs (with observed referral value when word of mouth is on), the
    cohort's money/pattern partials, and the ``customers`` and ``market`` frames."""
    setup = market.setup
    n = market.n
    f = market.fstate[:n]
    state = market.istate[:n]
    scalars = setup.arrays.scalars
    delta = scalars[S_DISCOUNT_FACTOR]
    clv5 = f[:, F_CLV5].copy()
    own = _sum_clv(f, clv5)
    joined = state[:, I_JOINED]
    origin = state[:, I_ORIGIN]
    if market.wom_on:
        # CLV5 observed: the value of the customers won directly (their own CLV, discounted
        # from their acquisition to the referrer's), minus that of the prospects deterred,
        # each valued at the mean own CLV of the customers who arrived in this market.
        referred = np.flatnonzero(origin == ORIGIN_WORD_OF_MOUTH)
        referrer = state[referred, I_REFERRER]
        np.add.at(clv5, referrer, delta ** (joined[referred] - joined[referrer]) * own[referred])
        if market.cancelled:
            arrivals = own[origin != ORIGIN_COHORT]
            value = arrivals.mean() if arrivals.size else own[origin == ORIGIN_COHORT].mean()
            deterrer, would_join = np.asarray(market.cancelled, dtype=np.int64).T
            np.subtract.at(clv5, deterrer, delta ** (would_join - joined[deterrer]) * value)
    clv = _sum_clv(f, clv5)
    end = state[:, I_END]
    highest = state[:, I_HIGHEST]
    pattern = lifecycle_pattern.py_func(highest, end, 0, scalars[S_LONG_TERM])
    # cohort partials (the cohort is agents 0 .. customers-1)
    p = market.policy
    cohort = slice(0, setup.customers)
    clv_out[p] = clv[cohort]
    parts = np.column_stack([f[cohort, F_CLV1], f[cohort, F_CLV2], f[cohort, F_CLV3], f[cohort, F_CLV4], clv5[cohort],
                             f[cohort, F_CLV6], f[cohort, F_SPEND_VALUE], f[cohort, F_ACQUISITION]])
    money[p, M_CLV1:M_CLV1 + 6] = parts[:, :6].sum(axis=0)
    money[p, M_SPEND] = parts[:, 6].sum()
    money[p, M_ACQUISITION] = parts[:, 7].sum()
    money[p, M_CLV] = clv[cohort].sum()
    money[p, M_CLV_SQUARED] = (clv[cohort] ** 2).sum()
    cohort_end = end[cohort]
    ended_at[p] = np.bincount(cohort_end[cohort_end >= 0], minlength=setup.horizon + 1)
    live_stage = state[cohort, I_STAGE][cohort_end < 0]
    occupancy[p, setup.horizon] = np.bincount(live_stage, minlength=len(STAGES))
    pattern_count[p] = np.bincount(pattern[cohort], minlength=4)
    pattern_clv[p] = np.bincount(pattern[cohort], weights=clv[cohort], minlength=4)

    name = setup.names[p]
    customers = pd.DataFrame({
        "policy": name,
        "replication": market.replication,
        "customer": np.arange(n),
        "origin": np.asarray(ORIGINS, dtype=object)[origin],
        "referred_by": state[:, I_REFERRER],
        "joined": joined,
        "ended": np.where(end >= 0, joined + end, -1),
        "segment": np.asarray(SEGMENTS, dtype=object)[state[:, I_SEGMENT]],
        "tier": np.asarray(("A", "B", "C"), dtype=object)[state[:, I_TIER]],
        "highest_stage": np.asarray(STAGES, dtype=object)[highest],
        "final_stage": np.asarray(_STATE_NAMES, dtype=object)[state[:, I_STAGE]],
        "pattern": np.asarray(("I", "II", "III", "IV"), dtype=object)[pattern],
        "clv_own": own,
        "clv5_observed": clv5 if market.wom_on else np.zeros(n),
        "clv": clv,
    })
    counts = market.counts
    live = counts[:, C_LIVE_RELATIONSHIP] + counts[:, C_LIVE_TRANSACTIONAL]
    periods = np.arange(setup.horizon)
    with np.errstate(invalid="ignore", divide="ignore"):
        satisfaction_mean = counts[:, C_SATISFACTION] / live
        wait_mean = counts[:, C_WAIT] / counts[:, C_SERVED]
    market_spend = counts[:, C_MARKET_SPEND]
    # the firm's net cash of each period, discounted to time 0: customers' cash and the
    # market-level spend at the end of the period, acquisition costs when customers join
    cash_value = (delta ** (periods + 1) * (counts[:, C_PROFIT] - market_spend)
                  - delta ** periods * counts[:, C_ACQUISITION_COST])
    columns = {
        "live": live,
        "live_relationship": counts[:, C_LIVE_RELATIONSHIP],
        "live_transactional": counts[:, C_LIVE_TRANSACTIONAL],
        "ended_relationship": counts[:, C_ENDED_RELATIONSHIP],
        "ended_transactional": counts[:, C_ENDED_TRANSACTIONAL],
        "exits_relationship": counts[:, C_EXITS_RELATIONSHIP],
        "exits_transactional": counts[:, C_EXITS_TRANSACTIONAL],
        "dissatisfied": counts[:, C_DISSATISFIED],
        "satisfaction_mean": satisfaction_mean,
        "joined_acquisition": counts[:, C_JOINED_ACQUISITION],
        "joined_word_of_mouth": counts[:, C_JOINED_WORD_OF_MOUTH],
        "prospects_won": counts[:, C_PROSPECTS_WON],
        "deterred": counts[:, C_DETERRED],
        "turned_away": counts[:, C_TURNED_AWAY],
        "complaints": counts[:, C_COMPLAINTS],
        "complaints_served": counts[:, C_SERVED],
        "wait_mean": wait_mean,
        "servers": counts[:, C_SERVERS],
        "wished_spend": counts[:, C_WISHED],
        "retention_spend": counts[:, C_SPEND],
        "budget": np.where(np.isinf(counts[:, C_BUDGET]), np.nan, counts[:, C_BUDGET]),
        "market_spend": market_spend,
        "acquisition_cost": counts[:, C_ACQUISITION_COST],
        "competitor": counts[:, C_COMPETITOR].astype(bool),
        "purchases": counts[:, C_PURCHASES],
        "profit": counts[:, C_PROFIT],
        "cash_value": cash_value,
    }
    frame = pd.DataFrame({"policy": name, "replication": market.replication, "period": periods, **columns})
    integer_columns = [column for column in MARKET_COLUMNS if column not in
                       ("satisfaction_mean", "wait_mean", "wished_spend", "retention_spend", "budget", "market_spend",
                        "acquisition_cost", "competitor", "profit", "cash_value")]
    frame[integer_columns] = frame[integer_columns].astype(np.int64)
    return customers, frame


# --------------------------------------------------------------------------- results


class _NamedConfig:
    """The config seen with extra policy names (user policy functions) by the table builders
    of :class:`sim.ProjectionResult`; everything else is the config's."""

    def __init__(self, config: ExperimentConfig, names: tuple[str, ...]):
        self._config = config
        self.policy_names = names

    def __getattr__(self, name):
        return getattr(self._config, name)


@dataclass
class MarketResult(ProjectionResult):
    """Results of :func:`simulate_market`: the core's tidy tables for the initial cohort,
    plus the market's own tables, an optional event log and snapshots.

    Attributes
    ----------
    summary, stages, by_stage, patterns, trajectory, satisfaction_retention, value_concentration, comparison, clv
        As in :class:`sim.ProjectionResult`, for the initial cohort (the customers present
        at period 0), built by the same code from the same partial aggregates. With word
        of mouth on, ``clv5`` is the observed referral value.
    market : DataFrame
        One row per ``policy, replication, period``: live customers (customer-periods by
        segment), relationships ended and exits (to decline or ended) by segment,
        dissatisfied customers, mean satisfaction, joins by origin, prospects won and
        deterred by word of mouth, arrivals turned away (market full at
        ``market.max_customers``; the acquisition process stops then, so nearly all are
        word-of-mouth arrivals), complaints raised and served,
        their mean wait (periods), servers, the retention spend wished and granted, the
        budget (NaN without one), market-level spend (capacity and acquisition),
        acquisition costs of new customers, whether the competitor is present, purchases
        (event timing), the customers' undiscounted profit net of retention spend, and
        ``cash_value``: the firm's net cash of the period discounted to time 0.
    customers : DataFrame
        One row per agent and policy and replication: ``origin`` (cohort, acquisition,
        word_of_mouth), ``referred_by``, ``joined`` and ``ended`` (calendar periods, -1 if
        live at the horizon), segment, tier, highest and final stage, lifecycle pattern,
        ``clv_own`` (its own cash flows), ``clv5_observed`` and ``clv``; values are in the
        customer's acquisition period's money and censored at the horizon.
    events : DataFrame
        ``policy, replication, time, customer, event, stage, satisfaction`` (empty unless
        the event log was on). Events: acquired, advanced, declined, won_back, ended,
        purchase, complaint, complaint_served, talked, deterred (on the deterring
        customer), competitor_entered, competitor_left (customer -1).
    snapshots : dict
        ``{(policy, replication, period): {column: array}}``; see :meth:`snapshot`.
    """

    market: pd.DataFrame = field(default=None, repr=False)
    customers: pd.DataFrame = field(default=None, repr=False)
    events: pd.DataFrame = field(default=None, repr=False)
    snapshots: dict = field(default_factory=dict, repr=False)

    TABLES = ProjectionResult.TABLES + ("market", "customers", "events")

    def snapshot(self, t: int, policy: str | None = None, replication: int = 0) -> pd.DataFrame:
        """Every live customer's state at the start of period ``t`` (after that period's new
        customers joined), one row per customer.

        Parameters
        ----------
        t : int
            A recorded period (every ``market.snapshot_every`` periods, the horizon, and any
            period passed as ``snapshot_periods`` to :func:`simulate_market`).
        policy : str, optional
            Policy name (default: the first policy).
        replication : int, optional
            Replication index (default 0).

        Returns
        -------
        DataFrame
            Columns ``customer, segment (0/1), wallet, fit, tier (0-2), stage (0-3),
            satisfaction, previous_satisfaction, expectation, tenure`` (periods since
            acquisition), ``highest_stage`` and ``propensity`` — the input of
            :func:`sim.project_from`.
        """
        names = self.config.policy_names if not self.snapshots else tuple(dict.fromkeys(k[0] for k in self.snapshots))
        policy = names[0] if policy is None else policy
        key = (policy, replication, t)
        if key not in self.snapshots:
            known_policies = sorted({k[0] for k in self.snapshots})
            if policy not in known_policies:
                raise KeyError(f"policy = {policy!r}: no such policy; policies: {', '.join(known_policies)}")
            periods = sorted({k[2] for k in self.snapshots if k[0] == policy and k[1] == replication})
            if not periods:
                raise KeyError(f"replication = {replication}: no snapshots; replications: "
                               f"{sorted({k[1] for k in self.snapshots})}")
            raise KeyError(f"t = {t}: no snapshot recorded; recorded periods: {periods} "
                           "(set market.snapshot_every or pass snapshot_periods= to simulate_market)")
        return pd.DataFrame(self.snapshots[key], columns=list(SNAPSHOT_COLUMNS))

    @property
    def snapshot_periods(self) -> list[int]:
        """The periods at which snapshots were recorded."""
        return sorted({key[2] for key in self.snapshots})


_EVENT_COLUMNS = ("policy", "replication", "time", "customer", "event", "stage", "satisfaction")
_POLICY_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _resolve(config, customers, replications, horizon, seed) -> ExperimentConfig:
    if not isinstance(config, ExperimentConfig):
        hint = " (for a dict use sim.config_from_dict(data))" if isinstance(config, Mapping) else ""
        raise TypeError(f"config must be an ExperimentConfig (sim.load_config or sim.config_from_dict), "
                        f"got {type(config).__name__}{hint}")
    run = {key: value for key, value in (("replications", replications), ("horizon", horizon), ("seed", seed))
           if value is not None}
    overrides = {}
    if run:
        overrides["run"] = run
    if customers is not None:
        overrides["population"] = {"customers": customers}
    return config.with_overrides(**overrides) if overrides else config


def _check_word_of_mouth(config: ExperimentConfig) -> None:
    """With word of mouth on, ``people_told * |influence|`` of every satisfaction type at
    most :data:`sim.model.config.MAX_WORD_OF_MOUTH_PROSPECTS`, else ConfigError naming the fields (the
    configuration already refuses this at load: :func:`sim.model.config.market_problems`)."""
    problems = word_of_mouth_problems(config)
    if problems:
        raise ConfigError(problems)


#: Bytes per cohort customer, replication and policy that a result keeps (the ``customers``
#: frame, about 15 eight-byte columns, held twice while the frames are concatenated, and
#: the per-customer CLV of the partials).
_RESULT_BYTES_PER_CUSTOMER_MARKET = 2 * 15 * 8 + 8


def estimated_memory(config: ExperimentConfig, n_policies: int | None = None) -> int:
    """Bytes :func:`simulate_market` needs at least for ``config`` (state arrays of one market
    plus the per-customer tables kept for every market); arrivals beyond the cohort add more."""
    n_policies = len(config.policies) if n_policies is None else n_policies
    customers = config.population.customers
    state = max(customers + 64, 256) * AGENT_BYTES_PER_CUSTOMER
    return state + customers * config.run.replications * n_policies * _RESULT_BYTES_PER_CUSTOMER_MARKET


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def agent_engine_problems(config: ExperimentConfig, n_policies: int | None = None) -> list[tuple[str, str]]:
    """Why the agent engine cannot run ``config`` (before any allocation): the checks of
    :func:`sim.model.config.market_problems` on the agent engine (whatever ``config.engine`` says,
    e.g. under ``sim run --engine abm``), and a memory estimate above this machine's memory."""
    problems = market_problems(config, agent_engine=True)
    if problems:
        return problems
    need = estimated_memory(config, n_policies)
    have = _physical_memory()
    if have is not None and need > have:
        n_policies = len(config.policies) if n_policies is None else n_policies
        problems.append((f"population.customers = {config.population.customers}",
                         f"the agent engine needs about {need / 2**30:,.1f} GiB for {config.population.customers:,} "
                         f"customers x {config.run.replications} replications x {n_policies} policies, more than "
                         f"this machine's {have / 2**30:,.1f} GiB; lower population.customers or run.replications"))
    return problems


def _checked_functions(policy_functions, config: ExperimentConfig) -> dict[str, Callable]:
    if policy_functions is None:
        return {}
    if not isinstance(policy_functions, Mapping):
        raise TypeError(f"policy_functions must be a mapping {{name: function}}, got {type(policy_functions).__name__}")
    checked = {}
    for name, function in policy_functions.items():
        if not isinstance(name, str) or not _POLICY_NAME.match(name) or len(name) > 64:
            raise ValueError(f"policy_functions: name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if name in config.policy_names:
            raise ValueError(f"policy_functions: name {name!r} is already a policy of the config "
                             f"({', '.join(config.policy_names)}); choose another")
        if not callable(function):
            raise TypeError(f"policy_functions[{name!r}] = {function!r} is not callable; "
                            "expected fn(CustomerState) -> spend")
        checked[name] = function
    return checked


def _checked_periods(snapshot_periods, horizon: int, every: int) -> frozenset[int]:
    periods = set(range(0, horizon + 1, every)) if every > 0 else set()
    periods.add(horizon)
    if isinstance(snapshot_periods, (int, np.integer)) and not isinstance(snapshot_periods, (bool, np.bool_)):
        snapshot_periods = (snapshot_periods,)  # one period
    if snapshot_periods is not None:
        try:
            snapshot_periods = list(snapshot_periods)
        except TypeError:
            raise TypeError(f"snapshot_periods = {snapshot_periods!r}: must be a period or an iterable of periods "
                            f"(whole numbers in [0, {horizon}])") from None
        for value in snapshot_periods:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value <= horizon:
                raise ValueError(f"snapshot_periods: {value!r} must be a whole period in [0, {horizon}] (the horizon)")
            periods.add(int(value))
    return frozenset(periods)


def simulate_market(
    config: ExperimentConfig,
    *,
    customers: int | None = None,
    replications: int | None = None,
    horizon: int | None = None,
    seed: int | None = None,
    policy_functions: Mapping[str, Callable[[CustomerState], float]] | None = None,
    event_log: bool | None = None,
    snapshot_periods: Iterable[int] | int | None = None,
    progress: bool = False,
) -> MarketResult:
    """Simulate the customer market of ``config`` with the SimPy agent engine.

    Each of ``customers`` customers starts in exploration at period 0 and lives as a SimPy
    process through the four lifecycle stages, one step per period with the equations of
    :mod:`sim.model.equations`; the firm reviews the live customers every period and applies each
    policy (a separate market per policy, on the same customers and shocks). The
    interactions of ``config.market`` (budget, service capacity, word of mouth,
    acquisition, competitor; all off by default) couple customers through the market.

    Parameters
    ----------
    config : ExperimentConfig
        A validated experiment (:func:`sim.load_config`); ``[market]`` configures the engine.
    customers, replications, horizon, seed : int, optional
        Override the config's values (validated like the config).
    policy_functions : mapping of str to callable, optional
        Extra policies for this engine only: ``{name: fn}`` with ``fn(CustomerState) ->
        spend`` (a finite number in [0, 1e12], ``sim.model.config.MAX_MAGNITUDE``) called for every live customer at every review;
        simulated after the config's policies, on the same customers. An interaction whose
        ``policies`` list is empty applies to them too; a non-empty list (validated
        against the config's policy names) does not include them.
    event_log : bool, optional
        Keep the event log (default ``config.market.event_log``).
    snapshot_periods : int or iterable of int, optional
        Period(s) (0 .. horizon) at which to record snapshots, besides every
        ``market.snapshot_every`` periods and the horizon.
    progress : bool
        Show a progress bar over (replication, policy) markets.

    Returns
    -------
    MarketResult
        The core's tidy tables for the initial cohort plus ``market``, ``customers``,
        ``events`` and snapshots.

    Raises
    ------
    ConfigError
        For an override out of range, or with word of mouth on a mean of more than
        :data:`sim.model.config.MAX_WORD_OF_MOUTH_PROSPECTS` prospects per talk.
    ValueError, TypeError
        For a bad policy function or snapshot period (before any work), or a policy
        function returning a spend that is not a finite number in [0, 1e12] (during the run);
        TypeError also for a ``config`` that is not an :class:`ExperimentConfig` (a dict:
        use :func:`sim.config_from_dict`).
    RuntimeError
        For a policy function that raises (naming the policy, customer, period and
        replication; the original exception is its ``__cause__``).
    NonFiniteResultError
        If a customer's satisfaction becomes NaN (a numerical failure, naming the customer,
        period, policy and replication).

    Notes
    -----
    With every interaction off and ``market.timing = "period"`` the result equals the
    core's (:func:`sim.project`) customer for customer. Cost: a few microseconds per
    customer-period (one SimPy event and one jit-compiled step), see
    ``benchmarks/abm_scale.py``. Deterministic given the seed.
    """
    config = _resolve(config, customers, replications, horizon, seed)
    functions = _checked_functions(policy_functions, config)
    problems = agent_engine_problems(config, len(config.policies) + len(functions))
    if problems:
        raise ConfigError(problems)
    if event_log is not None and not isinstance(event_log, (bool, np.bool_)):
        raise TypeError(f"event_log = {event_log!r}: must be True or False")
    horizon = config.run.horizon
    periods = _checked_periods(snapshot_periods, horizon, config.market.snapshot_every)
    names = config.policy_names + tuple(functions)
    setup = _Setup(config, names, functions, bool(config.market.event_log if event_log is None else event_log), periods)
    n_policies = len(names)
    n_customers = config.population.customers
    work = [(replication, policy) for replication in range(config.run.replications) for policy in range(n_policies)]
    iterator: Iterable = work
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(work, desc=f"{config.name}: markets", unit="market", leave=False)
    started = time.perf_counter()
    partials: list[ChunkPartials] = []
    customer_frames, market_frames, event_frames = [], [], []
    snapshots: dict = {}
    current = None
    for replication, policy in iterator:
        if policy == 0:
            current = ChunkPartials(1, n_policies, horizon, n_customers)
            partials.append(current)
        market = _Market(setup, policy, replication, current)
        market.run()
        customers_frame, market_frame = _finish(market, current.clv, current.money[0], current.ended_at[0],
                                                current.occupancy[0], current.pattern_count[0], current.pattern_clv[0])
        customer_frames.append(customers_frame)
        market_frames.append(market_frame)
        if market.log:
            events = pd.DataFrame(market.log, columns=_EVENT_COLUMNS[2:])
            events.insert(0, "replication", replication)
            events.insert(0, "policy", names[policy])
            event_frames.append(events)
        for period, snapshot in market.snapshots.items():
            snapshots[(names[policy], replication, period)] = snapshot
        if policy == n_policies - 1:
            _pair_partials(current)
    elapsed = time.perf_counter() - started
    projection = ProjectionResult.from_partials(_NamedConfig(config, names), partials, wall_seconds=elapsed, threads=1)
    base = {item.name: getattr(projection, item.name) for item in fields(ProjectionResult)}
    base["config"] = config
    base["timings"] = {"simulate_seconds": elapsed, "engine": "abm",
                       "customer_periods": int(sum(frame["live"].sum() for frame in market_frames))}
    events = (pd.concat(event_frames, ignore_index=True) if event_frames
              else pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in
                                 zip(_EVENT_COLUMNS, (object, np.int64, float, np.int64, object, object, float))}))
    return MarketResult(**base, market=pd.concat(market_frames, ignore_index=True),
                        customers=pd.concat(customer_frames, ignore_index=True), events=events, snapshots=snapshots)


def _pair_partials(partials: ChunkPartials) -> None:
    """Paired per-customer differences between policies (common random numbers), as the
    core's kernel accumulates them."""
    clv = partials.clv
    n_policies = clv.shape[0]
    for policy in range(n_policies):
        for other in range(n_policies):
            if policy != other:
                difference = clv[policy] - clv[other]
                partials.pair_sums[0, policy, other, 0] = difference.sum()
                partials.pair_sums[0, policy, other, 1] = (difference * difference).sum()
                partials.pair_wins[0, policy, other] = int((difference > 0.0).sum())


# --------------------------------------------------------------------------- plots


def plot_market(market: pd.DataFrame, column: str = "live", ax=None, *, policy: str | None = None):
    """Plot one column of the ``market`` table against the period, one line per policy
    (mean over replications). Returns the Axes."""
    import matplotlib.pyplot as plt

    if column not in market.columns:
        raise KeyError(f"column = {column!r}: not in the market table; columns: {', '.join(market.columns)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    table = market if policy is None else market[market["policy"] == policy]
    means = table.groupby(["policy", "period"], sort=False)[column].mean().unstack(0)
    for name in means.columns:
        ax.plot(means.index, means[name], label=name)
    ax.set_xlabel("period")
    ax.set_ylabel(column.replace("_", " "))
    ax.set_title(column.replace("_", " ").capitalize())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return ax


def market_figure(result: MarketResult):
    """The market overview of an agent-engine run, on one 2×2 page: live customers; exits
    per live customer-period by segment (pooled over replications; solid transactional,
    dashed relationship); new customers joining per period (or mean satisfaction when
    nobody joins); and complaint waits (capacity on) or the retention spend (with the
    budget, when on). Returns the Figure."""
    import matplotlib.pyplot as plt

    market = result.market
    config = result.config.market
    figure, axes = plt.subplots(2, 2, figsize=(13, 8.5), layout="constrained")
    plot_market(market, "live", ax=axes[0, 0])
    pooled = market.groupby(["policy", "period"], sort=False)[
        ["exits_relationship", "live_relationship", "exits_transactional", "live_transactional"]].sum()
    ax = axes[0, 1]
    for index, (name, rows) in enumerate(pooled.groupby(level="policy", sort=False)):
        rows = rows.droplevel("policy")
        color = f"C{index}"
        with np.errstate(invalid="ignore", divide="ignore"):
            ax.plot(rows.index, rows["exits_transactional"] / rows["live_transactional"], color=color,
                    label=f"{name}, transactional")
            ax.plot(rows.index, rows["exits_relationship"] / rows["live_relationship"], color=color, linestyle="--",
                    label=f"{name}, relationship")
    if config.competitor.enabled:
        ax.axvline(config.competitor.enters_at, color="grey", linewidth=1)
        if config.competitor.leaves_at is not None:
            ax.axvline(config.competitor.leaves_at, color="grey", linewidth=1, linestyle=":")
    ax.set(xlabel="period", ylabel="exits per live customer", title="Exits (to decline or ended) by segment")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    if config.acquisition.enabled or config.word_of_mouth.enabled:
        joined = market.assign(joined=market["joined_acquisition"] + market["joined_word_of_mouth"])
        plot_market(joined, "joined", ax=axes[1, 0])
        axes[1, 0].set_title("New customers joining (acquisition + word of mouth)")
    else:
        plot_market(market, "satisfaction_mean", ax=axes[1, 0])
    if config.capacity.enabled:
        plot_market(market, "wait_mean", ax=axes[1, 1])
        axes[1, 1].set_title("Mean wait of complaints served (periods)")
    else:
        plot_market(market, "retention_spend", ax=axes[1, 1])
        if config.budget.enabled:
            axes[1, 1].axhline(market["budget"].iloc[0], color="black", linewidth=1, linestyle="--", label="budget")
            axes[1, 1].legend(fontsize=8, frameon=False)
    interactions = ", ".join(config.interactions) or "no interactions"
    figure.suptitle(f"{result.config.name}: agent-based market ({interactions}; "
                    f"{result.config.population.customers:,} customers x {result.config.run.replications} replications)",
                    fontsize=12)
    return figure


# --------------------------------------------------------------------------- command line


def run_market_command(config: ExperimentConfig, out, args) -> int:
    """``sim run CONFIG --engine abm`` (or ``engine = "abm"`` in the config): simulate the
    market and write the result folder in the core's layout — one CSV per table (the
    core's tables plus ``market``, ``customers`` and ``events``), ``overview.png``,
    ``market.png`` and ``manifest.json`` (written last). Returns the exit status."""
    import shlex
    import sys

    from sim.cli.main import _print_summary

    interactions = ", ".join(config.market.interactions) or "none"
    print(f"{config.name} (agent engine, interactions: {interactions}, timing: {config.market.timing}): "
          f"{config.population.customers:,} customers x {config.run.replications} replications x "
          f"{config.run.horizon} periods, {len(config.policies)} policies, seed {config.run.seed}")
    started = time.perf_counter()
    result = simulate_market(config, progress=not args.no_progress)
    result.timings["total_seconds"] = time.perf_counter() - started
    figures = {}
    if not args.no_figure:
        import matplotlib

        matplotlib.use("Agg")
        from sim.plotting.projection import result_figure

        figures["overview.png"] = result_figure(result)
        figures["market.png"] = market_figure(result)
    command = "sim " + " ".join(shlex.quote(part) for part in sys.argv[1:])
    result.save(out, command=command, force=True, figures=figures,
                extra_manifest={"engine": "abm", "interactions": list(config.market.interactions)})
    _print_summary(result)
    print()
    print(_market_report(result))
    print(f"\nwrote {out}/ ({', '.join(result.TABLES)}, {', '.join(figures) or 'no figure'}, manifest.json) "
          f"in {result.timings['total_seconds']:.1f} s")
    return 0


def _market_report(result: MarketResult) -> str:
    """Per policy, totals over the horizon (means over replications) of the market table."""
    market = result.market
    totals = market.groupby(["policy", "replication"], sort=False).agg(
        customer_periods=("live", "sum"),
        joined=("joined_acquisition", "sum"),
        joined_wom=("joined_word_of_mouth", "sum"),
        deterred=("deterred", "sum"),
        complaints=("complaints", "sum"),
        retention_spend=("retention_spend", "sum"),
        firm_value=("cash_value", "sum"),
    )
    waits = market.groupby(["policy", "replication"], sort=False)[["wait_mean"]].mean()
    table = totals.join(waits).groupby("policy", sort=False).mean()
    table = table.rename(columns={"joined": "joined_acquisition", "joined_wom": "joined_word_of_mouth"})
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:,.2f}".format):
        heading = "market totals per replication (firm_value: net cash discounted to period 0)\n"
        return heading + table.reset_index().to_string(index=False)
