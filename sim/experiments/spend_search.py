"""The search for the retention spend that maximises expected CLV on a fixed-seed,
common-random-numbers objective: the search space
(:class:`~sim.experiments.spend_search.SpendLayout`), the objective
(:class:`~sim.experiments.spend_search.CRNObjective`), and coordinate or Powell search
(:func:`~sim.experiments.spend_search.search_spend`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.model.config import ExperimentConfig
from sim.model.names import SEGMENTS, STAGES
from sim.runs.projection import project

__all__ = [
    "SpendLayout",
    "CRNObjective",
    "SpendSearch",
    "search_spend",
]

#: Most policies per kernel call (the experiment config's limit).
_MAX_BATCH = 64


@dataclass(frozen=True)
class SpendLayout:
    """How a vector ``x`` of searched spends maps onto a spend table ``a[stage, segment]``.

    Attributes
    ----------
    stages : tuple of str
        The stages whose spend is searched (the others keep ``start``).
    per_segment : bool
        One coordinate per (stage, segment) instead of per stage.
    start : ndarray, shape (4,)
        Spend per stage before the search, and of the stages not searched.
    max_spend : float
        Upper bound of every coordinate (the lower bound is 0).
    """

    stages: tuple
    per_segment: bool
    start: tuple
    max_spend: float

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> "SpendLayout":
        """The layout of ``config.optimize``."""
        settings = config.optimize
        return cls(
            tuple(settings.stages), settings.per_segment, tuple(settings.start.as_tuple()), settings.max_spend
        )

    @property
    def coordinates(self) -> list[tuple[str, str]]:
        """``(stage, segment)`` of each coordinate; segment ``"all"`` without ``per_segment``."""
        if self.per_segment:
            return [(stage, segment) for stage in self.stages for segment in SEGMENTS]
        return [(stage, "all") for stage in self.stages]

    def initial(self) -> np.ndarray:
        """The starting vector (``start`` of each searched stage)."""
        return np.array([self.start[STAGES.index(stage)] for stage, _ in self.coordinates])

    def table(self, x) -> np.ndarray:
        """The spend table ``a[stage, segment]`` (shape (4, 2)) of the vector ``x``."""
        table = np.repeat(np.asarray(self.start, dtype=float)[:, None], len(SEGMENTS), axis=1)
        for value, (stage, segment) in zip(np.asarray(x, dtype=float), self.coordinates):
            columns = slice(None) if segment == "all" else SEGMENTS.index(segment)
            table[STAGES.index(stage), columns] = value
        return table

    def policy(self, name: str, x) -> dict:
        """A ``kind = "table"`` policy (as config data) spending ``table(x)``."""
        table = self.table(x)
        return {
            "name": name,
            "kind": "table",
            **{
                segment: {stage: float(table[s, g]) for s, stage in enumerate(STAGES)}
                for g, segment in enumerate(SEGMENTS)
            },
        }

    def frame(self, x) -> pd.DataFrame:
        """The searched spends as a tidy table ``stage, segment, spend``."""
        return pd.DataFrame(
            [
                {"stage": stage, "segment": segment, "spend": float(value)}
                for value, (stage, segment) in zip(np.asarray(x, dtype=float), self.coordinates)
            ]
        )

    def names(self) -> list[str]:
        """Column names of the coordinates (``"formation"`` or ``"formation.relationship"``)."""
        return [stage if segment == "all" else f"{stage}.{segment}" for stage, segment in self.coordinates]


def _objective_config(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` without the parts that would change how one evaluation is simulated (a
    sweep is dropped: ``with_overrides`` merges tables, so it is removed by copy first).
    """
    return config.model_copy(update={"sweep": {}}).with_overrides(
        precision={"target_ci_halfwidth": None}, comparison={"reference": None}, optimize={"reference": None}
    )


class CRNObjective:
    """Mean CLV of candidate spend tables on a fixed set of customers and random streams.

    Every evaluation simulates ``customers`` x ``replications`` customers with the same
    ``seed``, so two candidates differ only through their spend (common random numbers).
    A batch of candidates is simulated in one kernel call; a policy's numbers do not
    depend on the other policies of the batch, so batching never changes a value.
    Results are cached by candidate.

    Attributes
    ----------
    trace : list of dict
        Every distinct evaluation: ``evaluation``, the coordinates, ``clv_mean``,
        ``clv_se``, ``retention_spend``.
    """

    def __init__(
        self, config: ExperimentConfig, layout: SpendLayout, *, customers: int, replications: int, seed: int
    ):
        self.base = _objective_config(config)
        self.layout = layout
        self.customers = customers
        self.replications = replications
        self.seed = seed
        self.kernel_calls = 0
        self.trace: list[dict] = []
        self._cache: dict[tuple, float] = {}

    def _key(self, x) -> tuple:
        return tuple(float(v) for v in np.asarray(x, dtype=float))

    def batch(self, candidates) -> np.ndarray:
        """Mean CLV of every candidate vector (simulating only those not seen before)."""
        keys = [self._key(x) for x in candidates]
        missing = list(dict.fromkeys(key for key in keys if key not in self._cache))
        for start in range(0, len(missing), _MAX_BATCH):
            chunk = missing[start : start + _MAX_BATCH]
            policies = [self.layout.policy(f"c{i}", key) for i, key in enumerate(chunk)]
            config = self.base.with_overrides(policies=policies)
            summary = project(
                config, customers=self.customers, replications=self.replications, seed=self.seed
            ).summary
            self.kernel_calls += 1
            for key, row in zip(chunk, summary.itertuples()):
                self._cache[key] = float(row.clv_mean)
                self.trace.append(
                    {
                        "evaluation": len(self.trace) + 1,
                        **dict(zip(self.layout.names(), key)),
                        "clv_mean": row.clv_mean,
                        "clv_se": row.clv_se,
                        "retention_spend": row.retention_spend,
                    }
                )
        return np.array([self._cache[key] for key in keys])

    def __call__(self, x) -> float:
        """Mean CLV of one candidate vector."""
        return float(self.batch([x])[0])


