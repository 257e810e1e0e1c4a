"""Transaction logs in: reading, validation, the calibration/holdout split and the panel.

* :func:`read_transactions` — read a CSV/parquet file or a DataFrame of purchases, check
  every value (problems raise :class:`sim.exceptions.DataError` naming file, line, column
  and value) and merge same-day rows of a customer into one transaction;
* :func:`split_transactions` — the calibration cohort's per-customer summary (frequency,
  recency, T, monetary, holdout counts) and customer × period panel, as :class:`CustomerData`;
* :func:`load_cdnow_sample` — the bundled CDNOW 1/10 sample and its standard split
  (:data:`CDNOW_CALIBRATION_END`, :data:`CDNOW_HOLDOUT_END`, :data:`CDNOW_UNIT`).

Quick start::

    from sim.data import load_cdnow_sample, split_transactions
    data = split_transactions(load_cdnow_sample(), "1997-09-30", "1998-06-30", unit="week")
    data.summary.head()
    data.panel.calibration_groups().n_groups

May import: :mod:`sim.exceptions`.
"""

from sim.data.cdnow import (
    CDNOW_CALIBRATION_END,
    CDNOW_HOLDOUT_END,
    CDNOW_SAMPLE_PATH,
    CDNOW_UNIT,
    load_cdnow_sample,
)
from sim.data.customers import (
    UNITS,
    CustomerData,
    PurchasePanel,
    SequenceGroups,
    split_transactions,
    unit_length,
)
from sim.data.transactions import (
    DEFAULT_MAX_BYTES,
    is_transaction_log,
    read_transactions,
)

__all__ = [
    "CDNOW_CALIBRATION_END",
    "CDNOW_HOLDOUT_END",
    "CDNOW_SAMPLE_PATH",
    "CDNOW_UNIT",
    "DEFAULT_MAX_BYTES",
    "UNITS",
    "CustomerData",
    "PurchasePanel",
    "SequenceGroups",
    "is_transaction_log",
    "load_cdnow_sample",
    "read_transactions",
    "split_transactions",
    "unit_length",
]
