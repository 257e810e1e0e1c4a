"""Experiment configuration: TOML in, frozen and validated objects out.

Every parameter of the lifecycle model lives here, with its meaning, its unit and its
allowed range. :func:`load_config` reads a TOML file; :func:`config_from_dict` validates a
mapping. Both raise :class:`ConfigError` before any simulation work starts, with one line
per problem naming the TOML path of the field, the value given and what is allowed:

>>> config_from_dict({"population": {"relationship_share": 1.4}})   # doctest: +SKIP
ConfigError: 1 problem in the configuration:
  population.relationship_share = 1.4: must be <= 1 (a probability in [0, 1])

The model the parameters drive is documented in :mod:`sim.model.equations`.
"""

from __future__ import annotations

from sim.exceptions import ConfigError
import difflib
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ConfigError",
    "STAGES",
    "SEGMENTS",
    "TIERS",
    "SATISFACTION_TYPES",
    "PATTERNS",
    "StageValues",
    "SegmentValues",
    "ChurnPropensity",
    "PopulationConfig",
    "DynamicsConfig",
    "LoyaltyConfig",
    "TransitionConfig",
    "WordOfMouthConfig",
    "EconomicsConfig",
    "RunConfig",
    "MarketConfig",
    "ComparisonConfig",
    "PrecisionConfig",
    "OptimizeConfig",
    "PolicyConfig",
    "ExperimentConfig",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "sweep_grid",
    "MAX_MAGNITUDE",
    "MIN_CARE_SCALE",
]

#: The four lifecycle stages, in the only order a relationship may pass them (MODEL.md §1).
STAGES: tuple[str, ...] = ("exploration", "formation", "stability", "decline")
#: The customer segments (MODEL.md §3).
SEGMENTS: tuple[str, ...] = ("relationship", "transactional")
#: ABC value tiers, from the predicted value (wallet size): top 5 %, next 15 %, bottom 80 %.
TIERS: tuple[str, ...] = ("A", "B", "C")
#: Satisfaction types from the comparison of perceived performance Q1 with expectation Q0.
SATISFACTION_TYPES: tuple[str, ...] = ("dissatisfied", "satisfied", "highly_satisfied")
#: Lifecycle patterns of a finished trajectory (MODEL.md §1).
PATTERNS: tuple[str, ...] = ("I", "II", "III", "IV")


# --------------------------------------------------------------------------- building blocks


