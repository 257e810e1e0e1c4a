"""Filtering and forecasting with the lifecycle HMM.

A mixin of :class:`sim.fitting.lifecycle.LifecycleHMM`: the filtered (state, class, rate
node, frailty node) distribution of each customer at the end of the calibration period, the
posterior means of the random effects, forecasts of the purchases to come (NLS section 4:
the filtered distribution propagated through the chain, heterogeneity integrated), the
model-implied purchases of a new customer (the tracking curve) and the cohort's stage
occupancy over calendar periods.
"""

from __future__ import annotations

import numpy as np

from sim.fitting import _hmm
from sim.fitting.lifecycle import smoothing
from sim.fitting.lifecycle.params import ENDED, EXPLORATION

__all__ = ["ForecastMixin"]


class ForecastMixin:
    """Filtered states, posterior means, forecasts and stage occupancy of the lifecycle HMM."""

    def _filtered(self):
        """The filter's joint distribution per distinct sequence and the kernel arrays, cached
        for the current parameters and node counts.
        """
        self._check_fitted()
        key = (self.params_, self.n_nodes, self.n_exit_nodes, self.data_)
        cached = getattr(self, "_filter_cache", None)
        if (
            cached is None
            or any(x is not y for x, y in zip(cached[0][::3], key[::3]))
            or cached[0][1:3] != key[1:3]
        ):
            a = self._arrays(self.params_)
            joint, ll = _hmm.filter_end(*self._kernel_args(a))
            cached = (key, joint, ll, a)
            self._filter_cache = cached
        return cached[1], cached[2], cached[3]

    def filter(self):
        """Filtered state at the end of the calibration period, per customer.

        Returns
        -------
        dict
            ``stage_probs`` (n, 5): P(state at T-1 | data), states :data:`STATES`;
            ``p_alive`` (n,): 1 - P(ended); ``class_probs`` (n, C): posterior class
            probabilities; ``rate_multiplier`` (n,): posterior mean of the purchase-rate
            multiplier ``E[u | data]`` (1 without one); ``exit_frailty`` (n,): posterior mean
            of the exit frailty ``E[v | data]`` (1 without one); ``joint`` (S, 5, J): per
            distinct sequence, P(state, block j = (c, q_u, q_v)); ``loglik_sequence`` (S,).
        """
        joint, ll, a = self._filtered()
        C, Qu, Qv = a["dims"]
        stage = joint.sum(axis=2)
        blocks = joint.sum(axis=1).reshape(-1, C, Qu, Qv)  # (S, C, Qu, Qv)
        cls = blocks.sum(axis=(2, 3))
        u_mean = np.einsum("scqm,q->s", blocks, a["u"])
        v_mean = np.einsum("scqm,m->s", blocks, a["v"])
        cs = self.data_.customer_sequence
        return dict(
            stage_probs=stage[cs],
            p_alive=1.0 - stage[cs, ENDED],
            class_probs=cls[cs],
            rate_multiplier=u_mean[cs],
            exit_frailty=v_mean[cs],
            joint=joint,
            loglik_sequence=ll,
        )

    def expected_counts(self, horizon):
        """Expected repeat purchases in each of the ``horizon`` periods after calibration.

        Propagates each customer's filtered (state, class, nodes) distribution through the
        chain: ``E[y_{T-1+h}] = sum p_end(k, j) (A_j^h m_j)_k`` with ``m_j[k] = lambda_{c,k}
        u_q`` (NLS section 4's forecast, heterogeneity integrated).

        Parameters
        ----------
        horizon : int
            Periods ahead.

        Returns
        -------
        ndarray, float64 (n, horizon)
        """
        joint, _, a = self._filtered()
        W, _ = smoothing.forecast_tables(a["Aj"], a["rates"], int(horizon))
        return smoothing.forecast_counts(joint, W)[self.data_.customer_sequence]

    def weighted_forecast(self, weights):
        """Weighted sum of the expected repeat purchases of the periods ahead, per customer.

        Parameters
        ----------
        weights : array_like (H,)
            Weight of the h-th period ahead (ones: the expected purchases in H periods;
            discount factors: the discounted expected residual transactions).

        Returns
        -------
        ndarray (n,)
            ``sum_h weights[h] E[y_{T-1+h+1}]``, computed per distinct sequence from the
            weighted forecast tables (memory O(H J), not O(n H)).
        """
        weights = np.asarray(weights, dtype=float)
        joint, _, a = self._filtered()
        if weights.size == 0:
            return np.zeros(len(self.data_.customer_sequence))
        W, _ = smoothing.forecast_tables(a["Aj"], a["rates"], int(weights.size))
        Wd = np.tensordot(weights, W, axes=(0, 0))  # (5, J)
        per_sequence = np.einsum("skj,kj->s", joint, Wd)
        return per_sequence[self.data_.customer_sequence]

    def predict(self, horizon):
        """Expected repeat purchases over the next ``horizon`` periods, per customer.

        Parameters
        ----------
        horizon : int
            Periods ahead.

        Returns
        -------
        ndarray (n,)
        """
        return self.expected_counts(horizon).sum(axis=1)

    def unconditional_curve(self, n_periods):
        """Expected repeat purchases of a new customer in each period since her entry.

        Parameters
        ----------
        n_periods : int
            Periods, the entry period first.

        Returns
        -------
        ndarray (n_periods,)
            Period 0: the entry period's ``sum_c pi_c lambda0_c``; period h >= 1: the chain
            from exploration, ``sum_j prior_j (A_j^h m_j)_exploration``.
        """
        self._check_fitted()
        p = self.params_
        a = self._arrays(p)
        curve = np.zeros(n_periods)
        if n_periods == 0:
            return curve
        curve[0] = np.sum(p.class_probs * p.entry_rates)  # E[u] = 1 (exact quadrature)
        if n_periods > 1:
            W, _ = smoothing.forecast_tables(a["Aj"], a["rates"], n_periods - 1)
            curve[1:] = (a["prior"][None, :] * W[:, EXPLORATION, :]).sum(axis=1)
        return curve

    def unconditional_counts(self, entry, n_periods):
        """Expected repeat purchases per calendar period of customers entering at ``entry``,
        from the model alone: the tracking curve.

        Parameters
        ----------
        entry : int array (n,)
            Entry period of each customer.
        n_periods : int
            Calendar periods.

        Returns
        -------
        ndarray (n_periods,)
            Summed over the customers.
        """
        entry = np.asarray(entry, dtype=np.int64)
        out = np.zeros(n_periods)
        per_entry = np.bincount(entry, minlength=n_periods)[:n_periods]
        curve = self.unconditional_curve(n_periods)
        for e, m in enumerate(per_entry):
            if m:
                out[e:] += m * curve[: n_periods - e]
        return out

    def stage_occupancy(self, horizon=0):
        """Expected customers in each state per calendar period inferred from the data.

        Smoothed P(state at t | calibration data) summed over customers for t < T, then the
        filtered state at T-1 propagated through the chain for ``horizon`` more periods.

        Parameters
        ----------
        horizon : int, default 0
            Periods forecast after the calibration period.

        Returns
        -------
        ndarray, float64 (T + horizon, 5)
            A customer counts from her entry period on.
        """
        self._check_fitted()
        d = self.data_
        joint, _, a = self._filtered()
        g = smoothing.posterior_states(*self._kernel_args(a))
        occ = np.einsum("s,stk->tk", d.weight, g)
        if horizon <= 0:
            return occ
        cur = np.einsum("s,skj->kj", d.weight, joint)  # (5, J)
        fut = np.empty((horizon, 5))
        for h in range(horizon):
            nxt = np.zeros_like(cur)
            np.add.at(nxt, _hmm.DST, cur[_hmm.SRC] * a["Aj"])
            cur = nxt
            fut[h] = cur.sum(axis=1)
        return np.vstack([occ, fut])
