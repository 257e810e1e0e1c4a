"""The SimPy agent engine (sim.engines.market): agreement with the core, and the direction of every
interaction.

Tiers: exact (per-customer equality with the core when the engines share their random
streams, exact identities of the bookkeeping, pathwise monotone effects under common random
numbers) and statistical (4 standard errors, with the SE stated where it is used).
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.engines.market.budget import CustomerState, allocate_budget
from sim.engines.market.engine import simulate_market
from sim.engines.market.state import SNAPSHOT_COLUMNS
from sim.exceptions import ConfigError
from sim.model.config import config_from_dict

# every move a relationship may make in one period (stage codes 0..3, 4 = ended); no skipping
ALLOWED_MOVES = {(0, 1), (0, 4), (1, 2), (1, 3), (2, 3), (3, 1), (3, 4)}
STAGE_POLICY = {
    "name": "stage_based",
    "kind": "stage",
    "spend": {"exploration": 1.0, "formation": 4.0, "stability": 1.0, "decline": 3.0},
}


def _config(baseline_config, policies=None, market=None, **sections):
    """The baseline with other policies/market/sections, one replication unless given."""
    overrides = {"run": {"replications": 1}, **sections}
    if policies is not None:
        overrides["policies"] = policies
    if market is not None:
        overrides["market"] = market
    return baseline_config.with_overrides(**overrides)


def _twin(name, base=STAGE_POLICY):
    return {**base, "name": name}


def _delta(config):
    return 1.0 / (1.0 + config.economics.period_discount_rate)


# ----------------------------------------------------------------------------- agreement with the core


@pytest.fixture(scope="module")
def engines(baseline_config):
    """Both engines on the same customers and streams: 1,500 customers x 2 replications x 60 periods."""
    kwargs = dict(customers=1500, replications=2, horizon=60)
    return simulate_market(baseline_config, **kwargs), sim.project(baseline_config, **kwargs)


def test_agent_engine_reproduces_the_core_customer_for_customer(engines, baseline_config):
    """Interactions off, period timing: every customer's CLV equals the core's bit for bit (the
    same equations, draws and order, and the parts summed in the core's order), so the stage,
    pattern and satisfaction counts are identical.
    """
    agents, core = engines
    for name in baseline_config.policy_names:
        assert agents.clv[name].shape == core.clv[name].shape == (3000,)
        np.testing.assert_array_equal(agents.clv[name], core.clv[name], err_msg=name)
    pd.testing.assert_frame_equal(agents.stages, core.stages, check_exact=True)
    pd.testing.assert_frame_equal(
        agents.patterns[["policy", "pattern", "customers", "share"]],
        core.patterns[["policy", "pattern", "customers", "share"]],
        check_exact=True,
    )
    retention = ["policy", "stage", "satisfaction_low", "customer_periods"]
    pd.testing.assert_frame_equal(
        agents.satisfaction_retention[retention], core.satisfaction_retention[retention]
    )
    # sums of floats over customers are added in another order: equal to rounding
    for table in ("summary", "by_stage", "trajectory", "comparison"):
        a, c = agents.table(table), core.table(table)
        numeric = a.select_dtypes("number").columns
        np.testing.assert_allclose(
            a[numeric].to_numpy(float), c[numeric].to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=table
        )


def test_agreement_holds_with_beta_churn(baseline_config):
    """(M8) Beta-heterogeneous churn: the attribute stream's Beta draw and component 3 are used as in
    the core.
    """
    config = _config(
        baseline_config,
        policies=[STAGE_POLICY],
        population={"churn_propensity": {"alpha": 1.0, "beta": 12.0}},
    )
    agents = simulate_market(config, customers=1000, replications=1, horizon=48)
    core = sim.project(config, customers=1000, replications=1, horizon=48)
    np.testing.assert_array_equal(agents.clv["stage_based"], core.clv["stage_based"])
    pd.testing.assert_frame_equal(agents.stages, core.stages, check_exact=True)
    assert agents.snapshot(0)["propensity"].gt(0).all()


@pytest.fixture(scope="module")
def independent_agents(baseline_config):
    """The agent engine on the baseline with another seed (streams independent of the core's)."""
    return simulate_market(baseline_config, customers=4000, replications=1, horizon=120, seed=97)


def test_statistical_agreement_on_independent_streams(independent_agents, baseline_result):
    """ABM (4,000 customers, seed 97) vs core (the 30,000 x 2 baseline run, its own seed): mean CLV,
    stage shares at 0, 3, 6, 12, 24, 48, 120 periods and pattern shares agree within 4 SE of a
    difference of two independent estimates, SE = sqrt(SE_abm^2 + SE_core^2); a share's SE is
    sqrt(p (1 - p) / n) with each engine's own p and n (customers x replications).
    """
    agents, core = independent_agents, baseline_result
    a = agents.summary.set_index("policy")
    c = core.summary.set_index("policy")
    for name in c.index:
        se = math.hypot(a.loc[name, "clv_se"], c.loc[name, "clv_se"])
        assert abs(a.loc[name, "clv_mean"] - c.loc[name, "clv_mean"]) < 4 * se, name
    n_agents, n_core = 4000, 60_000

    def share_check(table_a, table_c, keys):
        merged = table_a.merge(table_c, on=keys, suffixes=("_a", "_c"))
        assert len(merged) == len(table_c)
        p_a, p_c = merged["share_a"].to_numpy(), merged["share_c"].to_numpy()
        se = np.sqrt(p_a * (1 - p_a) / n_agents + p_c * (1 - p_c) / n_core)
        difference = np.abs(p_a - p_c)
        exact = se == 0
        assert (difference[exact] == 0).all()
        assert (difference[~exact] < 4 * se[~exact]).all(), merged[~exact][
            difference[~exact] >= 4 * se[~exact]
        ]

    periods = [0, 3, 6, 12, 24, 48, 120]
    share_check(
        agents.stages[agents.stages["period"].isin(periods)],
        core.stages[core.stages["period"].isin(periods)],
        ["policy", "period", "stage"],
    )
    share_check(
        agents.patterns[["policy", "pattern", "share"]],
        core.patterns[["policy", "pattern", "share"]],
        ["policy", "pattern"],
    )


def test_event_timing_keeps_stage_paths_and_mean_clv(baseline_config):
    """'event' timing: Poisson purchases within the period, each an equal share of the period's
    purchase cash flow. The purchase draws use their own stream, so stage paths equal the core's
    exactly; per-customer CLVs differ (more variance) but the mean of the paired difference
    (ABM - core, same customers) is within 4 SE, SE = sd(difference) / sqrt(n).
    """
    config = _config(
        baseline_config,
        policies=[{"name": "uniform", "kind": "uniform", "spend": 2.0}],
        market={
            "timing": "event",
            "purchase_rate": {"exploration": 1.0, "formation": 2.0, "stability": 3.0, "decline": 1.0},
        },
    )
    agents = simulate_market(config, customers=800, replications=1, horizon=48, event_log=True)
    core = sim.project(config, customers=800, replications=1, horizon=48)
    pd.testing.assert_frame_equal(agents.stages, core.stages, check_exact=True)
    difference = agents.clv["uniform"] - core.clv["uniform"]
    assert np.abs(difference).max() > 1.0  # the purchases really are random
    se = difference.std(ddof=1) / math.sqrt(difference.size)
    assert abs(difference.mean()) < 4 * se
    purchases = agents.events[agents.events["event"] == "purchase"]
    assert len(purchases) == agents.market["purchases"].sum() > 0
    assert ((purchases["time"] % 1) > 0).mean() > 0.99  # inside periods, not at their ends


# ----------------------------------------------------------------------------- budget


def test_allocate_budget_follows_the_stated_priority():
    # tier first (A=0), then stage in priority order (decline, formation, exploration, stability),
    # then lowest satisfaction, then position
    wishes = np.array([4.0, 4.0, 4.0, 4.0, 4.0, 4.0])
    tier = np.array([2, 2, 0, 2, 1, 2])
    stage = np.array([2, 3, 2, 1, 0, 1])
    satisfaction = np.array([0.1, 0.9, 0.9, 0.6, 0.5, 0.4])
    granted = allocate_budget(wishes, tier, stage, satisfaction, 14.0)
    # order: 2 (A), 4 (B), then C: 1 (decline), 5 (formation, sat 0.4), 3 (formation, sat 0.6), 0 (stability)
    np.testing.assert_array_equal(granted, [0.0, 4.0, 4.0, 0.0, 4.0, 2.0])
    np.testing.assert_array_equal(allocate_budget(wishes, tier, stage, satisfaction, 100.0), wishes)
    np.testing.assert_array_equal(allocate_budget(wishes, tier, stage, satisfaction, 0.0), np.zeros(6))
    other = allocate_budget(
        wishes,
        tier,
        stage,
        satisfaction,
        14.0,
        stage_priority=("stability", "exploration", "formation", "decline"),
    )
    np.testing.assert_array_equal(other, [4.0, 0.0, 4.0, 0.0, 4.0, 2.0])  # C: 0 (stability), then 5
    with pytest.raises(ValueError, match="stage_priority"):
        allocate_budget(wishes, tier, stage, satisfaction, 1.0, stage_priority=("decline", "decline"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 50), st.integers(0, 2), st.integers(0, 3), st.floats(0, 1)),
        min_size=1,
        max_size=40,
    ),
    st.floats(0, 500),
)
def test_allocate_budget_properties(rows, budget):
    """0 <= granted <= wish; total = min(budget, wishes); nobody is cut while someone of lower priority
    gets spend.
    """
    wishes, tier, stage, satisfaction = (np.array(column) for column in zip(*rows))
    granted = allocate_budget(wishes, tier, stage, satisfaction, budget)
    assert (granted >= 0).all() and (granted <= wishes).all()
    assert granted.sum() == pytest.approx(min(budget, wishes.sum()), rel=1e-9, abs=1e-9)
    rank = np.array([2, 1, 3, 0])[stage]  # default priority: decline, formation, exploration, stability
    key = list(zip(tier, rank, satisfaction, range(len(rows))))
    cut = [i for i in range(len(rows)) if granted[i] < wishes[i]]
    for i in cut:
        assert all(granted[j] == 0 or key[j] < key[i] for j in range(len(rows)) if j != i and wishes[j] > 0)


