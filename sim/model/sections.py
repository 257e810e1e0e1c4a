"""The sections of an experiment config: the model's parameters (population, dynamics, loyalty,
transitions, word of mouth, economics), the policies, and how a run is done (run,
comparison, precision, optimize).

Every field carries its meaning, unit and allowed range (the parameter tables of
``docs/model.md`` §11 are written from these); every section is frozen and rejects
unknown keys. :class:`sim.model.config.ExperimentConfig` assembles them.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim.model.names import SATISFACTION_TYPES, STAGES, TIERS

__all__ = [
    "StagesBySegment",
    "TransitionsBySegment",
    "SegmentTransitions",
    "MAX_MAGNITUDE",
    "MIN_CARE_SCALE",
    "StageValues",
    "StageProbabilities",
    "StageNonNegative",
    "SegmentValues",
    "SatisfactionTypeValues",
    "ChurnPropensity",
    "PopulationConfig",
    "DynamicsConfig",
    "LoyaltyConfig",
    "TransitionConfig",
    "WordOfMouthConfig",
    "EconomicsConfig",
    "NonePolicy",
    "UniformPolicy",
    "StagePolicy",
    "TablePolicy",
    "ValuePolicy",
    "MaxSatisfactionPolicy",
    "ReactivePolicy",
    "RunConfig",
    "MAX_SWEEP_POINTS",
    "ComparisonConfig",
    "PrecisionConfig",
    "OptimizeConfig",
]


class _Frozen(BaseModel):
    """Base for config sections: immutable, unknown keys rejected, strict-ish types."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False
    )


#: Largest magnitude of any real number in a configuration (money per period, multipliers,
#: effect sizes): far beyond any real business, and small enough that every intermediate
#: value of the model stays finite in float64 (tests/engines/test_engines_extremes.py runs the model at
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


class StagesBySegment(_Frozen):
    """One :class:`StageProbabilities` per segment (both are required)."""

    relationship: StageProbabilities
    transactional: StageProbabilities

    def segments(self) -> tuple[StageProbabilities, StageProbabilities]:
        """The two segments' values in segment order."""
        return (self.relationship, self.transactional)


class SatisfactionTypeValues(_Frozen):
    """One number per satisfaction type (dissatisfied, satisfied, highly_satisfied)."""

    dissatisfied: Real = 0.0
    satisfied: Real = 0.0
    highly_satisfied: Real = 0.0

    def as_tuple(self) -> tuple[float, float, float]:
        """The values in satisfaction-type order."""
        return (self.dissatisfied, self.satisfied, self.highly_satisfied)


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
    """Who the customers are (docs/model.md §4).

    Wallet size (the customer's spend capacity in the category per period) is lognormal,
    ``wallet = wallet_median * exp(wallet_sigma * Z)``; a log-sd near 1.6 puts about half
    of all wallet in the top 5 % of customers, the ABC rule of thumb.
    """

    customers: int = Field(20_000, ge=1, le=1_000_000_000, description="cohort size acquired at period 0")
    relationship_share: Probability = Field(
        0.45, description="share of relationship customers; the rest are transactional"
    )
    wallet_median: Positive = Field(100.0, description="median wallet per period, money units")
    wallet_sigma: float = Field(1.0, ge=0.0, le=4.0, description="log-sd of the lognormal wallet")
    churn_propensity: ChurnPropensity | None = Field(
        None, description="optional Beta-heterogeneous churn propensity (absent: no such churn)"
    )
    snapshot: str | None = Field(
        None,
        description="optional CSV of live customers (sim.runs.snapshot.SNAPSHOT_COLUMNS), relative to the "
        "config file: sim run then projects them with sim.project_from instead of a new cohort of "
        "`customers` (sim fit writes one with a fitted config)",
    )

    @property
    def mean_wallet(self) -> float:
        """Mean wallet per period, ``wallet_median * exp(wallet_sigma**2 / 2)`` (the lognormal's
        mean; docs/model.md §4).
        """
        return self.wallet_median * math.exp(0.5 * self.wallet_sigma**2)


