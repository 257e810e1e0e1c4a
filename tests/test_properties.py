"""Property-based tests (hypothesis): every generated config either runs — with no NaN or
inf anywhere and every invariant of the model holding — or fails before any work with a
ConfigError that names the offending field.

Configs are tiny (at most 64 customers, 24 periods, 1 replication, 4 policies) so that
hundreds of examples take seconds: the numba kernels are compiled once (no example changes
a dtype). Each example's stage paths are traced, and every customer is also simulated on
its own to get its CLV parts. Values are drawn with a bias towards the extremes a config allows: zero and
certain probabilities, zero discount, zero and huge spend (up to ``MAX_MAGNITUDE`` and, with
a segment multiplier, its square), ``wallet_sigma`` 0 or 4, one customer, one period,
everyone in one segment, Beta churn propensities near 0 and 1.

Profiles (tests/conftest.py): ``ci`` (default) runs a fixed set of 300 examples per test
(derandomised, reproducible); ``long`` searches randomly with 5,000:

    HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py
"""

import copy
import math
import warnings

import numba
import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from sim.engines.core import new_customers, run_customers, simulate_chunk
from sim.exceptions import ConfigError
from sim.model.arrays import model_arrays
from sim.model.config import config_from_dict
from sim.model.names import STAGES
from sim.model.policies import policy_tables
from sim.model.sections import MAX_MAGNITUDE, MIN_CARE_SCALE
from sim.tables.partials import M_ACQUISITION, M_CLV, M_CLV1, M_SPEND, ChunkPartials
from sim.tables.result import NAN_WHEN_EMPTY, ProjectionResult

M = MAX_MAGNITUDE
TINY = 5e-324
EPS = np.finfo(float).eps
ENDED = 4
# every one-period move (stage codes 0..3, 4 = ended): stay, advance, exit, win-back; no skipping
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
# with Beta churn (M8) any live relationship may also end outright
ALLOWED_WITH_CHURN = ALLOWED_MOVES | {(1, 4), (2, 4)}
# money columns of the six CLV parts, retention spend and acquisition cost (sim.engines.core)
PART_COLUMNS = [M_CLV1 + part for part in range(6)] + [M_SPEND, M_ACQUISITION]


@pytest.fixture(autouse=True, scope="module")
def one_numba_thread():
    """Tiny runs on one thread: a parallel kernel launch costs milliseconds of thread wake-up
    (10x the work of a 64-customer run); thread count never changes results (test_core).
    """
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


# ----------------------------------------------------------------------------- strategies


def _values(lo, hi, edges=(), typical=None, exclude_min=False):
    """Floats in [lo, hi] (or (lo, hi]), biased towards the edges and a typical range."""
    parts = [st.sampled_from(sorted({lo, hi, *edges} - ({lo} if exclude_min else set())))]
    parts.append(st.floats(lo, hi, exclude_min=exclude_min))
    if typical is not None:
        parts.append(st.floats(max(lo, typical[0]), min(hi, typical[1]), exclude_min=exclude_min))
    return st.one_of(*parts)


probability = _values(0.0, 1.0, edges=(TINY, 0.5, 1.0 - 2.0**-53))
amount = _values(0.0, M, edges=(TINY, 1.0, 4.0), typical=(0.0, 50.0))  # money, counts, multipliers
positive = _values(0.0, M, edges=(TINY, 1.0), typical=(0.0, 50.0), exclude_min=True)
real = _values(-M, M, edges=(0.0, -1.0, 1.0), typical=(-2.0, 2.0))


def _stage_table(draw, values):
    return {stage: draw(values) for stage in STAGES}


def _competing(draw):
    """Two probabilities of competing moves, with a sum of at most 1 (after rounding)."""
    first = draw(probability)
    second = draw(probability) * (1.0 - first)
    while first + second > 1.0:
        second = math.nextafter(second, 0.0)
    return first, second