def test_budget_that_never_binds_changes_nothing(baseline_config):
    config = _config(
        baseline_config, policies=[STAGE_POLICY], market={"budget": {"enabled": True, "per_customer": 1e6}}
    )
    free = simulate_market(_config(baseline_config, policies=[STAGE_POLICY]), customers=800, horizon=48)
    capped = simulate_market(config, customers=800, horizon=48)
    np.testing.assert_array_equal(capped.clv["stage_based"], free.clv["stage_based"])
    assert (capped.market["budget"] == 800e6).all()


def test_a_tighter_budget_never_raises_spend(baseline_config):
    """Per period the granted spend is min(wishes, budget) exactly; over the horizon total spend
    falls as the budget tightens (an unconstrained run first).
    """
    totals = []
    for per_customer in (None, 2.0, 1.0, 0.5, 0.25):
        market = {"budget": {"enabled": per_customer is not None, "per_customer": per_customer or 1.0}}
        result = simulate_market(
            _config(baseline_config, policies=[STAGE_POLICY], market=market), customers=1000, horizon=60
        )
        rows = result.market
        if per_customer is not None:
            budget = per_customer * 1000
            np.testing.assert_allclose(
                rows["retention_spend"], np.minimum(rows["wished_spend"], budget), rtol=1e-9
            )
            assert (rows["retention_spend"] <= budget * (1 + 1e-12)).all()
        totals.append(rows["retention_spend"].sum())
    assert all(later <= earlier for earlier, later in zip(totals, totals[1:])), totals
    assert totals[-1] < totals[0]


