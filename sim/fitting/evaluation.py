"""Fit the customer-base models to a transaction log and evaluate them on a holdout.

:func:`fit_transactions` reads a log (or takes one), splits it at the calibration end,
fits each requested model of the registry (:mod:`sim.fitting.base`) and returns a
:class:`TransactionFitResult` of tidy pandas tables — no plotting, printing or files:

``parameters``
    model, parameter, estimate, se (natural scale; delta method from the log-parameters).
``fit``
    model, loglik, n_parameters, aic, bic, customers, seconds, converged (+ iterations,
    message). Log-likelihoods of transaction and spend models are of different data and
    not comparable with each other.
``customers``
    customer_id, first_purchase, frequency, recency, T, monetary, holdout_frequency
    (actual, with a holdout) and, per transaction model ``m``, ``expected_m`` (expected
    holdout transactions, with a holdout) and ``p_alive_m``; per spend model,
    ``expected_spend_m``.
``evaluation`` (with a holdout)
    model, customers, mae, rmse, corr (customer-level expected vs actual holdout
    transactions), expected_total, actual_total, tracking_mape (mean absolute percentage
    error, in percent, of the cohort's cumulative repeat transactions at the end of each
    holdout period).
``by_frequency`` (with a holdout)
    frequency ("0".."6", "7+": repeat transactions in the calibration period), customers,
    actual (mean holdout transactions) and each model's mean expected holdout transactions
    (``expected_m``) — the conditional-expectation table of Fader, Hardie & Lee (2005a),
    figure 4.
``tracking`` (from a log)
    period, period_end, holdout, actual (cumulative repeat transactions of the cohort) and
    each model's expected cumulative repeat transactions (``expected_m``) — the tracking
    plot of Fader, Hardie & Lee (2005a), figure 2, on the unit's grid.

With the lifecycle model (``"lifecycle"``, :mod:`sim.fitting.lifecycle`) among the models,
``customers`` also holds its filtered stage probabilities at the calibration end
(``p_exploration_lifecycle`` ... ``p_ended_lifecycle``), class posterior
(``p_class<c>_lifecycle``) and posterior mean rate multiplier and exit frailty, ``fit`` its
diagnostics (spec, starts at the best, largest absolute score, quadrature nodes and errors), and
three more tables appear (any model may add tables and customer columns the same way, by
``extra_tables(data)`` and ``customer_columns(data)`` methods of its fitted form):

``stages``
    per class and stage: purchase rate (and SE), spend per purchase (with amounts),
    transition probabilities (``p_<state>``, one column per destination, and their SEs),
    expected periods per visit (``mean_stay``), expected customers there at the end.
``stage_occupancy``
    per calendar period of the grid: expected customers in each stage — the smoothed
    posterior during calibration, the forecast in the holdout.
``lifecycle_candidates``
    the specifications compared by BIC on the calibration data, with their holdout numbers
    beside (reported, never used to choose).

:meth:`TransactionFitResult.save` (also reachable as ``sim.FitResult.save``) writes the
tables as CSV, the figures, and ``manifest.json`` last — a record of the inputs (the log's
path and SHA-256, columns, split dates, unit, models, rows merged, late customers) with the
package versions — following the output rules of :mod:`sim.io.paths` and
:mod:`sim.io.results` (atomic files; a complete folder is not replaced without ``force``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sim.data.customers import CustomerData, split_transactions, unit_length
from sim.data.transactions import is_transaction_log, read_transactions
from sim.exceptions import DataError
from sim.fitting.base import FittedModel, SpendModelFit, TransactionModelFit, get_model
from sim.io.results import (
    MANIFEST,
    atomic_write_bytes,
    atomic_write_text,
    git_commit,
    package_versions,
    prepare_result_dir,
)

__all__ = [
    "DEFAULT_MODELS",
    "FitResult",
    "TransactionFitResult",
    "evaluation_tables",
    "file_sha256",
    "fit_transactions",
]

#: Models fitted by default.
DEFAULT_MODELS: tuple[str, ...] = ("bgnbd", "pnbd", "ggamma")

#: Calibration repeat counts shown separately in ``by_frequency``; larger ones are pooled as "7+".
FREQUENCY_BINS = 7


@dataclass
class TransactionFitResult:
    """The fitted models and their tables (see :mod:`sim.fitting.evaluation`).

    Attributes
    ----------
    data : CustomerData
        The calibration cohort the models were fitted to.
    fits : dict of str to FittedModel
        Fitted models by registry name.
    parameters, fit, customers : DataFrame
        Always present.
    evaluation, by_frequency : DataFrame or None
        With a holdout period.
    tracking : DataFrame or None
        When the data come from a transaction log (the period grid is known).
    stages, stage_occupancy, lifecycle_candidates : DataFrame or None
        With the lifecycle model (see :mod:`sim.fitting.evaluation`).
    notes : tuple of str
        Remarks to report with the tables (merged rows, late customers, skipped models,
        fits that did not converge).
    inputs : dict
        What the result was computed from, as :func:`fit_transactions` recorded it: ``log``
        (path or "the table"), ``log_sha256`` and ``log_bytes`` (for a file), ``columns``,
        ``date_format``, ``calibration_end``, ``holdout_end``, ``unit``, ``models``, and
        the log's ``rows_read``, ``rows_merged``, ``transactions``, ``log_customers``,
        ``first_date``, ``last_date``; ``customers`` and ``late_customers`` of the cohort.
    timings : dict
        Wall seconds of the steps (``read_seconds``, ``split_seconds``, ``fit_seconds``
        per model, ``tables_seconds``, ``total_seconds``).
    """

    #: The tables, in the order :meth:`tables` and :meth:`save` give them.
    TABLES: ClassVar[tuple[str, ...]] = (
        "parameters",
        "fit",
        "customers",
        "evaluation",
        "by_frequency",
        "tracking",
        "stages",
        "stage_occupancy",
        "lifecycle_candidates",
    )

    data: CustomerData
    fits: dict[str, FittedModel]
    parameters: pd.DataFrame
    fit: pd.DataFrame
    customers: pd.DataFrame
    evaluation: pd.DataFrame | None
    by_frequency: pd.DataFrame | None
    tracking: pd.DataFrame | None
    stages: pd.DataFrame | None = None
    stage_occupancy: pd.DataFrame | None = None
    lifecycle_candidates: pd.DataFrame | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    inputs: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables that exist, by name (``parameters``, ``fit``, ``customers``, ...)."""
        return {n: getattr(self, n) for n in self.TABLES if getattr(self, n) is not None}

    @property
    def not_converged(self) -> list[str]:
        """Names of the models whose fit did not converge (also ``converged`` in ``fit``)."""
        return [name for name, fitted in self.fits.items() if not fitted.converged]

    def manifest(self, command: str | None = None) -> dict[str, Any]:
        """The record :meth:`save` writes as ``manifest.json`` (without the ``files`` list).

        Parameters
        ----------
        command : str, optional
            The command line that produced the result (default: ``sys.argv`` joined).

        Returns
        -------
        dict
            ``kind``, ``complete``, ``created``, ``command``, ``inputs`` (see
            :attr:`inputs`), ``fits`` (per model: converged, loglik, iterations, message),
            ``notes``, ``versions``, ``git``, ``platform`` and ``timings``.
        """
        fits = {
            name: {
                "converged": bool(fitted.converged),
                "loglik": float(fitted.loglik),
                "iterations": int(fitted.iterations),
                "message": fitted.message,
            }
            for name, fitted in self.fits.items()
        }
        return {
            "kind": "fit_transactions",
            "complete": True,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command if command is not None else " ".join(sys.argv),
            "inputs": dict(self.inputs),
            "fits": fits,
            "notes": list(self.notes),
            "versions": package_versions(),
            "git": git_commit(),
            "platform": {"machine": platform.machine(), "system": platform.system(), "cpus": os.cpu_count()},
            "timings": dict(self.timings),
        }

    def save(
        self,
        directory: str | Path,
        *,
        command: str | None = None,
        force: bool = False,
        figures: dict[str, Any] | None = None,
        extra_files: dict[str, str] | None = None,
        extra_manifest: dict[str, Any] | None = None,
    ) -> Path:
        """Write the tables (CSV), the figures, any extra files, then ``manifest.json`` last.

        Parameters
        ----------
        directory : str or Path
            The result folder; the rules of :mod:`sim.io.paths` apply (never the root or
            the home folder, not a folder of other files without ``force``).
        command : str, optional
            The command line recorded in the manifest.
        force : bool, default False
            Replace a complete result (a folder with ``manifest.json``): its listed files
            are removed first (:func:`sim.io.results.prepare_result_dir`).
        figures : dict of str to matplotlib Figure, optional
            ``{file name: figure}``, saved (PNG unless the name says otherwise) before the
            manifest.
        extra_files : dict of str to str, optional
            ``{file name: text}`` written beside the tables (e.g. the fitted config and snapshot
            of :meth:`sim.fitting.bridge.FittedCustomerBase.files`), listed in the manifest.
        extra_manifest : dict, optional
            Entries added to the manifest (e.g. ``fitted_config``).

        Returns
        -------
        Path
            The folder, holding ``parameters.csv``, ``fit.csv``, ``customers.csv``,
            ``evaluation.csv`` and ``by_frequency.csv`` (with a holdout),
            ``tracking.csv`` (from a log), ``stages.csv``, ``stage_occupancy.csv`` and
            ``lifecycle_candidates.csv`` (with the lifecycle model), the figures and
            ``manifest.json``, whose
            ``files`` lists the SHA-256 of every other file.

        Raises
        ------
        sim.exceptions.ResultExistsError
            If the folder holds a complete result and ``force`` is false (or an output
            rule refuses the folder: :class:`sim.exceptions.UnsafeOutputError`).
        ValueError
            For a figure name that is not a plain file name.
        """
        for name in [*(figures or {}), *(extra_files or {})]:
            if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
                raise ValueError(f"file name {name!r} must be a plain file name such as 'tracking.png'")
        directory = prepare_result_dir(directory, force=force)
        written = [
            atomic_write_text(directory / f"{name}.csv", table.to_csv(index=False))
            for name, table in self.tables().items()
        ]
        for file_name, figure in (figures or {}).items():
            buffer = io.BytesIO()
            figure.savefig(
                buffer, format=Path(file_name).suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight"
            )
            written.append(atomic_write_bytes(directory / file_name, buffer.getvalue()))
        for file_name, text in (extra_files or {}).items():
            written.append(atomic_write_text(directory / file_name, text))
        manifest = {**self.manifest(command), **(extra_manifest or {})}
        manifest["files"] = {path.name: file_sha256(path) for path in written}
        atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
        return directory


