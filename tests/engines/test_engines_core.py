"""The jitted core: invariants, reproducibility, the timing convention and the Markov closed form."""

import numpy as np
import pandas as pd
import pytest
from conftest import markov_reducible

import sim
from sim.analytic.lifecycle_chain import lifecycle_markov_clv, markov_reducible_problems
from sim.engines.core import simulate_chunk
from sim.model.arrays import model_arrays
from sim.model.names import EXPLORATION, FORMATION, STABILITY
from sim.model.policies import policy_tables
from sim.tables.partials import BLOCK

# every move a relationship may make in one period (stage codes 0..3, 4 = ended); no skipping
ALLOWED_MOVES = {
    (0, 0),
    (0, 1),
    (0, 4),
    (1, 1),
    (1, 2),
    (1, 3),
    (2, 2),
    (2, 3),
    (3, 3),
    (3, 1),
    (3, 4),
    (4, 4),
}


def _all_tables_equal(a, b):
    for name in a.TABLES:
        pd.testing.assert_frame_equal(a.table(name), b.table(name), check_exact=True)
    for policy in a.clv:
        np.testing.assert_array_equal(a.clv[policy], b.clv[policy])


# ----------------------------------------------------------------------------- invariants


def test_parts_sum_exactly_to_clv(baseline_result):
    """CLV = CLV1+...+CLV6 - spend - acquisition, per policy (the kernel sums in that order)."""
    s = baseline_result.summary
    parts = s[[f"clv{i}" for i in range(1, 7)]].sum(axis=1) - s["retention_spend"] - s["acquisition_cost"]
    # per-customer sums are exact in the kernel; the means of the parts are averaged
    # separately, so they agree to rounding of N additions (relative 1e-12 is ample)
    np.testing.assert_allclose(parts, s["clv_mean"], rtol=1e-12, atol=1e-9)


def test_stage_shares_sum_to_one_and_start_in_exploration(baseline_result):
    stages = baseline_result.stages
    totals = stages.groupby(["policy", "period"])["share"].sum()
    np.testing.assert_allclose(totals.to_numpy(), 1.0, rtol=0, atol=1e-12)
    first = stages[stages["period"] == 0].set_index(["policy", "stage"])["share"]
    assert (first.xs("exploration", level="stage") == 1.0).all()
    # no skipping: stability needs two periods, decline two (via formation)
    one = stages[stages["period"] == 1].set_index(["policy", "stage"])["share"]
    assert (one.xs("stability", level="stage") == 0.0).all()
    assert (one.xs("decline", level="stage") == 0.0).all()
    # "ended" never decreases
    ended = stages[stages["stage"] == "ended"].pivot(index="period", columns="policy", values="share")
    assert (ended.diff().dropna() >= 0).all().all()


def test_pattern_shares_and_spend_are_consistent(baseline_result):
    patterns = baseline_result.patterns
    np.testing.assert_allclose(patterns.groupby("policy")["share"].sum(), 1.0, atol=1e-12)
    summary = baseline_result.summary.set_index("policy")
    assert summary.loc["none", "retention_spend"] == 0.0
    assert (summary["retention_spend"] >= 0).all()
    for frame in baseline_result.TABLES:
        table = baseline_result.table(frame)
        numeric = table.select_dtypes("number")
        # NaN is allowed only where a count is zero (e.g. an empty satisfaction bin)
        if frame != "satisfaction_retention":
            assert np.isfinite(numeric.to_numpy()).all(), frame


def test_no_stage_is_ever_skipped(baseline_config):
    """Trace 2,000 customers' full stage paths under every policy: every one-period move is allowed."""
    config = baseline_config.with_overrides(run={"horizon": 120})
    partials = simulate_chunk(
        model_arrays(config), policy_tables(config), 7, 0, 0, 2000, 120, trace_customers=2000
    )
    paths = partials.stage_trace.astype(int)
    moves = set(zip(paths[:, :, :-1].ravel().tolist(), paths[:, :, 1:].ravel().tolist()))
    assert moves <= ALLOWED_MOVES, moves - ALLOWED_MOVES
    assert {(0, 1), (1, 2), (2, 3), (3, 1), (3, 4), (0, 4)} <= moves  # the paths really move
    stage_hits = np.array([(paths == stage).any(axis=2) for stage in range(5)])
    reached_stability = stage_hits[2]
    # nobody reaches stability without having been in formation
    assert (stage_hits[1][reached_stability]).all()


