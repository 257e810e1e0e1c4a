"""Reading and validating transaction logs.

A transaction log has one row per purchase: who bought (``customer_id``), when (``date``)
and, optionally, for how much (``amount``). :func:`read_transactions` reads one from a CSV
or parquet file or takes a :class:`pandas.DataFrame`, checks every value, and merges the
rows of one customer on one day into ONE transaction (amounts summed), as the literature
does for the CDNOW data (Fader, Hardie & Lee 2005, "Counting your customers the easy way",
Marketing Science 24(2): "several purchases on one day are treated as one transaction").

Every problem raises :class:`sim.exceptions.DataError` with one message that names the file,
the line (1-based, the header is line 1), the column and the value, and says what is allowed.

Size limit
----------
A file larger than ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 2 GiB) is refused from
its size, before anything is read; pass a larger ``max_bytes`` to read it anyway (reading
needs roughly two to three times the file's size in memory).
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.exceptions import DataError

__all__ = ["DEFAULT_MAX_BYTES", "is_transaction_log", "read_transactions"]

#: Files larger than this many bytes are refused before reading (2 GiB).
DEFAULT_MAX_BYTES = 2 * 1024**3

_VALIDATED = "sim.data.read_transactions"
_MISSING_ID_TEXT = {"", "nan", "na", "n/a", "null", "none", "<na>"}
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?\s*$")
_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
_CHUNK = 16 * 1024 * 1024


def is_transaction_log(table: Any) -> bool:
    """Whether ``table`` is a log returned by :func:`read_transactions` (validated, merged).

    Parameters
    ----------
    table : object
        Anything.

    Returns
    -------
    bool
        True for a DataFrame whose ``attrs`` carry the mark :func:`read_transactions` sets.
    """
    return isinstance(table, pd.DataFrame) and table.attrs.get("validated_by") == _VALIDATED


# --------------------------------------------------------------------------- locations


class _Where:
    """How to name a row of the input in a message (file line, parquet row, table row)."""

    def __init__(self, name: str, kind: str, path: Path | None = None, index: pd.Index | None = None):
        self.name = name
        self.kind = kind  # "csv", "parquet" or "frame"
        self.path = path
        self.index = index

    def row(self, position: int) -> str:
        if self.kind == "csv":
            return f"{self.name}, line {_csv_line_of_row(self.path, position)}"
        if self.kind == "parquet":
            return f"{self.name}, row {position + 1}"
        label = self.index[position] if self.index is not None else position
        return f"{self.name}, row {position + 1} (index {label!r})"


def _csv_line_of_row(path: Path, position: int) -> int:
    """The 1-based physical line of data row ``position`` (0-based, after the header).

    Blank lines (which the reader skips) are counted, and a quoted field that spans lines
    counts its lines, so the number is the line an editor shows.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header_seen = False
        seen = -1
        for record in reader:
            if not record or all(not cell.strip() for cell in record):
                continue
            if not header_seen:
                header_seen = True
                continue
            seen += 1
            if seen == position:
                return reader.line_num
    return position + 2  # pragma: no cover - the row exists, it was just read


def _more(count: int) -> str:
    return f" ({count - 1} more row{'s' if count - 1 != 1 else ''} like it)" if count > 1 else ""


# --------------------------------------------------------------------------- file checks


def _size_text(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.2f} {unit} ({size:,} bytes)"
    return f"{size:,} bytes"


def _check_file(path: Path, max_bytes: int) -> int:
    if not path.exists():
        raise DataError(
            f"{path}: no such file (a transaction log: CSV or parquet with columns customer_id, date[, "
            "amount])"
        )
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a transaction log file (CSV or parquet)")
    size = path.stat().st_size
    if size == 0:
        raise DataError(
            f"{path} is empty (0 bytes): a transaction log needs a header line and one row per purchase"
        )
    if size > max_bytes:
        raise DataError(
            f"{path} is {_size_text(size)}, above the limit of {_size_text(max_bytes)} "
            f"(max_bytes={max_bytes}); reading needs two to three times the file's size in memory. "
            "Split the log by customer, or pass a larger max_bytes to read it anyway"
        )
    return size


