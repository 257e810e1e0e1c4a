"""The simulator calibrated to a transaction log: the survival of the first acquisition cohort
(a customer is lost after her last purchase), the shifted-beta-geometric fit to it, and the
revenue per active customer-period matched with the model's (``sim calibrate transactions``).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.data.transactions import read_transactions
from sim.exceptions import DataError
from sim.fitting.calibration import (
    SurvivalCalibration,
    _fit,
    calibrated_config,
    check_survivors,
    survival_fit_table,
)
from sim.model.config import ExperimentConfig, config_from_dict

__all__ = [
    "LOG_COLUMNS",
    "PILOT_CUSTOMERS",
    "MAX_LOG_PERIODS",
    "read_transaction_log",
    "CohortSurvival",
    "check_period_months",
    "cohort_survival",
    "policy_index",
    "simulated_revenue_per_active_period",
    "calibrate_transactions",
]

#: Columns a transaction log must have.
LOG_COLUMNS = ("customer_id", "date", "amount")


#: Customers simulated to measure the model's revenue per active customer-period.
PILOT_CUSTOMERS = 50_000


#: Longest span of a transaction log, in periods (100 years of months): a longer one is most
#: likely a mistyped date, and calibrating it would simulate that many periods.
MAX_LOG_PERIODS = 1200


#: Hints of :func:`sim.data.read_transactions` about options :func:`read_transaction_log` does
#: not have (amounts are required here; dates are ISO).
_READER_HINTS = (
    re.compile(r" \(or pass amount_column=None to read the log without amounts\)"),
    re.compile(r" \(pass date_format=[^)]*\)"),
)


def _header_columns(path: Path) -> dict[str, str]:
    """The header's name for each of :data:`LOG_COLUMNS`, matched without regard to case or
    surrounding spaces (``Customer_ID`` reads as ``customer_id``).

    Raises
    ------
    DataError
        If the header lacks one of them (naming what it has). A file that cannot be opened or
        decoded is left to :func:`sim.data.read_transactions` to report.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return {column: column for column in LOG_COLUMNS}
    if header is None:  # an empty file
        return {column: column for column in LOG_COLUMNS}
    found = {cell.strip().lower(): cell.strip() for cell in reversed(header)}
    missing = [column for column in LOG_COLUMNS if column not in found]
    if missing:
        raise DataError(
            f"{path}, line 1: missing column(s) {', '.join(missing)}; the header must name "
            f"{', '.join(LOG_COLUMNS)} (found: {', '.join(cell.strip() for cell in header) or 'nothing'})"
        )
    return {column: found[column] for column in LOG_COLUMNS}


def read_transaction_log(path: str | Path) -> pd.DataFrame:
    """Read a transaction log CSV with columns ``customer_id, date, amount`` (header required,
    names compared without regard to case; other columns ignored).

    Reading and validation are :func:`sim.data.read_transactions`'s (the one reader of the
    package, also behind ``sim fit``): ``date`` is an ISO date (``YYYY-MM-DD``; a time part is
    allowed and ignored) that must exist, ``amount`` a finite number ``>= 0`` (revenue of the
    transaction; net refunds out beforehand), and several rows of one customer on one day are
    merged into one transaction (amounts summed), which changes neither the survival counts
    nor the revenue the calibration uses.

    Returns
    -------
    DataFrame
        ``customer_id`` (str), ``date`` (datetime64), ``amount`` (float), one row per
        transaction, ordered by customer (in order of first appearance) and date; ``attrs``
        as :func:`sim.data.read_transactions` sets them (``rows_read``, ``rows_merged``, ...).

    Raises
    ------
    sim.exceptions.DataError
        (a ValueError) for a missing, empty, non-UTF-8 or unreadable file, a missing
        column, no rows, a log of one customer, or a bad value — naming the file, the line,
        the column, the value and what is allowed.
    """
    path = Path(path)
    columns = _header_columns(path) if path.is_file() else {column: column for column in LOG_COLUMNS}
    try:
        log = read_transactions(
            path,
            customer_column=columns["customer_id"],
            date_column=columns["date"],
            amount_column=columns["amount"],
        )
    except DataError as error:  # without the reader's options this function does not have
        text = str(error)
        for hint in _READER_HINTS:
            text = hint.sub("", text)
        raise DataError(text) from None
    table = pd.DataFrame(
        {
            "customer_id": log["customer_id"].astype(str).to_numpy(dtype=object),
            "date": log["date"].to_numpy(),
            "amount": log["amount"].to_numpy(dtype=float),
        }
    )
    table.attrs.update(log.attrs)
    return table


