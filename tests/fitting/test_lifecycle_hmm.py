"""Tests of the lifecycle hidden-Markov model (:mod:`sim.fitting.lifecycle`, kernels in
:mod:`sim.fitting._hmm`): exact kernels, EM, score, round trip, threads.

* the scaled forward-backward (statistics, likelihood, filtering, smoothing, forecasts) equals
  brute-force enumeration of every state path to 1e-12 relative on tiny panels;
* the entry convention: the first purchase is no emission, the entry period's repeats have
  their own rate and the state there is exploration;
* EM never decreases the log-likelihood, keeps the structural zeros and the rate order;
* the exact score (Fisher's identity) and the Hessian behind the SEs match finite differences;
* a panel simulated from known stage parameters is recovered within 4 standard errors;
* the kernels give bitwise-identical results with 1 and 2 threads.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest

from sim.fitting import _hmm
from sim.fitting.lifecycle import (
    ORDER,
    LifecycleHMM,
    LifecycleParams,
    group_sequences,
    isotonic_rates,
    simulate_lifecycle,
    smoothing,
)
from sim.fitting.lifecycle.coords import Coords

RTOL = 1e-12


def _edges_matrix(Aj):
    """(J, 5, 5) transition matrices from the edge table (NE, J)."""
    A = np.zeros((Aj.shape[1], 5, 5))
    A[:, _hmm.SRC, _hmm.DST] = Aj.T
    return A


def _enumerate(model, params):
    """Brute force over every block j and every state path of every sequence: the E-step
    statistics (layout of _hmm.stats_layout), per-sequence log-likelihoods, filtered joint
    P(state at T-1, j) and smoothed P(state at t).
    """
    d = model.data_
    a = model._arrays(params)
    prior, Aj, emis, emis0 = a["prior"], a["Aj"], a["emis"], a["emis0"]
    J = prior.shape[0]
    A = _edges_matrix(Aj)
    edge = {(int(s), int(t)): e for e, (s, t) in enumerate(zip(_hmm.SRC, _hmm.DST))}
    o_post, o_trans, o_occ, o_ysum, o_y0, size = _hmm.stats_layout(1, J)
    stats = np.zeros(size)
    S, T = d.counts.shape
    ll = np.zeros(S)
    filt = np.zeros((S, 5, J))
    smooth = np.zeros((S, T, 5))
    for s in range(S):
        e0, y = d.entry[s], d.counts[s]
        n = T - e0
        loc = np.zeros(size)
        tot = 0.0
        for j in range(J):
            for tail in itertools.product(range(5), repeat=n - 1):
                path = (0,) + tail
                pr = prior[j] * emis0[y[e0], j]
                for i in range(1, n):
                    pr *= A[j, path[i - 1], path[i]] * emis[y[e0 + i], path[i], j]
                if pr == 0.0:
                    continue
                tot += pr
                loc[o_post + j] += pr
                loc[o_y0 + j] += pr * y[e0]
                for i in range(1, n):
                    loc[o_occ + path[i] * J + j] += pr
                    loc[o_ysum + path[i] * J + j] += pr * y[e0 + i]
                    loc[o_trans + edge[(path[i - 1], path[i])] * J + j] += pr
                filt[s, path[-1], j] += pr
                for i in range(n):
                    smooth[s, e0 + i, path[i]] += pr
        loc[1:] /= tot
        loc[0] = np.log(tot)
        ll[s] = np.log(tot)
        filt[s] /= tot
        smooth[s] /= tot
        stats += d.weight[s] * loc
    return stats, ll, filt, smooth, a


def _tiny_model(rng, C, rate, K, T, S=7):
    m = LifecycleHMM(n_classes=C, heterogeneity=rate, exit_heterogeneity=K, n_nodes=3, n_exit_nodes=3)
    entry = rng.integers(0, T, S)
    entry[0] = 0
    entry[-1] = T - 1  # enters in the last period: the entry period alone
    counts = rng.poisson(0.7, (S, T)).astype(np.int32)
    counts[np.arange(T)[None, :] < entry[:, None]] = 0
    counts[0] = 0  # never buys again: the whole sequence is a zero tail
    counts[1, -1] = 0  # a tail of at least one period
    if T >= 5:  # a long run of zeros between two purchase periods
        entry[2] = 0
        counts[2] = 0
        counts[2, 1] = 1
        counts[2, T - 1] = 2
    m.set_data(entry, counts, rng.uniform(0.5, 3.0, S))
    return m, m._random_start(rng)


CASES = [
    (1, "gamma", 2, 6),  # runs of up to 4 zero periods between purchases
    (1, None, None, 2),
    (1, "gamma", None, 3),
    (2, None, 2, 3),
    (2, "gamma", 2, 4),
    (1, None, 3, 4),
    (2, "gamma", None, 4),
    (1, "gamma", "gamma", 5),  # the gamma exit frailty's quantile nodes, crossed with the rate nodes
    (2, None, "gamma", 3),
]


@pytest.mark.parametrize("C,rate,K,T", CASES)
def test_forward_backward_equals_enumeration(C, rate, K, T):
    rng = np.random.default_rng(100 * C + 10 * T + (7 if K == "gamma" else K or 0))
    m, p = _tiny_model(rng, C, rate, K, T)
    ref_stats, ref_ll, ref_filt, ref_smooth, a = _enumerate(m, p)
    m.block = 3  # several blocks: the ordered reduction is exercised
    stats, _ = m._estep_raw(p)
    d = m.data_
    np.testing.assert_allclose(stats, ref_stats, rtol=RTOL, atol=0)
    np.testing.assert_allclose(_hmm.loglik_sequences(*m._kernel_args(a)), ref_ll, rtol=RTOL, atol=0)
    filt, ll = _hmm.filter_end(*m._kernel_args(a))
    np.testing.assert_allclose(ll, ref_ll, rtol=RTOL, atol=0)
    np.testing.assert_allclose(filt, ref_filt, rtol=RTOL, atol=1e-300)
    smooth = smoothing.posterior_states(*m._kernel_args(a))
    np.testing.assert_allclose(smooth, ref_smooth, rtol=RTOL, atol=1e-300)
    # forecasts: expected purchases h periods ahead from the filtered joint state
    H = 3
    W, _ = smoothing.forecast_tables(a["Aj"], a["rates"], H)
    A = _edges_matrix(a["Aj"])
    ref_fc = np.zeros((len(d.entry), H))
    for s in range(len(d.entry)):
        for j in range(len(a["prior"])):
            dist = ref_filt[s, :, j]
            for h in range(H):
                dist = dist @ A[j]
                ref_fc[s, h] += dist @ a["rates"][:, j]
    np.testing.assert_allclose(smoothing.forecast_counts(filt, W), ref_fc, rtol=RTOL, atol=1e-300)


def test_entry_convention():
    """The first purchase is no emission; the entry period is exploration with its own rate."""
    p = LifecycleParams(np.array([1.0]), _transitions(), np.array([[0.1, 0.3, 0.6, 0.2]]), np.array([0.45]))
    m = LifecycleHMM(n_classes=1, heterogeneity=None)
    # customer 0 enters in the last period and buys twice more that period (3 purchases in all);
    # customer 1 enters at 0, buys once more in the entry period, then nothing
    m.set_data(np.array([2, 0]), np.array([[0, 0, 2], [1, 0, 0]], dtype=np.int32))
    ll = _hmm.loglik_sequences(*m._kernel_args(m._arrays(p)))
    assert ll[0] == pytest.approx(np.log(0.45**2 * np.exp(-0.45) / 2), rel=1e-14)
    A = p.transitions[0]
    no_buy = np.array([np.exp(-0.1), np.exp(-0.3), np.exp(-0.6), np.exp(-0.2), 1.0])
    step = A @ np.diag(no_buy)
    expected = 0.45 * np.exp(-0.45) * (np.eye(5)[0] @ step @ step).sum()
    assert ll[1] == pytest.approx(np.log(expected), rel=1e-14)
    m.params_ = p
    occupancy = m.stage_occupancy()
    assert occupancy[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]  # customer 1 in exploration at entry
    np.testing.assert_allclose(occupancy.sum(axis=1), [1, 1, 2], rtol=1e-14)


def _transitions(scale=1.0):
    A = np.array(
        [
            [0.6, 0.3, 0, 0, 0.1],
            [0, 0.8, 0.12, 0.08, 0],
            [0, 0, 0.93, 0.07, 0],
            [0, 0.05, 0, 0.85, 0.10],
            [0, 0, 0, 0, 1],
        ]
    )
    return A[None] if scale == 1.0 else A[None] ** scale


def _simulated_panel(n, T, params, seed, max_entry=8):
    rng = np.random.default_rng(seed)
    entry = rng.integers(0, max_entry, n)
    counts = simulate_lifecycle(params, entry, T, rng)
    return group_sequences(entry, counts)


TWO_CLASS = LifecycleParams(
    np.array([0.55, 0.45]),
    np.array(
        [
            [
                [0.6, 0.3, 0, 0, 0.1],
                [0, 0.8, 0.15, 0.05, 0],
                [0, 0, 0.95, 0.05, 0],
                [0, 0.1, 0, 0.8, 0.1],
                [0, 0, 0, 0, 1],
            ],
            [
                [0.3, 0.4, 0, 0, 0.3],
                [0, 0.7, 0.1, 0.2, 0],
                [0, 0, 0.9, 0.1, 0],
                [0, 0.05, 0, 0.8, 0.15],
                [0, 0, 0, 0, 1],
            ],
        ]
    ),
    np.array([[0.1, 0.4, 0.8, 0.2], [0.05, 0.2, 0.5, 0.1]]),
    np.array([0.2, 0.1]),
    1.5,
    np.array([1.0, 0.2, 4.0]),
    np.array([0.5, 0.3, 0.2]),
)


TWO_CLASS_GAMMA = LifecycleParams(
    TWO_CLASS.class_probs,
    TWO_CLASS.transitions,
    TWO_CLASS.rates,
    TWO_CLASS.entry_rates,
    1.5,
    exit_shape=0.7,
)


@pytest.mark.parametrize("exit_kind", [3, "gamma"])
def test_em_never_decreases_loglik_and_keeps_the_structure(exit_kind):
    m = LifecycleHMM(
        n_classes=2, heterogeneity="gamma", exit_heterogeneity=exit_kind, n_nodes=4, n_exit_nodes=5
    )
    m.set_data(*_simulated_panel(300, 16, TWO_CLASS, seed=1))
    start = m._random_start(np.random.default_rng(7))
    p = start
    history = []
    for _ in range(25):  # plain EM, every iteration checked
        st, _ = m._estep(p)
        history.append(st["loglik"])
        p = m._mstep(p, st)
        assert np.all(p.transitions[:, ~_allowed()] == 0.0)
        for lo, hi in ORDER:
            assert np.all(p.rates[:, lo] <= p.rates[:, hi])
        p.check()
    assert np.all(np.diff(history) >= -1e-10 * abs(history[0]))
    # the accelerated EM (SQUAREM with its safeguard) is monotone too
    _, _, _, _, hist = m.run_em(start, max_iter=60)
    assert np.all(np.diff(hist) >= -1e-10 * abs(hist[0]))
    assert hist[-1] > history[-1] - 1.0


def _allowed():
    a = np.zeros((5, 5), dtype=bool)
    a[_hmm.SRC, _hmm.DST] = True
    return a


@pytest.mark.parametrize("exit_kind", [3, "gamma"])
def test_score_and_hessian_match_finite_differences(exit_kind):
    m = LifecycleHMM(
        n_classes=2, heterogeneity="gamma", exit_heterogeneity=exit_kind, n_nodes=4, n_exit_nodes=5
    )
    m.set_data(*_simulated_panel(200, 12, TWO_CLASS, seed=2))
    p = TWO_CLASS if exit_kind == 3 else TWO_CLASS_GAMMA
    coords = Coords(m, p, rates="blocks")
    th = coords.theta(p)
    g, _ = m.score(coords.params(th), coords)
    h = 1e-5
    fd = np.array(
        [
            (m.loglik(coords.params(th + e)) - m.loglik(coords.params(th - e))) / (2 * h)
            for e in np.eye(len(th)) * h
        ]
    )
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * np.abs(g).max())
    # the Hessian behind the standard errors (central differences of the exact score) against
    # second differences of the log-likelihood on a few coordinates
    m.params_ = p
    m.standard_errors(boundary=None)
    H = m.hessian_
    th = m.coords_.theta(p)
    f = lambda t: m.loglik(m.coords_.params(t))  # noqa: E731
    step = 1e-3
    for i, j in [(0, 0), (1, 3), (5, 5), (len(th) - 1, len(th) - 1), (len(th) - 2, 2)]:
        ei, ej = np.eye(len(th))[i] * step, np.eye(len(th))[j] * step
        fd2 = (f(th + ei + ej) - f(th + ei - ej) - f(th - ei + ej) + f(th - ei - ej)) / (4 * step * step)
        assert H[i, j] == pytest.approx(fd2, rel=2e-3, abs=2e-3 * np.abs(np.diag(H)).max())


def test_round_trip_recovers_stage_parameters_within_4_se():
    """A panel simulated from known stage parameters (one class, gamma rate multiplier) is
    recovered: every transition, rate, entry rate and the shape within 4 SEs. (With 6 nodes
    instead of 12 the quadrature error biases the shape by 5 SEs on this panel: its
    customers buy often, so their likelihood is sharp in the multiplier.)
    """
    true = LifecycleParams(
        np.array([1.0]), _transitions(), np.array([[0.05, 0.3, 0.8, 0.15]]), np.array([0.2]), 2.0
    )
    m = LifecycleHMM(
        n_classes=1,
        heterogeneity="gamma",
        n_nodes=12,
        n_starts=2,
        n_final=1,
        screen_iter=10,
        max_iter=150,
        seed=3,
    )
    m.fit(*_simulated_panel(6000, 40, true, seed=4), start=true)
    p = m.params_
    se = m.standard_errors()
    for lo, hi in ORDER:
        assert p.rates[0, lo] <= p.rates[0, hi]
    allowed = _allowed()
    allowed[4, 4] = False
    z_tr = (p.transitions - true.transitions)[:, allowed] / se["transitions"][:, allowed]
    z_rate = (p.rates - true.rates) / se["rates"]
    z_entry = (p.entry_rates - true.entry_rates) / se["entry_rates"]
    z_shape = (p.shape - true.shape) / se["shape"]
    z = np.concatenate([z_tr.ravel(), z_rate.ravel(), z_entry, [z_shape]])
    assert np.all(np.isfinite(z)) and np.max(np.abs(z)) < 4.0, z
    diag = m.diagnostics()
    assert diag["min_information_eigenvalue"] > 0
    assert abs(diag["quadrature_loglik_change"]) < 3.0  # 12 vs 36 nodes, on a 96,000-unit log-likelihood


def test_kernels_bitwise_identical_for_1_and_2_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread")
    m = LifecycleHMM(n_classes=2, heterogeneity="gamma", exit_heterogeneity=3, n_nodes=4, block=8)
    m.set_data(*_simulated_panel(600, 20, TWO_CLASS, seed=5))
    m.params_ = TWO_CLASS
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            raw, a = m._estep_raw(TWO_CLASS)
            m._filter_cache = None  # recompute the filter with this thread count
            results.append(
                (raw, m.filter()["joint"], smoothing.posterior_states(*m._kernel_args(a)), m.predict(10))
            )
    finally:
        numba.set_num_threads(before)
    for x1, x2 in zip(*results):
        assert np.array_equal(x1, x2)


def test_isotonic_rates_is_the_constrained_maximum():
    rng = np.random.default_rng(8)
    for _ in range(200):
        E = rng.uniform(0.1, 10, 4)
        N = rng.uniform(0, 5, 4) * E * rng.uniform(0.2, 3, 4)
        lam, _ = isotonic_rates(N, E)
        for lo, hi in ORDER:
            assert lam[lo] <= lam[hi]
        obj = lambda x: np.sum(N * np.log(x) - E * x)  # noqa: E731
        # no feasible point on a fine random search beats it
        cand = np.sort(rng.uniform(0.01, 20, (2000, 4)), axis=1)[:, [0, 1, 3, 2]]
        cand[::2] = cand[::2][:, [0, 2, 3, 1]]  # formation above or below decline
        feasible = np.all([cand[:, lo] <= cand[:, hi] for lo, hi in ORDER], axis=0)
        best = max(obj(c) for c in cand[feasible])
        assert obj(lam) >= best - 1e-9


def test_forecast_outputs_are_consistent():
    m = LifecycleHMM(n_classes=2, heterogeneity="gamma", exit_heterogeneity=3, n_nodes=4)
    entry = np.random.default_rng(9).integers(0, 6, 400)
    counts = simulate_lifecycle(TWO_CLASS, entry, 14, np.random.default_rng(10))
    m.set_data(*group_sequences(entry, counts))
    m.params_ = TWO_CLASS
    f = m.filter()
    assert np.all((f["p_alive"] >= 0) & (f["p_alive"] <= 1))
    np.testing.assert_allclose(f["stage_probs"].sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(f["class_probs"].sum(axis=1), 1.0, rtol=1e-12)
    E = m.expected_counts(6)
    np.testing.assert_allclose(m.predict(6), E.sum(axis=1), rtol=1e-12)
    assert E.shape == (400, 6) and np.all(E >= 0)
    occ = m.stage_occupancy(horizon=5)
    entered = np.array([(entry <= t).sum() for t in range(14)])
    np.testing.assert_allclose(occ[:14].sum(axis=1), entered, rtol=1e-10)
    np.testing.assert_allclose(occ[14:].sum(axis=1), 400, rtol=1e-10)
    # the tracking curve at calibration periods is the expected count from the model alone
    u = m.unconditional_counts(entry, 14)
    assert u.shape == (14,) and u[0] == pytest.approx(
        (entry == 0).sum() * TWO_CLASS.entry_rates @ TWO_CLASS.class_probs
    )


def test_spend_by_stage_is_ordered_and_recovered():
    rng = np.random.default_rng(11)
    true = LifecycleParams(np.array([1.0]), _transitions(), np.array([[0.2, 0.6, 1.2, 0.4]]), np.array([0.3]))
    entry = rng.integers(0, 5, 3000)
    counts, states, _ = simulate_lifecycle(true, entry, 20, rng, return_states=True)
    g = group_sequences(entry, counts)
    m = LifecycleHMM(n_classes=1, heterogeneity=None)
    m.set_data(*g)
    m.params_ = true
    mu = np.array([2.6, 3.0, 3.4, 2.8])
    cust, period = np.nonzero(counts)
    reps = counts[cust, period]
    cust, period = np.repeat(cust, reps), np.repeat(period, reps)
    amount = np.exp(mu[states[cust, period]] + 0.5 * rng.standard_normal(len(cust)))
    out = m.fit_spend(cust, period, amount)
    for lo, hi in ORDER:
        assert out["mu"][lo] <= out["mu"][hi]
    np.testing.assert_allclose(out["mu"], mu, atol=0.05)
    assert out["sigma"] == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize(
    "entry,counts,match",
    [
        (np.array([0, 1]), np.array([[0, 1], [1, 0]]), "before a sequence's entry"),
        (np.array([0, 2]), np.array([[0, 1], [0, 0]]), "entry periods"),
        (np.array([0, 0]), np.array([[0, -1], [0, 0]]), ">= 0"),
        (np.array([0.0, 0.0]), np.array([[0, 1], [0, 0]]), "integer"),
    ],
)
def test_bad_inputs_are_refused(entry, counts, match):
    with pytest.raises(ValueError, match=match):
        LifecycleHMM(n_classes=1).set_data(entry, counts)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        LifecycleHMM(n_classes=0)
    with pytest.raises(ValueError):
        LifecycleHMM(heterogeneity="lognormal")
    with pytest.raises(ValueError):
        LifecycleHMM(exit_heterogeneity=1)
    with pytest.raises(ValueError):
        LifecycleHMM(exit_heterogeneity="lognormal")
    with pytest.raises(ValueError):
        LifecycleHMM(exit_heterogeneity="gamma", n_exit_nodes=1)