def test_probabilities_stay_in_unit_interval():
    """(M7) on a grid including extreme loyalty, odds and effects: p in [0,1], forward+exit <= 1."""
    from sim.model.equations import transition_probabilities

    values = []
    for stage in range(4):
        for loyalty in (0.0, 0.2, 0.5, 1.0):
            for base_forward, base_exit in (
                (0.0, 0.0),
                (0.3, 0.7),
                (1.0, 0.0),
                (0.5, 0.5),
                (1e-12, 1 - 1e-12),
            ):
                for beta in (0.0, 6.0, 1000.0):
                    for odds in (0.0, 1.0, 1e6):
                        forward, leave = transition_probabilities(
                            stage, loyalty, 0.4, base_forward, base_exit, beta, beta, odds
                        )
                        values.append((forward, leave))
    values = np.array(values)
    assert np.isfinite(values).all()
    assert (values >= 0).all() and (values <= 1).all()
    assert (values.sum(axis=1) <= 1 + 1e-12).all()


# ----------------------------------------------------------------------------- reproducibility


def test_identical_for_any_thread_count_and_chunking(baseline_config):
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip(
            f"NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS}: one thread cannot be compared "
            "with two (set NUMBA_NUM_THREADS >= 2)"
        )
    config = baseline_config.with_overrides(
        run={"replications": 2, "horizon": 60}, population={"customers": 10_000}
    )
    one_thread = sim.project(config, threads=1)
    assert one_thread.timings["threads"] == 1
    two_threads = sim.project(config, threads=2)
    # really two threads (not silently capped to one), over 3 blocks of customers per chunk
    assert two_threads.timings["threads"] == 2 and numba.get_num_threads() == 2
    assert config.population.customers > 2 * BLOCK
    small_chunks = sim.project(config.with_overrides(run={"chunk_customers": BLOCK}), threads=2)
    _all_tables_equal(one_thread, two_threads)
    _all_tables_equal(one_thread, small_chunks)


def test_same_seed_same_numbers_other_seed_other_numbers(baseline_config):
    config = baseline_config.with_overrides(
        run={"replications": 1, "horizon": 36}, population={"customers": 5_000}
    )
    first = sim.project(config, seed=11)
    again = sim.project(config, seed=11)
    other = sim.project(config, seed=12)
    _all_tables_equal(first, again)
    assert not np.array_equal(first.clv["none"], other.clv["none"])
    # replications are independent streams too
    two = sim.project(config, seed=11, replications=2)
    n = config.population.customers
    assert np.array_equal(two.clv["none"][:n], first.clv["none"])
    assert not np.array_equal(two.clv["none"][n:], first.clv["none"])


def test_policies_see_the_same_customers(baseline_config):
    """Common random numbers: a policy identical to another (spend 0 = none) gives the same CLVs."""
    config = baseline_config.with_overrides(
        population={"customers": 3_000},
        policies=[
            {"name": "none", "kind": "none"},
            {"name": "zero", "kind": "uniform", "spend": 0.0},
            {"name": "uniform", "kind": "uniform", "spend": 2.0},
        ],
        run={"replications": 1},
    )
    result = sim.project(config)
    np.testing.assert_array_equal(result.clv["none"], result.clv["zero"])
    assert not np.array_equal(result.clv["none"], result.clv["uniform"])
    comparison = result.comparison.set_index(["policy", "reference"])
    assert comparison.loc[("zero", "none"), "delta_clv"] == 0.0
    assert comparison.loc[("zero", "none"), "se"] == 0.0


# ----------------------------------------------------------------------------- closed forms


def test_timing_convention_cash_at_end_of_period():
    """A deterministic customer who stays in exploration: CLV = sum_{t<H} delta^(t+1) R - acquisition.

    Cash of period t is received at the END of the period (discount delta^(t+1)); the
    acquisition cost is paid at period 0, undiscounted; the horizon covers periods 0..H-1.
    """
    horizon = 5
    config = markov_reducible(
        population={"wallet_sigma": 0.0, "relationship_share": 1.0},
        transitions={"advance": {"exploration": 0.0, "formation": 0.1}, "exit": {"exploration": 0.0}},
        run={"horizon": horizon, "replications": 1},
        policies=[{"name": "none", "kind": "none"}, {"name": "uniform", "kind": "uniform", "spend": 1.5}],
    )
    result = sim.project(config, customers=4)
    eco = config.economics
    delta = 1.0 / (1.0 + eco.period_discount_rate)
    reward = (
        config.population.wallet_median * eco.share_of_wallet.exploration * eco.margin.exploration
        - eco.cost_to_serve
    )
    annuity = sum(delta ** (t + 1) for t in range(horizon))
    acquisition = eco.acquisition_cost.relationship
    np.testing.assert_allclose(result.clv["none"], reward * annuity - acquisition, rtol=1e-13)
    np.testing.assert_allclose(result.clv["uniform"], (reward - 1.5) * annuity - acquisition, rtol=1e-13)
    summary = result.summary.set_index("policy")
    assert summary.loc["none", "clv1"] == pytest.approx(delta * reward, rel=1e-13)
    assert summary.loc["none", "clv2"] == pytest.approx(reward * (annuity - delta), rel=1e-13)


