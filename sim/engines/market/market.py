"""One market: a SimPy environment holding one policy's customers in one replication, with the
firm's review and the interaction processes (complaints, word of mouth, acquisition,
competitor).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import simpy

from sim.engines.market.budget import CustomerState, allocate_budget, poisson_count
from sim.engines.market.state import (
    _STATE_NAMES,
    AGENT_DTYPE,
    COUNTS_DTYPE,
    MARKET_STREAM_CUSTOMER,
    N_R,
    ORIGIN_ACQUISITION,
    ORIGIN_COHORT,
    ORIGIN_WORD_OF_MOUTH,
    R_COMPLAINTS,
    R_PURCHASES,
    R_WORD_OF_MOUTH,
    _arrival_times,
    _close_period,
    _init_agent,
    _stream_exponential,
    _stream_uniform,
)
from sim.exceptions import NonFiniteResultError
from sim.model import streams
from sim.model.arrays import model_arrays
from sim.model.config import ExperimentConfig, market_servers
from sim.model.names import DECLINE, ENDED
from sim.model.policies import policy_tables
from sim.model.sections import MAX_MAGNITUDE
from sim.model.streams import COMPONENT_ACQUISITION
from sim.tables.partials import ChunkPartials
from sim.tables.result import NONFINITE_HINT


class _Setup:
    """Everything shared by the markets of one call: config, model arrays, spend tables,
    policy functions and the initial cohort's size.
    """

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
        self.acquisition_rate = (
            acquisition.prospects_per_1000 * scale + self.acquisition_spend * acquisition.prospects_per_spend
        )
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
        (enabled, and the policy listed in its ``policies`` or the list empty).
        """
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
        self.market_spend = (setup.capacity_spend if self.capacity_on else 0.0) + (
            setup.acquisition_spend if self.acquisition_on else 0.0
        )
        capacity = max(setup.customers + 64, 256)
        self.agents = np.zeros(capacity, dtype=AGENT_DTYPE)
        self.streams = np.zeros((capacity, N_R), dtype=np.uint64)
        self.alive = np.zeros(capacity, dtype=bool)
        self.n = 0
        self.period = 0
        self.exit_factor = np.ones(2)
        self.competitor_present = False
        self.counts = np.zeros(self.horizon, dtype=COUNTS_DTYPE)
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
        size = 2 * self.agents.shape[0]
        for name in ("agents", "streams"):
            old = getattr(self, name)
            new = np.zeros((size,) + old.shape[1:], dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        alive = np.zeros(size, dtype=bool)
        alive[: self.n] = self.alive[: self.n]
        self.alive = alive
        self._bind()

    def _bind(self) -> None:
        """The step kernel's arguments after ``(agent, period)``, bound once (and again when
        the state arrays grow or the market state changes).
        """
        partials = self.partials
        arrays = self.setup.arrays
        talk_probability = self.setup.talk_probability if self.wom_on else 0.0
        self.kernel_arguments = (
            self.policy,
            self.agents,
            self.streams,
            self.exit_factor,
            self.book_referral,
            talk_probability,
            arrays.stage,
            arrays.segment,
            arrays.referral,
            arrays.scalars,
            partials.stage_sums,
            partials.stage_periods,
            partials.period_sums,
            partials.occupancy,
            partials.satisfaction_bins,
            self.counts,
        )

    def _add_agent(self, origin: int, referrer: int, period: int) -> int:
        if self.n == self.agents.shape[0]:
            self._grow()
        agent = self.n
        arrays = self.setup.arrays
        _init_agent(
            agent,
            self.seed64,
            self.replication64,
            origin,
            referrer,
            period,
            self.agents,
            self.streams,
            arrays.segment,
            arrays.scalars,
        )
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
            old_stage = int(self.agents["stage"][agent])
        new_stage, kind, talked = _close_period(agent, period, *self.kernel_arguments)
        satisfaction = self.agents["satisfaction"][agent]
        if not math.isfinite(satisfaction):
            raise NonFiniteResultError(
                f"satisfaction of customer {agent} is {satisfaction} after period {period} (policy "
                f"{self.setup.names[self.policy]!r}, replication {self.replication}); {NONFINITE_HINT}"
            )
        if new_stage == ENDED:
            self.alive[agent] = False
            if self.capacity_on and agent in self.queued:  # a customer who left withdraws its complaint
                self.queued.pop(agent).cancel()
        if log is not None and new_stage != old_stage:
            event = {(0, 1): "advanced", (1, 2): "advanced", (3, 1): "won_back"}.get((old_stage, new_stage))
            if event is None:
                event = "ended" if new_stage == ENDED else "declined"
            log.append(
                (
                    self.env.now,
                    agent,
                    event,
                    _STATE_NAMES[new_stage],
                    float(self.agents["satisfaction"][agent]),
                )
            )
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
            row["joined_acquisition" if origin == ORIGIN_ACQUISITION else "joined_word_of_mouth"] += 1
            row["acquisition_cost"] += self.agents["acquisition"][agent]
        self.pending = []
        self.exit_factor[:] = setup.competitor_factor if self.competitor_present else 1.0
        row["competitor"] = float(self.competitor_present)
        row["servers"] = self.servers
        row["budget"] = self.budget
        row["market_spend"] = self.market_spend
        if period in setup.snapshot_periods:
            self._snapshot(period)
        live = np.flatnonzero(self.alive[: self.n])
        if live.size == 0:
            return
        agents = self.agents
        stage = agents["stage"][live]
        segment = agents["segment"][live]
        tier = agents["tier"][live]
        satisfaction = agents["satisfaction"][live]
        previous = agents["previous_satisfaction"][live]
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
            joined = agents["joined"][live]
            wallet = agents["wallet"][live]
            wishes = np.empty(live.size)
            for index, agent in enumerate(live.tolist()):
                state = CustomerState(
                    agent,
                    int(segment[index]),
                    int(tier[index]),
                    float(wallet[index]),
                    int(stage[index]),
                    float(satisfaction[index]),
                    float(previous[index]),
                    period - int(joined[index]),
                    period,
                )
                try:
                    value = function(state)
                except Exception as error:
                    raise RuntimeError(
                        f"policy function {name!r} raised {type(error).__name__}: {error} for customer "
                        f"{agent} "
                        f"in period {period} (replication {self.replication})"
                    ) from error
                wishes[index] = _checked_spend(value, name, agent, period)
        row["wished"] = wishes.sum()
        granted = wishes
        if self.budget < math.inf:
            granted = allocate_budget(
                wishes, tier, stage, satisfaction, self.budget, setup.market.budget.stage_priority
            )
        agents["spend"][live] = granted

    def _snapshot(self, period: int) -> None:
        live = np.flatnonzero(self.alive[: self.n])
        agents = self.agents
        self.snapshots[period] = {
            "customer": live.astype(np.int64),
            "segment": agents["segment"][live].copy(),
            "wallet": agents["wallet"][live].copy(),
            "fit": agents["fit"][live].copy(),
            "tier": agents["tier"][live].copy(),
            "stage": agents["stage"][live].copy(),
            "satisfaction": agents["satisfaction"][live].copy(),
            "previous_satisfaction": agents["previous_satisfaction"][live].copy(),
            "expectation": agents["expectation"][live].copy(),
            "tenure": period - agents["joined"][live],
            "highest_stage": agents["highest_stage"][live].copy(),
            "propensity": agents["propensity"][live].copy(),
        }

    # ----------------------------------------------------------------- event timing: purchases

    def _schedule_purchases(self, agent: int) -> None:
        """Poisson purchases within the coming period (rate by stage); each books an equal
        share of the period's expected purchase cash flow, so the step scales it by N / rate.
        """
        rate = self.setup.purchase_rate[self.agents["stage"][agent]]
        times = _arrival_times(self.streams, agent, R_PURCHASES, rate)
        timeout = self.env.timeout
        for elapsed in times.tolist():
            timeout(elapsed).callbacks.append(lambda event, agent=agent: self._purchase(agent))
        self.agents["purchase_factor"][agent] = len(times) / rate

    def _purchase(self, agent: int) -> None:
        self.counts["purchases"][self.period] += 1
        if self.log is not None:
            self.log.append(
                (
                    self.env.now,
                    agent,
                    "purchase",
                    _STATE_NAMES[self.agents["stage"][agent]],
                    float(self.agents["satisfaction"][agent]),
                )
            )

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
        self.agents["performance_shift"][agent] = self.setup.market.capacity.wait_penalty * wait

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
        self.counts["complaints"][self.period] += 1
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
        row["served"] += 1
        row["wait"] += env.now - raised
        self._log_agent(agent, "complaint_served")
        yield env.timeout(service)
        self.resource.release(request)
        self.complaint_open[agent] = False

    def _log_agent(self, agent: int, event: str) -> None:
        if self.log is not None:
            self.log.append(
                (
                    self.env.now,
                    agent,
                    event,
                    _STATE_NAMES[self.agents["stage"][agent]],
                    float(self.agents["satisfaction"][agent]),
                )
            )

    # ----------------------------------------------------------------- word of mouth and arrivals

    def _talk(self, agent: int, kind: int) -> None:
        """Word of mouth after a period in which the customer talked (decided in the step):
        it wins (or deters) Poisson(people_told * |influence|) prospects of its satisfaction
        type; won prospects arrive at uniform times within the next period.
        """
        setup = self.setup
        streams = self.streams
        count = poisson_count(setup.wom_means[kind], lambda: _stream_uniform(streams, agent, R_WORD_OF_MOUTH))
        self._log_agent(agent, "talked")
        if count == 0:
            return
        sign = setup.wom_sign[kind]
        if sign > 0:
            self.counts["prospects_won"][self.period] += count
            for _ in range(count):
                delay = _stream_uniform(streams, agent, R_WORD_OF_MOUTH)
                self.env.timeout(delay).callbacks.append(
                    lambda event, agent=agent: self._arrive(ORIGIN_WORD_OF_MOUTH, agent)
                )
        elif sign < 0:
            self.deterrers.extend([agent] * count)

    def _arrive(self, origin: int, referrer: int) -> None:
        """A prospect arrives: cancelled by a deterring word of mouth if one is pending,
        else it joins at the next review (if there is one and the market has room).
        """
        if self.env.now > self.horizon - 1:
            return
        if self.deterrers:
            deterrer = self.deterrers.popleft()
            self.cancelled.append((deterrer, self.period + 1))
            self.counts["deterred"][self.period] += 1
            if self.log is not None:
                self.log.append(
                    (
                        self.env.now,
                        deterrer,
                        "deterred",
                        _STATE_NAMES[self.agents["stage"][deterrer]],
                        float(self.agents["satisfaction"][deterrer]),
                    )
                )
            return
        if self.n + len(self.pending) >= self.setup.market.max_customers:
            self.counts["turned_away"][self.period] += 1
            return
        self.pending.append((origin, referrer))

    def _acquisition(self):
        """Prospects arriving as a Poisson process (organic plus acquisition spend). Stops
        once the market is full (``market.max_customers`` customers, ended ones included,
        and prospects waiting to join): nobody can join any more, since ``n`` never falls.
        """
        rate = self.setup.acquisition_rate
        if not self.acquisition_on or rate <= 0.0:
            return
        stream = streams.CustomerStream(
            self.setup.seed, self.replication, MARKET_STREAM_CUSTOMER, COMPONENT_ACQUISITION
        )
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
        self.counts["acquisition_cost"][0] += self.agents["acquisition"][: self.n].sum()
        if self.acquisition_on:
            self.env.process(self._acquisition())
        self.env.run(until=self.horizon + 0.5)


_SPEND_RULE = (
    f"a spend must be a finite number >= 0 and <= {MAX_MAGNITUDE:g} (sim.model.sections.MAX_MAGNITUDE)"
)


def _checked_spend(value, name: str, agent: int, period: int) -> float:
    try:
        spend = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"policy function {name!r} returned {value!r} for customer {agent} in period {period}; "
            f"{_SPEND_RULE}"
        ) from None
    if not (math.isfinite(spend) and 0.0 <= spend <= MAX_MAGNITUDE):
        raise ValueError(
            f"policy function {name!r} returned {spend!r} for customer {agent} in period {period}; "
            f"{_SPEND_RULE}"
        )
    return spend
