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

from .config import ExperimentConfig
from .core import run_customers
from .model import model_arrays
from .policies import policy_tables

__all__ = ["SNAPSHOT_COLUMNS", "project_from"]

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
_OPTIONAL = {"highest_stage": "highest of exploration/formation/stability reached (0-2); default max(stage, ...)",
             "propensity": "Beta churn propensity in [0, 1]; default 0"}


def _checked_snapshot(snapshot: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(snapshot, pd.DataFrame):
        raise TypeError(f"snapshot must be a pandas DataFrame, got {type(snapshot).__name__}")
    missing = [column for column in SNAPSHOT_COLUMNS if column not in snapshot.columns]
    if missing:
        raise ValueError(f"snapshot is missing columns {missing}; needed: {', '.join(SNAPSHOT_COLUMNS)}")
    if len(snapshot) == 0:
        raise ValueError("snapshot has no customers")
    checks = [
        ("customer", (snapshot["customer"] >= 0) & (snapshot["customer"] < 2**32), "an integer in [0, 2**32)"),
        ("segment", snapshot["segment"].isin([0, 1]), "0 or 1"),
        ("wallet", snapshot["wallet"] > 0, "> 0"),
        ("tier", snapshot["tier"].isin([0, 1, 2]), "0, 1 or 2"),
        ("stage", snapshot["stage"].isin([0, 1, 2, 3]), "0-3 (live stages only)"),
        ("satisfaction", snapshot["satisfaction"].between(0, 1), "in [0, 1]"),
        ("previous_satisfaction", snapshot["previous_satisfaction"].between(0, 1), "in [0, 1]"),
        ("tenure", snapshot["tenure"] >= 0, ">= 0"),
    ]
    for column, ok, allowed in checks:
        bad = ~ok.to_numpy(dtype=bool)
        if bad.any():
            first = snapshot.loc[bad, column].iloc[0].item()
            raise ValueError(f"snapshot.{column} = {first} (row {int(np.flatnonzero(bad)[0])}): must be {allowed}")
    if snapshot["customer"].duplicated().any():
        raise ValueError("snapshot.customer has duplicates: each customer must appear once")
    numeric = snapshot[list(SNAPSHOT_COLUMNS)].to_numpy(dtype=float)
    if not np.isfinite(numeric).all():
        raise ValueError("snapshot has NaN or infinite values")
    return snapshot


def project_from(snapshot: pd.DataFrame, config: ExperimentConfig, *, horizon: int | None = None,
                 replications: int | None = None, seed: int | None = None, threads: int | None = None):
    """Project the residual value of a snapshot of live customers under every policy.

    Parameters
    ----------
    snapshot
        One row per live customer with the columns of :data:`SNAPSHOT_COLUMNS` (optionally
        ``highest_stage`` and ``propensity``).
    config
        The model and policies; ``population`` is ignored (the snapshot is the population).
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
    from .projection import ProjectionResult, _set_threads

    snapshot = _checked_snapshot(snapshot).reset_index(drop=True)
    run = {key: value for key, value in (("horizon", horizon), ("replications", replications),
                                         ("seed", seed), ("threads", threads)) if value is not None}
    config = config.with_overrides(population={"customers": len(snapshot)}, **({"run": run} if run else {}))
    arrays = model_arrays(config)
    tables = policy_tables(config)
    used = _set_threads(config.run.threads)
    stage = snapshot["stage"].to_numpy(np.int64)
    highest = (snapshot["highest_stage"].to_numpy(np.int64) if "highest_stage" in snapshot
               else np.minimum(np.where(stage == 3, 1, stage), 2))
    propensity = snapshot["propensity"].to_numpy(float) if "propensity" in snapshot else np.zeros(len(snapshot))
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
    attributes = np.column_stack([columns[name] for name in ("segment", "wallet", "fit", "tier", "propensity")])
    start = np.column_stack([columns["start_stage"], columns["start_satisfaction"], columns["start_previous_satisfaction"],
                             columns["start_expectation"], columns["start_tenure"], columns["start_highest_stage"],
                             np.zeros(len(snapshot))])  # no acquisition cost: these customers are already acquired
    partials = [
        run_customers(arrays, tables, config.run.seed, replication, columns["customer_ids"], attributes, start,
                      config.run.horizon)
        for replication in range(config.run.replications)
    ]
    result = ProjectionResult.from_partials(config, partials, threads=used)
    result.timings["snapshot_customers"] = len(snapshot)
    return result
