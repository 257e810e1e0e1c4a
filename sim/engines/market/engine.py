r"""The agent-based market engine: customers as SimPy processes, on the model of :mod:`sim.model.equations`.

:func:`simulate_market` runs one SimPy environment per (policy, replication). Every customer
is a process that lives through its relationship period by period in event time; the firm
is a process that reviews every live customer at the start of each period and applies the
policy (docs/model.md §7). Unlike the cohort core, customers can interact through the market:

* a **retention budget** per period, allocated by a stated priority rule
  (:func:`~sim.engines.market.budget.allocate_budget`: value tier, then stage, then lowest satisfaction);
* **service capacity**: dissatisfied customers complain; complaints queue at a
  ``simpy.Resource`` and waiting lowers perceived performance (M2);
* **word of mouth** that creates real agents (positive) or deters prospects (negative), so
  that CLV5 is observed rather than assumed;
* **acquisition** as a Poisson arrival process driven by acquisition spend;
* **market events**: a competitor enters (and leaves) at configured periods and multiplies
  the exit odds of (M7), more for transactional than for relationship customers.

Each is switched on in ``[market]`` of the config (:class:`sim.model.market_config.MarketConfig`); all
are off by default.

One model
---------
The engine calls the model's equations of :mod:`sim.model.equations` — (M1) ``care_response``, (M2)
``perceived_performance``, (M3) ``satisfaction_type``, (M4) ``update_satisfaction``, (M5)
``update_expectation``, (M6) ``loyalty_from_satisfaction``, (M7)
``transition_probabilities`` and ``next_stage``, (M8) ``propensity_ends_relationship``,
(C1)-(C6) ``period_cash_flows`` — and the core's attribute draw
(``sim.engines.core.customer_attributes``, (A1)-(A3)) and the policies' spend tables of
:mod:`sim.model.policies`. The interactions enter the equations only through their arguments:
a complaint's wait lowers the base performance passed to (M2), the competitor multiplies
the exit odds passed to (M7), a budget changes the spend passed to (M1), and with word of
mouth on the expected referral value passed to (C5) is zero (the referrals are real).

The per-period step of one customer (:func:`_close_period`) is jit-compiled and does what
one customer-period of the core (``sim.engines.lanes.advance_period``) does, in the same order
with the same draws; so with every interaction off and ``timing = "period"`` the agent
engine reproduces the core customer for customer (``tests/engines/test_engines_market.py``
checks that the CLVs are bitwise equal).

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

import os
import re
import time
from dataclasses import dataclass, field, fields
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from sim.engines.market.budget import CustomerState
from sim.engines.market.market import _Market, _Setup
from sim.engines.market.state import (
    _STATE_NAMES,
    MARKET_COLUMNS,
    ORIGIN_COHORT,
    ORIGIN_WORD_OF_MOUTH,
    ORIGINS,
    SNAPSHOT_COLUMNS,
)
from sim.exceptions import ConfigError
from sim.model.arrays import S_DISCOUNT_FACTOR, S_LONG_TERM
from sim.model.config import ExperimentConfig, market_problems, with_run_overrides, word_of_mouth_problems
from sim.model.equations import customer_clv, lifecycle_pattern
from sim.model.market_config import AGENT_BYTES_PER_CUSTOMER
from sim.model.names import SEGMENTS, STAGES
from sim.tables.partials import M_ACQUISITION, M_CLV, M_CLV1, M_CLV_SQUARED, M_SPEND, ChunkPartials
from sim.tables.result import ProjectionResult

__all__ = [
    "simulate_market",
    "MarketResult",
]


def _sum_clv(f: np.ndarray, clv5: np.ndarray) -> np.ndarray:
    """CLV = CLV1 + ... + CLV6 - spend - acquisition, summed in the core's order (so equal to
    the core's per-customer value bit for bit), with the given CLV5 column.
    """
    return customer_clv.py_func(
        f["clv1"], f["clv2"], f["clv3"], f["clv4"], clv5, f["clv6"], f["spend_value"], f["acquisition"]
    )


def _finish(
    market: _Market,
    clv_out: np.ndarray,
    money: np.ndarray,
    ended_at: np.ndarray,
    occupancy: np.ndarray,
    pattern_count: np.ndarray,
    pattern_clv: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-customer CLVs (with observed referral value when word of mouth is on), the
    cohort's money/pattern partials, and the ``customers`` and ``market`` frames.
    """
    setup = market.setup
    n = market.n
    f = state = market.agents[:n]
    scalars = setup.arrays.scalars
    delta = scalars[S_DISCOUNT_FACTOR]
    clv5 = f["clv5"].copy()
    own = _sum_clv(f, clv5)
    joined = state["joined"]
    origin = state["origin"]
    if market.wom_on:
        # CLV5 observed: the value of the customers won directly (their own CLV, discounted
        # from their acquisition to the referrer's), minus that of the prospects deterred,
        # each valued at the mean own CLV of the customers who arrived in this market.
        referred = np.flatnonzero(origin == ORIGIN_WORD_OF_MOUTH)
        referrer = state["referrer"][referred]
        np.add.at(clv5, referrer, delta ** (joined[referred] - joined[referrer]) * own[referred])
        if market.cancelled:
            arrivals = own[origin != ORIGIN_COHORT]
            value = arrivals.mean() if arrivals.size else own[origin == ORIGIN_COHORT].mean()
            deterrer, would_join = np.asarray(market.cancelled, dtype=np.int64).T
            np.subtract.at(clv5, deterrer, delta ** (would_join - joined[deterrer]) * value)
    clv = _sum_clv(f, clv5)
    end = state["ended"]
    highest = state["highest_stage"]
    pattern = lifecycle_pattern.py_func(highest, end, 0, scalars[S_LONG_TERM])
    # cohort partials (the cohort is agents 0 .. customers-1)
    p = market.policy
    cohort = slice(0, setup.customers)
    clv_out[p] = clv[cohort]
    parts = np.column_stack(
        [
            f["clv1"][cohort],
            f["clv2"][cohort],
            f["clv3"][cohort],
            f["clv4"][cohort],
            clv5[cohort],
            f["clv6"][cohort],
            f["spend_value"][cohort],
            f["acquisition"][cohort],
        ]
    )
    money[p, M_CLV1 : M_CLV1 + 6] = parts[:, :6].sum(axis=0)
    money[p, M_SPEND] = parts[:, 6].sum()
    money[p, M_ACQUISITION] = parts[:, 7].sum()
    money[p, M_CLV] = clv[cohort].sum()
    money[p, M_CLV_SQUARED] = (clv[cohort] ** 2).sum()
    cohort_end = end[cohort]
    ended_at[p] = np.bincount(cohort_end[cohort_end >= 0], minlength=setup.horizon + 1)
    live_stage = state["stage"][cohort][cohort_end < 0]
    occupancy[p, setup.horizon] = np.bincount(live_stage, minlength=len(STAGES))
    pattern_count[p] = np.bincount(pattern[cohort], minlength=4)
    pattern_clv[p] = np.bincount(pattern[cohort], weights=clv[cohort], minlength=4)

    name = setup.names[p]
    customers = pd.DataFrame(
        {
            "policy": name,
            "replication": market.replication,
            "customer": np.arange(n),
            "origin": np.asarray(ORIGINS, dtype=object)[origin],
            "referred_by": state["referrer"],
            "joined": joined,
            "ended": np.where(end >= 0, joined + end, -1),
            "segment": np.asarray(SEGMENTS, dtype=object)[state["segment"]],
            "tier": np.asarray(("A", "B", "C"), dtype=object)[state["tier"]],
            "highest_stage": np.asarray(STAGES, dtype=object)[highest],
            "final_stage": np.asarray(_STATE_NAMES, dtype=object)[state["stage"]],
            "pattern": np.asarray(("I", "II", "III", "IV"), dtype=object)[pattern],
            "clv_own": own,
            "clv5_observed": clv5 if market.wom_on else np.zeros(n),
            "clv": clv,
        }
    )
    counts = market.counts
    live = counts["live_relationship"] + counts["live_transactional"]
    periods = np.arange(setup.horizon)
    with np.errstate(invalid="ignore", divide="ignore"):
        satisfaction_mean = counts["satisfaction"] / live
        wait_mean = counts["wait"] / counts["served"]
    market_spend = counts["market_spend"]
    # the firm's net cash of each period, discounted to time 0: customers' cash and the
    # market-level spend at the end of the period, acquisition costs when customers join
    cash_value = (
        delta ** (periods + 1) * (counts["profit"] - market_spend)
        - delta**periods * counts["acquisition_cost"]
    )
    columns = {
        "live": live,
        "live_relationship": counts["live_relationship"],
        "live_transactional": counts["live_transactional"],
        "ended_relationship": counts["ended_relationship"],
        "ended_transactional": counts["ended_transactional"],
        "exits_relationship": counts["exits_relationship"],
        "exits_transactional": counts["exits_transactional"],
        "dissatisfied": counts["dissatisfied"],
        "satisfaction_mean": satisfaction_mean,
        "joined_acquisition": counts["joined_acquisition"],
        "joined_word_of_mouth": counts["joined_word_of_mouth"],
        "prospects_won": counts["prospects_won"],
        "deterred": counts["deterred"],
        "turned_away": counts["turned_away"],
        "complaints": counts["complaints"],
        "complaints_served": counts["served"],
        "wait_mean": wait_mean,
        "servers": counts["servers"],
        "wished_spend": counts["wished"],
        "retention_spend": counts["spend"],
        "budget": np.where(np.isinf(counts["budget"]), np.nan, counts["budget"]),
        "market_spend": market_spend,
        "acquisition_cost": counts["acquisition_cost"],
        "competitor": counts["competitor"].astype(bool),
        "purchases": counts["purchases"],
        "profit": counts["profit"],
        "cash_value": cash_value,
    }
    frame = pd.DataFrame({"policy": name, "replication": market.replication, "period": periods, **columns})
    integer_columns = [
        column
        for column in MARKET_COLUMNS
        if column
        not in (
            "satisfaction_mean",
            "wait_mean",
            "wished_spend",
            "retention_spend",
            "budget",
            "market_spend",
            "acquisition_cost",
            "competitor",
            "profit",
            "cash_value",
        )
    ]
    frame[integer_columns] = frame[integer_columns].astype(np.int64)
    return customers, frame


