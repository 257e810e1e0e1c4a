r"""The retention spend that maximises expected CLV: ``sim optimize CONFIG``.

The model (docs/model.md §5.4 and §7) asks how much to invest in each customer at each
lifecycle stage, and notes that too little and too much spend both lose. This module searches the per-stage
(optionally per-stage and per-segment) spend table ``a[stage, segment]`` that maximises
the cohort's mean CLV, which the core already reports net of retention spend and
acquisition cost (:mod:`sim.model.equations`, C1–C6):

.. math::  a^* = \\arg\\max_{0 \\le a \\le a_{max}} \\; \\widehat{CLV}_N(a)

where :math:`\\widehat{CLV}_N(a)` is the simulated mean over ``N`` customers with a FIXED
seed: every candidate is evaluated on the same customers and the same random shocks
(common random numbers, CRN). The CRN objective is a deterministic function of ``a``, so
the optimiser compares candidates without Monte Carlo noise between them; it is smooth up
to small jumps (a customer's stage move flips when a probability crosses its uniform draw)
that shrink as ``1/N``.

Search methods (``[optimize] method``)
--------------------------------------
``coordinate`` (default)
    Cycles over the coordinates (stages, or stage × segment). In the first cycle, for each
    coordinate, a coarse grid of ``grid_points`` spends in ``[0, max_spend]`` is evaluated
    in ONE kernel call (the grid points are policies of one experiment), and
    :func:`scipy.optimize.minimize_scalar` (bounded Brent) refines between the neighbours
    of the best grid point to ``spend_tolerance``; later cycles re-run Brent within one grid
    step of the current spend (the other coordinates have moved). A coordinate keeps the
    best of the grid point, Brent's point and its current spend. Stops when a full cycle
    moves no coordinate by more than the tolerance, or after ``max_cycles``. The grid makes
    it robust to the flat parts of the response; Brent makes it precise.
``powell``
    :func:`scipy.optimize.minimize` with ``method="Powell"`` and bounds, on the same CRN
    objective.

Reporting
---------
The in-sample objective at the optimum is biased upwards (the optimiser's curse), so
:func:`optimize_spend` re-evaluates the optimum, every config policy and the reference on
FRESH seeds (``optimize.evaluation_seed``, default ``run.seed + 1``), paired: the
``evaluation`` table (CLV with 95 % CIs), the ``comparison`` table (paired ΔCLV against
the reference), the ``frontier`` (spend vs CLV across all policies and the optimum) and
the ``response`` curves (CLV against the spend of one stage, the others held at the
optimum, with paired differences to the optimum).

Verification
------------
``tests/experiments/test_experiments_optimize.py`` constructs a case whose expected CLV and
optimal spend are known exactly (:func:`~sim.experiments.referral_case.referral_case_optimum`)
and checks that the optimiser finds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.exceptions import ConfigError
from sim.experiments.spend_search import SpendLayout, SpendSearch, _objective_config, search_spend
from sim.io.progress import Progress, report_status
from sim.model.config import MAX_POLICIES, ExperimentConfig
from sim.model.names import SEGMENTS, STAGES
from sim.runs.projection import project
from sim.tables.result import Z95

__all__ = [
    "OptimizationResult",
    "response_curves",
    "optimize_spend",
    "optimum_policy_toml",
]

#: Name of the optimised policy in the output tables.
OPTIMUM = "optimized"


# --------------------------------------------------------------------------- search space


# --------------------------------------------------------------------------- response + evaluation


def response_curves(
    config: ExperimentConfig,
    layout: SpendLayout,
    x,
    *,
    points: int,
    customers: int,
    replications: int,
    seed: int,
) -> pd.DataFrame:
    """Spend-response curves around the spend vector ``x``.

    For each coordinate (stage, or stage × segment), the mean CLV when that coordinate's
    spend runs over ``points`` values in ``[0, max_spend]`` and the others stay at ``x``;
    all points of one curve and ``x`` itself are simulated in one kernel call on the same
    customers, so ``delta_clv`` (CLV minus CLV at ``x``) and its ``delta_se`` are paired.

    Returns
    -------
    DataFrame
        ``stage, segment, spend, clv_mean, clv_se, delta_clv, delta_se, retention_spend,
        satisfaction_mean, is_optimum`` (the row of ``x``'s own spend has
        ``is_optimum = True`` and ``delta_clv = 0``).
    """
    base = _objective_config(config)
    x = np.asarray(x, dtype=float)
    grid = np.linspace(0.0, layout.max_spend, points)
    frames = []
    for j, (stage, segment) in enumerate(layout.coordinates):
        policies = []
        for i, value in enumerate(grid):
            candidate = x.copy()
            candidate[j] = value
            policies.append(layout.policy(f"p{i}", candidate))
        policies.append(layout.policy(OPTIMUM, x))
        curve_config = base.with_overrides(policies=policies, comparison={"reference": OPTIMUM})
        result = project(curve_config, customers=customers, replications=replications, seed=seed)
        summary = result.summary.set_index("policy")
        comparison = result.comparison.set_index("policy")
        for i, value in enumerate(list(grid) + [x[j]]):
            name = f"p{i}" if i < len(grid) else OPTIMUM
            frames.append(
                {
                    "stage": stage,
                    "segment": segment,
                    "spend": float(value),
                    "clv_mean": summary.loc[name, "clv_mean"],
                    "clv_se": summary.loc[name, "clv_se"],
                    "delta_clv": comparison.loc[name, "delta_clv"] if name != OPTIMUM else 0.0,
                    "delta_se": comparison.loc[name, "se"] if name != OPTIMUM else 0.0,
                    "retention_spend": summary.loc[name, "retention_spend"],
                    "satisfaction_mean": summary.loc[name, "satisfaction_mean"],
                    "is_optimum": name == OPTIMUM,
                }
            )
    return _stage_order(pd.DataFrame(frames))


def _stage_order(table: pd.DataFrame) -> pd.DataFrame:
    order = {stage: i for i, stage in enumerate(STAGES)}
    return table.sort_values(
        ["stage", "segment", "spend"],
        key=lambda c: c.map(order) if c.name == "stage" else c,
        kind="stable",
        ignore_index=True,
    )


@dataclass
class OptimizationResult:
    """Results of :func:`optimize_spend` (tidy tables; written by ``sim optimize``).

    Attributes
    ----------
    config : ExperimentConfig
    search : SpendSearch
        The search on the CRN objective (in-sample).
    optimum : DataFrame
        ``stage, segment, spend`` of the optimised policy.
    evaluation : DataFrame
        The ``summary`` rows of every config policy and the optimum (named
        ``"optimized"``) re-simulated on fresh seeds, with ``ci_low, ci_high`` (95 %) and
        ``in_sample_clv`` (the CRN objective, for the optimum only).
    comparison : DataFrame
        Paired ΔCLV of every policy against the reference, on the fresh seeds.
    frontier : DataFrame
        Spend vs CLV across the policies and the optimum (:func:`sim.experiments.comparison.frontier_table`).
    response : DataFrame
        :func:`~sim.experiments.optimize.response_curves` around the optimum, on the fresh seed
        at the objective's size.
    trace : DataFrame
        Every evaluation of the search.
    reference : str
    settings : dict
        Sizes and seeds of the objective and of the evaluation.
    """

    config: ExperimentConfig
    search: SpendSearch
    optimum: pd.DataFrame
    evaluation: pd.DataFrame
    comparison: pd.DataFrame
    frontier: pd.DataFrame
    response: pd.DataFrame
    trace: pd.DataFrame
    reference: str
    settings: dict
    timings: dict = field(default_factory=dict)

    TABLES = ("optimum", "evaluation", "comparison", "frontier", "response", "trace")

    def table(self, name: str) -> pd.DataFrame:
        """One of the tables by name (see :attr:`TABLES`)."""
        if name not in self.TABLES:
            raise KeyError(f"no table {name!r}; tables: {', '.join(self.TABLES)}")
        return getattr(self, name)

    @property
    def summary(self) -> pd.DataFrame:
        """The ``evaluation`` table (summary rows on fresh seeds), for the generic plots."""
        return self.evaluation

    def manifest_extra(self) -> dict:
        """Entries for ``manifest.json``: the optimum, its CI and the optimiser's settings."""
        row = self.evaluation.set_index("policy").loc[OPTIMUM]
        versus = (
            self.comparison.set_index("policy").loc[OPTIMUM]
            if OPTIMUM in set(self.comparison["policy"])
            else None
        )
        return {
            "optimize": {
                **self.settings,
                "optimum": self.optimum.to_dict(orient="records"),
                "in_sample_clv": self.search.clv,
                "clv_mean": row["clv_mean"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "reference": self.reference,
                "delta_vs_reference": None
                if versus is None
                else {
                    "delta_clv": versus["delta_clv"],
                    "ci_low": versus["ci_low"],
                    "ci_high": versus["ci_high"],
                },
                "evaluations": self.search.evaluations,
                "kernel_calls": self.search.kernel_calls,
                "cycles": self.search.cycles,
            }
        }

    def save(
        self,
        directory,
        *,
        command: str | None = None,
        force: bool = False,
        extra_manifest: dict | None = None,
        figures: dict | None = None,
    ):
        """Write the tables as CSV, the figures, then ``manifest.json``
        (:func:`sim.io.results.save_result`).
        """
        from sim.io.results import save_result

        return save_result(
            self,
            directory,
            command=command,
            force=force,
            extra_manifest={**self.manifest_extra(), **(extra_manifest or {})},
            figures=figures,
        )


def optimum_name(config: ExperimentConfig, seed: int | None = None) -> str:
    """The name of the optimised policy, once every check :func:`optimize_spend` can make
    before any work has passed: the name is free, the config leaves room for one more
    policy, and the evaluation seed differs from the objective's (``seed``, default
    ``run.seed``). Raises :class:`ConfigError` listing every problem.
    """
    problems = []
    if OPTIMUM in config.policy_names:
        problems.append(
            (
                f"policies ({OPTIMUM!r})",
                (
                    f"the name {OPTIMUM!r} is reserved for the optimised policy "
                    "in sim optimize; rename that policy"
                ),
            )
        )
    limit = MAX_POLICIES
    if len(config.policies) >= limit:
        problems.append(
            (
                f"policies ({len(config.policies)} policies)",
                (
                    f"sim optimize adds the policy {OPTIMUM!r} and a config holds at most {limit}, "
                    f"so at most {limit - 1} may be given; remove {len(config.policies) - limit + 1}"
                ),
            )
        )
    evaluation_seed = config.optimize.evaluation_seed
    objective_seed = config.run.seed if seed is None else seed
    if evaluation_seed is not None and evaluation_seed == objective_seed:
        source = "run.seed (or --seed)" if seed is None else "the seed argument"
        problems.append(
            (
                f"optimize.evaluation_seed = {evaluation_seed}",
                (
                    f"equals the search objective's seed, {source} = {objective_seed}: the optimum must be "
                    "re-evaluated on fresh random numbers; choose another seed, or leave it unset "
                    "(objective seed + 1)"
                ),
            )
        )
    if problems:
        raise ConfigError(problems)
    return OPTIMUM


def optimize_spend(
    config: ExperimentConfig,
    *,
    customers: int | None = None,
    replications: int | None = None,
    seed: int | None = None,
    progress: Progress = False,
) -> OptimizationResult:
    """Find the CLV-maximising per-stage spend and report it with fresh-seed CIs.

    Steps: (1) :func:`~sim.experiments.spend_search.search_spend` on the CRN objective (seed
    ``run.seed``); (2) re-run every config policy and the optimum (a table policy named
    ``"optimized"``) on the fresh seed ``optimize.evaluation_seed`` (default ``run.seed + 1``),
    paired, with the comparison against ``optimize.reference`` (default
    ``comparison.reference``, else the first policy); (3) the frontier across those
    policies; (4) the response curves around the optimum on the fresh seed, at the
    objective's size (``response_points`` + 1 policies per coordinate; their paired
    differences are precise at that size).

    Parameters
    ----------
    config
        A validated experiment with an ``[optimize]`` section (defaults apply otherwise).
    customers, replications, seed
        Override the objective's size and seed (see :func:`~sim.experiments.spend_search.search_spend`).
    progress
        Report each step: ``True`` for status lines on standard error, or a callable that
        receives each line (:mod:`sim.io.progress`).

    Returns
    -------
    OptimizationResult

    Raises
    ------
    ConfigError
        Before any work: if a config policy is named ``"optimized"``, if the config already
        holds the most policies allowed (the optimum is added), if
        ``optimize.evaluation_seed`` equals the objective's seed, or if the config has a
        section the search would ignore (engine = "abm", a [sweep], [precision]).
    """
    from sim.experiments.comparison import ExperimentResult

    problems = optimize_problems(config, customers=customers, replications=replications)
    if problems:
        raise ConfigError(problems)
    name = optimum_name(config, seed)
    settings = config.optimize
    reference = settings.reference or config.comparison.reference or config.policy_names[0]
    objective_customers = customers or settings.customers or config.population.customers
    objective_replications = replications or settings.replications or config.run.replications
    objective_seed = config.run.seed if seed is None else seed
    evaluation_seed = (
        settings.evaluation_seed if settings.evaluation_seed is not None else (objective_seed + 1) % 2**63
    )
    evaluation_customers = settings.evaluation_customers or objective_customers
    evaluation_replications = settings.evaluation_replications or objective_replications
    timings = {}

    started = time.perf_counter()
    report_status(
        f"  searching ({settings.method}) on {objective_customers:,} customers x {objective_replications} "
        f"replications, seed {objective_seed} ...",
        progress,
    )
    search = search_spend(
        config, customers=objective_customers, replications=objective_replications, seed=objective_seed
    )
    timings["search_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    report_status(
        f"  evaluating on fresh seed {evaluation_seed} ({evaluation_customers:,} customers x "
        f"{evaluation_replications} replications) ...",
        progress,
    )
    policies = [policy.model_dump(mode="python") for policy in config.policies] + [
        search.layout.policy(name, search.x)
    ]
    evaluation_config = _objective_config(config).with_overrides(
        policies=policies, comparison={"reference": reference}
    )
    evaluated = ExperimentResult.from_projection(
        project(
            evaluation_config,
            customers=evaluation_customers,
            replications=evaluation_replications,
            seed=evaluation_seed,
        )
    )
    evaluation = evaluated.summary.copy()
    evaluation["ci_low"] = evaluation["clv_mean"] - Z95 * evaluation["clv_se"]
    evaluation["ci_high"] = evaluation["clv_mean"] + Z95 * evaluation["clv_se"]
    evaluation["in_sample_clv"] = np.where(evaluation["policy"] == name, search.clv, np.nan)
    timings["evaluation_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    report_status(
        f"  response curves ({settings.response_points} spends x {len(search.layout.coordinates)} "
        "coordinates) ...",
        progress,
    )
    response = response_curves(
        config,
        search.layout,
        search.x,
        points=settings.response_points,
        customers=objective_customers,
        replications=objective_replications,
        seed=evaluation_seed,
    )
    timings["response_seconds"] = time.perf_counter() - started
    return OptimizationResult(
        config=config,
        search=search,
        optimum=search.optimum,
        evaluation=evaluation,
        comparison=evaluated.comparison,
        frontier=evaluated.frontier,
        response=response,
        trace=search.trace,
        reference=reference,
        settings={
            "method": settings.method,
            "per_segment": settings.per_segment,
            "stages": list(settings.stages),
            "max_spend": settings.max_spend,
            "spend_tolerance": settings.spend_tolerance,
            "objective": {
                "customers": objective_customers,
                "replications": objective_replications,
                "seed": objective_seed,
            },
            "evaluation": {
                "customers": evaluation_customers,
                "replications": evaluation_replications,
                "seed": evaluation_seed,
            },
        },
        timings=timings,
    )


# --------------------------------------------------------------------------- a case with a known optimum


# --------------------------------------------------------------------------- figure + CLI


def optimum_policy_toml(result: OptimizationResult, name: str = OPTIMUM) -> str:
    """The optimised spend table as a ``[[policies]]`` TOML entry (``kind = "table"``), to
    paste into an experiment config.
    """
    policy = result.search.layout.policy(name, result.search.x)
    lines = ["[[policies]]", f'name = "{name}"', 'kind = "table"']
    for segment in SEGMENTS:
        spends = ", ".join(f"{stage} = {policy[segment][stage]:.4g}" for stage in STAGES)
        lines.append(f"{segment} = {{ {spends} }}")
    return "\n".join(lines)


def optimize_problems(
    config: ExperimentConfig, *, customers: int | None = None, replications: int | None = None
) -> list[tuple[str, str]]:
    """Sections of ``config`` that ``sim optimize`` would ignore (it searches one experiment on
    the core engine, with the replications of ``[optimize]``), and sizes of the objective or
    of the fresh-seed evaluation too large for this machine
    (:func:`sim.runs.executors.run_size_problems`).
    """
    from sim.model.sections import PrecisionConfig
    from sim.runs.executors import run_size_problems

    settings = config.optimize
    objective = (
        customers or settings.customers or config.population.customers,
        replications or settings.replications or config.run.replications,
    )
    evaluation = (
        settings.evaluation_customers or objective[0],
        settings.evaluation_replications or objective[1],
    )
    size_problems = []
    for label, (size_customers, size_replications) in (("objective", objective), ("evaluation", evaluation)):
        sized = config.model_copy(update={"sweep": {}}).with_overrides(
            population={"customers": size_customers}, run={"replications": size_replications}
        )
        size_problems += [
            (
                f"{field} (the optimize {label}: {size_customers:,} customers x {size_replications:,} "
                "replications, from [optimize] or the overrides)",
                message,
            )
            for field, message in run_size_problems(sized)
        ]

    problems = []
    if config.engine != "core":
        problems.append(
            (
                f"engine = {config.engine!r}",
                "sim optimize searches the spend on the core engine, not the agent engine's [market]; "
                'set engine = "core" (and switch the [market] interactions off) or use another config',
            )
        )
    if config.sweep:
        problems.append(
            (
                f"sweep ({len(config.sweep)} swept path{'s' if len(config.sweep) != 1 else ''})",
                "sim optimize runs one experiment, not a [sweep] grid; remove the [sweep] section "
                "(run the sweep with sim run)",
            )
        )
    if config.precision != PrecisionConfig():
        problems.append(
            (
                "precision",
                "sim optimize does not use [precision] control (its replications are optimize.replications "
                "and optimize.evaluation_replications); remove the [precision] section",
            )
        )
    return problems + size_problems
