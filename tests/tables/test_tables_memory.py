"""Memory that does not grow with the run: the CLV sketch (sim.tables.sketch) and its error bound,
the reducer's exactness, and the measured peak state per customer (issue 6).

The sketch replaces the per-customer CLVs that the quantiles and the value-concentration
table needed. Its bins are fixed by the float format (2^10 per octave), so:
* merging is exact and order-free (integer counts), checked bin for bin;
* a quantile estimate lies in the bin of the true order statistic: |q_hat - q| <= 2^-10 |q|;
* a group sum is off by at most 2^-10 times the group's sum of |CLV|; negative counts exact.
These bounds are deterministic (no sampling), so the tests assert them exactly as stated.
"""

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import sim
from sim.tables import chunks
from sim.tables.result import QUANTILE_LEVELS, VALUE_GROUPS
from sim.tables.sketch import RELATIVE_WIDTH, ClvSketch, bin_bounds, bin_keys


def _mixed_values(n=120_000, seed=5):
    """Heavy-tailed, mixed-sign values like CLVs, plus zeros, subnormals and extremes."""
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [
            rng.lognormal(4.0, 1.6, n),
            -rng.lognormal(2.5, 0.8, n // 3),
            rng.normal(0.0, 1e-3, 1000),
            [0.0, -0.0, 5e-324, -5e-324, 1e-310, 1e300, -1e300],
        ]
    )
    rng.shuffle(values)
    return values


def test_bins_contain_their_values_and_keys_follow_the_order():
    values = np.concatenate([_mixed_values(), [np.finfo(float).max, -np.finfo(float).max]])
    keys = bin_keys(values)
    lower, upper = bin_bounds(keys)
    assert ((lower <= values) & (values <= upper)).all()
    order = np.argsort(values, kind="stable")
    assert (np.diff(keys[order]) >= 0).all()
    # bins are at most 2^-10 of their values wide (outside the two tiny bins around 0)
    normal = np.abs(values) >= 2.0**-1022
    width = (upper - lower)[normal]
    assert (width <= RELATIVE_WIDTH * np.abs(values[normal]) * (1 + 1e-15)).all()
    with pytest.raises(ValueError, match="finite"):
        bin_keys(np.array([1.0, np.nan]))


def test_merging_is_exact_and_order_free():
    values = _mixed_values()[None, :]
    whole = ClvSketch.from_values(values)
    parts = [ClvSketch.from_values(piece) for piece in np.array_split(values, 7, axis=1)]
    for order in ([0, 1, 2, 3, 4, 5, 6], [6, 2, 4, 0, 5, 1, 3]):
        merged = ClvSketch(1)
        for index in order:
            merged.merge(parts[index])
        assert np.array_equal(merged.keys[0], whole.keys[0]) and np.array_equal(
            merged.counts[0], whole.counts[0]
        )
    rebuilt = ClvSketch.from_arrays(whole.to_arrays())
    assert np.array_equal(rebuilt.keys[0], whole.keys[0]) and np.array_equal(
        rebuilt.counts[0], whole.counts[0]
    )


def test_quantiles_within_one_bin_of_numpy():
    """|q_hat - q| <= 2^-10 |q| for NumPy's default quantile, at the reported levels and the extremes."""
    values = _mixed_values()
    levels = np.array([0.0, 0.001, *QUANTILE_LEVELS, 0.999, 1.0])
    exact = np.quantile(values, levels)
    estimate = ClvSketch.from_values(values[None, :]).quantiles(0, levels)
    assert (np.abs(estimate - exact) <= RELATIVE_WIDTH * np.abs(exact) + 1e-300).all(), (estimate, exact)
    # the bound is not vacuous: the estimates are not exact
    assert not np.array_equal(estimate, exact)


def test_group_sums_within_the_bound_and_negative_counts_exact():
    values = _mixed_values()
    ranked = np.sort(values)[::-1]
    n = len(ranked)
    stops = [int(round(0.05 * n)), int(round(0.20 * n)), n]
    sums, negatives = ClvSketch.from_values(values[None, :]).top_group_sums(0, stops)
    start = 0
    for stop, estimate, negative in zip(stops, sums, negatives):
        group = ranked[start:stop]
        assert abs(estimate - group.sum()) <= RELATIVE_WIDTH * np.abs(group).sum()
        assert negative == (group < 0).sum()
        start = stop