def test_markov_reducible_setting_matches_closed_form():
    """Monte Carlo mean CLV vs the exact Pfeifer-Carraway value of the 5-state chain.

    Tolerance |mean - exact| < 4 SE, SE = sample sd / sqrt(n) over n = 200,000 independent
    customers (the chance of a false alarm per comparison is about 6e-5).
    """
    config = markov_reducible(
        run={"horizon": 60, "replications": 1},
        policies=[
            {"name": "none", "kind": "none"},
            {
                "name": "stage",
                "kind": "stage",
                "spend": {"exploration": 1, "formation": 3, "stability": 2, "decline": 5},
            },
            {"name": "value", "kind": "value", "tier_spend": {"A": 5.0, "B": 2.0, "C": 0.5}},
        ],
    )
    assert markov_reducible_problems(config) == []
    result = sim.project(config, customers=200_000)
    for row in result.summary.itertuples():
        exact = lifecycle_markov_clv(config, row.policy)
        assert abs(row.clv_mean - exact) < 4 * row.clv_se, (row.policy, row.clv_mean, exact, row.clv_se)
        assert row.clv_se < 0.01 * abs(exact)  # the test has power: SE is under 1 % of the value


def test_closed_form_refuses_a_config_with_feedback(baseline_config):
    with pytest.raises(ValueError, match="loyalty_effect"):
        lifecycle_markov_clv(baseline_config, "none")


# ----------------------------------------------------------------------------- stylised facts


#: Independent batches of the baseline for the stylised facts: each fact is computed per batch
#: (independent seeds), and a difference is called real only when it exceeds 4 standard errors
#: of the batch means, SE = sd over batches / sqrt(batches). Batches, not customer-periods,
#: carry the error because a customer's periods are correlated.
BATCHES, BATCH_CUSTOMERS = 10, 6_000


@pytest.fixture(scope="module")
def baseline_batches(baseline_config):
    """The baseline's tables for ``BATCHES`` independent seeds (policy "none")."""
    runs = []
    for batch in range(BATCHES):
        config = baseline_config.with_overrides(
            run={"seed": 1000 + batch, "replications": 1}, policies=[{"name": "none", "kind": "none"}]
        )
        runs.append(sim.project(config, customers=BATCH_CUSTOMERS))
    return runs


def _batch_values(runs, table, index, column):
    """``column`` of ``table`` per batch: a DataFrame, one row per batch, one column per ``index`` value."""
    return pd.DataFrame([run.table(table).set_index(index)[column] for run in runs]).reset_index(drop=True)


def _mean_and_se(values):
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


def _assert_larger(values, larger, smaller, what):
    """``larger`` exceeds ``smaller`` by more than 4 SE of the batch mean of the difference."""
    mean, se = _mean_and_se(values[larger] - values[smaller])
    assert mean > 4 * se, f"{what}: {larger} - {smaller} = {mean:.4g}, SE {se:.3g} over {len(values)} batches"


def test_baseline_profit_by_stage_ordering(baseline_batches):
    """docs/model.md §1.1: profit per customer-period stability > formation > decline > exploration,
    each step larger than 4 SE of its batch mean.
    """
    profit = _batch_values(baseline_batches, "by_stage", "stage", "profit_mean")
    for larger, smaller in (("stability", "formation"), ("formation", "decline"), ("decline", "exploration")):
        _assert_larger(profit, larger, smaller, "profit per customer-period")


def test_baseline_clv_by_pattern_ordering(baseline_batches):
    """docs/model.md §1.3: mean CLV of pattern IV > III > II > I, each step larger than 4 SE."""
    clv = _batch_values(baseline_batches, "patterns", "pattern", "clv_mean")
    for larger, smaller in (("IV", "III"), ("III", "II"), ("II", "I")):
        _assert_larger(clv, larger, smaller, "mean CLV by pattern")