class _Frozen(BaseModel):
    """Base for config sections: immutable, unknown keys rejected, strict-ish types."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False)


#: Largest magnitude of any real number in a configuration (money per period, multipliers,
#: effect sizes): far beyond any real business, and small enough that every intermediate
#: value of the model stays finite in float64 (tests/test_robustness.py runs the model at
#: the corners of the allowed ranges: the largest intermediates, the squared care ratio of
#: (M1) and the CLV sums of squares, stay below 1e125; bounds near 1e45 could overflow).
MAX_MAGNITUDE = 1e12
#: Smallest ``dynamics.care_scale`` (money units): keeps ``spend / care_scale`` and its
#: square (M1) finite for every allowed spend.
MIN_CARE_SCALE = 1e-9

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0, le=MAX_MAGNITUDE)]
Positive = Annotated[float, Field(gt=0.0, le=MAX_MAGNITUDE)]
Real = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]


class StageValues(_Frozen):
    """One number per lifecycle stage (exploration, formation, stability, decline)."""

    exploration: Real = 0.0
    formation: Real = 0.0
    stability: Real = 0.0
    decline: Real = 0.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        """The values in stage order."""
        return (self.exploration, self.formation, self.stability, self.decline)


class StageProbabilities(StageValues):
    """One probability in [0, 1] per lifecycle stage."""

    exploration: Probability = 0.0
    formation: Probability = 0.0
    stability: Probability = 0.0
    decline: Probability = 0.0


class StageNonNegative(StageValues):
    """One non-negative number per lifecycle stage."""

    exploration: NonNegative = 0.0
    formation: NonNegative = 0.0
    stability: NonNegative = 0.0
    decline: NonNegative = 0.0


class SegmentValues(_Frozen):
    """One non-negative number per customer segment (relationship, transactional)."""

    relationship: NonNegative = 0.0
    transactional: NonNegative = 0.0

    def as_tuple(self) -> tuple[float, float]:
        """The values in segment order."""
        return (self.relationship, self.transactional)


class SatisfactionTypeValues(_Frozen):
    """One number per satisfaction type (dissatisfied, satisfied, highly_satisfied)."""

    dissatisfied: Real = 0.0
    satisfied: Real = 0.0
    highly_satisfied: Real = 0.0

    def as_tuple(self) -> tuple[float, float, float]:
        """The values in satisfaction-type order."""
        return (self.dissatisfied, self.satisfied, self.highly_satisfied)


# --------------------------------------------------------------------------- model sections


class ChurnPropensity(_Frozen):
    """Beta-distributed churn propensity (Fader & Hardie 2007, shifted-beta-geometric).

    Each customer draws ``theta ~ Beta(alpha, beta)`` once; every period, after the
    period's cash flows and before the stage transition, the relationship ends with
    probability ``theta`` (an exit for reasons outside the relationship: moving, changed
    needs). With all stage exits at 0 the cohort's survival is exactly sBG:
    ``S(t) = B(alpha, beta + t) / B(alpha, beta)``.
    """

    alpha: Annotated[float, Field(gt=0.0, le=1e6)]
    beta: Annotated[float, Field(gt=0.0, le=1e6)]


class PopulationConfig(_Frozen):
    """Who the customers are (MODEL.md §3).

    Wallet size (the customer's spend capacity in the category per period) is lognormal,
    ``wallet = wallet_median * exp(wallet_sigma * Z)``; a log-sd near 1.6 puts about half
    of all wallet in the top 5 % of customers, the ABC rule of thumb.
    """

    customers: int = Field(20_000, ge=1, le=1_000_000_000, description="cohort size acquired at period 0")
    relationship_share: Probability = Field(0.45, description="share of relationship customers; the rest are transactional")
    wallet_median: Positive = Field(100.0, description="median wallet per period, money units")
    wallet_sigma: float = Field(1.0, ge=0.0, le=4.0, description="log-sd of the lognormal wallet")
    churn_propensity: ChurnPropensity | None = Field(
        None, description="optional Beta-heterogeneous churn propensity (absent: no such churn)"
    )


class DynamicsConfig(_Frozen):
    """Perceived performance, expectations and satisfaction (MODEL.md §2, seed 004).

    See :mod:`sim.model.equations` for the equations (M1)-(M5) these parameters enter.
    """

    base_performance: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=0.3, transactional=0.2),
        description="mean perceived performance of product and service without care spend",
    )
    performance_fit_sd: NonNegative = Field(0.3, description="sd of a customer's persistent fit with the offer")
    performance_noise: NonNegative = Field(0.4, description="sd of the period-to-period noise in perceived performance")
    initial_expectation: Real = Field(0.3, description="expectation Q0 when the relationship starts")
    expectation_adaptation: Probability = Field(0.1, description="share of the gap Q1-Q0 closed by expectations each period")
    expectation_anchor: Probability = Field(0.5, description="weight of the initial expectation in the level expectations adapt to")
    satisfaction_memory: Probability = Field(0.5, description="weight of last period's satisfaction in this period's")
    satisfaction_scale: Positive = Field(0.3, description="disconfirmation that moves satisfaction from 0.5 to 0.73")
    satisfaction_tolerance: NonNegative = Field(0.3, description="|Q1-Q0| within which a customer is 'satisfied' rather than dis- or highly satisfied")
    care_gain: NonNegative = Field(1.0, description="largest gain in perceived performance from care spend (diminishing returns)")
    care_scale: float = Field(4.0, ge=MIN_CARE_SCALE, le=MAX_MAGNITUDE, description="spend per period at which 63 % of the care gain is reached, money units")
    annoyance: NonNegative = Field(0.06, description="loss of perceived performance per (spend/care_scale)^2 from over-contact")
    stage_effectiveness: StageNonNegative = Field(
        default_factory=lambda: StageNonNegative(exploration=0.7, formation=1.0, stability=0.4, decline=0.8),
        description="how strongly care spend reaches perceived performance in each stage",
    )


class LoyaltyConfig(_Frozen):
    """The satisfaction -> loyalty curve (Jones & Sasser zones; MODEL.md §2).

    Piecewise linear through (0, 0), (defection_threshold, indifference_low),
    (affection_threshold, indifference_high), (1, 1): steep in the zone of defection, nearly
    flat in the zone of indifference, steep again in the zone of affection.
    """

    defection_threshold: Probability = Field(0.35, description="satisfaction below which loyalty collapses")
    affection_threshold: Probability = Field(0.75, description="satisfaction above which loyalty rises steeply")
    indifference_low: Probability = Field(0.38, description="loyalty at the defection threshold")
    indifference_high: Probability = Field(0.42, description="loyalty at the affection threshold")

    @model_validator(mode="after")
    def _zones_ordered(self) -> "LoyaltyConfig":
        if not 0.0 < self.defection_threshold < self.affection_threshold < 1.0:
            raise ValueError(
                f"defection_threshold ({self.defection_threshold}) must be < affection_threshold "
                f"({self.affection_threshold}), both strictly inside (0, 1)"
            )
        if self.indifference_low > self.indifference_high:
            raise ValueError(
                f"indifference_low ({self.indifference_low}) must be <= indifference_high ({self.indifference_high})"
            )
        return self


class TransitionConfig(_Frozen):
    """Stage transitions: no skipping; decline ends in churn or win-back (MODEL.md §1).

    Per period, from each stage (probabilities at neutral loyalty, before the loyalty and
    segment adjustments of :func:`sim.model.equations.transition_probabilities`):

    - exploration -> formation (``advance.exploration``) or -> ended (``exit.exploration``);
    - formation -> stability (``advance.formation``) or -> decline (``exit.formation``);
    - stability -> decline (``exit.stability``);
    - decline -> ended (``churn``) or -> formation (``win_back``).
    """

    advance: StageProbabilities = Field(
        default_factory=lambda: StageProbabilities(exploration=0.25, formation=0.10),
        description="probability of moving one stage forward (exploration and formation only)",
    )
    exit: StageProbabilities = Field(
        default_factory=lambda: StageProbabilities(exploration=0.04, formation=0.03, stability=0.015),
        description="probability of leaving: exploration -> ended, formation/stability -> decline",
    )
    churn: Probability = Field(0.20, description="decline -> ended")
    win_back: Probability = Field(0.10, description="decline -> formation")
    loyalty_effect_advance: NonNegative = Field(4.0, description="log-odds change of advancing/win-back per unit of loyalty above neutral")
    loyalty_effect_exit: NonNegative = Field(6.0, description="log-odds change of exit/churn per unit of loyalty below neutral")
    exit_odds: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=1.0, transactional=2.0),
        description="odds multiplier on exit and churn by segment (transactional customers switch more)",
    )
    long_term_periods: int = Field(36, ge=1, le=1_000_000, description="tenure that makes a stability relationship 'long-term' (pattern IV)")

    @field_validator("advance")
    @classmethod
    def _advance_only_where_possible(cls, advance: StageProbabilities) -> StageProbabilities:
        if advance.stability != 0.0 or advance.decline != 0.0:
            raise ValueError(
                "advance.stability and advance.decline must be 0: stability is the last stage, "
                "and decline returns only through win_back"
            )
        return advance

    @field_validator("exit")
    @classmethod
    def _no_exit_from_decline(cls, exit_: StageProbabilities) -> StageProbabilities:
        if exit_.decline != 0.0:
            raise ValueError("exit.decline must be 0: leaving decline is set by churn")
        return exit_

    @model_validator(mode="after")
    def _competing_moves_fit(self) -> "TransitionConfig":
        problems = []
        for stage in ("exploration", "formation"):
            total = getattr(self.advance, stage) + getattr(self.exit, stage)
            if total > 1.0:
                problems.append(f"advance.{stage} + exit.{stage} = {total:g} must be <= 1")
        if self.churn + self.win_back > 1.0:
            problems.append(f"churn + win_back = {self.churn + self.win_back:g} must be <= 1")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class WordOfMouthConfig(_Frozen):
    """Referral value from word of mouth, CLV5 (MODEL.md §2, seed 004).

    Each period a customer talks with probability ``talk_probability`` to
    ``people_told[type]`` people; each person told becomes a new customer (positive
    ``influence``) or is deterred (negative) with the given expected count, valued at
    ``referral_value`` per customer won or lost.
    """

    people_told: SatisfactionTypeValues = Field(
        default_factory=lambda: SatisfactionTypeValues(dissatisfied=22.0, satisfied=8.0, highly_satisfied=12.0)
    )
    influence: SatisfactionTypeValues = Field(
        default_factory=lambda: SatisfactionTypeValues(dissatisfied=-0.02, satisfied=0.005, highly_satisfied=0.03)
    )
    talk_probability: Probability = Field(0.05)
    referral_value: NonNegative = Field(40.0, description="value of one customer won (or lost) by word of mouth, money units")

    @field_validator("people_told")
    @classmethod
    def _counts_non_negative(cls, told: SatisfactionTypeValues) -> SatisfactionTypeValues:
        for name, value in zip(SATISFACTION_TYPES, told.as_tuple()):
            if value < 0:
                raise ValueError(f"people_told.{name} = {value} must be >= 0")
        return told


class EconomicsConfig(_Frozen):
    """Cash flows and the six CLV parts (MODEL.md §4); see :mod:`sim.model.equations` (C1)-(C6)."""

    period_months: float = Field(1.0, gt=0.0, le=12.0, description="length of one period in months")
    annual_discount_rate: float = Field(0.10, ge=0.0, le=1.0, description="yearly discount rate")
    margin: StageProbabilities = Field(
        default_factory=lambda: StageProbabilities(exploration=0.15, formation=0.25, stability=0.30, decline=0.20),
        description="gross margin rate on purchases by stage (trial discounts early)",
    )
    share_of_wallet: StageProbabilities = Field(
        default_factory=lambda: StageProbabilities(exploration=0.10, formation=0.25, stability=0.45, decline=0.15),
        description="share of the customer's wallet bought from the firm, by stage",
    )
    share_of_wallet_growth: NonNegative = Field(0.5, description="relative growth of share of wallet with tenure (saturating)")
    tenure_scale: Positive = Field(24.0, description="periods over which tenure effects build up (1 - exp(-tenure/scale))")
    cross_sell_share: StageProbabilities = Field(
        default_factory=lambda: StageProbabilities(exploration=0.0, formation=0.05, stability=0.15, decline=0.02),
        description="extra share of wallet from other products at full tenure, by stage",
    )
    cross_sell_margin: Probability = Field(0.30, description="margin rate on cross-sold products")
    cost_to_serve: NonNegative = Field(2.0, description="cost to serve a new customer per period, money units")
    cost_to_serve_floor: Probability = Field(0.4, description="long-tenure cost to serve as a share of the new-customer cost")
    price_premium: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=0.10, transactional=0.02),
        description="extra margin rate paid by fully loyal customers (less discounting)",
    )
    acquisition_cost: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=25.0, transactional=15.0),
        description="cost of acquiring the customer, paid at period 0",
    )

    @property
    def period_discount_rate(self) -> float:
        """Discount rate per period: ``(1 + annual)^(period_months / 12) - 1``."""
        return (1.0 + self.annual_discount_rate) ** (self.period_months / 12.0) - 1.0


# --------------------------------------------------------------------------- policies


class _PolicyBase(_Frozen):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""


class NonePolicy(_PolicyBase):
    """No retention spend at all."""

    kind: Literal["none"]


class UniformPolicy(_PolicyBase):
    """The same spend per period on every active customer."""

    kind: Literal["uniform"]
    spend: NonNegative


class StagePolicy(_PolicyBase):
    """Spend per period by lifecycle stage, scaled per segment."""

    kind: Literal["stage"]
    spend: StageNonNegative
    segment_multiplier: SegmentValues = Field(default_factory=lambda: SegmentValues(relationship=1.0, transactional=1.0))


class TablePolicy(_PolicyBase):
    """A full spend table: one spend per stage for each segment (user-defined policies)."""

    kind: Literal["table"]
    relationship: StageNonNegative
    transactional: StageNonNegative


class ValuePolicy(_PolicyBase):
    """ABC value-based spend: per tier (A top 5 %, B next 15 %, C rest of predicted value), scaled by stage."""

    kind: Literal["value"]
    tier_spend: dict[Literal["A", "B", "C"], NonNegative]
    stage_multiplier: StageNonNegative = Field(
        default_factory=lambda: StageNonNegative(exploration=1.0, formation=1.0, stability=1.0, decline=1.0)
    )

    @field_validator("tier_spend")
    @classmethod
    def _all_tiers(cls, tier_spend: dict[str, float]) -> dict[str, float]:
        missing = [tier for tier in TIERS if tier not in tier_spend]
        if missing:
            raise ValueError(f"tier_spend needs a spend for every tier A, B, C; missing {missing}")
        return tier_spend


class MaxSatisfactionPolicy(_PolicyBase):
    """'Maximise satisfaction for all': every customer, every stage, gets the spend that
    maximises perceived performance (the peak of the care response) — the satisfaction trap."""

    kind: Literal["max_satisfaction"]


class ReactivePolicy(_PolicyBase):
    """Reactive win-back: spend only on customers in decline or whose satisfaction dropped
    by more than ``satisfaction_drop`` since the previous period."""

    kind: Literal["reactive"]
    spend: NonNegative
    satisfaction_drop: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05


PolicyConfig = Annotated[
    Union[NonePolicy, UniformPolicy, StagePolicy, TablePolicy, ValuePolicy, MaxSatisfactionPolicy, ReactivePolicy],
    Field(discriminator="kind"),
]


def _default_policies() -> tuple:
    return (
        NonePolicy(name="none", kind="none"),
        UniformPolicy(name="uniform", kind="uniform", spend=2.0),
        StagePolicy(
            name="stage_based",
            kind="stage",
            spend=StageNonNegative(exploration=1.0, formation=4.0, stability=1.0, decline=3.0),
        ),
    )


# --------------------------------------------------------------------------- run + experiment


class RunConfig(_Frozen):
    """How much to simulate, and with which seed."""

    horizon: int = Field(120, ge=1, le=100_000, description="periods simulated per customer")
    replications: int = Field(2, ge=1, le=100_000, description="independent replications of the cohort")
    seed: int = Field(20261122, ge=0, le=2**63 - 1, description="master seed; same seed, same numbers")
    threads: int = Field(0, ge=0, le=1024, description="numba threads; 0 = all cores (never changes results)")
    chunk_customers: int = Field(
        262_144, ge=4096, le=2**31 - 1, description="customers per chunk of work (never changes results; a multiple of 4096)"
    )

    @field_validator("chunk_customers")
    @classmethod
    def _whole_blocks(cls, chunk: int) -> int:
        if chunk % 4096:
            raise ValueError(f"chunk_customers = {chunk} must be a multiple of 4096 (the reduction block size)")
        return chunk


#: Largest number of points a ``[sweep]`` grid may have.
MAX_SWEEP_POINTS = 10_000


class ComparisonConfig(_Frozen):
    """Which paired policy comparisons to report (MODEL.md §5).

    Without ``reference`` the ``comparison`` table has one row for every ordered pair of
    policies; with it, one row per other policy against the named reference.
    """

    reference: str | None = Field(None, description="policy every other policy is compared with; omit for all pairs")


class PrecisionConfig(_Frozen):
    """Precision control (:func:`sim.experiments.comparison.project_to_precision`): add replications
    until the 95 % CI half-width of every reported paired ΔCLV (every policy against
    ``comparison.reference``, or every pair without one) is at most the target, or
    ``max_replications`` is reached. Off while ``target_ci_halfwidth`` is not set."""

    target_ci_halfwidth: Positive | None = Field(None, description="target 95 % CI half-width of ΔCLV, money units")
    max_replications: int = Field(64, ge=1, le=100_000, description="cap on the replications precision control may reach")


class OptimizeConfig(_Frozen):
    """Settings of ``sim optimize`` (:func:`sim.experiments.optimize.optimize_spend`): the per-stage
    (optionally per-segment) retention spend that maximises expected CLV net of spend,
    found on a common-random-numbers objective (fixed seed) and re-evaluated on fresh seeds."""

    stages: tuple[Literal["exploration", "formation", "stability", "decline"], ...] = Field(
        STAGES, min_length=1, max_length=4, strict=False, description="stages whose spend is optimised"
    )
    per_segment: bool = Field(False, description="a separate spend per segment (relationship, transactional)")
    max_spend: Positive = Field(20.0, description="upper bound on the spend per period searched, money units")
    start: StageNonNegative = Field(
        default_factory=StageNonNegative, description="starting spend per stage (and the spend of stages not optimised)"
    )
    method: Literal["coordinate", "powell"] = Field(
        "coordinate", description="coordinate-wise grid + bounded Brent search, or scipy's bounded Powell"
    )
    grid_points: int = Field(9, ge=3, le=63, description="coarse grid per coordinate (coordinate method), evaluated in one kernel call")
    spend_tolerance: Positive = Field(0.05, description="absolute tolerance on the optimal spend, money units")
    max_cycles: int = Field(4, ge=1, le=100, description="passes over the coordinates (coordinate method)")
    customers: int | None = Field(None, ge=1, le=1_000_000_000, description="customers of the optimisation objective (default population.customers)")
    replications: int | None = Field(None, ge=1, le=100_000, description="replications of the objective (default run.replications)")
    evaluation_seed: int | None = Field(None, ge=0, le=2**63 - 1, description="fresh seed for the reported estimates (default run.seed + 1)")
    evaluation_customers: int | None = Field(None, ge=1, le=1_000_000_000, description="customers of the fresh evaluation (default: as the objective)")
    evaluation_replications: int | None = Field(None, ge=1, le=100_000, description="replications of the fresh evaluation (default: as the objective)")
    response_points: int = Field(21, ge=3, le=62, description="spends per stage on the response curves, 0 .. max_spend")
    reference: str | None = Field(None, description="policy the optimum is compared with (default comparison.reference, else the first policy)")

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, stages: tuple) -> tuple:
        if len(set(stages)) != len(stages):
            raise ValueError(f"stages must not repeat; got {list(stages)}")
        return stages

    @model_validator(mode="after")
    def _start_within_bounds(self) -> "OptimizeConfig":
        too_high = [f"start.{stage} = {value:g}" for stage, value in zip(STAGES, self.start.as_tuple()) if value > self.max_spend]
        if too_high:
            raise ValueError(f"{', '.join(too_high)} must be <= max_spend = {self.max_spend:g}")
        return self


def _flatten_sweep(data: Any, prefix: str = "") -> dict:
    """``{"economics": {"annual_discount_rate": [..]}}`` -> ``{"economics.annual_discount_rate": [..]}``."""
    flat = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten_sweep(value, path))
        else:
            flat[path] = value
    return flat


# --------------------------------------------------------------------------- market (agent engine)

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
    customer's spend depends on everyone else's state (:func:`sim.engines.market.engine.allocate_budget`).
    """

    enabled: bool = Field(False, description="cap the total retention spend of each period")
    policies: tuple[str, ...] = Field(
        (), strict=False, description="policies whose markets have this interaction (empty: every policy)"
    )
    per_customer: NonNegative = Field(
        1.0, description="budget per period per customer of the initial cohort, money units "
                         "(total = per_customer * population.customers, so --customers keeps its meaning)"
    )
    stage_priority: tuple[Literal["exploration", "formation", "stability", "decline"], ...] = Field(
        ("decline", "formation", "exploration", "stability"), strict=False,
        description="order in which stages are served within a value tier (all four stages, each once)",
    )

    @field_validator("stage_priority")
    @classmethod
    def _a_permutation(cls, order: tuple) -> tuple:
        if sorted(order) != sorted(STAGES):
            raise ValueError(f"stage_priority must list each of {list(STAGES)} exactly once; got {list(order)}")
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
    complaint_probability: Probability = Field(0.5, description="chance that a dissatisfied customer complains in the next period")
    service_time: Positive = Field(0.02, description="mean service time of a complaint, periods (exponential)")
    wait_penalty: NonNegative = Field(2.0, description="perceived performance lost per period a complaint waits (M2)")


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
        5.0, description="organic prospects per period per 1,000 cohort customers (with the spend-driven ones "
                         "at most 1,000: see MAX_PROSPECTS_PER_CUSTOMER)")
    spend_per_customer: NonNegative = Field(0.0, description="acquisition spend per period per cohort customer, money units")
    prospects_per_spend: NonNegative = Field(0.01, description="extra prospects per period per money unit of acquisition spend")

    @model_validator(mode="after")
    def _bounded_arrivals(self) -> "MarketAcquisitionConfig":
        per_customer = self.prospects_per_1000 / 1000.0 + self.spend_per_customer * self.prospects_per_spend
        if per_customer > MAX_PROSPECTS_PER_CUSTOMER:
            raise ValueError(
                f"prospects_per_1000 / 1000 + spend_per_customer * prospects_per_spend = {per_customer:g} prospects "
                f"per period per cohort customer must be <= {MAX_PROSPECTS_PER_CUSTOMER:g} (each prospect is a "
                f"simulated arrival); got prospects_per_1000 = {self.prospects_per_1000:g}, spend_per_customer = "
                f"{self.spend_per_customer:g}, prospects_per_spend = {self.prospects_per_spend:g}")
        return self


