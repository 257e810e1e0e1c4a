"""The Pareto/NBD model of repeat buying (Schmittlein, Morrison & Colombo 1987).

Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987), "Counting your customers: who
are they and what will they do next?", Management Science 33(1), 1–24; expressions as
derived in Fader, P. S. and Hardie, B. G. S. (2005), "A note on deriving the Pareto/NBD
model and related expressions" (brucehardie.com/notes/009), cited as "the note" below.

While alive, a customer buys at the times of a Poisson process with rate λ; her lifetime is
exponential with rate μ. Across customers λ ~ Gamma(r, rate α) and μ ~ Gamma(s, rate β),
independently.

Stable likelihood
-----------------
The note (eqs. 18–20) writes the likelihood with ``A_0``, a DIFFERENCE of two Gauss
hypergeometric functions whose argument is ``(α-β)/(α+t)`` when α ≥ β and ``(β-α)/(β+t)``
when α < β (so that ``|z| < 1``). Here the same likelihood is written as a SUM of two
positive integrals (integrating the death term by parts),

    L = Γ(r+x) α^r β^s / Γ(r) · [ (r+x) K(T; r+x+1, s) + s K(t_x; r+x, s+1) ],
    K(t; p, q) = ∫_t^∞ (α+τ)^(-p) (β+τ)^(-q) dτ,

and each K is one hypergeometric function with the note's argument, transformed by Euler's
identity into a series of positive terms (:func:`sim.fitting._special.log_power_tail`) and
evaluated in log space — nothing is subtracted, no power over- or underflows, for α ≥ β,
α < β and α = β alike.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import gammaln

from sim.data.customers import CustomerData
from sim.fitting._special import expm1_ratio, log_power_tail, tricomi_u_ss
from sim.fitting.base import (
    MaximumLikelihoodModel,
    TransactionModelFit,
    _check_rate,
    compress_customers,
    register_model,
    rfm_arrays,
)

__all__ = [
    "ParetoNBD",
    "ParetoNBDFit",
    "conditional_expected_transactions",
    "dert",
    "expected_transactions",
    "loglik",
    "p_alive",
    "simulate",
]


def _as_float(*arrays):
    return [np.asarray(a, dtype=float) for a in arrays]


def _log_bracket(r, alpha, s, beta, x, t_x, age):
    """``log[(r+x) K(T; r+x+1, s) + s K(t_x; r+x, s+1)]``."""
    at_T = np.log(r + x) + log_power_tail(r + x + 1.0, s, alpha, beta, age)
    at_tx = math.log(s) + log_power_tail(r + x, s + 1.0, alpha, beta, t_x)
    return np.logaddexp(at_T, at_tx)


def loglik(r: float, alpha: float, s: float, beta: float, frequency, recency, T) -> np.ndarray:
    """Log-likelihood of each customer's (x, t_x, T) under the Pareto/NBD.

    Parameters
    ----------
    r, alpha : float
        Shape and rate of the gamma distribution of the purchase rate λ.
    s, beta : float
        Shape and rate of the gamma distribution of the dropout rate μ.
    frequency, recency, T : array_like
        x, t_x and T of each customer.

    Returns
    -------
    ndarray
        ``log L(r, α, s, β | x, t_x, T)``; the note's eqs. (18)–(20), rewritten as the sum of
        two positive integrals described in the module docstring.
    """
    x, t_x, age = _as_float(frequency, recency, T)
    head = gammaln(r + x) - gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    return head + _log_bracket(r, alpha, s, beta, x, t_x, age)


def p_alive(r: float, alpha: float, s: float, beta: float, frequency, recency, T) -> np.ndarray:
    """Probability that a customer with history (x, t_x, T) is alive at T.

    Parameters
    ----------
    r, alpha, s, beta : float
        Pareto/NBD parameters.
    frequency, recency, T : array_like
        x, t_x and T.

    Returns
    -------
    ndarray
        ``Γ(r+x) α^r β^s / Γ(r) · (α+T)^-(r+x) (β+T)^-s / L(r, α, s, β | x, t_x, T)``
        (the note, section 5.1).
    """
    x, t_x, age = _as_float(frequency, recency, T)
    log_survive = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
    return np.exp(np.minimum(log_survive - _log_bracket(r, alpha, s, beta, x, t_x, age), 0.0))


def expected_transactions(r: float, alpha: float, s: float, beta: float, t) -> np.ndarray:
    """``E[X(t)]``: expected repeat transactions in (0, t] of a customer acquired at 0.

    Parameters
    ----------
    r, alpha, s, beta : float
        Pareto/NBD parameters.
    t : array_like
        Ages ``t >= 0``.

    Returns
    -------
    ndarray
        The note's eq. (27), ``r β / (α (s-1)) [1 - (β/(β+t))^(s-1)]`` (``(r β/α) log(1 + t/β)``
        at s = 1), evaluated with :func:`expm1_ratio`.
    """
    t = np.asarray(t, dtype=float)
    out = (r / alpha) * beta * expm1_ratio(s - 1.0, np.log1p(t / beta))
    return out if np.ndim(out) else float(out)


def conditional_expected_transactions(
    r: float, alpha: float, s: float, beta: float, t, frequency, recency, T
) -> np.ndarray:
    """Expected transactions in (T, T + t] of a customer with history (x, t_x, T).

    Parameters
    ----------
    r, alpha, s, beta : float
        Pareto/NBD parameters.
    t : float or array_like
        Length of the future period.
    frequency, recency, T : array_like
        x, t_x and T.

    Returns
    -------
    ndarray
        The note's eq. (41):
        ``P(alive) · (r+x)(β+T) / ((α+T)(s-1)) · [1 - ((β+T)/(β+T+t))^(s-1)]``.
    """
    x, t_x, age = _as_float(frequency, recency, T)
    t = np.asarray(t, dtype=float)
    residual = (r + x) / (alpha + age) * (beta + age) * expm1_ratio(s - 1.0, np.log1p(t / (beta + age)))
    return p_alive(r, alpha, s, beta, x, t_x, age) * residual


def dert(
    r: float, alpha: float, s: float, beta: float, discount_rate: float, frequency, recency, T
) -> np.ndarray:
    """Discounted expected residual transactions (closed form).

    Parameters
    ----------
    r, alpha, s, beta : float
        Pareto/NBD parameters.
    discount_rate : float
        Continuously compounded discount rate per unit, ``δ > 0``.
    frequency, recency, T : array_like
        x, t_x and T.

    Returns
    -------
    ndarray
        Fader, Hardie & Lee (2005b), "RFM and CLV: using iso-value curves for customer base
        analysis", JMR 42(4), appendix:
        ``DERT = α^r β^s δ^(s-1) Γ(r+x+1) Ψ(s, s; δ(β+T)) / (Γ(r) (α+T)^(r+x+1) L)``,
        computed as ``P(alive) · (r+x)/(α+T) · (β+T) (δ(β+T))^(s-1) U(s, s; δ(β+T))``
        (posterior means of λ and of ``1/(δ+μ)`` given alive at T).
    """
    rate = _check_rate(discount_rate)
    x, t_x, age = _as_float(frequency, recency, T)
    spend_rate = (r + x) / (alpha + age)
    discounted_life = (beta + age) * tricomi_u_ss(s, rate * (beta + age))
    return p_alive(r, alpha, s, beta, x, t_x, age) * spend_rate * discounted_life


def simulate(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    T,
    *,
    holdout: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Simulate customers from the Pareto/NBD (for checks and parameter recovery).

    Parameters
    ----------
    r, alpha, s, beta : float
        Pareto/NBD parameters.
    T : array_like
        Each customer's calibration length (its size is the number of customers).
    holdout : float, default 0
        Length of a holdout period after T.
    rng : Generator, int or None
        Random generator or seed.

    Returns
    -------
    DataFrame
        ``frequency``, ``recency``, ``T``, ``alive`` (at T), ``holdout_frequency``, and the
        customer's ``rate`` λ, ``death_rate`` μ and ``lifetime``.

    Notes
    -----
    Lifetime τ ~ Exp(μ); x ~ Poisson(λ min(τ, T)); t_x is the largest of x uniforms on
    (0, min(τ, T)); holdout purchases ~ Poisson(λ · max(0, min(τ, T + holdout) - T)).
    """
    rng = np.random.default_rng(rng)
    age = np.asarray(T, dtype=float)
    n = age.size
    rate = rng.gamma(r, 1.0 / alpha, size=n)
    death_rate = rng.gamma(s, 1.0 / beta, size=n)
    lifetime = rng.exponential(1.0 / death_rate)
    observed = np.minimum(lifetime, age)
    frequency = rng.poisson(rate * observed)
    recency = np.zeros(n)
    buyers = frequency > 0
    recency[buyers] = observed[buyers] * rng.random(int(buyers.sum())) ** (1.0 / frequency[buyers])
    holdout_frequency = np.zeros(n, dtype=np.int64)
    if holdout > 0:
        holdout_frequency = rng.poisson(rate * np.clip(np.minimum(lifetime, age + holdout) - age, 0.0, None))
    return pd.DataFrame(
        {
            "frequency": frequency.astype(np.int64),
            "recency": recency,
            "T": age,
            "alive": lifetime > age,
            "holdout_frequency": holdout_frequency.astype(np.int64),
            "rate": rate,
            "death_rate": death_rate,
            "lifetime": lifetime,
        }
    )