def _check_utf8(path: Path) -> None:
    """Raise naming the byte offset of the first byte that is not UTF-8 (read in chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            final = not chunk
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=final)
            except UnicodeDecodeError as error:
                position = offset - pending + error.start
                with open(path, "rb") as again:
                    again.seek(max(position, 0))
                    bad = again.read(1)
                line = 1
                with open(path, "rb") as again:
                    remaining = position
                    while remaining > 0:
                        block = again.read(min(_CHUNK, remaining))
                        if not block:
                            break
                        line += block.count(b"\n")
                        remaining -= len(block)
                raise DataError(
                    f"{path} is not UTF-8 text: the byte at offset {position} (counting from 0; line "
                    f"{line}) is 0x{bad.hex()}; "
                    "save the file as UTF-8 CSV (e.g. re-export it, or convert with iconv -f latin1 -t utf-8)"
                ) from None
            if final:
                return
            offset += len(chunk)


# --------------------------------------------------------------------------- reading


def _find_columns(found: list[str], wanted: dict[str, str | None], name: str) -> dict[str, str]:
    """Map each role to the column name found (header names compared after stripping)."""
    options = {"customer": "customer_column", "date": "date_column", "amount": "amount_column"}
    stripped = {str(column).strip(): column for column in found}
    mapping: dict[str, str] = {}
    for role, column in wanted.items():
        if column is None:
            continue
        if column in stripped:
            mapping[role] = stripped[column]
            continue
        listed = ", ".join(repr(str(c).strip()) for c in found) or "none"
        extra = " (or amount_column=None if the log has no amounts)" if role == "amount" else ""
        raise DataError(
            f"{name}: no column {column!r} for the {role} (columns found: {listed}); rename the column "
            f"or pass {options[role]}='<the column's name>'{extra}"
        )
    return mapping


def _read_csv(path: Path, wanted: dict[str, str | None]) -> tuple[pd.DataFrame, dict[str, str]]:
    name = str(path)
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns.tolist()
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{name} is empty: a transaction log needs a header line and one row per purchase"
        ) from None
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(
            f"{name}, line 1: the header is not valid CSV ({' '.join(str(error).split())})"
        ) from None
    mapping = _find_columns(header, wanted, name)
    try:
        # all columns, so that a row with more fields than the header is an error (pandas
        # silently drops extra fields when reading selected columns only)
        table = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8-sig")
    except pd.errors.ParserError as error:
        detail = " ".join(str(error).split())
        raise DataError(
            f"{name}: not valid CSV ({detail}); every line needs as many fields as the header"
        ) from None
    if not isinstance(table.index, pd.RangeIndex):
        raise DataError(
            f"{name}, line 2: more fields than the header's {len(header)}; every line needs as many fields "
            "as the header (a trailing comma adds an empty field)"
        )
    return table[list(mapping.values())], mapping


def _read_parquet(path: Path, wanted: dict[str, str | None]) -> tuple[pd.DataFrame, dict[str, str]]:
    name = str(path)
    try:
        import pyarrow.parquet as pq

        schema_names = pq.read_schema(path).names
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad file
        raise DataError(f"{name} is not a readable parquet file ({type(error).__name__}: {error})") from None
    mapping = _find_columns(schema_names, wanted, name)
    table = pd.read_parquet(path, columns=list(mapping.values()))
    return table, mapping


def _parse_ids(values: pd.Series, where: _Where, column: str) -> np.ndarray:
    if values.dtype.kind in "iu":
        return values.to_numpy()
    if values.dtype.kind == "f":
        missing = np.isnan(values.to_numpy(dtype=float))
        integral = not missing.any() and np.all(np.mod(values.to_numpy(), 1) == 0)
    else:
        text = values.astype(str).str.strip()
        missing = values.isna().to_numpy() | text.str.lower().isin(_MISSING_ID_TEXT).to_numpy()
        integral = False
    if missing.any():
        bad = np.flatnonzero(missing)
        shown = values.iloc[bad[0]]
        raise DataError(
            f"{where.row(int(bad[0]))}: {column} is missing "
            f"({'empty' if shown is None or str(shown).strip() == '' else repr(str(shown))})"
            f"{_more(len(bad))}; every purchase needs the customer who made it"
        )
    if values.dtype.kind == "f":
        return values.to_numpy().astype(np.int64) if integral else values.to_numpy()
    return values.astype(str).str.strip().to_numpy(dtype=object)


def _impossible_date_reason(text: str, date_format: str | None) -> str | None:
    """Why a date-looking text is not a calendar date (e.g. day 30 of February), else None."""
    if date_format is None:
        match = _ISO_DATE.match(text)
        if not match:
            return None
        year, month, day = (int(g) for g in match.groups())
        try:
            _dt.date(year, month, day)
        except ValueError as error:
            return str(error)
        return None
    try:
        _dt.datetime.strptime(text.strip(), date_format)
    except ValueError as error:
        message = str(error)
        if "does not match format" in message or "unconverted data" in message:
            return None
        return message
    return None


#: The days a log may hold, as days since 1970-01-01: the range of pandas' nanosecond
#: timestamps (1677-09-22 to 2262-04-11), which every table of the package uses.
_FIRST_DAY = int(np.datetime64(pd.Timestamp.min.ceil("D").date(), "D").astype(np.int64))
_LAST_DAY = int(np.datetime64(pd.Timestamp.max.floor("D").date(), "D").astype(np.int64))


def _parse_dates(values: pd.Series, where: _Where, column: str, date_format: str | None) -> np.ndarray:
    """Calendar days (int64, days since 1970-01-01), checking every value."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = values
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        missing = parsed.isna().to_numpy()
        if missing.any():
            bad = np.flatnonzero(missing)
            raise DataError(
                f"{where.row(int(bad[0]))}: {column} is missing{_more(len(bad))}; every purchase needs its "
                "date"
            )
    else:
        text = values.astype(str).str.strip()
        text = text.where(~values.isna(), "")
        if date_format is None:
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        else:
            parsed = pd.to_datetime(text, format=date_format, errors="coerce")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        bad_mask = parsed.isna().to_numpy()
        if bad_mask.any():
            bad = np.flatnonzero(bad_mask)
            raw = str(text.iloc[bad[0]])
            expected = f"format {date_format!r}" if date_format else "an ISO date YYYY-MM-DD"
            if raw == "":
                raise DataError(
                    f"{where.row(int(bad[0]))}: {column} is empty{_more(len(bad))}; every purchase needs "
                    f"its date ({expected})"
                )
            reason = _impossible_date_reason(raw, date_format)
            if reason:
                raise DataError(
                    f"{where.row(int(bad[0]))}: {column} = {raw!r} is not a calendar date "
                    f"({reason}){_more(len(bad))}; "
                    f"dates must exist ({expected})"
                )
            hint = "" if date_format else " (pass date_format='%Y%m%d' or similar for another layout)"
            raise DataError(
                f"{where.row(int(bad[0]))}: {column} = {raw!r} cannot be read as a date{_more(len(bad))}; "
                f"expected {expected}{hint}"
            )
    days = parsed.to_numpy().astype("datetime64[D]").astype(np.int64)
    outside = (days < _FIRST_DAY) | (days > _LAST_DAY)
    if outside.any():
        bad = np.flatnonzero(outside)
        shown = str(np.datetime64(int(days[bad[0]]), "D"))
        raise DataError(
            f"{where.row(int(bad[0]))}: {column} = {shown} is outside the supported range "
            f"{np.datetime64(_FIRST_DAY, 'D')} to {np.datetime64(_LAST_DAY, 'D')}{_more(len(bad))} "
            "(nanosecond timestamps); a mistyped year? Correct or remove that purchase"
        )
    return days


