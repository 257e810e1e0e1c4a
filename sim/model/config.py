"""Experiment configuration: TOML in, frozen and validated objects out.

Every parameter of the lifecycle model lives here, with its meaning, its unit and its
allowed range. :func:`load_config` reads a TOML file; :func:`config_from_dict` validates a
mapping. Both raise :class:`~sim.exceptions.ConfigError` before any simulation work starts, with one line
per problem naming the TOML path of the field, the value given and what is allowed:

>>> config_from_dict({"population": {"relationship_share": 1.4}})   # doctest: +SKIP
ConfigError: 1 problem in the configuration:
  population.relationship_share = 1.4: must be <= 1 (a probability in [0, 1])

The model the parameters drive is documented in :mod:`sim.model.equations`.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sim.exceptions import ConfigError
from sim.model.config_errors import _format_value, _problems_from
from sim.model.market_config import AGENT_BYTES_PER_CUSTOMER, MAX_MARKET_CUSTOMERS, MarketConfig
from sim.model.names import SATISFACTION_TYPES
from sim.model.sections import (
    MAX_SWEEP_POINTS,
    ComparisonConfig,
    DynamicsConfig,
    EconomicsConfig,
    LoyaltyConfig,
    OptimizeConfig,
    PolicyConfig,
    PopulationConfig,
    PrecisionConfig,
    RunConfig,
    TransitionConfig,
    WordOfMouthConfig,
    _default_policies,
    _flatten_sweep,
    _Frozen,
)

__all__ = [
    "ExperimentConfig",
    "load_config",
    "config_to_toml",
    "write_config",
    "MAX_POLICIES",
    "with_run_overrides",
    "config_from_dict",
    "apply_overrides",
    "sweep_grid",
]


# --------------------------------------------------------------------------- building blocks


# --------------------------------------------------------------------------- model sections


# --------------------------------------------------------------------------- policies


# --------------------------------------------------------------------------- run + experiment


# --------------------------------------------------------------------------- market (agent engine)


#: The most policies an experiment may hold.
MAX_POLICIES = 64


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
        default_factory=_default_policies, min_length=1, max_length=MAX_POLICIES, strict=False
    )
    run: RunConfig = Field(default_factory=RunConfig)
    engine: Literal["core", "abm"] = Field(
        "core",
        description="the engine of `sim run`: the numba cohort core or the SimPy agent-based market "
        "(sim.engines.market)",
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
        scalars (number, string or boolean); the grid has at most ``MAX_SWEEP_POINTS`` points.
        """
        if not isinstance(sweep, dict):
            raise ValueError(f"sweep must be a table of parameter paths, got {type(sweep).__name__}")
        flat = _flatten_sweep(sweep)
        points = 1
        for path, values in flat.items():
            if path.split(".")[0] in ("sweep", "optimize"):
                raise ValueError(f"sweep.{path!r}: the [sweep] and [optimize] sections cannot be swept")
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(
                    f"sweep.{path!r} = {_format_value(values)}: must be a non-empty list of values"
                )
            for value in values:
                if not isinstance(value, (bool, int, float, str)):
                    raise ValueError(
                        f"sweep.{path!r} = {_format_value(values)}: values must be numbers, strings or "
                        "booleans"
                    )
            points *= len(values)
        if points > MAX_SWEEP_POINTS:
            raise ValueError(
                f"the sweep grid has {points:,} points; at most {MAX_SWEEP_POINTS:,} are allowed"
            )
        return {path: tuple(values) for path, values in flat.items()}

    @model_validator(mode="after")
    def _market_policies_exist(self) -> "ExperimentConfig":
        """Every policy named by a ``[market.*] policies`` list must be a policy of the config."""
        names = self.policy_names
        for section in ("budget", "capacity", "word_of_mouth", "acquisition", "competitor"):
            listed = getattr(self.market, section).policies
            unknown = [name for name in listed if name not in names]
            if unknown:
                raise ValueError(
                    f"market.{section}.policies = {list(listed)}: no policy named {unknown}; "
                    f"policies: {', '.join(names)}"
                )
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
        ``sweep`` and ``policies`` are replaced as a whole (``sweep={}`` removes the sweep).
        """
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


def config_from_dict(data: dict, source: str | None = None) -> ExperimentConfig:
    """Validate a mapping (e.g. parsed TOML) into an :class:`ExperimentConfig`.

    Raises
    ------
    ConfigError
        Listing every problem found, each with its field path, value and what is allowed.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            [("", f"the configuration must be a table of sections, got {type(data).__name__}")], source
        )
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as error:
        problems = _problems_from(error, data, ExperimentConfig)
        reported = {path.split(" = ")[0] for path, _ in problems}
        problems += [
            problem for problem in _raw_reference_problems(data) if problem[0].split(" = ")[0] not in reported
        ]
        raise ConfigError(problems, source) from None
    _check_numerics(config, source)
    _check_references(config, source)
    _check_market(config, source)
    if config.sweep:
        _check_sweep(config, source)
    return config