def _policy(draw, name):
    kind = draw(
        st.sampled_from(["none", "uniform", "stage", "table", "value", "max_satisfaction", "reactive"])
    )
    policy = {"name": name, "kind": kind}
    if kind in ("uniform", "reactive"):
        policy["spend"] = draw(amount)
    if kind == "reactive":
        policy["satisfaction_drop"] = draw(_values(0.0, 1.0, edges=(TINY,), exclude_min=True))
    if kind == "stage":
        policy["spend"] = _stage_table(draw, amount)
        policy["segment_multiplier"] = {"relationship": draw(amount), "transactional": draw(amount)}
    if kind == "table":
        policy["relationship"] = _stage_table(draw, amount)
        policy["transactional"] = _stage_table(draw, amount)
    if kind == "value":
        policy["tier_spend"] = {tier: draw(amount) for tier in "ABC"}
        policy["stage_multiplier"] = _stage_table(draw, amount)
    return policy


@st.composite
def configs(draw):
    """A valid experiment (as TOML-like data) with tiny sizes and extreme-but-legal values."""
    defection = draw(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True))
    affection = draw(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True))
    assume(defection != affection)
    defection, affection = sorted((defection, affection))
    low, high = sorted((draw(probability), draw(probability)))
    advance_exploration, exit_exploration = _competing(draw)
    advance_formation, exit_formation = _competing(draw)
    churn, win_back = _competing(draw)
    population = {
        "customers": draw(st.integers(1, 64)),
        "relationship_share": draw(probability),  # 0 or 1: everyone in one segment
        "wallet_median": draw(positive),
        "wallet_sigma": draw(_values(0.0, 4.0, typical=(0.0, 2.0))),
    }
    if draw(st.booleans()):
        shape = _values(0.0, 1e6, edges=(TINY, 1e-3, 1.0), typical=(0.1, 10.0), exclude_min=True)
        population["churn_propensity"] = {"alpha": draw(shape), "beta": draw(shape)}
    return {
        "name": "property",
        "population": population,
        "dynamics": {
            "base_performance": {"relationship": draw(amount), "transactional": draw(amount)},
            "performance_fit_sd": draw(amount),
            "performance_noise": draw(amount),
            "initial_expectation": draw(real),
            "expectation_adaptation": draw(probability),
            "expectation_anchor": draw(probability),
            "satisfaction_memory": draw(probability),
            "satisfaction_scale": draw(positive),
            "satisfaction_tolerance": draw(amount),
            "care_gain": draw(amount),
            "care_scale": draw(_values(MIN_CARE_SCALE, M, edges=(1.0, 4.0), typical=(MIN_CARE_SCALE, 50.0))),
            "annoyance": draw(amount),
            "stage_effectiveness": _stage_table(draw, amount),
        },
        "loyalty": {
            "defection_threshold": defection,
            "affection_threshold": affection,
            "indifference_low": low,
            "indifference_high": high,
        },
        "transitions": {
            "advance": {"exploration": advance_exploration, "formation": advance_formation},
            "exit": {
                "exploration": exit_exploration,
                "formation": exit_formation,
                "stability": draw(probability),
            },
            "churn": churn,
            "win_back": win_back,
            "loyalty_effect_advance": draw(amount),
            "loyalty_effect_exit": draw(amount),
            "exit_odds": {"relationship": draw(amount), "transactional": draw(amount)},
            "long_term_periods": draw(st.one_of(st.integers(1, 30), st.sampled_from([1, 1_000_000]))),
        },
        "word_of_mouth": {
            "people_told": {kind: draw(amount) for kind in ("dissatisfied", "satisfied", "highly_satisfied")},
            "influence": {kind: draw(real) for kind in ("dissatisfied", "satisfied", "highly_satisfied")},
            "talk_probability": draw(probability),
            "referral_value": draw(amount),
        },
        "economics": {
            "period_months": draw(_values(0.0, 12.0, edges=(TINY, 1.0), exclude_min=True)),
            "annual_discount_rate": draw(probability),  # 0: no discounting
            "margin": _stage_table(draw, probability),
            "share_of_wallet": _stage_table(draw, probability),
            "share_of_wallet_growth": draw(amount),
            "tenure_scale": draw(positive),
            "cross_sell_share": _stage_table(draw, probability),
            "cross_sell_margin": draw(probability),
            "cost_to_serve": draw(amount),
            "cost_to_serve_floor": draw(probability),
            "price_premium": {"relationship": draw(amount), "transactional": draw(amount)},
            "acquisition_cost": {"relationship": draw(amount), "transactional": draw(amount)},
        },
        "policies": [_policy(draw, f"p{index}") for index in range(draw(st.integers(1, 4)))],
        "run": {
            "horizon": draw(st.integers(1, 24)),
            "replications": 1,
            "seed": draw(st.integers(0, 2**63 - 1)),
        },
    }


