"""The model's equations at extreme inputs: both builds (jit-compiled on scalars, ``.py_func`` on
arrays) stay finite, probabilities stay probabilities, and the optimum of (M1) is found for any
allowed gain and annoyance.
"""

from pathlib import Path

import numpy as np
import pytest

import sim
from sim.model import equations as model
from sim.model.sections import MAX_MAGNITUDE, MIN_CARE_SCALE

SIM = Path(sim.__file__).resolve().parent
M = MAX_MAGNITUDE
TINY = 5e-324  # the smallest positive float64
INF = float("inf")

# Both builds of every equation: the numba-compiled one (scalars, as the kernels call it) and
# the plain Python body on NumPy arrays (as the vectorised reference calls it).
BUILDS = ["jit", "py_func"]


def _grid(*axes):
    """Every combination of the given values, as one flat float64 array per axis."""
    mesh = np.meshgrid(*[np.asarray(axis, dtype=float) for axis in axes], indexing="ij")
    return [m.ravel() for m in mesh]


def _evaluate(function, build, *arrays):
    """``function`` on every combination (one call per element for the jitted build, one
    vectorised call for ``.py_func``); NumPy may overflow to ±inf in an intermediate, but
    never perform an invalid operation (inf - inf, 0 * inf), which is what makes a NaN.
    """
    if build == "py_func":
        with np.errstate(invalid="raise", over="ignore", divide="ignore", under="ignore"):
            out = function.py_func(*arrays)
        return (
            tuple(np.asarray(o, dtype=float) for o in out)
            if isinstance(out, tuple)
            else np.asarray(out, dtype=float)
        )
    results = [function(*(float(a[i]) for a in arrays)) for i in range(len(arrays[0]))]
    if isinstance(results[0], tuple):
        return tuple(np.array(column, dtype=float) for column in zip(*results))
    return np.array(results, dtype=float)


# ----------------------------------------------------------------------------- model functions


@pytest.mark.parametrize("build", BUILDS)
def test_logistic_satisfaction_never_overflows(build):
    """(M4) ``s = m s_prev + (1 - m) Λ(d / κ)`` stays a finite number in [0, 1] for any
    disconfirmation (even ±inf) and any scale down to the smallest float, because the
    logistic is evaluated from exp(-|x|) in [0, 1]; and it is monotone in the disconfirmation.
    """
    disconfirmation = [-INF, -1e308, -1e154, -1.0, -TINY, 0.0, TINY, 1.0, 1e154, 1e308, INF]
    previous, d, memory, scale = _grid(
        [0.0, 0.5, 1.0], disconfirmation, [0.0, 0.5, 1.0], [TINY, 1e-300, 1.0, M, 1e300]
    )
    s = _evaluate(model.update_satisfaction, build, previous, d, memory, scale)
    assert np.isfinite(s).all() and (s >= 0.0).all() and (s <= 1.0).all()
    by_d = s.reshape(3, len(disconfirmation), 3, 5)
    assert (np.diff(by_d, axis=1) >= 0.0).all()
    # saturation is exact: with no memory, d = ±inf gives satisfaction 0 and 1
    no_memory = memory == 0.0
    assert (s[no_memory & (d == INF)] == 1.0).all() and (s[no_memory & (d == -INF)] == 0.0).all()


@pytest.mark.parametrize("build", BUILDS)
def test_adjusted_probability_stays_a_probability(build):
    """(M7) ``odds(p) = odds(base) e^shift``: in [0, 1] for any shift (±inf included), with 0
    and 1 fixed points, no overflow in ``exp`` (the shift is clipped to ±60), monotone in shift.
    """
    shifts = [-INF, -1e308, -700.0, -60.0, -1.0, 0.0, 1.0, 60.0, 700.0, 1e308, INF]
    bases = [0.0, TINY, 1e-300, 0.3, 1.0 - 2.0**-53, 1.0]
    base, shift = _grid(bases, shifts)
    p = _evaluate(model.adjusted_probability, build, base, shift)
    assert np.isfinite(p).all() and (p >= 0.0).all() and (p <= 1.0).all()
    assert (p[base == 0.0] == 0.0).all() and (p[base == 1.0] == 1.0).all()
    assert (p[shift == 0.0] == base[shift == 0.0]).all()
    assert (np.diff(p.reshape(len(bases), len(shifts)), axis=1) >= 0.0).all()


@pytest.mark.parametrize("build", BUILDS)
def test_transition_probabilities_are_probabilities_at_any_loyalty_effect(build):
    """(M7) forward and exit probabilities lie in [0, 1] and sum to at most 1 (to rounding)
    for every stage, loyalty, base probability, loyalty effect up to the config maximum and
    segment exit odds from 0 to the maximum.
    """
    stage, loyalty, neutral, forward0, exit0, beta_f, beta_x, odds = _grid(
        [0, 1, 2, 3],
        [0.0, 1.0],
        [0.0, 0.5, 1.0],
        [0.0, 0.5, 1.0],
        [0.0, 0.5, 1.0],
        [0.0, M],
        [0.0, M],
        [0.0, 1.0, M],
    )
    forward, leave = _evaluate(
        model.transition_probabilities, build, stage, loyalty, neutral, forward0, exit0, beta_f, beta_x, odds
    )
    for p in (forward, leave):
        assert np.isfinite(p).all() and (p >= 0.0).all() and (p <= 1.0).all()
    assert (forward + leave <= 1.0 + 4 * np.finfo(float).eps).all()
    # a base probability of 0 is never moved by loyalty or odds
    assert (forward[forward0 == 0.0] == 0.0).all() and (leave[exit0 == 0.0] == 0.0).all()


