"""Experiment configuration: TOML in, frozen and validated objects out.

Every parameter of the lifecycle model lives here, with its meaning, its unit and its
allowed range. :func:`load_config` reads a TOML file; :func:`config_from_dict` validates a
mapping. Both raise :class:`ConfigError` before any simulation work starts, with one line
per problem naming the TOML path of the field, the value given and what is allowed:

>>> config_from_dict({"population": {"relationship_share": 1.4}})   # doctest: +SKIP
ConfigError: 1 problem in the configuration:
  population.relationship_share = 1.4: must be <= 1 (a probability in [0, 1])

The model the parameters drive is documented in :mod:`sim.model`.
"""

from __future__ import annotations

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
    "PolicyConfig",
    "ExperimentConfig",
    "load_config",
    "config_from_dict",
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


class ConfigError(ValueError):
    """A configuration that cannot be run.

    ``problems`` lists one ``(path, message)`` pair per problem; ``str(error)`` gives one
    line per problem, each naming the field's TOML path, the value and what is allowed.
    """

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the configuration{where}:"
        lines = [head] + [f"  {path}: {message}" if path else f"  {message}" for path, message in self.problems]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- building blocks


class _Frozen(BaseModel):
    """Base for config sections: immutable, unknown keys rejected, strict-ish types."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Positive = Annotated[float, Field(gt=0.0)]


class StageValues(_Frozen):
    """One number per lifecycle stage (exploration, formation, stability, decline)."""

    exploration: float = 0.0
    formation: float = 0.0
    stability: float = 0.0
    decline: float = 0.0

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

    dissatisfied: float = 0.0
    satisfied: float = 0.0
    highly_satisfied: float = 0.0

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

    See :mod:`sim.model` for the equations (M1)-(M5) these parameters enter.
    """

    base_performance: SegmentValues = Field(
        default_factory=lambda: SegmentValues(relationship=0.3, transactional=0.2),
        description="mean perceived performance of product and service without care spend",
    )
    performance_fit_sd: NonNegative = Field(0.3, description="sd of a customer's persistent fit with the offer")
    performance_noise: NonNegative = Field(0.4, description="sd of the period-to-period noise in perceived performance")
    initial_expectation: float = Field(0.3, description="expectation Q0 when the relationship starts")
    expectation_adaptation: Probability = Field(0.1, description="share of the gap Q1-Q0 closed by expectations each period")
    expectation_anchor: Probability = Field(0.5, description="weight of the initial expectation in the level expectations adapt to")
    satisfaction_memory: Probability = Field(0.5, description="weight of last period's satisfaction in this period's")
    satisfaction_scale: Positive = Field(0.3, description="disconfirmation that moves satisfaction from 0.5 to 0.73")
    satisfaction_tolerance: NonNegative = Field(0.3, description="|Q1-Q0| within which a customer is 'satisfied' rather than dis- or highly satisfied")
    care_gain: NonNegative = Field(1.0, description="largest gain in perceived performance from care spend (diminishing returns)")
    care_scale: Positive = Field(4.0, description="spend per period at which 63 % of the care gain is reached, money units")
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
    segment adjustments of :func:`sim.model.transition_probabilities`):

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
    long_term_periods: int = Field(36, ge=1, description="tenure that makes a stability relationship 'long-term' (pattern IV)")

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
    """Cash flows and the six CLV parts (MODEL.md §4); see :mod:`sim.model` (C1)-(C6)."""

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
        ``config.with_overrides(run={"seed": 3}, population={"customers": 1000})``."""
        data = self.model_dump(mode="python")
        for section, values in sections.items():
            if isinstance(values, dict) and isinstance(data.get(section), dict):
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
            message = f"must be {symbol} {bound}"
            field_name = str(clean[-1]) if clean else ""
            if _is_probability_path(clean, data):
                message += " (a probability in [0, 1])"
        if kind == "missing":
            problems.append((path, "is required"))
            continue
        if kind == "too_short" and clean == ["policies"] and any(p.startswith("policies[") for p, _ in problems):
            continue  # a consequence of a bad policy already reported
        if isinstance(value, (dict, list, tuple)) and kind.startswith("value_error"):
            problems.append((path, message))
        else:
            problems.append((f"{path} = {_format_value(value)}", message))
    return problems


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
        raise ConfigError(_problems_from(error, data), source) from None
    _check_numerics(config, source)
    return config


def _check_numerics(config: ExperimentConfig, source: str | None) -> None:
    """Cross-field checks that pydantic's per-field ranges cannot express."""
    problems = []
    for path, value in _walk_floats(config.model_dump(mode="python")):
        if isinstance(value, float) and not math.isfinite(value):
            problems.append((path, f"= {value}: must be a finite number"))
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
        every key is optional and defaults to the baseline model.

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
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError([("", f"{source} is not UTF-8 text (byte {error.start}): save it as UTF-8")]) from None
    if not text.strip():
        raise ConfigError([("", f"{source} is empty: an experiment needs at least a name")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("", f"{source} is not valid TOML: {error}")]) from None
    return config_from_dict(data, source)
