"""sim.project_from: projecting a snapshot of live customers with the same kernel."""

import numpy as np
import pandas as pd
import pytest

import sim
from sim.model.arrays import model_arrays
from sim.model.step import customer_attributes


def _new_customer_snapshot(config, n):
    """Customers 0..n-1 exactly as a new cohort starts them (same attribute streams)."""
    scalars = model_arrays(config).scalars
    rows = []
    for customer in range(n):
        segment, wallet, fit, tier, _ = customer_attributes(
            np.uint64(config.run.seed), np.uint64(0), np.int64(customer), scalars
        )
        rows.append(
            dict(
                customer=customer,
                segment=segment,
                wallet=wallet,
                fit=fit,
                tier=tier,
                stage=0,
                satisfaction=0.5,
                previous_satisfaction=0.5,
                expectation=config.dynamics.initial_expectation,
                tenure=0,
            )
        )
    return pd.DataFrame(rows)


def test_a_snapshot_of_new_customers_is_the_cohort_without_acquisition(baseline_config):
    """Projecting newly acquired customers from their start state must give, customer by
    customer, the cohort CLV plus the acquisition cost (same kernel, same streams).
    """
    n = 3000
    snapshot = _new_customer_snapshot(baseline_config, n)
    projected = sim.project_from(snapshot, baseline_config, replications=1)
    cohort = sim.project(baseline_config, customers=n, replications=1)
    acquisition = np.where(
        snapshot["segment"] == 0,
        baseline_config.economics.acquisition_cost.relationship,
        baseline_config.economics.acquisition_cost.transactional,
    )
    for policy in baseline_config.policy_names:
        np.testing.assert_allclose(
            projected.clv[policy], cohort.clv[policy] + acquisition, rtol=1e-12, atol=1e-10
        )
    assert (projected.summary["acquisition_cost"] == 0).all()


def test_customers_in_stability_are_worth_more_than_new_ones(baseline_config):
    """Paired: the same customers (same streams) placed in stability with tenure 24 vs in
    exploration; the residual value difference must exceed 4 paired SEs.
    """
    n = 4000
    new = _new_customer_snapshot(baseline_config, n)
    mature = new.assign(stage=2, tenure=24, highest_stage=2)
    a = sim.project_from(new, baseline_config, replications=1).clv["none"]
    b = sim.project_from(mature, baseline_config, replications=1).clv["none"]
    difference = b - a
    assert difference.mean() > 4 * difference.std(ddof=1) / np.sqrt(n)
    start = sim.project_from(mature, baseline_config, replications=1).stages
    first = start[(start["period"] == 0) & (start["policy"] == "none")].set_index("stage")["share"]
    assert first["stability"] == 1.0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stage": 4}, "snapshot.stage = 4"),
        ({"satisfaction": 1.5}, "snapshot.satisfaction = 1.5"),
        ({"wallet": -1.0}, "snapshot.wallet = -1.0"),
        ({"segment": 2}, "snapshot.segment = 2"),
    ],
)
def test_bad_snapshots_are_rejected(baseline_config, change, message):
    snapshot = _new_customer_snapshot(baseline_config, 3)
    bad = snapshot.assign(**change)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        sim.project_from(bad, baseline_config)
    with pytest.raises(ValueError, match="missing columns"):
        sim.project_from(snapshot.drop(columns=["tenure"]), baseline_config)


def _snapshot_with(base, **changes):
    """``base`` with the given cells changed: ``{column: value}`` sets row 1 (0 being untouched), so
    the message must name row 1; a list value replaces the whole column.
    """
    bad = base.copy()
    for column, value in changes.items():
        if isinstance(value, list):
            bad[column] = value
        else:
            if column not in bad:
                bad[column] = bad["stage"].clip(upper=2) if column == "highest_stage" else 0.5
            bad[column] = bad[column].astype(object if isinstance(value, str) else float)
            bad.loc[1, column] = value
    return bad