class MarketCompetitorConfig(_Frozen):
    """A competitor entering (and optionally leaving) the market (agent engine only).

    While the competitor is present, the exit odds of (M7) (exits from exploration,
    formation and stability, and churn from decline) are multiplied by ``exit_odds`` of
    the customer's segment: transactional customers, who switch for price, more than
    relationship customers (MODEL.md §3).
    """

    enabled: bool = Field(False, description="a competitor enters at enters_at")
    policies: tuple[str, ...] = Field(
        (), strict=False, description="policies whose markets have this interaction (empty: every policy)"
    )
    enters_at: int = Field(24, ge=0, le=100_000, description="period from which the competitor is present")
    leaves_at: int | None = Field(None, ge=1, le=100_000, description="period from which it is gone again (omit: stays)")
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
        "period", description="'period': each customer's period resolves at its end; 'event': purchases "
                              "also arrive as Poisson events within the period at purchase_rate"
    )
    purchase_rate: StageNonNegative = Field(
        default_factory=lambda: StageNonNegative(exploration=1.0, formation=2.0, stability=4.0, decline=1.5),
        description="purchases per period by stage, each > 0 and <= 1000 ('event' timing; each carries an equal "
                    "share of the period's expected purchase cash flow, C1/C2)",
    )
    event_log: bool = Field(False, description="keep the event log (time, customer, event, stage, satisfaction)")
    snapshot_every: int = Field(12, ge=0, le=100_000, description="keep a snapshot of all live customers every this many periods (0: only at the horizon)")
    max_customers: int = Field(1_000_000, ge=1, le=MAX_MARKET_CUSTOMERS, description="most customers one market may hold, ended ones included (word-of-mouth arrivals beyond are turned away and counted; the acquisition process stops once it is reached)")
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
        high = [f"{stage} = {rate:g}" for stage, rate in zip(STAGES, rates.as_tuple()) if rate > MAX_PURCHASE_RATE]
        if high:
            raise ValueError(f"purchase_rate must be <= {MAX_PURCHASE_RATE:g} purchases per period in every stage "
                             f"(each purchase is a simulated event); got {', '.join(high)}")
        return rates

    @property
    def interactions(self) -> tuple[str, ...]:
        """Names of the interactions switched on."""
        return tuple(name for name in ("budget", "capacity", "word_of_mouth", "acquisition", "competitor")
                     if getattr(self, name).enabled)


