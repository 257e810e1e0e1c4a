"""Blattberg & Deighton's customer-equity test: response curves of acquisition and retention
spend, and the spend that maximises customer equity.

Blattberg, R. C., & Deighton, J. (1996). Manage marketing by the customer equity test.
Harvard Business Review, 74(4), 136-144.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from sim.analytic._checks import _check_discount, _check_range, _float_array, _scalar, _scalar_or_array

__all__ = ["BDOptimum", "bd_response_rate", "bd_calibrate", "bd_customer_equity", "bd_optimal_spend"]


# ---------------------------------------------------------------------------
# Blattberg & Deighton (1996): customer equity test
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BDOptimum:
    """Equity-maximising spends of the Blattberg & Deighton (1996) model.

    Attributes
    ----------
    acquisition_spend : float
        Acquisition spend per prospect ``A*``.
    retention_spend : float
        Retention spend per customer per period ``R*``.
    equity : float
        Customer equity per prospect at the optimum.
    acquisition_rate, retention_rate : float
        Response rates ``a(A*)`` and ``r(R*)`` at the optimum.
    """

    acquisition_spend: float
    retention_spend: float
    equity: float
    acquisition_rate: float
    retention_rate: float


def _check_response_curve(ceiling, k, ceiling_name: str, k_name: str) -> tuple[np.ndarray, np.ndarray]:
    ceiling = _float_array(ceiling, ceiling_name)
    _check_range(ceiling, ceiling_name, 0.0, 1.0, low_inclusive=False)
    k = _float_array(k, k_name)
    _check_range(k, k_name, 0.0, low_inclusive=False)
    return ceiling, k


def bd_response_rate(ceiling, k, spend):
    """Blattberg & Deighton response curve ``rate = ceiling * (1 - exp(-k * spend))``.

    Used for both the acquisition rate (spend per prospect) and the
    retention rate (spend per customer per period).

    Parameters
    ----------
    ceiling : float or array_like
        Highest attainable rate, in (0, 1].
    k : float or array_like
        Positive response coefficient.
    spend : float or array_like
        Spend ``>= 0``.  All arguments broadcast.
    """
    ceiling, k = _check_response_curve(ceiling, k, "ceiling", "k")
    spend = _float_array(spend, "spend")
    _check_range(spend, "spend", 0.0)
    return _scalar_or_array(ceiling * -np.expm1(-k * spend))


def bd_calibrate(ceiling, spend, observed_rate):
    """Response coefficient ``k`` of a Blattberg & Deighton curve through one observation.

    Solves ``observed_rate = ceiling * (1 - exp(-k * spend))``:
    ``k = -ln(1 - observed_rate / ceiling) / spend``.

    Parameters
    ----------
    ceiling : float or array_like
        Ceiling rate in (0, 1].
    spend : float or array_like
        Current spend, ``> 0``.
    observed_rate : float or array_like
        Rate observed at that spend, ``0 < observed_rate < ceiling``.
    """
    ceiling = _float_array(ceiling, "ceiling")
    _check_range(ceiling, "ceiling", 0.0, 1.0, low_inclusive=False)
    spend = _float_array(spend, "spend")
    _check_range(spend, "spend", 0.0, low_inclusive=False)
    rate = _float_array(observed_rate, "observed_rate")
    _check_range(rate, "observed_rate", 0.0, low_inclusive=False)
    if np.any(rate >= ceiling):
        raise ValueError(
            f"observed_rate must be below ceiling, got observed_rate={rate.tolist()}, "
            f"ceiling={ceiling.tolist()}"
        )
    return _scalar_or_array(-np.log1p(-rate / ceiling) / spend)


def bd_customer_equity(acq_spend, ret_spend, margin, discount, ceiling_a, k_a, ceiling_r, k_r):
    """Blattberg & Deighton (1996) customer equity per prospect.

    ::

        CE = a m - A + a (m - R / r) * r' / (1 - r'),   r' = r / (1 + d)
           = a m - A + a (m r - R) / (1 + d - r)

    with ``a = ceiling_a (1 - exp(-k_a A))`` and
    ``r = ceiling_r (1 - exp(-k_r R))`` (the second form is the same
    expression without the ``0/0`` at ``R = 0``).

    Timing convention: at time 0 the firm spends ``A`` on a prospect, who
    is acquired with probability ``a`` and yields margin ``m`` at once
    (undiscounted).  In each later period ``t = 1, 2, ...`` the firm spends
    ``R`` on every customer still active at the start of the period (count
    ``a r**(t-1)``) and earns ``m`` from each retained one (count
    ``a r**t``), both discounted by ``(1 + d)**-t``:
    ``a * sum_{t>=1} (m r**t - R r**(t-1)) / (1 + d)**t``.

    Parameters
    ----------
    acq_spend : float or array_like
        Acquisition spend per prospect ``A >= 0``.
    ret_spend : float or array_like
        Retention spend per customer per period ``R >= 0``.
    margin : float or array_like
        Margin per customer per period ``m``.
    discount : float or array_like
        Per-period discount rate ``d >= 0``.
    ceiling_a, k_a : float or array_like
        Acquisition response curve: ceiling in (0, 1], ``k_a > 0``.
    ceiling_r, k_r : float or array_like
        Retention response curve: ceiling in (0, 1], ``k_r > 0``.
        All arguments broadcast.

    Returns
    -------
    float or numpy.ndarray
        Customer equity per prospect.

    References
    ----------
    Blattberg, R. C., & Deighton, J. (1996). Manage marketing by the
    customer equity test. Harvard Business Review, 74(4), 136-144.
    """
    ceiling_a, k_a = _check_response_curve(ceiling_a, k_a, "ceiling_a", "k_a")
    ceiling_r, k_r = _check_response_curve(ceiling_r, k_r, "ceiling_r", "k_r")
    A = _float_array(acq_spend, "acq_spend")
    _check_range(A, "acq_spend", 0.0)
    R = _float_array(ret_spend, "ret_spend")
    _check_range(R, "ret_spend", 0.0)
    m = _float_array(margin, "margin")
    d = _float_array(discount, "discount")
    _check_range(d, "discount", 0.0)
    acquisition = ceiling_a * -np.expm1(-k_a * A)
    retention = ceiling_r * -np.expm1(-k_r * R)
    gap = 1.0 + d - retention
    if np.any(gap <= 0):
        raise ValueError("retention rate must be < 1 + discount (retention 1 with discount 0 never ends)")
    return _scalar_or_array(acquisition * m - A + acquisition * (m * retention - R) / gap)


def bd_optimal_spend(margin, discount, ceiling_a, k_a, ceiling_r, k_r) -> BDOptimum:
    """Acquisition and retention spends that maximise Blattberg & Deighton customer equity.

    Derivation.  Write the equity of :func:`bd_customer_equity` as
    ``CE(A, R) = a(A) * [m + f(R)] - A`` with
    ``f(R) = (m r(R) - R) / (1 + d - r(R))``, the value of the retention
    stream of an acquired customer.  For ``A > 0``, ``a(A) > 0``, so the
    best ``R`` maximises ``f`` whatever ``A`` is: the retention optimum is a
    1-D problem independent of acquisition spend.

    *Retention.*  ``f'(R) = g(R) / (1 + d - r)**2`` with
    ``g(R) = r'(R) (m (1 + d) - R) - (1 + d - r(R))``.  Since
    ``g'(R) = r''(R) (m (1 + d) - R) < 0`` for ``R < m (1 + d)`` and
    ``g(R) < 0`` for ``R >= m (1 + d)``, ``f`` has a unique maximum:
    ``R* = 0`` if ``g(0) = (1 + d)(ceiling_r k_r m - 1) <= 0``, otherwise
    the root of ``g`` in ``(0, m (1 + d))``, found with
    :func:`scipy.optimize.brentq`.

    *Acquisition.*  With ``v = m + f(R*)`` (value of an acquired customer),
    ``a(A) v - A`` is concave in ``A``; its maximiser is
    ``A* = ln(ceiling_a k_a v) / k_a`` when ``ceiling_a k_a v > 1``, else
    ``A* = 0``.

    Parameters
    ----------
    margin : float
        Margin per customer per period ``m``.
    discount : float
        Per-period discount rate ``d >= 0``.
    ceiling_a, k_a, ceiling_r, k_r : float
        Response-curve parameters, as in :func:`bd_customer_equity`.

    Returns
    -------
    BDOptimum
    """
    m = _scalar(margin, "margin")
    d = _check_discount(discount)
    c_a, k_a, c_r, k_r = (
        _scalar(value, name)
        for name, value in (("ceiling_a", ceiling_a), ("k_a", k_a), ("ceiling_r", ceiling_r), ("k_r", k_r))
    )
    _check_response_curve(c_a, k_a, "ceiling_a", "k_a")
    _check_response_curve(c_r, k_r, "ceiling_r", "k_r")

    def retention_rate(R: float) -> float:
        return c_r * -math.expm1(-k_r * R)

    def first_order_condition(R: float) -> float:  # g(R), same sign as f'(R)
        slope = c_r * k_r * math.exp(-k_r * R)
        return slope * (m * (1.0 + d) - R) - (1.0 + d - retention_rate(R))

    if c_r * k_r * m <= 1.0:
        R_star = 0.0
    else:
        R_star = optimize.brentq(
            first_order_condition, 0.0, m * (1.0 + d), xtol=1e-14, rtol=4 * np.finfo(float).eps
        )
    r_star = retention_rate(R_star)
    customer_value = m + (m * r_star - R_star) / (1.0 + d - r_star)

    if c_a * k_a * customer_value > 1.0:
        A_star = math.log(c_a * k_a * customer_value) / k_a
    else:
        A_star = 0.0
    a_star = c_a * -math.expm1(-k_a * A_star)
    equity = a_star * customer_value - A_star
    return BDOptimum(
        acquisition_spend=A_star,
        retention_spend=R_star,
        equity=equity,
        acquisition_rate=a_star,
        retention_rate=r_star,
    )
