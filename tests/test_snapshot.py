"""sim.project_from: projecting a snapshot of live customers with the same kernel."""

import numpy as np
import pandas as pd
import pytest

import sim
from sim.core import _customer_attributes
from sim.model import model_arrays


def _new_customer_snapshot(config, n):
    """Customers 0..n-1 exactly as a new cohort starts them (same attribute streams)."""
    scalars = model_arrays(config).scalars
    rows = []
    for customer in range(n):
        segment, wallet, fit, tier, _ = _customer_attributes(np.uint64(config.run.seed), np.uint64(0), np.int64(customer), scalars)
        rows.append(dict(customer=customer, segment=segment, wallet=wallet, fit=fit, tier=tier, stage=0,
                         satisfaction=0.5, previous_satisfaction=0.5,
                         expectation=config.dynamics.initial_expectation, tenure=0))
    return pd.DataFrame(rows)


def test_a_snapshot_of_new_customers_is_the_cohort_without_acquisition(baseline_config):
    """Projecting newly acquired customers from their start state must give, customer by
    customer, the cohort CLV plus the acquisition cost (same kernel, same streams)."""
    n = 3000
    snapshot = _new_customer_snapshot(baseline_config, n)
    projected = sim.project_from(snapshot, baseline_config, replications=1)
    cohort = sim.project(baseline_config, customers=n, replications=1)
    acquisition = np.where(snapshot["segment"] == 0, baseline_config.economics.acquisition_cost.relationship,
                           baseline_config.economics.acquisition_cost.transactional)
    for policy in baseline_config.policy_names:
        np.testing.assert_allclose(projected.clv[policy], cohort.clv[policy] + acquisition, rtol=1e-12, atol=1e-10)
    assert (projected.summary["acquisition_cost"] == 0).all()


def test_customers_in_stability_are_worth_more_than_new_ones(baseline_config):
    """Paired: the same customers (same streams) placed in stability with tenure 24 vs in
    exploration; the residual value difference must exceed 4 paired SEs."""
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
