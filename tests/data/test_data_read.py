"""sim.data.read_transactions: reading, merging same-day rows, and one DataError per bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.data import (
    CDNOW_SAMPLE_PATH,
    load_cdnow_sample,
    read_transactions,
    split_transactions,
)
from sim.exceptions import DataError

GOOD = "customer_id,date,amount\nA,2024-01-01,10\nA,2024-01-05,5.5\nB,2024-01-02,3\n"


def write(tmp_path, text: str | bytes, name: str = "log.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_cdnow_sample_merges_same_day_rows_and_records_how_many():
    raw = load_cdnow_sample()
    assert len(raw) == 6919 and raw["customer_id"].nunique() == 2357
    log = read_transactions(CDNOW_SAMPLE_PATH)
    # 6,919 rows, 6,696 distinct (customer, day) pairs: 223 rows merged
    assert log.attrs["rows_read"] == 6919
    assert log.attrs["transactions"] == len(log) == 6696
    assert log.attrs["rows_merged"] == 223
    assert log.attrs["customers"] == 2357
    assert int(log["rows"].sum()) == 6919
    assert log.attrs["first_date"] == "1997-01-01" and log.attrs["last_date"] == "1998-06-30"
    # amounts are summed: total spend unchanged
    assert log["amount"].sum() == pytest.approx(raw["amount"].sum(), rel=1e-12)
    # the raw table gives the same log as the file
    from_frame = read_transactions(raw)
    assert from_frame["amount"].to_numpy() == pytest.approx(log["amount"].to_numpy())
    assert (from_frame["date"].to_numpy() == log["date"].to_numpy()).all()


def test_merging_by_hand(tmp_path):
    text = (
        "customer_id,date,amount,note\n"
        "B,2024-01-02,3,x\n"
        "A,2024-01-05 13:45:00,5.5,y\n"
        "A,2024-01-01,10,z\n"
        "A,2024-01-05,4.5,w\n"
    )
    log = read_transactions(write(tmp_path, text))
    assert log.columns.tolist() == ["customer_id", "date", "amount", "rows"]
    # customers in order of first appearance, dates sorted, the two rows of A on 5 January merged
    assert log["customer_id"].tolist() == ["B", "A", "A"]
    assert log["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-02", "2024-01-01", "2024-01-05"]
    assert log["amount"].tolist() == [3.0, 10.0, 10.0]
    assert log["rows"].tolist() == [1, 1, 2]
    assert log.attrs["rows_merged"] == 1


def test_no_amount_column_other_names_and_date_format(tmp_path):
    path = write(tmp_path, "client,day\nx1,19970101\nx2,19970102\nx1,19970102\n")
    log = read_transactions(
        path, customer_column="client", date_column="day", amount_column=None, date_format="%Y%m%d"
    )
    assert "amount" not in log.columns and log.attrs["has_amount"] is False
    assert len(log) == 3


def test_parquet_and_dataframe_sources(tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "date": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-02"]),
            "amount": [1.0, 2.0, 3.0],
        }
    )
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    from_parquet = read_transactions(path)
    from_frame = read_transactions(frame)
    assert from_parquet["customer_id"].tolist() == from_frame["customer_id"].tolist() == [1, 1, 2]
    bad = frame.assign(amount=[1.0, -2.0, 3.0])
    bad.to_parquet(path)
    with pytest.raises(DataError, match=r"log\.parquet, row 2: amount = -2\.0 is negative"):
        read_transactions(path)
    with pytest.raises(DataError, match=r"the table, row 2 \(index 1\): amount = -2\.0 is negative"):
        read_transactions(bad)


def test_line_numbers_count_the_header_and_blank_lines(tmp_path):
    text = "customer_id,date,amount\nA,2024-01-01,1\n\nB,2024-01-02,2\nB,2024-01-03,-4\n"
    with pytest.raises(DataError, match=r"log\.csv, line 5: amount = '-4' is negative"):
        read_transactions(write(tmp_path, text))


# --------------------------------------------------------------------------- the bad-input table
# One row per bad input of the brief (A.2): the file's text, read options, and the pieces the
# single message must contain (file, column, line or value, and what is allowed).
BIG = "customer_id,date,amount\n" + "".join(f"C{i:03d},2024-01-01,1\n" for i in range(100))
BAD_INPUTS = {
    "missing column": (
        "cust,date,amount\nA,2024-01-01,1\nB,2024-01-02,2\n",
        {},
        ["log.csv", "no column 'customer_id'", "columns found: 'cust', 'date', 'amount'", "customer_column="],
    ),
    "missing amount column": (
        "customer_id,date\nA,2024-01-01\nB,2024-01-02\n",
        {},
        ["no column 'amount'", "amount_column=None"],
    ),
    "unparsable date": (
        "customer_id,date,amount\nA,2024-01-01,1\nB,01/02/2024x,2\n",
        {},
        ["log.csv, line 3", "date = '01/02/2024x' cannot be read as a date", "YYYY-MM-DD"],
    ),
    "impossible date": (
        "customer_id,date,amount\nA,2024-01-01,1\nB,1997-02-30,2\n",
        {},
        ["log.csv, line 3", "date = '1997-02-30' is not a calendar date", "day is out of range"],
    ),
    "impossible date with a format": (
        "customer_id,date,amount\nA,19970101,1\nB,19970230,2\n",
        {"date_format": "%Y%m%d"},
        ["line 3", "'19970230' is not a calendar date"],
    ),
    "date beyond nanosecond timestamps": (
        "customer_id,date,amount\nA,2024-01-01,1\nB,9999-12-01,2\n",
        {},
        ["log.csv, line 3", "date = 9999-12-01 is outside the supported range 1677-09-22 to 2262-04-11"],
    ),
    "empty date": ("customer_id,date,amount\nA,2024-01-01,1\nB,,2\n", {}, ["line 3", "date is empty"]),
    "negative amount": (
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02,-3.5\n",
        {},
        ["log.csv, line 3", "amount = '-3.5' is negative", ">= 0"],
    ),
    "non-numeric amount": (
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02,12.5 EUR\n",
        {},
        ["line 3", "amount = '12.5 EUR' is not a number", "numbers >= 0"],
    ),
    "infinite amount": (
        "customer_id,date,amount\nA,2024-01-01,inf\nB,2024-01-02,1\n",
        {},
        ["line 2", "not finite"],
    ),
    "empty customer id": (
        "customer_id,date,amount\nA,2024-01-01,1\n,2024-01-02,2\nB,2024-01-03,2\n",
        {},
        ["log.csv, line 3", "customer_id is missing"],
    ),
    "NaN customer id": (
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02,2\nNaN,2024-01-03,2\n",
        {},
        ["line 4", "customer_id is missing ('NaN')"],
    ),
    "empty file": (b"", {}, ["log.csv is empty (0 bytes)"]),
    "header only": ("customer_id,date,amount\n", {}, ["log.csv has a header but no rows"]),
    "single customer": (
        "customer_id,date,amount\nA,2024-01-01,1\nA,2024-01-09,2\n",
        {},
        ["a single customer ('A'", "cohort of many customers"],
    ),
    "non-UTF-8 bytes": (
        b"customer_id,date,amount\nA,2024-01-01,1\n" + b"Ren\xe9,2024-01-02,2\n",
        {},
        ["not UTF-8", "the byte at offset 42 (counting from 0; line 3) is 0xe9", "UTF-8"],
    ),
    "file too large": (
        BIG,
        {"max_bytes": 1000},
        [
            "log.csv is 1.78 KiB (1,824 bytes)",
            "above the limit of 1,000 bytes",
            "max_bytes=1000",
            "pass a larger max_bytes",
        ],
    ),
    "ragged row": (
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02,2,7\n",
        {},
        ["not valid CSV", "line 3"],
    ),
    "extra fields on every row": (
        "customer_id,date,amount\nA,2024-01-01,1,\nB,2024-01-02,2,\n",
        {},
        ["line 2: more fields than the header's 3"],
    ),
    "short row": (
        "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02\n",
        {},
        ["line 3", "amount is empty"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_raises_one_data_error_naming_it(tmp_path, case):
    text, options, pieces = BAD_INPUTS[case]
    path = write(tmp_path, text)
    with pytest.raises(DataError) as error:
        read_transactions(path, **options)
    message = str(error.value)
    assert "\n" not in message, "one message, one line"
    for piece in pieces:
        assert piece in message, f"{piece!r} not in {message!r}"


def test_non_utf8_offset_is_the_offset_of_the_bad_byte(tmp_path):
    head = b"customer_id,date,amount\nA,2024-01-01,1\n"
    data = head + b"Ren\xe9,2024-01-02,2\n"
    assert data[len(head) + 3] == 0xE9 and len(head) + 3 == 42  # the offset the table above expects
    with pytest.raises(DataError, match="offset 42 "):
        read_transactions(write(tmp_path, data))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_transactions(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_transactions(tmp_path)
    with pytest.raises(DataError, match="file path or a pandas DataFrame"):
        read_transactions(42)


def test_dataframe_with_nan_ids_and_missing_dates():
    frame = pd.DataFrame(
        {
            "customer_id": [1.0, np.nan, 2.0],
            "date": pd.to_datetime(["2024-01-01", "2024-01-02", None]),
            "amount": [1.0, 2.0, 3.0],
        }
    )
    with pytest.raises(DataError, match=r"row 2 \(index 1\): customer_id is missing"):
        read_transactions(frame)
    with pytest.raises(DataError, match=r"row 3 \(index 2\): date is missing"):
        read_transactions(frame.assign(customer_id=[1, 2, 3]))


# --------------------------------------------------------------------------- split errors
SPLIT_ERRORS = {
    "calibration end before the first purchase": (
        ("1996-12-31", None),
        ["calibration_end = 1996-12-31 is before the first purchase", "1997-01-01"],
    ),
    "calibration end after the last purchase": (
        ("1998-07-01", None),
        ["calibration_end = 1998-07-01 is after the last purchase", "1998-06-30"],
    ),
    "holdout end before calibration end": (
        ("1997-09-30", "1997-09-01"),
        ["holdout_end = 1997-09-01 is not after calibration_end = 1997-09-30"],
    ),
    "not a date": (("sometime", None), ["calibration_end = 'sometime' is not a date"]),
}


@pytest.fixture(scope="module")
def cdnow_log():
    return read_transactions(CDNOW_SAMPLE_PATH)


@pytest.mark.parametrize("case", list(SPLIT_ERRORS), ids=list(SPLIT_ERRORS))
def test_bad_split_raises_naming_the_dates(cdnow_log, case):
    (calibration_end, holdout_end), pieces = SPLIT_ERRORS[case]
    with pytest.raises(DataError) as error:
        split_transactions(cdnow_log, calibration_end, holdout_end)
    for piece in pieces:
        assert piece in str(error.value)


def test_a_cohort_where_nobody_repeats_is_refused(tmp_path):
    text = "customer_id,date,amount\nA,2024-01-01,1\nB,2024-01-02,2\nA,2024-03-01,3\n"
    with pytest.raises(
        DataError,
        match="nobody of the 2 customers acquired by calibration_end = 2024-01-31 makes a repeat purchase",
    ):
        split_transactions(write(tmp_path, text), "2024-01-31")


def test_bad_unit():
    with pytest.raises(
        DataError, match="unit = 'year' is not a time unit; choose one of 'day', 'week', 'month'"
    ):
        split_transactions(load_cdnow_sample(), "1997-09-30", unit="year")
