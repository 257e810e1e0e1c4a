"""Figures of policy experiments: the comparison page of ``sim run``, the sweep page and the
page of ``sim optimize``, each drawn from the tidy tables with the ``plot_*`` functions.
"""

from __future__ import annotations

from sim.experiments.comparison import frontier_table
from sim.experiments.optimize import OptimizationResult
from sim.experiments.sweep import SweepResult

__all__ = [
    "comparison_figure",
    "sweep_figure",
    "optimize_figure",
]


def comparison_figure(result):
    """The comparison page of a run: forest plot of paired ΔCLV, frontier and CLV
    decomposition per policy. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_clv_parts, plot_comparison_forest, plot_frontier

    figure, axes = plt.subplots(1, 3, figsize=(18, 5.2), layout="constrained")
    plot_comparison_forest(result.comparison, reference=result.config.comparison.reference, ax=axes[0])
    frontier = getattr(result, "frontier", None)
    if frontier is None:
        frontier = frontier_table(result.summary, result.config.population.customers)
    plot_frontier(frontier, ax=axes[1])
    plot_clv_parts(result.summary, ax=axes[2])
    figure.suptitle(f"{result.config.name}: policy comparison (common random numbers)", fontsize=12)
    return figure


def sweep_figure(result: SweepResult):
    """CLV and retention spend against the first swept parameter, one line per policy
    (and per value of the other swept parameters). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_sweep

    parameter, others = result.parameters[0], result.parameters[1:]
    figure, axes = plt.subplots(1, 2, figsize=(14, 5), layout="constrained")
    plot_sweep(result.sweep, parameter, "clv_mean", by=("policy",) + tuple(others), ax=axes[0])
    plot_sweep(result.sweep, parameter, "retention_spend", by=("policy",) + tuple(others), ax=axes[1])
    figure.suptitle(f"{result.config.name}: sweep over {', '.join(result.parameters)}", fontsize=12)
    return figure


def optimize_figure(result: OptimizationResult):
    """The page of ``sim optimize``: response curves, frontier, forest plot against the
    reference, CLV decomposition. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from sim.plotting.projection import plot_clv_parts, plot_comparison_forest, plot_frontier, plot_response

    figure, axes = plt.subplots(2, 2, figsize=(15, 10), layout="constrained")
    plot_response(result.response, ax=axes[0, 0], delta=True)  # paired: the precision that locates the peak
    plot_frontier(result.frontier, ax=axes[0, 1])
    plot_comparison_forest(result.comparison, reference=result.reference, ax=axes[1, 0])
    plot_clv_parts(result.evaluation, ax=axes[1, 1])
    evaluation = result.settings["evaluation"]
    figure.suptitle(
        f"{result.config.name}: optimised retention spend (re-evaluated on seed {evaluation['seed']}, "
        f"{evaluation['customers']:,} customers x {evaluation['replications']} replications)",
        fontsize=12,
    )
    return figure