def test_budget_applies_only_to_the_listed_policies(baseline_config):
    config = _config(
        baseline_config,
        policies=[STAGE_POLICY, _twin("stage_budget")],
        market={"budget": {"enabled": True, "per_customer": 0.5, "policies": ["stage_budget"]}},
    )
    result = simulate_market(config, customers=600, horizon=36)
    budget = result.market.groupby("policy")["budget"].max()
    assert np.isnan(budget["stage_based"]) and budget["stage_budget"] == 300.0
    free = simulate_market(_config(baseline_config, policies=[STAGE_POLICY]), customers=600, horizon=36)
    np.testing.assert_array_equal(result.clv["stage_based"], free.clv["stage_based"])
    comparison = result.comparison.set_index(["policy", "reference"]).loc[("stage_budget", "stage_based")]
    assert comparison["delta_spend"] < 0


# ----------------------------------------------------------------------------- service capacity


def test_ample_capacity_changes_nothing(baseline_config):
    """Complaints are simulated but never wait: (M2) is shifted by 0, every CLV equals the run without
    capacity.
    """
    policies = [STAGE_POLICY]
    ample = simulate_market(
        _config(
            baseline_config,
            policies=policies,
            market={"capacity": {"enabled": True, "servers_per_1000": 1000.0}},
        ),
        customers=800,
        horizon=48,
    )
    off = simulate_market(_config(baseline_config, policies=policies), customers=800, horizon=48)
    np.testing.assert_array_equal(ample.clv["stage_based"], off.clv["stage_based"])
    assert ample.market["complaints"].sum() > 100
    served = ample.market[ample.market["complaints_served"] > 0]
    assert (served["wait_mean"] == 0).all()


def test_a_capacity_shortfall_lengthens_waits_and_lowers_satisfaction(baseline_config):
    """Fewer servers (1, 2, 12 for 1,500 customers): longer mean waits (weighted by complaints
    served) and lower mean satisfaction (per live customer-period), and a lower CLV than with no
    queue. Waits within a market are correlated (a queue), so the unit is the replication: each of
    R = 4 independent replications gives one market-level mean per capacity, the capacities share
    the replication's customers and shocks, and the paired difference between two capacities must
    exceed 4 SE, SE = sd(differences over replications) / sqrt(R). The CLV difference is the
    comparison table's: > 4 SE of the paired per-customer difference, sd / sqrt(n).
    """
    replications = 4
    waits, satisfaction = [], []
    for servers in (0.5, 1.0, 8.0):
        config = _config(
            baseline_config,
            policies=[STAGE_POLICY, _twin("stage_queue")],
            market={"capacity": {"enabled": True, "servers_per_1000": servers, "policies": ["stage_queue"]}},
        )
        result = simulate_market(config, customers=1500, horizon=48, replications=replications)
        rows = result.market[result.market["policy"] == "stage_queue"]
        rows = rows.assign(
            wait_total=rows["wait_mean"].fillna(0) * rows["complaints_served"],
            satisfaction_total=rows["satisfaction_mean"] * rows["live"],
        )
        by_replication = rows.groupby("replication")[
            ["wait_total", "complaints_served", "satisfaction_total", "live"]
        ].sum()
        waits.append((by_replication["wait_total"] / by_replication["complaints_served"]).to_numpy())
        satisfaction.append((by_replication["satisfaction_total"] / by_replication["live"]).to_numpy())
        if servers == 0.5:
            row = result.comparison.set_index(["policy", "reference"]).loc[("stage_queue", "stage_based")]
            assert row["delta_clv"] + 4 * row["se"] < 0
    for fewer, more in ((0, 1), (1, 2)):
        for name, values, sign in (("wait", waits, 1), ("satisfaction", satisfaction, -1)):
            difference = sign * (values[fewer] - values[more])  # > 0 expected
            se = difference.std(ddof=1) / math.sqrt(replications)
            assert difference.mean() > 4 * se, (name, fewer, more, difference.mean(), se)


def test_buying_capacity_adds_servers(baseline_config):
    market = {
        "capacity": {
            "enabled": True,
            "servers_per_1000": 1.0,
            "spend_per_customer": 2.0,
            "server_cost": 500.0,
        }
    }
    result = simulate_market(
        _config(baseline_config, policies=[STAGE_POLICY], market=market), customers=1000, horizon=12
    )
    assert (result.market["servers"] == 1 + 4).all()  # 2,000 per period buys 4 servers at 500
    assert (result.market["market_spend"] == 2000.0).all()


# ----------------------------------------------------------------------------- word of mouth and acquisition


def _wom(baseline_config, influence, acquisition=None, policies=None):
    market = {"word_of_mouth": {"enabled": True}}
    if acquisition is not None:
        market["acquisition"] = {"enabled": True, **acquisition}
    return _config(
        baseline_config,
        policies=policies or [{"name": "uniform", "kind": "uniform", "spend": 2.0}],
        market=market,
        word_of_mouth={"influence": influence},
    )


def test_positive_word_of_mouth_raises_arrivals(baseline_config):
    """Doubling the positive influence (no negative word of mouth) brings more referred customers;
    with no positive influence nobody is referred.
    """
    joined = []
    for satisfied, highly in ((0.0, 0.0), (0.005, 0.03), (0.01, 0.06)):
        config = _wom(
            baseline_config, {"dissatisfied": 0.0, "satisfied": satisfied, "highly_satisfied": highly}
        )
        result = simulate_market(config, customers=1000, horizon=48)
        joined.append(result.market["joined_word_of_mouth"].sum())
    # joined counts are Poisson-like: SE of j2 - j1 = sqrt(j1 + j2) treating them as independent
    # (conservative: the two runs share customers and shocks, so the counts correlate positively)
    assert joined[0] == 0 and joined[1] > 0, joined
    assert joined[2] - joined[1] > 4 * math.sqrt(joined[1] + joined[2]), joined


