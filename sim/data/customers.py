"""The calibration cohort of a transaction log: per-customer summary and customer × period panel.

:func:`split_transactions` cuts a log (from :func:`sim.data.read_transactions`) at a
calibration end date and an optional holdout end date and returns :class:`CustomerData`:

* ``summary`` — one row per customer of the calibration cohort (everyone whose first
  purchase is on or before the calibration end) with the sufficient statistics of the
  customer-base models: ``frequency`` x (repeat transactions in the calibration period),
  ``recency`` t_x (time of the last repeat transaction since the first purchase; 0 if x = 0),
  ``T`` (time from the first purchase to the calibration end), ``monetary`` (mean value of the
  repeat transactions, NaN if x = 0), and, with a holdout, ``holdout_frequency`` and
  ``holdout_monetary``;
* ``panel`` — a customer × period panel of purchase counts and amounts (NumPy arrays) for
  period models such as a hidden-Markov lifecycle model, with :meth:`PurchasePanel.calibration_groups`
  grouping identical calibration sequences;
* the cohort's actual cumulative repeat transactions per period (:meth:`CustomerData.tracking_actual`)
  and each customer's acquisition time on the same grid, for the tracking plot.

Time
----
Time is measured in days divided by the unit's length: ``day`` = 1, ``week`` = 7,
``month`` = 365.25 / 12 = 30.4375 days (the mean Gregorian month; periods of the panel are
then 30.4375-day intervals, not calendar months). A purchase on day ``d`` of a customer whose
first purchase was on day ``d0`` happens at time ``(d - d0) / length``; the calibration end
day is part of the calibration period, so ``T = (calibration_end - first_purchase) / length``.
With weeks these are the conventions of Fader, Hardie & Lee (2005) for CDNOW (customer 1:
x = 2, t_x = 30.43, T = 38.86).

Periods
-------
The panel and the tracking table share one grid of periods of the unit's length that ends
exactly at the end of the calibration end day: calibration periods 1..n_cal cover the
calibration period (the first one starts on or before the cohort's first purchase), holdout
periods follow from the day after the calibration end to the holdout end (the last one may
be shorter). A purchase belongs to the period that contains its day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from sim.data.transactions import is_transaction_log, read_transactions
from sim.exceptions import DataError

__all__ = [
    "UNITS",
    "CustomerData",
    "PurchasePanel",
    "SequenceGroups",
    "split_transactions",
    "unit_length",
]

#: Length of each time unit in days.
UNITS: dict[str, float] = {"day": 1.0, "week": 7.0, "month": 365.25 / 12.0}

_EPS = 1e-9


def unit_length(unit: str) -> float:
    """Length of a time unit in days.

    Parameters
    ----------
    unit : {"day", "week", "month"}
        ``month`` is 365.25 / 12 = 30.4375 days.

    Returns
    -------
    float

    Raises
    ------
    DataError
        For any other unit.
    """
    if unit not in UNITS:
        raise DataError(
            f"unit = {unit!r} is not a time unit; choose one of {', '.join(repr(u) for u in UNITS)}"
        )
    return UNITS[unit]


def _as_day(value: Any, name: str) -> int:
    """A date argument as days since 1970-01-01."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataError(f"{name} = {value!r} is not a date; give a date such as '1997-09-30'") from None
    if stamp is pd.NaT:
        raise DataError(f"{name} is missing; give a date such as '1997-09-30'")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    return int(np.datetime64(stamp.normalize().to_datetime64(), "D").astype(np.int64))


def _day_text(day: float) -> str:
    return str(np.datetime64(math.floor(day), "D"))


# --------------------------------------------------------------------------- panel


