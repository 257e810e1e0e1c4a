"""``sim fit LOG --calibration-end DATE``: the field's standard customer-base models on a real
transaction log — BG/NBD, Pareto/NBD and Gamma-Gamma, and on request the lifecycle HMM
(``--models lifecycle,bgnbd,pnbd``) — fitted to the calibration period and evaluated on the
holdout (:func:`sim.fit_transactions`), written to a result folder with the tidy tables,
three figures (four with the lifecycle model: ``stage_occupancy.png``) and ``manifest.json``
(the record of the inputs).

Bad input (a missing column, an unreadable value, a split outside the data, an output folder
the rules refuse) is one message naming the option, column, line or value, exit status 2, no
traceback and no output folder. A fit that does not converge is reported (on the terminal and
in ``fit.csv``), not an error: the command exits 0.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
import time
from pathlib import Path

import pandas as pd

from sim.cli._common import EXIT_BAD_INPUT, command_line, non_negative_int, use_file_backend
from sim.data.transactions import DEFAULT_MAX_BYTES
from sim.exceptions import DataError, ExecutorError, ResultExistsError
from sim.fitting.base import model_names
from sim.fitting.evaluation import DEFAULT_MODELS, FitResult, fit_transactions
from sim.io.paths import check_output_dir, default_result_dir
from sim.io.results import MANIFEST
from sim.runs.executors import make_executor

__all__ = ["register", "cli_message", "parse_size", "margin_rate"]

#: Figures written by ``sim fit`` (unless ``--no-figure``).
FIGURES = ("tracking.png", "conditional_expectations.png", "p_alive.png", "stage_occupancy.png")

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_SCALE = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

#: How the reader's Python-argument hints read on the command line.
_CLI_WORDS = (
    (re.compile(r"\b(customer|date|amount)_column='<the column's name>'"), r"--\1-column NAME"),
    (re.compile(r"\bamount_column=None\b"), "--no-amount"),
    (re.compile(r"\bdate_format="), "--date-format "),
    (re.compile(r" \(max_bytes=\d+\)"), ""),
    (re.compile(r"\ba larger max_bytes\b"), "a larger --max-size (e.g. --max-size 4G)"),
    (re.compile(r"\bcalibration_end\b"), "--calibration-end"),
    (re.compile(r"\bholdout_end\b"), "--holdout-end"),
)


class _BadInput(ValueError):
    """An argument that cannot be used (the message names it)."""


def cli_message(error: BaseException) -> str:
    """An error's message with the Python argument names of :func:`sim.fit_transactions`
    (``customer_column=...``, ``amount_column=None``, ``max_bytes``, ``calibration_end``)
    replaced by the options of ``sim fit`` that do the same.
    """
    text = str(error)
    for pattern, replacement in _CLI_WORDS:
        text = pattern.sub(replacement, text)
    return text


def parse_size(text: str) -> int:
    """Argparse type: a file size in bytes, ``1048576``, ``500M``, ``2G`` or ``1.5GiB`` (binary units)."""
    import argparse

    match = _SIZE.match(text or "")
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; give bytes or a number with K, M, G or T (e.g. 4G)"
        )
    value = int(float(match.group(1)) * _SCALE[match.group(2).upper()])
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 byte")
    return value


def _parse_day(text: str, option: str) -> _dt.date:
    if not _ISO_DAY.match(text.strip()):
        raise _BadInput(f"{option} {text!r} is not a date; give the day as YYYY-MM-DD (e.g. 1997-09-30)")
    try:
        return _dt.date.fromisoformat(text.strip())
    except ValueError as error:
        raise _BadInput(
            f"{option} {text!r} is not a calendar date ({error}); give an existing day as YYYY-MM-DD"
        ) from None


def _parse_models(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    known = model_names()
    if not all(names):
        raise _BadInput(
            f"--models {text!r}: an empty model name; give names separated by commas, from {', '.join(known)}"
        )
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(repr(n) for n in unknown)
        raise _BadInput(f"--models: unknown model(s) {listed}; choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


def _default_out(log: Path, force: bool) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_\-]+", "-", log.stem).strip("-") or "log"
    return default_result_dir(f"fit-{stem}", force=force)


def _check_out(out: Path, force: bool) -> None:
    """The rules of :mod:`sim.io.paths` and the complete-result rule of
    :func:`sim.io.results.prepare_result_dir`, checked without creating anything.
    """
    check_output_dir(out, force=force)
    if (Path(out) / MANIFEST).exists() and not force:
        raise ResultExistsError(
            f"{out} already holds a complete result (it has {MANIFEST}); "
            "choose another --out or pass --force to overwrite it"
        )


def _figures(result: FitResult) -> dict:
    import matplotlib.pyplot as plt

    from sim.plotting.fitting import (
        plot_conditional_expectations,
        plot_p_alive,
        plot_stage_occupancy_fit,
        plot_tracking,
    )
    from sim.plotting.style import figure_style

    figures = {}
    transaction_models = [name for name in result.fits if f"p_alive_{name}" in result.customers.columns]
    with figure_style():
        if result.tracking is not None:
            figure, ax = plt.subplots(figsize=(6.4, 4.2))
            plot_tracking(result.tracking, ax=ax, unit=result.data.unit)
            figures["tracking.png"] = figure
        if result.by_frequency is not None and transaction_models:
            figure, ax = plt.subplots(figsize=(6.4, 4.2))
            plot_conditional_expectations(result.by_frequency, ax=ax)
            figures["conditional_expectations.png"] = figure
        if transaction_models:
            figure, ax = plt.subplots(figsize=(6.4, 4.2))
            plot_p_alive(result.customers, ax=ax)
            figures["p_alive.png"] = figure
        if result.stage_occupancy is not None:
            figure, ax = plt.subplots(figsize=(6.4, 4.2))
            plot_stage_occupancy_fit(result.stage_occupancy, ax=ax, unit=result.data.unit)
            figures["stage_occupancy.png"] = figure
    return figures


def _table(frame: pd.DataFrame, columns: list[str], formats: dict | None = None) -> str:
    shown = frame[[c for c in columns if c in frame.columns]].copy()
    for column, fmt in (formats or {}).items():
        if column in shown:
            shown[column] = [fmt.format(value) if pd.notna(value) else "" for value in shown[column]]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        return shown.to_string(index=False)


def report(result: FitResult) -> str:
    """The compact text ``sim fit`` prints: the data, the fit table, the parameters, the
    holdout evaluation, and which fits did not converge.
    """
    inputs, data = result.inputs, result.data
    lines = []
    if inputs.get("rows_read") is not None:
        merged = inputs.get("rows_merged") or 0
        lines.append(
            f"{inputs['log']}: {inputs['rows_read']:,} rows read; {merged:,} same-day row"
            f"{'s' if merged != 1 else ''} of one customer merged into one transaction each -> "
            f"{inputs['transactions']:,} transactions of {inputs['log_customers']:,} customers "
            f"({inputs['first_date']} to {inputs['last_date']})"
        )
    holdout = (
        f"; holdout {data.holdout_length:g} {data.unit}s to {inputs['holdout_end']}"
        if data.holdout_length is not None
        else "; no holdout"
    )
    late = (
        f"; {data.late_customers:,} customers acquired later are not modelled" if data.late_customers else ""
    )
    lines.append(
        f"calibration cohort: {data.n_customers:,} customers acquired by {inputs['calibration_end']} "
        f"(unit: {data.unit}{holdout}){late}"
    )
    fit = result.fit.copy()
    lines.append("\nfit (log-likelihoods of transaction and spend models are of different data):")
    lines.append(
        _table(
            fit,
            ["model", "loglik", "n_parameters", "aic", "bic", "customers", "converged", "seconds"],
            {"loglik": "{:,.2f}", "aic": "{:,.2f}", "bic": "{:,.2f}", "seconds": "{:.2f}"},
        )
    )
    lines.append("\nparameters (estimate, standard error):")
    for name, fitted in result.fits.items():
        values = ", ".join(
            f"{parameter} = {value:.4g} ({fitted.se.get(parameter, float('nan')):.3g})"
            for parameter, value in fitted.params.items()
        )
        lines.append(f"  {name:<7} {values}")
    if result.lifecycle_candidates is not None:
        lines.append(
            "\nlifecycle: specifications compared by BIC on the calibration data (holdout not used):"
        )
        lines.append(
            _table(
                result.lifecycle_candidates,
                ["spec", "n_params", "loglik", "bic", "chosen", "n_at_best", "n_final", "seconds"],
                {"loglik": "{:,.2f}", "bic": "{:,.2f}", "seconds": "{:.1f}"},
            )
        )
    if result.stages is not None:
        lines.append("\nlifecycle stages of the chosen specification (rate per period; moves per period):")
        lines.append(
            _table(
                result.stages,
                ["class", "stage", "rate", "spend_per_purchase"]
                + [f"p_{state}" for state in ("exploration", "formation", "stability", "decline", "ended")]
                + ["mean_stay", "customers_at_end"],
                {
                    "rate": "{:.4f}",
                    "spend_per_purchase": "{:.2f}",
                    "p_exploration": "{:.3f}",
                    "p_formation": "{:.3f}",
                    "p_stability": "{:.3f}",
                    "p_decline": "{:.3f}",
                    "p_ended": "{:.3f}",
                    "mean_stay": "{:.1f}",
                    "customers_at_end": "{:,.0f}",
                },
            )
        )
    if result.evaluation is not None:
        lines.append(
            f"\nholdout evaluation ({data.n_customers:,} customers; expected vs actual holdout transactions; "
            "tracking_mape in %):"
        )
        lines.append(
            _table(
                result.evaluation,
                ["model", "mae", "rmse", "corr", "expected_total", "actual_total", "tracking_mape"],
                {
                    "mae": "{:.4f}",
                    "rmse": "{:.4f}",
                    "corr": "{:.4f}",
                    "expected_total": "{:,.1f}",
                    "actual_total": "{:,.0f}",
                    "tracking_mape": "{:.2f}",
                },
            )
        )
    failed = result.not_converged
    if failed:
        lines.append("")
        for name in failed:
            lines.append(
                f"NOT CONVERGED: {name}: {result.fits[name].message} "
                "(converged = False in fit.csv; its numbers are where the optimiser stopped)"
            )
    else:
        lines.append("\nevery fit converged")
    other = [note for note in result.notes if "same-day" not in note and "did not converge" not in note]
    other = [note for note in other if "first purchase after" not in note]
    for note in other:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def margin_rate(text: str) -> float:
    """Argparse type: a gross margin rate in (0, 1]."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number; give a margin rate such as 0.3"
        ) from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be in (0, 1] (a gross margin rate on revenue)")
    return value