class ExperimentConfig(_Frozen):
    """A complete experiment: the model, the policies to compare and the run settings."""

    name: str = Field("experiment", min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = ""
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    dynamics: DynamicsConfig = Field(default_factory=DynamicsConfig)
    loyalty: LoyaltyConfig = Field(default_factory=LoyaltyConfig)
    transitions: TransitionConfig = Field(default_factory=TransitionConfig)
    word_of_mouth: WordOfMouthConfig = Field(default_factory=WordOfMouthConfig)
    economics: EconomicsConfig = Field(default_factory=EconomicsConfig)
    policies: tuple[PolicyConfig, ...] = Field(
        default_factory=_default_policies, min_length=1, max_length=64, strict=False
    )
    run: RunConfig = Field(default_factory=RunConfig)
    engine: Literal["core", "abm"] = Field(
        "core", description="the engine of `sim run`: the numba cohort core or the SimPy agent-based market (sim.engines.market.engine)"
    )
    market: MarketConfig = Field(default_factory=MarketConfig)
    comparison: ComparisonConfig = Field(default_factory=ComparisonConfig)
    precision: PrecisionConfig = Field(default_factory=PrecisionConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    sweep: dict[str, tuple[Any, ...]] = Field(
        default_factory=dict,
        description="grid over dotted parameter paths, e.g. {'economics.annual_discount_rate': [0.05, 0.1]}",
    )

    @field_validator("sweep", mode="before")
    @classmethod
    def _sweep_grid(cls, sweep: Any) -> dict:
        """Flatten nested tables into dotted paths; every path gets a non-empty list of
        scalars (number, string or boolean); the grid has at most ``MAX_SWEEP_POINTS`` points."""
        if not isinstance(sweep, dict):
            raise ValueError(f"sweep must be a table of parameter paths, got {type(sweep).__name__}")
        flat = _flatten_sweep(sweep)
        points = 1
        for path, values in flat.items():
            if path.split(".")[0] in ("sweep", "optimize"):
                raise ValueError(f"sweep.{path!r}: the [sweep] and [optimize] sections cannot be swept")
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"sweep.{path!r} = {_format_value(values)}: must be a non-empty list of values")
            for value in values:
                if not isinstance(value, (bool, int, float, str)):
                    raise ValueError(f"sweep.{path!r} = {_format_value(values)}: values must be numbers, strings or booleans")
            points *= len(values)
        if points > MAX_SWEEP_POINTS:
            raise ValueError(f"the sweep grid has {points:,} points; at most {MAX_SWEEP_POINTS:,} are allowed")
        return {path: tuple(values) for path, values in flat.items()}

    @model_validator(mode="after")
    def _market_policies_exist(self) -> "ExperimentConfig":
        """Every policy named by a ``[market.*] policies`` list must be a policy of the config."""
        names = self.policy_names
        for section in ("budget", "capacity", "word_of_mouth", "acquisition", "competitor"):
            listed = getattr(self.market, section).policies
            unknown = [name for name in listed if name not in names]
            if unknown:
                raise ValueError(f"market.{section}.policies = {list(listed)}: no policy named {unknown}; "
                                 f"policies: {', '.join(names)}")
        return self

    @field_validator("policies")
    @classmethod
    def _unique_policy_names(cls, policies: tuple) -> tuple:
        names = [policy.name for policy in policies]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"policy names must be unique; repeated: {duplicated}")
        return policies

    @property
    def policy_names(self) -> tuple[str, ...]:
        """Names of the policies, in config order."""
        return tuple(policy.name for policy in self.policies)

    def with_overrides(self, **sections: Any) -> "ExperimentConfig":
        """A validated copy with some values replaced, e.g.
        ``config.with_overrides(run={"seed": 3}, population={"customers": 1000})``.

        A section given as a dict updates the section's fields (the others are kept);
        ``sweep`` and ``policies`` are replaced as a whole (``sweep={}`` removes the sweep)."""
        data = self.model_dump(mode="python")
        for section, values in sections.items():
            if isinstance(values, dict) and isinstance(data.get(section), dict) and section != "sweep":
                data[section] = {**data[section], **values}
            else:
                data[section] = values
        return config_from_dict(data)

    def to_toml_dict(self) -> dict:
        """The resolved configuration as plain data (for manifests and TOML export)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- loading + errors


def _allowed_keys(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return list(model.model_fields)


def _model_at(loc: tuple, data: Any) -> type[BaseModel] | None:
    """The pydantic model class that owns the key at ``loc[-1]`` (for did-you-mean hints)."""
    model: Any = ExperimentConfig
    parts = list(loc[:-1])
    if parts[:1] == ["policies"]:
        if len(parts) < 2 or not isinstance(parts[1], int):
            return None
        try:
            model = _POLICY_KINDS.get(data["policies"][parts[1]].get("kind"))
        except (KeyError, IndexError, TypeError, AttributeError):
            model = None
        if model is None:
            return None
        parts = parts[2:]
    for part in parts:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


_POLICY_KINDS = {
    "none": NonePolicy,
    "uniform": UniformPolicy,
    "stage": StagePolicy,
    "table": TablePolicy,
    "value": ValuePolicy,
    "max_satisfaction": MaxSatisfactionPolicy,
    "reactive": ReactivePolicy,
}


def _format_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problems_from(error: ValidationError, data: Any) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        # pydantic puts the union member's tag into loc (policies.0.stage.spend); drop it
        clean = []
        for i, part in enumerate(loc):
            if i >= 2 and loc[0] == "policies" and isinstance(loc[1], int) and i == 2 and part in _POLICY_KINDS:
                continue
            clean.append(part)
        key_error = bool(clean) and clean[-1] == "[key]"  # a bad key of a table (e.g. tier_spend.D)
        if key_error:
            clean = clean[:-1]
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in clean).replace(".[", "[")
        if path.startswith("policies[") and isinstance(data, dict):
            try:
                name = data["policies"][clean[1]].get("name")
                if name:
                    path = path.replace(f"policies[{clean[1]}]", f"policies[{clean[1]}] ({name!r})", 1)
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
        kind = item["type"]
        value = item.get("input")
        if kind == "extra_forbidden":
            key = str(clean[-1])
            owner = _model_at(tuple(clean), data)
            allowed = _allowed_keys(owner)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listing = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            problems.append((path, f"unknown key{hint}{listing}"))
            continue
        if kind == "union_tag_invalid":
            problems.append((path + ".kind" if not path.endswith("kind") else path,
                             f"{_format_value(item.get('input', {}).get('kind') if isinstance(item.get('input'), dict) else value)} is not a policy kind; allowed: {', '.join(_POLICY_KINDS)}"))
            continue
        if kind == "union_tag_not_found":
            problems.append((path, f"a policy needs 'kind', one of: {', '.join(_POLICY_KINDS)}"))
            continue
        message = item["msg"]
        message = message.replace("Value error, ", "")
        ctx = item.get("ctx") or {}
        if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            bound = next(iter(ctx.values()))
            symbol = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
            message = f"must be {symbol} {bound:g}" if isinstance(bound, float) and abs(bound) >= 1e6 else f"must be {symbol} {bound}"
            hint = _RANGE_HINTS.get(".".join(str(part) for part in clean))
            if hint:
                message += f" ({hint})"
            elif _is_probability_path(clean, data):
                message += " (a probability in [0, 1])"
            elif isinstance(bound, float) and abs(bound) == MAX_MAGNITUDE:
                message += " (the largest magnitude a config may hold: beyond it the model's float64 arithmetic could overflow)"
        message = _plain_message(kind, message, clean, value, ctx)
        if key_error:
            expected = ctx.get("expected")
            message = f"unknown key; allowed keys: {expected}" if expected else f"not an allowed key: {message}"
        if kind == "missing":
            problems.append((path, "is required"))
            continue
        if kind == "too_short" and any(p.startswith(path + "[") for p, _ in problems):
            continue  # a consequence of a bad element already reported (e.g. a bad policy)
        if isinstance(value, (dict, list, tuple)) and kind.startswith("value_error"):
            problems.append((path, message))
        else:
            problems.append((f"{path} = {_format_value(value)}", message))
    return problems


#: Plain descriptions of the name patterns, for messages.
_PATTERNS = {
    r"^[A-Za-z0-9_\-]+$": "must use letters, digits, '_' and '-' only (it names the result folder: no '/', '.' or spaces)",
    r"^[A-Za-z0-9_.\-]+$": "must use letters, digits, '_', '.' and '-' only (no '/' or spaces)",
}


def _plain_message(kind: str, message: str, loc: list, value: Any, ctx: dict) -> str:
    """pydantic's message for ``kind`` in the words of a TOML file."""
    if kind == "finite_number":
        return "must be a finite number (not nan or inf)"
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(str(ctx.get("pattern")), message)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table (in TOML a [section], or {key = value, ...})"
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        if limit is not None:
            return f"must have at {'least' if kind == 'too_short' else 'most'} {limit} item{'s' if limit != 1 else ''}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must have at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must have at most {ctx.get('max_length')} characters"
    if kind in ("tuple_type", "list_type"):
        if loc == ["policies"] and isinstance(value, dict):
            return "must be an array of tables: write each policy as a [[policies]] section (double brackets)"
        return "must be a list (in TOML [a, b, ...])"
    return message