@dataclass(frozen=True)
class CohortSurvival:
    """The first cohort of a transaction log: survivor counts and revenue level.

    Attributes
    ----------
    survivors : ndarray of int64
        ``survivors[t]``: cohort customers alive in period ``t`` (transacting in ``t`` or
        later), ``t = 0 .. n_periods - 1``.
    period_months : int
        Calendar months per period.
    first_month : str
        The calendar month (``YYYY-MM``) period 0 starts with.
    n_periods : int
        Periods the log spans (from period 0 to the last period with any transaction).
    cohort_customers, log_customers, transactions : int
        Customers in the cohort, customers in the whole log, rows of the log.
    revenue : float
        Total amount of the cohort's transactions in the observed periods.
    active_periods : int
        ``sum_t survivors[t]``: alive customer-periods of the cohort.
    revenue_per_active_period : float
        ``revenue / active_periods``.
    revenue_per_active_period_se : float
        Its standard error, by the delta method for a ratio of per-customer sums
        (``sqrt(sum_i (y_i - R x_i)^2 / (m (m - 1))) / mean(x)`` over the ``m`` cohort
        customers, ``y_i`` revenue and ``x_i`` alive periods of customer ``i``).
    """

    survivors: np.ndarray
    period_months: int
    first_month: str
    n_periods: int
    cohort_customers: int
    log_customers: int
    transactions: int
    revenue: float
    active_periods: int
    revenue_per_active_period: float
    revenue_per_active_period_se: float


def check_period_months(period_months: Any, name: str = "period_months") -> int:
    """``period_months`` as a whole number of months in [1, 12], or ValueError naming ``name``."""
    if (
        isinstance(period_months, bool)
        or not isinstance(period_months, (int, np.integer, float))
        or not float(period_months).is_integer()
        or not 1 <= period_months <= 12
    ):
        raise ValueError(f"{name} = {period_months!r}: must be a whole number of months from 1 to 12")
    return int(period_months)