def _bridge_options(args, models: list[str]):
    """The base config of the fitted config (or None), checked before any work."""
    from sim.model.config import load_config

    bridge_options = [
        option
        for option, value in (
            ("--margin", args.margin),
            ("--base-config", args.base_config),
            ("--seed", args.seed),
        )
        if value is not None
    ]
    if bridge_options and "lifecycle" not in models:
        raise _BadInput(
            f"{', '.join(bridge_options)} set(s) the fitted config, which is written with the lifecycle "
            "model: add lifecycle to --models (e.g. --models lifecycle,bgnbd,pnbd)"
        )
    return None if args.base_config is None else load_config(args.base_config)


def _executor_options(args, models: list[str]) -> None:
    """Check --executor / --scheduler before any work."""
    if args.scheduler and args.executor != "dask":
        raise _BadInput(f"--scheduler {args.scheduler} needs --executor dask")
    if args.executor == "dask":
        if "lifecycle" not in models:
            raise _BadInput(
                "--executor dask runs the lifecycle model's E-steps on a Dask cluster; the other models "
                "fit in this process: add lifecycle to --models (e.g. --models lifecycle,bgnbd,pnbd) "
                "or leave --executor out"
            )
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise _BadInput('the Dask executor needs dask.distributed: pip install -e ".[dask]"') from None


