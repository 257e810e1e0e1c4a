"""The cohort core's kernel, customers stepped together in vector lanes (:mod:`sim.engines.lanes`).

Each customer's arithmetic is the model's, operation for operation, so the per-customer CLVs
agree with the NumPy reference (which evaluates the same equations on arrays, with NumPy's
own ``exp``) to a few ulp; the aggregates summed in another order agree to rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from sim.engines import lanes
from sim.engines.core import simulate_chunk
from sim.engines.reference import simulate_reference
from sim.model.arrays import model_arrays
from sim.model.config import config_from_dict
from sim.model.policies import policy_tables

CONFIGS = {
    "baseline": config_from_dict({}),
    "reactive_and_beta_churn": config_from_dict(
        {
            "population": {"churn_propensity": {"alpha": 1.0, "beta": 12.0}},
            "policies": [
                {"name": "none", "kind": "none"},
                {"name": "reactive", "kind": "reactive", "spend": 4.0, "satisfaction_drop": 0.05},
                {"name": "max_sat", "kind": "max_satisfaction"},
            ],
        }
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize(("customers", "horizon"), [(1300, 120), (700, 13)])
def test_per_customer_clvs_match_the_reference_to_1e_12(name, customers, horizon):
    """Groups of customers that do not fill the last group, horizons that end inside a window
    of draws: every customer's CLV is the reference's to 1e-12 relative, and the counts
    (occupancy, ends, satisfaction bins) are equal.
    """
    config = CONFIGS[name]
    partials = simulate_chunk(
        model_arrays(config), policy_tables(config), config.run.seed, 0, 0, customers, horizon
    )
    reference = simulate_reference(config, customers=customers, horizon=horizon)
    np.testing.assert_allclose(partials.clv, reference["clv"], rtol=1e-12, atol=1e-12)
    assert np.array_equal(partials.occupancy.sum(axis=0)[:, :, :4], reference["occupancy"][:, :, :4])
    assert np.array_equal(partials.ended_at.sum(axis=0), reference["ended_at"])
    assert np.array_equal(partials.satisfaction_bins.sum(axis=0), reference["satisfaction_bins"])
    np.testing.assert_allclose(
        partials.period_sums.sum(axis=0), reference["period_sums"], rtol=1e-11, atol=1e-9
    )


def test_the_vector_pass_is_vectorised():
    """LLVM vectorises the per-period pass (a gather from an argument array, a call that is
    not inlined or a branch that cannot be made a select would stop it, silently).
    """
    fresh = njit(error_model="numpy")(lanes.advance_period.py_func)
    config = CONFIGS["baseline"]
    arrays = model_arrays(config)
    row = np.zeros(lanes.ROW)
    fresh(
        4,
        0,
        np.zeros(lanes.N_POLICY_FLOATS * lanes.ROW),
        np.zeros(lanes.N_POLICY_INTS * lanes.ROW, dtype=np.int64),
        np.zeros(lanes.N_CUSTOMER_FLOATS * lanes.ROW),
        np.zeros(lanes.N_CUSTOMER_INTS * lanes.ROW, dtype=np.int64),
        row,
        row,
        row,
        row,
        arrays.stage,
        arrays.referral,
        arrays.scalars,
        0.0,
        0.0,
    )
    llvm_ir = fresh.inspect_llvm(fresh.signatures[0])
    assert "vector.body" in llvm_ir
