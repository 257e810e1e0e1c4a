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

Real transaction logs in, the field's standard customer-base models beside::

    fit = sim.fit_transactions(sim.data.CDNOW_SAMPLE_PATH, "1997-09-30", "1998-06-30")
    fit.evaluation          # BG/NBD and Pareto/NBD against the holdout
    fit.save("results/fit-cdnow")   # tables, manifest.json (``sim fit`` adds the figures)

The model's equations are documented in :mod:`sim.model.equations`; its parameters in
:mod:`sim.model.config`.
"""

import importlib as _importlib
import warnings as _warnings

from sim import analytic, data, experiments, fitting
from sim.engines.market.engine import MarketResult, simulate_market
from sim.exceptions import ConfigError, DataError
from sim.experiments.comparison import ExperimentResult, project_to_precision, run_experiment
from sim.experiments.optimize import OptimizationResult, optimize_spend
from sim.experiments.sweep import SweepResult, run_sweep
from sim.fitting.bridge import fitted_customer_base
from sim.fitting.evaluation import FitResult, fit_transactions
from sim.io.results import sim_version as _sim_version
from sim.model.config import ExperimentConfig, config_from_dict, load_config
from sim.model.names import PATTERNS, SEGMENTS, STAGES
from sim.plotting.projection import (
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
from sim.runs.projection import project
from sim.runs.snapshot import project_from
from sim.tables.result import ProjectionResult

__version__ = _sim_version()

__all__ = [
    "__version__",
    "analytic",
    "data",
    "experiments",
    "fitting",
    "STAGES",
    "SEGMENTS",
    "PATTERNS",
    "ConfigError",
    "DataError",
    "ExperimentConfig",
    "load_config",
    "config_from_dict",
    "project",
    "ProjectionResult",
    "project_from",
    "simulate_market",
    "MarketResult",
    "run_experiment",
    "ExperimentResult",
    "project_to_precision",
    "run_sweep",
    "SweepResult",
    "optimize_spend",
    "OptimizationResult",
    "fit_transactions",
    "FitResult",
    "fitted_customer_base",
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

#: Modules that used to sit at the top level, and where they live now: ``sim.calibration``
#: and ``sim.validate`` keep working (with a DeprecationWarning) for code written before
#: the package was split into subpackages.
_MOVED = {"calibration": "sim.fitting.calibration", "validate": "sim.checks.validate"}


def __getattr__(name: str):
    if name in _MOVED:
        _warnings.warn(f"sim.{name} moved to {_MOVED[name]}", DeprecationWarning, stacklevel=2)
        return _importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
