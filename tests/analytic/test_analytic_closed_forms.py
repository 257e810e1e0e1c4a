"""Tests for sim.analytic: closed-form CLV models checked against independent derivations.

Every closed form is compared with something computed a different way:
explicit (truncated) cash-flow sums, renewal arguments, brute-force grid
search, or published estimates.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import optimize, special

from sim.analytic.customer_equity import (
    BDOptimum,
    bd_calibrate,
    bd_customer_equity,
    bd_optimal_spend,
    bd_response_rate,
)
from sim.analytic.margin import margin_multiple
from sim.analytic.markov import markov_clv, prune_negative_states, recency_chain
from sim.analytic.sbg import (
    SBGFit,
    sbg_churn_probability,
    sbg_del,
    sbg_derl,
    sbg_fit,
    sbg_retention,
    sbg_survival,
)

TIMINGS = ("end", "start")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def explicit_markov_sum(P, R, discount, n_periods, timing):
    """sum_{t < n_periods} w_t P^t R with w_t = delta^(t+1) ("end") or delta^t ("start")."""
    delta = 1.0 / (1.0 + discount)
    distribution_times_reward = np.asarray(R, dtype=float)  # P^t R, built up by t
    total = np.zeros_like(distribution_times_reward)
    for t in range(n_periods):
        weight = delta ** (t + 1) if timing == "end" else delta**t
        total += weight * distribution_times_reward
        distribution_times_reward = P @ distribution_times_reward
    return total


def random_chain(rng, n_states, n_absorbing):
    """Random row-stochastic matrix whose last n_absorbing states are absorbing."""
    P = rng.dirichlet(np.ones(n_states), size=n_states)
    for state in range(n_states - n_absorbing, n_states):
        P[state] = 0.0
        P[state, state] = 1.0
    return P


def sbg_series(alpha, beta, discount, first, n_terms, conditioning=0):
    """sum_{t=first}^{first+n_terms-1} S(t)/S(conditioning) / (1+d)^(t-first), by brute force."""
    t = np.arange(first, first + n_terms, dtype=float)
    log_terms = (
        special.betaln(alpha, beta + t)
        - special.betaln(alpha, beta + conditioning)
        - (t - first) * math.log1p(discount)
    )
    return math.fsum(np.exp(log_terms))


def terms_for(discount, tolerance=1e-18):
    """Number of terms after which (1+d)^-t < tolerance (tail of a survival series)."""
    return int(math.log(tolerance) / -math.log1p(discount)) + 10


# ---------------------------------------------------------------------------
# markov_clv
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("timing", TIMINGS)
def test_markov_infinite_horizon_equals_explicit_series(timing):
    rng = np.random.default_rng(1)
    P = random_chain(rng, 6, n_absorbing=1)
    R = rng.normal(10.0, 5.0, size=6)  # absorbing state earns too: a recurrent reward
    discount = 0.1
    V = markov_clv(P, R, discount, timing=timing)
    expected = explicit_markov_sum(P, R, discount, terms_for(discount), timing)
    np.testing.assert_allclose(V, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("horizon", [0, 1, 2, 7, 40])
def test_markov_finite_horizon_equals_truncated_series(timing, horizon):
    rng = np.random.default_rng(2)
    P = random_chain(rng, 5, n_absorbing=2)
    R = rng.normal(0.0, 3.0, size=5)
    V = markov_clv(P, R, 0.05, horizon=horizon, timing=timing)
    np.testing.assert_allclose(V, explicit_markov_sum(P, R, 0.05, horizon, timing), rtol=1e-12, atol=1e-12)
    if horizon == 0:
        assert np.all(V == 0.0)


@pytest.mark.parametrize("horizon", [None, 1, 12])
def test_markov_end_timing_is_one_period_of_discounting_behind_start(horizon):
    rng = np.random.default_rng(3)
    P = random_chain(rng, 4, n_absorbing=1)
    R = rng.normal(size=4)
    discount = 0.08
    end = markov_clv(P, R, discount, horizon=horizon, timing="end")
    start = markov_clv(P, R, discount, horizon=horizon, timing="start")
    np.testing.assert_allclose(end, start / (1 + discount), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("horizon", [None, 1, 5, 60])
@pytest.mark.parametrize("retention, discount", [(0.8, 0.1), (0.35, 0.02), (1.0, 0.15), (0.0, 0.1)])
def test_alive_dead_chain_reproduces_margin_multiple(retention, discount, horizon):
    # State 0 = alive, state 1 = lost (absorbing).
    P = np.array([[retention, 1.0 - retention], [0.0, 1.0]])
    margin = 7.0
    # "start": margin paid at the start of each period the customer is alive.
    start = markov_clv(P, [margin, 0.0], discount, horizon=horizon, timing="start")[0]
    assert start == pytest.approx(
        margin * margin_multiple(retention, discount, horizon, timing="start"), rel=1e-12
    )
    # Gupta-Lehmann "end": the margin of a period is paid at its end, only by customers
    # retained through it, so the expected reward booked for the period is r * m.
    end = markov_clv(P, [retention * margin, 0.0], discount, horizon=horizon, timing="end")[0]
    assert end == pytest.approx(
        margin * margin_multiple(retention, discount, horizon, timing="end"), rel=1e-12, abs=1e-14
    )


@pytest.mark.parametrize("timing", TIMINGS)
def test_absorbing_states(timing):
    discount = 0.25
    P = np.array(
        [
            [0.5, 0.3, 0.2],
            [0.0, 1.0, 0.0],  # absorbing "lost", no reward
            [0.0, 0.0, 1.0],  # absorbing "loyal", pays c every period forever
        ]
    )
    c = 4.0
    V = markov_clv(P, [1.0, 0.0, c], discount, timing=timing)
    assert V[1] == 0.0
    perpetuity = c / discount if timing == "end" else c * (1 + discount) / discount
    assert V[2] == pytest.approx(perpetuity, rel=1e-13)
    # First-step analysis for the transient state, derived by hand:
    delta = 1 / (1 + discount)
    if timing == "end":
        expected_0 = delta * (1.0 + 0.2 * V[2]) / (1 - 0.5 * delta)
    else:
        expected_0 = (1.0 + delta * 0.2 * V[2]) / (1 - 0.5 * delta)
    assert V[0] == pytest.approx(expected_0, rel=1e-13)


def test_zero_discount_infinite_horizon_with_rewards_only_in_transient_states():
    P = np.array(
        [
            [0.2, 0.5, 0.1, 0.2],
            [0.3, 0.1, 0.3, 0.3],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    R = np.array([5.0, -2.0, 0.0, 0.0])
    # Transient mass decays at least like 0.7^t: 300 terms leave < 1e-40.
    expected = explicit_markov_sum(P, R, 0.0, 300, "end")
    for timing in TIMINGS:
        np.testing.assert_allclose(markov_clv(P, R, 0.0, timing=timing), expected, rtol=1e-12)


def test_zero_discount_infinite_horizon_with_recurrent_reward_raises():
    P = np.array([[0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="discount=0"):
        markov_clv(P, [1.0, 1.0], 0.0)
    # A recurrent class that is not absorbing (a 2-cycle) also counts.
    P_cycle = np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="discount=0"):
        markov_clv(P_cycle, [1.0, 0.0, 1.0], 0.0)
    # ... but a finite horizon is fine.
    assert markov_clv(P, [1.0, 1.0], 0.0, horizon=3)[1] == pytest.approx(3.0)


GOOD_P = np.array([[0.9, 0.1], [0.0, 1.0]])


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(P=np.ones((2, 3)) / 3), "P"),
        (dict(P=[[0.9, 0.2], [0.0, 1.0]]), "P"),  # row sums to 1.1
        (dict(P=[[1.2, -0.2], [0.0, 1.0]]), "P"),  # entries outside [0, 1]
        (dict(P=[[np.nan, 1.0], [0.0, 1.0]]), "P"),
        (dict(R=[1.0, 2.0, 3.0]), "R"),
        (dict(discount=-0.1), "discount"),
        (dict(discount=[0.1, 0.2]), "discount"),
        (dict(horizon=2.5), "horizon"),
        (dict(horizon=-1), "horizon"),
        (dict(horizon=True), "horizon"),
        (dict(timing="middle"), "timing"),
    ],
)
def test_markov_bad_inputs_raise_value_error_naming_the_argument(kwargs, argument):
    arguments = dict(P=GOOD_P, R=[1.0, 0.0], discount=0.1, horizon=None, timing="end") | kwargs
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        markov_clv(**arguments)


def test_markov_accepts_numpy_integer_horizon():
    assert np.allclose(
        markov_clv(GOOD_P, [1.0, 0.0], 0.1, horizon=np.int64(3)),
        markov_clv(GOOD_P, [1.0, 0.0], 0.1, horizon=3),
    )


# ---------------------------------------------------------------------------
# recency_chain
# ---------------------------------------------------------------------------


def test_recency_chain_structure():
    p = np.array([0.3, 0.2, 0.15, 0.05])
    P, R = recency_chain(p, margin=40.0, contact_cost=4.0)
    assert P.shape == (5, 5) and R.shape == (5,)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(P[:4, 0], p)  # buyers return to recency 1
    np.testing.assert_allclose(np.diag(P, k=1), 1.0 - p)  # non-buyers age by one; last one -> lost
    assert P[4, 4] == 1.0
    np.testing.assert_allclose(R, [0.3 * 40 - 4, 0.2 * 40 - 4, 0.15 * 40 - 4, 0.05 * 40 - 4, 0.0])
    # Recency 1 with p = 1 keeps the customer in recency 1.
    P1, _ = recency_chain([1.0], margin=1.0)
    np.testing.assert_array_equal(P1, [[1.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("timing", TIMINGS)
def test_recency_chain_value_matches_renewal_argument(timing):
    # Independent derivation: from recency 1 a customer reaches recency j without buying
    # with probability s_j = prod_{i<j}(1 - p_i); every purchase restarts the process at
    # recency 1.  Unrolling V = (discounted) R + P V along that path gives
    #   V_1 = sum_j w_j s_j R_j / (1 - sum_j delta^j s_j p_j),
    # with w_j = delta^j ("end") or delta^(j-1) ("start").
    p = np.array([0.3, 0.2, 0.15, 0.05, 0.02])
    margin, cost, discount = 40.0, 4.0, 0.2
    P, R = recency_chain(p, margin, cost)
    V = markov_clv(P, R, discount, timing=timing)
    delta = 1 / (1 + discount)
    j = np.arange(1, p.size + 1)
    s = np.concatenate(([1.0], np.cumprod(1 - p)[:-1]))
    w = delta**j if timing == "end" else delta ** (j - 1)
    V1 = np.sum(w * s * R[:-1]) / (1 - np.sum(delta**j * s * p))
    assert V[0] == pytest.approx(V1, rel=1e-12)
    assert V[-1] == 0.0


def test_recency_chain_bad_inputs():
    with pytest.raises(ValueError, match="^purchase_probability"):
        recency_chain([0.5, 1.5], 10.0)
    with pytest.raises(ValueError, match="^purchase_probability"):
        recency_chain([], 10.0)
    with pytest.raises(ValueError, match="^contact_cost"):
        recency_chain([0.5], 10.0, contact_cost=-1.0)
    with pytest.raises(ValueError, match="^margin"):
        recency_chain([0.5], [10.0, 2.0])


# ---------------------------------------------------------------------------
# prune_negative_states
# ---------------------------------------------------------------------------


def catalog_example():
    """Recency model: mailing costs 4; an unmailed customer does not buy and costs nothing."""
    p = np.array([0.3, 0.2, 0.15, 0.05, 0.02])
    P_spend, R_spend = recency_chain(p, margin=40.0, contact_cost=4.0)
    P_no_spend, R_no_spend = recency_chain(np.zeros_like(p), margin=40.0, contact_cost=0.0)
    return P_spend, R_spend, P_no_spend, R_no_spend


def policy_value(marketed, P_spend, R_spend, P_no_spend, R_no_spend, discount, horizon, timing):
    P = np.where(marketed[:, None], P_spend, P_no_spend)
    R = np.where(marketed, R_spend, R_no_spend)
    return markov_clv(P, R, discount, horizon=horizon, timing=timing)


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("horizon", [None, 30])
def test_prune_catalog_example(timing, horizon):
    chains = catalog_example()
    discount = 0.2
    all_spend = markov_clv(chains[0], chains[1], discount, horizon=horizon, timing=timing)
    V, marketed = prune_negative_states(*chains, discount, horizon=horizon, timing=timing)
    # The example is one where pruning matters: the deep-recency states lose money.
    assert np.any(all_spend < 0)
    assert not np.all(marketed)
    # Only states with negative all-spend value are dropped, and they form a tail of
    # recency states (the absorbing "lost" state earns 0 either way and is kept).
    assert np.all(all_spend[~marketed] < 0)
    dropped = np.flatnonzero(~marketed)
    np.testing.assert_array_equal(dropped, np.arange(dropped[0], dropped[0] + dropped.size))
    # Improvement over marketing to everyone, elementwise.
    assert np.all(V >= all_spend - 1e-12)
    assert np.any(V > all_spend + 1e-9)
    # The returned V is the value of the returned policy.
    np.testing.assert_allclose(
        V, policy_value(marketed, *chains, discount, horizon, timing), rtol=1e-12, atol=1e-12
    )


def test_prune_catalog_example_is_best_stationary_policy():
    # For this example the dropped tail is optimal: compare with all 2^6 policies.
    chains = catalog_example()
    V, _ = prune_negative_states(*chains, 0.2)
    best = np.max(
        [
            policy_value(np.array(bits), *chains, 0.2, None, "end")
            for bits in itertools.product([False, True], repeat=6)
        ],
        axis=0,
    )
    np.testing.assert_allclose(V, best, rtol=1e-12)


def test_prune_keeps_spend_where_dropping_it_would_hurt():
    # State 0 loses money when marketed (value < 0), but without marketing its
    # customers fall into state 1, which costs far more.  The plain "negative value
    # => stop" rule would lower every value; the look-ahead check keeps the spend.
    P_spend = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    R_spend = np.array([-1.0, -10.0, 0.0])
    P_no_spend = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    R_no_spend = np.array([0.0, -10.0, 0.0])
    chains = (P_spend, R_spend, P_no_spend, R_no_spend)
    all_spend = markov_clv(P_spend, R_spend, 0.1)
    naive = policy_value(all_spend >= 0, *chains, 0.1, None, "end")
    assert all_spend[0] < 0 and naive[0] < all_spend[0]  # the naive rule hurts here
    for horizon in (None, 5):
        V, marketed = prune_negative_states(*chains, 0.1, horizon=horizon)
        assert marketed[0]
        np.testing.assert_allclose(V, markov_clv(P_spend, R_spend, 0.1, horizon=horizon))


@pytest.mark.parametrize("horizon", [None, 1, 8])
@pytest.mark.parametrize("timing", TIMINGS)
def test_prune_random_instances_terminate_and_never_lower_values(horizon, timing):
    rng = np.random.default_rng(11)
    for _ in range(40):
        k = int(rng.integers(2, 8))
        P_spend = random_chain(rng, k, n_absorbing=1)
        P_no_spend = random_chain(rng, k, n_absorbing=1)
        R_spend = rng.normal(0.0, 2.0, size=k)
        R_no_spend = R_spend + rng.normal(0.5, 2.0, size=k)
        chains = (P_spend, R_spend, P_no_spend, R_no_spend)
        all_spend = markov_clv(P_spend, R_spend, 0.15, horizon=horizon, timing=timing)
        V, marketed = prune_negative_states(*chains, 0.15, horizon=horizon, timing=timing)
        assert np.all(V >= all_spend - 1e-10)
        assert np.all(all_spend[~marketed] < 0)
        np.testing.assert_allclose(
            V, policy_value(marketed, *chains, 0.15, horizon, timing), rtol=1e-10, atol=1e-10
        )
        # Fixed point: re-running the rule from the final policy drops no marketed state
        # (already-dropped states have identical rows either way).
        V_again, marketed_again = prune_negative_states(
            np.where(marketed[:, None], P_spend, P_no_spend),
            np.where(marketed, R_spend, R_no_spend),
            P_no_spend,
            R_no_spend,
            0.15,
            horizon=horizon,
            timing=timing,
        )
        assert np.all(marketed_again[marketed])
        np.testing.assert_allclose(V_again, V, rtol=1e-10, atol=1e-10)


def test_prune_bad_inputs():
    P_spend, R_spend, P_no_spend, R_no_spend = catalog_example()
    with pytest.raises(ValueError, match="^P_no_spend"):
        prune_negative_states(P_spend, R_spend, P_no_spend[:3, :3], R_no_spend, 0.1)
    with pytest.raises(ValueError, match="^R_no_spend"):
        prune_negative_states(P_spend, R_spend, P_no_spend, R_no_spend[:3], 0.1)
    with pytest.raises(ValueError, match="^P_spend"):
        prune_negative_states(P_spend * 2, R_spend, P_no_spend, R_no_spend, 0.1)


# ---------------------------------------------------------------------------
# margin_multiple
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "retention, discount", [(0.8, 0.1), (0.95, 0.01), (0.5, 0.0), (1.0, 0.12), (0.0, 0.1)]
)
def test_margin_multiple_matches_explicit_sums(retention, discount):
    t = np.arange(0, 20_000)
    q_t = (retention / (1 + discount)) ** t  # r^t / (1+d)^t
    assert margin_multiple(retention, discount) == pytest.approx(math.fsum(q_t[1:]), rel=1e-12, abs=1e-15)
    assert margin_multiple(retention, discount, timing="start") == pytest.approx(math.fsum(q_t), rel=1e-12)
    for horizon in (1, 2, 5, 37):
        end = margin_multiple(retention, discount, horizon=horizon, timing="end")
        start = margin_multiple(retention, discount, horizon=horizon, timing="start")
        assert end == pytest.approx(math.fsum(q_t[1 : horizon + 1]), rel=1e-12, abs=1e-15)
        assert start == pytest.approx(math.fsum(q_t[:horizon]), rel=1e-12)


def test_margin_multiple_closed_forms():
    assert margin_multiple(0.8, 0.1) == pytest.approx(0.8 / 0.3)
    assert margin_multiple(0.8, 0.1, timing="start") == pytest.approx(1.1 / 0.3)
    # retention 1 without discounting: every one of the H margins counts in full.
    assert margin_multiple(1.0, 0.0, horizon=9) == 9.0
    assert margin_multiple(1.0, 0.0, horizon=9, timing="start") == 9.0
    assert margin_multiple(0.7, 0.1, horizon=0) == 0.0


@pytest.mark.parametrize("horizon", [None, 1, 4, 50])
def test_margin_multiple_timing_identities(horizon):
    # Derivation: with q = r/(1+d), start_H = sum_{t=0}^{H-1} q^t and
    # end_H = sum_{t=1}^{H} q^t = q * start_H (every horizon, including infinite);
    # splitting off the t = 0 term, start_H = 1 + end_{H-1} and start_inf = 1 + end_inf.
    r = np.array([0.0, 0.3, 0.8, 0.99, 1.0])
    d = 0.07
    end = margin_multiple(r, d, horizon=horizon, timing="end")
    start = margin_multiple(r, d, horizon=horizon, timing="start")
    np.testing.assert_allclose(end, r / (1 + d) * start, rtol=1e-13)
    previous = None if horizon is None else horizon - 1
    np.testing.assert_allclose(start, 1.0 + margin_multiple(r, d, horizon=previous, timing="end"), rtol=1e-13)


def test_margin_multiple_broadcasts():
    r = np.array([[0.5], [0.8], [0.9]])
    d = np.array([0.0, 0.05, 0.1, 0.2])
    for horizon in (None, 6):
        grid = margin_multiple(r, d, horizon=horizon)
        assert grid.shape == (3, 4)
        for i, j in itertools.product(range(3), range(4)):
            assert grid[i, j] == margin_multiple(float(r[i, 0]), float(d[j]), horizon=horizon)
    assert isinstance(margin_multiple(0.5, 0.1), float)


@pytest.mark.parametrize(
    "args, kwargs, argument",
    [
        ((1.2, 0.1), {}, "retention"),
        ((-0.1, 0.1), {}, "retention"),
        ((0.5, -0.1), {}, "discount"),
        ((0.5, 0.1), {"horizon": 2.0}, "horizon"),
        ((0.5, 0.1), {"timing": "middle"}, "timing"),
        ((1.0, 0.0), {}, "retention"),  # infinite horizon needs r < 1 + d
        (([0.5, 0.6], [0.1, 0.2, 0.3]), {}, "retention"),  # shapes do not broadcast
    ],
)
def test_margin_multiple_bad_inputs(args, kwargs, argument):
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        margin_multiple(*args, **kwargs)


# ---------------------------------------------------------------------------
# shifted-beta-geometric
# ---------------------------------------------------------------------------

REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]


@pytest.mark.parametrize("survivors, alpha, beta", [(REGULAR, 0.704, 1.182), (HIGH_END, 0.668, 3.806)])
def test_sbg_fit_reproduces_fader_hardie_2007(survivors, alpha, beta):
    # Fader & Hardie (2007) report the estimates to 3 decimals; we match all 3.
    fit = sbg_fit(survivors)
    assert isinstance(fit, SBGFit)
    assert fit.converged
    assert round(fit.alpha, 3) == alpha
    assert round(fit.beta, 3) == beta
    assert (fit.n_periods, fit.cohort_size) == (7, 1000)


def independent_sbg_loglik(survivors, alpha, beta):
    survivors = np.asarray(survivors, dtype=float)
    t = np.arange(1, survivors.size)
    churned = survivors[:-1] - survivors[1:]
    return float(
        np.sum(churned * np.log(sbg_churn_probability(alpha, beta, t)))
        + survivors[-1] * np.log(sbg_survival(alpha, beta, t[-1]))
    )


def test_sbg_fit_is_a_local_maximum_of_the_stated_likelihood():
    fit = sbg_fit(REGULAR)
    assert fit.loglik == pytest.approx(independent_sbg_loglik(REGULAR, fit.alpha, fit.beta), rel=1e-12)
    for da, db in itertools.product([-1e-3, 0.0, 1e-3], repeat=2):
        assert independent_sbg_loglik(REGULAR, fit.alpha * (1 + da), fit.beta * (1 + db)) <= fit.loglik + 1e-9


def test_sbg_survival_retention_and_churn_are_consistent():
    alpha, beta = 0.704, 1.182
    t = np.arange(1, 40)
    survival = sbg_survival(alpha, beta, np.arange(0, 40))
    assert survival[0] == 1.0
    np.testing.assert_allclose(survival[1:], np.cumprod(sbg_retention(alpha, beta, t)), rtol=1e-12)
    np.testing.assert_allclose(
        sbg_churn_probability(alpha, beta, t), survival[:-1] - survival[1:], rtol=1e-10
    )
    assert math.fsum(sbg_churn_probability(alpha, beta, t)) + survival[-1] == pytest.approx(1.0, abs=1e-13)
    # Mixture definition: S(t) = E[(1 - theta)^t], theta ~ Beta(alpha, beta) = B(alpha, beta+t)/B(alpha, beta)
    # and r_1 = E[1 - theta] = beta / (alpha + beta).
    assert sbg_retention(alpha, beta, 1) == pytest.approx(beta / (alpha + beta))
    assert sbg_survival(2.0, 3.0, 2) == pytest.approx(3 / 5 * 4 / 6)


def test_sbg_functions_broadcast():
    alpha = np.array([[0.5], [2.0]])
    t = np.array([1, 2, 3])
    for function in (sbg_survival, sbg_retention, sbg_churn_probability):
        grid = function(alpha, 1.5, t)
        assert grid.shape == (2, 3)
        assert grid[1, 2] == pytest.approx(function(2.0, 1.5, 3))


@pytest.mark.parametrize(
    "alpha, beta, discount",
    [(0.704, 1.182, 0.1), (0.668, 3.806, 0.1), (2.5, 0.4, 0.02), (0.3, 8.0, 0.5), (12.0, 40.0, 0.01)],
)
def test_sbg_del_and_derl_equal_brute_force_survival_series(alpha, beta, discount):
    n_terms = terms_for(discount)
    assert sbg_del(alpha, beta, discount) == pytest.approx(
        sbg_series(alpha, beta, discount, 0, n_terms), rel=1e-10
    )
    for n in (0, 1, 5, 20):
        expected = sbg_series(alpha, beta, discount, first=n + 1, n_terms=n_terms, conditioning=n)
        assert sbg_derl(alpha, beta, discount, n) == pytest.approx(expected, rel=1e-10)
    # Valuing at acquisition: the first unit now, the rest one period later.
    assert sbg_del(alpha, beta, discount) == pytest.approx(
        1 + sbg_derl(alpha, beta, discount, 0) / (1 + discount), rel=1e-12
    )


def test_sbg_del_falls_back_where_scipy_hyp2f1_fails():
    # scipy 1.17's hyp2f1(1, 500; 500.02; 1/1.001) returns nan; the series fallback must not.
    alpha, beta, discount = 0.02, 500.0, 0.001
    expected = sbg_series(alpha, beta, discount, 0, terms_for(discount))
    assert sbg_del(alpha, beta, discount) == pytest.approx(expected, rel=1e-10)
    expected_derl = sbg_series(alpha, beta, discount, first=4, n_terms=terms_for(discount), conditioning=3)
    assert sbg_derl(alpha, beta, discount, 3) == pytest.approx(expected_derl, rel=1e-10)


def test_sbg_undiscounted_lifetimes():
    # With alpha = 5 the survival series decays like t^-5: 200,000 terms suffice for 1e-10.
    alpha, beta = 5.0, 2.0
    assert sbg_del(alpha, beta, 0.0) == pytest.approx(sbg_series(alpha, beta, 0.0, 0, 200_000), rel=1e-10)
    assert sbg_derl(alpha, beta, 0.0, 3) == pytest.approx(
        sbg_series(alpha, beta, 0.0, first=4, n_terms=200_000, conditioning=3), rel=1e-10
    )
    with pytest.raises(ValueError, match="alpha > 1"):
        sbg_del(0.9, 2.0, 0.0)


def test_sbg_del_and_derl_broadcast():
    d = np.array([0.05, 0.1, 0.2])
    values = sbg_derl(0.704, 1.182, d[:, None], np.array([0, 3]))
    assert values.shape == (3, 2)
    assert values[2, 1] == pytest.approx(sbg_derl(0.704, 1.182, 0.2, 3))
    np.testing.assert_array_less(np.diff(sbg_del(0.704, 1.182, d)), 0.0)  # more discounting, less value


def expected_information(alpha, beta, n_periods, cohort_size):
    """Fisher information of the multinomial (churn in 1..n, survive n) via finite differences."""

    def cell_probabilities(params):
        a, b = params
        t = np.arange(1, n_periods + 1)
        return np.append(sbg_churn_probability(a, b, t), sbg_survival(a, b, n_periods))

    params = np.array([alpha, beta])
    probabilities = cell_probabilities(params)
    gradient = np.empty((2, probabilities.size))
    for i in range(2):
        step = np.zeros(2)
        step[i] = 1e-6 * params[i]
        gradient[i] = (cell_probabilities(params + step) - cell_probabilities(params - step)) / (2 * step[i])
    return cohort_size * (gradient / probabilities) @ gradient.T


@pytest.mark.parametrize("alpha, beta", [(0.8, 2.2), (3.0, 6.0)])
def test_sbg_fit_recovers_simulated_parameters(alpha, beta):
    # 200,000 customers: theta ~ Beta(alpha, beta), lifetime T ~ Geometric(theta) on {1, 2, ...}.
    # Tolerance: 5 asymptotic standard errors from the expected Fisher information.
    rng = np.random.default_rng(20240607)
    cohort_size, n_periods = 200_000, 12
    theta = rng.beta(alpha, beta, size=cohort_size)
    lifetime = rng.geometric(theta)
    survivors = [(lifetime > t).sum() for t in range(n_periods + 1)]
    fit = sbg_fit(survivors)
    standard_error = np.sqrt(
        np.diag(np.linalg.inv(expected_information(alpha, beta, n_periods, cohort_size)))
    )
    assert fit.converged
    assert abs(fit.alpha - alpha) < 5 * standard_error[0]
    assert abs(fit.beta - beta) < 5 * standard_error[1]
    assert standard_error[0] < 0.1 * alpha  # the check is informative


@pytest.mark.parametrize(
    "survivors, fragment",
    [
        ([1000], "at least 2"),
        ([1000, 1100, 900], "non-increasing"),
        ([1000, 900.5, 800], "whole numbers"),
        ([1000, -1], r"\[0\.0, inf\]"),
        ([0, 0, 0], "cohort size"),
        ([500, 500, 500], "no churn"),
        ([[1000, 900]], "1-d"),
    ],
)
def test_sbg_fit_bad_inputs(survivors, fragment):
    with pytest.raises(ValueError, match=rf"survivors.*{fragment}"):
        sbg_fit(survivors)


def test_sbg_bad_parameters():
    with pytest.raises(ValueError, match="^alpha"):
        sbg_survival(0.0, 1.0, 2)
    with pytest.raises(ValueError, match="^beta"):
        sbg_del(1.0, -1.0, 0.1)
    with pytest.raises(ValueError, match="^t"):
        sbg_survival(1.0, 1.0, -1)
    with pytest.raises(ValueError, match="^t"):
        sbg_retention(1.0, 1.0, 0)
    with pytest.raises(ValueError, match="^t"):
        sbg_churn_probability(1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="^renewals"):
        sbg_derl(1.0, 1.0, 0.1, -1)
    with pytest.raises(ValueError, match="^discount"):
        sbg_derl(1.0, 1.0, -0.1, 2)


# ---------------------------------------------------------------------------
# Blattberg & Deighton
# ---------------------------------------------------------------------------

BD = dict(margin=100.0, discount=0.1, ceiling_a=0.4, k_a=0.02, ceiling_r=0.8, k_r=0.05)


def test_bd_calibration_round_trip():
    ceiling = np.array([0.3, 0.6, 1.0])
    k = np.array([0.01, 0.2, 1.5])
    spend = np.array([5.0, 3.0, 0.7])
    rate = bd_response_rate(ceiling, k, spend)
    np.testing.assert_allclose(bd_calibrate(ceiling, spend, rate), k, rtol=1e-12)
    np.testing.assert_allclose(
        bd_response_rate(ceiling, bd_calibrate(ceiling, spend, rate), spend), rate, rtol=1e-14
    )
    # Worked by hand: half the ceiling reached at spend 10 => k = ln 2 / 10.
    assert bd_calibrate(0.5, 10.0, 0.25) == pytest.approx(math.log(2) / 10, rel=1e-15)


@pytest.mark.parametrize(
    "args, argument",
    [
        ((0.5, 10.0, 0.5), "observed_rate"),
        ((0.5, 10.0, 0.0), "observed_rate"),
        ((0.5, 0.0, 0.2), "spend"),
        ((1.5, 10.0, 0.2), "ceiling"),
    ],
)
def test_bd_calibrate_bad_inputs(args, argument):
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        bd_calibrate(*args)


@pytest.mark.parametrize("acq_spend, ret_spend", [(10.0, 20.0), (0.0, 5.0), (30.0, 0.0)])
def test_bd_customer_equity_equals_explicit_cash_flows(acq_spend, ret_spend):
    m, d = BD["margin"], BD["discount"]
    a = bd_response_rate(BD["ceiling_a"], BD["k_a"], acq_spend)
    r = bd_response_rate(BD["ceiling_r"], BD["k_r"], ret_spend)
    t = np.arange(1, 2000)
    cash_flows = a * (m * r**t - ret_spend * r ** (t - 1)) / (1 + d) ** t
    expected = a * m - acq_spend + math.fsum(cash_flows)
    equity = bd_customer_equity(acq_spend, ret_spend, **BD)
    assert equity == pytest.approx(expected, rel=1e-12, abs=1e-12)
    if ret_spend > 0:  # Blattberg & Deighton's own form
        r_prime = r / (1 + d)
        bd_form = a * m - acq_spend + a * (m - ret_spend / r) * r_prime / (1 - r_prime)
        assert equity == pytest.approx(bd_form, rel=1e-12)


def test_bd_optimal_spend_agrees_with_grid_search():
    optimum = bd_optimal_spend(**BD)
    assert isinstance(optimum, BDOptimum)
    assert optimum.acquisition_spend > 0 and optimum.retention_spend > 0
    A = np.linspace(0.0, 3 * optimum.acquisition_spend, 1501)
    R = np.linspace(0.0, 3 * optimum.retention_spend, 1501)
    grid = bd_customer_equity(A[:, None], R[None, :], **BD)
    i, j = np.unravel_index(np.argmax(grid), grid.shape)
    # No grid point beats the optimiser, and the best grid point is within one grid
    # step of it in each spend and within 1e-4 of it in equity (second-order in the step).
    assert grid.max() <= optimum.equity + 1e-12
    assert optimum.equity - grid.max() < 1e-4
    assert abs(A[i] - optimum.acquisition_spend) <= A[1]
    assert abs(R[j] - optimum.retention_spend) <= R[1]
    assert optimum.equity == pytest.approx(
        bd_customer_equity(optimum.acquisition_spend, optimum.retention_spend, **BD), rel=1e-14
    )
    assert optimum.acquisition_rate == pytest.approx(
        bd_response_rate(BD["ceiling_a"], BD["k_a"], optimum.acquisition_spend)
    )
    assert optimum.retention_rate == pytest.approx(
        bd_response_rate(BD["ceiling_r"], BD["k_r"], optimum.retention_spend)
    )


def test_bd_retention_optimum_does_not_depend_on_acquisition_spend():
    optimum = bd_optimal_spend(**BD)
    for acq_spend in (1.0, 10.0, 80.0):
        best = optimize.minimize_scalar(
            lambda R: -bd_customer_equity(acq_spend, R, **BD),
            bounds=(0.0, 300.0),
            method="bounded",
            options={"xatol": 1e-9},
        )
        assert best.x == pytest.approx(optimum.retention_spend, rel=1e-6)


def test_bd_corner_solutions():
    # ceiling_r * k_r * m <= 1: retention spending never pays.
    weak_retention = BD | dict(k_r=0.005)
    assert bd_optimal_spend(**weak_retention).retention_spend == 0.0
    # ceiling_a * k_a * (customer value) <= 1: acquisition never pays, equity 0.
    weak_acquisition = BD | dict(k_a=1e-4)
    optimum = bd_optimal_spend(**weak_acquisition)
    assert optimum.acquisition_spend == 0.0 and optimum.equity == 0.0
    # Non-positive margin: spend nothing.
    assert bd_optimal_spend(**(BD | dict(margin=-5.0))) == BDOptimum(0.0, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "override, argument",
    [
        (dict(ceiling_a=0.0), "ceiling_a"),
        (dict(ceiling_r=1.2), "ceiling_r"),
        (dict(k_r=-1.0), "k_r"),
        (dict(discount=-0.2), "discount"),
        (dict(margin=[1.0, 2.0]), "margin"),  # the optimiser takes scalars only
    ],
)
def test_bd_optimal_spend_bad_inputs(override, argument):
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        bd_optimal_spend(**(BD | override))


@pytest.mark.parametrize(
    "spends, override, argument",
    [
        ((-1.0, 1.0), {}, "acq_spend"),
        ((1.0, -1.0), {}, "ret_spend"),
        ((1.0, 1.0), dict(k_a=0.0), "k_a"),
        ((1.0, 1.0), dict(discount=-0.2), "discount"),
    ],
)
def test_bd_customer_equity_bad_inputs(spends, override, argument):
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        bd_customer_equity(*spends, **(BD | override))
