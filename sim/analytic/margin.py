"""Gupta & Lehmann's retention-based margin multiple.

Gupta, S., & Lehmann, D. R. (2003). Customers as assets. Journal of Interactive Marketing,
17(1), 9-24. Gupta, S., & Lehmann, D. R. (2005). Managing Customers as Investments. Wharton
School Publishing.
"""

from __future__ import annotations

import numpy as np

from sim.analytic._checks import _check_horizon, _check_range, _check_timing, _float_array, _scalar_or_array

__all__ = ["margin_multiple"]


# ---------------------------------------------------------------------------
# Gupta & Lehmann (2003, 2005): retention-based margin multiple
# ---------------------------------------------------------------------------


def margin_multiple(retention, discount, horizon=None, timing="end"):
    """Customer lifetime value per unit of per-period margin (Gupta & Lehmann).

    A customer is retained from one period to the next with constant
    probability ``r`` and yields margin ``m`` in every period she is active;
    CLV = ``m * margin_multiple(r, d)``.  With ``q = r / (1 + d)``:

    ``timing="end"`` (Gupta & Lehmann's convention): margins arrive at the
    end of each period from customers retained through it; the first margin
    arrives after one period, there is no initial margin::

        infinite:  sum_{t=1}^{inf} r**t / (1+d)**t = r / (1 + d - r)
        finite H:  sum_{t=1}^{H}   r**t / (1+d)**t = q (1 - q**H) / (1 - q)

    ``timing="start"``: an initial margin is received now (time 0) and one at
    the start of every later period the customer is still active::

        infinite:  sum_{t=0}^{inf} r**t / (1+d)**t = (1 + d) / (1 + d - r)
        finite H:  sum_{t=0}^{H-1} r**t / (1+d)**t = (1 - q**H) / (1 - q)

    The conventions are related by ``end = q * start`` (every horizon), and
    ``start_inf = 1 + end_inf``, ``start_H = 1 + end_{H-1}``.

    Parameters
    ----------
    retention : float or array_like
        Per-period retention probability ``r`` in [0, 1].
    discount : float or array_like
        Per-period discount rate ``d >= 0``; broadcast against ``retention``.
    horizon : int or None, default None
        Number of margins counted (``H``); ``None`` for the infinite horizon,
        which requires ``r < 1 + d`` (i.e. not ``r == 1`` with ``d == 0``).
    timing : {"end", "start"}, default "end"

    Returns
    -------
    float or numpy.ndarray
        The multiple, broadcast over ``retention`` and ``discount`` (a float
        when both are scalars).

    References
    ----------
    Gupta, S., & Lehmann, D. R. (2003). Customers as assets. Journal of
    Interactive Marketing, 17(1), 9-24.
    Gupta, S., & Lehmann, D. R. (2005). Managing Customers as Investments.
    Wharton School Publishing.
    """
    r = _float_array(retention, "retention")
    d = _float_array(discount, "discount")
    _check_range(r, "retention", 0.0, 1.0)
    _check_range(d, "discount", 0.0)
    horizon = _check_horizon(horizon)
    timing = _check_timing(timing)
    try:
        r, d = np.broadcast_arrays(r, d)
    except ValueError as error:
        raise ValueError(
            f"retention (shape {r.shape}) and discount (shape {d.shape}) must broadcast together"
        ) from error

    gap = 1.0 + d - r  # = (1 + d)(1 - q) >= 0
    if horizon is None:
        if np.any(gap <= 0):
            raise ValueError(
                "retention must be < 1 + discount for the infinite horizon "
                "(retention == 1 with discount == 0 never stops paying); use a finite horizon"
            )
        multiple = r / gap if timing == "end" else (1.0 + d) / gap
        return _scalar_or_array(multiple)

    if horizon == 0:
        return _scalar_or_array(np.zeros(r.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.log(r) - np.log1p(d)  # -inf where r == 0
        one_minus_q_to_h = -np.expm1(horizon * log_q)  # 1 - q**H, accurate as q -> 1
        start = np.where(gap > 0, one_minus_q_to_h * (1.0 + d) / gap, float(horizon))
    multiple = start if timing == "start" else (r / (1.0 + d)) * start
    return _scalar_or_array(multiple)
