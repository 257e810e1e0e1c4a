"""Monte Carlo check of the lifecycle HMM's forecasts.

Parameters are fitted to a small simulated panel (two classes' worth of structure in one
class with a gamma rate multiplier and a gamma exit frailty); a large cohort is then
simulated from the fitted parameters over a calibration and a holdout period, and the
model's expected holdout purchases given each customer's calibration history (filtered
state propagated through the chain) are compared with the simulated ones: in total, per
holdout period and per calibration-frequency group, within 4 standard errors. The
model-implied purchases of a new customer (the tracking curve) are checked the same way.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.fitting.lifecycle import LifecycleHMM, LifecycleParams, group_sequences, simulate_lifecycle

TRUE = LifecycleParams(
    np.array([1.0]),
    np.array(
        [
            [
                [0.4, 0.5, 0, 0, 0.1],
                [0, 0.8, 0.12, 0.08, 0],
                [0, 0, 0.93, 0.07, 0],
                [0, 0.06, 0, 0.88, 0.06],
                [0, 0, 0, 0, 1],
            ]
        ]
    ),
    np.array([[0.05, 0.3, 0.7, 0.12]]),
    np.array([0.2]),
    1.2,
    exit_shape=0.7,
)
T_CAL, HORIZON = 20, 12


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(21)
    entry = rng.integers(0, 6, 2000)
    counts = simulate_lifecycle(TRUE, entry, T_CAL, rng)
    m = LifecycleHMM(
        n_classes=1,
        heterogeneity="gamma",
        exit_heterogeneity="gamma",
        n_nodes=8,
        n_exit_nodes=6,
        n_starts=2,
        n_final=1,
        screen_iter=10,
        max_iter=60,
        polish=40,
        seed=1,
    )
    m.fit(*group_sequences(entry, counts), start=TRUE)
    return m.params_


def _within(actual, expected, se, k=4.0):
    return abs(actual - expected) <= k * se


def test_expected_holdout_purchases_match_a_simulation_from_the_fitted_parameters(fitted):
    rng = np.random.default_rng(22)
    n = 30_000
    entry = rng.integers(0, 6, n)
    counts = simulate_lifecycle(fitted, entry, T_CAL + HORIZON, rng)
    m = LifecycleHMM(
        n_classes=1, heterogeneity="gamma", exit_heterogeneity="gamma", n_nodes=16, n_exit_nodes=12
    )
    m.set_data(*group_sequences(entry, counts[:, :T_CAL]))
    m.params_ = fitted
    expected = m.expected_counts(HORIZON)  # (n, HORIZON)
    actual = counts[:, T_CAL:]
    assert np.all(expected >= 0)
    # in total: the residuals are independent across customers
    residual = actual.sum(axis=1) - expected.sum(axis=1)
    se = residual.std(ddof=1) * np.sqrt(n)
    assert _within(actual.sum(), expected.sum(), se), (actual.sum(), expected.sum(), se)
    # per holdout period
    for h in range(HORIZON):
        r = actual[:, h] - expected[:, h]
        assert _within(actual[:, h].sum(), expected[:, h].sum(), r.std(ddof=1) * np.sqrt(n)), h
    # per calibration-frequency group (0, 1, 2, 3-5, 6+ repeat purchases)
    frequency = counts[:, :T_CAL].sum(axis=1)
    for lo, hi in ((0, 0), (1, 1), (2, 2), (3, 5), (6, 10**6)):
        group = (frequency >= lo) & (frequency <= hi)
        r = residual[group]
        assert group.sum() > 100
        assert _within(actual[group].sum(), expected[group].sum(), r.std(ddof=1) * np.sqrt(group.sum())), (
            lo,
            hi,
        )


def test_p_alive_matches_the_simulated_states(fitted):
    rng = np.random.default_rng(24)
    n = 20_000
    entry = rng.integers(0, 6, n)
    counts, states, _ = simulate_lifecycle(fitted, entry, T_CAL, rng, return_states=True)
    m = LifecycleHMM(
        n_classes=1, heterogeneity="gamma", exit_heterogeneity="gamma", n_nodes=16, n_exit_nodes=12
    )
    m.set_data(*group_sequences(entry, counts))
    m.params_ = fitted
    f = m.filter()
    alive = states[:, -1] != 4
    p = f["p_alive"]
    assert _within(alive.sum(), p.sum(), np.sqrt(np.sum(p * (1 - p))))
    for k in range(5):  # each stage at the calibration end
        q = f["stage_probs"][:, k]
        assert _within((states[:, -1] == k).sum(), q.sum(), max(np.sqrt(np.sum(q * (1 - q))), 1.0)), k


def test_the_tracking_curve_matches_a_simulation(fitted):
    rng = np.random.default_rng(25)
    n = 30_000
    counts = simulate_lifecycle(fitted, np.zeros(n, dtype=np.int64), T_CAL, rng)
    m = LifecycleHMM(
        n_classes=1, heterogeneity="gamma", exit_heterogeneity="gamma", n_nodes=16, n_exit_nodes=12
    )
    m.set_data(np.zeros(1, dtype=np.int64), np.zeros((1, T_CAL), dtype=np.int32))
    m.params_ = fitted
    curve = m.unconditional_curve(T_CAL)
    for t in range(T_CAL):
        se = counts[:, t].std(ddof=1) / np.sqrt(n)
        assert _within(counts[:, t].mean(), curve[t], se), t