class _PairedRows:
    """Distinct (x, t_x, T) rows, with the distinct (x, T) and (x, t_x) pairs they use.

    The likelihood's two hypergeometric terms depend on (x, T) and (x, t_x) only, so each is
    evaluated once per distinct pair — far fewer than customers or (x, t_x, T) rows.
    """

    def __init__(self, rows):
        self.rows = rows
        self.weight = rows.weight
        self.n_customers = rows.n_customers
        self.at_T = compress_customers(frequency=rows["frequency"], T=rows["T"])
        self.at_tx = compress_customers(frequency=rows["frequency"], recency=rows["recency"])
        x = rows["frequency"]
        self.head_x, self.head_index = np.unique(x, return_inverse=True)


class ParetoNBDFit(TransactionModelFit):
    """A fitted Pareto/NBD model (see :mod:`sim.fitting.pnbd`)."""

    def _values(self):
        return self.params["r"], self.params["alpha"], self.params["s"], self.params["beta"]

    def p_alive(self, data: CustomerData) -> np.ndarray:
        """P(alive at T | x, t_x, T) of each customer (:func:`p_alive`)."""
        rows = rfm_arrays(data)
        return p_alive(*self._values(), rows["frequency"], rows["recency"], rows["T"])[rows.inverse]

    def expected_conditional(self, data: CustomerData, t: float) -> np.ndarray:
        """Expected transactions in (T, T + t] of each customer (the note, eq. 41)."""
        rows = rfm_arrays(data)
        values = conditional_expected_transactions(
            *self._values(), t, rows["frequency"], rows["recency"], rows["T"]
        )
        return values[rows.inverse]

    def expected_unconditional(self, t) -> np.ndarray:
        """``E[X(t)]`` of a customer acquired at 0 (the note, eq. 27)."""
        return expected_transactions(*self._values(), t)

    def dert(
        self,
        data: CustomerData,
        discount_rate: float,
        *,
        horizon: float | None = None,
        tolerance: float = 1e-4,
    ) -> np.ndarray:
        """Discounted expected residual transactions: the closed form of :func:`dert`.

        With a finite ``horizon`` the generic discounted sum over periods is used instead.
        """
        if horizon is not None:
            return super().dert(data, discount_rate, horizon=horizon, tolerance=tolerance)
        rows = rfm_arrays(data)
        return dert(*self._values(), discount_rate, rows["frequency"], rows["recency"], rows["T"])[
            rows.inverse
        ]