def _fitted_base(result: FitResult, args, base):
    """The fitted config and snapshot (sim.fitting.bridge), or None with the reason printed."""
    from sim.fitting.bridge import fitted_customer_base

    try:
        return fitted_customer_base(
            result.fits["lifecycle"], result.data, margin=args.margin, base=base, seed=args.seed
        )
    except ValueError as error:
        print(f"sim fit: no fitted config written: {error}", file=sys.stderr)
        return None


def _fit_command(args) -> int:
    from sim.exceptions import ConfigError

    try:
        models = _parse_models(args.models)
        base = _bridge_options(args, models)
        _executor_options(args, models)
        calibration_end = _parse_day(args.calibration_end, "--calibration-end")
        holdout_end = _parse_day(args.holdout_end, "--holdout-end") if args.holdout_end is not None else None
        if holdout_end is not None and holdout_end <= calibration_end:
            raise _BadInput(
                f"--holdout-end {holdout_end} is not after --calibration-end {calibration_end}; "
                "the holdout period follows the calibration period (or leave --holdout-end out)"
            )
        out = args.out if args.out is not None else _default_out(args.log, args.force)
        _check_out(out, args.force)  # before any work, and without creating the folder
    except (_BadInput, ResultExistsError, ConfigError) as error:
        print(f"sim fit: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    executor = make_executor(args.executor, args.scheduler) if args.executor == "dask" else None
    try:
        if executor is not None:
            with executor:
                result = _fit(args, calibration_end, holdout_end, models, executor)
                executor_record = executor.describe()
        else:
            result = _fit(args, calibration_end, holdout_end, models, None)
            executor_record = {"executor": "local"}
    except ExecutorError as error:  # the cluster could not be reached or lost every worker
        print(f"sim fit: {error}", file=sys.stderr)
        return 1
    except (DataError, ValueError) as error:
        text = cli_message(error)
        if "Gamma-Gamma" in text and "ggamma" in models and len(models) > 1:
            others = ",".join(name for name in models if name != "ggamma")
            text += f" (fit the other models alone with --models {others})"
        print(f"sim fit: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # e.g. no permission to read the log
        print(
            f"sim fit: cannot read {error.filename or args.log}: {error.strerror or error}", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    except MemoryError:
        print(
            f"sim fit: out of memory reading or fitting {args.log}; split the log by customer "
            "or use a machine with more memory",
            file=sys.stderr,
        )
        return 1
    fitted = _fitted_base(result, args, base) if "lifecycle" in result.fits else None
    figures = {}
    if not args.no_figure:
        use_file_backend()
        figures = _figures(result)
    result.timings["total_seconds"] = time.perf_counter() - started
    extra_files, extra_manifest = {}, {"executor": executor_record}
    if fitted is not None:
        extra_files = fitted.files()
        extra_manifest["fitted_config"] = _fitted_record(fitted)
    try:
        result.save(
            out,
            command=command_line(),
            force=args.force,
            figures=figures,
            extra_files=extra_files,
            extra_manifest=extra_manifest,
        )
    except ResultExistsError as error:  # the folder changed since the check
        print(f"sim fit: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if figures:
            import matplotlib.pyplot as plt

            for figure in figures.values():
                plt.close(figure)
    print(report(result))
    if fitted is not None:
        print("\n" + _fitted_report(fitted, out))
    files = [f"{name}.csv" for name in result.tables()] + list(figures) + list(extra_files) + [MANIFEST]
    print(f"\nwrote {out}/ ({', '.join(files)}) in {time.perf_counter() - started:.1f} s")
    return 0


def _fit(args, calibration_end, holdout_end, models, executor) -> FitResult:
    """``fit_transactions`` with the command's options (the lifecycle E-steps on ``executor``)."""
    return fit_transactions(
        args.log,
        calibration_end.isoformat(),
        holdout_end.isoformat() if holdout_end is not None else None,
        unit=args.unit,
        models=models,
        customer_column=args.customer_column,
        date_column=args.date_column,
        amount_column=None if args.no_amount else args.amount_column,
        date_format=args.date_format,
        max_bytes=args.max_size if args.max_size is not None else DEFAULT_MAX_BYTES,
        fit_options={"lifecycle": {"executor": executor}} if executor is not None else None,
    )


def _fitted_record(fitted) -> dict:
    """The manifest's ``fitted_config`` entry."""
    from sim.fitting.bridge import FITTED_CONFIG, SNAPSHOT

    return {
        "config": FITTED_CONFIG,
        "snapshot": SNAPSHOT,
        "snapshot_customers": len(fitted.snapshot),
        "exact": fitted.exact,
        "notes": list(fitted.notes),
        "wallet_scale": fitted.wallet_scale,
        "money_scale": fitted.money_scale,
        "snapshot_period_end": fitted.start_period_end,
        "seed": fitted.config.run.seed,
    }


def _fitted_report(fitted, out: Path) -> str:
    """What ``sim fit`` prints about the fitted config."""
    from sim.fitting.bridge import FITTED_CONFIG, SNAPSHOT

    config = fitted.config
    segments = fitted.segments
    lines = [
        f"fitted config for policy experiments: {FITTED_CONFIG} with {len(fitted.snapshot):,} live customers "
        f"in {SNAPSHOT} (the period ending {fitted.start_period_end}), {config.run.horizon} periods of "
        f"{config.economics.period_months:.4g} months, policies {', '.join(config.policy_names)}"
        + ("" if fitted.money_scale == 1 else f" (spends x {fitted.money_scale:.3g}: the log's money)"),
        "  segments: "
        + "; ".join(
            f"{row.segment} {row.share:.0%} (class {row.fit_class}"
            + ("" if row.exit_frailty == 1 else f", exit frailty {row.exit_frailty:.3g}")
            + ")"
            for row in segments.itertuples()
            if row.share > 0
        ),
    ]
    lines += [f"  note: {note}" for note in fitted.notes]
    lines.append(f"  compare the policies on these customers: sim run {out / FITTED_CONFIG}")
    return "\n".join(lines)


def register(subparsers) -> None:
    """Add ``sim fit LOG`` to the ``sim`` command line."""
    parser = subparsers.add_parser(
        "fit",
        help="fit BG/NBD, Pareto/NBD, Gamma-Gamma (and the lifecycle HMM) to a transaction log, "
        "evaluate on a holdout",
        description="Read a transaction log (one row per purchase; same-day rows of a customer are one "
        "transaction), split it at --calibration-end, fit the customer-base models by maximum likelihood, "
        "evaluate them on the holdout up to --holdout-end, and write parameters.csv, fit.csv, customers.csv, "
        "evaluation.csv, by_frequency.csv, tracking.csv, three figures and manifest.json (with --models "
        "lifecycle,...: also stages.csv, stage_occupancy.csv, lifecycle_candidates.csv and "
        "stage_occupancy.png).",
    )
    parser.add_argument("log", type=Path, help="transaction log: CSV (UTF-8, header line) or parquet")
    parser.add_argument(
        "--calibration-end",
        required=True,
        metavar="DATE",
        help="last day of the calibration period (YYYY-MM-DD)",
    )
    parser.add_argument(
        "--holdout-end", default=None, metavar="DATE", help="last day of the holdout period (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--unit", choices=("week", "day", "month"), default="week", help="time unit (default week)"
    )
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        metavar="M1,M2",
        help=f"models to fit, separated by commas (default {','.join(DEFAULT_MODELS)})",
    )
    parser.add_argument("--customer-column", default="customer_id", metavar="C", help="default customer_id")
    parser.add_argument("--date-column", default="date", metavar="D", help="default date")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--amount-column", default="amount", metavar="A", help="default amount")
    amount.add_argument("--no-amount", action="store_true", help="the log has no amounts (no Gamma-Gamma)")
    parser.add_argument(
        "--date-format",
        default=None,
        metavar="FMT",
        help="strptime format of the dates (default ISO YYYY-MM-DD)",
    )
    parser.add_argument(
        "--max-size",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="refuse larger logs before reading (default 2G; reading needs 2-3x the size in memory)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="result folder (default results/fit-<log name>)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite a complete result folder, or write beside other files (rules in sim.io.paths)",
    )
    parser.add_argument("--no-figure", action="store_true", help="skip the figures")
    parser.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where the lifecycle model's E-steps run: this process, or a Dask cluster (never changes "
        "results)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler address (tcp://host:8786) or scheduler file; default: a LocalCluster",
    )
    bridge = parser.add_argument_group(
        "fitted config (with --models lifecycle,...)",
        "sim fit also writes fitted_config.toml and snapshot.csv: the fitted stage dynamics and cash "
        "flows with the customers alive at the calibration end, for `sim run` (docs/model.md §13)",
    )
    bridge.add_argument(
        "--margin",
        type=margin_rate,
        default=None,
        metavar="RATE",
        help="gross margin rate on revenue in (0, 1] for every stage (default: the base config's by stage)",
    )
    bridge.add_argument(
        "--base-config",
        type=Path,
        default=None,
        metavar="TOML",
        help="experiment config giving the spend response, policies, discount rate and run settings "
        "(default: the package defaults, spends scaled to the log's margin)",
    )
    bridge.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        help="seed of the snapshot draws and of the run (default: the base's)",
    )
    parser.set_defaults(handler=_fit_command)