@dataclass(frozen=True)
class SequenceGroups:
    """Distinct calibration sequences of a panel and how many customers share each.

    Attributes
    ----------
    entry_period : ndarray of int32, shape (n_groups,)
        0-based period of the first purchase of the group's customers.
    counts : ndarray of int32, shape (n_groups, n_calibration_periods)
        The group's purchase counts per calibration period (zeros before the entry period).
    multiplicity : ndarray of int64, shape (n_groups,)
        Number of customers with this (entry period, count sequence).
    group_of_customer : ndarray of int64, shape (n_customers,)
        Index of each customer's group, so a per-group result ``g`` maps back to customers as
        ``g[group_of_customer]``.
    """

    entry_period: np.ndarray
    counts: np.ndarray
    multiplicity: np.ndarray
    group_of_customer: np.ndarray

    @property
    def n_groups(self) -> int:
        """Number of distinct sequences."""
        return len(self.multiplicity)


@dataclass(frozen=True)
class PurchasePanel:
    """Customer × period purchase counts and amounts of a calibration cohort.

    Attributes
    ----------
    customer_id : ndarray, shape (n_customers,)
        Customers, in the order of :attr:`CustomerData.summary`.
    counts : ndarray of int32, shape (n_customers, n_periods)
        Transactions (same-day rows merged) of each customer in each period, the first
        purchase included.
    amounts : ndarray of float64, shape (n_customers, n_periods), or None
        Their summed amounts (None for a log without amounts).
    entry_period : ndarray of int32, shape (n_customers,)
        0-based period of each customer's first purchase.
    n_calibration_periods : int
        Periods ``0 .. n_calibration_periods - 1`` are the calibration period; the rest, the
        holdout.
    period_start, period_end : DatetimeIndex
        First and last day of each period (the grid is described in :mod:`sim.data.customers`).
    unit : str
        The period length's unit.
    """

    customer_id: np.ndarray
    counts: np.ndarray
    amounts: np.ndarray | None
    entry_period: np.ndarray
    n_calibration_periods: int
    period_start: pd.DatetimeIndex
    period_end: pd.DatetimeIndex
    unit: str

    @property
    def n_customers(self) -> int:
        """Number of customers (rows)."""
        return int(self.counts.shape[0])

    @property
    def n_periods(self) -> int:
        """Number of periods (columns), calibration and holdout."""
        return int(self.counts.shape[1])

    def calibration_groups(self) -> SequenceGroups:
        """Group customers with IDENTICAL calibration sequences (entry period and counts).

        Returns
        -------
        SequenceGroups
            The distinct ``(entry_period, counts[:, :n_calibration_periods])`` rows, their
            multiplicities and each customer's group. A period model's E-step (e.g. a
            hidden-Markov forward–backward pass) then runs once per distinct sequence and
            weights it by its multiplicity.

        Notes
        -----
        Rows are compared as raw bytes (one ``np.unique`` over a void view of the contiguous
        ``int32`` array), ``O(n log n)`` in the number of customers.
        """
        n_cal = self.n_calibration_periods
        key = np.empty((self.n_customers, n_cal + 1), dtype=np.int32)
        key[:, 0] = self.entry_period
        key[:, 1:] = self.counts[:, :n_cal]
        key = np.ascontiguousarray(key)
        rows = key.view(np.dtype((np.void, key.dtype.itemsize * key.shape[1]))).ravel()
        _, first, inverse, multiplicity = np.unique(
            rows, return_index=True, return_inverse=True, return_counts=True
        )
        # groups in order of their first customer, so group 0 holds customer 0
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        representatives = first[order]
        return SequenceGroups(
            entry_period=key[representatives, 0].copy(),
            counts=key[representatives, 1:].copy(),
            multiplicity=multiplicity[order].astype(np.int64),
            group_of_customer=rank[inverse.ravel()].astype(np.int64),
        )


# --------------------------------------------------------------------------- customer data


