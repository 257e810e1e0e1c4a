"""The NumPy reference (sim.engines.reference) against the jitted cohort core (sim.engines.core).

Both engines run the same equations (sim.model.equations) on the same per-customer random streams
in the same order of operations, so:

* per-customer CLVs agree to rounding: the only differences come from the last ulp of
  ``exp``/``log`` (the logistic of (M4) is computed from ``exp(-|x|)``), which NumPy's SIMD
  loops and numba (LLVM/libm) may round differently; they propagate through a few hundred
  additions to relative errors of about 1e-14, far inside the tolerance used here (rtol = atol = 1e-9);
* integer aggregates (stage occupancy, ended counts, patterns, satisfaction bins) agree
  exactly. An ulp difference could in principle flip one threshold comparison (a uniform
  against a transition probability, a satisfaction-bin edge) for one customer; the chance
  is of the order of 1e-16 per comparison, about 1e-9 for this whole file, so exact
  equality is asserted.
"""

import functools

import numpy as np
import pytest

from sim.engines import core
from sim.engines.reference import PART_NAMES, simulate_reference
from sim.model.arrays import S_DISCOUNT_FACTOR, model_arrays
from sim.model.config import config_from_dict
from sim.model.names import ENDED
from sim.model.policies import policy_tables
from sim.tables import partials as partials_layout

N_CUSTOMERS = 3000
HORIZON = 120
RTOL = 1e-9
ATOL = 1e-9

BASELINE = config_from_dict({})
EXTRA_POLICIES = [
    {"name": "reactive", "kind": "reactive", "spend": 4.0, "satisfaction_drop": 0.05},
    {"name": "decline_only", "kind": "reactive", "spend": 3.0, "satisfaction_drop": 1.0},
    {
        "name": "value",
        "kind": "value",
        "tier_spend": {"A": 8.0, "B": 3.0, "C": 0.5},
        "stage_multiplier": {"exploration": 1.0, "formation": 1.5, "stability": 0.5, "decline": 2.0},
    },
    {"name": "max_sat", "kind": "max_satisfaction"},
    {
        "name": "table",
        "kind": "table",
        "relationship": {"exploration": 2.0, "formation": 5.0, "stability": 1.0, "decline": 4.0},
        "transactional": {"exploration": 0.5, "formation": 1.0, "stability": 0.0, "decline": 0.0},
    },
]
EXTENDED = config_from_dict(
    {"policies": [policy.model_dump(mode="python") for policy in BASELINE.policies] + EXTRA_POLICIES}
)
CONFIGS = {"baseline": BASELINE, "extended": EXTENDED}


def run_core(config, customers=N_CUSTOMERS, horizon=HORIZON):
    return core.simulate_chunk(
        model_arrays(config), policy_tables(config), config.run.seed, 0, 0, customers, horizon
    )


@functools.cache
def reference_of(name):
    return simulate_reference(CONFIGS[name], customers=N_CUSTOMERS, horizon=HORIZON)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def both(request):
    config = CONFIGS[request.param]
    return config, run_core(config), reference_of(request.param)


def test_per_customer_clv_matches_core(both):
    config, partials, reference = both
    assert reference["clv"].shape == partials.clv.shape == (len(config.policies), N_CUSTOMERS)
    np.testing.assert_allclose(reference["clv"], partials.clv, rtol=RTOL, atol=ATOL)


def test_clv_parts_match_core(both):
    _, partials, reference = both
    money = partials.money.sum(axis=0)
    for column, name in enumerate(PART_NAMES):  # M_CLV1 .. M_ACQUISITION
        np.testing.assert_allclose(
            reference[name].sum(axis=1), money[:, column], rtol=RTOL, atol=ATOL, err_msg=name
        )
    np.testing.assert_allclose(
        reference["clv"].sum(axis=1), money[:, partials_layout.M_CLV], rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        (reference["clv"] ** 2).sum(axis=1), money[:, partials_layout.M_CLV_SQUARED], rtol=RTOL
    )
    # The reference's CLV total is the core's parts combined: clv1 + ... + clv6 - spend - acquisition.
    core_parts = (
        money[:, partials_layout.M_CLV1 : partials_layout.M_CLV1 + 6].sum(axis=1)
        - money[:, partials_layout.M_SPEND]
        - money[:, partials_layout.M_ACQUISITION]
    )
    np.testing.assert_allclose(reference["clv"].sum(axis=1), core_parts, rtol=RTOL, atol=ATOL)


def test_integer_aggregates_match_core_exactly(both):
    _, partials, reference = both
    occupancy = partials.occupancy.sum(axis=0)
    ended_at = partials.ended_at.sum(axis=0)
    assert np.array_equal(reference["occupancy"][:, :, :4], occupancy)
    assert np.array_equal(reference["ended_at"], ended_at)
    # the "ended" column against the core's occupancy: everyone not in one of its four stages has ended
    assert np.array_equal(reference["occupancy"][:, :, 4], N_CUSTOMERS - occupancy.sum(axis=2))
    assert np.array_equal(reference["stage_periods"], partials.stage_periods.sum(axis=0))
    assert np.array_equal(reference["satisfaction_bins"], partials.satisfaction_bins.sum(axis=0))
    patterns = np.stack([np.bincount(row, minlength=4) for row in reference["pattern"]])
    assert np.array_equal(patterns, partials.pattern_count.sum(axis=0))