def _parse_amounts(values: pd.Series, where: _Where, column: str) -> np.ndarray:
    if values.dtype.kind in "iuf":
        numbers = values.to_numpy(dtype=float)
        text = None
    else:
        text = values.astype(str).str.strip().where(~values.isna(), "")
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    not_number = np.isnan(numbers)
    if not_number.any():
        bad = np.flatnonzero(not_number)
        raw = "" if text is None else str(text.iloc[bad[0]])
        what = "is empty" if raw == "" else f"= {raw!r} is not a number"
        raise DataError(
            f"{where.row(int(bad[0]))}: {column} {what}{_more(len(bad))}; amounts must be numbers >= 0 "
            "(or pass amount_column=None to read the log without amounts)"
        )
    infinite = ~np.isfinite(numbers)
    if infinite.any():
        bad = np.flatnonzero(infinite)
        raw = str(numbers[bad[0]]) if text is None else str(text.iloc[bad[0]])
        raise DataError(
            f"{where.row(int(bad[0]))}: {column} = {raw!r} is not finite{_more(len(bad))}; amounts must be "
            "finite numbers >= 0"
        )
    negative = numbers < 0
    if negative.any():
        bad = np.flatnonzero(negative)
        raw = repr(float(numbers[bad[0]])) if text is None else repr(str(text.iloc[bad[0]]))
        raise DataError(
            f"{where.row(int(bad[0]))}: {column} = {raw} is negative{_more(len(bad))}; amounts must be >= 0 "
            "(net refunds out of the purchases they refund before reading)"
        )
    return numbers


def _merge_same_day(codes: np.ndarray, days: np.ndarray, amounts: np.ndarray | None):
    """Sort by (customer, day) and merge the rows of one customer on one day."""
    order = np.lexsort((days, codes))
    codes_sorted = codes[order]
    days_sorted = days[order]
    n = len(order)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(codes_sorted[1:], codes_sorted[:-1], out=new[1:])
    new[1:] |= days_sorted[1:] != days_sorted[:-1]
    starts = np.flatnonzero(new)
    rows = np.diff(np.append(starts, n))
    merged_amounts = None if amounts is None else np.add.reduceat(amounts[order], starts)
    return codes_sorted[starts], days_sorted[starts], merged_amounts, rows