def _check_market(config: ExperimentConfig, source: str | None) -> None:
    problems = market_problems(config)
    if problems:
        raise ConfigError(problems, source)


def _check_engine(config: ExperimentConfig, source: str | None) -> None:
    """A file for the core engine must not switch on market interactions (only the agent
    engine simulates them) nor sweep ``market.*`` paths: nothing is silently ignored.
    """
    if config.engine != "core":
        return
    problems = []
    interactions = config.market.interactions
    if interactions:
        fields = ", ".join(f"market.{name}.enabled" for name in interactions)
        problems.append(
            (
                f"{fields} = true",
                'the market interactions run only on the agent engine: set engine = "abm" in the file '
                '(engine = "core", the default, would ignore them), or switch them off',
            )
        )
    swept = [path for path in config.sweep if path.split(".")[0] == "market"]
    if swept:
        problems.append(
            (
                f"sweep.{swept[0]!r}",
                '[market] settings are used only by the agent engine (engine = "abm"), which does not '
                "run sweeps; the core engine would ignore them",
            )
        )
    if problems:
        raise ConfigError(problems, source)


def _check_references(config: ExperimentConfig, source: str | None) -> None:
    """Policy names used by the comparison, precision and optimize sections must exist."""
    names = config.policy_names
    problems = _unknown_policy_problems(
        names,
        {
            "comparison.reference": config.comparison.reference,
            "optimize.reference": config.optimize.reference,
        },
    )
    precision = config.precision
    if precision.target_ci_halfwidth is not None:
        if len(names) < 2:
            problems.append(
                (
                    "precision.target_ci_halfwidth",
                    "precision control needs at least two policies (it targets paired ΔCLV)",
                )
            )
        if precision.max_replications < config.run.replications:
            problems.append(
                (
                    f"precision.max_replications = {precision.max_replications}",
                    f"must be >= run.replications = {config.run.replications}",
                )
            )
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
    are reported together with the field problems of a config that does not validate.
    """
    policies = data.get("policies")
    if policies is None:
        names = tuple(policy.name for policy in _default_policies())
    elif isinstance(policies, list) and all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in policies
    ):
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
    does not lead into the configuration's tables.
    """
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
            allowed = (
                [key for key, item in node.items() if isinstance(item, dict)]
                if isinstance(node, dict)
                else []
            )
            close = difflib.get_close_matches(part, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(f"{part!r} is not a table of the configuration{hint}")
        node = node[part]
        index += 1
    node[parts[-1]] = value


def apply_overrides(
    config: ExperimentConfig, values: dict[str, Any], source: str | None = None
) -> ExperimentConfig:
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
    order (the last swept path varies fastest); ``[{}]`` without a sweep.
    """
    import itertools

    paths = list(config.sweep)
    return [
        dict(zip(paths, combination)) for combination in itertools.product(*(config.sweep[p] for p in paths))
    ]


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
                problems.append(
                    (
                        f"sweep point {number} of {len(grid)} ({setting})",
                        f"{path}: {message}" if path else message,
                    )
                )
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
        raise ConfigError(
            [("", f"{source} is not UTF-8 text (byte {error.start}): save it as UTF-8")]
        ) from None
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as some editors write
    empty = (
        f"{source} is empty (no settings, only blank space or comments): an experiment needs at least a name"
    )
    if not text.strip():
        raise ConfigError([("", empty)])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("", f"{source} is not valid TOML: {error}")]) from None
    if not data:  # only comments: the same as an empty file
        raise ConfigError([("", empty)])
    snapshot = (
        (data.get("population") or {}).get("snapshot") if isinstance(data.get("population"), dict) else None
    )
    if isinstance(snapshot, str):  # relative to the config file, as sim fit writes it
        resolved = Path(snapshot) if Path(snapshot).is_absolute() else path.resolve().parent / snapshot
        if not resolved.is_file():
            raise ConfigError(
                [
                    (
                        f"population.snapshot = {snapshot!r}",
                        f"no such file ({resolved}); the path is relative to the config file",
                    )
                ],
                source,
            )
        data["population"]["snapshot"] = str(resolved)
    config = config_from_dict(data, source)
    _check_engine(config, source)
    return config


#: Most prospects won or deterred per talk on average (``people_told * |influence|`` of a
#: satisfaction type) with ``market.word_of_mouth`` on: each is a simulated arrival.
MAX_WORD_OF_MOUTH_PROSPECTS = 1_000.0


def market_servers(config: ExperimentConfig) -> float:
    """Servers of ``[market.capacity]`` for the initial cohort: ``max(1, round(servers_per_1000
    * customers / 1000))`` plus ``floor(spend_per_customer * customers / server_cost)`` bought
    (a float: inf when the purchase overflows).
    """
    capacity = config.market.capacity
    customers = config.population.customers
    base = max(1, int(round(capacity.servers_per_1000 * customers / 1000.0)))
    bought = capacity.spend_per_customer * customers / capacity.server_cost
    return base + (math.floor(bought) if math.isfinite(bought) else math.inf)


def word_of_mouth_problems(config: ExperimentConfig) -> list[tuple[str, str]]:
    """With ``market.word_of_mouth`` on, ``people_told * |influence|`` of every satisfaction
    type must be at most :data:`MAX_WORD_OF_MOUTH_PROSPECTS` (each prospect is simulated).
    """
    if not config.market.word_of_mouth.enabled:
        return []
    wom = config.word_of_mouth
    problems = []
    for name, told, influence in zip(
        SATISFACTION_TYPES, wom.people_told.as_tuple(), wom.influence.as_tuple()
    ):
        mean = told * abs(influence)
        if mean > MAX_WORD_OF_MOUTH_PROSPECTS:
            problems.append(
                (
                    f"word_of_mouth.people_told.{name}",
                    f"people_told.{name} * |influence.{name}| = {told:g} * {abs(influence):g} = {mean:g} "
                    f"prospects per talk must be <= {MAX_WORD_OF_MOUTH_PROSPECTS:g} with "
                    "market.word_of_mouth on (each prospect is a simulated arrival)",
                )
            )
    return problems


def market_problems(config: ExperimentConfig, *, agent_engine: bool | None = None) -> list[tuple[str, str]]:
    """Cross-field checks of the agent engine's ``[market]``: word-of-mouth arrivals per talk,
    the number of servers of ``[market.capacity]`` and (on the agent engine: ``agent_engine``,
    default ``config.engine == "abm"``) the cohort against ``market.max_customers``.
    """
    market = config.market
    customers = config.population.customers
    problems = word_of_mouth_problems(config)
    if agent_engine is None:
        agent_engine = config.engine == "abm"
    if agent_engine and customers > market.max_customers:
        problems.append(
            (
                f"population.customers = {customers}",
                f"must be <= market.max_customers = {market.max_customers} on the agent engine (engine = "
                f'"abm" holds every customer in memory, about {AGENT_BYTES_PER_CUSTOMER} bytes each per '
                f"market); lower population.customers or raise market.max_customers (at most "
                f"{MAX_MARKET_CUSTOMERS:,})",
            )
        )
    capacity = market.capacity
    if capacity.enabled:
        servers = market_servers(config)
        if servers > market.max_customers:
            problems.append(
                (
                    "market.capacity",
                    f"max(1, round(servers_per_1000 * customers / 1000)) + floor(spend_per_customer * "
                    f"customers / server_cost) = {servers:g} servers must be <= market.max_customers = "
                    f"{market.max_customers} (at most one open complaint per customer); got "
                    f"servers_per_1000 = {capacity.servers_per_1000:g}, spend_per_customer = "
                    f"{capacity.spend_per_customer:g}, server_cost = {capacity.server_cost:g}, "
                    f"population.customers = {customers}",
                )
            )
    return problems


def _without_none(value):
    """``value`` with every ``None`` left out of its tables (TOML has no null)."""
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_without_none(item) for item in value]
    return value


def config_to_toml(config: ExperimentConfig, header: Sequence[str] = ()) -> str:
    """The resolved config as TOML text, every parameter written out (deterministic: the
    fields in schema order), unset optional values (``None``) left out; ``header`` lines
    become ``#`` comments at the top. Written by ``tomli-w``; :func:`write_config` checks
    that the text loads back as the same config.
    """
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header)
    return comments + ("\n" if comments else "") + tomli_w.dumps(_without_none(config.to_toml_dict()))


def write_config(
    config: ExperimentConfig, path: str | Path, *, header: Sequence[str] = (), force: bool = False
) -> Path:
    """Write ``config`` as TOML to ``path``, after checking that the text loads back as the
    very same config (:func:`sim.config_from_dict` of the parsed text equals ``config``).

    The write is atomic (:func:`sim.io.results.atomic_write_text`). An existing file is kept
    unless ``force``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``force`` is false.
    RuntimeError
        If the text does not load back as ``config`` (a bug in the writer).
    """
    from sim.io.results import atomic_write_text

    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; choose another --out or pass --force to overwrite it")
    if path.exists() and path.is_dir():
        raise FileExistsError(f"{path} is a directory")
    text = config_to_toml(config, header)
    reloaded = config_from_dict(tomllib.loads(text), source=str(path))
    if reloaded != config:
        raise RuntimeError(
            f"the TOML written for {path} does not load back as the same config (a bug in sim.model.config)"
        )
    return atomic_write_text(path, text)


def with_run_overrides(
    config: ExperimentConfig,
    customers: int | None = None,
    replications: int | None = None,
    horizon: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
) -> ExperimentConfig:
    """``config`` with the sizes of a run replaced where given (``population.customers``,
    ``run.replications``, ``run.horizon``, ``run.seed``, ``run.threads``), validated like the
    config; ``config`` itself when nothing is given. The keyword overrides of
    :func:`sim.project`, :func:`sim.project_from` and :func:`sim.simulate_market`.

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`ExperimentConfig` (for a mapping, use
        :func:`config_from_dict`).
    ConfigError
        If an override is out of range.
    """
    if not isinstance(config, ExperimentConfig):
        hint = " (for a dict use sim.config_from_dict(data))" if isinstance(config, dict) else ""
        raise TypeError(
            f"config must be an ExperimentConfig (sim.load_config or sim.config_from_dict), "
            f"got {type(config).__name__}{hint}"
        )
    overrides_run = {
        key: value
        for key, value in (
            ("replications", replications),
            ("horizon", horizon),
            ("seed", seed),
            ("threads", threads),
        )
        if value is not None
    }
    overrides = {}
    if overrides_run:
        overrides["run"] = overrides_run
    if customers is not None:
        overrides["population"] = {"customers": customers}
    return config.with_overrides(**overrides) if overrides else config
