"""A figure's versioned description: the ``[figure]`` table of one TOML file of
``experiments/figures/`` (number, kind, title, caption, sizes, kind-specific parameters) and
the experiment(s) it simulates; and :class:`FigureData`, what a figure draws.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any, Callable, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sim.data.cdnow import CDNOW_CALIBRATION_END, CDNOW_HOLDOUT_END, CDNOW_UNIT
from sim.exceptions import ConfigError
from sim.model.config import ExperimentConfig, config_from_dict
from sim.model.names import STAGES

__all__ = [
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_OUT",
    "DEFAULT_QUICK_OUT",
    "FIGURE_SUFFIXES",
    "FRONTIER_COLUMNS",
    "FigureSpec",
    "FigureData",
]

#: Where the figure configs live (relative to the working directory).
DEFAULT_CONFIG_DIR = Path("experiments") / "figures"


#: Where the full run writes.
DEFAULT_OUT = Path("results") / "figures"


#: Where ``--quick`` writes (not committed; keeps the full run's files intact).
DEFAULT_QUICK_OUT = Path("results") / "figures-quick"


#: File types ``sim figures`` writes (rule 3 of :mod:`sim.io.paths`: never over such a file of a
#: folder that is not a sim result, not even with --force).
FIGURE_SUFFIXES = (".csv", ".json", ".md", ".png", ".svg", ".txt")


#: Columns of the frontier panel's data (figure 7).
FRONTIER_COLUMNS = ["policy", "retention_spend", "clv_mean", "clv_se", "ci_low", "ci_high", "efficient"]


_SKIPPED = "skipped"


class _Sizes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    customers: int = Field(ge=1, le=100_000_000)
    replications: int = Field(1, ge=1, le=10_000)
    horizon: int | None = Field(None, ge=1, le=100_000)
    params: dict[str, Any] = Field(default_factory=dict)


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    number: int = Field(ge=1, le=999)
    kind: str
    title: str = Field(min_length=1)
    caption: str = Field(min_length=1)
    full: _Sizes
    quick: _Sizes
    params: dict[str, Any] = Field(default_factory=dict)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class _LifecycleParams(_Params):
    policy: str
    tenure_step: int = Field(3, ge=1)
    min_customer_periods: int = Field(100, ge=1)


class _PoliciesParams(_Params):
    policies: tuple[str, ...] | None = None


class _LoyaltyParams(_Params):
    policy: str
    stages: tuple[Literal["exploration", "formation", "stability", "decline", "all"], ...] = STAGES
    min_customer_periods: int = Field(100, ge=1)
    points: int = Field(201, ge=2, le=100_001)


class _ResponseParams(_Params):
    base_policy: str
    stages: tuple[Literal["exploration", "formation", "stability", "decline"], ...] = STAGES
    spends: tuple[float, ...] = Field(min_length=2)

    @field_validator("spends")
    @classmethod
    def _non_negative_increasing(cls, spends):
        if any(s < 0 or not math.isfinite(s) for s in spends) or list(spends) != sorted(set(spends)):
            raise ValueError(
                f"spends must be distinct finite numbers >= 0 in increasing order; got {list(spends)}"
            )
        return spends


class _ComparisonParams(_Params):
    reference: str


class _ValueParams(_Params):
    policies: tuple[str, ...] | None = None
    points: int = Field(201, ge=2, le=100_001)


class _ValidationParams(_Params):
    horizons: tuple[int, ...] = Field(min_length=1)
    survivors: tuple[int, ...] = Field(min_length=2)
    holdout: tuple[int, ...] = ()
    cohort_policy: str | None = None

    @field_validator("horizons")
    @classmethod
    def _positive(cls, horizons):
        if any(h < 1 for h in horizons) or list(horizons) != sorted(set(horizons)):
            raise ValueError(
                f"horizons must be distinct whole numbers >= 1 in increasing order; got {list(horizons)}"
            )
        return horizons


class _AgentParams(_Params):
    policy: str
    scenarios: tuple[str, ...] = Field(min_length=1)


class _TransactionFitParams(_Params):
    """A figure of the customer-base models fitted to a bundled transaction log (no simulation)."""

    dataset: Literal["cdnow_sample"] = "cdnow_sample"
    calibration_end: str = CDNOW_CALIBRATION_END
    holdout_end: str = CDNOW_HOLDOUT_END
    unit: Literal["day", "week", "month"] = CDNOW_UNIT
    models: tuple[str, ...] = Field(("bgnbd", "pnbd"), min_length=1)

    @field_validator("calibration_end", "holdout_end")
    @classmethod
    def _iso_day(cls, value):
        import datetime

        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be a day YYYY-MM-DD; got {value!r}") from None
        return value

    @field_validator("models")
    @classmethod
    def _transaction_models(cls, models):
        from sim.fitting.base import get_model, model_names

        names = model_names()
        wrong = [name for name in models if name not in names or get_model(name).kind != "transactions"]
        if wrong or len(set(models)) != len(models):
            transaction = [name for name in names if get_model(name).kind == "transactions"]
            raise ValueError(
                f"models must be distinct transaction models of the registry ({', '.join(transaction)}); "
                f"got {list(models)}"
            )
        return models


class _FittedBaseParams(_TransactionFitParams):
    """The lifecycle fit of a bundled log and a policy comparison on its live customers."""

    models: tuple[str, ...] = Field(("lifecycle",), min_length=1)
    margin: float = Field(0.3, gt=0.0, le=1.0)
    seed: int = Field(20261122, ge=0, le=2**63 - 1)

    @field_validator("models")
    @classmethod
    def _with_lifecycle(cls, models):
        if "lifecycle" not in models:
            raise ValueError(
                f"models must include 'lifecycle' (the fitted base is the lifecycle model's); "
                f"got {list(models)}"
            )
        return models


@dataclasses.dataclass(frozen=True)
class _Kind:
    params: type[_Params]
    # required experiment labels: None: any, at least one; (): none -- a figure of a bundled
    # data set (e.g. the CDNOW fits), whose file has no [experiment] table
    experiments: tuple[str, ...] | None
    build: Callable
    draw: Callable
    facts: Callable  # (spec, parameters, configs) -> {fact: value or a stand-in of its type}, before any work


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """One figure's versioned description (a TOML file of ``experiments/figures/``).

    Attributes
    ----------
    name : str
        The file's stem; the output files are ``<name>.png/.svg/.csv/.txt``.
    path : Path
        The TOML file.
    number : int
        The figure's number (the order of the index).
    kind : str
        One of :data:`sim.plotting.gallery.kinds.FIGURE_KINDS`.
    title, caption : str
        The caption may hold ``{placeholders}`` filled from the sizes and the facts of the
        figure's data (see :class:`FigureData`).
    full, quick : dict
        ``customers``, ``replications``, ``horizon`` (optional) and ``params`` overrides.
    params : dict
        Kind-specific parameters (validated).
    experiments : dict
        ``{label: experiment data}`` merged with its ``base``, not yet sized; empty for a
        kind that draws a bundled data set rather than a simulation (``cdnow_tracking``,
        ``cdnow_conditional``: the file has no ``[experiment]`` table, and ``customers`` of
        ``full``/``quick`` is the data set's cohort size, checked when the figure is built).
    parameter_model : type
        The kind's pydantic model of ``params`` (from the registry of kinds,
        :data:`sim.plotting.gallery.kinds.FIGURE_KINDS`).
    """

    name: str
    path: Path
    number: int
    kind: str
    title: str
    caption: str
    full: dict
    quick: dict
    params: dict
    experiments: dict
    parameter_model: type

    def sizes(self, quick: bool = False) -> dict:
        """``customers, replications, horizon`` of the full or the quick run."""
        sizes = self.quick if quick else self.full
        return {key: sizes[key] for key in ("customers", "replications", "horizon")}

    def parameters(self, quick: bool = False):
        """The kind's validated parameters (``[figure.params]`` with the quick overrides)."""
        merged = {**self.params, **(self.quick["params"] if quick else self.full["params"])}
        return self.parameter_model.model_validate(merged)

    def config(self, label: str = "main", quick: bool = False) -> ExperimentConfig:
        """The validated experiment ``label`` at the full or quick sizes."""
        if label not in self.experiments:
            raise KeyError(
                f"figure {self.name!r} has no experiment {label!r}; it has: {', '.join(self.experiments)}"
            )
        data = copy.deepcopy(self.experiments[label])
        sizes = self.sizes(quick)
        data.setdefault("population", {})["customers"] = sizes["customers"]
        data.setdefault("run", {})["replications"] = sizes["replications"]
        if sizes["horizon"] is not None:
            data["run"]["horizon"] = sizes["horizon"]
        return config_from_dict(
            data, f"{self.path} [{'experiment' if label == 'main' else 'experiments.' + label}]"
        )


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path, source: str) -> dict:
    if not path.exists():
        raise ConfigError([("", f"no such file: {path}")], source)
    if path.is_dir():
        raise ConfigError([("", f"{path} is a directory, not a TOML file")], source)
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError([("", f"{path} is not UTF-8 text (byte {error.start})")], source) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("", f"{path} is not valid TOML: {error}")], source) from None