#: The result of :func:`fit_transactions` (``sim.FitResult``).
FitResult = TransactionFitResult


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, read in blocks of 1 MiB.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _day_text(value: Any) -> str | None:
    return None if value is None else pd.Timestamp(value).date().isoformat()


def _frequency_label(frequency: np.ndarray) -> np.ndarray:
    labels = np.array([str(k) for k in range(FREQUENCY_BINS)] + [f"{FREQUENCY_BINS}+"], dtype=object)
    return labels[np.minimum(frequency.astype(np.int64), FREQUENCY_BINS)]


def evaluation_tables(data: CustomerData, fits: dict[str, FittedModel]) -> dict[str, pd.DataFrame | None]:
    """The result tables for already fitted models.

    Parameters
    ----------
    data : CustomerData
        The calibration cohort (with holdout for ``evaluation`` and ``by_frequency``).
    fits : dict of str to FittedModel
        Fitted models by name.

    Returns
    -------
    dict
        ``parameters``, ``fit``, ``customers``, ``evaluation``, ``by_frequency``,
        ``tracking`` (None where the data do not allow the table), and the tables the fitted
        models add (``stages``, ``stage_occupancy``, ``lifecycle_candidates`` for the
        lifecycle model; None without it).
    """
    parameters = (
        pd.concat(
            [
                fit.parameters.assign(model=name)[["model", "parameter", "estimate", "se"]]
                for name, fit in fits.items()
            ],
            ignore_index=True,
        )
        if fits
        else pd.DataFrame(columns=["model", "parameter", "estimate", "se"])
    )
    fit_columns = [
        "model",
        "loglik",
        "n_parameters",
        "aic",
        "bic",
        "customers",
        "seconds",
        "converged",
        "iterations",
        "message",
    ]
    summary_rows = [fit.summary_row() for fit in fits.values()]
    for row in summary_rows:  # a model's own diagnostics after the standard columns
        fit_columns += [key for key in row if key not in fit_columns]
    fit_table = pd.DataFrame(summary_rows, columns=fit_columns)

    summary = data.summary
    columns = [
        c
        for c in ("customer_id", "first_purchase", "frequency", "recency", "T", "monetary")
        if c in summary.columns
    ]
    customers = summary[columns].copy()
    holdout = data.has_holdout
    if holdout:
        customers["holdout_frequency"] = summary["holdout_frequency"].to_numpy()
    transaction_fits = {n: f for n, f in fits.items() if isinstance(f, TransactionModelFit)}
    expected: dict[str, np.ndarray] = {}
    for name, fit in transaction_fits.items():
        if holdout:
            expected[name] = fit.expected_holdout_transactions(data)
            customers[f"expected_{name}"] = expected[name]
        customers[f"p_alive_{name}"] = fit.p_alive(data)
    extra: dict[str, list[pd.DataFrame]] = {}
    for name, fit in fits.items():
        if hasattr(fit, "customer_columns"):
            for column, values in fit.customer_columns(data).items():
                customers[column] = values
        if hasattr(fit, "extra_tables"):
            for table_name, table in fit.extra_tables(data).items():
                extra.setdefault(table_name, []).append(table)
    for name, fit in fits.items():
        if isinstance(fit, SpendModelFit):
            customers[f"expected_spend_{name}"] = fit.expected_spend(data)

    tracking = None
    if data.has_period_grid:
        actual = data.tracking_actual()
        tracking = actual[["period", "period_end", "holdout"]].copy()
        tracking["actual"] = actual["cumulative"].to_numpy()
        for name, fit in transaction_fits.items():
            tracking[f"expected_{name}"] = fit.expected_tracking(data)

    evaluation = by_frequency = None
    if holdout:
        actual_holdout = data.holdout_frequency
        rows = []
        for name in transaction_fits:
            error = expected[name] - actual_holdout
            corr = (
                float(np.corrcoef(expected[name], actual_holdout)[0, 1])
                if np.std(expected[name]) > 0 and np.std(actual_holdout) > 0
                else np.nan
            )
            mape = np.nan
            if tracking is not None:
                part = tracking[tracking["holdout"] & (tracking["actual"] > 0)]
                if len(part):
                    mape = float(
                        np.mean(np.abs(part[f"expected_{name}"] - part["actual"]) / part["actual"]) * 100.0
                    )
            rows.append(
                {
                    "model": name,
                    "customers": len(actual_holdout),
                    "mae": float(np.mean(np.abs(error))),
                    "rmse": float(np.sqrt(np.mean(error**2))),
                    "corr": corr,
                    "expected_total": float(expected[name].sum()),
                    "actual_total": float(actual_holdout.sum()),
                    "tracking_mape": mape,
                }
            )
        evaluation = pd.DataFrame(
            rows,
            columns=[
                "model",
                "customers",
                "mae",
                "rmse",
                "corr",
                "expected_total",
                "actual_total",
                "tracking_mape",
            ],
        )
        labels = _frequency_label(data.frequency)
        frame = pd.DataFrame({"frequency": labels, "actual": actual_holdout})
        for name in transaction_fits:
            frame[f"expected_{name}"] = expected[name]
        order = [str(k) for k in range(FREQUENCY_BINS)] + [f"{FREQUENCY_BINS}+"]
        grouped = frame.groupby("frequency", sort=False)
        by_frequency = grouped.mean().reindex(order)
        by_frequency.insert(0, "customers", grouped.size().reindex(order).fillna(0).astype(np.int64))
        by_frequency = by_frequency.reset_index()
        by_frequency["frequency"] = by_frequency["frequency"].astype(object)

    return {
        "parameters": parameters,
        "fit": fit_table,
        "customers": customers,
        "evaluation": evaluation,
        "by_frequency": by_frequency,
        "tracking": tracking,
        **{
            table_name: pd.concat(extra[table_name], ignore_index=True) if table_name in extra else None
            for table_name in ("stages", "stage_occupancy", "lifecycle_candidates")
        },
    }