# ----------------------------------------------------------------------------- invariants


def _patterns_from_paths(paths, long_term):
    """Lifecycle pattern 0..3 (I..IV) of each traced path (docs/model.md §1.3), from the stages alone."""
    live = np.where(paths <= 2, paths, -1)
    highest = live.max(axis=-1)
    ended = (paths == ENDED).any(axis=-1)
    end_period = np.where(ended, (paths != ENDED).sum(axis=-1), -1)
    left_early = ended & (end_period < long_term)
    return np.where(highest < 2, highest, np.where(left_early, 2, 3))


def _in_unit(values, slack=0.0):
    values = np.asarray(values, dtype=float)
    return bool(((values >= -slack) & (values <= 1.0 + slack)).all())


def check_run(config):
    """Run ``config`` (one replication) with the core, tracing every customer's stages and
    simulating every customer also on its own, and check every invariant; asserts.
    """
    n, horizon = config.population.customers, config.run.horizon
    names = config.policy_names
    churn_on = config.population.churn_propensity is not None
    arrays, tables = model_arrays(config), policy_tables(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow or invalid value anywhere
        partials = simulate_chunk(arrays, tables, config.run.seed, 0, 0, n, horizon, trace_customers=n)
        result = ProjectionResult.from_partials(config, [partials])  # raises on any unexpected NaN/inf
    attributes, start = new_customers(arrays, config.run.seed, 0, 0, n)

    # 1. nothing non-finite in the raw partials or the per-customer CLVs
    for field in ChunkPartials.FIELDS + ("clv",):
        assert np.isfinite(getattr(partials, field)).all(), field

    # 2. stage order: start in exploration, every one-period move allowed (no skipping)
    paths = partials.stage_trace.astype(np.int64)  # [policy, customer, period 0..H]
    assert (paths[:, :, 0] == 0).all()
    moves = set(zip(paths[:, :, :-1].ravel().tolist(), paths[:, :, 1:].ravel().tolist()))
    allowed = ALLOWED_WITH_CHURN if churn_on else ALLOWED_MOVES
    assert moves <= allowed, moves - allowed

    # 3. the aggregates are the paths, counted: occupancy, endings, patterns
    occupancy = partials.occupancy.sum(axis=0)
    counted = np.stack([(paths == stage).sum(axis=1) for stage in range(4)], axis=-1)
    np.testing.assert_array_equal(occupancy, counted)
    np.testing.assert_array_equal(
        np.cumsum(partials.ended_at.sum(axis=0), axis=1), (paths == ENDED).sum(axis=1)
    )
    patterns = _patterns_from_paths(paths, config.transitions.long_term_periods)
    pattern_count = partials.pattern_count.sum(axis=0)
    np.testing.assert_array_equal(
        pattern_count, np.stack([(patterns == k).sum(axis=1) for k in range(4)], axis=-1)
    )
    stage_periods = partials.stage_periods.sum(axis=0)
    np.testing.assert_array_equal(stage_periods, counted[:, :horizon, :].sum(axis=1))
    np.testing.assert_array_equal(partials.satisfaction_bins.sum(axis=0)[..., 0].sum(axis=-1), stage_periods)

    # 4. per customer: each customer simulated alone (its own streams, so the same numbers)
    #    gives its CLV parts; they sum to its CLV exactly (the kernel adds them in that order)
    #    and its CLV is bitwise the one of the whole-cohort run
    parts = np.empty((len(PART_COLUMNS), len(names), n))
    for customer in range(n):
        alone = run_customers(
            arrays,
            tables,
            config.run.seed,
            0,
            np.array([customer]),
            attributes[customer : customer + 1],
            start[customer : customer + 1],
            horizon,
        )
        row = alone.money[0]  # [policy, column]: this customer's present values
        parts[:, :, customer] = row[:, PART_COLUMNS].T
        total = (
            row[:, M_CLV1]
            + row[:, M_CLV1 + 1]
            + row[:, M_CLV1 + 2]
            + row[:, M_CLV1 + 3]
            + row[:, M_CLV1 + 4]
            + row[:, M_CLV1 + 5]
            - row[:, M_SPEND]
            - row[:, M_ACQUISITION]
        )
        np.testing.assert_array_equal(total, row[:, M_CLV])
        np.testing.assert_array_equal(alone.clv[:, 0], partials.clv[:, customer])
    assert (parts[6] >= 0.0).all() and (parts[7] >= 0.0).all()  # spend and acquisition cost
    magnitude = np.abs(parts).sum(axis=0) + 1e-300  # [policy, customer]; floor: subnormal noise
    core_clv = partials.clv

    # 5. summary: the parts of the mean sum to the mean; spend >= 0; ordered quantiles
    summary = result.summary.set_index("policy").loc[list(names)]
    mean_parts = (
        summary[[f"clv{i}" for i in range(1, 7)]].sum(axis=1)
        - summary["retention_spend"]
        - summary["acquisition_cost"]
    )
    tolerance = 1e-12 * magnitude.sum(axis=1) / n
    assert (np.abs(mean_parts.to_numpy() - summary["clv_mean"].to_numpy()) <= tolerance).all()
    assert (np.abs(core_clv.mean(axis=1) - summary["clv_mean"].to_numpy()) <= tolerance).all()
    assert (summary["retention_spend"] >= 0.0).all() and (summary["acquisition_cost"] >= 0.0).all()
    quantiles = summary[["clv_p05", "clv_p25", "clv_p50", "clv_p75", "clv_p95"]].to_numpy()
    assert (np.diff(quantiles, axis=1) >= 0.0).all()
    assert (summary["clv_se"] >= 0.0).all() and (summary["clv_sd"] >= 0.0).all()
    assert _in_unit(summary["satisfaction_mean"], slack=4 * EPS)

    # 6. shares: the five states sum to 1 in every period; patterns sum to 1; all in [0, 1]
    stages = result.stages
    assert _in_unit(stages["share"])
    np.testing.assert_allclose(stages.groupby(["policy", "period"])["share"].sum(), 1.0, rtol=0, atol=1e-12)
    ended = stages[stages["stage"] == "ended"].pivot(index="period", columns="policy", values="share")
    assert (ended.diff().dropna() >= 0.0).all().all()
    np.testing.assert_allclose(result.patterns.groupby("policy")["share"].sum(), 1.0, rtol=0, atol=1e-12)
    assert (result.patterns.groupby("policy")["customers"].sum() == n).all()

    # 7. means per stage and per period: satisfaction and loyalty in [0, 1], spend >= 0,
    #    NaN exactly in the empty groups documented in NAN_WHEN_EMPTY
    by_stage = result.by_stage
    np.testing.assert_array_equal(by_stage["customer_periods"].to_numpy(), stage_periods.reshape(-1))
    visited = by_stage["customer_periods"] > 0
    for column in NAN_WHEN_EMPTY["by_stage"]:
        assert by_stage.loc[visited, column].notna().all() and by_stage.loc[~visited, column].isna().all()
    for column in ("satisfaction_mean", "loyalty_mean"):
        assert _in_unit(by_stage.loc[visited, column], slack=4 * EPS)
    assert (by_stage.loc[visited, "spend_mean"] >= 0.0).all()
    trajectory = result.trajectory
    active = trajectory["active_share"] > 0
    assert _in_unit(trajectory["active_share"])
    assert trajectory.loc[active, list(NAN_WHEN_EMPTY["trajectory"])].notna().all().all()
    assert trajectory.loc[~active, list(NAN_WHEN_EMPTY["trajectory"])].isna().all().all()
    for column in ("satisfaction_mean", "loyalty_mean"):
        assert _in_unit(trajectory.loc[active, column], slack=4 * EPS)
    assert (trajectory.loc[active, "spend_mean"] >= 0.0).all()
    retention = result.satisfaction_retention
    observed = retention["customer_periods"] > 0
    assert (
        _in_unit(retention.loc[observed, "retention"]) and retention.loc[~observed, "retention"].isna().all()
    )

    # 8. value concentration and paired comparisons
    value = result.value_concentration
    np.testing.assert_allclose(value.groupby("policy")["customer_share"].sum(), 1.0, rtol=0, atol=1e-12)
    assert _in_unit(value["negative_share"].dropna())
    comparison = result.comparison
    money = partials.money.sum(axis=0)
    assert np.isfinite(money[:, M_CLV]).all()
    if len(names) == 1:  # one policy: nothing to compare (the table then has no columns at all)
        assert len(comparison) == 0
        return
    assert _in_unit(comparison["p_better"]) and (comparison["se"] >= 0.0).all()
    means = summary["clv_mean"]
    for row in comparison.itertuples():
        i, j = names.index(row.policy), names.index(row.reference)
        scale = (magnitude[i].sum() + magnitude[j].sum()) / n
        assert abs(row.delta_clv - (means[row.policy] - means[row.reference])) <= 1e-12 * scale
        assert row.ci_low <= row.delta_clv <= row.ci_high
        assert row.delta_spend == (money[i, M_SPEND] - money[j, M_SPEND]) / n


# ----------------------------------------------------------------------------- properties


@given(data=configs())
def test_generated_configs_validate_and_run_with_every_invariant(data):
    """Every config drawn inside the documented ranges is accepted (the validation is not
    stricter than documented) and runs with no NaN or inf and every invariant holding.
    """
    config = config_from_dict(data)
    _coverage_events(config)
    check_run(config)


def _coverage_events(config):
    """Label the extremes an example hits (see ``pytest --hypothesis-show-statistics``)."""
    spends = policy_tables(config).spend
    for label, hit in (
        ("one customer", config.population.customers == 1),
        ("one period", config.run.horizon == 1),
        ("no discounting", config.economics.annual_discount_rate == 0.0),
        ("one segment only", config.population.relationship_share in (0.0, 1.0)),
        ("wallet_sigma 0", config.population.wallet_sigma == 0.0),
        ("Beta churn", config.population.churn_propensity is not None),
        ("certain churn from decline", config.transitions.churn == 1.0),
        ("zero spend everywhere", bool((spends == 0.0).all())),
        ("huge spend (>= 1e11)", bool((spends >= 1e11).any())),
    ):
        if hit:
            event(label)


#: Values that break most fields: non-finite, out of range, wrong type, absurdly large.
BAD_VALUES = [
    float("nan"),
    float("inf"),
    -float("inf"),
    -1.0,
    -TINY,
    2.0,
    10 * M,
    10**400,
    2**63,
    0,
    -1,
    "0.5",
    "",
    True,
    None,
    [],
    [1.0],
    {},
    {"x": 1},
]


def _paths(data, prefix=()):
    """Every key path of a nested config mapping (tables and leaves), policies by index."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        path = prefix + (key,)
        yield path
        yield from _paths(value, path)


def _set(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@given(data=configs(), choice=st.data())
def test_a_broken_config_fails_before_any_work_naming_the_field(data, choice):
    """Break one entry of a valid config (a bad value from BAD_VALUES or any float, or an
    unknown key): validation either raises ConfigError — one line per problem, naming the
    section and the key — or, if the new value happens to be legal, the run satisfies every
    invariant. No other exception, no traceback text.
    """
    mutated = copy.deepcopy(data)
    paths = [path for path in _paths(mutated) if path != ("name",)]
    path = choice.draw(st.sampled_from(paths), label="path")
    unknown_key = choice.draw(st.booleans(), label="add an unknown key instead")
    parent = mutated
    for key in path[:-1]:
        parent = parent[key]
    if unknown_key and isinstance(parent, dict):
        typo = str(path[-1]) + "_typo"
        parent[typo] = 1.0
        with_key = path[:-1] + (typo,)
    else:
        unknown_key = False
        _set(mutated, path, choice.draw(st.one_of(st.sampled_from(BAD_VALUES), st.floats()), label="value"))
    try:
        config = config_from_dict(mutated)
    except ConfigError as error:
        message = str(error)
        assert error.problems and "Traceback" not in message and "pydantic" not in message.lower()
        named = with_key if unknown_key else path
        section = str(named[0])
        key = next((str(part) for part in reversed(named) if isinstance(part, str)), section)
        assert section in message and key in message, (named, message)
        if unknown_key:
            assert "unknown key" in message
        event("rejected with ConfigError")
        return
    assert not unknown_key
    event("still valid: ran")
    check_run(config)