def test_float_aggregates_match_core(both):
    _, partials, reference = both
    # Same values, added in another order: relative rounding of order n * eps.
    np.testing.assert_allclose(
        reference["stage_sums"], partials.stage_sums.sum(axis=0), rtol=1e-10, atol=1e-8
    )
    np.testing.assert_allclose(
        reference["period_sums"], partials.period_sums.sum(axis=0), rtol=1e-10, atol=1e-8
    )
    pattern_clv = np.stack(
        [
            np.bincount(pattern, weights=clv, minlength=4)
            for pattern, clv in zip(reference["pattern"], reference["clv"])
        ]
    )
    np.testing.assert_allclose(pattern_clv, partials.pattern_clv.sum(axis=0), rtol=1e-10, atol=1e-8)


def test_attributes_match_core():
    scalars = model_arrays(BASELINE).scalars
    reference = simulate_reference(BASELINE, customers=200, horizon=1, first_customer=5000)
    for index, customer in enumerate(reference["customer"]):
        segment, wallet, fit, tier, _ = core.customer_attributes(
            np.uint64(BASELINE.run.seed), np.uint64(0), np.int64(customer), scalars
        )
        assert (reference["segment"][index], reference["tier"][index]) == (segment, tier)
        assert reference["wallet"][index] == pytest.approx(wallet, rel=1e-14)
        assert reference["fit"][index] == fit
    assert set(np.unique(reference["segment"])) == {0, 1}


def test_policies_are_not_ignored():
    """Each policy's per-customer results are its own: swapping, dropping or ignoring a
    policy's spend table (or reactive rule) fails here.
    """
    reference = reference_of("extended")
    names = reference["policies"]
    spend = reference["retention_spend"]
    assert names == EXTENDED.policy_names
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert not np.array_equal(spend[i], spend[j]), (names[i], names[j])
            assert not np.array_equal(reference["clv"][i], reference["clv"][j]), (names[i], names[j])
    assert (spend[names.index("none")] == 0.0).all()
    # uniform: 2.0 per active period, discounted by delta**(t + 1)
    delta = model_arrays(EXTENDED).scalars[S_DISCOUNT_FACTOR]
    uniform = names.index("uniform")
    periods = np.where(reference["end_period"][uniform] < 0, HORIZON, reference["end_period"][uniform])
    expected = 2.0 * np.array([np.sum(delta ** np.arange(1, k + 1)) for k in periods])
    np.testing.assert_allclose(spend[uniform], expected, rtol=1e-12)
    # reactive with a trigger of 1 pays only in decline
    decline_only = names.index("decline_only")
    never_declined = reference["pattern"][decline_only] == 0  # pattern I: never left exploration
    assert never_declined.any()
    assert (spend[decline_only][never_declined] == 0.0).all()
    # customers past exploration who ended left from decline, so spent a period there
    ended_from_decline = (reference["pattern"][decline_only] > 0) & (
        reference["end_period"][decline_only] >= 0
    )
    assert ended_from_decline.any() and (spend[decline_only][ended_from_decline] > 0.0).all()
    # reactive with a small trigger pays some customers outside decline too
    reactive = names.index("reactive")
    exploration_only = reference["pattern"][reactive] == 0
    assert (spend[reactive][exploration_only] > 0.0).any()
    assert (spend[reactive][exploration_only] == 0.0).any()


def test_blocks_and_offsets_do_not_change_customers():
    whole = simulate_reference(EXTENDED, customers=700, horizon=60)
    blocked = simulate_reference(EXTENDED, customers=700, horizon=60, block_customers=128)
    part = simulate_reference(EXTENDED, customers=300, horizon=60, first_customer=250, block_customers=97)
    for name in ("clv", *PART_NAMES, "pattern", "end_period", "final_stage"):
        assert np.array_equal(whole[name], blocked[name]), name
        assert np.array_equal(whole[name][:, 250:550], part[name]), name
    for name in ("occupancy", "ended_at", "satisfaction_bins", "stage_periods"):
        assert np.array_equal(whole[name], blocked[name]), name
    assert np.array_equal(part["customer"], np.arange(250, 550))
    assert ((whole["end_period"] == -1) == (whole["final_stage"] != ENDED)).all()


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"customers": 0}, r"customers must be in \[1, 4294967296\], got 0"),
        ({"horizon": 0}, r"horizon must be in \[1, 100000\], got 0"),
        ({"horizon": 10**30}, r"horizon must be in \[1, 100000\], got 10{30}"),
        ({"replication": -1}, r"replication must be in \[0, 16777215\], got -1"),
        ({"replication": 2**64}, r"replication must be in \[0, 16777215\], got 18446744073709551616"),
        ({"first_customer": 1.5}, r"first_customer must be an integer, got 1.5"),
        ({"first_customer": 2**32}, r"first_customer must be in \[0, 4294967295\], got 4294967296"),
        ({"first_customer": 2**32 - 5}, r"customer indices must stay <= 4294967295"),
        ({"block_customers": True}, r"block_customers must be an integer, got the boolean True"),
    ],
)
def test_invalid_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        simulate_reference(BASELINE, **{"customers": 10, "horizon": 5, **arguments})


def test_a_dict_config_is_refused_with_a_pointer_to_config_from_dict():
    with pytest.raises(TypeError, match=r"got dict \(for a dict use sim.config_from_dict\(data\)\)"):
        simulate_reference({"population": {"customers": 10}})