class CustomerData:
    """A calibration cohort: per-customer summary, and (from a log) the panel and tracking data.

    Build it with :func:`split_transactions` (from a transaction log) or
    :meth:`CustomerData.from_summary` (from already summarised data; no panel then).
    Every customer-base model's ``fit`` receives this whole object.

    Attributes
    ----------
    summary : DataFrame
        One row per customer: ``customer_id``, ``first_purchase``, ``frequency``, ``recency``,
        ``T``, ``monetary``, and with a holdout ``holdout_frequency``, ``holdout_monetary``.
    unit : str
        Time unit of ``recency``, ``T`` and the holdout length.
    unit_days : float
        Its length in days.
    calibration_end, holdout_end : Timestamp or None
        The split dates (None when built from a summary / without holdout).
    holdout_length : float or None
        Length of the holdout period in units (``(holdout_end - calibration_end) / unit_days``).
    late_customers : int
        Customers of the log whose first purchase is after the calibration end (not in the
        cohort; reported, not modelled).
    source : str
        Where the data came from.
    rows_read, rows_merged : int or None
        Rows of the input log and how many of them were merged into same-day transactions.
    notes : tuple of str
        Remarks for the output (late customers, merged rows, a holdout beyond the data).
    """

    def __init__(
        self,
        summary: pd.DataFrame,
        *,
        unit: str,
        calibration_end: pd.Timestamp | None = None,
        holdout_end: pd.Timestamp | None = None,
        holdout_length: float | None = None,
        late_customers: int = 0,
        source: str = "",
        rows_read: int | None = None,
        rows_merged: int | None = None,
        notes: tuple[str, ...] = (),
        _transactions: dict[str, np.ndarray] | None = None,
        _grid: dict[str, Any] | None = None,
    ):
        self.summary = summary
        self.unit = unit
        self.unit_days = unit_length(unit)
        self.calibration_end = calibration_end
        self.holdout_end = holdout_end
        self.holdout_length = holdout_length
        self.late_customers = int(late_customers)
        self.source = source
        self.rows_read = rows_read
        self.rows_merged = rows_merged
        self.notes = tuple(notes)
        self._transactions = _transactions
        self._grid = _grid

    # ---- construction from a summary
    @classmethod
    def from_summary(
        cls,
        summary: pd.DataFrame,
        *,
        unit: str = "week",
        holdout_length: float | None = None,
        source: str = "a summary table",
    ) -> CustomerData:
        """Customer data from an already summarised table (no transaction log).

        Parameters
        ----------
        summary : DataFrame
            Columns ``frequency`` (int >= 0), ``recency`` (0 <= recency <= T, 0 when
            frequency is 0), ``T`` (> 0); optionally ``customer_id``, ``monetary`` (mean
            repeat-transaction value, >= 0 where frequency > 0), ``holdout_frequency``.
        unit : str, default "week"
            Unit of ``recency`` and ``T``.
        holdout_length : float, optional
            Length of the holdout period in units (needed for expected holdout transactions).
        source : str
            Name used in messages.

        Returns
        -------
        CustomerData
            Without a panel or tracking data (they need the transaction log).

        Raises
        ------
        DataError
            For a missing column or a value outside the ranges above, naming the row.
        """
        unit_length(unit)
        missing = [c for c in ("frequency", "recency", "T") if c not in summary.columns]
        if missing:
            raise DataError(
                f"{source}: no column(s) {', '.join(missing)} (columns found: "
                f"{', '.join(map(str, summary.columns))}); "
                "a customer summary needs frequency, recency and T"
            )
        table = summary.reset_index(drop=True).copy()
        frequency = table["frequency"].to_numpy(dtype=float)
        recency = table["recency"].to_numpy(dtype=float)
        age = table["T"].to_numpy(dtype=float)
        checks = [
            (
                ~np.isfinite(frequency) | (frequency < 0) | (np.mod(frequency, 1) != 0),
                "frequency",
                "an integer >= 0",
            ),
            (~np.isfinite(age) | (age <= 0), "T", "a number > 0"),
            (
                ~np.isfinite(recency) | (recency < 0) | (recency > age * (1 + 1e-12)),
                "recency",
                "between 0 and T",
            ),
            ((frequency == 0) & (recency != 0), "recency", "0 when frequency is 0"),
        ]
        if "monetary" in table.columns:
            money = table["monetary"].to_numpy(dtype=float)
            checks.append(
                (
                    (frequency > 0) & ~(np.isfinite(money) & (money >= 0)),
                    "monetary",
                    "a number >= 0 where frequency > 0",
                )
            )
        for mask, column, allowed in checks:
            if mask.any():
                row = int(np.flatnonzero(mask)[0])
                value = table[column].iloc[row]
                value = value.item() if hasattr(value, "item") else value
                raise DataError(f"{source}, row {row + 1}: {column} = {value!r} must be {allowed}")
        if len(table) < 2:
            raise DataError(
                f"{source} holds {len(table)} customer(s); the models need a cohort of many customers"
            )
        if frequency.max() == 0:
            raise DataError(
                f"{source}: nobody repeats (every frequency is 0); the models need repeat purchases"
            )
        table["frequency"] = frequency.astype(np.int64)
        if "customer_id" not in table.columns:
            table.insert(0, "customer_id", np.arange(1, len(table) + 1))
        if "monetary" not in table.columns:
            table["monetary"] = np.nan
        return cls(table, unit=unit, holdout_length=holdout_length, source=source)

    # ---- arrays
    @property
    def n_customers(self) -> int:
        """Customers in the calibration cohort."""
        return len(self.summary)

    @property
    def customer_id(self) -> np.ndarray:
        """Customer ids, in summary order."""
        return self.summary["customer_id"].to_numpy()

    @property
    def frequency(self) -> np.ndarray:
        """Repeat transactions x in the calibration period (float array)."""
        return self.summary["frequency"].to_numpy(dtype=float)

    @property
    def recency(self) -> np.ndarray:
        """Time t_x of the last repeat transaction since the first purchase, in units."""
        return self.summary["recency"].to_numpy(dtype=float)

    @property
    def T(self) -> np.ndarray:
        """Time from the first purchase to the calibration end, in units."""
        return self.summary["T"].to_numpy(dtype=float)

    @property
    def monetary(self) -> np.ndarray:
        """Mean value of the repeat transactions in the calibration period (NaN if x = 0)."""
        return self.summary["monetary"].to_numpy(dtype=float)

    @property
    def has_holdout(self) -> bool:
        """Whether a holdout period (and its actual transactions) is known."""
        return self.holdout_length is not None and "holdout_frequency" in self.summary.columns

    @property
    def holdout_frequency(self) -> np.ndarray:
        """Actual transactions in the holdout period.

        Raises
        ------
        DataError
            Without a holdout.
        """
        if not self.has_holdout:
            raise DataError("no holdout period: give holdout_end to split_transactions")
        return self.summary["holdout_frequency"].to_numpy(dtype=float)

    @property
    def has_amount(self) -> bool:
        """Whether the data carry transaction amounts."""
        return bool(np.isfinite(self.monetary).any())

    @property
    def has_period_grid(self) -> bool:
        """Whether the data come from a transaction log (panel, tracking and grid available)."""
        return self._transactions is not None and self._grid is not None

    def _need_log(self, what: str) -> None:
        if self._transactions is None or self._grid is None:
            raise DataError(
                f"{what} needs the transaction log; this customer data was built from a summary "
                f"({self.source}); use split_transactions on the log"
            )

    # ---- the period grid
    @property
    def n_calibration_periods(self) -> int:
        """Periods of the calibration period on the panel/tracking grid."""
        self._need_log("the period grid")
        return int(self._grid["n_calibration"])

    @property
    def n_periods(self) -> int:
        """Periods of the grid, calibration and holdout."""
        self._need_log("the period grid")
        return int(self._grid["n_periods"])

    def period_last_days(self) -> np.ndarray:
        """Last day of each period (days since 1970-01-01, int64)."""
        self._need_log("the period grid")
        return self._grid["last_day"]

    def period_first_days(self) -> np.ndarray:
        """First day of each period (days since 1970-01-01, int64)."""
        self._need_log("the period grid")
        return self._grid["first_day"]

    @property
    def acquisition_times(self) -> np.ndarray:
        """Each customer's first purchase, in units since the start of the grid."""
        self._need_log("acquisition times")
        first = self._transactions["first_day"]
        return (first - self._grid["start"]) / self.unit_days

    @property
    def period_end_times(self) -> np.ndarray:
        """End (last day) of each period, in units since the start of the grid.

        A customer acquired at ``s`` is ``period_end_times - s`` units old at the end of a
        period, the age at which her cumulative repeat transactions are compared with the
        model's ``E[X(t)]``; at the calibration end that age is exactly ``T``.
        """
        self._need_log("period times")
        return (self._grid["last_day"] - self._grid["start"]) / self.unit_days

    def tracking_actual(self) -> pd.DataFrame:
        """The cohort's actual repeat transactions per period, and their cumulative sum.

        Returns
        -------
        DataFrame
            ``period`` (1-based), ``period_end`` (date of its last day), ``holdout`` (bool),
            ``time`` (period end in units since the grid start), ``repeat_transactions``
            (in the period) and ``cumulative`` (since the grid start). Repeat transactions
            are all transactions of cohort customers except each one's first.
        """
        self._need_log("the tracking table")
        tx = self._transactions
        period = tx["period"]
        repeat = ~tx["is_first"] & (period < self.n_periods) & (period >= 0)
        counts = np.bincount(period[repeat], minlength=self.n_periods)[: self.n_periods]
        return pd.DataFrame(
            {
                "period": np.arange(1, self.n_periods + 1),
                "period_end": self._grid["last_day"].astype("datetime64[D]").astype("datetime64[ns]"),
                "holdout": np.arange(self.n_periods) >= self.n_calibration_periods,
                "time": self.period_end_times,
                "repeat_transactions": counts.astype(np.int64),
                "cumulative": np.cumsum(counts).astype(np.int64),
            }
        )

    @cached_property
    def panel(self) -> PurchasePanel:
        """The customer × period panel (built on first use and kept).

        Returns
        -------
        PurchasePanel
            Counts (int32) and amounts (float64) of all transactions of the cohort per period
            of the grid, calibration and holdout, and each customer's entry period. Memory:
            12 bytes × customers × periods (e.g. 23,570 × 78 weeks: 22 MB).
        """
        self._need_log("the panel")
        tx = self._transactions
        n_periods = self.n_periods
        inside = (tx["period"] >= 0) & (tx["period"] < n_periods)
        flat = tx["customer"][inside].astype(np.int64) * n_periods + tx["period"][inside]
        size = self.n_customers * n_periods
        counts = np.bincount(flat, minlength=size).astype(np.int32).reshape(self.n_customers, n_periods)
        amounts = None
        if tx.get("amount") is not None:
            amounts = np.bincount(flat, weights=tx["amount"][inside], minlength=size).reshape(
                self.n_customers, n_periods
            )
        entry = np.floor((tx["first_day"] - self._grid["start"]) / self.unit_days + _EPS).astype(np.int32)
        grid = self._grid
        return PurchasePanel(
            customer_id=self.customer_id,
            counts=counts,
            amounts=amounts,
            entry_period=entry,
            n_calibration_periods=int(grid["n_calibration"]),
            period_start=pd.DatetimeIndex(grid["first_day"].astype("datetime64[D]").astype("datetime64[ns]")),
            period_end=pd.DatetimeIndex(grid["last_day"].astype("datetime64[D]").astype("datetime64[ns]")),
            unit=self.unit,
        )

    def __repr__(self) -> str:
        holdout = f", holdout {self.holdout_length:g} {self.unit}s" if self.holdout_length is not None else ""
        return f"CustomerData({self.n_customers} customers from {self.source}, unit {self.unit}{holdout})"


