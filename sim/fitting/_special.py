"""Numerically stable special functions for the customer-base models.

Three building blocks, each vectorised over NumPy arrays:

``log_hyp2f1_unit(b, c, z)``
    ``log 2F1(1, b; c; z)`` for ``0 <= z < 1``, ``c > 1``, ``c > b > 0`` — the only Gauss
    hypergeometric function the Pareto/NBD likelihood needs once its argument has been
    transformed (see :func:`log_power_tail`).
``log_power_tail(p, q, alpha, beta, t)``
    ``log ∫_t^∞ (alpha + τ)^(-p) (beta + τ)^(-q) dτ`` — the Pareto/NBD likelihood is a sum of
    two such integrals (Fader & Hardie 2005, "A note on deriving the Pareto/NBD model and
    related expressions", eqs. 18–20; see :mod:`sim.fitting.pnbd`).
``euler_hyp2f1(a, b, c, z, power)``
    ``(1 - z)^power 2F1(a, b; c; z)`` evaluated through Euler's transformation, as the BG/NBD
    expectations need it (Fader & Hardie 2013, "Overcoming the BG/NBD model's #NUM! error
    problem").

and two small helpers, :func:`expm1_ratio` and :func:`tricomi_u_ss`.

The arguments of every hypergeometric function here satisfy ``0 <= z < 1``; no series is
summed at ``|z| >= 1``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import integrate, special

__all__ = ["euler_hyp2f1", "expm1_ratio", "log_hyp2f1_unit", "log_power_tail", "tricomi_u_ss"]


def expm1_ratio(c, y):
    """``(1 - exp(-c y)) / c``, continuous at ``c = 0`` (where it equals ``y``).

    Parameters
    ----------
    c, y : array_like
        Broadcastable arrays; ``y >= 0``.

    Returns
    -------
    ndarray
        ``-expm1(-c y) / c`` where ``c != 0`` and ``y`` where ``c == 0``, without the loss of
        precision of ``(1 - exp(-c y)) / c`` for small ``c y``.

    Notes
    -----
    The Pareto/NBD expectations contain ``[1 - (beta / (beta + t))^(s - 1)] / (s - 1)``
    (Fader & Hardie 2005 note, eqs. 27 and 41), which is ``expm1_ratio(s - 1, log1p(t / beta))``.
    """
    c = np.asarray(c, dtype=float)
    y = np.asarray(y, dtype=float)
    c_b, y_b = np.broadcast_arrays(c, y)
    out = np.array(y_b, dtype=float, copy=True)
    nonzero = c_b != 0.0
    out[nonzero] = -np.expm1(-c_b[nonzero] * y_b[nonzero]) / c_b[nonzero]
    return out if out.ndim else float(out)


def _hyp2f1_unit_by_quadrature(b: float, c: float, z: float) -> float:
    """``2F1(1, b; c; z)`` from Euler's integral, for the rare inputs where SciPy fails.

    ``2F1(1, b; c; z) = (c - 1) ∫_0^∞ exp(-(c - 1) y) (1 - z + z e^(-y))^(-b) dy``
    (substituting ``u = 1 - e^(-y)`` in Euler's integral, DLMF 15.6.1, with the roles of the
    first two parameters exchanged); the integrand is smooth and its tail beyond
    ``Y = log(z / (1 - z)) + 60`` is ``(1 - z)^(-b) exp(-(c - 1) y)`` to double precision.
    """
    if z == 0.0:
        return 1.0
    knee = max(np.log(z / (1.0 - z)), 0.0)
    upper = knee + 60.0

    def log_integrand(y):
        return -(c - 1.0) * y - b * np.log((1.0 - z) + z * np.exp(-y))

    grid = np.linspace(0.0, upper, 513)
    shift = float(np.max(log_integrand(grid)))
    points = [p for p in (knee * 0.5, knee, knee * 1.5, 1.0, 10.0) if 0.0 < p < upper]
    with warnings.catch_warnings():  # a relative 1e-12 may not be certifiable; 1e-10 is plenty
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(
            lambda y: np.exp(log_integrand(y) - shift),
            0.0,
            upper,
            points=sorted(set(points)),
            epsabs=0.0,
            epsrel=1e-12,
            limit=1000,
        )
    tail = np.exp(-(c - 1.0) * upper - b * np.log1p(-z) - shift) / (c - 1.0)
    return float((c - 1.0) * (value + tail) * np.exp(shift))


def log_hyp2f1_unit(b, c, z):
    """Logarithm of the Gauss hypergeometric function ``2F1(1, b; c; z)``.

    Parameters
    ----------
    b, c, z : array_like
        Broadcastable arrays with ``b > 0``, ``c > 1`` and ``0 <= z < 1``.

    Returns
    -------
    ndarray
        ``log 2F1(1, b; c; z)``.

    Notes
    -----
    With a first parameter of 1 every term of the Gauss series is positive, so the function
    is ``>= 1`` and well conditioned. SciPy's ``hyp2f1`` is used (its relative error for these
    parameters, checked against quadrature of Euler's integral down to ``1 - z = 1e-8`` and
    up to ``b = 1e5``, is below ``1e-9``; ``tests/fitting/test_fitting_special.py``); an input
    on which it returns a non-finite or non-positive value is recomputed by quadrature of
    Euler's integral (DLMF 15.6.1).
    """
    b, c, z = np.broadcast_arrays(np.asarray(b, float), np.asarray(c, float), np.asarray(z, float))
    value = special.hyp2f1(1.0, b, c, z)
    bad = ~np.isfinite(value) | (value <= 0.0)
    if np.any(bad):
        value = np.array(value, dtype=float, copy=True)
        for index in zip(*np.nonzero(bad)) if value.ndim else [()]:
            value[index] = _hyp2f1_unit_by_quadrature(float(b[index]), float(c[index]), float(z[index]))
    out = np.log(value)
    return out if np.ndim(out) else float(out)


def log_power_tail(p, q, alpha: float, beta: float, t):
    """``log ∫_t^∞ (alpha + τ)^(-p) (beta + τ)^(-q) dτ``, the building block of the Pareto/NBD.

    Parameters
    ----------
    p, q : array_like
        Positive exponents with ``p + q > 1`` (the integral converges).
    alpha, beta : float
        Positive scale parameters (of the purchase and the dropout rate's gamma mixing
        distributions in the Pareto/NBD).
    t : array_like
        Lower limit, ``t >= 0``.

    Returns
    -------
    ndarray
        The logarithm of the integral, finite for all valid inputs.

    Notes
    -----
    Substituting ``u = (m + t) / (m + τ)`` with ``m = max(alpha, beta)`` gives Euler's integral
    of a hypergeometric function with argument ``z = |alpha - beta| / (m + t)``, ``0 <= z < 1``
    (Fader & Hardie 2005 note, eqs. 19–20, which evaluate the α ≥ β and α < β cases this way);
    Euler's transformation ``2F1(a, b; c; z) = (1 - z)^(c-a-b) 2F1(c-a, c-b; c; z)`` then turns
    it into a series of positive terms with first parameter 1:

    * ``alpha >= beta``: ``(alpha+t)^(-p) (beta+t)^(1-q) 2F1(1, p; p+q; z) / (p+q-1)``,
    * ``alpha <  beta``: ``(beta+t)^(-q) (alpha+t)^(1-p) 2F1(1, q; p+q; z) / (p+q-1)``,

    both evaluated in log space (:func:`log_hyp2f1_unit`), so no power over- or underflows and
    nothing is subtracted.
    """
    p, q, t = np.broadcast_arrays(np.asarray(p, float), np.asarray(q, float), np.asarray(t, float))
    alpha = float(alpha)
    beta = float(beta)
    log_a = np.log(alpha + t)
    log_b = np.log(beta + t)
    total = p + q
    if alpha >= beta:
        z = (alpha - beta) / (alpha + t)
        out = -p * log_a + (1.0 - q) * log_b + log_hyp2f1_unit(p, total, z) - np.log(total - 1.0)
    else:
        z = (beta - alpha) / (beta + t)
        out = -q * log_b + (1.0 - p) * log_a + log_hyp2f1_unit(q, total, z) - np.log(total - 1.0)
    return out if np.ndim(out) else float(out)


def euler_hyp2f1(a, b, c, z, power):
    """``(1 - z)^power 2F1(a, b; c; z)`` through Euler's transformation.

    Parameters
    ----------
    a, b, c : array_like
        Parameters of the hypergeometric function (``c`` not a non-positive integer).
    z : array_like
        Argument, ``0 <= z < 1``.
    power : array_like
        Exponent of the ``(1 - z)`` factor.

    Returns
    -------
    ndarray
        ``(1 - z)^(power + c - a - b) 2F1(c - a, c - b; c; z)``.

    Notes
    -----
    The BG/NBD expectations (Fader, Hardie & Lee 2005, "Counting your customers the easy
    way", eqs. 9 and 10) multiply a hypergeometric function that diverges as ``z -> 1`` by a
    power of ``1 - z`` that vanishes; after Euler's transformation (DLMF 15.8.1) the product
    is a bounded factor times a convergent series, the remedy of Fader & Hardie's note
    "Overcoming the BG/NBD model's #NUM! error problem" (2013).
    """
    a, b, c, z, power = (np.asarray(v, dtype=float) for v in (a, b, c, z, power))
    exponent = power + c - a - b
    factor = np.exp(exponent * np.log1p(-z))
    out = factor * special.hyp2f1(c - a, c - b, c, z)
    return out if np.ndim(out) else float(out)


def tricomi_u_ss(s, z):
    """``z^(s-1) U(s, s, z)`` with Tricomi's confluent hypergeometric function ``U``.

    Parameters
    ----------
    s : float
        Shape parameter, ``s > 0``.
    z : array_like
        Positive argument.

    Returns
    -------
    ndarray
        ``z^(s-1) U(s, s, z)``, where ``U(s, s, z) = (1/Γ(s)) ∫_0^∞ e^(-z u) u^(s-1) / (1 + u) du``
        (DLMF 13.4.4). For ``M ~ Gamma(shape s, rate b)``,
        ``E[1 / (δ + M)] = b^s δ^(s-1) U(s, s, δ b) = b · tricomi_u_ss(s, δ b)``.

    Notes
    -----
    Used by the discounted expected residual transactions of the Pareto/NBD (Fader, Hardie &
    Lee 2005, "RFM and CLV: using iso-value curves for customer base analysis", JMR 42(4),
    appendix, there written with ``Ψ(s, s; δ(β + T))``). SciPy's ``hyperu`` is used; where it
    is not finite the integral is evaluated by quadrature.
    """
    z = np.asarray(z, dtype=float)
    s = float(s)
    value = special.hyperu(s, s, z) * np.exp((s - 1.0) * np.log(z))
    bad = ~np.isfinite(value) | (value <= 0.0)
    if np.any(bad):
        value = np.array(value, dtype=float, copy=True)
        for index in zip(*np.nonzero(bad)) if value.ndim else [()]:
            zz = float(z[index])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", integrate.IntegrationWarning)
                integral, _ = integrate.quad(
                    lambda u, zz=zz: np.exp(-zz * u + (s - 1.0) * np.log(u) - np.log1p(u)),
                    0.0,
                    np.inf,
                    epsrel=1e-11,
                    limit=500,
                )
            value[index] = integral * np.exp((s - 1.0) * np.log(zz) - special.gammaln(s))
    return value if value.ndim else float(value)