@dataclass
class SpendSearch:
    """Outcome of :func:`search_spend`.

    Attributes
    ----------
    layout : SpendLayout
    x : ndarray
        The best spends found, one per coordinate.
    clv : float
        The CRN objective (mean CLV, in-sample) at ``x``.
    optimum : DataFrame
        ``stage, segment, spend``.
    trace : DataFrame
        Every distinct evaluation (see :class:`CRNObjective`).
    evaluations, kernel_calls, cycles : int
    """

    layout: SpendLayout
    x: np.ndarray
    clv: float
    optimum: pd.DataFrame
    trace: pd.DataFrame
    evaluations: int
    kernel_calls: int
    cycles: int


def _coordinate_search(objective: CRNObjective, layout: SpendLayout, settings) -> tuple[np.ndarray, int]:
    from scipy.optimize import minimize_scalar

    x = np.clip(layout.initial(), 0.0, layout.max_spend)
    grid = np.linspace(0.0, layout.max_spend, settings.grid_points)
    tolerance = settings.spend_tolerance
    cycles = 0
    spacing = grid[1] - grid[0]
    for cycles in range(1, settings.max_cycles + 1):
        previous = x.copy()
        for j in range(len(x)):
            if cycles == 1:  # the whole range, on the coarse grid, in one kernel call
                candidates = []
                for value in grid:
                    candidate = x.copy()
                    candidate[j] = value
                    candidates.append(candidate)
                values = objective.batch(candidates)
                best = int(np.argmax(values))
                best_value, best_spend = values[best], grid[best]
                low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
            else:  # later cycles: re-tune within one grid step of the current spend
                best_value, best_spend = objective(x), x[j]
                low, high = max(x[j] - spacing, 0.0), min(x[j] + spacing, layout.max_spend)

            def negative(value, j=j):
                candidate = x.copy()
                candidate[j] = value
                return -objective(candidate)

            refined = minimize_scalar(
                negative, bounds=(low, high), method="bounded", options={"xatol": tolerance}
            )
            options = [
                (best_value, best_spend),
                (-float(refined.fun), float(refined.x)),
                (objective(x), x[j]),
            ]
            x[j] = max(options, key=lambda item: item[0])[1]
        if np.max(np.abs(x - previous)) <= tolerance:
            break
    return x, cycles


def _powell_search(objective: CRNObjective, layout: SpendLayout, settings) -> tuple[np.ndarray, int]:
    from scipy.optimize import minimize

    x0 = np.clip(layout.initial(), 0.0, layout.max_spend)
    outcome = minimize(
        lambda x: -objective(np.clip(x, 0.0, layout.max_spend)),
        x0,
        method="Powell",
        bounds=[(0.0, layout.max_spend)] * len(x0),
        options={"xtol": settings.spend_tolerance, "ftol": 1e-10, "maxfev": 400 * len(x0)},
    )
    return np.clip(outcome.x, 0.0, layout.max_spend), int(outcome.nit)


def search_spend(
    config: ExperimentConfig,
    *,
    customers: int | None = None,
    replications: int | None = None,
    seed: int | None = None,
) -> SpendSearch:
    """Search the spend table maximising the CRN objective (mean CLV net of spend).

    Parameters
    ----------
    config
        A validated experiment; its ``[optimize]`` section sets the search (stages,
        per-segment, bounds, start, method, tolerance). Its policies are not used.
    customers, replications, seed
        Size and seed of the objective; default ``optimize.customers`` (else
        ``population.customers``), ``optimize.replications`` (else ``run.replications``)
        and ``run.seed``.

    Returns
    -------
    SpendSearch
    """
    settings = config.optimize
    layout = SpendLayout.from_config(config)
    objective = CRNObjective(
        config,
        layout,
        customers=customers or settings.customers or config.population.customers,
        replications=replications or settings.replications or config.run.replications,
        seed=config.run.seed if seed is None else seed,
    )
    search = _powell_search if settings.method == "powell" else _coordinate_search
    x, cycles = search(objective, layout, settings)
    value = objective(x)
    return SpendSearch(
        layout=layout,
        x=x,
        clv=value,
        optimum=layout.frame(x),
        trace=pd.DataFrame(objective.trace),
        evaluations=len(objective.trace),
        kernel_calls=objective.kernel_calls,
        cycles=cycles,
    )