def split_transactions(
    log: pd.DataFrame | str,
    calibration_end: Any,
    holdout_end: Any = None,
    *,
    unit: str = "week",
    **read_options: Any,
) -> CustomerData:
    """Split a transaction log at the calibration end into the cohort's customer data.

    Parameters
    ----------
    log : DataFrame or path
        A log from :func:`sim.data.read_transactions`; anything else (a path or a raw
        table) is read with it first (``read_options`` are passed on).
    calibration_end : date-like
        Last day of the calibration period (included).
    holdout_end : date-like, optional
        Last day of the holdout period (included); must be after ``calibration_end``.
    unit : {"day", "week", "month"}, default "week"
        Time unit (week = 7 days, month = 365.25/12 days).
    **read_options
        Passed to :func:`read_transactions` when ``log`` is not already a read log.

    Returns
    -------
    CustomerData
        The calibration cohort (customers whose first purchase is on or before
        ``calibration_end``), in order of the log. Customers acquired later are counted in
        ``late_customers`` and named in ``notes``, not silently dropped.

    Raises
    ------
    DataError
        If the calibration end is before the log's first purchase or after its last, if
        the holdout end is not after the calibration end, if nobody in the cohort makes a
        repeat purchase in the calibration period, or for a bad unit or date.

    Notes
    -----
    Per customer, with day numbers ``d`` and unit length ``L`` (days):
    ``frequency`` = calibration transactions - 1, ``recency`` = (last calibration
    transaction - first purchase) / L (0 if frequency = 0), ``T`` = (calibration end - first
    purchase) / L, ``monetary`` = mean amount of the repeat calibration transactions (NaN if
    frequency = 0: the first purchase is excluded, as in Fader, Hardie & Lee's Gamma-Gamma
    analysis of CDNOW), ``holdout_frequency`` = transactions in (calibration end, holdout end],
    ``holdout_monetary`` = their mean amount (NaN if none).
    """
    length = unit_length(unit)
    if not is_transaction_log(log):
        log = read_transactions(log, **read_options)
    elif read_options:
        raise DataError(f"read options {sorted(read_options)} given for a log that has already been read")
    cal_day = _as_day(calibration_end, "calibration_end")
    hold_day = None if holdout_end is None else _as_day(holdout_end, "holdout_end")

    codes, uniques = pd.factorize(log["customer_id"], sort=False)
    codes = codes.astype(np.int64)
    days = log["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    has_amount = "amount" in log.columns
    amounts = log["amount"].to_numpy(dtype=float) if has_amount else None
    order = np.lexsort((days, codes))
    if not np.all(order == np.arange(len(order))):
        codes, days = codes[order], days[order]
        amounts = amounts[order] if amounts is not None else None
    source = log.attrs.get("source", "the log")
    first_log, last_log = int(days.min()), int(days.max())
    if cal_day < first_log:
        raise DataError(
            f"calibration_end = {_day_text(cal_day)} is before the first purchase in {source} "
            f"({_day_text(first_log)}): "
            f"nobody would be in the calibration cohort; choose a date from {_day_text(first_log)} to "
            f"{_day_text(last_log)}"
        )
    if cal_day > last_log:
        raise DataError(
            f"calibration_end = {_day_text(cal_day)} is after the last purchase in {source} "
            f"({_day_text(last_log)}): "
            f"the log does not cover the calibration period; choose a date from {_day_text(first_log)} to "
            f"{_day_text(last_log)}"
        )
    if hold_day is not None and hold_day <= cal_day:
        raise DataError(
            f"holdout_end = {_day_text(hold_day)} is not after calibration_end = {_day_text(cal_day)}; "
            "the holdout period follows the calibration period (or leave holdout_end out)"
        )

    n_all = len(uniques)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    first_day_all = days[starts]
    in_cohort = first_day_all <= cal_day
    late = int(n_all - in_cohort.sum())
    cohort_index = np.full(n_all, -1, dtype=np.int64)
    cohort_index[in_cohort] = np.arange(int(in_cohort.sum()))
    customer = cohort_index[codes]
    keep = customer >= 0
    end_day = hold_day if hold_day is not None else cal_day
    keep &= days <= end_day
    customer, days_c = customer[keep], days[keep]
    amounts_c = amounts[keep] if amounts is not None else None
    n = int(in_cohort.sum())
    first_day = first_day_all[in_cohort]
    is_first = np.r_[True, customer[1:] != customer[:-1]]

    calibration = days_c <= cal_day
    cal_count = np.bincount(customer[calibration], minlength=n)
    frequency = cal_count - 1
    if frequency.max() == 0:
        raise DataError(
            f"nobody of the {n} customers acquired by calibration_end = {_day_text(cal_day)} makes a repeat "
            "purchase "
            f"by then in {source}: the models need repeat purchases; choose a later calibration_end"
        )
    last_cal_day = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_cal_day, customer[calibration], days_c[calibration])
    recency = (last_cal_day - first_day) / length
    age = (cal_day - first_day) / length
    columns: dict[str, Any] = {
        "customer_id": np.asarray(uniques)[in_cohort],
        "first_purchase": first_day.astype("datetime64[D]").astype("datetime64[ns]"),
        "frequency": frequency.astype(np.int64),
        "recency": recency,
        "T": age,
    }
    repeat_cal = calibration & ~is_first
    if amounts_c is not None:
        repeat_sum = np.bincount(customer[repeat_cal], weights=amounts_c[repeat_cal], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["monetary"] = np.where(frequency > 0, repeat_sum / np.maximum(frequency, 1), np.nan)
    else:
        columns["monetary"] = np.full(n, np.nan)
    notes: list[str] = []
    holdout_length = None
    if hold_day is not None:
        holdout = ~calibration
        hold_count = np.bincount(customer[holdout], minlength=n)
        columns["holdout_frequency"] = hold_count.astype(np.int64)
        if amounts_c is not None:
            hold_sum = np.bincount(customer[holdout], weights=amounts_c[holdout], minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                columns["holdout_monetary"] = np.where(
                    hold_count > 0, hold_sum / np.maximum(hold_count, 1), np.nan
                )
        else:
            columns["holdout_monetary"] = np.full(n, np.nan)
        holdout_length = (hold_day - cal_day) / length
        if hold_day > last_log:
            notes.append(
                f"holdout_end {_day_text(hold_day)} is after the last purchase in the log "
                f"({_day_text(last_log)}): "
                "the holdout may be incomplete"
            )
    summary = pd.DataFrame(columns)

    # the period grid: ends at the end of the calibration end day
    end_exclusive = cal_day + 1
    n_cal = max(1, math.ceil((end_exclusive - int(first_day.min())) / length - _EPS))
    start = end_exclusive - n_cal * length
    n_hold = 0 if hold_day is None else max(1, math.ceil((hold_day + 1 - end_exclusive) / length - _EPS))
    n_periods = n_cal + n_hold
    bounds = start + np.arange(n_periods + 1) * length
    first_days = np.ceil(bounds[:-1] - _EPS).astype(np.int64)
    last_days = (np.ceil(bounds[1:] - _EPS) - 1).astype(np.int64)
    last_days[n_cal - 1] = cal_day
    if hold_day is not None:
        last_days[-1] = min(int(last_days[-1]), hold_day)
    period = np.floor((days_c - start) / length + _EPS).astype(np.int64)
    grid = {
        "start": float(start),
        "n_calibration": n_cal,
        "n_periods": n_periods,
        "first_day": first_days,
        "last_day": last_days,
    }
    transactions = {
        "customer": customer,
        "day": days_c,
        "period": period,
        "is_first": is_first,
        "first_day": first_day.astype(np.int64),
        "amount": amounts_c,
    }

    rows_read = log.attrs.get("rows_read")
    rows_merged = log.attrs.get("rows_merged")
    if rows_merged:
        notes.append(
            f"{rows_merged} rows of the log were same-day purchases of one customer, merged into one "
            "transaction each"
        )
    if late:
        notes.append(
            f"{late} customers made their first purchase after calibration_end {_day_text(cal_day)}; "
            "they are not in the calibration cohort and are not modelled"
        )
    return CustomerData(
        summary,
        unit=unit,
        calibration_end=pd.Timestamp(_day_text(cal_day)),
        holdout_end=None if hold_day is None else pd.Timestamp(_day_text(hold_day)),
        holdout_length=holdout_length,
        late_customers=late,
        source=source,
        rows_read=rows_read,
        rows_merged=rows_merged,
        notes=tuple(notes),
        _transactions=transactions,
        _grid=grid,
    )
