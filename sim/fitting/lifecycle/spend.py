"""Spend per purchase by lifecycle stage: lognormal, ordered like the rates, given the count model.

A mixin of :class:`sim.fitting.lifecycle.LifecycleHMM` (:meth:`SpendMixin.fit_spend`).
"""

from __future__ import annotations

import math

import numpy as np

from sim.fitting.lifecycle import smoothing
from sim.fitting.lifecycle.params import ORDER, PARTITIONS

__all__ = ["SpendMixin", "isotonic_means"]


def isotonic_means(Sx, W, order=ORDER):
    """Weighted isotonic regression of the means ``Sx / W`` under the partial order (exact
    pooling over the 15 partitions; the constrained normal-mean MLE).
    """
    best, best_val, best_blocks = None, np.inf, None
    m = np.divide(Sx, W, out=np.zeros(4), where=W > 0)
    for part in PARTITIONS:
        mu = np.empty(4)
        ok = True
        for b in part:
            wb = W[list(b)].sum()
            if wb <= 0:
                ok = False
                break
            mu[list(b)] = Sx[list(b)].sum() / wb
        if not ok or any(mu[i] > mu[j] for i, j in order):
            continue
        val = np.sum(W * (m - mu) ** 2)
        if val < best_val:
            best, best_val, best_blocks = mu, val, part
    return best, tuple(sorted(best_blocks))


class SpendMixin:
    """Spend per purchase by stage (a second estimation step on the fitted count model)."""

    def fit_spend(self, txn_customer, txn_period, txn_amount, max_iter=500, tol=1e-10):
        """Lognormal spend per purchase by stage, ordered like the rates, given the count model.

        A second estimation step on the fitted count model. With ``gamma_t(k)`` the smoothed
        P(state k at t | counts) of the purchase's customer, the log amounts of one
        customer-period are a mixture ``sum_k gamma_t(k) prod_i N(log x_i; mu_k, sigma^2)``
        — the exact marginal density given the counts when amounts depend on the state only
        — and the product of these over customer-periods (a composite likelihood: consistent,
        not fully efficient, because it ignores what the amounts of other periods say about
        the state) is maximised by EM with ``mu_E <= mu_F, mu_D <= mu_S`` imposed in the
        M-step (weighted isotonic regression of the stage means, the constrained MLE for a
        common sigma). Simply weighting each amount by ``gamma_t(k)`` would blur the stage
        means towards each other. The first purchase counts as exploration spend. Mean spend
        per purchase in stage k: ``exp(mu_k + sigma^2 / 2)``.

        Parameters
        ----------
        txn_customer : int (m,)
            Customer index of each transaction (into ``customer_sequence``).
        txn_period : int (m,)
            Period of each transaction (entry .. T-1 of the customer).
        txn_amount : float (m,)
            Amount (> 0).
        max_iter, tol
            EM iterations and convergence (composite log-likelihood gain).

        Returns
        -------
        dict: ``mu`` (4,), ``sigma``, ``mean_spend`` (4,), ``weights`` (4,) (expected purchases
        per stage), ``blocks`` (pooled stages), ``loglik``, ``iterations``.
        """
        self._check_fitted()
        d, p = self.data_, self.params_
        txn_customer = np.asarray(txn_customer)
        txn_period = np.asarray(txn_period)
        amount = np.asarray(txn_amount, float)
        if (
            not (txn_customer.shape == txn_period.shape == amount.shape)
            or amount.ndim != 1
            or amount.size == 0
        ):
            raise ValueError("transaction arrays must be 1-D, non-empty and of the same length")
        if not (
            np.issubdtype(txn_customer.dtype, np.integer) and np.issubdtype(txn_period.dtype, np.integer)
        ):
            raise ValueError("txn_customer and txn_period must be integers")
        if np.any(~(amount > 0)) or np.any(~np.isfinite(amount)):
            raise ValueError("amounts must be finite and > 0")
        if np.any(txn_customer < 0) or np.any(txn_customer >= len(d.customer_sequence)):
            raise ValueError("txn_customer must index the customers")
        seq = d.customer_sequence[txn_customer]
        if np.any(txn_period >= d.T) or np.any(txn_period < d.entry[seq]):
            raise ValueError("transaction periods must be in entry..T-1 of their customer")
        x = np.log(amount)
        g = smoothing.posterior_states(*self._kernel_args(self._arrays(p)))
        # customer-periods with purchases: their prior stage probabilities and sums of x
        cp, inverse = np.unique(np.stack([txn_customer, txn_period]), axis=1, return_inverse=True)
        inverse = inverse.ravel()
        prior = g[d.customer_sequence[cp[0]], cp[1], :4]
        prior = prior / prior.sum(axis=1, keepdims=True)
        n = np.bincount(inverse, minlength=cp.shape[1]).astype(float)
        sx = np.bincount(inverse, weights=x, minlength=cp.shape[1])
        sxx = np.bincount(inverse, weights=x * x, minlength=cp.shape[1])
        logprior = np.log(np.maximum(prior, 1e-300))
        W0 = (prior * n[:, None]).sum(axis=0)
        mu, _ = isotonic_means((prior * sx[:, None]).sum(axis=0), W0)
        sigma2 = max(float(np.var(x)), 1e-12)
        ll_old = -np.inf
        it = 0
        for it in range(1, max_iter + 1):
            # sum_i log N(x_i; mu_k, sigma2) for each customer-period and stage
            sq = sxx[:, None] - 2 * mu[None, :] * sx[:, None] + n[:, None] * mu[None, :] ** 2
            logf = -0.5 * n[:, None] * math.log(2 * math.pi * sigma2) - 0.5 * sq / sigma2
            joint = logprior + logf
            top = joint.max(axis=1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))
            ll = float(lse.sum())
            resp = np.exp(joint - lse[:, None])
            W = (resp * n[:, None]).sum(axis=0)
            mu, blocks = isotonic_means((resp * sx[:, None]).sum(axis=0), W)
            sq = sxx[:, None] - 2 * mu[None, :] * sx[:, None] + n[:, None] * mu[None, :] ** 2
            sigma2 = max(float((resp * sq).sum() / n.sum()), 1e-12)
            if ll - ll_old < tol * max(1.0, abs(ll)):
                break
            ll_old = ll
        sigma = math.sqrt(sigma2)
        self.spend_ = dict(
            mu=mu,
            sigma=sigma,
            mean_spend=np.exp(mu + sigma2 / 2),
            weights=W,
            blocks=blocks,
            loglik=ll,
            iterations=it,
        )
        return self.spend_