def read_transactions(
    source: str | Path | pd.DataFrame,
    *,
    customer_column: str = "customer_id",
    date_column: str = "date",
    amount_column: str | None = "amount",
    date_format: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> pd.DataFrame:
    """Read, check and merge a transaction log (one row per purchase).

    Parameters
    ----------
    source : str, Path or DataFrame
        A CSV file (UTF-8, header line required, other columns ignored), a parquet file
        (suffix ``.parquet``, ``.pq`` or ``.parq``), or a table.
    customer_column : str, default "customer_id"
        Column naming the customer; any text or integer, never empty.
    date_column : str, default "date"
        Column holding the purchase date: ISO ``YYYY-MM-DD`` (a time part is allowed and
        ignored) unless ``date_format`` is given, or a datetime column of a table.
    amount_column : str or None, default "amount"
        Column holding the purchase's value (a finite number ``>= 0``); ``None`` for a log
        without amounts (the spend model then cannot be fitted).
    date_format : str, optional
        A :func:`datetime.datetime.strptime` format for the dates, e.g. ``"%Y%m%d"`` for the
        BTYD/``lifetimes`` layout of CDNOW.
    max_bytes : int, default :data:`DEFAULT_MAX_BYTES` (2 GiB)
        Files larger than this are refused before reading.

    Returns
    -------
    DataFrame
        One row per transaction: ``customer_id``, ``date`` (datetime64, midnight),
        ``amount`` (float; only when ``amount_column`` is given) and ``rows`` (how many rows
        of the input were merged into this transaction). Rows are ordered by customer (in
        order of first appearance in the input) and date. ``attrs`` records ``source``,
        ``rows_read``, ``transactions``, ``rows_merged`` (rows_read - transactions),
        ``customers``, ``first_date``, ``last_date`` and ``has_amount``.

    Raises
    ------
    DataError
        For a missing, empty, non-UTF-8 or too large file, a missing column, an empty or
        missing customer id, an unparsable or impossible date (e.g. 1997-02-30), a
        non-numeric, non-finite or negative amount, or a log of fewer than two customers; the
        message names the file, line (1-based, the header is line 1) or row, column and value.

    Notes
    -----
    Same-day rows of one customer become ONE transaction with the amounts summed — the
    convention of Fader, Hardie & Lee (2005) for CDNOW, where several orders on one day are
    one purchase occasion. Dates with a time of day are truncated to the day; time zones are
    dropped (local wall-clock dates are kept).
    """
    wanted = {"customer": customer_column, "date": date_column, "amount": amount_column}
    for role, column in wanted.items():
        if column is not None and not isinstance(column, str):
            raise DataError(f"{role}_column must be a column name (text), not {column!r}")
    if isinstance(source, pd.DataFrame):
        name = "the table"
        mapping = _find_columns(list(source.columns), wanted, name)
        table = source.reset_index(drop=True)
        where = _Where(name, "frame", index=source.index)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        name = str(path)
        _check_file(path, max_bytes)
        if path.suffix.lower() in _PARQUET_SUFFIXES:
            table, mapping = _read_parquet(path, wanted)
            where = _Where(name, "parquet", path=path)
        else:
            _check_utf8(path)
            table, mapping = _read_csv(path, wanted)
            where = _Where(name, "csv", path=path)
    else:
        raise DataError(
            f"a transaction log must be a file path or a pandas DataFrame, not {type(source).__name__}"
        )
    if len(table) == 0:
        raise DataError(f"{name} has a header but no rows: a transaction log needs one row per purchase")

    ids = _parse_ids(table[mapping["customer"]], where, customer_column)
    days = _parse_dates(table[mapping["date"]], where, date_column, date_format)
    amounts = (
        _parse_amounts(table[mapping["amount"]], where, amount_column) if amount_column is not None else None
    )

    codes, uniques = pd.factorize(pd.Series(ids, copy=False), sort=False)
    if len(uniques) < 2:
        raise DataError(
            f"{name} holds purchases of a single customer ({uniques[0]!r}, {len(table)} rows in "
            f"column {customer_column!r}); the customer-base models need a cohort of many customers"
        )
    codes = codes.astype(np.int64)
    merged_codes, merged_days, merged_amounts, rows = _merge_same_day(codes, days, amounts)
    out = {
        "customer_id": np.asarray(uniques)[merged_codes],
        "date": merged_days.astype("datetime64[D]").astype("datetime64[ns]"),
    }
    if merged_amounts is not None:
        out["amount"] = merged_amounts
    out["rows"] = rows.astype(np.int64)
    log = pd.DataFrame(out)
    log.attrs.update(
        {
            "validated_by": _VALIDATED,
            "source": name,
            "rows_read": len(table),
            "transactions": len(log),
            "rows_merged": int(len(table) - len(log)),
            "customers": len(uniques),
            "first_date": str(np.datetime64(int(days.min()), "D")),
            "last_date": str(np.datetime64(int(days.max()), "D")),
            "has_amount": amounts is not None,
            "customer_column": customer_column,
            "date_column": date_column,
            "amount_column": amount_column,
        }
    )
    return log