def test_negative_word_of_mouth_deters_acquisition(baseline_config):
    """Acquisition arrivals come at the same times (the market's stream); deterring word of mouth
    cancels some of them, so fewer join (pathwise).
    """
    acquisition = {"prospects_per_1000": 20.0}
    neutral = simulate_market(
        _wom(baseline_config, {"dissatisfied": 0.0}, acquisition), customers=1000, horizon=48
    )
    negative = simulate_market(
        _wom(baseline_config, {"dissatisfied": -0.05}, acquisition), customers=1000, horizon=48
    )
    assert neutral.market["deterred"].sum() == 0
    deterred = negative.market["deterred"].sum()
    assert deterred > 0
    assert (
        negative.market["joined_acquisition"].sum() == neutral.market["joined_acquisition"].sum() - deterred
    )
    cohort = negative.customers[negative.customers["origin"] == "cohort"]
    assert (negative.summary["clv5"] < 0).all() and (cohort["clv5_observed"] <= 0).all()


def test_observed_clv5_is_the_value_of_the_customers_referred(baseline_config):
    """With word of mouth on, CLV5 is not the expected (C5) value but the referred customers' own
    CLVs, discounted from their acquisition to the referrer's; nothing else in a cohort customer's
    value changes (its trajectory is the core's), so mean own CLV = core CLV - core CLV5.
    """
    config = _wom(baseline_config, {"dissatisfied": 0.0, "satisfied": 0.02, "highly_satisfied": 0.08})
    result = simulate_market(config, customers=1500, horizon=60)
    customers = result.customers.set_index("customer")
    referred = customers[customers["origin"] == "word_of_mouth"]
    assert len(referred) > 20
    expected = np.zeros(len(customers))
    lag = referred["joined"].to_numpy() - customers.loc[referred["referred_by"], "joined"].to_numpy()
    np.add.at(
        expected, referred["referred_by"].to_numpy(), _delta(config) ** lag * referred["clv_own"].to_numpy()
    )
    np.testing.assert_allclose(customers["clv5_observed"], expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(
        customers["clv"], customers["clv_own"] + customers["clv5_observed"], rtol=1e-12, atol=1e-9
    )
    cohort = customers[customers["origin"] == "cohort"]
    summary = result.summary.iloc[0]
    assert summary["clv5"] == pytest.approx(cohort["clv5_observed"].mean(), rel=1e-12)
    np.testing.assert_allclose(result.clv["uniform"], cohort["clv"], rtol=0, atol=0)
    core = sim.project(config, customers=1500, replications=1, horizon=60).summary.iloc[0]
    assert cohort["clv_own"].mean() == pytest.approx(core["clv_mean"] - core["clv5"], rel=1e-9)


def test_acquisition_spend_raises_arrivals(baseline_config):
    """Arrival times are exponential gaps / rate on one stream: a higher rate gives more arrivals pathwise."""
    joined = []
    for spend in (0.0, 0.5, 2.0):
        market = {
            "acquisition": {
                "enabled": True,
                "prospects_per_1000": 5.0,
                "spend_per_customer": spend,
                "prospects_per_spend": 0.02,
            }
        }
        result = simulate_market(
            _config(baseline_config, policies=[STAGE_POLICY], market=market), customers=500, horizon=36
        )
        joined.append(result.market["joined_acquisition"].sum())
        # expected arrivals: rate x (horizon - 1) periods in which a prospect can still join; Poisson SE
        rate = 5.0 * 0.5 + spend * 500 * 0.02
        assert abs(joined[-1] - rate * 35) < 4 * math.sqrt(rate * 35)
    assert joined[0] < joined[1] < joined[2]


def test_firm_value_is_the_sum_of_customer_values(baseline_config):
    """The market's discounted net cash equals the customers' own CLVs discounted from their
    acquisition to period 0, less the discounted market-level spend.
    """
    market = {
        "acquisition": {"enabled": True, "prospects_per_1000": 10.0, "spend_per_customer": 0.3},
        "word_of_mouth": {"enabled": True},
        "capacity": {"enabled": True},
    }
    config = _config(baseline_config, policies=[STAGE_POLICY], market=market)
    result = simulate_market(config, customers=800, horizon=48)
    delta = _delta(config)
    customers = result.customers
    rows = result.market
    value = (customers["clv_own"] * delta ** customers["joined"]).sum() - (
        rows["market_spend"] * delta ** (rows["period"] + 1)
    ).sum()
    assert rows["cash_value"].sum() == pytest.approx(value, rel=1e-9)


# ----------------------------------------------------------------------------- competitor


def test_competitor_entry_raises_transactional_churn_more(baseline_config):
    """Before entry the two markets are identical; after it, the exit rate (exits per live
    customer-period) rises by a larger factor for transactional than for relationship customers:
    log(ratio_T) - log(ratio_R) > 4 SE, SE from Poisson counts, sqrt(sum of 1/exits) over the four rates.
    """
    config = _config(
        baseline_config,
        policies=[STAGE_POLICY, _twin("stage_competitor")],
        market={"competitor": {"enabled": True, "enters_at": 12, "policies": ["stage_competitor"]}},
    )
    result = simulate_market(config, customers=3000, horizon=60, event_log=True)
    rows = result.market.set_index(["policy", "period"])
    columns = [c for c in rows.columns if c not in ("competitor",)]
    before = rows[rows.index.get_level_values("period") < 12][columns]
    pd.testing.assert_frame_equal(before.loc["stage_based"], before.loc["stage_competitor"])
    after = rows[rows.index.get_level_values("period") >= 12].groupby("policy").sum()
    log_ratio = {}
    variance = {}
    for segment in ("relationship", "transactional"):
        rate = after[f"exits_{segment}"] / after[f"live_{segment}"]
        log_ratio[segment] = math.log(rate["stage_competitor"] / rate["stage_based"])
        variance[segment] = (1 / after[f"exits_{segment}"]).sum()  # the two Poisson exit counts of the ratio
    assert log_ratio["relationship"] > 4 * math.sqrt(variance["relationship"]), (log_ratio, variance)
    assert log_ratio["transactional"] - log_ratio["relationship"] > 4 * math.sqrt(sum(variance.values()))
    entered = result.events[result.events["event"] == "competitor_entered"]
    assert entered["policy"].tolist() == ["stage_competitor"] and entered["time"].tolist() == [12.0]


# ----------------------------------------------------------------------------- policy functions


def test_a_policy_function_equal_to_a_table_policy_gives_the_same_customers(baseline_config):
    spend = {0: 1.0, 1: 4.0, 2: 1.0, 3: 3.0}
    seen = []

    def stage_function(state: CustomerState) -> float:
        seen.append(state)
        return spend[state.stage]

    config = _config(baseline_config, policies=[STAGE_POLICY])
    result = simulate_market(config, customers=500, horizon=36, policy_functions={"stage_fn": stage_function})
    assert result.summary["policy"].tolist() == ["stage_based", "stage_fn"]
    np.testing.assert_array_equal(result.clv["stage_fn"], result.clv["stage_based"])
    first = seen[0]
    assert (first.period, first.tenure, first.stage, first.satisfaction) == (0, 0, 0, 0.5)
    assert all(state.tenure == state.period for state in seen)  # cohort only: tenure = calendar period


@pytest.mark.parametrize(
    "functions, error, fragment",
    [
        ({"none": lambda state: 0.0}, ValueError, "already a policy"),
        ({"bad name!": lambda state: 0.0}, ValueError, "bad name!"),
        ({"f": 3.0}, TypeError, "not callable"),
        ([lambda state: 0.0], TypeError, "mapping"),
    ],
)
def test_bad_policy_functions_fail_before_work(baseline_config, functions, error, fragment):
    with pytest.raises(error, match=fragment):
        simulate_market(baseline_config, customers=10, horizon=2, replications=1, policy_functions=functions)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), 2e12, 10**400, "lots", None])
