"""Plots of the customer-base models fitted to a transaction log (``sim fit``).

Each function draws one table of :class:`sim.FitResult` (:mod:`sim.fitting.evaluation`):

* :func:`plot_tracking` — the ``tracking`` table: the cohort's cumulative repeat
  transactions per period, actual against each model, with the calibration/holdout split
  (Fader, Hardie & Lee 2005, "Counting your customers the easy way", figure 2);
* :func:`plot_conditional_expectations` — the ``by_frequency`` table: mean holdout
  transactions by calibration repeat count, actual and each model side by side (their
  figure 4);
* :func:`plot_p_alive` — the ``customers`` table: the distribution of each model's
  P(alive) at the calibration end;

* :func:`plot_stage_occupancy_fit` — the ``stage_occupancy`` table of the lifecycle model:
  the cohort's expected customers in each stage per period, stacked (smoothed during the
  calibration period, forecast after it);
* :func:`plot_fitted_margin` — a fitted customer base's margin per period, the fit's
  forecast beside the simulation under each policy (:mod:`sim.fitting.bridge`);

and :func:`fit_figure` puts the first three on one page. Model columns are recognised by their
prefix (``expected_<model>``, ``p_alive_<model>``); the legend names each model by its
title in the registry (:func:`sim.fitting.base.get_model`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.fitting.base import MODEL_REGISTRY, model_names
from sim.plotting.projection import STAGE_COLORS

__all__ = [
    "MODEL_COLORS",
    "fit_figure",
    "model_title",
    "plot_conditional_expectations",
    "plot_fitted_margin",
    "plot_p_alive",
    "plot_stage_occupancy_fit",
    "plot_tracking",
]

#: One colour per model (Okabe & Ito), the actual data in black/grey.
MODEL_COLORS = {"bgnbd": "#0072B2", "pnbd": "#D55E00", "ggamma": "#009E73", "lifecycle": "#CC79A7"}
_OTHER_COLORS = ("#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
_ACTUAL_COLOR = "#222222"


def model_title(name: str) -> str:
    """A model's name in words (``"bgnbd"`` -> ``"BG/NBD"``), or the name if unregistered.

    Parameters
    ----------
    name : str
        Registry name.

    Returns
    -------
    str
    """
    model_names()  # loads the built-in models
    cls = MODEL_REGISTRY.get(name)
    return cls.title if cls is not None and cls.title else name


def _color(name: str, index: int) -> str:
    return MODEL_COLORS.get(name, _OTHER_COLORS[index % len(_OTHER_COLORS)])


def _models(table: pd.DataFrame, prefix: str) -> list[str]:
    return [column[len(prefix) :] for column in table.columns if column.startswith(prefix)]


def _axes(ax, size=(6.4, 4.0)):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=size)
    return ax


def _split_period(tracking: pd.DataFrame, calibration_end: Any) -> float | None:
    """The x position (period number) of the end of the calibration period."""
    if calibration_end is None:
        calibration = tracking.loc[~tracking["holdout"].astype(bool), "period"]
        return float(calibration.max()) if len(calibration) else None
    if isinstance(calibration_end, (int, float, np.integer, np.floating)) and not isinstance(
        calibration_end, bool
    ):
        return float(calibration_end)
    day = pd.Timestamp(calibration_end).normalize()
    ends = pd.to_datetime(tracking["period_end"]).dt.normalize()
    inside = tracking.loc[ends <= day, "period"]
    return float(inside.max()) if len(inside) else None


def plot_tracking(tracking: pd.DataFrame, ax=None, *, calibration_end: Any = None, unit: str = "week"):
    """Cumulative repeat transactions of the cohort by period: actual and each model.

    Parameters
    ----------
    tracking : DataFrame
        The ``tracking`` table: ``period``, ``period_end``, ``holdout``, ``actual`` and one
        ``expected_<model>`` column per transaction model.
    ax : matplotlib Axes, optional
        Axes to draw on (default: a new figure).
    calibration_end : date-like or number, optional
        Where to draw the split: a date (the period that ends on or before it) or a period
        number; by default the last period with ``holdout`` False.
    unit : str, default "week"
        The period's unit, for the axis label.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    ax.plot(tracking["period"], tracking["actual"], color=_ACTUAL_COLOR, linewidth=2.0, label="actual")
    for index, name in enumerate(_models(tracking, "expected_")):
        ax.plot(
            tracking["period"],
            tracking[f"expected_{name}"],
            linestyle="--",
            color=_color(name, index),
            linewidth=1.6,
            label=model_title(name),
        )
    split = _split_period(tracking, calibration_end)
    if split is not None:
        ax.axvline(split, color="#777777", linestyle=":", linewidth=1.2)
        top = ax.get_ylim()[1]
        ax.text(split, top, "calibration  ", ha="right", va="top", fontsize=8, color="#555555")
        if bool(tracking["holdout"].any()):
            ax.text(split, top, "  holdout", ha="left", va="top", fontsize=8, color="#555555")
    ax.set_xlim(0, float(tracking["period"].max()))
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"{unit}")
    ax.set_ylabel("cumulative repeat transactions")
    ax.set_title("Tracking cumulative repeat transactions")
    ax.legend(loc="lower right")
    return ax


