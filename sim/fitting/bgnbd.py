"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005a).

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005a), "'Counting your customers' the easy
way: an alternative to the Pareto/NBD model", Marketing Science 24(2), 275–284.

While alive, a customer buys at the times of a Poisson process with rate λ; after each
REPEAT purchase she drops out for good with probability p. Across customers
λ ~ Gamma(r, rate α) and p ~ Beta(a, b). Data per customer: ``frequency`` x (repeat
purchases in (0, T]), ``recency`` t_x (time of the last one, 0 if x = 0) and ``T`` (time
from the first purchase to the calibration end).

Functions take the four parameters and NumPy arrays; :class:`BGNBD` is the registry entry
(``"bgnbd"``) and :class:`BGNBDFit` its fitted form.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import integrate, special
from scipy.special import betaln, gammaln

from sim.data.customers import CustomerData
from sim.fitting._special import euler_hyp2f1
from sim.fitting.base import (
    CompressedCustomers,
    MaximumLikelihoodModel,
    TransactionModelFit,
    _check_rate,
    _horizon,
    compress_customers,
    register_model,
    rfm_arrays,
)

__all__ = [
    "BGNBD",
    "BGNBDFit",
    "conditional_expected_transactions",
    "dert",
    "expected_transactions",
    "loglik",
    "p_alive",
    "simulate",
]


def _as_float(*arrays):
    return [np.asarray(a, dtype=float) for a in arrays]


def loglik(r: float, alpha: float, a: float, b: float, frequency, recency, T) -> np.ndarray:
    """Log-likelihood of each customer's (x, t_x, T) under the BG/NBD.

    Parameters
    ----------
    r, alpha : float
        Shape and rate of the gamma distribution of the purchase rate λ.
    a, b : float
        Parameters of the beta distribution of the dropout probability p.
    frequency, recency, T : array_like
        x, t_x and T of each customer.

    Returns
    -------
    ndarray
        ``log L(r, α, a, b | x, t_x, T)`` of FHL (2005a), eq. (6):
        ``L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / Γ(r) · [(α+T)^-(r+x) + δ(x>0) a/(b+x-1) (α+t_x)^-(r+x)]``,
        the bracket evaluated as a log-sum-exp.
    """
    x, t_x, age = _as_float(frequency, recency, T)
    common = gammaln(r + x) - gammaln(r) + r * math.log(alpha) + betaln(a, b + x) - betaln(a, b)
    at_T = -(r + x) * np.log(alpha + age)
    repeat = x > 0
    at_tx = np.where(
        repeat, math.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - (r + x) * np.log(alpha + t_x), -np.inf
    )
    return common + np.logaddexp(at_T, at_tx)


def p_alive(r: float, alpha: float, a: float, b: float, frequency, recency, T) -> np.ndarray:
    """Probability that a customer with history (x, t_x, T) is alive at T.

    Parameters
    ----------
    r, alpha, a, b : float
        BG/NBD parameters.
    frequency, recency, T : array_like
        x, t_x and T.

    Returns
    -------
    ndarray
        ``1 / (1 + δ(x>0) a/(b+x-1) ((α+T)/(α+t_x))^(r+x))`` (the denominator of FHL 2005a,
        eq. 10; Fader, Hardie & Lee, "Computing P(alive) using the BG/NBD model", note 021).
        Exactly 1 for x = 0: a customer can drop out only after a repeat purchase.
    """
    x, t_x, age = _as_float(frequency, recency, T)
    log_ratio = np.where(
        x > 0,
        math.log(a)
        - np.log(b + np.maximum(x, 1.0) - 1.0)
        + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x)),
        -np.inf,
    )
    return np.exp(-np.logaddexp(0.0, log_ratio))