# --------------------------------------------------------------------------- results


class _NamedConfig:
    """The config seen with extra policy names (user policy functions) by the table builders
    of :class:`sim.ProjectionResult`; everything else is the config's.
    """

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
    summary, stages, by_stage, patterns, trajectory, satisfaction_retention, value_concentration, \
    comparison, clv
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
        names = (
            self.config.policy_names
            if not self.snapshots
            else tuple(dict.fromkeys(k[0] for k in self.snapshots))
        )
        policy = names[0] if policy is None else policy
        key = (policy, replication, t)
        if key not in self.snapshots:
            known_policies = sorted({k[0] for k in self.snapshots})
            if policy not in known_policies:
                raise KeyError(f"policy = {policy!r}: no such policy; policies: {', '.join(known_policies)}")
            periods = sorted({k[2] for k in self.snapshots if k[0] == policy and k[1] == replication})
            if not periods:
                raise KeyError(
                    f"replication = {replication}: no snapshots; replications: "
                    f"{sorted({k[1] for k in self.snapshots})}"
                )
            raise KeyError(
                f"t = {t}: no snapshot recorded; recorded periods: {periods} "
                "(set market.snapshot_every or pass snapshot_periods= to simulate_market)"
            )
        return pd.DataFrame(self.snapshots[key], columns=list(SNAPSHOT_COLUMNS))

    @property
    def snapshot_periods(self) -> list[int]:
        """The periods at which snapshots were recorded."""
        return sorted({key[2] for key in self.snapshots})