def plot_conditional_expectations(by_frequency: pd.DataFrame, ax=None):
    """Mean holdout transactions by calibration repeat count (0 .. 7+): actual and each model.

    Parameters
    ----------
    by_frequency : DataFrame
        The ``by_frequency`` table: ``frequency`` (labels "0" .. "6", "7+"), ``customers``,
        ``actual`` and one ``expected_<model>`` column per transaction model.
    ax : matplotlib Axes, optional
        Axes to draw on (default: a new figure).

    Returns
    -------
    matplotlib.axes.Axes
        Grouped bars, one group per repeat count (groups with no customers are empty).
    """
    ax = _axes(ax)
    models = _models(by_frequency, "expected_")
    series = [("actual", "actual", "#9a9a9a")] + [
        (f"expected_{name}", model_title(name), _color(name, index)) for index, name in enumerate(models)
    ]
    positions = np.arange(len(by_frequency))
    width = 0.8 / len(series)
    for offset, (column, label, color) in enumerate(series):
        values = by_frequency[column].to_numpy(dtype=float)
        ax.bar(positions + (offset - (len(series) - 1) / 2) * width, values, width, color=color, label=label)
    ax.set_xticks(positions)
    ax.set_xticklabels([str(label) for label in by_frequency["frequency"]])
    ax.set_xlabel("repeat transactions in the calibration period")
    ax.set_ylabel("mean transactions in the holdout period")
    ax.set_title("Conditional expectations")
    ax.legend(loc="upper left")
    return ax


def plot_p_alive(customers: pd.DataFrame, ax=None, *, bins: int = 20):
    """Distribution of P(alive) at the calibration end, one set of bars per model.

    Parameters
    ----------
    customers : DataFrame
        The ``customers`` table with one ``p_alive_<model>`` column per transaction model.
    ax : matplotlib Axes, optional
        Axes to draw on (default: a new figure).
    bins : int, default 20
        Equal-width bins on [0, 1].

    Returns
    -------
    matplotlib.axes.Axes
        Share of customers per bin (the bars of one model add up to 1).
    """
    ax = _axes(ax)
    models = _models(customers, "p_alive_")
    edges = np.linspace(0.0, 1.0, bins + 1)
    if models:
        values = [customers[f"p_alive_{name}"].to_numpy(dtype=float) for name in models]
        weights = [np.full(len(v), 1.0 / max(len(v), 1)) for v in values]
        ax.hist(
            values,
            bins=edges,
            weights=weights,
            color=[_color(name, index) for index, name in enumerate(models)],
            label=[model_title(name) for name in models],
        )
        ax.legend(loc="upper center")
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(alive) at the end of the calibration period")
    ax.set_ylabel("share of customers")
    ax.set_title("Who is still alive")
    return ax