def fit_transactions(
    log_or_path: pd.DataFrame | str | Path | CustomerData,
    calibration_end: Any = None,
    holdout_end: Any = None,
    unit: str = "week",
    models: Sequence[str] = DEFAULT_MODELS,
    *,
    fit_options: dict[str, dict[str, Any]] | None = None,
    **read_options: Any,
) -> TransactionFitResult:
    """Fit customer-base models to a transaction log and evaluate them on the holdout.

    Parameters
    ----------
    log_or_path : DataFrame, path or CustomerData
        A transaction log (file or table; read with :func:`sim.data.read_transactions`),
        or customer data already split (then ``calibration_end``, ``holdout_end`` and
        ``unit`` are taken from it).
    calibration_end : date-like
        Last day of the calibration period (required unless ``log_or_path`` is CustomerData).
    holdout_end : date-like, optional
        Last day of the holdout period.
    unit : {"day", "week", "month"}, default "week"
        Time unit of the models.
    models : sequence of str, default ("bgnbd", "pnbd", "ggamma")
        Registry names (:func:`sim.fitting.base.model_names`). A spend model is skipped, with
        a note, when the log has no amounts.
    fit_options : dict, optional
        Options for each model's ``fit`` by name, e.g. ``{"pnbd": {"start": {...}}}``.
    **read_options
        Passed to :func:`sim.data.read_transactions` (``customer_column``, ``date_column``,
        ``amount_column``, ``date_format``, ``max_bytes``).

    Returns
    -------
    TransactionFitResult
        Tidy tables (see the module docstring), the fitted models and the data.

    Raises
    ------
    DataError
        For a bad log or split (see :func:`sim.data.split_transactions`).
    ValueError
        For an unknown model name.

    Examples
    --------
    >>> from sim.data import load_cdnow_sample
    >>> from sim.fitting.evaluation import fit_transactions
    >>> result = fit_transactions(load_cdnow_sample(), "1997-09-30", "1998-06-30", unit="week")
    >>> result.fit[["model", "loglik"]].round(2).values.tolist()
    [['bgnbd', -9582.43], ['pnbd', -9594.98], ['ggamma', -4055.92]]
    """
    began = time.perf_counter()
    names = list(dict.fromkeys(models))
    if not names:
        raise ValueError("models is empty; choose from the registry, e.g. ('bgnbd', 'pnbd', 'ggamma')")
    instances = [get_model(name) for name in names]  # unknown names fail before any reading
    fit_options = fit_options or {}
    unknown = set(fit_options) - set(names)
    if unknown:
        raise ValueError(f"fit_options for model(s) {sorted(unknown)} that are not among models {names}")
    timings: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    if isinstance(log_or_path, CustomerData):
        if read_options:
            raise DataError(
                f"read options {sorted(read_options)} given with customer data that is already split"
            )
        data = log_or_path
        inputs["log"] = data.source
    else:
        if calibration_end is None:
            raise DataError(
                "calibration_end is required: the last day of the calibration period, e.g. '1997-09-30'"
            )
        unit_length(unit)  # a bad unit fails before any reading
        date_format = None
        if is_transaction_log(log_or_path):
            log = log_or_path
            started = time.perf_counter()
        else:
            started = time.perf_counter()
            log = read_transactions(log_or_path, **read_options)
            date_format = read_options.get("date_format")
            read_options = {}
        timings["read_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        data = split_transactions(log, calibration_end, holdout_end, unit=unit, **read_options)
        timings["split_seconds"] = time.perf_counter() - started
        inputs.update(_log_inputs(log_or_path, log, date_format))
    inputs.update(
        {
            "calibration_end": _day_text(data.calibration_end),
            "holdout_end": _day_text(data.holdout_end),
            "holdout_length": data.holdout_length,
            "unit": data.unit,
            "models": names,
            "customers": data.n_customers,
            "late_customers": data.late_customers,
        }
    )
    notes = list(data.notes)
    fits: dict[str, FittedModel] = {}
    for model in instances:
        if model.kind == "spend" and not data.has_amount:
            notes.append(f"{model.name} ({model.title}) was not fitted: the log has no transaction amounts")
            continue
        fitted = model.fit(data, **fit_options.get(model.name, {}))
        timings[f"fit_seconds_{model.name}"] = fitted.seconds
        if not fitted.converged:
            notes.append(f"{model.name} ({model.title}) did not converge: {fitted.message}")
        fits[model.name] = fitted
    started = time.perf_counter()
    tables = evaluation_tables(data, fits)
    timings["tables_seconds"] = time.perf_counter() - started
    timings["total_seconds"] = time.perf_counter() - began
    return TransactionFitResult(
        data=data, fits=fits, notes=tuple(notes), inputs=inputs, timings=timings, **tables
    )


def _log_inputs(source: Any, log: pd.DataFrame, date_format: str | None) -> dict[str, Any]:
    """The manifest's record of a read log: path, SHA-256 and size of a file, the columns
    read, and the log's counts (from the ``attrs`` :func:`sim.data.read_transactions` sets).
    """
    attrs = log.attrs
    record: dict[str, Any] = {"log": attrs.get("source", "the table")}
    if isinstance(source, (str, Path)):
        path = Path(source)
        record.update({"log": str(path), "log_sha256": file_sha256(path), "log_bytes": path.stat().st_size})
    record["columns"] = {
        "customer": attrs.get("customer_column"),
        "date": attrs.get("date_column"),
        "amount": attrs.get("amount_column"),
    }
    record["date_format"] = date_format
    for key in ("rows_read", "rows_merged", "transactions", "first_date", "last_date", "has_amount"):
        record[key] = attrs.get(key)
    record["log_customers"] = attrs.get("customers")
    return record