#: What is allowed for fields whose range is [0, 1] but which are not probabilities.
_RANGE_HINTS = {
    "economics.annual_discount_rate": "a yearly discount rate in [0, 1]: 0.10 discounts by 10 % a year",
}


def _is_probability_path(loc: list, data: Any) -> bool:
    owner = _model_at(tuple(loc), data)
    if owner is None:
        return False
    field = owner.model_fields.get(str(loc[-1]))
    if field is None:
        return False
    metadata = field.metadata
    lows = [getattr(m, "ge", None) for m in metadata]
    highs = [getattr(m, "le", None) for m in metadata]
    return 0.0 in lows and 1.0 in highs


def config_from_dict(data: dict, source: str | None = None) -> ExperimentConfig:
    """Validate a mapping (e.g. parsed TOML) into an :class:`ExperimentConfig`.

    Raises
    ------
    ConfigError
        Listing every problem found, each with its field path, value and what is allowed.
    """
    if not isinstance(data, dict):
        raise ConfigError([("", f"the configuration must be a table of sections, got {type(data).__name__}")], source)
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as error:
        problems = _problems_from(error, data)
        reported = {path.split(" = ")[0] for path, _ in problems}
        problems += [problem for problem in _raw_reference_problems(data) if problem[0].split(" = ")[0] not in reported]
        raise ConfigError(problems, source) from None
    _check_numerics(config, source)
    _check_references(config, source)
    _check_market(config, source)
    if config.sweep:
        _check_sweep(config, source)
    return config


