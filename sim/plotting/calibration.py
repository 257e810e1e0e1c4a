"""Plots of the simulator's calibration: the observed survival against the fitted sBG curve."""

from __future__ import annotations

import pandas as pd

__all__ = [
    "plot_survival_fit",
]


def plot_survival_fit(table: pd.DataFrame, ax=None):
    """Observed survival (points) and the fitted sBG curve (line) against the period.

    Parameters
    ----------
    table
        :func:`~sim.fitting.calibration.survival_fit_table` output (``SurvivalCalibration.table``).
    ax
        Axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    ax.plot(table["period"], table["fitted_survival"], "-", label="fitted sBG S(t)")
    ax.plot(table["period"], table["observed_survival"], "o", label="observed")
    ax.set_xlabel("period t")
    ax.set_ylabel("share of cohort active at the start of period t")
    ax.set_ylim(0, 1.02)
    ax.legend()
    return ax
