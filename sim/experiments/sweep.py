"""Sweeps: one experiment per point of a ``[sweep]`` grid over parameter paths, with tidy rows
keyed by the point (:func:`~sim.experiments.sweep.run_sweep`), every point size-checked before the first runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from sim.exceptions import ConfigError
from sim.experiments.comparison import run_experiment
from sim.io.progress import Progress, report_status
from sim.model.config import ExperimentConfig, apply_overrides, sweep_grid

__all__ = [
    "SweepResult",
    "sweep_point_configs",
    "sweep_size_problems",
    "MAX_REPORTED_POINTS",
    "run_sweep",
]


@dataclass
class SweepResult:
    """The results of a ``[sweep]`` grid: tidy rows with the swept values as columns.

    Attributes
    ----------
    config : ExperimentConfig
        The sweep's configuration (with its ``[sweep]`` section).
    parameters : tuple of str
        The swept dotted paths, which are also columns of the tables.
    sweep : DataFrame
        One row per grid point and policy: ``point`` (1-based), the swept values, then the
        columns of the ``summary`` table (``policy, clv_mean, clv_se, clv1..clv6,
        retention_spend, satisfaction_mean, ...``).
    sweep_comparison : DataFrame
        ``point``, the swept values, then the ``comparison`` columns, per point.
    sweep_frontier : DataFrame
        ``point``, the swept values, then the ``frontier`` columns, per point.
    precision : list of dict
        The precision record of each point (empty dicts without precision control).
    """

    config: ExperimentConfig
    parameters: tuple
    sweep: pd.DataFrame
    sweep_comparison: pd.DataFrame
    sweep_frontier: pd.DataFrame
    precision: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    TABLES = ("sweep", "sweep_comparison", "sweep_frontier")

    def table(self, name: str) -> pd.DataFrame:
        """One of the tables by name (see :attr:`TABLES`)."""
        if name not in self.TABLES:
            raise KeyError(f"no table {name!r}; tables: {', '.join(self.TABLES)}")
        return getattr(self, name)

    def manifest_extra(self) -> dict:
        """Entries for ``manifest.json``: the swept parameters, the points, precision."""
        extra = {"sweep": {"parameters": list(self.parameters), "points": len(self.sweep["point"].unique())}}
        if any(self.precision):
            extra["precision"] = self.precision
        return extra

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


def _with_point(table: pd.DataFrame, number: int, point: dict) -> pd.DataFrame:
    front = pd.DataFrame(
        {"point": [number] * len(table), **{path: [value] * len(table) for path, value in point.items()}}
    )
    return pd.concat([front, table.reset_index(drop=True)], axis=1)


def sweep_point_configs(config: ExperimentConfig) -> tuple[list[dict], list[ExperimentConfig]]:
    """The points of the config's ``[sweep]`` grid and the config of each (the base with the
    swept paths set by ``sim.model.config.apply_overrides``, each validated).
    """
    base = config.model_copy(update={"sweep": {}})
    points = sweep_grid(config)
    return points, [apply_overrides(base, point) for point in points]


def sweep_size_problems(
    config: ExperimentConfig, points: list[dict] | None = None, configs: list[ExperimentConfig] | None = None
) -> list[tuple[str, str]]:
    """Why a point of the ``[sweep]`` grid is too large to run on this machine
    (:func:`sim.runs.executors.run_size_problems` of each point, naming the point), checked
    before any work: a sweep over ``population.customers`` must not fail at its last point,
    hours in. ``points, configs`` from :func:`sweep_point_configs` if already built.
    """
    from sim.runs.executors import run_size_problems

    if points is None or configs is None:
        points, configs = sweep_point_configs(config)
    problems, failing = [], 0
    for number, (point, point_config) in enumerate(zip(points, configs), start=1):
        point_problems = run_size_problems(point_config)
        failing += bool(point_problems)
        if point_problems and failing <= MAX_REPORTED_POINTS:
            where = ", ".join(f"{path} = {value}" for path, value in point.items())
            problems += [
                (f"{field} (sweep point {number}: {where})", message) for field, message in point_problems
            ]
    if failing > MAX_REPORTED_POINTS:
        problems.append(
            ("sweep", f"and {failing - MAX_REPORTED_POINTS:,} more points too large (of {len(points):,})")
        )
    return problems


#: Most sweep points whose size problems are listed one by one.
MAX_REPORTED_POINTS = 10


def run_sweep(config: ExperimentConfig, *, progress: Progress = False) -> SweepResult:
    """Run every point of the config's ``[sweep]`` grid with
    :func:`~sim.experiments.comparison.run_experiment`.

    Each point is the config with the swept paths set (``sim.model.config.apply_overrides``);
    every point was validated when the config was loaded and is validated again here, all
    before any simulation. All points use the same ``run.seed``, so differences between
    points are common-random-numbers comparisons too. Precision control, if configured,
    applies to each point.

    Raises
    ------
    ValueError
        If the config has no ``[sweep]``.
    ConfigError
        If a point is too large for this machine (:func:`~sim.experiments.sweep.sweep_size_problems`).
    """
    if not config.sweep:
        raise ValueError("the config has no [sweep] section: nothing to sweep")
    points, configs = sweep_point_configs(config)  # every point validated before any work
    problems = sweep_size_problems(config, points, configs)  # and every point's run size
    if problems:
        raise ConfigError(problems)
    started = time.perf_counter()
    summaries, comparisons, frontiers, precision = [], [], [], []
    for number, (point, point_config) in enumerate(zip(points, configs), start=1):
        report_status(
            f"  point {number}/{len(points)}: " + ", ".join(f"{k} = {v}" for k, v in point.items()), progress
        )
        result = run_experiment(point_config)
        summaries.append(_with_point(result.summary, number, point))
        comparisons.append(_with_point(result.comparison, number, point))
        frontiers.append(_with_point(result.frontier, number, point))
        precision.append(result.precision)
    return SweepResult(
        config=config,
        parameters=tuple(config.sweep),
        sweep=pd.concat(summaries, ignore_index=True),
        sweep_comparison=pd.concat(comparisons, ignore_index=True),
        sweep_frontier=pd.concat(frontiers, ignore_index=True),
        precision=precision,
        timings={"simulate_seconds": time.perf_counter() - started, "points": len(points)},
    )