@pytest.mark.parametrize(
    "changes, message",
    [
        # optional columns: range, consistency with the stage, finiteness
        ({"highest_stage": 3}, "snapshot.highest_stage = 3 (row 1): must be 0, 1 or 2"),
        ({"highest_stage": -1}, "snapshot.highest_stage = -1 (row 1): must be 0, 1 or 2"),
        (
            {"stage": [0, 2, 0], "highest_stage": [0, 1, 0]},
            "snapshot.highest_stage = 1 (row 1): must be >= the row's stage",
        ),
        (
            {"stage": [0, 3, 0], "highest_stage": [0, 0, 0]},
            "snapshot.highest_stage = 0 (row 1): must be >= the row's stage",
        ),
        ({"propensity": 1.5}, "snapshot.propensity = 1.5 (row 1): must be in [0, 1]"),
        ({"propensity": -0.1}, "snapshot.propensity = -0.1 (row 1): must be in [0, 1]"),
        ({"propensity": float("nan")}, "snapshot.propensity = nan (row 1): must be a finite number"),
        # integer columns hold whole numbers (never truncated)
        ({"stage": 1.5}, "snapshot.stage = 1.5 (row 1): must be a whole number"),
        ({"tenure": 2.7}, "snapshot.tenure = 2.7 (row 1): must be a whole number"),
        ({"customer": 1.25}, "snapshot.customer = 1.25 (row 1): must be a whole number"),
        ({"segment": 0.5}, "snapshot.segment = 0.5 (row 1): must be a whole number"),
        ({"tier": 1.0000001}, "snapshot.tier = 1.0000001 (row 1): must be a whole number"),
        ({"highest_stage": 0.5}, "snapshot.highest_stage = 0.5 (row 1): must be a whole number"),
        # non-numbers are named, never an AttributeError
        ({"segment": "relationship"}, "snapshot.segment = 'relationship' (row 1): must be a number"),
        ({"wallet": "100"}, "snapshot.wallet = '100' (row 1): must be a number"),
        ({"propensity": "high"}, "snapshot.propensity = 'high' (row 1): must be a number"),
        # NaN and infinity are named by column
        ({"fit": float("inf")}, "snapshot.fit = inf (row 1): must be a finite number"),
        ({"expectation": float("nan")}, "snapshot.expectation = nan (row 1): must be a finite number"),
        ({"wallet": float("nan")}, "snapshot.wallet = nan (row 1): must be a finite number"),
    ],
)
def test_bad_snapshot_table(baseline_config, changes, message):
    bad = _snapshot_with(_new_customer_snapshot(baseline_config, 3), **changes)
    with pytest.raises(ValueError) as raised:
        sim.project_from(bad, baseline_config, replications=1, horizon=2)
    assert message in str(raised.value)


def test_a_valid_highest_stage_and_propensity_are_accepted(baseline_config):
    """The checks must not refuse what the model allows: highest stage above the stage,
    1 or 2 in decline, propensity at both ends of [0, 1], integer-valued floats.
    """
    snapshot = _new_customer_snapshot(baseline_config, 4).assign(
        stage=[0, 1, 3, 3], highest_stage=[2, 1, 1, 2], propensity=[0.0, 1.0, 0.25, 0.5]
    )
    snapshot = snapshot.astype({"customer": float, "tenure": float, "stage": float})
    result = sim.project_from(snapshot, baseline_config, replications=1, horizon=2)
    assert result.timings["snapshot_customers"] == 4


def test_beta_churn_needs_the_propensity_column(baseline_config):
    """Under Beta churn a snapshot without propensities is refused (not projected with the
    churn silently off); with them, a propensity of 1 ends every relationship in period 0.
    """
    churn = baseline_config.with_overrides(population={"churn_propensity": {"alpha": 1.0, "beta": 3.0}})
    snapshot = _new_customer_snapshot(baseline_config, 3)
    with pytest.raises(ValueError, match="no 'propensity' column.*population.churn_propensity"):
        sim.project_from(snapshot, churn, replications=1, horizon=3)
    certain = sim.project_from(snapshot.assign(propensity=1.0), churn, replications=1, horizon=3).stages
    ended = certain[(certain["period"] == 1) & (certain["stage"] == "ended")]["share"]
    assert (ended == 1.0).all()
    # without Beta churn the column is accepted and ignored
    plain = sim.project_from(snapshot.assign(propensity=1.0), baseline_config, replications=1, horizon=3)
    again = sim.project_from(snapshot, baseline_config, replications=1, horizon=3)
    assert all(np.array_equal(plain.clv[p], again.clv[p]) for p in baseline_config.policy_names)