@pytest.mark.parametrize("build", BUILDS)
def test_loyalty_curve_is_bounded_and_monotone_at_extreme_thresholds(build):
    """(M6) loyalty in [0, 1], non-decreasing in satisfaction, for satisfaction outside [0, 1]
    (clipped) and zone thresholds as close to 0 and 1 as a config allows.
    """
    satisfaction = [-1e300, -1.0, 0.0, TINY, 0.2, 0.5, 0.9, 1.0 - 2.0**-53, 1.0, 2.0, 1e300]
    for defection, affection, low, high in [
        (TINY, 1.0 - 2.0**-53, 0.0, 1.0),
        (0.35, 0.75, 0.38, 0.42),
        (0.5 - 2.0**-53, 0.5, 0.0, 0.0),
        (TINY, 2 * TINY, 1.0, 1.0),
    ]:
        s = np.array(satisfaction)
        args = [np.full_like(s, v) for v in (defection, affection, low, high)]
        loyalty = _evaluate(model.loyalty_from_satisfaction, build, s, *args)
        assert np.isfinite(loyalty).all() and (loyalty >= 0.0).all() and (loyalty <= 1.0).all()
        assert (np.diff(loyalty) >= 0.0).all(), (defection, affection, loyalty)


@pytest.mark.parametrize("build", BUILDS)
def test_care_response_is_finite_over_the_allowed_ranges(build):
    """(M1) ``g(a) = G (1 - e^{-a/c}) - η (a/c)^2`` is finite and at most G for every spend a
    policy can produce (up to MAX_MAGNITUDE² with a segment multiplier), every care scale
    down to MIN_CARE_SCALE and gain and annoyance up to MAX_MAGNITUDE: ``e^{-a/c}`` has a
    non-negative argument, so only the quadratic term grows, to at most ~1e78.
    """
    spend, gain, scale, annoyance = _grid(
        [0.0, TINY, 1.0, M, M * M], [0.0, 1.0, M], [MIN_CARE_SCALE, 1.0, M], [0.0, 0.06, M]
    )
    care = _evaluate(model.care_response, build, spend, gain, scale, annoyance)
    assert np.isfinite(care).all()
    assert (care <= gain).all()
    assert (care[spend == 0.0] == 0.0).all()
    # the worst case is exactly what the formula says, not a clipped stand-in
    worst = (spend == M * M) & (scale == MIN_CARE_SCALE) & (annoyance == M) & (gain == M)
    ratio = M * M / MIN_CARE_SCALE
    np.testing.assert_allclose(care[worst], M - M * ratio * ratio, rtol=1e-15)


@pytest.mark.parametrize("build", BUILDS)
def test_wallet_and_cash_flows_are_finite_at_the_extremes(build):
    """(A2) ``W = median e^{σ z}`` and (C1-C6) stay finite at the largest median, σ = 4 and a
    normal draw of 14 (the generator's ziggurat tail cannot exceed about 13.7), with tenure
    ramps from scales as small as the smallest float and as large as MAX_MAGNITUDE.
    """
    z = np.array([-14.0, 0.0, 14.0])
    wallet = _evaluate(model.customer_wallet, build, z, np.full(3, M), np.full(3, 4.0))
    assert np.isfinite(wallet).all() and (wallet > 0.0).all()
    wallet, tenure, scale, growth, premium, loyalty, high = _grid(
        [0.0, wallet.max()], [0.0, 1.0, 1e6], [TINY, 1.0, M], [0.0, M], [0.0, M], [0.0, 1.0], [0.0, 0.42, 1.0]
    )
    n = len(wallet)
    flows = _evaluate(
        model.period_cash_flows,
        build,
        wallet,
        tenure,
        np.ones(n),
        np.ones(n),
        np.ones(n),
        np.full(n, -M),
        premium,
        loyalty,
        high,
        growth,
        scale,
        np.ones(n),
        np.full(n, M),
        np.zeros(n),
    )
    for part in flows:
        assert np.isfinite(part).all()


@pytest.mark.parametrize(
    "gain, annoyance", [(1.0, 0.06), (1.0, TINY), (1.0, 1e-300), (M, TINY), (M, M), (1e-300, M), (M, 1e-12)]
)
def test_best_care_spend_is_the_peak_even_for_tiny_annoyance(gain, annoyance):
    """The 'maximise satisfaction' spend solves ``G e^{-x} = 2 η x`` (x = a/c). With a tiny
    annoyance the old bracket [0, G/(2η) + 1] was astronomically wide (brentq gave up after
    100 iterations, so the max_satisfaction policy could not run); now it is found.
    """
    scale = 4.0
    spend = model.best_care_spend(gain, scale, annoyance)
    x = spend / scale
    assert math_isfinite(spend) and spend >= 0.0
    # the first-order condition f(x) = G e^{-x} - 2 η x = 0 (f decreasing) changes sign within
    # brentq's tolerance (xtol 2e-12 + rtol 8.9e-16 |x|) of the returned root
    f = lambda x: gain * np.exp(-x) - 2.0 * annoyance * x  # noqa: E731
    delta = 4e-12 + 4e-15 * x
    assert f(max(x - delta, 0.0)) >= 0.0 >= f(x + delta)
    # and it is the peak: the response is lower a little to either side
    response = lambda a: model.care_response.py_func(a, gain, scale, annoyance)  # noqa: E731
    step = max(spend * 1e-3, 1e-6)
    assert response(spend) >= response(spend + step) and response(spend) >= response(max(spend - step, 0.0))


def math_isfinite(value):
    return bool(np.isfinite(value))
