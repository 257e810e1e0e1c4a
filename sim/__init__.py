"""sim — an agent-based customer-lifecycle simulator with a numba core for cohort CLV.

Customers move through the four relationship lifecycle stages (exploration, formation,
stability, decline), driven by satisfaction and the firm's retention spend; the jitted
core projects each customer's lifetime value and its six parts, so that
relationship-investment policies can be compared in Monte Carlo experiments.

Quick start::

    import sim
    config = sim.load_config("experiments/baseline.toml")
    result = sim.project(config, customers=20_000)
    result.summary          # one row per policy
    sim.plot_stage_occupancy(result.stages)

The model's equations are documented in :mod:`sim.model`; its parameters in
:mod:`sim.config`.
"""

from importlib.metadata import PackageNotFoundError, version

from . import analytic
from .config import (
    PATTERNS,
    SEGMENTS,
    STAGES,
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    load_config,
)
from .plotting import (
    plot_clv_by_policy,
    plot_clv_parts,
    plot_comparison_forest,
    plot_frontier,
    plot_patterns,
    plot_response,
    plot_satisfaction_retention,
    plot_stage_occupancy,
    plot_sweep,
)
from .projection import ProjectionResult, project
from . import calibration, validate  # sim calibrate, sim validate
from .snapshot import project_from
from .abm import MarketResult, simulate_market  # the SimPy agent-based market engine
from . import experiments
from .experiments import ExperimentResult, SweepResult, project_to_precision, run_experiment, run_sweep
from .optimize import OptimizationResult, optimize_spend

try:
    __version__ = version("sim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "analytic",
    "calibration",
    "validate",
    "STAGES",
    "SEGMENTS",
    "PATTERNS",
    "ConfigError",
    "ExperimentConfig",
    "load_config",
    "config_from_dict",
    "project",
    "ProjectionResult",
    "project_from",
    "simulate_market",
    "MarketResult",
    "experiments",
    "run_experiment",
    "ExperimentResult",
    "project_to_precision",
    "run_sweep",
    "SweepResult",
    "optimize_spend",
    "OptimizationResult",
    "plot_stage_occupancy",
    "plot_clv_by_policy",
    "plot_clv_parts",
    "plot_patterns",
    "plot_satisfaction_retention",
    "plot_comparison_forest",
    "plot_frontier",
    "plot_response",
    "plot_sweep",
]