class DynamicsConfig(_Frozen):
    """Perceived performance, expectations and satisfaction (docs/model.md §2, seed 004).

    See :mod:`sim.model.equations` for the equations (M1)-(M5) these parameters enter.
    """

    base_performance: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=0.3, transactional=0.2),
        description="mean perceived performance of product and service without care spend",
    )
    performance_fit_sd: NonNegative = Field(
        0.3, description="sd of a customer's persistent fit with the offer"
    )
    performance_noise: NonNegative = Field(
        0.4, description="sd of the period-to-period noise in perceived performance"
    )
    initial_expectation: Real = Field(0.3, description="expectation Q0 when the relationship starts")
    expectation_adaptation: Probability = Field(
        0.1, description="share of the gap Q1-Q0 closed by expectations each period"
    )
    expectation_anchor: Probability = Field(
        0.5, description="weight of the initial expectation in the level expectations adapt to"
    )
    satisfaction_memory: Probability = Field(
        0.5, description="weight of last period's satisfaction in this period's"
    )
    satisfaction_scale: Positive = Field(
        0.3, description="disconfirmation that moves satisfaction from 0.5 to 0.73"
    )
    satisfaction_tolerance: NonNegative = Field(
        0.3, description="|Q1-Q0| within which a customer is 'satisfied' rather than dis- or highly satisfied"
    )
    care_gain: NonNegative = Field(
        1.0, description="largest gain in perceived performance from care spend (diminishing returns)"
    )
    care_scale: float = Field(
        4.0,
        ge=MIN_CARE_SCALE,
        le=MAX_MAGNITUDE,
        description="spend per period at which 63 % of the care gain is reached, money units",
    )
    annoyance: NonNegative = Field(
        0.06, description="loss of perceived performance per (spend/care_scale)^2 from over-contact"
    )
    stage_effectiveness: StageNonNegative = Field(
        default_factory=lambda: StageNonNegative(exploration=0.7, formation=1.0, stability=0.4, decline=0.8),
        description="how strongly care spend reaches perceived performance in each stage",
    )


class LoyaltyConfig(_Frozen):
    """The satisfaction -> loyalty curve (Jones & Sasser zones; docs/model.md §2, (M6)).

    Piecewise linear through (0, 0), (defection_threshold, indifference_low),
    (affection_threshold, indifference_high), (1, 1): steep in the zone of defection, nearly
    flat in the zone of indifference, steep again in the zone of affection.
    """

    defection_threshold: Probability = Field(0.35, description="satisfaction below which loyalty collapses")
    affection_threshold: Probability = Field(
        0.75, description="satisfaction above which loyalty rises steeply"
    )
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
                f"indifference_low ({self.indifference_low}) must be <= indifference_high "
                f"({self.indifference_high})"
            )
        return self


