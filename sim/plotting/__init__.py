"""Figures: ``plot_*(table, ..., ax=None) -> Axes`` functions on the tidy tables, whole-page
``*_figure(result) -> Figure`` functions for the commands, the house style
(:mod:`sim.plotting.style`), and the gallery of the field's figures built from versioned
configs (:mod:`sim.plotting.gallery`, ``sim figures``).

Plots hold no model logic: they draw the columns of the tables they are given.

May import: every subpackage but :mod:`sim.cli`.
"""

from sim.plotting.calibration import plot_survival_fit
from sim.plotting.checks import plot_checks
from sim.plotting.experiments import comparison_figure, optimize_figure, sweep_figure
from sim.plotting.fitting import (
    fit_figure,
    plot_conditional_expectations,
    plot_fitted_margin,
    plot_p_alive,
    plot_stage_occupancy_fit,
    plot_tracking,
)
from sim.plotting.lifecycle import (
    plot_lifecycle_curve,
    plot_lorenz,
    plot_loyalty_curve,
    plot_market_series,
    plot_markov_validation,
    plot_net_clv,
    plot_pattern_bars,
    plot_response_curve,
    plot_retention_by_satisfaction,
    plot_satisfaction_over_time,
    plot_survival_validation,
)
from sim.plotting.market import market_figure, plot_market
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
    result_figure,
)

__all__ = [
    "plot_stage_occupancy",
    "plot_clv_by_policy",
    "plot_clv_parts",
    "plot_patterns",
    "plot_satisfaction_retention",
    "result_figure",
    "plot_comparison_forest",
    "plot_frontier",
    "plot_response",
    "plot_sweep",
    "comparison_figure",
    "sweep_figure",
    "optimize_figure",
    "plot_lifecycle_curve",
    "plot_pattern_bars",
    "plot_loyalty_curve",
    "plot_retention_by_satisfaction",
    "plot_satisfaction_over_time",
    "plot_net_clv",
    "plot_response_curve",
    "plot_lorenz",
    "plot_markov_validation",
    "plot_survival_validation",
    "plot_market_series",
    "plot_market",
    "market_figure",
    "plot_survival_fit",
    "plot_checks",
    "plot_tracking",
    "plot_conditional_expectations",
    "plot_p_alive",
    "plot_stage_occupancy_fit",
    "plot_fitted_margin",
    "fit_figure",
]
