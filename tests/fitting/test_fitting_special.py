"""Special functions and likelihoods against direct numerical integration.

mpmath is not installed in the project's environment, so the references are SciPy
quadratures of integral representations (each written differently from the library's code).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from sim.fitting import _special, bgnbd, pnbd

# The references below are quadratures pushed to their limits (relative tolerance 1e-11 to
# 1e-12); QUADPACK may warn that it cannot certify such a tolerance. The assertions check the
# agreement itself.
pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")


def reference_hyp2f1_unit(b: float, c: float, z: float) -> float:
    """2F1(1, b; c; z) = (c - 1) ∫_0^1 w^(c-2) (1 - z + z w)^(-b) dw (Euler's integral with
    u = 1 - w), by quadrature on pieces that follow the peak at w ~ (1 - z)/z, in log space
    (the endpoint singularity w^(c-2), c < 2, through QUADPACK's algebraic weight).
    """
    if z == 0:
        return 1.0
    width = (1.0 - z) / z
    edges = [0.0] + [width * 10.0**k for k in range(-2, 30) if width * 10.0**k < 1.0] + [1.0]

    def log_smooth(w):
        return -b * np.log((1.0 - z) + z * w)

    def log_full(w):
        return (c - 2.0) * np.log(w) + log_smooth(w)

    grid = np.array(edges[1:] + [e * 3.0 for e in edges[1:-1]])
    shift = float(np.max(log_full(grid)))
    if c < 2.0:
        shift = max(shift, float(log_smooth(0.0)))
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        if lo == 0.0 and c < 2.0:
            value, _ = integrate.quad(
                lambda w: np.exp(log_smooth(w) - shift),
                0.0,
                hi,
                weight="alg",
                wvar=(c - 2.0, 0.0),
                epsabs=0.0,
                epsrel=1e-12,
                limit=200,
            )
        else:
            value, _ = integrate.quad(
                lambda w: np.exp(log_full(w) - shift), lo, hi, epsabs=0.0, epsrel=1e-12, limit=200
            )
        total += value
    return (c - 1.0) * total * math.exp(shift)


HYP_CASES = [
    (b, b + d, z)
    for b in (1e-3, 0.5, 2.5, 50.0, 1e3, 1e5)
    for d in (0.01, 0.6, 1.0, 3.0, 20.0)
    for z in (0.0, 1e-6, 0.5, 0.99, 0.99999, 1 - 1e-8)
    if b + d > 1.0
]


def test_log_hyp2f1_unit_at_extreme_inputs_matches_quadrature():
    worst = 0.0
    for b, c, z in HYP_CASES:
        got = _special.log_hyp2f1_unit(b, c, z)
        want = math.log(reference_hyp2f1_unit(b, c, z))
        worst = max(worst, abs(got - want) / max(1.0, abs(want)))
        assert got == pytest.approx(want, rel=1e-8, abs=1e-8), (b, c, z)
    assert worst < 1e-8


def test_quadrature_fallback_agrees_with_scipy():
    # the fallback used where SciPy's hyp2f1 would fail agrees with SciPy where it does not
    for b, c, z in [(0.3, 1.2, 0.9), (40.0, 41.5, 0.999), (2.0, 2.01, 0.99999), (1e4, 1e4 + 3, 0.5)]:
        assert _special._hyp2f1_unit_by_quadrature(b, c, z) == pytest.approx(
            special.hyp2f1(1, b, c, z), rel=1e-9
        )


def reference_log_tail(p, q, alpha, beta, t):
    """Log ∫_t^∞ (alpha+τ)^-p (beta+τ)^-q dτ by quadrature in u = log(1 + (τ - t)/(m + t))."""
    m = max(alpha, beta) + t

    def log_integrand(u):
        tau = t + m * math.expm1(u)
        return -p * math.log(alpha + tau) - q * math.log(beta + tau) + math.log(m) + u

    shift = log_integrand(0.0)
    upper = min(600.0, 80.0 / (p + q - 1.0))  # the integrand decays like exp(-(p + q - 1) u)
    value, _ = integrate.quad(
        lambda u: math.exp(log_integrand(u) - shift), 0.0, upper, epsabs=0.0, epsrel=1e-11, limit=500
    )
    return math.log(value) + shift


@pytest.mark.parametrize(
    "p, q, alpha, beta, t",
    [
        (1.55, 0.61, 10.6, 11.7, 38.9),  # CDNOW-like, alpha < beta
        (3.55, 0.61, 15.0, 3.0, 12.0),  # alpha > beta
        (0.7, 1.6, 5.0, 5.0, 0.0),  # alpha = beta
        (0.7, 1.6, 5.0, 5.0 * (1 + 1e-9), 2.0),
        (222.5, 0.29, 2.88, 14.1, 103.6),  # a heavy buyer (CLVTools' PAlive regression case)
        (0.55, 1.6, 1e-3, 50.0, 0.0),  # alpha << beta: z -> 1
        (5.5, 0.3, 80.0, 1e-3, 0.0),  # beta << alpha: z -> 1, the series diverges like (1-z)^(q-1)
    ],
)
def test_log_power_tail_matches_quadrature(p, q, alpha, beta, t):
    assert _special.log_power_tail(p, q, alpha, beta, t) == pytest.approx(
        reference_log_tail(p, q, alpha, beta, t), rel=1e-9, abs=1e-9
    )


def pnbd_likelihood_by_integration(r, alpha, s, beta, x, t_x, T):
    """∫∫ L(λ, μ | x, t_x, T) g(λ; r, α) g(μ; s, β) dλ dμ with the individual likelihood of the
    note (eq. 3): λ^x e^-(λ+μ)T + μ/(λ+μ) λ^x [e^-(λ+μ)t_x - e^-(λ+μ)T], written as the sum
    λ^x μ/(λ+μ) e^-(λ+μ)t_x + λ^(x+1)/(λ+μ) e^-(λ+μ)T, over log λ and log μ.
    """

    def integrand(v, u):
        lam, mu = math.exp(u), math.exp(v)
        log_prior = (
            r * u
            - alpha * lam
            + r * math.log(alpha)
            - math.lgamma(r)
            + s * v
            - beta * mu
            + s * math.log(beta)
            - math.lgamma(s)
        )
        first = x * u + math.log(mu / (lam + mu)) - (lam + mu) * t_x
        second = (x + 1) * u - math.log(lam + mu) - (lam + mu) * T
        return math.exp(log_prior + np.logaddexp(first, second))

    lam_hi = math.log((r + x + 40 * math.sqrt(r + x) + 40) / alpha)
    mu_hi = math.log((s + 40 * math.sqrt(s) + 40) / beta)
    value, _ = integrate.dblquad(
        integrand, math.log(1e-14 / alpha), lam_hi, math.log(1e-14 / beta), mu_hi, epsabs=0.0, epsrel=1e-10
    )
    return value


@pytest.mark.parametrize(
    "params, customer",
    [
        ((0.55, 10.6, 0.61, 11.7), (2, 30.43, 38.86)),  # alpha < beta
        ((0.55, 10.6, 0.61, 11.7), (0, 0.0, 38.86)),
        ((1.3, 14.0, 0.8, 3.0), (4, 20.0, 30.0)),  # alpha > beta
        ((1.3, 3.0, 0.8, 14.0), (1, 2.0, 30.0)),  # alpha < beta, far apart
        ((0.9, 6.0, 1.4, 6.0), (3, 11.0, 12.0)),  # alpha = beta
        ((0.9, 6.0, 1.4, 6.0 * (1 + 1e-10)), (3, 11.0, 12.0)),  # alpha ~ beta
    ],
)
def test_pnbd_likelihood_matches_double_integral(params, customer):
    got = float(pnbd.loglik(*params, *customer))
    want = math.log(pnbd_likelihood_by_integration(*params, *customer))
    assert got == pytest.approx(want, abs=1e-6)


def test_pnbd_likelihood_is_continuous_across_alpha_equals_beta():
    x, t_x, T = np.array([0, 1, 5, 30]), np.array([0.0, 3.0, 20.0, 35.0]), np.array([10.0, 20.0, 30.0, 39.0])
    at = pnbd.loglik(0.7, 8.0, 0.9, 8.0, x, t_x, T)
    for eps in (1e-12, 1e-8, 1e-5):
        assert pnbd.loglik(0.7, 8.0 * (1 + eps), 0.9, 8.0, x, t_x, T) == pytest.approx(
            at, abs=20 * eps + 1e-12
        )
        assert pnbd.loglik(0.7, 8.0 * (1 - eps), 0.9, 8.0, x, t_x, T) == pytest.approx(
            at, abs=20 * eps + 1e-12
        )


def test_pnbd_p_alive_is_finite_for_heavy_buyers():
    # CLVTools' regression case "numerically stable PAlive that produced NaNs"
    x = np.array([221, 254, 161, 204])
    t_x = np.array([103.42857, 97.14286, 94.71429, 98.57143])
    T = np.array([103.57143, 97.28571, 98.00000, 99.42857])
    alive = pnbd.p_alive(0.5143, 2.8845, 0.2856, 14.1087, x, t_x, T)
    assert np.all(np.isfinite(alive)) and np.all((alive > 0) & (alive <= 1))
    # the last purchase close to T: nearly certainly alive; 3.3 weeks ago at ~2 purchases a week: less so
    assert alive[0] > 0.99 and alive[2] < alive[0]


def bgnbd_likelihood_by_integration(r, alpha, a, b, x, t_x, T):
    """∫∫ [(1-p)^x λ^x e^-λT + δ(x>0) p (1-p)^(x-1) λ^x e^-λ t_x] g(λ; r, α) beta(p; a, b) dλ dp."""
    log_beta = special.betaln(a, b)

    def integrand(p, u):
        lam = math.exp(u)
        prior = math.exp(
            r * u
            - alpha * lam
            + r * math.log(alpha)
            - math.lgamma(r)
            + (a - 1) * math.log(p)
            + (b - 1) * math.log1p(-p)
            - log_beta
        )
        value = (1 - p) ** x * lam**x * math.exp(-lam * T)
        if x > 0:
            value += p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x)
        return prior * value

    hi = math.log((r + x + 40 * math.sqrt(r + x) + 40) / alpha)
    value, _ = integrate.dblquad(integrand, math.log(1e-14 / alpha), hi, 0.0, 1.0, epsabs=0.0, epsrel=1e-10)
    return value


@pytest.mark.parametrize("customer", [(0, 0.0, 38.86), (2, 30.43, 38.86), (7, 10.0, 20.0)])
def test_bgnbd_likelihood_matches_double_integral(customer):
    params = (0.8, 4.4, 1.3, 2.4)  # a, b > 1 keep the beta density bounded for the quadrature
    got = float(bgnbd.loglik(*params, *customer))
    assert got == pytest.approx(math.log(bgnbd_likelihood_by_integration(*params, *customer)), abs=1e-6)


def bgnbd_residual_by_integration(r, alpha, a, b, x, T, t):
    """E[Y(t) | alive at T] = E_p[(1 - ((α+T)/(α+T+pt))^(r+x)) / p], p ~ Beta(a, b + x)."""

    def integrand(p):
        return -math.expm1(-(r + x) * math.log1p(p * t / (alpha + T))) / p * stats.beta.pdf(p, a, b + x)

    value, _ = integrate.quad(
        integrand, 0.0, 1.0, epsabs=0.0, epsrel=1e-11, limit=500, points=[1e-6, 1e-3, 0.1]
    )
    return value


@pytest.mark.parametrize("a", [0.35, 0.793, 1.0, 1.0 + 1e-9, 2.7])
@pytest.mark.parametrize(
    "x, T, t", [(0, 0.0, 0.5), (0, 38.86, 39.0), (2, 38.86, 39.0), (40, 30.0, 1e4), (3, 5.0, 1e6)]
)
def test_bgnbd_expectations_match_an_integral_over_the_dropout_probability(a, x, T, t):
    # eqs. 9 and 10 through Euler's transformation, including a <= 1 (E[1/p] infinite), a = 1
    # (a removable singularity) and far horizons, where the untransformed 2F1 diverges
    r, alpha, b = 0.243, 4.414, 2.426
    got = float(bgnbd._residual(r, alpha, a, b, x, T, t))
    assert got == pytest.approx(bgnbd_residual_by_integration(r, alpha, a, b, x, T, t), rel=1e-6)


@pytest.mark.parametrize("s, z", [(0.6, 0.13), (0.6, 1e-5), (1.0, 0.2), (2.5, 0.05), (0.3, 30.0)])
def test_tricomi_u_matches_the_gamma_expectation(s, z):
    # b · z^(s-1) U(s, s, z) with z = δ b is E[1/(δ + M)] for M ~ Gamma(s, rate b); take b = 1
    want, _ = integrate.quad(
        lambda m: stats.gamma.pdf(m, s) / (z + m),
        0.0,
        np.inf,
        epsabs=0.0,
        epsrel=1e-11,
        limit=500,
        points=None,
    )
    assert _special.tricomi_u_ss(s, z) == pytest.approx(want, rel=1e-7)


def test_expm1_ratio():
    assert _special.expm1_ratio(0.0, 2.5) == 2.5
    assert _special.expm1_ratio(1e-12, 2.5) == pytest.approx(2.5, rel=1e-11)
    assert _special.expm1_ratio(-0.5, 2.0) == pytest.approx((1 - math.exp(1.0)) / -0.5)
