r"""The field's figures, regenerated with one command: ``sim figures [--quick] [--only NAME]``.

Every figure is described by a versioned TOML file in ``experiments/figures/`` (one per
figure): a ``[figure]`` table (number, kind, title, caption, sizes for the full run and
for ``--quick``, kind-specific ``params``) and the experiment(s) it simulates
(``[experiment]``, or ``[experiments.<label>]`` for figures that need several). An
experiment table is an ordinary experiment config (see :mod:`sim.model.config`); ``base =
"../baseline.toml"`` starts it from another config file (tables are merged key by key,
lists such as ``policies`` are replaced).

For each figure, :func:`make_figures` writes into the output folder (``results/figures/``
by default; ``results/figures-quick/`` with ``--quick``):

* ``<name>.png`` and ``<name>.svg`` — the figure, drawn in the project style
  (:mod:`sim.plotting.style`);
* ``<name>.csv`` — exactly the data drawn, as one tidy table (a ``panel`` column tells the
  panels apart where a figure has several);
* ``<name>.txt`` — the caption, with the sizes, seed and fitted values filled in;

plus ``README.md`` (an index: each figure, its caption and the command that made it) and
``manifest.json`` (sizes, seeds, timings, package versions, git commit).

No model logic lives here: every number comes from :func:`sim.project` (the numba core),
:func:`sim.engines.market.engine.simulate_market` (the agent engine), :mod:`sim.analytic` and
:mod:`sim.analytic.lifecycle_chain` (closed forms) and the model's own equations in
:mod:`sim.model.equations`; this module selects, aggregates and draws their tidy tables. The one
derived table is :func:`tenure_stage_table`, which obtains per-tenure, per-stage means
from the ``by_stage`` tables of runs with nested horizons (see there).

The figures (``kind``)
----------------------
1. ``lifecycle_curve`` — relationship level (loyalty) and profit per period against
   tenure, per lifecycle stage (docs/model.md §1).
2. ``stage_occupancy`` — shares of the cohort in each stage over time, per policy.
3. ``lifecycle_patterns`` — patterns I–IV: share of customers and mean CLV.
4. ``satisfaction_loyalty`` — the Jones & Sasser (1995) satisfaction→loyalty curve (M6)
   with its zones, and the simulated per-period retention against satisfaction.
5. ``satisfaction_trap`` — "maximise satisfaction" against stage-targeted spend:
   satisfaction over time and net CLV.
6. ``spend_response`` — CLV against the spend in each stage, optimum marked.
7. ``policy_comparison`` — paired ΔCLV with 95 % CIs and the spend–CLV frontier.
8. ``clv_decomposition`` — CLV1…CLV6, spend and acquisition per policy.
9. ``value_concentration`` — Lorenz/ABC curve against the 5/15/80 → 50/30/20 rule.
10. ``validation`` — simulated against closed form: Pfeifer & Carraway (2000) Markov-chain
    CLV, and shifted-beta-geometric survival fitted to Fader & Hardie's (2007) cohort.
11. ``agent_effects`` — agent engine: word of mouth on/off and a competitor's entry.
12. ``cdnow_tracking`` — BG/NBD and Pareto/NBD fitted to the CDNOW 1/10 sample: weekly and
    cumulative repeat transactions, actual against expected, calibration | holdout.
13. ``cdnow_conditional`` — the same fits: mean holdout transactions by calibration repeat
    count (0 .. 7+), actual and both models side by side.
14. ``cdnow_lifecycle`` — the lifecycle HMM on the same sample: the cohort's inferred stages,
    and the live customers' margin and paired ΔCLV per policy on the fitted config
    (:mod:`sim.fitting.bridge`).

Figures of data (12–14) draw a bundled transaction log through
:func:`sim.fitting.evaluation.fit_transactions` instead of a simulation: their kinds require
no experiment (``_Kind.experiments == ()``), their files have no ``[experiment]`` table, and
``customers`` of ``full`` and ``quick`` is the data set's cohort size (checked when built);
see :mod:`sim.plotting.gallery.fits`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pydantic import ValidationError

from sim.exceptions import ConfigError
from sim.model.config import ExperimentConfig
from sim.plotting.gallery.builders import (
    _agent_effects_facts,
    _build_agent_effects,
    _build_clv_decomposition,
    _build_lifecycle_curve,
    _build_lifecycle_patterns,
    _build_policy_comparison,
    _build_satisfaction_loyalty,
    _build_satisfaction_trap,
    _build_spend_response,
    _build_stage_occupancy,
    _build_validation,
    _build_value_concentration,
    _draw_agent_effects,
    _draw_clv_decomposition,
    _draw_lifecycle_curve,
    _draw_lifecycle_patterns,
    _draw_policy_comparison,
    _draw_satisfaction_loyalty,
    _draw_satisfaction_trap,
    _draw_spend_response,
    _draw_stage_occupancy,
    _draw_validation,
    _draw_value_concentration,
    _lifecycle_curve_facts,
    _main_size_facts,
    _policy_comparison_facts,
    _satisfaction_loyalty_facts,
    _satisfaction_trap_facts,
    _spend_response_facts,
    _stage_occupancy_facts,
    _validation_facts,
    _value_concentration_facts,
)
from sim.plotting.gallery.fits import (
    _build_cdnow_conditional,
    _build_cdnow_lifecycle,
    _build_cdnow_tracking,
    _draw_cdnow_conditional,
    _draw_cdnow_lifecycle,
    _draw_cdnow_tracking,
    _fitted_base_facts,
    _transaction_fit_facts,
)
from sim.plotting.gallery.spec import (
    DEFAULT_CONFIG_DIR,
    FigureData,
    FigureSpec,
    _AgentParams,
    _ComparisonParams,
    _experiment_data,
    _FittedBaseParams,
    _Header,
    _Kind,
    _LifecycleParams,
    _LoyaltyParams,
    _Params,
    _PoliciesParams,
    _pydantic_problems,
    _read_toml,
    _ResponseParams,
    _TransactionFitParams,
    _ValidationParams,
    _ValueParams,
)
from sim.plotting.gallery.tables import response_config

__all__ = [
    "FIGURE_KINDS",
    "load_figure_spec",
    "load_figure_specs",
    "figure_data",
    "figure_caption",
    "draw_figure",
]


# =========================================================================== derived tables


# =========================================================================== plot functions


# =========================================================================== figure specs


def load_figure_spec(path: str | Path) -> FigureSpec:
    """Read and validate one figure TOML file (every experiment at both sizes).

    Raises
    ------
    ConfigError
        For a missing or malformed file, an unknown key or kind, a bad parameter, an
        experiment that is not a valid config, a caption that is not a valid template or
        uses a placeholder the figure does not provide, or a ``spend_response`` sweep that
        cannot be built (base policy not of kind ``stage``, more than 64 policies) — one
        line per problem, before any work.
    """
    path = Path(path)
    source = str(path)
    data = _read_toml(path, source)
    unknown = [key for key in data if key not in ("figure", "experiment", "experiments")]
    if unknown:
        raise ConfigError(
            [(key, "unknown top-level key; allowed: figure, experiment, experiments") for key in unknown],
            source,
        )
    if "figure" not in data:
        raise ConfigError(
            [("figure", "is required: the [figure] table (number, kind, title, caption, full, quick)")],
            source,
        )
    try:
        header = _Header.model_validate(data["figure"])
    except ValidationError as error:
        raise ConfigError(_pydantic_problems(error, "figure"), source) from None
    if header.kind not in FIGURE_KINDS:
        raise ConfigError([(f"figure.kind = {header.kind!r}", f"allowed: {', '.join(FIGURE_KINDS)}")], source)
    kind = FIGURE_KINDS[header.kind]
    given = [key for key in ("experiment", "experiments") if key in data]
    if kind.experiments == () and given:  # a figure of a data set
        raise ConfigError(
            [(given[0], f"kind {header.kind!r} draws a bundled data set, not a simulation: leave it out")],
            source,
        )
    if len(given) == 2:
        raise ConfigError(
            [("experiment", "give either [experiment] or [experiments.<label>], not both")], source
        )
    if kind.experiments == ():
        raw = {}
    elif "experiment" in data:
        raw = {"main": data["experiment"]}
    elif isinstance(data.get("experiments"), dict) and data["experiments"]:
        raw = dict(data["experiments"])
    else:
        raise ConfigError([("experiment", "is required: the experiment config the figure simulates")], source)
    experiments = {label: _experiment_data(table, label, path, source) for label, table in raw.items()}
    if kind.experiments is not None:
        missing = [label for label in kind.experiments if label not in experiments]
        extra = [label for label in experiments if label not in kind.experiments]
        problems = [
            (
                ("experiment" if label == "main" else f"experiments.{label}"),
                f"is required by kind {header.kind!r}",
            )
            for label in missing
        ]
        problems += [
            (
                f"experiments.{label}",
                f"unknown for kind {header.kind!r}; it uses: {', '.join(kind.experiments)}",
            )
            for label in extra
        ]
        if problems:
            raise ConfigError(problems, source)
    spec = FigureSpec(
        name=path.stem,
        path=path,
        number=header.number,
        kind=header.kind,
        title=header.title,
        caption=header.caption,
        full=header.full.model_dump(),
        quick=header.quick.model_dump(),
        params=dict(header.params),
        experiments=experiments,
        parameter_model=kind.params,
    )
    for quick in (False, True):
        try:
            parameters = spec.parameters(quick)
        except ValidationError as error:
            prefix = "figure.quick.params" if quick and header.quick.params else "figure.params"
            raise ConfigError(_pydantic_problems(error, prefix), source) from None
        configs = {label: spec.config(label, quick) for label in experiments}  # raises ConfigError
        _check_policy_names(spec, parameters, configs, source)
        _check_kind(spec, parameters, configs, source, quick)
        _check_caption(spec, parameters, configs, source)
    return spec


def _check_policy_names(spec: FigureSpec, parameters, configs: dict, source: str) -> None:
    """Policy names in the parameters must exist in the experiment they refer to."""
    main = configs.get("main")
    problems = []

    def need(field: str, name: str, config: ExperimentConfig) -> None:
        if name not in config.policy_names:
            problems.append(
                (
                    f"figure.params.{field} = {name!r}",
                    f"no such policy; policies: {', '.join(config.policy_names)}",
                )
            )

    for field in ("policy", "base_policy", "reference"):
        name = getattr(parameters, field, None)
        if name is not None and main is not None:
            need(field, name, main)
    for name in getattr(parameters, "policies", None) or ():
        if main is not None:
            need("policies", name, main)
    if spec.kind == "validation" and parameters.cohort_policy is not None:
        need("cohort_policy", parameters.cohort_policy, configs["cohort"])
    if spec.kind == "agent_effects":
        for label in parameters.scenarios:
            if label not in configs:
                problems.append(
                    (
                        f"figure.params.scenarios: {label!r}",
                        f"no [experiments.{label}]; experiments: {', '.join(configs)}",
                    )
                )
            else:
                need("policy", parameters.policy, configs[label])
    if problems:
        raise ConfigError(problems, source)


def _check_kind(spec: FigureSpec, parameters, configs: dict, source: str, quick: bool) -> None:
    """What a kind builds from its parameters, built once here without simulating (the
    spend-response sweep: a stage base policy, at most 64 policies).
    """
    if spec.kind == "spend_response":
        try:
            response_config(configs["main"], parameters.base_policy, parameters.stages, parameters.spends)
        except (ConfigError, ValueError) as error:
            where = " (quick sizes)" if quick else ""
            raise ConfigError([(f"figure.params{where}", " ".join(str(error).split()))], source) from None


def _check_caption(spec: FigureSpec, parameters, configs: dict, source: str) -> None:
    """The caption formats with the facts the figure will provide (names, syntax and format
    specifications, with each fact's value or a stand-in of its type), before any work.
    """
    facts = FIGURE_KINDS[spec.kind].facts(spec, parameters, configs)
    try:
        _format_caption(spec.caption, facts)
    except KeyError as error:
        raise ConfigError(
            [
                (
                    f"figure.caption: {{{error.args[0]}}}",
                    f"the figure does not provide it; available: {', '.join(sorted(facts))}",
                )
            ],
            source,
        ) from None
    except (IndexError, ValueError, TypeError, AttributeError) as error:
        raise ConfigError(
            [
                (
                    "figure.caption",
                    (
                        f"not a valid caption template: {error}; placeholders are "
                        "{name} or {name:format}, literal braces {{ and }}"
                    ),
                )
            ],
            source,
        ) from None


def load_figure_specs(
    directory: str | Path = DEFAULT_CONFIG_DIR, only: Sequence[str] | None = None
) -> list[FigureSpec]:
    """Every figure spec of ``directory`` (``*.toml``), in figure-number order.

    Parameters
    ----------
    only
        Names (file stems) to load; all if ``None``.

    Raises
    ------
    ConfigError
        For a missing folder, two figures with one number, or any problem of a spec
        (:func:`load_figure_spec`).
    ValueError
        For a name in ``only`` that is not a figure (the names are listed).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError([("", f"no figure configs: {directory} is not a folder")])
    paths = {path.stem: path for path in sorted(directory.glob("*.toml"))}
    if not paths:
        raise ConfigError([("", f"no figure configs (*.toml) in {directory}")])
    if only is not None and (
        isinstance(only, str)
        or not all(isinstance(name, str) and name.strip() for name in only)
        or not len(only)
    ):
        raise ValueError(
            f"--only {only!r}: give one or more figure names (file stems; an empty name is not a "
            f"figure, and no --only makes them all); figures: {', '.join(paths)}"
        )
    if only:
        unknown = [name for name in only if name not in paths]
        if unknown:
            import difflib

            hints = [
                f"{name!r}"
                + (
                    f" (did you mean {close[0]!r}?)"
                    if (close := difflib.get_close_matches(name, paths, 1))
                    else ""
                )
                for name in unknown
            ]
            raise ValueError(f"--only: no figure {', '.join(hints)}; figures: {', '.join(paths)}")
        paths = {name: paths[name] for name in only}
    specs = [load_figure_spec(path) for path in paths.values()]
    numbers: dict[int, str] = {}
    for spec in specs:
        if spec.number in numbers:
            raise ConfigError(
                [(f"figure.number = {spec.number}", f"used by both {numbers[spec.number]} and {spec.name}")],
                str(spec.path),
            )
        numbers[spec.number] = spec.name
    return sorted(specs, key=lambda spec: spec.number)


# =========================================================================== figure data


# --------------------------------------------------------------------------- caption facts, before work
# What each builder puts in FigureData.facts, known from the configs alone: the values
# themselves where they do not need a simulation, else a stand-in of the same type
# (tests/plotting/test_plotting_gallery.py checks the names and types against the built figures).


FIGURE_KINDS: dict[str, _Kind] = {
    "lifecycle_curve": _Kind(
        _LifecycleParams, ("main",), _build_lifecycle_curve, _draw_lifecycle_curve, _lifecycle_curve_facts
    ),
    "stage_occupancy": _Kind(
        _PoliciesParams, ("main",), _build_stage_occupancy, _draw_stage_occupancy, _stage_occupancy_facts
    ),
    "lifecycle_patterns": _Kind(
        _Params, ("main",), _build_lifecycle_patterns, _draw_lifecycle_patterns, _main_size_facts
    ),
    "satisfaction_loyalty": _Kind(
        _LoyaltyParams,
        ("main",),
        _build_satisfaction_loyalty,
        _draw_satisfaction_loyalty,
        _satisfaction_loyalty_facts,
    ),
    "satisfaction_trap": _Kind(
        _PoliciesParams,
        ("main",),
        _build_satisfaction_trap,
        _draw_satisfaction_trap,
        _satisfaction_trap_facts,
    ),
    "spend_response": _Kind(
        _ResponseParams, ("main",), _build_spend_response, _draw_spend_response, _spend_response_facts
    ),
    "policy_comparison": _Kind(
        _ComparisonParams,
        ("main",),
        _build_policy_comparison,
        _draw_policy_comparison,
        _policy_comparison_facts,
    ),
    "clv_decomposition": _Kind(
        _Params, ("main",), _build_clv_decomposition, _draw_clv_decomposition, _main_size_facts
    ),
    "value_concentration": _Kind(
        _ValueParams,
        ("main",),
        _build_value_concentration,
        _draw_value_concentration,
        _value_concentration_facts,
    ),
    "validation": _Kind(
        _ValidationParams, ("markov", "cohort"), _build_validation, _draw_validation, _validation_facts
    ),
    "agent_effects": _Kind(
        _AgentParams, None, _build_agent_effects, _draw_agent_effects, _agent_effects_facts
    ),
    "cdnow_tracking": _Kind(
        _TransactionFitParams, (), _build_cdnow_tracking, _draw_cdnow_tracking, _transaction_fit_facts
    ),
    "cdnow_conditional": _Kind(
        _TransactionFitParams, (), _build_cdnow_conditional, _draw_cdnow_conditional, _transaction_fit_facts
    ),
    "cdnow_lifecycle": _Kind(
        _FittedBaseParams, (), _build_cdnow_lifecycle, _draw_cdnow_lifecycle, _fitted_base_facts
    ),
}


def figure_data(spec: FigureSpec, *, quick: bool = False, threads: int | None = None) -> FigureData:
    """Simulate and tabulate what figure ``spec`` draws (no files written).

    Parameters
    ----------
    spec
        A :class:`FigureSpec` (:func:`load_figure_spec`).
    quick
        Use the spec's quick sizes.
    threads
        numba threads (never changes the numbers).
    """
    return FIGURE_KINDS[spec.kind].build(spec, quick, threads)


def draw_figure(spec: FigureSpec, data: FigureData):
    """Draw ``data`` (from :func:`figure_data`) in the project style; returns the Figure
    (``None`` for a skipped figure).
    """
    if data.status != "ok":
        return None
    from sim.plotting.style import figure_style

    with figure_style():
        figure = FIGURE_KINDS[spec.kind].draw(spec, data)
        figure.suptitle(
            f"Figure {spec.number}. {spec.title}", x=0.01, ha="left", fontsize=11, fontweight="bold"
        )
    return figure


class _Facts(dict):
    def __missing__(self, key):
        raise KeyError(key)


def _format_caption(caption: str, facts: dict) -> str:
    return " ".join(caption.split()).format_map(_Facts(facts))


def figure_caption(spec: FigureSpec, data: FigureData) -> str:
    """The figure's caption with its placeholders filled from ``data.facts`` (whitespace
    runs collapsed to one space), as written to ``<name>.txt``.

    Raises
    ------
    ValueError
        If the caption uses a placeholder the data does not provide, or is not a valid
        template (:func:`load_figure_spec` refuses both before any work).
    """
    try:
        return _format_caption(spec.caption, data.facts)
    except KeyError as error:
        raise ValueError(
            f"{spec.path}: figure.caption uses {{{error.args[0]}}}, which the figure does not provide; "
            f"available: {', '.join(sorted(data.facts))}"
        ) from None
    except (IndexError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{spec.path}: figure.caption is not a valid caption template: {error}") from None


# =========================================================================== making the files


# =========================================================================== command line