#: Most prospects won or deterred per talk on average (``people_told * |influence|`` of a
#: satisfaction type) with ``market.word_of_mouth`` on: each is a simulated arrival.
MAX_WORD_OF_MOUTH_PROSPECTS = 1_000.0


def market_servers(config: ExperimentConfig) -> float:
    """Servers of ``[market.capacity]`` for the initial cohort: ``max(1, round(servers_per_1000
    * customers / 1000))`` plus ``floor(spend_per_customer * customers / server_cost)`` bought
    (a float: inf when the purchase overflows)."""
    capacity = config.market.capacity
    customers = config.population.customers
    base = max(1, int(round(capacity.servers_per_1000 * customers / 1000.0)))
    bought = capacity.spend_per_customer * customers / capacity.server_cost
    return base + (math.floor(bought) if math.isfinite(bought) else math.inf)


def word_of_mouth_problems(config: ExperimentConfig) -> list[tuple[str, str]]:
    """With ``market.word_of_mouth`` on, ``people_told * |influence|`` of every satisfaction
    type must be at most :data:`MAX_WORD_OF_MOUTH_PROSPECTS` (each prospect is simulated)."""
    if not config.market.word_of_mouth.enabled:
        return []
    wom = config.word_of_mouth
    problems = []
    for name, told, influence in zip(SATISFACTION_TYPES, wom.people_told.as_tuple(), wom.influence.as_tuple()):
        mean = told * abs(influence)
        if mean > MAX_WORD_OF_MOUTH_PROSPECTS:
            problems.append((f"word_of_mouth.people_told.{name}",
                             f"people_told.{name} * |influence.{name}| = {told:g} * {abs(influence):g} = {mean:g} "
                             f"prospects per talk must be <= {MAX_WORD_OF_MOUTH_PROSPECTS:g} with "
                             "market.word_of_mouth on (each prospect is a simulated arrival)"))
    return problems


