"""The bundled CDNOW 1/10 sample and its standard calibration/holdout split.

See ``sim/data/datasets/README.md`` for the data's provenance (Fader & Hardie 2001;
Fader, Hardie & Lee 2005; also distributed with BTYD and, MIT-licensed, with ``lifetimes``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = [
    "CDNOW_CALIBRATION_END",
    "CDNOW_HOLDOUT_END",
    "CDNOW_SAMPLE_PATH",
    "CDNOW_UNIT",
    "load_cdnow_sample",
]

#: Path of the bundled CSV (``customer_id, date, amount``; 6,919 rows, 2,357 customers).
CDNOW_SAMPLE_PATH: Path = Path(__file__).resolve().parent / "datasets" / "cdnow_sample.csv"

#: Last day of the standard 39-week calibration period (1997-01-01 to 1997-09-30).
CDNOW_CALIBRATION_END = "1997-09-30"

#: Last day of the standard 39-week holdout period (1997-10-01 to 1998-06-30).
CDNOW_HOLDOUT_END = "1998-06-30"

#: Time unit of the published analyses of CDNOW.
CDNOW_UNIT = "week"


def load_cdnow_sample() -> pd.DataFrame:
    """The raw CDNOW 1/10 sample transaction log, one row per order.

    Returns
    -------
    DataFrame
        6,919 rows: ``customer_id`` (int), ``date`` (datetime64), ``amount`` (float, US
        dollars), in file order. Same-day orders of one customer are separate rows here;
        :func:`sim.data.read_transactions` (and :func:`sim.data.split_transactions`, which
        calls it) merges them into one transaction.

    Notes
    -----
    The standard split is :data:`CDNOW_CALIBRATION_END`, :data:`CDNOW_HOLDOUT_END` in
    :data:`CDNOW_UNIT` (Fader, Hardie & Lee 2005, "Counting your customers the easy way",
    Marketing Science 24(2)).

    Examples
    --------
    >>> from sim.data import load_cdnow_sample, split_transactions
    >>> data = split_transactions(load_cdnow_sample(), "1997-09-30", "1998-06-30", unit="week")
    >>> data.n_customers
    2357
    """
    return pd.read_csv(
        CDNOW_SAMPLE_PATH, parse_dates=["date"], dtype={"customer_id": "int64", "amount": "float64"}
    )