def test_a_bad_spend_from_a_policy_function_names_it(baseline_config, value):
    with pytest.raises(
        ValueError,
        match=r"policy function 'f' returned .* for customer 0 in period 0; "
        r"a spend must be a finite number >= 0 and <= 1e\+12",
    ):
        simulate_market(
            baseline_config,
            customers=10,
            horizon=2,
            replications=1,
            policy_functions={"f": lambda state: value},
        )


def test_the_largest_spend_allowed_is_max_magnitude(baseline_config):
    result = simulate_market(
        baseline_config,
        customers=5,
        horizon=2,
        replications=1,
        policy_functions={"f": lambda state: sim.model.sections.MAX_MAGNITUDE},
    )
    rows = result.market.set_index(["policy", "period"])
    assert rows.loc[("f", 0), "retention_spend"] == 5 * 1e12  # all five customers live in period 0


def test_a_policy_function_that_raises_is_named_with_its_customer(baseline_config):
    def failing(state):
        if state.customer == 3 and state.period == 1:
            raise KeyError("no such tier")
        return 1.0

    with pytest.raises(
        RuntimeError,
        match=r"policy function 'failing' raised KeyError: 'no such tier' for customer 3 "
        r"in period 1 \(replication 0\)",
    ) as caught:
        simulate_market(
            baseline_config, customers=10, horizon=3, replications=1, policy_functions={"failing": failing}
        )
    causes = []  # the original error is chained (SimPy re-raises a process's error as a copy, chained too)
    error = caught.value
    while error is not None and len(causes) < 5:
        causes.append(error)
        error = error.__cause__
    assert any(isinstance(cause, KeyError) for cause in causes)


def test_bad_arguments_fail_with_clear_messages(baseline_config):
    with pytest.raises(ConfigError, match="population.customers = 0"):
        simulate_market(baseline_config, customers=0)
    with pytest.raises(ValueError, match=r"snapshot_periods: 13 must be a whole period in \[0, 12\]"):
        simulate_market(baseline_config, customers=10, horizon=12, snapshot_periods=[13])
    with pytest.raises(TypeError, match=r"got dict \(for a dict use sim.config_from_dict\(data\)\)"):
        simulate_market({"population": {}})
    with pytest.raises(TypeError, match="snapshot_periods = 2.5: must be a period or an iterable of periods"):
        simulate_market(baseline_config, customers=10, horizon=12, snapshot_periods=2.5)


def test_word_of_mouth_means_are_bounded_when_it_is_on(baseline_config):
    config = baseline_config.with_overrides(word_of_mouth={"people_told": {"satisfied": 1e9}})
    simulate_market(config, customers=5, horizon=2, replications=1)  # off: the core's expected CLV5 only
    # refused when the configuration is made (before any result folder), no longer at simulate_market
    with pytest.raises(
        ConfigError,
        match=r"word_of_mouth.people_told.satisfied: people_told.satisfied \* "
        r"\|influence.satisfied\| = 1e\+09 \* 0.005 = 5e\+06 prospects per talk "
        r"must be <= 1000",
    ):
        on = config.with_overrides(market={"word_of_mouth": {"enabled": True}})
        simulate_market(on, customers=5, horizon=2, replications=1)


def test_a_single_snapshot_period_may_be_an_int(baseline_config):
    result = simulate_market(baseline_config, customers=10, horizon=12, replications=1, snapshot_periods=5)
    assert result.snapshot_periods == [0, 5, 12]
    assert (result.snapshot(5)["tenure"] == 5).all()