def market_problems(config: ExperimentConfig, *, agent_engine: bool | None = None) -> list[tuple[str, str]]:
    """Cross-field checks of the agent engine's ``[market]``: word-of-mouth arrivals per talk,
    the number of servers of ``[market.capacity]`` and (on the agent engine: ``agent_engine``,
    default ``config.engine == "abm"``) the cohort against ``market.max_customers``."""
    market = config.market
    customers = config.population.customers
    problems = word_of_mouth_problems(config)
    if agent_engine is None:
        agent_engine = config.engine == "abm"
    if agent_engine and customers > market.max_customers:
        problems.append((f"population.customers = {customers}",
                         f"must be <= market.max_customers = {market.max_customers} on the agent engine (engine = "
                         f"\"abm\" holds every customer in memory, about {AGENT_BYTES_PER_CUSTOMER} bytes each per "
                         f"market); lower population.customers or raise market.max_customers (at most "
                         f"{MAX_MARKET_CUSTOMERS:,})"))
    capacity = market.capacity
    if capacity.enabled:
        servers = market_servers(config)
        if servers > market.max_customers:
            problems.append(("market.capacity",
                             f"max(1, round(servers_per_1000 * customers / 1000)) + floor(spend_per_customer * "
                             f"customers / server_cost) = {servers:g} servers must be <= market.max_customers = "
                             f"{market.max_customers} (at most one open complaint per customer); got "
                             f"servers_per_1000 = {capacity.servers_per_1000:g}, spend_per_customer = "
                             f"{capacity.spend_per_customer:g}, server_cost = {capacity.server_cost:g}, "
                             f"population.customers = {customers}"))
    return problems


def _check_market(config: ExperimentConfig, source: str | None) -> None:
    problems = market_problems(config)
    if problems:
        raise ConfigError(problems, source)


def _check_engine(config: ExperimentConfig, source: str | None) -> None:
    """A file for the core engine must not switch on market interactions (only the agent
    engine simulates them) nor sweep ``market.*`` paths: nothing is silently ignored."""
    if config.engine != "core":
        return
    problems = []
    interactions = config.market.interactions
    if interactions:
        fields = ", ".join(f"market.{name}.enabled" for name in interactions)
        problems.append((f"{fields} = true",
                         "the market interactions run only on the agent engine: set engine = \"abm\" in the file "
                         "(engine = \"core\", the default, would ignore them), or switch them off"))
    swept = [path for path in config.sweep if path.split(".")[0] == "market"]
    if swept:
        problems.append((f"sweep.{swept[0]!r}",
                         "[market] settings are used only by the agent engine (engine = \"abm\"), which does not "
                         "run sweeps; the core engine would ignore them"))
    if problems:
        raise ConfigError(problems, source)


def _check_references(config: ExperimentConfig, source: str | None) -> None:
    """Policy names used by the comparison, precision and optimize sections must exist."""
    names = config.policy_names
    problems = _unknown_policy_problems(names, {"comparison.reference": config.comparison.reference,
                                                "optimize.reference": config.optimize.reference})
    precision = config.precision
    if precision.target_ci_halfwidth is not None:
        if len(names) < 2:
            problems.append(("precision.target_ci_halfwidth",
                             "precision control needs at least two policies (it targets paired ΔCLV)"))
        if precision.max_replications < config.run.replications:
            problems.append((f"precision.max_replications = {precision.max_replications}",
                             f"must be >= run.replications = {config.run.replications}"))
    if problems:
        raise ConfigError(problems, source)


def _unknown_policy_problems(names, references: dict) -> list[tuple[str, str]]:
    """One problem per ``{path: policy name}`` reference to a policy not in ``names``."""
    problems = []
    for path, name in references.items():
        if name is not None and name not in names:
            close = difflib.get_close_matches(name, list(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((f"{path} = {name!r}", f"no such policy{hint}; policies: {', '.join(names)}"))
    return problems


def _raw_reference_problems(data: dict) -> list[tuple[str, str]]:
    """The policy-reference checks of :func:`_check_references` on raw data, so that they
    are reported together with the field problems of a config that does not validate."""
    policies = data.get("policies")
    if policies is None:
        names = tuple(policy.name for policy in _default_policies())
    elif isinstance(policies, list) and all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in policies):
        names = tuple(p["name"] for p in policies)
    else:
        return []  # the policies themselves are malformed (reported already)
    references = {}
    for section in ("comparison", "optimize"):
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get("reference"), str):
            references[f"{section}.reference"] = table["reference"]
    return _unknown_policy_problems(names, references)


