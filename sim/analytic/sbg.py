"""Fader & Hardie's shifted-beta-geometric (sBG) model of contractual retention.

Survival, retention and churn curves, the maximum-likelihood fit to survivor counts, and the
discounted expected lifetime (DEL) and residual lifetime (DERL).

Fader, P. S., & Hardie, B. G. S. (2007). How to project customer retention. Journal of
Interactive Marketing, 21(1), 76-90. Fader, P. S., & Hardie, B. G. S. (2010). Customer-base
valuation in a contractual setting: The perils of ignoring heterogeneity. Marketing Science,
29(1), 85-93.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from sim.analytic._checks import (
    _check_range,
    _check_sbg_parameters,
    _check_whole_periods,
    _float_array,
    _scalar_or_array,
    _short,
)

__all__ = [
    "SBGFit",
    "sbg_survival",
    "sbg_retention",
    "sbg_churn_probability",
    "sbg_fit",
    "sbg_del",
    "sbg_derl",
    "sbg_fisher_information",
    "sbg_standard_errors",
]


# ---------------------------------------------------------------------------
# Fader & Hardie (2007, 2010): shifted-beta-geometric (sBG) model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SBGFit:
    """Maximum-likelihood fit of the shifted-beta-geometric model to one cohort.

    Each customer's per-period churn probability ``theta`` is drawn from a
    ``Beta(alpha, beta)`` distribution and stays fixed; her lifetime ``T``
    (the period in which she churns, ``T = 1, 2, ...``) is geometric given
    ``theta`` (Fader & Hardie 2007).

    Attributes
    ----------
    alpha, beta : float
        Maximum-likelihood estimates of the beta-distribution parameters.
    loglik : float
        Maximised log-likelihood (natural log, full cohort, no constant
        dropped; see :func:`sbg_fit`).
    n_periods : int
        Number of observed periods ``n`` (``len(survivors) - 1``).
    cohort_size : int
        Size of the cohort at time 0 (``survivors[0]``).
    converged : bool
        True when the optimiser reported success and the estimate is an
        interior point of the search box ``exp(+-20)``.
    """

    alpha: float
    beta: float
    loglik: float
    n_periods: int
    cohort_size: int
    converged: bool


def sbg_survival(alpha, beta, t):
    """SBG survival function ``S(t) = P(T > t) = B(alpha, beta + t) / B(alpha, beta)``.

    ``S(t)`` is the expected fraction of a cohort still active after ``t``
    periods, i.e. that renewed at each of the first ``t`` renewal
    opportunities (Fader & Hardie 2007); ``S(0) = 1``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive parameters of the beta mixing distribution.
    t : int or array_like of int
        Periods ``t = 0, 1, 2, ...``; broadcast against ``alpha`` and ``beta``.

    Returns
    -------
    float or numpy.ndarray
        Computed as ``exp(betaln(alpha, beta + t) - betaln(alpha, beta))``
        for numerical stability.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    periods = _check_whole_periods(t, "t", 0)
    return _scalar_or_array(np.exp(special.betaln(a, b + periods) - special.betaln(a, b)))


def sbg_retention(alpha, beta, t):
    """SBG retention rate ``r_t = P(T > t | T > t - 1) = (beta + t - 1) / (alpha + beta + t - 1)``.

    The fraction of customers active in period ``t - 1`` who renew into
    period ``t`` (Fader & Hardie 2007), ``t = 1, 2, ...``; it rises
    with ``t`` because high-churn customers leave first.  ``S(t)`` is the
    product ``r_1 r_2 ... r_t``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive parameters of the beta mixing distribution.
    t : int or array_like of int
        Periods ``t >= 1``; broadcast against ``alpha`` and ``beta``.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    periods = _check_whole_periods(t, "t", 1)
    return _scalar_or_array((b + periods - 1.0) / (a + b + periods - 1.0))


def sbg_churn_probability(alpha, beta, t):
    """SBG lifetime distribution ``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)``.

    The probability that a newly acquired customer churns in period ``t``,
    i.e. fails to renew at the end of period ``t`` (Fader & Hardie
    2007), ``t = 1, 2, ...``; ``P(T = t) = S(t - 1) - S(t)``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive parameters of the beta mixing distribution.
    t : int or array_like of int
        Periods ``t >= 1``; broadcast against ``alpha`` and ``beta``.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    periods = _check_whole_periods(t, "t", 1)
    return _scalar_or_array(np.exp(special.betaln(a + 1.0, b + periods - 1.0) - special.betaln(a, b)))