@pytest.mark.parametrize(
    "data, fragments",
    [
        ({"engine": "agent"}, ["engine = 'agent'", "'core'", "'abm'"]),
        (
            {"market": {"budget": {"stage_priority": ["decline", "decline", "formation", "stability"]}}},
            ["market.budget.stage_priority", "exactly once"],
        ),
        (
            {"market": {"competitor": {"enters_at": 30, "leaves_at": 20}}},
            ["market.competitor", "leaves_at (20) must be > enters_at (30)"],
        ),
        (
            {"market": {"capacity": {"servers_per_1000": -1.0}}},
            ["market.capacity.servers_per_1000 = -1.0", ">= 0"],
        ),
        (
            {"market": {"capacity": {"complaint_probability": 1.5}}},
            ["market.capacity.complaint_probability = 1.5", "probability"],
        ),
        (
            {"market": {"word_of_mouth": {"enabeld": True}}},
            ["market.word_of_mouth.enabeld", "did you mean 'enabled'"],
        ),
        (
            {"market": {"budget": {"policies": ["nope"]}}},
            ["market.budget.policies", "no policy named ['nope']"],
        ),
        ({"market": {"timing": "continuous"}}, ["market.timing = 'continuous'", "'period'", "'event'"]),
        ({"market": {"purchase_rate": {"stability": 0.0}}}, ["market.purchase_rate", "must be > 0"]),
        # upper bounds: each purchase and each prospect is a simulated event (1e9 would never finish)
        (
            {
                "market": {
                    "purchase_rate": {"exploration": 1.0, "formation": 2.0, "stability": 1e9, "decline": 1.0}
                }
            },
            [
                "market.purchase_rate",
                "must be <= 1000 purchases per period in every stage",
                "got stability = 1e+09",
            ],
        ),
        (
            {"market": {"acquisition": {"prospects_per_1000": 1e9}}},
            [
                "market.acquisition",
                "= 1e+06 prospects per period per cohort customer must be <= 1",
                "prospects_per_1000 = 1e+09",
            ],
        ),
        (
            {"market": {"acquisition": {"spend_per_customer": 1e6, "prospects_per_spend": 0.01}}},
            [
                "market.acquisition",
                "= 10000 prospects per period per cohort customer must be <= 1",
                "spend_per_customer = 1e+06",
            ],
        ),
    ],
)
def test_bad_market_config_is_rejected(data, fragments):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))


# ----------------------------------------------------------------------------- numerical guards


def _one_market(config, customers):
    """A bare market of the first policy of ``config`` with ``customers`` cohort agents added."""
    from sim.engines.market.market import _Market, _Setup
    from sim.engines.market.state import ORIGIN_COHORT
    from sim.tables.partials import ChunkPartials

    horizon = config.run.horizon
    setup = _Setup(config, config.policy_names, {}, False, frozenset())
    market = _Market(setup, 0, 0, ChunkPartials(1, len(config.policy_names), horizon, customers))
    for _ in range(customers):
        market._add_agent(ORIGIN_COHORT, -1, 0)
    return market


def test_the_satisfaction_bin_is_one_rule_on_scalars_and_arrays():
    """Every engine bins satisfaction with sim.tables.partials.satisfaction_bin: a valid index for
    any number (clamped into [0, 1]), -1 (no bin) for NaN; compiled on scalars (the core, the
    agent engine) and on arrays through .py_func (the reference) with the same answers.
    """
    from sim.tables.partials import satisfaction_bin

    cases = {
        0.0: 0,
        0.05: 0,
        0.5: 5,
        0.95: 9,
        0.999: 9,
        1.0: 9,
        -0.5: 0,
        1.5: 9,
        -np.inf: 0,
        np.inf: 9,
        np.nan: -1,
    }
    for satisfaction, expected in cases.items():
        assert satisfaction_bin(satisfaction) == expected, satisfaction
    values = np.array(list(cases))
    np.testing.assert_array_equal(satisfaction_bin.py_func(values), list(cases.values()))
    grid = np.linspace(0.0, 1.0, 1001)  # the rule on [0, 1]: equal-width bins, 1.0 in the last
    assert [satisfaction_bin(value) for value in grid] == [min(int(value * 10), 9) for value in grid]
    np.testing.assert_array_equal(satisfaction_bin.py_func(grid), [min(int(value * 10), 9) for value in grid])


def test_a_nan_satisfaction_books_no_satisfaction_bin():
    """Every engine counts a customer-period with sim.tables.partials.add_satisfaction: a NaN
    satisfaction (int(NaN) is undefined, the write unchecked) books nothing, a finite one exactly
    one bin (and its exit column when the move is an exit).
    """
    from sim.tables.partials import SATISFACTION_BINS, add_satisfaction

    bins = np.zeros((1, 1, 4, SATISFACTION_BINS, 2), dtype=np.int64)
    add_satisfaction(bins, 0, 0, 2, np.nan, True)
    assert bins.sum() == 0
    add_satisfaction(bins, 0, 0, 2, 0.55, True)
    add_satisfaction(bins, 0, 0, 2, 0.55, False)
    assert bins[0, 0, 2, 5, 0] == 2 and bins[0, 0, 2, 5, 1] == 1 and bins.sum() == 3


def test_a_nan_satisfaction_is_a_named_error(baseline_config, monkeypatch):
    """A NaN reaching a customer's satisfaction stops the run with NonFiniteResultError naming
    the customer, period, policy and replication (here injected through customer 3's expectation).
    """
    from sim.engines.market import market as abm
    from sim.exceptions import NonFiniteResultError

    real = abm._init_agent

    def poisoned(agent, seed, replication, origin, referrer, period, agents, *rest):
        real(agent, seed, replication, origin, referrer, period, agents, *rest)
        if agent == 3:
            agents["expectation"][agent] = np.nan

    monkeypatch.setattr(abm, "_init_agent", poisoned)
    first = baseline_config.policy_names[0]
    with pytest.raises(
        NonFiniteResultError,
        match=rf"satisfaction of customer 3 is nan after period 0 "
        rf"\(policy '{first}', replication 0\)",
    ):
        simulate_market(baseline_config, customers=10, horizon=3, replications=1)