def test_baseline_satisfaction_retention_flat_middle_steep_top(baseline_batches):
    """docs/model.md §2.1, the satisfaction trap: in stability, retention barely moves across the
    zone of indifference (satisfaction 0.4-0.6) and rises steeply at the top (0.7-0.8) and the
    bottom (0.1-0.2). Slopes per 0.1 of satisfaction, per batch: the top and bottom slopes exceed
    three times the middle slope by more than 4 SE, and the middle slope is within 4 SE of a
    slope smaller than a quarter of the top one (flat, not merely smaller).
    """
    rows = []
    for run in baseline_batches:
        table = run.satisfaction_retention
        retention = table[table["stage"] == "stability"].set_index("satisfaction_low")["retention"]
        rows.append(
            {
                "middle": (retention[0.6] - retention[0.4]) / 2,
                "top": retention[0.8] - retention[0.7],
                "bottom": retention[0.2] - retention[0.1],
            }
        )
    slopes = pd.DataFrame(rows)
    top, top_se = _mean_and_se(slopes["top"])
    assert top > 4 * top_se  # retention does rise at the top
    for steep in ("top", "bottom"):
        mean, se = _mean_and_se(slopes[steep] - 3 * slopes["middle"])
        assert mean > 4 * se, (steep, mean, se)
    middle, middle_se = _mean_and_se(slopes["middle"])
    assert abs(middle) < top / 4 + 4 * middle_se, (middle, middle_se, top)


def test_baseline_value_concentration_is_abc_like(baseline_batches):
    """docs/model.md §4.2: value is concentrated as in the ABC rule of thumb: the top 5 % of
    customers hold more than 5 times their share of the value (A > 25 %, the rule says 50 %), the
    bottom 80 % less than half of theirs (C < 40 %, the rule says 20 %), and part of the bottom
    group loses money (negative share of C > 5 %); each by more than 4 SE of its batch mean.
    """
    share = _batch_values(baseline_batches, "value_concentration", "group", "value_share")
    negative = _batch_values(baseline_batches, "value_concentration", "group", "negative_share")
    for values, relation, bound in (
        (share["A"], ">", 0.25),
        (share["C"], "<", 0.40),
        (negative["C"], ">", 0.05),
    ):
        mean, se = _mean_and_se(values)
        margin = mean - bound if relation == ">" else bound - mean
        assert margin > 4 * se, (relation, bound, mean, se)
    np.testing.assert_allclose(share.sum(axis=1), 1.0, atol=1e-9)


def test_spend_has_an_appropriate_level():
    """docs/model.md §5.4: too little and too much spend both lose — CLV against uniform spend rises,
    peaks and falls. Paired differences (common random numbers) with 4-SE margins.
    """
    config = sim.config_from_dict(
        {
            "policies": [
                {"name": f"s{spend:g}", "kind": "uniform", "spend": spend} for spend in (0.0, 2.0, 40.0)
            ],
            "run": {"replications": 1},
        }
    )
    result = sim.project(config, customers=20_000)
    comparison = result.comparison.set_index(["policy", "reference"])
    rise = comparison.loc[("s2", "s0")]
    fall = comparison.loc[("s40", "s2")]
    assert rise["delta_clv"] > 4 * rise["se"]
    assert fall["delta_clv"] < -4 * fall["se"]


def test_lifecycle_pattern_is_one_rule_for_scalars_and_arrays():
    """sim.model.equations.lifecycle_pattern (used by the core, the NumPy reference and the agent
    engine) gives I/II from the highest stage, III for a relationship that reached stability
    and ended before long_term periods of tenure, IV otherwise — jitted on scalars and through
    .py_func on arrays alike, for every combination.
    """
    from sim.model.equations import lifecycle_pattern

    long_term = 24.0
    highest = np.array([EXPLORATION, FORMATION, STABILITY])
    ends = np.array([-1, 0, 5, 23, 24, 100])
    starts = np.array([0, 1, 30])
    h, e, s = (grid.ravel() for grid in np.meshgrid(highest, ends, starts, indexing="ij"))
    vectorised = lifecycle_pattern.py_func(h, e, s, long_term)
    for index in range(h.size):
        expected = (
            h[index]
            if h[index] < STABILITY
            else (2 if 0 <= e[index] and s[index] + e[index] < long_term else 3)
        )
        assert lifecycle_pattern(h[index], e[index], s[index], long_term) == expected == vectorised[index]
