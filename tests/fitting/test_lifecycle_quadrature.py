"""The gamma exit frailty of the lifecycle HMM is integrated by a quadrature that converges.

* Gauss-Legendre on the gamma's probability scale (:func:`gamma_probability_quadrature`)
  against adaptive quadrature on the frailty likelihood's shape ``(1 + c v)^-t``, where
  Gauss-Laguerre does not converge for small shapes;
* node doubling 12 -> 24 -> 48 moves the log-likelihood by less than 0.1 on a simulated panel
  and on the CDNOW sample;
* the node rule doubles until the change is below its tolerance;
* a panel simulated with a known gamma exit frailty is recovered within 4 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special

from sim.data import load_cdnow_sample, split_transactions
from sim.fitting.lifecycle import (
    ORDER,
    LifecycleHMM,
    LifecycleParams,
    gamma_probability_quadrature,
    gamma_quadrature,
    group_sequences,
    panel_sequences,
    simulate_lifecycle,
)

A = np.array(
    [
        [0.5, 0.4, 0, 0, 0.1],
        [0, 0.8, 0.1, 0.1, 0],
        [0, 0, 0.93, 0.07, 0],
        [0, 0.05, 0, 0.9, 0.05],
        [0, 0, 0, 0, 1],
    ]
)


def _reference(shape, c, t):
    f = lambda x: (1.0 + c * special.gammaincinv(shape, x) / shape) ** (-t)  # noqa: E731
    return integrate.quad(f, 0.0, 1.0, epsabs=0.0, epsrel=1e-13, limit=500)[0]


@pytest.mark.parametrize("shape,c,t", [(0.3, 2.0, 40), (0.1, 10.0, 5), (0.5, 0.5, 78), (1.0, 0.05, 30)])
def test_probability_scale_legendre_converges_where_laguerre_does_not(shape, c, t):
    ref = _reference(shape, c, t)
    errors = []
    for n in (6, 12, 24, 48):
        v, w = gamma_probability_quadrature(shape, n)
        assert w.sum() == pytest.approx(1.0, abs=1e-14) and np.all(w > 0) and np.all(v > 0)
        errors.append(abs(w @ (1.0 + c * v) ** (-t) / ref - 1.0))
    assert errors[2] < 1e-6 and errors[3] < 1e-8, errors
    if shape < 1:  # Gauss-Laguerre misses the peak at v = 0 even with 48 nodes
        u, wu = gamma_quadrature(shape, 48)
        assert abs(wu @ (1.0 + c * u) ** (-t) / ref - 1.0) > 0.1


def test_probability_scale_legendre_at_large_shapes_converges_algebraically():
    """At large shapes the quantile function behaves like x^(1/s) at 0: the error falls by
    about 4 per doubling (not exponentially) — still below 1e-3 relative from 12 nodes on.
    """
    ref = _reference(5.0, 0.05, 40)
    errors = []
    for n in (12, 24, 48):
        v, w = gamma_probability_quadrature(5.0, n)
        errors.append(abs(w @ (1.0 + 0.05 * v) ** (-40) / ref - 1.0))
    assert errors[0] < 2e-3 and errors[1] < errors[0] / 3 and errors[2] < errors[1] / 3


TRUE = LifecycleParams(
    np.array([1.0]), A[None], np.array([[0.05, 0.3, 0.8, 0.15]]), np.array([0.2]), 1.5, exit_shape=0.6
)


def _panel(params, n, T, seed):
    rng = np.random.default_rng(seed)
    entry = rng.integers(0, 8, n)
    return group_sequences(entry, simulate_lifecycle(params, entry, T, rng))


def _changes(model, params, counts=(12, 24, 48)):
    values = [model.loglik_with_nodes(n_exit_nodes=n, params=params) for n in counts]
    return np.diff(values)


def test_node_doubling_on_a_simulated_panel():
    m = LifecycleHMM(n_classes=1, heterogeneity="gamma", exit_heterogeneity="gamma", n_nodes=16)
    m.set_data(*_panel(TRUE, 3000, 30, seed=1))
    changes = _changes(m, TRUE)
    assert np.all(np.abs(changes) < 0.1), changes
    assert abs(changes[1]) <= abs(changes[0]) + 1e-6


def test_node_doubling_on_cdnow():
    """At the specification C1+rate+exitG fitted to the CDNOW sample (39 weeks)."""
    data = split_transactions(load_cdnow_sample(), "1997-09-30", "1998-06-30", unit="week")
    fitted = LifecycleParams(
        np.array([1.0]),
        np.array(
            [
                [
                    [0, 1.0, 0, 0, 0],
                    [0, 0.777351, 0.000816, 0.221833, 0],
                    [0, 0, 0.765365, 0.234635, 0],
                    [0, 0.022374, 0, 0.957312, 0.020314],
                    [0, 0, 0, 0, 1],
                ]
            ]
        ),
        np.array([[0.01404, 0.067045, 0.361514, 0.018597]]),
        np.array([0.027067]),
        0.508439,
        exit_shape=1.158937,
    )
    m = LifecycleHMM(n_classes=1, heterogeneity="gamma", exit_heterogeneity="gamma", n_nodes=32)
    m.set_data(*panel_sequences(data))
    changes = _changes(m, fitted)
    assert np.all(np.abs(changes) < 0.1), changes


def test_node_rule_doubles_until_the_change_is_small():
    m = LifecycleHMM(
        n_classes=1,
        heterogeneity=None,
        exit_heterogeneity="gamma",
        n_exit_nodes=2,
        node_rule=True,
        node_tol=0.01,
        max_nodes=32,
        n_starts=0,
        max_iter=20,
        polish=20,
    )
    params = LifecycleParams(TRUE.class_probs, TRUE.transitions, TRUE.rates, TRUE.entry_rates, exit_shape=0.3)
    m.fit(*_panel(params, 1500, 24, seed=2), start=params)
    history = m.node_history_
    assert history[0]["n_exit_nodes"] == 2 and len(history) >= 2
    for before, after in zip(history[:-1], history[1:]):
        assert abs(before["exit_change"]) >= 0.01 and after["n_exit_nodes"] == 2 * before["n_exit_nodes"]
    last = history[-1]
    assert abs(last["exit_change"]) < 0.01 or 2 * last["n_exit_nodes"] > 32
    assert m.n_exit_nodes == last["n_exit_nodes"]
    assert m.loglik_ == pytest.approx(m.loglik(), abs=1e-6)


def test_round_trip_recovers_a_gamma_exit_frailty_within_4_se():
    true = LifecycleParams(
        np.array([1.0]), A[None], np.array([[0.05, 0.3, 0.8, 0.15]]), np.array([0.2]), exit_shape=0.8
    )
    m = LifecycleHMM(
        n_classes=1,
        heterogeneity=None,
        exit_heterogeneity="gamma",
        n_exit_nodes=12,
        n_starts=1,
        n_final=1,
        screen_iter=5,
        max_iter=100,
        polish=100,
        seed=4,
    )
    m.fit(*_panel(true, 6000, 40, seed=5), start=true)
    p, se = m.params_, m.standard_errors()
    allowed = (A > 0) & ~np.eye(5, dtype=bool)
    z = np.concatenate(
        [
            ((p.transitions - true.transitions)[0][allowed] / se["transitions"][0][allowed]),
            (p.rates - true.rates).ravel() / se["rates"].ravel(),
            [(p.exit_shape - true.exit_shape) / se["exit_shape"]],
        ]
    )
    assert np.all(np.isfinite(z)) and np.max(np.abs(z)) < 4.0, z
    for lo, hi in ORDER:
        assert p.rates[0, lo] <= p.rates[0, hi]
    assert abs(m.quadrature_check()["exit"]) < 0.1


@pytest.mark.parametrize("shape", [150.0, 171.0, 172.0, 500.0, 1e4])
def test_rate_quadrature_stays_exact_at_large_shapes(shape):
    # SciPy's generalised Gauss-Laguerre weights overflow above a shape of about 170; the
    # quadrature must still integrate x and x^2 of Gamma(shape, shape) exactly: mean 1,
    # variance 1/shape (degree < 2 n_nodes)
    nodes, weights = gamma_quadrature(shape, 8)
    assert np.all(np.isfinite(nodes)) and np.all(weights > 0)
    assert weights.sum() == pytest.approx(1.0, abs=1e-14)
    assert np.dot(weights, nodes) == pytest.approx(1.0, abs=1e-13)
    assert np.dot(weights, nodes**2) - 1.0 == pytest.approx(1.0 / shape, rel=1e-9)
    assert np.dot(weights, nodes**3) == pytest.approx((1 + 1 / shape) * (1 + 2 / shape), rel=1e-12)
