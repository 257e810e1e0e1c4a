"""Plots of the package's measured checks: ``sim validate``'s z-scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.checks.validate import Z_LIMIT

__all__ = [
    "plot_checks",
]


def plot_checks(table: pd.DataFrame, ax=None):
    """The z-score of every check (horizontal bars) with the +-4 SE limits.

    Parameters
    ----------
    table
        :func:`~sim.checks.validate.run_checks` output.
    ax
        Axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 0.28 * len(table) + 1.2))
    positions = np.arange(len(table))[::-1]
    colors = ["tab:blue" if passed else "tab:red" for passed in table["passed"]]
    ax.barh(positions, table["z"].clip(-2 * Z_LIMIT, 2 * Z_LIMIT), color=colors)
    for limit in (-Z_LIMIT, Z_LIMIT):
        ax.axvline(limit, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(positions)
    ax.set_yticklabels(table["check"], fontsize=7)
    ax.set_xlabel("z = (simulated - exact) / SE")
    return ax
