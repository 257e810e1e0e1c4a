"""``sim calibrate survival | transactions | synthetic-log``: fit the simulator to observed
survivor counts or a transaction log and write a runnable config; write a synthetic log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from sim.cli._common import EXIT_BAD_INPUT, non_negative_int, positive_int
from sim.fitting.calibration import SurvivalCalibration, calibrate_survival, name_from_path, parse_survivors
from sim.fitting.cohort import calibrate_transactions, check_period_months, read_transaction_log
from sim.fitting.synthetic import synthetic_transaction_log, write_transaction_log
from sim.model.config import ExperimentConfig, config_from_dict, load_config

__all__ = [
    "register",
]


def _print_fit(calibration: SurvivalCalibration, stream=None) -> None:
    stream = stream or sys.stdout
    fit = calibration.fit
    print(
        f"sBG fit (Fader & Hardie 2007, maximum likelihood) to a cohort of {fit.cohort_size:,} customers, "
        f"{fit.n_periods} periods:",
        file=stream,
    )
    print(
        f"  alpha = {fit.alpha:.6g} (SE {calibration.alpha_se:.3g})   beta = {fit.beta:.6g} (SE "
        f"{calibration.beta_se:.3g})"
        f"   log-likelihood = {fit.loglik:.6g}   "
        f"{'converged' if fit.converged else 'NOT converged (boundary)'}",
        file=stream,
    )
    print(
        "  mean churn propensity alpha/(alpha+beta) = "
        f"{calibration.alpha / (calibration.alpha + calibration.beta):.4g}"
        " per period",
        file=stream,
    )
    for note in calibration.notes:
        print(f"  {note.strip()}", file=stream)
    table = calibration.table.copy()
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_rows", 400):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"), file=stream)


def _load_base(path) -> ExperimentConfig:
    return load_config(path) if path is not None else config_from_dict({})


def _refuse_existing(path: Path, force: bool) -> None:
    """--out must name a file: not a folder (whatever --force says); an existing file only
    with --force.
    """
    if path.is_dir():
        raise FileExistsError(
            f"--out {path} is a folder; --out names the file to write (e.g. {path / 'calibrated.toml'})"
        )
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; choose another --out or pass --force to overwrite it")


def _survival_command(args) -> int:

    try:
        survivors = parse_survivors(args.survivors)
        base = _load_base(args.base)
        _refuse_existing(args.out, args.force)
        calibration = calibrate_survival(
            survivors, base, name=args.name or name_from_path(args.out, "calibrated")
        )
        _print_fit(calibration)
        calibration.write(args.out, force=args.force)
    except (ValueError, FileExistsError) as error:  # ConfigError is a ValueError
        print(f"sim calibrate survival: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"\nwrote {args.out} (base: {args.base or 'the baseline defaults'}); run it with: sim run {args.out}"
    )
    return 0


def _transactions_command(args) -> int:

    try:
        months = check_period_months(args.period_months, "--period-months")
        base = _load_base(args.base)
        _refuse_existing(args.out, args.force)
        log = read_transaction_log(args.log)
        calibration = calibrate_transactions(
            log,
            months,
            base,
            policy=args.policy,
            name=args.name or name_from_path(args.out, "calibrated"),
            source=f"transaction log {args.log}",
        )
        cohort = calibration.details["cohort"]
        print(
            f"{args.log}: {cohort.transactions:,} transactions, {cohort.log_customers:,} customers; cohort "
            "of "
            f"{cohort.first_month}: {cohort.cohort_customers:,} customers over {cohort.n_periods} periods of "
            f"{cohort.period_months} month(s)"
        )
        _print_fit(calibration)
        calibration.write(args.out, force=args.force)
    except (ValueError, FileExistsError) as error:
        print(f"sim calibrate transactions: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"\nwrote {args.out} (base: {args.base or 'the baseline defaults'}); run it with: sim run {args.out}"
    )
    return 0


def _synthetic_command(args) -> int:

    try:
        config = load_config(args.config)
        _refuse_existing(args.out, args.force)
        log = synthetic_transaction_log(
            config,
            args.customers,
            args.seed,
            policy=args.policy,
            start=args.start,
            late_customers=args.late_customers,
        )
        write_transaction_log(log, args.out, force=args.force)
    except (ValueError, FileExistsError) as error:
        print(f"sim calibrate synthetic-log: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"wrote {args.out}: {len(log):,} transactions of {args.customers + args.late_customers:,} customers"
    )
    return 0


def register(subparsers) -> None:
    """Add ``sim calibrate {survival, transactions, synthetic-log}`` to the ``sim`` parser."""
    parser = subparsers.add_parser(
        "calibrate",
        help="fit retention to observed data and write a runnable experiment config",
        description="Fit the shifted-beta-geometric retention curve to observed survival and write the base "
        "config with the calibrated Beta-heterogeneous churn.",
    )
    commands = parser.add_subparsers(dest="calibrate_command", required=True, metavar="SOURCE")

    def common(sub):
        sub.add_argument(
            "--base",
            type=Path,
            default=None,
            help="experiment TOML to calibrate (default: baseline defaults)",
        )
        sub.add_argument("--out", type=Path, required=True, help="calibrated experiment TOML to write")
        sub.add_argument("--name", default=None, help="experiment name (default: from the --out file name)")
        sub.add_argument("--force", action="store_true", help="overwrite an existing --out file")

    survival = commands.add_parser(
        "survival",
        help="from survivor counts N0,N1,... (N0 = cohort size, Nt = active at the start of period t)",
    )
    survival.add_argument(
        "--survivors",
        required=True,
        metavar="N0,N1,...",
        help="comma-separated counts: cohort size, then customers still active after each period",
    )
    common(survival)
    survival.set_defaults(handler=_survival_command)

    transactions = commands.add_parser(
        "transactions", help="from a transaction log CSV (customer_id, date, amount)"
    )
    transactions.add_argument(
        "log", type=Path, help="CSV with a header naming customer_id, date (YYYY-MM-DD), amount"
    )
    transactions.add_argument(
        "--period-months", type=int, default=1, help="calendar months per period (1-12; default 1)"
    )
    transactions.add_argument(
        "--policy",
        default=None,
        help="the base policy in force when the log was recorded (default: the first)",
    )
    common(transactions)
    transactions.set_defaults(handler=_transactions_command)

    synthetic = commands.add_parser(
        "synthetic-log", help="simulate a transaction log with the toolkit (test data)"
    )
    synthetic.add_argument("config", type=Path, help="experiment TOML to simulate")
    synthetic.add_argument(
        "--customers", type=positive_int, required=True, help="customers acquired in the first period"
    )
    synthetic.add_argument(
        "--late-customers", type=non_negative_int, default=0, help="customers acquired one period later"
    )
    synthetic.add_argument("--seed", type=non_negative_int, required=True, help="random seed")
    synthetic.add_argument("--policy", default=None, help="policy to simulate (default: the first)")
    synthetic.add_argument("--start", default="2024-01", help="calendar month of period 0 (YYYY-MM)")
    synthetic.add_argument("--out", type=Path, required=True, help="CSV file to write")
    synthetic.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    synthetic.set_defaults(handler=_synthetic_command)