_EVENT_COLUMNS = ("policy", "replication", "time", "customer", "event", "stage", "satisfaction")
_POLICY_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _check_word_of_mouth(config: ExperimentConfig) -> None:
    """With word of mouth on, ``people_told * |influence|`` of every satisfaction type at
    most :data:`sim.model.config.MAX_WORD_OF_MOUTH_PROSPECTS`, else ConfigError naming the fields (the
    configuration already refuses this at load: :func:`sim.model.config.market_problems`).
    """
    problems = word_of_mouth_problems(config)
    if problems:
        raise ConfigError(problems)


#: Bytes per cohort customer, replication and policy that a result keeps (the ``customers``
#: frame, about 15 eight-byte columns, held twice while the frames are concatenated, and
#: the per-customer CLV of the partials).
_RESULT_BYTES_PER_CUSTOMER_MARKET = 2 * 15 * 8 + 8


def estimated_memory(config: ExperimentConfig, n_policies: int | None = None) -> int:
    """Bytes :func:`simulate_market` needs at least for ``config`` (state arrays of one market
    plus the per-customer tables kept for every market); arrivals beyond the cohort add more.
    """
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
    e.g. under ``sim run --engine abm``), and a memory estimate above this machine's memory.
    """
    problems = market_problems(config, agent_engine=True)
    if problems:
        return problems
    need = estimated_memory(config, n_policies)
    have = _physical_memory()
    if have is not None and need > have:
        n_policies = len(config.policies) if n_policies is None else n_policies
        problems.append(
            (
                f"population.customers = {config.population.customers}",
                f"the agent engine needs about {need / 2**30:,.1f} GiB for {config.population.customers:,} "
                f"customers x {config.run.replications} replications x {n_policies} policies, more than "
                f"this machine's {have / 2**30:,.1f} GiB; lower population.customers or run.replications",
            )
        )
    return problems


def _checked_functions(policy_functions, config: ExperimentConfig) -> dict[str, Callable]:
    if policy_functions is None:
        return {}
    if not isinstance(policy_functions, Mapping):
        raise TypeError(
            f"policy_functions must be a mapping {{name: function}}, got {type(policy_functions).__name__}"
        )
    checked = {}
    for name, function in policy_functions.items():
        if not isinstance(name, str) or not _POLICY_NAME.match(name) or len(name) > 64:
            raise ValueError(f"policy_functions: name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if name in config.policy_names:
            raise ValueError(
                f"policy_functions: name {name!r} is already a policy of the config "
                f"({', '.join(config.policy_names)}); choose another"
            )
        if not callable(function):
            raise TypeError(
                f"policy_functions[{name!r}] = {function!r} is not callable; "
                "expected fn(CustomerState) -> spend"
            )
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
            raise TypeError(
                f"snapshot_periods = {snapshot_periods!r}: must be a period or an iterable of periods "
                f"(whole numbers in [0, {horizon}])"
            ) from None
        for value in snapshot_periods:
            if (
                isinstance(value, (bool, np.bool_))
                or not isinstance(value, (int, np.integer))
                or not 0 <= value <= horizon
            ):
                raise ValueError(
                    f"snapshot_periods: {value!r} must be a whole period in [0, {horizon}] (the horizon)"
                )
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
        spend`` (a finite number in [0, 1e12], ``sim.model.sections.MAX_MAGNITUDE``) called for every
        live customer at every review;
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
        TypeError also for a ``config`` that is not an :class:`~sim.model.config.ExperimentConfig` (a dict:
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
    config = with_run_overrides(config, customers, replications, horizon, seed)
    functions = _checked_functions(policy_functions, config)
    problems = agent_engine_problems(config, len(config.policies) + len(functions))
    if problems:
        raise ConfigError(problems)
    if event_log is not None and not isinstance(event_log, (bool, np.bool_)):
        raise TypeError(f"event_log = {event_log!r}: must be True or False")
    horizon = config.run.horizon
    periods = _checked_periods(snapshot_periods, horizon, config.market.snapshot_every)
    names = config.policy_names + tuple(functions)
    setup = _Setup(
        config, names, functions, bool(config.market.event_log if event_log is None else event_log), periods
    )
    n_policies = len(names)
    n_customers = config.population.customers
    work = [
        (replication, policy)
        for replication in range(config.run.replications)
        for policy in range(n_policies)
    ]
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
        customers_frame, market_frame = _finish(
            market,
            current.clv,
            current.money[0],
            current.ended_at[0],
            current.occupancy[0],
            current.pattern_count[0],
            current.pattern_clv[0],
        )
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
    projection = ProjectionResult.from_partials(
        _NamedConfig(config, names), partials, wall_seconds=elapsed, threads=1
    )
    base = {item.name: getattr(projection, item.name) for item in fields(ProjectionResult)}
    base["config"] = config
    base["timings"] = {
        "simulate_seconds": elapsed,
        "engine": "abm",
        "customer_periods": int(sum(frame["live"].sum() for frame in market_frames)),
    }
    events = (
        pd.concat(event_frames, ignore_index=True)
        if event_frames
        else pd.DataFrame(
            {
                column: pd.Series(dtype=dtype)
                for column, dtype in zip(
                    _EVENT_COLUMNS, (object, np.int64, float, np.int64, object, object, float)
                )
            }
        )
    )
    return MarketResult(
        **base,
        market=pd.concat(market_frames, ignore_index=True),
        customers=pd.concat(customer_frames, ignore_index=True),
        events=events,
        snapshots=snapshots,
    )


def _pair_partials(partials: ChunkPartials) -> None:
    """Paired per-customer differences between policies (common random numbers), as the
    core's kernel accumulates them.
    """
    clv = partials.clv
    n_policies = clv.shape[0]
    for policy in range(n_policies):
        for other in range(n_policies):
            if policy != other:
                difference = clv[policy] - clv[other]
                partials.pair_sums[0, policy, other, 0] = difference.sum()
                partials.pair_sums[0, policy, other, 1] = (difference * difference).sum()
                partials.pair_wins[0, policy, other] = int((difference > 0.0).sum())