def _set_path(data: dict, path: str, value: Any) -> None:
    """Set ``value`` at a dotted TOML path of a config mapping; ``policies.<name>.…``
    addresses the policy with that name. Raises ``KeyError`` with a message if the path
    does not lead into the configuration's tables."""
    parts = path.split(".")
    if any(not part for part in parts):
        raise KeyError("not a dotted parameter path (like economics.annual_discount_rate)")
    node: Any = data
    index = 0
    while index < len(parts) - 1:
        part = parts[index]
        if part == "policies" and node is data:
            names = [policy.get("name") for policy in data.get("policies", ())]
            if index + 1 >= len(parts) - 1:
                raise KeyError("a policy parameter is written policies.<policy name>.<field>")
            name = parts[index + 1]
            if name not in names:
                close = difflib.get_close_matches(name, [str(n) for n in names], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise KeyError(f"no policy named {name!r}{hint}; policies: {', '.join(map(str, names))}")
            node = data["policies"][names.index(name)]
            index += 2
            continue
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            allowed = [key for key, item in node.items() if isinstance(item, dict)] if isinstance(node, dict) else []
            close = difflib.get_close_matches(part, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(f"{part!r} is not a table of the configuration{hint}")
        node = node[part]
        index += 1
    node[parts[-1]] = value


def apply_overrides(config: ExperimentConfig, values: dict[str, Any], source: str | None = None) -> ExperimentConfig:
    """A validated copy of ``config`` with values set at dotted parameter paths.

    Parameters
    ----------
    config
        A validated experiment.
    values
        ``{path: value}`` with TOML paths such as ``"economics.annual_discount_rate"``,
        ``"dynamics.stage_effectiveness.formation"`` or ``"policies.uniform.spend"``
        (``policies.<policy name>.<field>``).

    Raises
    ------
    ConfigError
        For a path that does not exist or a value the field does not allow.
    """
    data = config.model_dump(mode="python")
    problems = []
    for path, value in values.items():
        try:
            _set_path(data, path, value)
        except KeyError as error:
            problems.append((f"{path} = {_format_value(value)}", str(error.args[0])))
    if problems:
        raise ConfigError(problems, source)
    return config_from_dict(data, source)


def sweep_grid(config: ExperimentConfig) -> list[dict[str, Any]]:
    """The points of the ``[sweep]`` grid, ``[{path: value, ...}, ...]``, in row-major
    order (the last swept path varies fastest); ``[{}]`` without a sweep."""
    import itertools

    paths = list(config.sweep)
    return [dict(zip(paths, combination)) for combination in itertools.product(*(config.sweep[p] for p in paths))]


def _check_sweep(config: ExperimentConfig, source: str | None) -> None:
    """Validate every point of the sweep grid before any work: each must be a valid config."""
    base = config.model_copy(update={"sweep": {}})
    problems: list[tuple[str, str]] = []
    data = base.model_dump(mode="python")
    for path, values in config.sweep.items():  # paths first: one message per bad path
        try:
            _set_path(data, path, values[0])
        except KeyError as error:
            problems.append((f"sweep.{path!r}", str(error.args[0])))
    if problems:
        raise ConfigError(problems, source)
    seen = set()
    grid = sweep_grid(config)
    for number, point in enumerate(grid, start=1):
        try:
            apply_overrides(base, point)
        except ConfigError as error:
            setting = ", ".join(f"{path} = {_format_value(value)}" for path, value in point.items())
            for path, message in error.problems:
                if (path, message) in seen:
                    continue
                seen.add((path, message))
                problems.append((f"sweep point {number} of {len(grid)} ({setting})", f"{path}: {message}" if path else message))
        if len(problems) >= 20:
            problems.append(("sweep", "(further problems not listed)"))
            break
    if problems:
        raise ConfigError(problems, source)


def _check_numerics(config: ExperimentConfig, source: str | None) -> None:
    """Every number finite (a backstop: the sections already refuse nan and inf)."""
    problems = []
    for path, value in _walk_floats(config.model_dump(mode="python")):
        if isinstance(value, float) and not math.isfinite(value):
            problems.append((f"{path} = {value}", "must be a finite number (not nan or inf)"))
    if problems:
        raise ConfigError(problems, source)


def _walk_floats(data: Any, prefix: str = ""):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _walk_floats(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            yield from _walk_floats(value, f"{prefix}[{index}]")
    else:
        yield prefix, data


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a TOML experiment file into a validated, frozen :class:`ExperimentConfig`.

    Parameters
    ----------
    path
        A ``.toml`` file. Sections: ``population``, ``dynamics``, ``loyalty``,
        ``transitions``, ``word_of_mouth``, ``economics``, ``[[policies]]`` and ``run``;
        optionally ``comparison`` (a reference policy), ``precision`` (replications until
        a target CI half-width), ``sweep`` (a grid over dotted parameter paths, every
        point validated here) and ``optimize`` (settings of ``sim optimize``). Every key
        is optional and defaults to the baseline model.

    Raises
    ------
    ConfigError
        For a missing file, a directory, a non-UTF-8 or malformed file, an unknown key, a
        wrong type or an out-of-range value — one line per problem, before any work starts.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ConfigError([("", f"no such file: {source}")])
    if path.is_dir():
        raise ConfigError([("", f"{source} is a directory, not a TOML file")])
    try:
        raw = path.read_bytes()
    except OSError as error:  # no permission, a special file, an I/O error
        raise ConfigError([("", f"cannot read {source}: {error.strerror or error}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError([("", f"{source} is not UTF-8 text (byte {error.start}): save it as UTF-8")]) from None
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as some editors write
    empty = f"{source} is empty (no settings, only blank space or comments): an experiment needs at least a name"
    if not text.strip():
        raise ConfigError([("", empty)])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("", f"{source} is not valid TOML: {error}")]) from None
    if not data:  # only comments: the same as an empty file
        raise ConfigError([("", empty)])
    config = config_from_dict(data, source)
    _check_engine(config, source)
    return config