def _check_survivors(survivors) -> np.ndarray:
    counts = _float_array(survivors, "survivors")
    if counts.ndim != 1 or counts.size < 2:
        raise ValueError(
            "survivors must be a 1-d sequence of at least 2 counts (cohort size and one period), got "
            f"{_short(survivors)}"
        )
    if np.any(counts != np.round(counts)):
        raise ValueError(f"survivors must hold whole numbers of customers, got {_short(survivors)}")
    _check_range(counts, "survivors", 0.0)
    if counts[0] <= 0:
        raise ValueError(f"survivors[0] (the cohort size) must be positive, got {counts[0]:g}")
    if np.any(np.diff(counts) > 0):
        raise ValueError(
            f"survivors must be non-increasing (customers cannot return), got {_short(survivors)}"
        )
    if counts[-1] == counts[0]:
        raise ValueError(
            f"survivors shows no churn ({_short(survivors)}); the sBG likelihood then increases "
            "without bound and has no maximum"
        )
    return counts


def _sbg_negative_loglik(
    log_params: np.ndarray, churned: np.ndarray, still_active: float, periods: np.ndarray
):
    """Negative log-likelihood and its gradient in (log alpha, log beta)."""
    a, b = np.exp(log_params)
    n = periods[-1]
    log_b_ab = special.betaln(a, b)
    log_churn = special.betaln(a + 1.0, b + periods - 1.0) - log_b_ab
    log_survival = special.betaln(a, b + n) - log_b_ab
    loglik = np.dot(churned, log_churn) + still_active * log_survival

    psi = special.digamma
    psi_ab = psi(a + b)
    d_churn_da = psi(a + 1.0) - psi(a + b + periods) - psi(a) + psi_ab
    d_churn_db = psi(b + periods - 1.0) - psi(a + b + periods) - psi(b) + psi_ab
    d_survival_da = psi_ab - psi(a + b + n)
    d_survival_db = psi(b + n) - psi(a + b + n) - psi(b) + psi_ab
    gradient = np.array(
        [
            a * (np.dot(churned, d_churn_da) + still_active * d_survival_da),
            b * (np.dot(churned, d_churn_db) + still_active * d_survival_db),
        ]
    )
    return -loglik, -gradient


def sbg_fit(survivors) -> SBGFit:
    """Fit the sBG model to one cohort's survivor counts by maximum likelihood.

    Parameters
    ----------
    survivors : array_like of int, shape (n + 1,)
        ``survivors[0]`` is the cohort size at acquisition and
        ``survivors[t]`` the number of customers still active after ``t``
        periods (having renewed ``t`` times); non-negative whole numbers,
        non-increasing, ``n >= 1``, with at least one customer lost.

    Returns
    -------
    SBGFit

    Notes
    -----
    The log-likelihood (Fader & Hardie 2007) is::

        LL(alpha, beta) = sum_{t=1}^{n} (survivors[t-1] - survivors[t]) * log P(T = t)
                          + survivors[n] * log S(n)

    It is maximised over ``(log alpha, log beta)`` with L-BFGS-B and an
    analytic (digamma) gradient, starting from the best point of a coarse
    grid.  A cohort whose churn is exactly homogeneous (constant retention)
    has its supremum at ``alpha, beta -> inf``; the fit then stops at the
    search box and reports ``converged=False``.

    References
    ----------
    Fader, P. S., & Hardie, B. G. S. (2007). How to project customer
    retention. Journal of Interactive Marketing, 21(1), 76-90.
    """
    counts = _check_survivors(survivors)
    n_periods = counts.size - 1
    periods = np.arange(1, n_periods + 1, dtype=float)
    churned = counts[:-1] - counts[1:]
    still_active = counts[-1]
    # Per-customer scaling keeps the objective O(1) for any cohort size.
    scale = 1.0 / float(counts[0])
    args = (churned * scale, still_active * scale, periods)

    grid = np.linspace(-3.0, 4.0, 15)
    start = min(
        ((la, lb) for la in grid for lb in grid),
        key=lambda point: _sbg_negative_loglik(np.array(point), *args)[0],
    )
    log_bound = 20.0
    result = optimize.minimize(
        _sbg_negative_loglik,
        np.array(start),
        args=args,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-log_bound, log_bound)] * 2,
        options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2000},
    )
    interior = bool(np.all(np.abs(result.x) < log_bound - 1e-6))
    alpha, beta = np.exp(result.x)
    loglik = -float(result.fun) * float(counts[0])
    return SBGFit(
        alpha=float(alpha),
        beta=float(beta),
        loglik=loglik,
        n_periods=int(n_periods),
        cohort_size=int(counts[0]),
        converged=bool(result.success) and interior and bool(np.isfinite(loglik)),
    )