def cohort_survival(log: pd.DataFrame, period_months: int = 1) -> CohortSurvival:
    """Per-period survivor counts and revenue level of a transaction log's first cohort.

    Parameters
    ----------
    log
        Columns ``customer_id``, ``date`` (anything :func:`pandas.to_datetime` reads) and
        ``amount`` (revenue, ``>= 0``), e.g. from :func:`read_transaction_log` or
        :func:`~sim.fitting.synthetic.synthetic_transaction_log`.
    period_months
        Calendar months per period (1 to 12).

    Returns
    -------
    CohortSurvival
        See the module docstring for the definitions (cohort, alive, periods).

    Raises
    ------
    ValueError
        If a column is missing, the log is empty, spans fewer than 2 periods, or has a
        negative or non-finite amount.
    """
    months = check_period_months(period_months)
    if not isinstance(log, pd.DataFrame):
        raise ValueError(
            f"log must be a DataFrame with columns {', '.join(LOG_COLUMNS)}, got {type(log).__name__}"
        )
    missing = [column for column in LOG_COLUMNS if column not in log.columns]
    if missing:
        raise ValueError(f"log is missing column(s) {', '.join(missing)}; needs {', '.join(LOG_COLUMNS)}")
    if len(log) == 0:
        raise ValueError("log has no transactions")
    amounts = log["amount"].to_numpy(dtype=float)
    from sim.model.sections import MAX_MAGNITUDE

    bad_rows = np.flatnonzero(~np.isfinite(amounts) | (amounts < 0) | (amounts > MAX_MAGNITUDE))
    if bad_rows.size:
        raise ValueError(
            f"log amount values {amounts[bad_rows[:3]].tolist()} (rows {bad_rows[:3].tolist()}, first "
            f"offending): amounts must be finite, >= 0 and <= {MAX_MAGNITUDE:g}"
        )
    dates = pd.to_datetime(log["date"])
    month_index = (dates.dt.year * 12 + dates.dt.month - 1).to_numpy(dtype=np.int64)
    first = int(month_index.min())
    period = (month_index - first) // months
    n_periods = int(period.max()) + 1
    first_month = f"{first // 12:04d}-{first % 12 + 1:02d}"
    if n_periods > MAX_LOG_PERIODS:
        last = int(month_index.max())
        raise ValueError(
            f"the log spans {n_periods} periods of {months} month(s), from {first_month} to "
            f"{last // 12:04d}-{last % 12 + 1:02d}; at most {MAX_LOG_PERIODS} periods are calibrated "
            "(a mistyped date? check the earliest and latest dates in the log)"
        )
    if n_periods < 2:
        raise ValueError(
            f"the log spans only 1 period of {months} month(s) (from {first_month}); "
            "at least 2 periods are needed to see retention"
        )
    frame = pd.DataFrame(
        {"customer": log["customer_id"].astype(str).to_numpy(), "period": period, "amount": amounts}
    )
    per_customer = frame.groupby("customer", sort=True).agg(first=("period", "min"), last=("period", "max"))
    cohort = per_customer[per_customer["first"] == 0]
    last = cohort["last"].to_numpy()
    survivors = np.array([(last >= t).sum() for t in range(n_periods)], dtype=np.int64)
    in_cohort = frame["customer"].isin(cohort.index)
    revenue_by_customer = (
        frame[in_cohort].groupby("customer", sort=True)["amount"].sum().reindex(cohort.index).to_numpy()
    )
    alive_periods = last.astype(float) + 1.0
    revenue = float(revenue_by_customer.sum())
    active = int(survivors.sum())
    ratio = revenue / active
    m = len(cohort)
    if m > 1:
        residual = revenue_by_customer - ratio * alive_periods
        se = math.sqrt(float(np.sum(residual**2)) / (m * (m - 1))) / float(alive_periods.mean())
    else:
        se = float("nan")
    return CohortSurvival(
        survivors=survivors,
        period_months=months,
        first_month=first_month,
        n_periods=n_periods,
        cohort_customers=m,
        log_customers=int(len(per_customer)),
        transactions=int(len(log)),
        revenue=revenue,
        active_periods=active,
        revenue_per_active_period=ratio,
        revenue_per_active_period_se=se,
    )


def policy_index(config: ExperimentConfig, policy: str | None) -> int:
    """The position of policy ``policy`` in ``config`` (0 for None), or ValueError listing the policies."""
    if policy is None:
        return 0
    if policy not in config.policy_names:
        raise ValueError(
            f"policy = {policy!r}: no such policy; the config has {', '.join(config.policy_names)}"
        )
    return config.policy_names.index(policy)


def simulated_revenue_per_active_period(
    config: ExperimentConfig,
    *,
    policy: str | None = None,
    horizon: int | None = None,
    customers: int = PILOT_CUSTOMERS,
    margin: bool = False,
) -> float:
    """The model's mean core purchases per active customer-period over periods ``0`` to
    ``horizon - 1``.

    Runs :func:`sim.project` on a copy of ``config`` with only ``policy`` (default: the
    first), no discounting and no cost to serve, and with every stage's margin set to 1
    (``margin=False``: revenue ``W sow_t``) or kept (``margin=True``: gross margin
    ``W sow_t margin_k``); the ratio of the mean of CLV1 + CLV2 (now undiscounted sums of
    that quantity) to the mean number of active periods. These changes touch cash flows
    only, never the dynamics, so the stage path of every customer is the config's.
    """
    index = policy_index(config, policy)
    economics: dict[str, Any] = {"cost_to_serve": 0.0, "annual_discount_rate": 0.0}
    if not margin:
        economics["margin"] = {"exploration": 1.0, "formation": 1.0, "stability": 1.0, "decline": 1.0}
    pilot = config.with_overrides(
        economics=economics,
        policies=[config.policies[index].model_dump(mode="python")],
        run={"horizon": int(horizon or config.run.horizon), "replications": 1},
        population={"customers": int(customers)},
    )
    from sim.runs.projection import project

    result = project(pilot)
    summary = result.summary.iloc[0]
    active = float(result.trajectory["active_share"].sum())
    return float((summary["clv1"] + summary["clv2"]) / active)


