"""The Gamma-Gamma model of the value per transaction (Fader, Hardie & Lee 2005b).

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005b), "RFM and CLV: using iso-value curves
for customer base analysis", Journal of Marketing Research 42(4), 415–430; Fader, P. S. and
Hardie, B. G. S. (2013), "The Gamma-Gamma model of monetary value" (brucehardie.com/notes/025),
cited as "the note" below. The model is Colombo & Jiang's (1999) "stochastic RFM model".

A customer's transaction values are i.i.d. Gamma(p, rate ν); across customers
ν ~ Gamma(q, rate γ); spend is independent of the transaction process. The data are each
repeat buyer's number of repeat transactions x and their mean value ``monetary`` (z̄). As in
the note's analysis of CDNOW (946 customers with x > 0 in the 1/10 sample, p = 6.25,
q = 3.74, γ = 15.44), the first purchase is left out and customers with x = 0 carry no
information about spend.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import gammaln

from sim.data.customers import CustomerData
from sim.exceptions import DataError
from sim.fitting.base import (
    CompressedCustomers,
    MaximumLikelihoodModel,
    SpendModelFit,
    compress_customers,
    register_model,
)

__all__ = ["GammaGamma", "GammaGammaFit", "expected_spend", "loglik", "simulate"]


def loglik(p: float, q: float, gamma: float, frequency, monetary) -> np.ndarray:
    """Log-density of each customer's mean transaction value given x (x > 0).

    Parameters
    ----------
    p : float
        Shape of the gamma distribution of a transaction's value.
    q, gamma : float
        Shape and rate of the gamma distribution of its rate ν across customers.
    frequency : array_like
        Number of transactions averaged (x > 0).
    monetary : array_like
        Their mean value z̄ > 0.

    Returns
    -------
    ndarray
        ``log f(z̄ | p, q, γ; x)`` with
        ``f = Γ(px+q) / (Γ(px) Γ(q)) · γ^q x^(px) z̄^(px-1) / (γ + x z̄)^(px+q)``
        (the note, the marginal distribution of z̄; FHL 2005b, eq. 3).
    """
    x = np.asarray(frequency, dtype=float)
    z = np.asarray(monetary, dtype=float)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * math.log(gamma)
        + px * np.log(x)
        + (px - 1.0) * np.log(z)
        - (px + q) * np.log(gamma + x * z)
    )


def expected_spend(p: float, q: float, gamma: float, frequency, monetary) -> np.ndarray:
    """Expected value of a customer's future transaction, given x and z̄.

    Parameters
    ----------
    p, q, gamma : float
        Gamma-Gamma parameters.
    frequency : array_like
        x (0 allowed).
    monetary : array_like
        z̄ (ignored, may be NaN, where x = 0).

    Returns
    -------
    ndarray
        ``p (γ + x z̄) / (p x + q - 1)`` (the note, eq. 5; FHL 2005b, eq. 5): a weighted
        mean of the population mean ``p γ / (q - 1)`` and the customer's z̄, with weight
        ``p x / (p x + q - 1)`` on z̄. NaN where it is infinite (q <= 1 and x = 0).
    """
    x = np.asarray(frequency, dtype=float)
    z = np.where(x > 0, np.asarray(monetary, dtype=float), 0.0)
    denominator = p * x + q - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denominator > 0, p * (gamma + x * z) / denominator, np.nan)
    return out


def simulate(
    p: float, q: float, gamma: float, frequency, *, rng: np.random.Generator | int | None = None
) -> pd.DataFrame:
    """Simulate mean transaction values from the Gamma-Gamma model.

    Parameters
    ----------
    p, q, gamma : float
        Gamma-Gamma parameters.
    frequency : array_like
        Number of transactions of each customer (>= 0).
    rng : Generator, int or None
        Random generator or seed.

    Returns
    -------
    DataFrame
        ``frequency``, ``monetary`` (mean of x values, NaN if x = 0), ``next_value`` (one
        further transaction), ``value_rate`` ν.

    Notes
    -----
    ν ~ Gamma(q, rate γ); the sum of x values is Gamma(px, rate ν), so their mean is
    Gamma(px, rate xν).
    """
    rng = np.random.default_rng(rng)
    x = np.asarray(frequency, dtype=np.int64)
    n = x.size
    value_rate = rng.gamma(q, 1.0 / gamma, size=n)
    shape = np.where(x > 0, p * x, 1.0)
    monetary = rng.gamma(shape, 1.0 / (np.maximum(x, 1) * value_rate))
    monetary = np.where(x > 0, monetary, np.nan)
    next_value = rng.gamma(p, 1.0 / value_rate)
    return pd.DataFrame(
        {"frequency": x, "monetary": monetary, "next_value": next_value, "value_rate": value_rate}
    )


class GammaGammaFit(SpendModelFit):
    """A fitted Gamma-Gamma model (see :mod:`sim.fitting.ggamma`)."""

    def _values(self):
        return self.params["p"], self.params["q"], self.params["gamma"]

    @property
    def population_mean(self) -> float:
        """Mean transaction value in the population, ``p γ / (q - 1)`` (NaN if q <= 1)."""
        p, q, gamma = self._values()
        return p * gamma / (q - 1.0) if q > 1.0 else math.nan

    def expected_spend(self, data: CustomerData) -> np.ndarray:
        """Expected value per future transaction of each customer (:func:`expected_spend`)."""
        return expected_spend(*self._values(), data.frequency, data.monetary)


@register_model
class GammaGamma(MaximumLikelihoodModel):
    """Gamma-Gamma spend model, registry name ``"ggamma"`` (Fader, Hardie & Lee 2005b).

    Fitted by maximum likelihood on the customers with at least one repeat transaction in
    the calibration period (their mean repeat-transaction value and count).
    """

    name = "ggamma"
    title = "Gamma-Gamma"
    kind = "spend"
    parameter_names = ("p", "q", "gamma")
    reference = "Fader, Hardie & Lee (2005), Journal of Marketing Research 42(4), 415-430"
    fitted_class = GammaGammaFit

    def prepare(self, data: CustomerData) -> CompressedCustomers:
        """Distinct (x, z̄) rows of the customers with x > 0 (those with z̄ = 0 left out, and noted)."""
        x = data.frequency
        money = data.monetary
        repeat = x > 0
        if not np.isfinite(money[repeat]).any():
            raise DataError(
                f"the Gamma-Gamma spend model needs transaction amounts; {data.source} has none "
                "(read the log with amount_column set, or leave 'ggamma' out of the models)"
            )
        if np.any(repeat & np.isnan(money)):
            bad = np.flatnonzero(repeat & np.isnan(money))[0]
            raise DataError(
                f"customer {data.customer_id[bad]!r} has {int(x[bad])} repeat transactions but no mean value "
                "(monetary is NaN); the Gamma-Gamma model needs the mean value of every repeat buyer"
            )
        usable = repeat & (money > 0)
        if usable.sum() < 2:
            raise DataError(
                "the Gamma-Gamma model needs at least two customers with repeat transactions of positive "
                "value "
                f"({int(usable.sum())} in {data.source})"
            )
        rows = compress_customers(frequency=x[usable], monetary=money[usable])
        left_out = int(repeat.sum() - usable.sum())
        if left_out:
            # a mean of 0 has zero density under a gamma model: those customers are left out, and said so
            rows = CompressedCustomers(
                rows.columns,
                rows.weight,
                rows.inverse,
                note=f"{left_out} repeat buyers whose repeat transactions are all worth 0 were left out",
            )
        return rows

    def loglik(self, params: np.ndarray, prepared: CompressedCustomers) -> float:
        """Total log-likelihood of the weighted (x, z̄) rows."""
        p, q, gamma = params
        return float(
            np.sum(prepared.weight * loglik(p, q, gamma, prepared["frequency"], prepared["monetary"]))
        )

    def start_values(self, prepared: CompressedCustomers) -> np.ndarray:
        """P = 2, q = 3, γ = the mean of z̄ (so that p γ / (q - 1) matches it)."""
        mean = float(np.sum(prepared.weight * prepared["monetary"])) / float(prepared.weight.sum())
        return np.array([2.0, 3.0, max(mean, 1e-6)])
