"""Figures of the literature on a bundled transaction log: the customer-base models fitted to
the CDNOW 1/10 sample by :func:`sim.fitting.evaluation.fit_transactions` (no simulation).

* ``cdnow_tracking`` — weekly (a) and cumulative (b) repeat transactions of the cohort,
  actual against each model, calibration | holdout (Fader, Hardie & Lee 2005, "Counting your
  customers the easy way", Marketing Science 24(2), figures 1-2);
* ``cdnow_conditional`` — mean holdout transactions by calibration repeat count 0 .. 7+,
  actual and each model side by side (the same paper, figure 4);
* ``cdnow_lifecycle`` — the lifecycle HMM's inferred stages of the cohort, and a policy
  comparison on the customers alive at the calibration end (:mod:`sim.fitting.bridge`):
  the fitted margin beside the simulated one, and the paired ΔCLV of each policy.

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

__all__ = [
    "DATASETS",
    "QUICK_LIFECYCLE_CANDIDATES",
    "transaction_fit",
    "tracking_panels",
    "fitted_base_panels",
]

#: The bundled logs a figure may draw, by the name its ``params.dataset`` gives.
DATASETS = {"cdnow_sample": CDNOW_SAMPLE_PATH}


#: The lifecycle specifications a ``--quick`` run fits (one; the full run compares the registry's
#: default candidates by BIC, as ``sim fit`` does).
QUICK_LIFECYCLE_CANDIDATES = ((1, "gamma", None),)


@functools.lru_cache(maxsize=4)
def transaction_fit(
    dataset: str,
    calibration_end: str,
    holdout_end: str,
    unit: str,
    models: tuple[str, ...],
    quick: bool = False,
) -> FitResult:
    """:func:`sim.fit_transactions` on a bundled log (kept: the CDNOW figures use one fit).

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
    quick : bool, default False
        Fit the lifecycle model's :data:`QUICK_LIFECYCLE_CANDIDATES` only.

    Returns
    -------
    FitResult
    """
    options = (
        {"lifecycle": {"candidates": QUICK_LIFECYCLE_CANDIDATES}} if quick and "lifecycle" in models else None
    )
    return fit_transactions(
        DATASETS[dataset], calibration_end, holdout_end, unit=unit, models=models, fit_options=options
    )


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
        params.dataset, params.calibration_end, params.holdout_end, params.unit, tuple(params.models), quick
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


def fitted_base_panels(result: FitResult, margin: float, seed: int, replications: int, horizon, threads=None):
    """The tables of the ``cdnow_lifecycle`` figure, and the fitted base and projection.

    Parameters
    ----------
    result : FitResult
        With the lifecycle model.
    margin : float
        Gross margin rate on revenue.
    seed : int
        Seed of the snapshot draws and of the projection.
    replications : int
        Replications of the projection.
    horizon : int or None
        Periods projected (None: the bridge's default).
    threads : int, optional
        Threads of the projection.

    Returns
    -------
    table : DataFrame
        ``panel`` ("occupancy", "margin", "comparison") and the columns of the lifecycle
        fit's ``stage_occupancy`` table, :meth:`~sim.fitting.bridge.FittedCustomerBase.margin_table`
        and the projection's ``comparison`` table.
    base : FittedCustomerBase
    projection : ProjectionResult
    """
    from sim.fitting.bridge import fitted_customer_base
    from sim.runs.snapshot import project_from

    base = fitted_customer_base(
        result.fits["lifecycle"], result.data, margin=margin, seed=seed, horizon=horizon
    )
    projection = project_from(base.snapshot, base.config, replications=replications, threads=threads)
    occupancy = result.stage_occupancy.drop(columns=["model"], errors="ignore")
    table = pd.concat(
        [
            occupancy.assign(panel="occupancy"),
            base.margin_table(projection).assign(panel="margin"),
            projection.comparison.assign(panel="comparison"),
        ],
        ignore_index=True,
    )
    return table[["panel", *[c for c in table.columns if c != "panel"]]], base, projection


def _build_cdnow_lifecycle(spec: FigureSpec, quick: bool, threads: int | None) -> FigureData:
    result, params = _fit(spec, quick)
    sizes = spec.sizes(quick)
    table, base, projection = fitted_base_panels(
        result, params.margin, params.seed, sizes["replications"], sizes["horizon"], threads
    )
    fit = result.fits["lifecycle"]
    facts = _facts(result, params)
    outcomes = fit.decline_outcomes()  # per class; the caption gives the class-share averages
    win_back, churn, eventually = (
        float(np.dot(outcomes["class_share"], outcomes[column]))
        for column in ("win_back", "churn", "eventually_won_back")
    )
    snapshot = base.snapshot
    comparison = projection.comparison.set_index("policy")
    summary = projection.summary.set_index("policy")
    facts.update(
        {
            "spec": fit.hmm.name,
            "margin": params.margin,
            "money_scale": base.money_scale,
            "snapshot_customers": len(snapshot),
            "decline_share": float((snapshot["stage"] == 3).mean()),
            "win_back": win_back,
            "churn": churn,
            "win_back_eventually": eventually,
            "residual_clv_none": float(summary.loc["none", "clv_mean"]),
            "replications": sizes["replications"],
            "horizon": base.config.run.horizon,
            "seed": params.seed,
        }
    )
    for policy in comparison.index:
        facts[f"delta_{policy}"] = float(comparison.loc[policy, "delta_clv"])
    return FigureData(table, facts)


def _draw_cdnow_lifecycle(spec: FigureSpec, data: FigureData):
    import matplotlib.pyplot as plt

    from sim.plotting.fitting import plot_fitted_margin, plot_stage_occupancy_fit
    from sim.plotting.projection import plot_comparison_forest
    from sim.plotting.style import label_panels

    table = data.table
    unit = data.facts["unit"]
    figure, axes = plt.subplots(1, 3, figsize=(16.5, 4.5), layout="constrained")
    occupancy = table[table["panel"] == "occupancy"].dropna(axis=1, how="all")
    plot_stage_occupancy_fit(occupancy, ax=axes[0], unit=unit)
    margin = table[table["panel"] == "margin"].dropna(axis=1, how="all")
    plot_fitted_margin(margin, ax=axes[1], unit=unit)
    comparison = table[table["panel"] == "comparison"].dropna(axis=1, how="all")
    plot_comparison_forest(comparison, ax=axes[2])
    axes[2].set_title("Residual CLV per live customer against none")
    label_panels(axes)
    return figure


def _fitted_base_facts(spec, parameters, configs) -> dict:
    """The facts of ``cdnow_lifecycle`` known before any work (stand-ins of their types)."""
    facts = _transaction_fit_facts(spec, parameters, configs)
    facts.update(
        {
            "spec": "",
            "margin": parameters.margin,
            "money_scale": 0.0,
            "snapshot_customers": 0,
            "decline_share": 0.0,
            "win_back": 0.0,
            "churn": 0.0,
            "win_back_eventually": 0.0,
            "residual_clv_none": 0.0,
            "replications": 0,
            "horizon": 0,
            "seed": parameters.seed,
        }
    )
    return facts