def _residual(r: float, alpha: float, a: float, b: float, x, T, t) -> np.ndarray:
    """``(a+b+x-1)/(a-1) [1 - ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(α+T+t))]``.

    The expected transactions in (T, T+t] of a customer known to be alive at T (FHL 2005a,
    eq. 10 without its P(alive) factor); with x = 0, T = 0 it is E[X(t)] (eq. 9). The
    hypergeometric product is evaluated by Euler's transformation (:func:`euler_hyp2f1`).
    Near a = 1 (a removable singularity) it is the mean of the values at a = 1 ± 2e-6
    (error O(4e-12) relative).
    """
    if abs(a - 1.0) < 1e-6:
        return 0.5 * (
            _residual_at(r, alpha, 1.0 - 2e-6, b, x, T, t) + _residual_at(r, alpha, 1.0 + 2e-6, b, x, T, t)
        )
    return _residual_at(r, alpha, a, b, x, T, t)


def _residual_at(r: float, alpha: float, a: float, b: float, x, T, t) -> np.ndarray:
    x, age, t = np.broadcast_arrays(*_as_float(x, T, t))
    shape = x.shape
    x, age, t = (np.atleast_1d(v).ravel() for v in (x, age, t))
    z = t / (alpha + age + t)
    with np.errstate(all="ignore"):
        product = np.asarray(euler_hyp2f1(r + x, b + x, a + b + x - 1.0, z, r + x), dtype=float)
        bad = ~np.isfinite(product)
        if bad.any():  # very large a or b: the untransformed series converges instead
            xb, zb = x[bad], z[bad]
            product[bad] = np.exp((r + xb) * np.log1p(-zb)) * special.hyp2f1(
                r + xb, b + xb, a + b + xb - 1.0, zb
            )
        out = (a + b + x - 1.0) / (a - 1.0) * (1.0 - product)
    for index in np.flatnonzero(~np.isfinite(out)):
        out[index] = _residual_by_quadrature(
            r, alpha, a, b, float(x[index]), float(age[index]), float(t[index])
        )
    return (out + 0.0).reshape(shape)  # + 0.0: no negative zeros at t = 0


