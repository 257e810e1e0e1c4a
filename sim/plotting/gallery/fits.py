"""Figures of the literature on a bundled transaction log: the customer-base models fitted to
the CDNOW 1/10 sample by :func:`sim.fitting.evaluation.fit_transactions` (no simulation).

* ``cdnow_tracking`` — weekly (a) and cumulative (b) repeat transactions of the cohort,
  actual against each model, calibration | holdout (Fader, Hardie & Lee 2005, "Counting your
  customers the easy way", Marketing Science 24(2), figures 1-2);
* ``cdnow_conditional`` — mean holdout transactions by calibration repeat count 0 .. 7+,
  actual and each model side by side (the same paper, figure 4).

Both kinds fit the same models to the same split, once per process (:func:`transaction_fit`
keeps the last few fits). Each figure's CSV is the fit's table it draws (``tracking`` with
its differences per period, ``by_frequency``), so it can be checked against
:func:`sim.fit_transactions` directly.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from sim.data.cdnow import CDNOW_SAMPLE_PATH
from sim.fitting.evaluation import FitResult, fit_transactions
from sim.plotting.gallery.spec import FigureData, FigureSpec

__all__ = ["DATASETS", "transaction_fit", "tracking_panels"]

#: The bundled logs a figure may draw, by the name its ``params.dataset`` gives.
DATASETS = {"cdnow_sample": CDNOW_SAMPLE_PATH}


@functools.lru_cache(maxsize=4)
def transaction_fit(
    dataset: str, calibration_end: str, holdout_end: str, unit: str, models: tuple[str, ...]
) -> FitResult:
    """:func:`sim.fit_transactions` on a bundled log (kept: both CDNOW figures use one fit).

    Parameters
    ----------
    dataset : str
        A key of :data:`DATASETS`.
    calibration_end, holdout_end : str
        The split (YYYY-MM-DD).
    unit : str
        Time unit.
    models : tuple of str
        Transaction models to fit.

    Returns
    -------
    FitResult
    """
    return fit_transactions(DATASETS[dataset], calibration_end, holdout_end, unit=unit, models=models)


def tracking_panels(tracking: pd.DataFrame) -> pd.DataFrame:
    """The tracking figure's data: per period (``panel = "incremental"``: repeat transactions
    in the period, the differences of the cumulative numbers) and cumulative
    (``panel = "cumulative"``: the ``tracking`` table itself).

    Parameters
    ----------
    tracking : DataFrame
        The ``tracking`` table of a :class:`sim.FitResult`.

    Returns
    -------
    DataFrame
        ``panel`` and the columns of ``tracking``.
    """
    values = [c for c in tracking.columns if c == "actual" or c.startswith("expected_")]
    incremental = tracking.copy()
    for column in values:
        cumulative = tracking[column].to_numpy()  # counts stay integers, expectations floats
        incremental[column] = np.diff(cumulative, prepend=cumulative.dtype.type(0))
    return pd.concat(
        [incremental.assign(panel="incremental"), tracking.assign(panel="cumulative")], ignore_index=True
    )[["panel", *tracking.columns]]


def _fit(spec: FigureSpec, quick: bool) -> tuple[FitResult, object]:
    params = spec.parameters(quick)
    result = transaction_fit(
        params.dataset, params.calibration_end, params.holdout_end, params.unit, params.models
    )
    declared = spec.sizes(quick)["customers"]
    if declared != result.data.n_customers:
        raise ValueError(
            f"{spec.path}: figure.{'quick' if quick else 'full'}.customers = {declared:,}, but the "
            f"{params.dataset} cohort has {result.data.n_customers:,} customers (a data figure's size is "
            "its data set's)"
        )
    return result, params


def _facts(result: FitResult, params) -> dict:
    data = result.data
    inputs = result.inputs
    facts = {
        "customers": data.n_customers,
        "rows_read": int(inputs["rows_read"]),
        "rows_merged": int(inputs["rows_merged"]),
        "transactions": int(inputs["transactions"]),
        "calibration_end": params.calibration_end,
        "holdout_end": params.holdout_end,
        "unit": params.unit,
        "calibration_periods": int(data.n_calibration_periods),
        "holdout_periods": int(data.n_periods - data.n_calibration_periods),
        "actual_total": float(result.evaluation["actual_total"].iloc[0]),
    }
    evaluation = result.evaluation.set_index("model")
    for name in params.models:
        facts[f"{name}_loglik"] = float(result.fits[name].loglik)
        facts[f"{name}_tracking_mape"] = float(evaluation.loc[name, "tracking_mape"])
        facts[f"{name}_expected_total"] = float(evaluation.loc[name, "expected_total"])
        facts[f"{name}_mae"] = float(evaluation.loc[name, "mae"])
    return facts


def _transaction_fit_facts(spec, parameters, configs) -> dict:
    """The facts of both CDNOW kinds, known before any work (stand-ins of their types)."""
    facts = {
        "customers": 0,
        "rows_read": 0,
        "rows_merged": 0,
        "transactions": 0,
        "calibration_end": parameters.calibration_end,
        "holdout_end": parameters.holdout_end,
        "unit": parameters.unit,
        "calibration_periods": 0,
        "holdout_periods": 0,
        "actual_total": 0.0,
    }
    for name in parameters.models:
        facts.update(
            {
                f"{name}_loglik": 0.0,
                f"{name}_tracking_mape": 0.0,
                f"{name}_expected_total": 0.0,
                f"{name}_mae": 0.0,
            }
        )
    return facts


def _build_cdnow_tracking(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    result, params = _fit(spec, quick)
    return FigureData(tracking_panels(result.tracking), _facts(result, params))


def _draw_cdnow_tracking(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.fitting import plot_tracking
    from sim.plotting.style import label_panels

    table = data.table
    unit = data.facts["unit"]
    figure, axes = plt.subplots(1, 2, figsize=(11.5, 4.3))
    incremental = table[table["panel"] == "incremental"].drop(columns="panel")
    plot_tracking(incremental, ax=axes[0], unit=unit)
    axes[0].set_ylabel(f"repeat transactions per {unit}")
    axes[0].set_title(f"{unit.capitalize()}ly repeat transactions")
    axes[0].legend(loc="upper right")
    plot_tracking(table[table["panel"] == "cumulative"].drop(columns="panel"), ax=axes[1], unit=unit)
    axes[1].set_title("Cumulative repeat transactions")
    label_panels(axes)
    return figure


def _build_cdnow_conditional(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    result, params = _fit(spec, quick)
    return FigureData(result.by_frequency.copy(), _facts(result, params))


def _draw_cdnow_conditional(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.fitting import plot_conditional_expectations

    figure, ax = plt.subplots(figsize=(7.5, 4.3))
    plot_conditional_expectations(data.table, ax=ax)
    ax.set_title("Mean holdout transactions by calibration repeat count")
    ax.set_xticklabels(
        [
            f"{label}\nn = {customers:,}"
            for label, customers in zip(data.table["frequency"], data.table["customers"])
        ]
    )
    return figure