@pytest.mark.parametrize("mean, n", [(800.0, 400), (5000.0, 200)])
def test_poisson_draws_have_the_right_mean_for_large_means(mean, n):
    """exp(-mean) underflows above a mean of ~745: the draw is a sum of Poisson draws of means <= 500.
    The mean of n draws is within 4 SE of the Poisson mean, SE = sqrt(mean / n); so is the variance
    (SE of a sample variance of Poisson draws ~ mean * sqrt(2 / n) for a large mean).
    """
    from sim.engines.market.budget import poisson_count

    uniforms = np.random.default_rng(20240611).random(n * 20)
    position = iter(uniforms)
    draws = np.array([poisson_count(mean, lambda: next(position)) for _ in range(n)], dtype=float)
    assert abs(draws.mean() - mean) < 4 * math.sqrt(mean / n), draws.mean()
    assert abs(draws.var(ddof=1) - mean) < 4 * mean * math.sqrt(2 / n), draws.var(ddof=1)


def test_poisson_draws_for_small_means_are_the_inverse_distribution_function():
    """Up to a mean of 500 a draw is one inversion with one uniform (the draws of the runs above
    are unchanged): the count equals scipy's Poisson quantile of that uniform. Larger means use
    ceil(mean / 500) uniforms.
    """
    from scipy.stats import poisson

    from sim.engines.market.budget import poisson_count

    def constant(value, used):
        def draw():
            used.append(value)
            return value

        return draw

    uniforms = np.random.default_rng(7).random(300)
    for mean in (0.0, 0.05, 3.0, 40.0, 500.0):
        for u in uniforms:
            used = []
            count = poisson_count(mean, constant(u, used))
            assert len(used) == 1
            assert count == poisson.ppf(u, mean), (mean, u, count)
    for mean, parts in ((500.5, 2), (800.0, 2), (5000.0, 10)):
        used = []
        poisson_count(mean, constant(0.5, used))
        assert len(used) == parts


def test_acquisition_stops_when_the_market_is_full(baseline_config):
    """At most max_customers customers (cohort 100 + 10): the 11th period's worth of arrivals
    never comes (the arrival process stops once full), so nobody is turned away.
    """
    market = {"max_customers": 110, "acquisition": {"enabled": True, "prospects_per_1000": 1000.0}}
    result = simulate_market(
        _config(baseline_config, policies=[STAGE_POLICY], market=market), customers=100, horizon=24
    )
    assert result.market["joined_acquisition"].sum() == 10
    assert result.market["turned_away"].sum() == 0
    assert len(result.customers) == 110


# ----------------------------------------------------------------------------- snapshots, event log,
# reproducibility


def test_snapshots_match_the_stage_table_and_feed_project_from(engines, baseline_config):
    agents, core = engines
    zero = agents.snapshot(0)
    assert list(zero.columns) == list(SNAPSHOT_COLUMNS)
    assert len(zero) == 1500 and (zero["stage"] == 0).all() and (zero["tenure"] == 0).all()
    assert (zero["satisfaction"] == 0.5).all() and (zero["previous_satisfaction"] == 0.5).all()
    for t in (12, 36, 60):
        counts = np.zeros(5)
        for replication in (0, 1):
            snapshot = agents.snapshot(t, policy="uniform", replication=replication)
            assert (snapshot["tenure"] == t).all()
            counts[:4] += np.bincount(snapshot["stage"], minlength=4)
        shares = agents.stages[(agents.stages["policy"] == "uniform") & (agents.stages["period"] == t)][
            "share"
        ].to_numpy()
        np.testing.assert_array_equal(counts[:4] / 3000, shares[:4])
    with pytest.raises(KeyError, match=r"recorded periods: \[0, 12, 24, 36, 48, 60\]"):
        agents.snapshot(5)
    # the snapshot at period 0 is what the core starts from: projecting it (no acquisition cost,
    # the same customer streams) gives the core's CLVs plus the acquisition cost
    projected = sim.project_from(zero, baseline_config, horizon=60, replications=1)
    cost = np.where(
        zero["segment"] == 0,
        baseline_config.economics.acquisition_cost.relationship,
        baseline_config.economics.acquisition_cost.transactional,
    )
    for name in baseline_config.policy_names:
        np.testing.assert_allclose(projected.clv[name], core.clv[name][:1500] + cost, rtol=0, atol=1e-9)


def _all_interactions(baseline_config):
    market = {
        "budget": {"enabled": True, "per_customer": 1.0},
        "capacity": {"enabled": True},
        "word_of_mouth": {"enabled": True},
        "acquisition": {"enabled": True, "prospects_per_1000": 10.0},
        "competitor": {"enabled": True, "enters_at": 6, "leaves_at": 18},
        "timing": "event",
        "event_log": True,
    }
    return _config(baseline_config, market=market)


def test_same_seed_same_market_other_seed_other_market(baseline_config):
    config = _all_interactions(baseline_config)
    first = simulate_market(config, customers=300, horizon=24, seed=5)
    again = simulate_market(config, customers=300, horizon=24, seed=5)
    other = simulate_market(config, customers=300, horizon=24, seed=6)
    for name in first.TABLES:
        pd.testing.assert_frame_equal(first.table(name), again.table(name), check_exact=True)
    assert set(first.snapshots) == set(again.snapshots)
    for key, snapshot in first.snapshots.items():
        for column, values in snapshot.items():
            np.testing.assert_array_equal(values, again.snapshots[key][column])
    assert not first.customers["clv"].equals(other.customers["clv"])


def test_event_log_is_consistent_with_the_customers(baseline_config):
    result = simulate_market(_all_interactions(baseline_config), customers=400, horizon=36)
    events, customers = result.events, result.customers
    assert list(events.columns) == [
        "policy",
        "replication",
        "time",
        "customer",
        "event",
        "stage",
        "satisfaction",
    ]
    for name in result.summary["policy"]:
        log = events[events["policy"] == name]
        people = customers[customers["policy"] == name]
        assert (np.diff(log["time"].to_numpy()) >= 0).all()
        assert (log["event"] == "acquired").sum() == len(people)
        assert (log["event"] == "ended").sum() == (people["ended"] >= 0).sum()
        code = {stage: index for index, stage in enumerate(sim.STAGES + ("ended",))}
        moves = log[log["event"].isin(["advanced", "declined", "won_back", "ended"])]
        for customer, path in moves.groupby("customer")["stage"]:
            stages = [0] + [code[stage] for stage in path]
            assert set(zip(stages, stages[1:])) <= ALLOWED_MOVES, (customer, stages)
    expected = {
        "complaint",
        "complaint_served",
        "talked",
        "purchase",
        "competitor_entered",
        "competitor_left",
    }
    assert expected <= set(events["event"])