def _residual_by_quadrature(
    r: float, alpha: float, a: float, b: float, x: float, T: float, t: float
) -> float:
    """The same expectation as ``E_p[(1 - ((α+T)/(α+T+pt))^(r+x)) / p]`` with p ~ Beta(a, b+x),
    by quadrature — the fallback where both hypergeometric forms fail (extreme a, b).
    """
    shape_b = b + x
    mean = a / (a + shape_b)
    spread = math.sqrt(mean * (1.0 - mean) / (a + shape_b + 1.0))
    log_norm = betaln(a, shape_b)

    def integrand(p):
        if p <= 0.0 or p >= 1.0:
            return 0.0
        value = -math.expm1(-(r + x) * math.log1p(p * t / (alpha + T))) / p
        return value * math.exp((a - 1.0) * math.log(p) + (shape_b - 1.0) * math.log1p(-p) - log_norm)

    points = sorted({min(max(mean + k * spread, 1e-12), 1.0 - 1e-12) for k in (-8, -3, -1, 0, 1, 3, 8)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(integrand, 0.0, 1.0, points=points, epsabs=0.0, epsrel=1e-10, limit=500)
    return float(value)


def expected_transactions(r: float, alpha: float, a: float, b: float, t) -> np.ndarray:
    """``E[X(t)]``: expected repeat transactions in (0, t] of a customer acquired at 0.

    Parameters
    ----------
    r, alpha, a, b : float
        BG/NBD parameters.
    t : array_like
        Ages ``t >= 0``.

    Returns
    -------
    ndarray
        FHL (2005a), eq. (9):
        ``(a+b-1)/(a-1) [1 - (α/(α+t))^r 2F1(r, b; a+b-1; t/(α+t))]``.
    """
    t = np.asarray(t, dtype=float)
    out = _residual(r, alpha, a, b, np.zeros_like(t), np.zeros_like(t), t)
    return out if out.ndim else float(out)


def conditional_expected_transactions(
    r: float, alpha: float, a: float, b: float, t, frequency, recency, T
) -> np.ndarray:
    """Expected transactions in (T, T + t] of a customer with history (x, t_x, T).

    Parameters
    ----------
    r, alpha, a, b : float
        BG/NBD parameters.
    t : float or array_like
        Length of the future period.
    frequency, recency, T : array_like
        x, t_x and T.

    Returns
    -------
    ndarray
        FHL (2005a), eq. (10): P(alive) times
        ``(a+b+x-1)/(a-1) [1 - ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(α+T+t))]``.
    """
    return p_alive(r, alpha, a, b, frequency, recency, T) * _residual(r, alpha, a, b, frequency, T, t)


def dert(
    r: float,
    alpha: float,
    a: float,
    b: float,
    discount_rate: float,
    frequency,
    recency,
    T,
    *,
    horizon: float | None = None,
    tolerance: float = 1e-4,
) -> np.ndarray:
    """Discounted expected residual transactions, by summing discounted future periods.

    Parameters
    ----------
    r, alpha, a, b : float
        BG/NBD parameters.
    discount_rate : float
        Continuously compounded discount rate per unit, ``δ > 0``.
    frequency, recency, T : array_like
        x, t_x and T.
    horizon : float, optional
        Units to sum over (default: until ``e^(-δK) < tolerance``; 3,411 weeks for 15 % a year).
    tolerance : float, default 1e-4
        See ``horizon``.

    Returns
    -------
    ndarray
        ``P(alive) · sum_{k=1..K} e^(-δ(k-1/2)) [h(k) - h(k-1)]``, with ``h(t)`` the expected
        transactions in (T, T+t] of a customer alive at T (FHL 2005a, eq. 10 without its
        P(alive) factor): each future period's expected transactions, discounted at
        mid-period — a discrete approximation (error ``O(δ²)``) of the continuous DERT
        ``∫ e^(-δt) dE[Y(t)]`` that the BG/NBD has no simple closed form for. With the default
        horizon the truncated tail is below ``tolerance`` times the last period's weight.

    Notes
    -----
    ``h`` depends on (x, T) only, so it is evaluated once per distinct (x, T) pair and
    future period.
    """
    rate = _check_rate(discount_rate)
    periods = _horizon(rate, horizon, tolerance)
    pairs = compress_customers(frequency=np.asarray(frequency, float), T=np.asarray(T, float))
    ks = np.arange(0, periods + 1, dtype=float)
    weights = np.exp(-rate * (ks[1:] - 0.5))
    per_pair = np.empty(pairs.n_rows)
    block = max(1, 4_000_000 // len(ks))
    for start in range(0, pairs.n_rows, block):
        stop = min(start + block, pairs.n_rows)
        x = pairs["frequency"][start:stop, None]
        age = pairs["T"][start:stop, None]
        h = _residual(r, alpha, a, b, x, age, ks[None, :])
        per_pair[start:stop] = (np.diff(h, axis=1) * weights).sum(axis=1)
    return p_alive(r, alpha, a, b, frequency, recency, T) * per_pair[pairs.inverse]


def simulate(
    r: float,
    alpha: float,
    a: float,
    b: float,
    T,
    *,
    holdout: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Simulate customers from the BG/NBD (for checks and parameter recovery).

    Parameters
    ----------
    r, alpha, a, b : float
        BG/NBD parameters.
    T : array_like
        Each customer's calibration length (its size is the number of customers).
    holdout : float, default 0
        Length of a holdout period after T.
    rng : Generator, int or None
        Random generator or seed.

    Returns
    -------
    DataFrame
        ``frequency``, ``recency``, ``T``, ``alive`` (at T), ``holdout_frequency`` (in
        (T, T + holdout]), and the customer's ``rate`` λ and ``dropout`` p.

    Notes
    -----
    Each customer drops out after her K-th repeat purchase, K ~ Geometric(p) on 1, 2, ...;
    repeat purchases are the arrivals of a Poisson(λ) process. With N(T) arrivals in
    (0, T]: if N(T) >= K she made x = K purchases, the last at the K-th of N(T) uniform
    order statistics on (0, T) (``T · Beta(K, N(T) - K + 1)``), and is dead; otherwise
    x = N(T), t_x is the largest of N(T) uniforms, and she buys
    ``min(K - x, Poisson(λ · holdout))`` times in the holdout.
    """
    rng = np.random.default_rng(rng)
    age = np.asarray(T, dtype=float)
    n = age.size
    rate = rng.gamma(r, 1.0 / alpha, size=n)
    dropout = rng.beta(a, b, size=n)
    purchases_to_dropout = rng.geometric(dropout)
    arrivals = rng.poisson(rate * age)
    dead = arrivals >= purchases_to_dropout
    frequency = np.where(dead, purchases_to_dropout, arrivals)
    recency = np.zeros(n)
    if dead.any():
        k = purchases_to_dropout[dead]
        recency[dead] = age[dead] * rng.beta(k, arrivals[dead] - k + 1)
    alive_buyers = ~dead & (arrivals > 0)
    recency[alive_buyers] = age[alive_buyers] * rng.random(int(alive_buyers.sum())) ** (
        1.0 / arrivals[alive_buyers]
    )
    holdout_frequency = np.zeros(n, dtype=np.int64)
    if holdout > 0:
        future = rng.poisson(rate * holdout)
        holdout_frequency = np.where(dead, 0, np.minimum(purchases_to_dropout - frequency, future))
    return pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": recency,
            "T": age,
            "alive": ~dead,
            "holdout_frequency": holdout_frequency.astype(np.int64),
            "rate": rate,
            "dropout": dropout,
        }
    )


class BGNBDFit(TransactionModelFit):
    """A fitted BG/NBD model (see :mod:`sim.fitting.bgnbd`)."""

    def _values(self):
        return self.params["r"], self.params["alpha"], self.params["a"], self.params["b"]

    def p_alive(self, data: CustomerData) -> np.ndarray:
        """P(alive at T | x, t_x, T) of each customer (:func:`p_alive`)."""
        return p_alive(*self._values(), data.frequency, data.recency, data.T)

    def expected_conditional(self, data: CustomerData, t: float) -> np.ndarray:
        """Expected transactions in (T, T + t] of each customer (FHL 2005a, eq. 10)."""
        rows = rfm_arrays(data)
        values = conditional_expected_transactions(
            *self._values(), t, rows["frequency"], rows["recency"], rows["T"]
        )
        return values[rows.inverse]

    def expected_unconditional(self, t) -> np.ndarray:
        """``E[X(t)]`` of a customer acquired at 0 (FHL 2005a, eq. 9)."""
        return expected_transactions(*self._values(), t)

    def dert(
        self,
        data: CustomerData,
        discount_rate: float,
        *,
        horizon: float | None = None,
        tolerance: float = 1e-4,
    ) -> np.ndarray:
        """Discounted expected residual transactions (:func:`dert`: a discounted sum over periods)."""
        return dert(
            *self._values(),
            discount_rate,
            data.frequency,
            data.recency,
            data.T,
            horizon=horizon,
            tolerance=tolerance,
        )


@register_model
class BGNBD(MaximumLikelihoodModel):
    """BG/NBD model, registry name ``"bgnbd"`` (Fader, Hardie & Lee 2005a).

    Parameters r, α (gamma heterogeneity of the purchase rate) and a, b (beta heterogeneity
    of the dropout probability), fitted by maximum likelihood (eq. 6) on log-parameters.
    """

    name = "bgnbd"
    title = "BG/NBD"
    kind = "transactions"
    parameter_names = ("r", "alpha", "a", "b")
    reference = "Fader, Hardie & Lee (2005), Marketing Science 24(2), 275-284"
    fitted_class = BGNBDFit

    def prepare(self, data: CustomerData) -> CompressedCustomers:
        """Distinct (x, t_x, T) rows with their customer counts."""
        return rfm_arrays(data)

    def loglik(self, params: np.ndarray, prepared: CompressedCustomers) -> float:
        """Total log-likelihood (FHL 2005a, eq. 6) of the weighted rows."""
        r, alpha, a, b = params
        return float(
            np.sum(
                prepared.weight
                * loglik(r, alpha, a, b, prepared["frequency"], prepared["recency"], prepared["T"])
            )
        )

    def start_values(self, prepared: CompressedCustomers) -> np.ndarray:
        """R = 1, α from the mean purchase rate, a = b = 1."""
        w = prepared.weight
        rate = float(np.sum(w * prepared["frequency"])) / max(float(np.sum(w * prepared["T"])), 1e-12)
        return np.array([1.0, 1.0 / max(rate, 1e-6), 1.0, 1.0])