def _experiment_data(table: Any, label: str, path: Path, source: str, seen: tuple = ()) -> dict:
    where = "experiment" if label == "main" else f"experiments.{label}"
    if not isinstance(table, dict):
        raise ConfigError(
            [(where, f"must be a table (an experiment config), got {type(table).__name__}")], source
        )
    table = dict(table)
    base = table.pop("base", None)
    if base is None:
        return table
    if not isinstance(base, str):
        raise ConfigError(
            [(f"{where}.base = {base!r}", "must be a path (relative to the figure file)")], source
        )
    base_path = (path.parent / base).resolve()
    if base_path in seen:
        raise ConfigError([(f"{where}.base = {base!r}", "the bases refer to each other in a loop")], source)
    base_data = _experiment_data(_read_toml(base_path, source), label, base_path, source, seen + (base_path,))
    return _deep_merge(base_data, table)


def _pydantic_problems(error: ValidationError, prefix: str) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        path = ".".join([prefix] + [str(part) for part in item["loc"]])
        message = item["msg"].replace("Value error, ", "")
        if item["type"] == "extra_forbidden":
            problems.append((path, "unknown key"))
        elif item["type"] == "missing":
            problems.append((path, "is required"))
        else:
            problems.append((f"{path} = {item.get('input')!r}", message))
    return problems


@dataclasses.dataclass
class FigureData:
    """What a figure draws: ``table`` (written as ``<name>.csv``, exactly the plotted
    data), ``facts`` (values for the caption's placeholders), and ``status`` (``"ok"``, or
    ``"skipped: <why>"`` when the figure cannot be made here).
    """

    table: pd.DataFrame
    facts: dict = dataclasses.field(default_factory=dict)
    status: str = "ok"