@register_model
class ParetoNBD(MaximumLikelihoodModel):
    """Pareto/NBD model, registry name ``"pnbd"`` (Schmittlein, Morrison & Colombo 1987).

    Parameters r, α (gamma heterogeneity of the purchase rate) and s, β (gamma heterogeneity
    of the dropout rate), fitted by maximum likelihood on log-parameters with the stable
    likelihood of the module docstring.
    """

    name = "pnbd"
    title = "Pareto/NBD"
    kind = "transactions"
    parameter_names = ("r", "alpha", "s", "beta")
    reference = "Schmittlein, Morrison & Colombo (1987), Management Science 33(1), 1-24"
    fitted_class = ParetoNBDFit

    def prepare(self, data: CustomerData) -> _PairedRows:
        """Distinct (x, t_x, T) rows and their distinct (x, T), (x, t_x) pairs."""
        return _PairedRows(rfm_arrays(data))

    def loglik(self, params: np.ndarray, prepared: _PairedRows) -> float:
        """Total log-likelihood of the weighted rows."""
        r, alpha, s, beta = params
        at_T = prepared.at_T
        at_tx = prepared.at_tx
        log_T = np.log(r + at_T["frequency"]) + log_power_tail(
            r + at_T["frequency"] + 1.0, s, alpha, beta, at_T["T"]
        )
        log_tx = math.log(s) + log_power_tail(r + at_tx["frequency"], s + 1.0, alpha, beta, at_tx["recency"])
        bracket = np.logaddexp(log_T[at_T.inverse], log_tx[at_tx.inverse])
        head = (gammaln(r + prepared.head_x) - gammaln(r))[prepared.head_index]
        constant = r * math.log(alpha) + s * math.log(beta)
        return float(np.sum(prepared.weight * (head + bracket)) + constant * prepared.weight.sum())

    def start_values(self, prepared: _PairedRows) -> np.ndarray:
        """R = 1, α from the mean purchase rate, s = 1, β = mean T."""
        rows = prepared.rows
        w = rows.weight
        mean_T = float(np.sum(w * rows["T"])) / float(w.sum())
        rate = float(np.sum(w * rows["frequency"])) / max(float(np.sum(w * rows["T"])), 1e-12)
        return np.array([1.0, 1.0 / max(rate, 1e-6), 1.0, max(mean_T, 1e-3)])