def plot_stage_occupancy_fit(stage_occupancy: pd.DataFrame, ax=None, *, unit: str = "week"):
    """The cohort's inferred stage occupancy per period, stacked: exploration, formation,
    stability, decline and ended.

    Parameters
    ----------
    stage_occupancy : DataFrame
        The ``stage_occupancy`` table of :func:`sim.fit_transactions` with the lifecycle model:
        ``period``, ``holdout``, ``kind`` and one column of expected customers per state.
    ax : matplotlib Axes, optional
        Axes to draw on (default: a new figure).
    unit : str, default "week"
        The period's unit, for the axis label.

    Returns
    -------
    matplotlib.axes.Axes
        Stacked areas in the stage colours of :data:`sim.plotting.projection.STAGE_COLORS`; a
        dotted line where the smoothed posterior (calibration) gives way to the forecast.
    """
    ax = _axes(ax)
    states = [
        s for s in ("exploration", "formation", "stability", "decline", "ended") if s in stage_occupancy
    ]
    periods = stage_occupancy["period"].to_numpy(dtype=float)
    ax.stackplot(
        periods,
        [stage_occupancy[s].to_numpy(dtype=float) for s in states],
        labels=states,
        colors=[STAGE_COLORS[s] for s in states],
    )
    forecast = stage_occupancy["holdout"].astype(bool).to_numpy()
    if forecast.any() and (~forecast).any():
        split = float(periods[~forecast].max())
        ax.axvline(split, color="#555555", linestyle=":", linewidth=1.2)
        top = ax.get_ylim()[1]
        ax.text(split, top, "smoothed  ", ha="right", va="top", fontsize=8, color="#333333")
        ax.text(split, top, "  forecast", ha="left", va="top", fontsize=8, color="#333333")
    ax.set_xlim(float(periods.min()), float(periods.max()))
    ax.set_ylim(bottom=0)
    ax.set_xlabel(unit)
    ax.set_ylabel("expected customers")
    ax.set_title("Inferred lifecycle stages of the cohort")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax


def plot_fitted_margin(margin: pd.DataFrame, ax=None, *, unit: str = "week"):
    """Margin per period of a fitted customer base: the fit's forecast and the simulation
    under each policy.

    Parameters
    ----------
    margin : DataFrame
        :meth:`sim.fitting.bridge.FittedCustomerBase.margin_table`: ``policy, period,
        simulated_margin, fitted_margin``.
    ax : matplotlib Axes, optional
        Axes to draw on (default: a new figure).
    unit : str, default "week"
        The period's unit, for the axis label.

    Returns
    -------
    matplotlib.axes.Axes
        The fitted forecast as a thick grey line, each policy's simulated margin in its colour
        (:func:`sim.plotting.style.policy_colors`); under ``none`` the two coincide up to
        simulation error (docs/model.md §13.3).
    """
    from sim.plotting.style import policy_colors

    ax = _axes(ax)
    policies = list(dict.fromkeys(margin["policy"]))
    colors = policy_colors(policies)
    first = margin[margin["policy"] == policies[0]]
    ax.plot(
        first["period"], first["fitted_margin"], color="#9a9a9a", linewidth=4.0, alpha=0.7, label="fitted"
    )
    for policy in policies:
        rows = margin[margin["policy"] == policy]
        ax.plot(rows["period"], rows["simulated_margin"], color=colors[policy], linewidth=1.3, label=policy)
    ax.set_xlim(0, float(margin["period"].max()))
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"{unit}s after the calibration end")
    ax.set_ylabel(f"gross margin per {unit}")
    ax.set_title("Margin of the live customers: fitted and simulated")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return ax


def fit_figure(result) -> Any:
    """The page of ``sim fit``: tracking, conditional expectations and P(alive).

    Parameters
    ----------
    result : sim.FitResult
        From :func:`sim.fit_transactions`.

    Returns
    -------
    matplotlib.figure.Figure
        One row of three panels (a panel whose table the result lacks — conditional
        expectations without a holdout, tracking from a summary — says so instead).
    """
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(17, 4.8), layout="constrained")
    data = result.data
    if result.tracking is not None:
        plot_tracking(result.tracking, ax=axes[0], unit=data.unit)
    else:
        _missing(axes[0], "no tracking: the data were not split from a transaction log")
    if result.by_frequency is not None:
        plot_conditional_expectations(result.by_frequency, ax=axes[1])
    else:
        _missing(axes[1], "no conditional expectations: no holdout period")
    plot_p_alive(result.customers, ax=axes[2])
    split = f", calibration to {data.calibration_end.date()}" if data.calibration_end is not None else ""
    source = (
        Path(data.source).name if data.source.endswith((".csv", ".parquet", ".pq", ".parq")) else data.source
    )
    figure.suptitle(f"{source}: {data.n_customers:,} customers{split}", fontsize=12)
    return figure


def _missing(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#555555")
    ax.set_axis_off()