def _unit_hyp2f1_series(b: float, c: float, z: float) -> float:
    """``2F1(1, b; c; z) = sum_k (b)_k / (c)_k z**k`` for 0 < b < c, 0 < z < 1, summed directly.

    Term ratios ``z (b + k) / (c + k)`` are below ``z``, so the tail after
    the last summed term ``u_K`` is at most ``u_K z / (1 - z)``; summation
    stops once that bound is below 1e-17 of the total.
    """
    chunk = 4096
    total = 0.0
    log_term = 0.0  # log of the first term of the current chunk
    k0 = 0
    while True:
        k = np.arange(k0, k0 + chunk, dtype=float)
        log_ratio = math.log(z) + np.log1p(-(c - b) / (c + k))
        log_terms = log_term + np.concatenate(([0.0], np.cumsum(log_ratio[:-1])))
        total += float(np.sum(np.exp(log_terms)))
        log_term = float(log_terms[-1] + log_ratio[-1])
        k0 += chunk
        if math.exp(log_term) / (1.0 - z) <= 1e-17 * total:
            return total


def _unit_hyp2f1(b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``2F1(1, b; c; z)`` for 0 < b < c and 0 < z < 1, elementwise.

    Uses :func:`scipy.special.hyp2f1`; where it returns a non-finite value or
    one outside the bounds ``1 <= 2F1 <= 1 / (1 - z)`` (scipy 1.17 returns
    nan/inf in parts of this domain, e.g. ``b > 200`` with ``c - b < 0.1``
    and ``z = 1/1.001``), the series is summed directly instead.
    """
    b, c, z = np.broadcast_arrays(b, c, z)
    value = np.array(special.hyp2f1(1.0, b, c, z), dtype=float)
    suspect = ~np.isfinite(value) | (value < 1.0 - 1e-12) | (value * (1.0 - z) > 1.0 + 1e-12)
    for index in zip(*np.nonzero(suspect)):
        value[index] = _unit_hyp2f1_series(float(b[index]), float(c[index]), float(z[index]))
    return value


def sbg_del(alpha, beta, discount):
    """Discounted expected lifetime of a newly acquired customer (sBG model).

    Fader & Hardie (2010)::

        DEL(d) = sum_{t=0}^{inf} S(t) / (1 + d)**t = 2F1(1, beta; alpha + beta; 1 / (1 + d))

    Convention: one unit is received at the start of each period the
    customer is active, the first at acquisition (time 0, undiscounted,
    ``S(0) = 1``) and the one at time ``t`` only if she renewed ``t`` times.
    Multiply by the per-period margin for the expected CLV of a new customer.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive sBG parameters.
    discount : float or array_like
        Per-period discount rate ``d >= 0``; broadcast against the
        parameters.  For ``d == 0`` the expected lifetime
        ``(alpha + beta - 1) / (alpha - 1)`` is returned, which requires
        ``alpha > 1`` (it is infinite otherwise).

    Notes
    -----
    Computed with :func:`scipy.special.hyp2f1`, falling back to direct
    summation of the hypergeometric series (with a rigorous tail bound)
    where scipy returns a non-finite or out-of-bounds value.  In a scan of
    alpha in [0.01, 1000], beta in [0.01, 5000], d in [0.001, 10] against
    brute-force sums, scipy 1.17's finite values were within 3e-8 relative
    error (within 1e-10 for typical parameters such as alpha, beta ~ 0.5-15,
    d >= 0.01); the same applies to :func:`sbg_derl`.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    d = _float_array(discount, "discount")
    _check_range(d, "discount", 0.0)
    a, b, d = np.broadcast_arrays(a, b, d)
    undiscounted = d == 0
    if np.any(undiscounted & (a <= 1)):
        raise ValueError(
            "discount=0 requires alpha > 1: the undiscounted expected lifetime is infinite for alpha <= 1"
        )
    value = np.empty(a.shape)
    value[undiscounted] = (a[undiscounted] + b[undiscounted] - 1.0) / (a[undiscounted] - 1.0)
    discounted = ~undiscounted
    value[discounted] = _unit_hyp2f1(
        b[discounted], a[discounted] + b[discounted], 1.0 / (1.0 + d[discounted])
    )
    return _scalar_or_array(value)


def sbg_derl(alpha, beta, discount, renewals):
    """Discounted expected residual lifetime of a customer who has renewed ``n`` times.

    Fader & Hardie (2010), eq. 6::

        DERL(d | n) = (beta + n) / (alpha + beta + n)
                      * 2F1(1, beta + n + 1; alpha + beta + n + 1; 1 / (1 + d))
                    = sum_{t=n+1}^{inf} [S(t) / S(n)] / (1 + d)**(t - n - 1)

    Convention (read off the series): the customer is active after ``n``
    renewals (``T > n``) and is valued at her next renewal opportunity,
    just before she decides.  The unit paid at that (``n + 1``-th) renewal
    counts with probability ``S(n+1)/S(n)`` and is *not* discounted; the
    unit at the ``(n + 1 + j)``-th renewal is discounted by ``(1 + d)**-j``.
    The unit already paid for the current period is not included.
    Valuing instead at the moment of the ``n``-th renewal (after its payment)
    multiplies this by ``1 / (1 + d)``; in particular
    ``DEL(d) = 1 + DERL(d | 0) / (1 + d)``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive sBG parameters.
    discount : float or array_like
        Per-period discount rate ``d >= 0``.  For ``d == 0`` the expected
        residual lifetime ``(beta + n) / (alpha - 1)`` is returned, which
        requires ``alpha > 1``.
    renewals : int or array_like of int
        Number of renewals made so far, ``n >= 0``.  All arguments broadcast.

    References
    ----------
    Fader, P. S., & Hardie, B. G. S. (2010). Customer-base valuation in a
    contractual setting: The perils of ignoring heterogeneity. Marketing
    Science, 29(1), 85-93.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    d = _float_array(discount, "discount")
    _check_range(d, "discount", 0.0)
    n = _check_whole_periods(renewals, "renewals", 0)
    a, b, d, n = np.broadcast_arrays(a, b, d, n)
    undiscounted = d == 0
    if np.any(undiscounted & (a <= 1)):
        raise ValueError(
            "discount=0 requires alpha > 1: the undiscounted expected residual lifetime is infinite for "
            "alpha <= 1"
        )
    renewal_probability = (b + n) / (a + b + n)
    value = np.empty(a.shape)
    value[undiscounted] = (b[undiscounted] + n[undiscounted]) / (a[undiscounted] - 1.0)
    discounted = ~undiscounted
    bn = b[discounted] + n[discounted]
    value[discounted] = renewal_probability[discounted] * _unit_hyp2f1(
        bn + 1.0, a[discounted] + bn + 1.0, 1.0 / (1.0 + d[discounted])
    )
    return _scalar_or_array(value)


def _outcome_probabilities_and_scores(alpha: float, beta: float, n_periods: int):
    """Probabilities of the n + 1 outcomes {T = 1, ..., T = n, T > n} of one customer observed
    for n periods, and the score (gradient of the log-probability in (alpha, beta)) of each.
    """
    t = np.arange(1, n_periods + 1, dtype=float)
    log_b = special.betaln(alpha, beta)
    log_p = np.append(
        special.betaln(alpha + 1.0, beta + t - 1.0) - log_b, special.betaln(alpha, beta + n_periods) - log_b
    )
    psi = special.digamma
    psi_ab = psi(alpha + beta)
    score_alpha = np.append(
        psi(alpha + 1.0) - psi(alpha + beta + t) - psi(alpha) + psi_ab, psi_ab - psi(alpha + beta + n_periods)
    )
    score_beta = np.append(
        psi(beta + t - 1.0) - psi(alpha + beta + t) - psi(beta) + psi_ab,
        psi(beta + n_periods) - psi(alpha + beta + n_periods) - psi(beta) + psi_ab,
    )
    return np.exp(log_p), np.stack([score_alpha, score_beta], axis=1)


def sbg_fisher_information(alpha: float, beta: float, n_periods: int) -> np.ndarray:
    """Expected Fisher information about ``(alpha, beta)`` in ONE customer's sBG data.

    A customer observed for ``n`` periods yields one of ``n + 1`` outcomes: churn in period
    ``t = 1 .. n`` (``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)``) or still
    active after ``n`` periods (``S(n) = B(alpha, beta + n) / B(alpha, beta)``), Fader &
    Hardie (2007). The information is ``sum_k p_k s_k s_k^T`` over the outcomes, with the
    scores ``s_k = grad log p_k`` written with digamma functions; a cohort of ``N``
    independent customers carries ``N`` times this.

    Returns
    -------
    ndarray, shape (2, 2)
        Rows and columns in the order (alpha, beta).
    """
    if not (alpha > 0 and beta > 0):
        raise ValueError(f"alpha = {alpha!r}, beta = {beta!r}: both must be > 0")
    if int(n_periods) != n_periods or n_periods < 1:
        raise ValueError(f"n_periods = {n_periods!r}: must be a whole number >= 1")
    probabilities, scores = _outcome_probabilities_and_scores(float(alpha), float(beta), int(n_periods))
    return (scores * probabilities[:, None]).T @ scores


def sbg_standard_errors(alpha: float, beta: float, cohort_size: int, n_periods: int) -> tuple[float, float]:
    """Asymptotic standard errors of the sBG maximum-likelihood estimates of ``alpha`` and
    ``beta`` for a cohort of ``cohort_size`` customers observed for ``n_periods`` periods:
    the square roots of the diagonal of the inverse of ``cohort_size *``
    :func:`sbg_fisher_information`. NaN where the information matrix is singular.
    """
    information = cohort_size * sbg_fisher_information(alpha, beta, n_periods)
    try:
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")
    diagonal = np.diag(covariance)
    return tuple(float(math.sqrt(v)) if v > 0 else float("nan") for v in diagonal)  # type: ignore[return-value]
