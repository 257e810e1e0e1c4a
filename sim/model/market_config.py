"""The ``[market]`` section: the interactions only the SimPy agent engine simulates (a shared
retention budget, service capacity, word of mouth that creates customers, acquisition as
an arrival process, a competitor), each off by default (``docs/model.md`` §9), and their
cross-field checks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from sim.model.names import STAGES
from sim.model.sections import NonNegative, Positive, Probability, SegmentValues, StageNonNegative, _Frozen

__all__ = [
    "MAX_MARKET_CUSTOMERS",
    "AGENT_BYTES_PER_CUSTOMER",
    "MAX_PURCHASE_RATE",
    "MAX_PROSPECTS_PER_CUSTOMER",
    "MarketBudgetConfig",
    "MarketCapacityConfig",
    "MarketWordOfMouthConfig",
    "MarketAcquisitionConfig",
    "MarketCompetitorConfig",
    "MarketConfig",
]

#: Largest ``market.max_customers``.
MAX_MARKET_CUSTOMERS = 100_000_000


#: Memory of one agent of the agent engine (its state arrays), bytes.
AGENT_BYTES_PER_CUSTOMER = 321


#: Most purchases per period per customer under ``market.timing = "event"`` (each purchase
#: is a simulated event, so the rate bounds the work per customer-period).
MAX_PURCHASE_RATE = 1_000.0


#: Most acquisition prospects per period per customer of the initial cohort
#: (``prospects_per_1000 / 1000 + spend_per_customer * prospects_per_spend``); each
#: prospect is a simulated arrival, so this bounds the work per period.
MAX_PROSPECTS_PER_CUSTOMER = 1.0


class MarketBudgetConfig(_Frozen):
    """A retention budget per period shared by all customers (agent engine only).

    When the policy's wishes of a period add up to more than the budget, the firm grants
    them in a fixed priority order until the budget is used up (the marginal customer gets
    the remainder): by ABC value tier (A first), then by stage in ``stage_priority`` order,
    then lowest satisfaction first, then lowest customer id. This couples customers: one
    customer's spend depends on everyone else's state (:func:`sim.engines.market.budget.allocate_budget`).
    """

    enabled: bool = Field(False, description="cap the total retention spend of each period")
    policies: tuple[str, ...] = Field(
        (), strict=False, description="policies whose markets have this interaction (empty: every policy)"
    )
    per_customer: NonNegative = Field(
        1.0,
        description="budget per period per customer of the initial cohort, money units "
        "(total = per_customer * population.customers, so --customers keeps its meaning)",
    )
    stage_priority: tuple[Literal["exploration", "formation", "stability", "decline"], ...] = Field(
        ("decline", "formation", "exploration", "stability"),
        strict=False,
        description="order in which stages are served within a value tier (all four stages, each once)",
    )

    @field_validator("stage_priority")
    @classmethod
    def _a_permutation(cls, order: tuple) -> tuple:
        if sorted(order) != sorted(STAGES):
            raise ValueError(
                f"stage_priority must list each of {list(STAGES)} exactly once; got {list(order)}"
            )
        return order


class MarketCapacityConfig(_Frozen):
    """Finite service capacity (agent engine only).

    A customer left dissatisfied by a period (satisfaction type 0 of (M3)) raises a
    complaint during the next period with probability ``complaint_probability`` (at most
    one open complaint each), at a uniform time within the period. Complaints queue first
    come first served at a ``simpy.Resource`` with ``servers`` servers; service takes an
    exponential time of mean ``service_time`` periods. The time a customer's complaint
    spends waiting within a period lowers that period's perceived performance (M2) by
    ``wait_penalty`` per period waited. Capacity can be bought: ``spend_per_customer``
    (per cohort customer per period) buys ``floor(total / server_cost)`` extra servers.
    """

    enabled: bool = Field(False, description="complaints queue for finite service capacity")
    policies: tuple[str, ...] = Field(
        (), strict=False, description="policies whose markets have this interaction (empty: every policy)"
    )
    servers_per_1000: NonNegative = Field(
        2.0, description="servers per 1,000 customers of the initial cohort (rounded, at least 1 in all)"
    )
    spend_per_customer: NonNegative = Field(
        0.0, description="capacity spend per period per cohort customer, money units (buys extra servers)"
    )
    server_cost: Positive = Field(400.0, description="cost of one extra server per period, money units")
    complaint_probability: Probability = Field(
        0.5, description="chance that a dissatisfied customer complains in the next period"
    )
    service_time: Positive = Field(
        0.02, description="mean service time of a complaint, periods (exponential)"
    )
    wait_penalty: NonNegative = Field(
        2.0, description="perceived performance lost per period a complaint waits (M2)"
    )


class MarketWordOfMouthConfig(_Frozen):
    """Word of mouth that creates real agents (agent engine only).

    Uses the ``[word_of_mouth]`` parameters: after each period a customer talks with
    probability ``talk_probability``; a customer of satisfaction type *k* then wins
    (``influence > 0``) or deters (``influence < 0``) a Poisson number of prospects with
    mean ``people_told[k] * |influence[k]|``. Won prospects arrive within the next period
    and join in exploration at the next review; deterred ones cancel the next arrivals.
    The expected referral value (C5) is then no longer booked: CLV5 is the observed value
    of the customers won, minus that of the prospects deterred (:mod:`sim.engines.market.engine`).
    """

    enabled: bool = Field(False, description="word of mouth brings real new customers (and deters prospects)")
    policies: tuple[str, ...] = Field(
        (), strict=False, description="policies whose markets have this interaction (empty: every policy)"
    )


class MarketAcquisitionConfig(_Frozen):
    """Acquisition as an arrival process (agent engine only).

    Prospects arrive as a Poisson process with rate ``prospects_per_1000 * customers / 1000
    + spend * prospects_per_spend`` per period (``spend = spend_per_customer * customers``,
    a firm cost per period) and join in exploration at the next review, paying the
    acquisition cost of their segment like every new customer. The rate per cohort
    customer, ``prospects_per_1000 / 1000 + spend_per_customer * prospects_per_spend``,
    must be at most :data:`MAX_PROSPECTS_PER_CUSTOMER` (1 prospect per period per cohort
    customer): every prospect is a simulated arrival. Once the market holds
    ``market.max_customers`` customers nobody more can join, and the arrival process stops.
    """

    enabled: bool = Field(False, description="prospects arrive over time, driven by acquisition spend")
    policies: tuple[str, ...] = Field(
        (), strict=False, description="policies whose markets have this interaction (empty: every policy)"
    )
    prospects_per_1000: NonNegative = Field(
        5.0,
        description="organic prospects per period per 1,000 cohort customers (with the spend-driven ones "
        "at most 1,000: see MAX_PROSPECTS_PER_CUSTOMER)",
    )
    spend_per_customer: NonNegative = Field(
        0.0, description="acquisition spend per period per cohort customer, money units"
    )
    prospects_per_spend: NonNegative = Field(
        0.01, description="extra prospects per period per money unit of acquisition spend"
    )

    @model_validator(mode="after")
    def _bounded_arrivals(self) -> "MarketAcquisitionConfig":
        per_customer = self.prospects_per_1000 / 1000.0 + self.spend_per_customer * self.prospects_per_spend
        if per_customer > MAX_PROSPECTS_PER_CUSTOMER:
            raise ValueError(
                f"prospects_per_1000 / 1000 + spend_per_customer * prospects_per_spend = {per_customer:g} "
                "prospects "
                f"per period per cohort customer must be <= {MAX_PROSPECTS_PER_CUSTOMER:g} (each prospect "
                "is a "
                f"simulated arrival); got prospects_per_1000 = {self.prospects_per_1000:g}, "
                "spend_per_customer = "
                f"{self.spend_per_customer:g}, prospects_per_spend = {self.prospects_per_spend:g}"
            )
        return self


class MarketCompetitorConfig(_Frozen):
    """A competitor entering (and optionally leaving) the market (agent engine only).

    While the competitor is present, the exit odds of (M7) (exits from exploration,
    formation and stability, and churn from decline) are multiplied by ``exit_odds`` of
    the customer's segment: transactional customers, who switch for price, more than
    relationship customers (docs/model.md §9.2).
    """

    enabled: bool = Field(False, description="a competitor enters at enters_at")
    policies: tuple[str, ...] = Field(
        (), strict=False, description="policies whose markets have this interaction (empty: every policy)"
    )
    enters_at: int = Field(24, ge=0, le=100_000, description="period from which the competitor is present")
    leaves_at: int | None = Field(
        None, ge=1, le=100_000, description="period from which it is gone again (omit: stays)"
    )
    exit_odds: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=1.25, transactional=2.0),
        description="multiplier on the exit odds while the competitor is present, by segment",
    )

    @model_validator(mode="after")
    def _leaves_after_entering(self) -> "MarketCompetitorConfig":
        if self.leaves_at is not None and self.leaves_at <= self.enters_at:
            raise ValueError(f"leaves_at ({self.leaves_at}) must be > enters_at ({self.enters_at})")
        if min(self.exit_odds.as_tuple()) <= 0.0:
            raise ValueError(f"exit_odds must be > 0 for both segments; got {self.exit_odds.as_tuple()}")
        return self


class MarketConfig(_Frozen):
    """The agent-based market engine (:func:`sim.simulate_market`, ``engine = "abm"``).

    Every interaction is off by default; with all of them off and ``timing = "period"`` the
    agent engine simulates exactly the model of the cohort core, customer for customer.
    Each policy runs in its own market, so each interaction section has ``enabled`` and
    ``policies`` (the policies whose markets have the interaction; empty: all of them): one
    run can compare a policy with and without an interaction on the same customers.
    Market-level quantities (budget, servers, acquisition) scale with
    ``population.customers``, the size of the initial cohort.
    """

    timing: Literal["period", "event"] = Field(
        "period",
        description="'period': each customer's period resolves at its end; 'event': purchases "
        "also arrive as Poisson events within the period at purchase_rate",
    )
    purchase_rate: StageNonNegative = Field(
        default_factory=lambda: StageNonNegative(exploration=1.0, formation=2.0, stability=4.0, decline=1.5),
        description="purchases per period by stage, each > 0 and <= 1000 ('event' timing; each carries "
        "an equal "
        "share of the period's expected purchase cash flow, C1/C2)",
    )
    event_log: bool = Field(
        False, description="keep the event log (time, customer, event, stage, satisfaction)"
    )
    snapshot_every: int = Field(
        12,
        ge=0,
        le=100_000,
        description="keep a snapshot of all live customers every this many periods (0: only at the horizon)",
    )
    max_customers: int = Field(
        1_000_000,
        ge=1,
        le=MAX_MARKET_CUSTOMERS,
        description="most customers one market may hold, ended ones included (word-of-mouth arrivals beyond "
        "are turned away and counted; the acquisition process stops once it is reached)",
    )
    budget: MarketBudgetConfig = Field(default_factory=MarketBudgetConfig)
    capacity: MarketCapacityConfig = Field(default_factory=MarketCapacityConfig)
    word_of_mouth: MarketWordOfMouthConfig = Field(default_factory=MarketWordOfMouthConfig)
    acquisition: MarketAcquisitionConfig = Field(default_factory=MarketAcquisitionConfig)
    competitor: MarketCompetitorConfig = Field(default_factory=MarketCompetitorConfig)

    @field_validator("purchase_rate")
    @classmethod
    def _positive_rates(cls, rates: StageNonNegative) -> StageNonNegative:
        zero = [stage for stage, rate in zip(STAGES, rates.as_tuple()) if rate <= 0.0]
        if zero:
            raise ValueError(f"purchase_rate must be > 0 in every stage; zero for {zero}")
        high = [
            f"{stage} = {rate:g}" for stage, rate in zip(STAGES, rates.as_tuple()) if rate > MAX_PURCHASE_RATE
        ]
        if high:
            raise ValueError(
                f"purchase_rate must be <= {MAX_PURCHASE_RATE:g} purchases per period in every stage "
                f"(each purchase is a simulated event); got {', '.join(high)}"
            )
        return rates

    @property
    def interactions(self) -> tuple[str, ...]:
        """Names of the interactions switched on."""
        return tuple(
            name
            for name in ("budget", "capacity", "word_of_mouth", "acquisition", "competitor")
            if getattr(self, name).enabled
        )