def calibrate_transactions(
    log: pd.DataFrame,
    period_months: int = 1,
    base: ExperimentConfig | None = None,
    *,
    policy: str | None = None,
    name: str = "calibrated",
    source: str | None = None,
    pilot_customers: int = PILOT_CUSTOMERS,
) -> SurvivalCalibration:
    """Calibrate retention and the wallet level to a transaction log.

    1. :func:`cohort_survival` gives the first cohort's survivor counts and its revenue per
       alive customer-period.
    2. :func:`~sim.fitting.calibration.calibrate_survival`'s fit and config, with
       ``economics.period_months`` set to ``period_months``.
    3. The wallet level: revenue per active customer-period is proportional to
       ``population.wallet_median`` (the wallet is ``median * exp(sigma z)``; neither the
       stage dynamics nor the value tiers depend on the median), so the calibrated median is
       ``base median * observed / simulated``, the simulated level measured by
       :func:`simulated_revenue_per_active_period` on the calibrated config over the observed
       periods, under ``policy`` (the policy in force when the log was recorded; default the
       first). With the same seed the calibrated config reproduces the observed level.

    The margin rates stay the base config's; the gross margin per active customer-period they
    imply is reported in ``details``.

    Raises
    ------
    ValueError
        For a bad log (:func:`cohort_survival`), a bad ``period_months`` or an unknown policy.
    """
    summary = cohort_survival(log, period_months)
    base = base if base is not None else config_from_dict({})
    policy_index(base, policy)
    base = base.with_overrides(economics={"period_months": float(summary.period_months)})
    try:
        counts = check_survivors(summary.survivors, "survivors")
        fit, alpha, beta, alpha_se, beta_se, notes = _fit(counts)
    except ValueError as error:
        raise ValueError(f"the log's first cohort ({summary.cohort_customers} customers): {error}") from None
    n = summary.n_periods
    source = source or "a transaction log"
    first = calibrated_config(base, alpha, beta, name=name, horizon_at_least=n)
    simulated = simulated_revenue_per_active_period(
        first, policy=policy, horizon=n, customers=pilot_customers
    )
    wallet_median = base.population.wallet_median * summary.revenue_per_active_period / simulated
    description = (
        f"Calibrated to a transaction log: sBG alpha = {alpha:.6g}, beta = {beta:.6g} "
        f"({summary.cohort_customers} customers of the {summary.first_month} cohort, {n} periods of "
        f"{summary.period_months} month(s)); wallet_median = {wallet_median:.6g}"
    )
    config = calibrated_config(
        base,
        alpha,
        beta,
        name=name,
        description=description,
        horizon_at_least=n,
        population={"wallet_median": float(wallet_median)},
    )
    gross_margin = simulated_revenue_per_active_period(
        config, policy=policy, horizon=n, customers=pilot_customers, margin=True
    )
    notes = list(notes) + [
        f"Periods: {summary.period_months} calendar month(s) each from {summary.first_month} "
        "(economics.period_months); "
        f"cohort = {summary.cohort_customers} of {summary.log_customers}",
        "  customers (first transaction in period 0); alive in period t = transacts in period t or later.",
        f"Wallet level: observed revenue per alive customer-period = {summary.revenue_per_active_period:.6g} "
        f"(SE {summary.revenue_per_active_period_se:.3g});",
        f"  the base model gives {simulated:.6g} per active customer-period (policy "
        f"{base.policy_names[policy_index(base, policy)]!r}, {pilot_customers} simulated customers, periods "
        f"0-{n - 1}),",
        f"  so population.wallet_median = {base.population.wallet_median:.6g} x observed / simulated = "
        f"{wallet_median:.6g}.",
        "  Margin rates are the base config's: gross margin per active customer-period = "
        f"{gross_margin:.6g}.",
    ]
    return SurvivalCalibration(
        fit=fit,
        alpha=alpha,
        beta=beta,
        alpha_se=alpha_se,
        beta_se=beta_se,
        survivors=counts,
        table=survival_fit_table(counts, alpha, beta),
        config=config,
        source=source,
        notes=tuple(notes),
        details={
            "cohort": summary,
            "simulated_revenue_per_active_period_base": simulated,
            "wallet_median": wallet_median,
            "gross_margin_per_active_period": gross_margin,
            "pilot_customers": pilot_customers,
        },
    )
