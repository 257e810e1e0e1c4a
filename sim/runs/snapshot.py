"""What is today's customer base worth? Project a snapshot of live customers with the core.

A snapshot is a table with one row per live customer (e.g. ``MarketResult.snapshot(t)``
from the agent engine, or a firm's own CRM extract) holding the state the lifecycle model
needs. :func:`project_from` continues every customer from that state under each policy of
a config, with the numba core, and returns a :class:`sim.ProjectionResult` whose values
are *residual* CLVs: discounted from the snapshot on, without acquisition cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.engines.core import run_customers
from sim.model.arrays import model_arrays
from sim.model.config import ExperimentConfig
from sim.model.policies import policy_tables

__all__ = ["SNAPSHOT_COLUMNS", "project_from", "read_snapshot", "check_snapshot"]

#: Columns a snapshot must have, with their meaning and allowed values.
SNAPSHOT_COLUMNS = {
    "customer": "customer id (integer >= 0); selects the customer's random streams",
    "segment": "0 relationship, 1 transactional",
    "wallet": "wallet per period (> 0)",
    "fit": "persistent fit with the offer (any real)",
    "tier": "ABC tier 0 (A), 1 (B), 2 (C)",
    "stage": "0 exploration, 1 formation, 2 stability, 3 decline",
    "satisfaction": "current satisfaction in [0, 1]",
    "previous_satisfaction": "last period's satisfaction in [0, 1]",
    "expectation": "expectation Q0 (any real)",
    "tenure": "periods since acquisition (integer >= 0)",
}
_OPTIONAL = {
    "highest_stage": "highest of exploration/formation/stability reached (0-2, at least the current "
    "stage; at least 1 in decline, which is entered from formation or stability); "
    "default max(stage, 1 in decline) capped at 2",
    "propensity": "Beta churn propensity in [0, 1]; required when the config sets "
    "population.churn_propensity, ignored (default 0) otherwise",
}
#: Columns that must hold whole numbers.
_INTEGER_COLUMNS = ("customer", "segment", "tier", "stage", "tenure", "highest_stage")


def _numeric_column(snapshot: pd.DataFrame, column: str) -> np.ndarray:
    """The column as float64, or ValueError naming the column and its first non-number."""
    series = snapshot[column]
    if not (pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)):
        for row, value in enumerate(series.to_numpy(dtype=object)):
            if not isinstance(value, (int, float, np.integer, np.floating, bool, np.bool_)):
                raise ValueError(
                    f"snapshot.{column} = {value!r} (row {row}): must be a number "  # noqa: TRY004
                    f"(column of dtype {series.dtype})"
                )
    try:
        return series.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError(f"snapshot.{column} (dtype {series.dtype}): must hold numbers ({error})") from None


def read_snapshot(path) -> pd.DataFrame:
    """A snapshot CSV (columns :data:`SNAPSHOT_COLUMNS`, optionally ``highest_stage`` and
    ``propensity``), e.g. the ``snapshot.csv`` that ``sim fit`` writes beside a fitted config.

    Raises
    ------
    DataError
        For a missing or unreadable file, naming it; the values are checked by
        :func:`check_snapshot`.
    """
    from pathlib import Path

    from sim.exceptions import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such snapshot file (a CSV with columns {', '.join(SNAPSHOT_COLUMNS)})")
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the snapshot as CSV ({error})") from None


def check_snapshot(snapshot: pd.DataFrame, config: ExperimentConfig) -> pd.DataFrame:
    """``snapshot`` checked for projecting with ``config`` (:func:`project_from` runs the same
    checks): the columns, every value in its range, one row per customer.

    Raises
    ------
    ValueError
        Naming the column, the first bad value and its row, and what is allowed.
    """
    return _checked_snapshot(snapshot, beta_churn=config.population.churn_propensity is not None)


def _checked_snapshot(snapshot: pd.DataFrame, *, beta_churn: bool = False) -> pd.DataFrame:
    if not isinstance(snapshot, pd.DataFrame):
        raise TypeError(f"snapshot must be a pandas DataFrame, got {type(snapshot).__name__}")
    missing = [column for column in SNAPSHOT_COLUMNS if column not in snapshot.columns]
    if missing:
        raise ValueError(f"snapshot is missing columns {missing}; needed: {', '.join(SNAPSHOT_COLUMNS)}")
    if beta_churn and "propensity" not in snapshot.columns:
        raise ValueError(
            "snapshot has no 'propensity' column, but the config sets population.churn_propensity "
            "(Beta churn): give each customer's propensity in [0, 1] (e.g. from "
            "MarketResult.snapshot), or remove population.churn_propensity to project without it"
        )
    if len(snapshot) == 0:
        raise ValueError("snapshot has no customers")
    columns = list(SNAPSHOT_COLUMNS) + [column for column in _OPTIONAL if column in snapshot.columns]
    values = {column: _numeric_column(snapshot, column) for column in columns}

    def fail(column, bad, allowed):
        row = int(np.flatnonzero(bad)[0])
        value = values[column][row]
        shown = (
            int(value) if np.isfinite(value) and value == int(value) and column in _INTEGER_COLUMNS else value
        )
        raise ValueError(f"snapshot.{column} = {shown} (row {row}): must be {allowed}")

    for column in columns:
        bad = ~np.isfinite(values[column])
        if bad.any():
            fail(column, bad, "a finite number (no NaN or infinity)")
    for column in _INTEGER_COLUMNS:
        if column in values:
            bad = values[column] != np.floor(values[column])
            if bad.any():
                fail(column, bad, "a whole number")
    stage = values["stage"]
    # the lowest highest stage the model allows in each stage: decline is entered from formation or stability
    lowest_highest = np.minimum(np.where(stage == 3, 1, stage), 2)
    checks = [
        ("customer", (values["customer"] >= 0) & (values["customer"] < 2**32), "an integer in [0, 2**32)"),
        ("segment", np.isin(values["segment"], [0, 1]), "0 or 1"),
        ("wallet", values["wallet"] > 0, "> 0"),
        ("tier", np.isin(values["tier"], [0, 1, 2]), "0, 1 or 2"),
        ("stage", np.isin(stage, [0, 1, 2, 3]), "0-3 (live stages only)"),
        ("satisfaction", (values["satisfaction"] >= 0) & (values["satisfaction"] <= 1), "in [0, 1]"),
        (
            "previous_satisfaction",
            (values["previous_satisfaction"] >= 0) & (values["previous_satisfaction"] <= 1),
            "in [0, 1]",
        ),
        ("tenure", values["tenure"] >= 0, ">= 0"),
    ]
    if "highest_stage" in values:
        highest = values["highest_stage"]
        checks.append(
            ("highest_stage", np.isin(highest, [0, 1, 2]), "0, 1 or 2 (exploration, formation, stability)")
        )
        checks.append(
            (
                "highest_stage",
                highest >= lowest_highest,
                ">= the row's stage (>= 1 in decline, entered from formation or stability)",
            )
        )
    if "propensity" in values:
        checks.append(("propensity", (values["propensity"] >= 0) & (values["propensity"] <= 1), "in [0, 1]"))
    for column, ok, allowed in checks:
        bad = ~np.asarray(ok, dtype=bool)
        if bad.any():
            fail(column, bad, allowed)
    if snapshot["customer"].duplicated().any():
        raise ValueError("snapshot.customer has duplicates: each customer must appear once")
    return snapshot


def project_from(
    snapshot: pd.DataFrame,
    config: ExperimentConfig,
    *,
    horizon: int | None = None,
    replications: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
):
    """Project the residual value of a snapshot of live customers under every policy.

    Parameters
    ----------
    snapshot
        One row per live customer with the columns of :data:`~sim.runs.snapshot.SNAPSHOT_COLUMNS` (optionally
        ``highest_stage`` and ``propensity``; ``propensity`` is required when the config
        sets ``population.churn_propensity``, and ignored when it does not).
    config
        The model and policies; ``population`` is ignored (the snapshot is the population),
        except ``population.churn_propensity``, which switches Beta churn on.

    Raises
    ------
    ValueError
        For a bad snapshot, naming the column, the first bad value and its row, and what
        is allowed (non-numbers, NaN/infinity, fractional integers, out-of-range values,
        a ``highest_stage`` below the stage, a missing ``propensity`` under Beta churn).
    horizon, replications, seed, threads
        Override the config's run settings.

    Returns
    -------
    ProjectionResult
        Its ``summary`` gives per policy the mean residual CLV per customer (``clv_mean``,
        ``clv_se``), with ``acquisition_cost = 0``; ``clv_mean * customers`` is the value
        of the customer base. ``stages`` starts at the snapshot's stage mix.

    Notes
    -----
    The customers continue with the same equations as :func:`sim.project` (one kernel);
    tenure continues from the snapshot (tenure effects and the long-term pattern use it),
    and cash is discounted from the snapshot on (end-of-period convention).
    """
    from sim.runs.projection import set_threads
    from sim.tables.result import ProjectionResult

    snapshot = _checked_snapshot(snapshot, beta_churn=config.population.churn_propensity is not None)
    snapshot = snapshot.reset_index(drop=True)
    run = {
        key: value
        for key, value in (
            ("horizon", horizon),
            ("replications", replications),
            ("seed", seed),
            ("threads", threads),
        )
        if value is not None
    }
    config = config.with_overrides(population={"customers": len(snapshot)}, **({"run": run} if run else {}))
    arrays = model_arrays(config)
    tables = policy_tables(config)
    used = set_threads(config.run.threads)
    stage = snapshot["stage"].to_numpy(np.int64)
    highest = (
        snapshot["highest_stage"].to_numpy(np.int64)
        if "highest_stage" in snapshot
        else np.minimum(np.where(stage == 3, 1, stage), 2)
    )
    propensity = (
        snapshot["propensity"].to_numpy(float) if "propensity" in snapshot else np.zeros(len(snapshot))
    )
    columns = dict(
        customer_ids=snapshot["customer"].to_numpy(np.int64),
        segment=snapshot["segment"].to_numpy(np.int64),
        wallet=snapshot["wallet"].to_numpy(float),
        fit=snapshot["fit"].to_numpy(float),
        tier=snapshot["tier"].to_numpy(np.int64),
        propensity=np.ascontiguousarray(propensity),
        start_stage=stage,
        start_satisfaction=snapshot["satisfaction"].to_numpy(float),
        start_previous_satisfaction=snapshot["previous_satisfaction"].to_numpy(float),
        start_expectation=snapshot["expectation"].to_numpy(float),
        start_tenure=snapshot["tenure"].to_numpy(np.int64),
        start_highest_stage=np.ascontiguousarray(highest),
    )
    attributes = np.column_stack(
        [columns[name] for name in ("segment", "wallet", "fit", "tier", "propensity")]
    )
    start = np.column_stack(
        [
            columns["start_stage"],
            columns["start_satisfaction"],
            columns["start_previous_satisfaction"],
            columns["start_expectation"],
            columns["start_tenure"],
            columns["start_highest_stage"],
            np.zeros(len(snapshot)),
        ]
    )  # no acquisition cost: these customers are already acquired
    partials = [
        run_customers(
            arrays,
            tables,
            config.run.seed,
            replication,
            columns["customer_ids"],
            attributes,
            start,
            config.run.horizon,
        )
        for replication in range(config.run.replications)
    ]
    result = ProjectionResult.from_partials(config, partials, threads=used)
    result.timings["snapshot_customers"] = len(snapshot)
    return result