def test_cli_runs_the_agent_engine(tmp_path, capsys):
    from sim.cli.main import main

    out = tmp_path / "competitor"
    status = main(
        [
            "run",
            str(REPO / "experiments" / "abm_competitor.toml"),
            "--customers",
            "300",
            "--horizon",
            "30",
            "--replications",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert status == 0
    for file in (
        "summary.csv",
        "stages.csv",
        "market.csv",
        "customers.csv",
        "events.csv",
        "overview.png",
        "market.png",
    ):
        assert (out / file).is_file(), file
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "abm" and manifest["interactions"] == ["competitor"]
    market = pd.read_csv(out / "market.csv")
    assert market["competitor"].any() and set(market["policy"]) == {"stage_based", "stage_competitor"}
    baseline_out = tmp_path / "baseline"
    assert (
        main(
            [
                "run",
                str(REPO / "experiments" / "baseline.toml"),
                "--engine",
                "abm",
                "--customers",
                "200",
                "--horizon",
                "12",
                "--replications",
                "1",
                "--out",
                str(baseline_out),
                "--no-progress",
                "--no-figure",
            ]
        )
        == 0
    )
    assert json.loads((baseline_out / "manifest.json").read_text())["engine"] == "abm"
    assert "agent engine" in capsys.readouterr().out


@pytest.mark.parametrize("experiment", ["abm_budget", "abm_word_of_mouth", "abm_capacity", "abm_competitor"])
def test_experiments_load_and_switch_their_interaction_on(experiment):
    config = sim.load_config(REPO / "experiments" / f"{experiment}.toml")
    assert config.engine == "abm"
    section = experiment.removeprefix("abm_")
    assert section in config.market.interactions
    listed = getattr(config.market, section).policies
    assert listed and len(listed) < len(config.policies)  # a with/without comparison in one run


# ----------------------------------------------------------------------------- bad-input probe: sizes before
# work


def test_agent_engine_sizes_are_checked_before_any_allocation(baseline_config, monkeypatch):
    """The cohort must fit market.max_customers on the agent engine, whatever config.engine
    says (sim run --engine abm on a core config), and a run that would need more memory than
    the machine has is refused with an estimate, before any array is allocated.
    """
    import sim.engines.market.engine as abm

    config = baseline_config.with_overrides(market={"max_customers": 100})  # a core config: allowed
    with pytest.raises(
        ConfigError,
        match=r"population.customers = 200: must be <= market.max_customers = 100 "
        r"on the agent engine",
    ):
        simulate_market(config, customers=200, horizon=2, replications=1)
    monkeypatch.setattr(abm, "_physical_memory", lambda: 2**20)  # a 1 MiB machine
    with pytest.raises(
        ConfigError,
        match=r"population.customers = 5000: the agent engine needs about .* GiB for "
        r"5,000 customers x 1 replications x 3 policies, more than this machine's",
    ):
        simulate_market(baseline_config, customers=5000, horizon=2, replications=1)


def test_switched_off_capacity_with_extreme_costs_does_not_overflow(baseline_config):
    config = baseline_config.with_overrides(
        market={"capacity": {"spend_per_customer": 1e12, "server_cost": 1e-300}}
    )
    result = simulate_market(config, customers=20, horizon=2, replications=1)  # capacity off: no server count
    assert (result.market["servers"] == 0).all()
    with pytest.raises(
        ConfigError, match=r"market.capacity: .* = inf servers must be <= market.max_customers"
    ):
        config.with_overrides(
            market={"capacity": {"enabled": True, "spend_per_customer": 1e12, "server_cost": 1e-300}}
        )


def test_cli_engine_abm_on_a_too_large_core_config_is_one_line(tmp_path, capsys):
    from sim.cli.main import main

    path = tmp_path / "big.toml"
    path.write_text('name = "big"\n[market]\nmax_customers = 50\n[run]\nhorizon = 2\nreplications = 1\n')
    status = main(
        [
            "run",
            str(path),
            "--engine",
            "abm",
            "--customers",
            "100",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
            "--no-figure",
        ]
    )
    assert status == 2
    error = capsys.readouterr().err
    assert (
        "population.customers = 100: must be <= market.max_customers = 50" in error
        and "Traceback" not in error
    )
    assert not (tmp_path / "o").exists()  # refused before the result folder is made


def test_cli_engine_core_on_an_agent_file_with_interactions_is_refused(tmp_path, capsys):
    """--engine core on a file that switches market interactions on would silently ignore
    them: refused before any work, naming the switches; a [sweep] under --engine abm likewise.
    """
    from sim.cli.main import main

    status = main(
        [
            "run",
            str(REPO / "experiments" / "abm_competitor.toml"),
            "--engine",
            "core",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
            "--no-figure",
        ]
    )
    error = capsys.readouterr().err
    assert (
        status == 2
        and "market.competitor.enabled = true" in error
        and "--engine core would ignore them" in error
    )
    assert "Traceback" not in error and not (tmp_path / "o").exists()
    status = main(
        [
            "run",
            str(REPO / "experiments" / "sweep_discount.toml"),
            "--engine",
            "abm",
            "--out",
            str(tmp_path / "s"),
            "--no-progress",
            "--no-figure",
        ]
    )
    error = capsys.readouterr().err
    assert (
        status == 2
        and "the agent engine does not run [sweep] grids" in error
        and not (tmp_path / "s").exists()
    )