@pytest.fixture(scope="module")
def sketched(baseline_config):
    """A run above the (lowered) size limit: tables from the sketch, CLVs kept on request
    so that the tables can be checked against them.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chunks, "CLV_KEEP_LIMIT", 1000)
        return sim.project(baseline_config, customers=12_000, replications=2, horizon=60, keep_clv=True)


def test_summary_quantiles_from_the_sketch_within_one_bin(sketched):
    assert sketched.clv and len(sketched.clv["none"]) == 24_000
    for row in sketched.summary.itertuples():
        exact = np.quantile(sketched.clv[row.policy], QUANTILE_LEVELS)
        shown = np.array([getattr(row, f"clv_p{round(level * 100):02d}") for level in QUANTILE_LEVELS])
        assert (np.abs(shown - exact) <= RELATIVE_WIDTH * np.abs(exact)).all(), (row.policy, shown, exact)
        assert not np.array_equal(shown, exact)  # really the sketch


def test_value_concentration_from_the_sketch_within_the_bound(sketched):
    """Shares of the sketch's total within 2 * 2^-10 * sum|CLV| / |total| of the exact shares
    (numerator and denominator each within 2^-10 sum|CLV|); negative shares exact.
    """
    table = sketched.value_concentration.set_index(["policy", "group"])
    for policy, values in sketched.clv.items():
        ranked = np.sort(values)[::-1]
        n, total, absolute = len(ranked), ranked.sum(), np.abs(ranked).sum()
        start, cumulative = 0, 0.0
        for group, share in VALUE_GROUPS:
            cumulative += share
            stop = n if group == "C" else int(round(cumulative * n))
            row = table.loc[(policy, group)]
            assert row["customer_share"] == (stop - start) / n
            assert abs(
                row["value_share"] - ranked[start:stop].sum() / total
            ) <= 2 * RELATIVE_WIDTH * absolute / abs(total)
            assert row["negative_share"] == np.mean(ranked[start:stop] < 0)
            start = stop
        assert table.loc[policy, "value_share"].sum() == pytest.approx(1.0, abs=1e-12)


def test_small_runs_use_every_clv_and_keep_clv_never_changes_a_table(baseline_config, monkeypatch):
    """Up to CLV_KEEP_LIMIT customer-replications the quantiles are NumPy's on every CLV;
    keep_clv only decides whether result.clv holds them. Above the limit (lowered here) the
    sketch is used whether or not the CLVs are kept.
    """
    config = baseline_config.with_overrides(
        population={"customers": 6_000}, run={"replications": 2, "horizon": 24}
    )
    kept = sim.project(config)
    assert set(kept.clv) == set(config.policy_names)
    for row in kept.summary.itertuples():
        exact = np.quantile(kept.clv[row.policy], QUANTILE_LEVELS)
        assert [getattr(row, f"clv_p{round(level * 100):02d}") for level in QUANTILE_LEVELS] == list(exact)
    hidden = sim.project(config, keep_clv=False)
    assert hidden.clv == {}
    monkeypatch.setattr(chunks, "CLV_KEEP_LIMIT", 11_999)  # 6000 x 2 above the limit
    large = sim.project(config)
    large_kept = sim.project(config, keep_clv=True)
    assert large.clv == {} and all(np.array_equal(large_kept.clv[p], kept.clv[p]) for p in kept.clv)
    for name in kept.TABLES:
        pd.testing.assert_frame_equal(kept.table(name), hidden.table(name), check_exact=True)
        pd.testing.assert_frame_equal(large.table(name), large_kept.table(name), check_exact=True)
        if name not in ("summary", "value_concentration"):  # the only tables that use CLV quantiles / ranks
            pd.testing.assert_frame_equal(kept.table(name), large.table(name), check_exact=True)


def _peak_bytes(config, customers, replications):
    tracemalloc.start()
    try:
        sim.project(config, customers=customers, replications=replications, keep_clv=False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_state_per_customer_and_independence_of_replications(monkeypatch):
    """Peak traced allocations of sim.project on the path of large runs (CLVs not kept,
    tables from the sketch: the size limit is lowered to 0 here), chunks of 16,384
    customers: at most 256 bytes per customer of a chunk (issue 6), and the growth from 1
    to 4 replications or from 4 to 8 chunks of customers is under a fifth of what keeping
    the CLVs would add (8 bytes x 3 policies per extra customer-replication).
    """
    monkeypatch.setattr(chunks, "CLV_KEEP_LIMIT", 0)
    chunk = 16_384
    config = sim.config_from_dict({"run": {"chunk_customers": chunk, "horizon": 120}})
    sim.project(config, customers=4096, replications=1, keep_clv=False)  # kernels compiled before measuring
    base = _peak_bytes(config, 4 * chunk, 1)
    more_replications = _peak_bytes(config, 4 * chunk, 4)
    more_customers = _peak_bytes(config, 8 * chunk, 1)
    assert base / chunk <= 256, base / chunk
    kept_cost = 8 * 3 * (4 * chunk) * 3  # CLVs of three more replications of 4 chunks
    assert more_replications - base < kept_cost / 5, (base, more_replications)
    assert more_customers - base < kept_cost / 5, (base, more_customers)