class SegmentTransitions(_Frozen):
    """The base transition probabilities of one segment, per stage (docs/model.md §3.1).

    ``advance``: the forward move of each stage (exploration -> formation, formation ->
    stability; in the ``decline`` slot the win-back decline -> formation; stability has none).
    ``exit``: the exit of each stage (exploration -> ended, formation -> decline, stability ->
    decline; in the ``decline`` slot the churn decline -> ended). As everywhere, the two
    competing moves of a stage sum to at most 1.
    """

    advance: StageProbabilities
    exit: StageProbabilities

    @model_validator(mode="after")
    def _moves_of_each_stage(self) -> "SegmentTransitions":
        if self.advance.stability != 0.0:
            raise ValueError("advance.stability must be 0: stability is the last stage")
        problems = [
            f"advance.{stage} + exit.{stage} = {getattr(self.advance, stage) + getattr(self.exit, stage):g} "
            "must be <= 1"
            for stage in STAGES
            if getattr(self.advance, stage) + getattr(self.exit, stage) > 1.0
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TransitionsBySegment(_Frozen):
    """:class:`SegmentTransitions` for each segment (both are required)."""

    relationship: SegmentTransitions
    transactional: SegmentTransitions

    def segments(self) -> tuple[SegmentTransitions, SegmentTransitions]:
        """The two segments' transitions in segment order."""
        return (self.relationship, self.transactional)


class TransitionConfig(_Frozen):
    """Stage transitions: no skipping; decline ends in churn or win-back (docs/model.md §1.2).

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
    loyalty_effect_advance: NonNegative = Field(
        4.0, description="log-odds change of advancing/win-back per unit of loyalty above neutral"
    )
    loyalty_effect_exit: NonNegative = Field(
        6.0, description="log-odds change of exit/churn per unit of loyalty below neutral"
    )
    exit_odds: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=1.0, transactional=2.0),
        description="odds multiplier on exit and churn by segment (transactional customers switch more)",
    )
    by_segment: TransitionsBySegment | None = Field(
        None,
        description="optional base probabilities per segment and stage; when given they replace advance, "
        "exit, win_back and churn for both segments (exit_odds still multiply the exits); written by "
        "sim fit for a fitted lifecycle model's classes",
    )
    long_term_periods: int = Field(
        36,
        ge=1,
        le=1_000_000,
        description="tenure that makes a stability relationship 'long-term' (pattern IV)",
    )

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
    """Referral value from word of mouth, CLV5 (docs/model.md §5.2, (C5); seed 004).

    Each period a customer talks with probability ``talk_probability`` to
    ``people_told[type]`` people; each person told becomes a new customer (positive
    ``influence``) or is deterred (negative) with the given expected count, valued at
    ``referral_value`` per customer won or lost.
    """

    people_told: SatisfactionTypeValues = Field(
        default_factory=lambda: SatisfactionTypeValues(
            dissatisfied=22.0, satisfied=8.0, highly_satisfied=12.0
        )
    )
    influence: SatisfactionTypeValues = Field(
        default_factory=lambda: SatisfactionTypeValues(
            dissatisfied=-0.02, satisfied=0.005, highly_satisfied=0.03
        )
    )
    talk_probability: Probability = Field(0.05)
    referral_value: NonNegative = Field(
        40.0, description="value of one customer won (or lost) by word of mouth, money units"
    )

    @field_validator("people_told")
    @classmethod
    def _counts_non_negative(cls, told: SatisfactionTypeValues) -> SatisfactionTypeValues:
        for name, value in zip(SATISFACTION_TYPES, told.as_tuple()):
            if value < 0:
                raise ValueError(f"people_told.{name} = {value} must be >= 0")
        return told


class EconomicsConfig(_Frozen):
    """Cash flows and the six CLV parts (docs/model.md §5); see :mod:`sim.model.equations` (C1)-(C6)."""

    period_months: float = Field(1.0, gt=0.0, le=12.0, description="length of one period in months")
    annual_discount_rate: float = Field(0.10, ge=0.0, le=1.0, description="yearly discount rate")
    margin: StageProbabilities = Field(
        default_factory=lambda: StageProbabilities(
            exploration=0.15, formation=0.25, stability=0.30, decline=0.20
        ),
        description="gross margin rate on purchases by stage (trial discounts early)",
    )
    share_of_wallet: StageProbabilities = Field(
        default_factory=lambda: StageProbabilities(
            exploration=0.10, formation=0.25, stability=0.45, decline=0.15
        ),
        description="share of the customer's wallet bought from the firm, by stage",
    )
    share_of_wallet_by_segment: StagesBySegment | None = Field(
        None,
        description="optional share of wallet per segment and stage, replacing share_of_wallet for both "
        "segments (written by sim fit for a fitted lifecycle model's classes)",
    )
    share_of_wallet_growth: NonNegative = Field(
        0.5, description="relative growth of share of wallet with tenure (saturating)"
    )
    tenure_scale: Positive = Field(
        24.0, description="periods over which tenure effects build up (1 - exp(-tenure/scale))"
    )
    cross_sell_share: StageProbabilities = Field(
        default_factory=lambda: StageProbabilities(
            exploration=0.0, formation=0.05, stability=0.15, decline=0.02
        ),
        description="extra share of wallet from other products at full tenure, by stage",
    )
    cross_sell_margin: Probability = Field(0.30, description="margin rate on cross-sold products")
    cost_to_serve: NonNegative = Field(
        2.0, description="cost to serve a new customer per period, money units"
    )
    cost_to_serve_floor: Probability = Field(
        0.4, description="long-tenure cost to serve as a share of the new-customer cost"
    )
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
    segment_multiplier: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=1.0, transactional=1.0)
    )


class TablePolicy(_PolicyBase):
    """A full spend table: one spend per stage for each segment (user-defined policies)."""

    kind: Literal["table"]
    relationship: StageNonNegative
    transactional: StageNonNegative


class ValuePolicy(_PolicyBase):
    """ABC value-based spend: per tier (A top 5 %, B next 15 %, C rest of predicted value), scaled by
    stage.
    """

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
    maximises perceived performance (the peak of the care response) — the satisfaction trap.
    """

    kind: Literal["max_satisfaction"]


class ReactivePolicy(_PolicyBase):
    """Reactive win-back: spend only on customers in decline or whose satisfaction dropped
    by more than ``satisfaction_drop`` since the previous period.
    """

    kind: Literal["reactive"]
    spend: NonNegative
    satisfaction_drop: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05


PolicyConfig = Annotated[
    Union[
        NonePolicy,
        UniformPolicy,
        StagePolicy,
        TablePolicy,
        ValuePolicy,
        MaxSatisfactionPolicy,
        ReactivePolicy,
    ],
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


class RunConfig(_Frozen):
    """How much to simulate, and with which seed."""

    horizon: int = Field(120, ge=1, le=100_000, description="periods simulated per customer")
    replications: int = Field(2, ge=1, le=100_000, description="independent replications of the cohort")
    seed: int = Field(20261122, ge=0, le=2**63 - 1, description="master seed; same seed, same numbers")
    threads: int = Field(0, ge=0, le=1024, description="numba threads; 0 = all cores (never changes results)")
    chunk_customers: int = Field(
        262_144,
        ge=4096,
        le=2**31 - 1,
        description="customers per chunk of work (never changes results; a multiple of 4096)",
    )

    @field_validator("chunk_customers")
    @classmethod
    def _whole_blocks(cls, chunk: int) -> int:
        if chunk % 4096:
            raise ValueError(
                f"chunk_customers = {chunk} must be a multiple of 4096 (the reduction block size)"
            )
        return chunk


#: Largest number of points a ``[sweep]`` grid may have.
MAX_SWEEP_POINTS = 10_000


class ComparisonConfig(_Frozen):
    """Which paired policy comparisons to report (docs/model.md §8).

    Without ``reference`` the ``comparison`` table has one row for every ordered pair of
    policies; with it, one row per other policy against the named reference.
    """

    reference: str | None = Field(
        None, description="policy every other policy is compared with; omit for all pairs"
    )


class PrecisionConfig(_Frozen):
    """Precision control (:func:`sim.experiments.comparison.project_to_precision`): add replications
    until the 95 % CI half-width of every reported paired ΔCLV (every policy against
    ``comparison.reference``, or every pair without one) is at most the target, or
    ``max_replications`` is reached. Off while ``target_ci_halfwidth`` is not set.
    """

    target_ci_halfwidth: Positive | None = Field(
        None, description="target 95 % CI half-width of ΔCLV, money units"
    )
    max_replications: int = Field(
        64, ge=1, le=100_000, description="cap on the replications precision control may reach"
    )


class OptimizeConfig(_Frozen):
    """Settings of ``sim optimize`` (:func:`sim.experiments.optimize.optimize_spend`): the per-stage
    (optionally per-segment) retention spend that maximises expected CLV net of spend,
    found on a common-random-numbers objective (fixed seed) and re-evaluated on fresh seeds.
    """

    stages: tuple[Literal["exploration", "formation", "stability", "decline"], ...] = Field(
        STAGES, min_length=1, max_length=4, strict=False, description="stages whose spend is optimised"
    )
    per_segment: bool = Field(False, description="a separate spend per segment (relationship, transactional)")
    max_spend: Positive = Field(20.0, description="upper bound on the spend per period searched, money units")
    start: StageNonNegative = Field(
        default_factory=StageNonNegative,
        description="starting spend per stage (and the spend of stages not optimised)",
    )
    method: Literal["coordinate", "powell"] = Field(
        "coordinate", description="coordinate-wise grid + bounded Brent search, or scipy's bounded Powell"
    )
    grid_points: int = Field(
        9,
        ge=3,
        le=63,
        description="coarse grid per coordinate (coordinate method), evaluated in one kernel call",
    )
    spend_tolerance: Positive = Field(
        0.05, description="absolute tolerance on the optimal spend, money units"
    )
    max_cycles: int = Field(4, ge=1, le=100, description="passes over the coordinates (coordinate method)")
    customers: int | None = Field(
        None,
        ge=1,
        le=1_000_000_000,
        description="customers of the optimisation objective (default population.customers)",
    )
    replications: int | None = Field(
        None, ge=1, le=100_000, description="replications of the objective (default run.replications)"
    )
    evaluation_seed: int | None = Field(
        None, ge=0, le=2**63 - 1, description="fresh seed for the reported estimates (default run.seed + 1)"
    )
    evaluation_customers: int | None = Field(
        None,
        ge=1,
        le=1_000_000_000,
        description="customers of the fresh evaluation (default: as the objective)",
    )
    evaluation_replications: int | None = Field(
        None, ge=1, le=100_000, description="replications of the fresh evaluation (default: as the objective)"
    )
    response_points: int = Field(
        21, ge=3, le=62, description="spends per stage on the response curves, 0 .. max_spend"
    )
    reference: str | None = Field(
        None,
        description="policy the optimum is compared with (default comparison.reference, else the first "
        "policy)",
    )

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, stages: tuple) -> tuple:
        if len(set(stages)) != len(stages):
            raise ValueError(f"stages must not repeat; got {list(stages)}")
        return stages

    @model_validator(mode="after")
    def _start_within_bounds(self) -> "OptimizeConfig":
        too_high = [
            f"start.{stage} = {value:g}"
            for stage, value in zip(STAGES, self.start.as_tuple())
            if value > self.max_spend
        ]
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
