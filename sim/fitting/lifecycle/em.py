"""EM for the lifecycle HMM: the generalised M-step, random starts, SQUAREM acceleration.

A mixin of :class:`sim.fitting.lifecycle.LifecycleHMM` (it uses the model's ``_estep`` and
settings). M-step: ``pi`` and the ordered rates given ``r`` in closed form; the transition
rows by the MM iteration for eq. (1) (closed form without frailty: expected move counts over
expected visits, so structural zeros stay zero); ``r``, the gamma exit shape ``s`` and the
discrete frailty's support points by one-dimensional safeguarded Newton steps on the
expected complete-data log-likelihood, the discrete frailty's weights in closed form. Each
part can only raise the expected complete-data log-likelihood, so every iteration raises the
likelihood (a generalised EM, Dempster, Laird & Rubin 1977).

The quadratures make the random effects finite latent classes: the rate node ``q`` (prior
weight ``w_q(r)``) and the frailty node ``m`` (a discrete support point with weight
``omega_m``, or a gamma quantile ``v_m(s)`` at a fixed Legendre weight). EM on that finite
mixture maximises the quadrature-approximated marginal likelihood exactly.
"""

from __future__ import annotations

import math

import numpy as np

from sim.fitting import _hmm
from sim.fitting.lifecycle.params import (
    ENDED,
    EXIT_SHAPE_BOUNDS,
    IS_EXIT,
    ROW_EDGES,
    SHAPE_BOUNDS,
    SUPPORT_BOUNDS,
    LifecycleParams,
    edge_weights,
    gamma_probability_quadrature,
    gamma_quadrature,
    isotonic_rates,
)

__all__ = ["EMMixin", "newton_log", "q_exit_shape", "q_support"]


def newton_log(f, x0, lo, hi, h=1e-3):
    """One safeguarded Newton step on ``f(log x)`` from ``log x0``; returns a point no worse.

    Returns
    -------
    x, step : float
        The new point and the size of the step taken in ``log x`` (0 if none improved).
    """
    l0 = math.log(x0)
    f0, fp, fm = f(l0), f(l0 + h), f(l0 - h)
    g1 = (fp - fm) / (2 * h)
    g2 = (fp - 2 * f0 + fm) / (h * h)
    step = -g1 / g2 if g2 < 0 else math.copysign(0.5, g1)
    step = max(-1.0, min(1.0, step))
    for _ in range(20):
        l1 = min(max(l0 + step, math.log(lo)), math.log(hi))
        if f(l1) > f0:
            return math.exp(l1), abs(l1 - l0)
        step *= 0.5
    return x0, 0.0


def q_support(x, m, st, transitions):
    """Terms of the expected complete-data log-likelihood that depend on the discrete frailty's
    support point ``v_m = exp(x)`` (transitions fixed): for every class and row,
    ``n_exit log v - N log(sum_d a_d w_d(v))`` — concave in x.
    """
    v = math.exp(x)
    n = st["trans"][:, m, :]  # (C, NE)
    val = 0.0
    for edges in ROW_EDGES:
        e = list(edges)
        a = transitions[:, _hmm.SRC[e], _hmm.DST[e]]  # (C, D)
        w = np.where(IS_EXIT[e], v, 1.0)
        val += np.sum(n[:, e] * np.log(w)[None, :]) - np.sum(n[:, e].sum(axis=1) * np.log(a @ w))
    return val


def q_exit_shape(shape, st, transitions, n_nodes):
    """Terms of the expected complete-data log-likelihood that depend on the gamma exit shape
    ``s``: the frailty nodes ``v_m(s)`` (quantiles at fixed Legendre points, fixed weights) in
    ``sum_m sum_c sum_rows n_exit log v_m - N log(sum_d a_d w_d(v_m))``.
    """
    v, _ = gamma_probability_quadrature(shape, n_nodes)
    n = st["trans"]  # (C, Qv, NE)
    logv = np.log(v)
    val = 0.0
    for edges in ROW_EDGES:
        e = list(edges)
        a = transitions[:, _hmm.SRC[e], _hmm.DST[e]]  # (C, D)
        w = np.where(IS_EXIT[e][None, :], v[:, None], 1.0)  # (Qv, D)
        exits = [i for i, edge in enumerate(e) if IS_EXIT[edge]]
        val += np.sum(n[:, :, [e[i] for i in exits]].sum(axis=2) * logv[None, :])
        val -= np.sum(n[:, :, e].sum(axis=2) * np.log(np.maximum(a @ w.T, 1e-300)))
    return val


class EMMixin:
    """The M-step, the random starts and the (accelerated) EM loop of the lifecycle HMM."""

    def _q_shape(self, shape, st, rates, entry_rates):
        """Expected complete-data log-likelihood in the rate shape r (everything else fixed)."""
        u, w = gamma_quadrature(shape, self.n_nodes)
        logu = np.log(u)
        post = st["post"].sum(axis=2)
        val = np.sum(post * np.log(np.maximum(w, 1e-300))[None, :])
        val += np.sum(st["ysum"][:, :, :4].sum(axis=2) * logu[None, :])
        val -= np.sum(st["occ"][:, :, :4] * rates[:, None, :] * u[None, :, None])
        val += np.sum(st["ysum0"] * logu[None, :]) - np.sum(post * entry_rates[:, None] * u[None, :])
        return val

    def _rates_given_u(self, st, u, old):
        C = st["post"].shape[0]
        rates = np.empty((C, 4))
        for c in range(C):
            N = st["ysum"][c, :, :4].sum(axis=0)
            E = (st["occ"][c, :, :4] * u[:, None]).sum(axis=0)
            rates[c], _ = isotonic_rates(N, E, fallback=old.rates[c])
        E0 = (st["post"].sum(axis=2) * u[None, :]).sum(axis=1)
        entry_rates = np.where(E0 > 0, st["ysum0"].sum(axis=1) / np.where(E0 > 0, E0, 1.0), old.entry_rates)
        return rates, entry_rates

    @staticmethod
    def _transitions_mm(st, A_old, v, n_iter):
        """Transition rows of eq. (1) given the frailty nodes: MM iterations (Hunter 2004) for
        ``max sum_d n_d log a_d - sum_m N_m log(sum_d w_md a_d)``, each of which raises it;
        without frailty one iteration is the closed form ``a_d = n_d / sum n``.
        """
        C = A_old.shape[0]
        W = edge_weights(v)
        A = A_old.copy()
        n_iter = 1 if len(v) == 1 else n_iter
        for c in range(C):
            for edges in ROW_EDGES:
                e = list(edges)
                n = st["trans"][c][:, e]  # (Qv, D)
                N = n.sum(axis=1)
                nd = n.sum(axis=0)
                if nd.sum() <= 0:
                    continue
                a = A_old[c, _hmm.SRC[e], _hmm.DST[e]].copy()
                w = W[:, e]
                with np.errstate(divide="ignore", invalid="ignore"):
                    for _ in range(n_iter):
                        S = w @ a
                        denom = np.where(N > 0, N / S, 0.0) @ w
                        new = np.where(nd > 0, nd / np.where(denom > 0, denom, 1.0), 0.0)
                        if not (np.all(np.isfinite(new)) and new.sum() > 0):
                            break
                        a = new / new.sum()
                A[c, _hmm.SRC[e], _hmm.DST[e]] = a
        return A

    def _mstep(self, p, st):
        """Generalised M-step (module docstring): every part raises Q."""
        post_c = st["post"].sum(axis=(1, 2))
        class_probs = post_c / post_c.sum()
        shape = p.shape
        u = gamma_quadrature(shape, self.n_nodes)[0] if self.heterogeneity else np.ones(1)
        support = weights = exit_shape = None
        v = np.ones(1)
        if self.exit_kind == "discrete":
            post_m = st["post"].sum(axis=(0, 1))
            weights = post_m / post_m.sum()
            v = np.asarray(p.exit_support, float).copy()
        elif self.exit_kind == "gamma":
            exit_shape = p.exit_shape
            v = gamma_probability_quadrature(exit_shape, self.n_exit_nodes)[0]
        A = self._transitions_mm(st, p.transitions, v, 5)
        if self.exit_kind == "discrete":
            for _ in range(2):
                moved = 0.0
                for m in range(1, len(v)):
                    vm, step = newton_log(lambda x, m=m: q_support(x, m, st, A), v[m], *SUPPORT_BOUNDS)
                    v[m] = vm
                    moved = max(moved, step)
                A = self._transitions_mm(st, A, v, 5)
                if moved < 1e-7:
                    break
            support = v
        elif self.exit_kind == "gamma":
            for _ in range(2):
                exit_shape, moved = newton_log(
                    lambda x: q_exit_shape(math.exp(x), st, A, self.n_exit_nodes),
                    exit_shape,
                    *EXIT_SHAPE_BOUNDS,
                )
                v = gamma_probability_quadrature(exit_shape, self.n_exit_nodes)[0]
                A = self._transitions_mm(st, A, v, 5)
                if moved < 1e-7:
                    break
        A[:, ENDED] = 0.0
        A[:, ENDED, ENDED] = 1.0
        rates, entry_rates = self._rates_given_u(st, u, p)
        if self.heterogeneity:
            for _ in range(3):
                shape, moved = newton_log(
                    lambda x: self._q_shape(math.exp(x), st, rates, entry_rates), shape, *SHAPE_BOUNDS
                )
                u = gamma_quadrature(shape, self.n_nodes)[0]
                rates, entry_rates = self._rates_given_u(st, u, p)
                if moved < 1e-7:
                    break
        return LifecycleParams(class_probs, A, rates, entry_rates, shape, support, weights, exit_shape)

    def _random_start(self, rng):
        C = self.n_classes
        d = self.data_
        base = max(
            float((d.counts.sum(axis=1) * d.weight).sum() / max((d.weight * (d.T - d.entry)).sum(), 1.0)),
            1e-3,
        )
        A = np.zeros((C, 5, 5))
        for c in range(C):
            for edges in ROW_EDGES:
                e = list(edges)
                stay = rng.uniform(0.7, 0.97)
                A[c, _hmm.SRC[e[0]], _hmm.DST[e[0]]] = stay
                A[c, _hmm.SRC[e[1:]], _hmm.DST[e[1:]]] = (1 - stay) * rng.dirichlet(np.ones(len(e) - 1))
            A[c, ENDED, ENDED] = 1.0
        rates = np.empty((C, 4))
        for c in range(C):
            r = np.sort(base * np.exp(rng.uniform(-2.5, 2.0, 4)))
            mid = rng.permutation(r[1:3])
            rates[c] = [r[0], mid[0], r[3], mid[1]]
        entry_rates = base * np.exp(rng.uniform(-1, 1, C))
        shape = float(np.exp(rng.uniform(np.log(0.3), np.log(5.0)))) if self.heterogeneity else None
        support = weights = exit_shape = None
        if self.exit_kind == "discrete":
            support = np.concatenate([[1.0], np.exp(rng.uniform(-3.0, 2.0, self.n_exit_points - 1))])
            weights = rng.dirichlet(2 * np.ones(self.n_exit_points))
        elif self.exit_kind == "gamma":
            exit_shape = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0))))
        return LifecycleParams(
            rng.dirichlet(2 * np.ones(C)), A, rates, entry_rates, shape, support, weights, exit_shape
        )

    # SQUAREM works on an unconstrained vector: class log-probabilities, log of every allowed
    # move (rows renormalised), log rates, log entry rates, log shapes, frailty.
    def _sq_pack(self, p):
        tr = np.log(np.maximum(p.transitions[:, _hmm.SRC, _hmm.DST], 1e-300))
        parts = [
            np.log(np.maximum(p.class_probs, 1e-300)),
            tr.ravel(),
            np.log(np.maximum(p.rates, 1e-300)).ravel(),
            np.log(np.maximum(p.entry_rates, 1e-300)),
        ]
        if self.heterogeneity:
            parts.append([math.log(p.shape)])
        if self.exit_kind == "discrete":
            parts.append(np.log(np.maximum(p.exit_weights, 1e-300)))
            parts.append(np.log(p.exit_support[1:]))
        elif self.exit_kind == "gamma":
            parts.append([math.log(p.exit_shape)])
        return np.concatenate([np.atleast_1d(np.asarray(x, float)) for x in parts])

    def _sq_unpack(self, x, C):
        i = 0
        z = x[i : i + C]
        i += C
        pi = np.exp(z - z.max())
        pi /= pi.sum()
        tr = x[i : i + C * _hmm.NE].reshape(C, _hmm.NE)
        i += C * _hmm.NE
        A = np.zeros((C, 5, 5))
        A[:, _hmm.SRC, _hmm.DST] = np.exp(np.minimum(tr, 0.0))
        A /= A.sum(axis=2, keepdims=True)
        rates = np.exp(np.clip(x[i : i + 4 * C], -700, 50)).reshape(C, 4)
        i += 4 * C
        er = np.exp(np.clip(x[i : i + C], -700, 50))
        i += C
        shape = support = weights = exit_shape = None
        if self.heterogeneity:
            shape = float(np.exp(np.clip(x[i], *np.log(SHAPE_BOUNDS))))
            i += 1
        if self.exit_kind == "discrete":
            K = self.n_exit_points
            z = x[i : i + K]
            weights = np.exp(z - z.max())
            weights /= weights.sum()
            i += K
            support = np.concatenate([[1.0], np.exp(np.clip(x[i : i + K - 1], *np.log(SUPPORT_BOUNDS)))])
        elif self.exit_kind == "gamma":
            exit_shape = float(np.exp(np.clip(x[i], *np.log(EXIT_SHAPE_BOUNDS))))
        return LifecycleParams(pi, A, rates, er, shape, support, weights, exit_shape)

    def _em_step(self, p):
        st, _ = self._estep(p)
        return self._mstep(p, st), float(st["loglik"])

    def run_em(self, start, max_iter=None, tol=None, accelerate=True):
        """EM from ``start`` until a cycle raises the log-likelihood by less than ``tol``.

        With ``accelerate`` each cycle is a SQUAREM step (Varadhan & Roland 2008, Scand. J.
        Statist. 35, scheme S3): two EM steps, an extrapolation along them and a stabilising
        EM step from the extrapolated point, accepted only if its log-likelihood is at least
        that after the first EM step (otherwise the plain EM steps are kept) — so the
        log-likelihood never decreases, as in plain EM. The M-step always returns parameters
        with the structural zeros and the rate order.

        Parameters
        ----------
        start : LifecycleParams
            Starting values.
        max_iter : int, optional
            Cap on E-steps (default ``self.max_iter``).
        tol : float, optional
            Convergence (default ``self.tol``).
        accelerate : bool, default True
            SQUAREM cycles instead of plain EM steps.

        Returns
        -------
        params, loglik, n_estep, converged, history
            ``history``: the log-likelihood of every accepted parameter value, in order
            (non-decreasing).
        """
        max_iter = self.max_iter if max_iter is None else max_iter
        tol = self.tol if tol is None else tol
        C = start.n_classes
        p = start
        p1, ll = self._em_step(p)  # ll = loglik(p)
        history = [ll]
        n_e = 1
        converged = False
        while n_e < max_iter:
            if not accelerate:
                p2, ll1 = self._em_step(p1)  # ll1 = loglik(p1)
                n_e += 1
                history.append(ll1)
                gain = ll1 - ll
                p, p1, ll = p1, p2, ll1
                if gain < tol:
                    converged = True
                    break
                continue
            p2, ll1 = self._em_step(p1)
            n_e += 1
            x0, x1, x2 = self._sq_pack(p), self._sq_pack(p1), self._sq_pack(p2)
            r = x1 - x0
            dv = x2 - x1 - r
            nv = np.linalg.norm(dv)
            cand = None
            if nv > 0 and np.all(np.isfinite(dv)):
                alpha = min(-np.linalg.norm(r) / nv, -1.0)
                for _ in range(6):
                    pe = self._sq_unpack(x0 - 2 * alpha * r + alpha * alpha * dv, C)
                    with np.errstate(all="ignore"):
                        p3, ll_e = self._em_step(pe)  # stabilising EM step
                    n_e += 1
                    if np.isfinite(ll_e):
                        p4, ll3 = self._em_step(p3)  # ll3 = loglik(p3)
                        n_e += 1
                        if ll3 >= ll1:
                            cand = (p3, ll3, p4)
                            break
                    if alpha == -1.0:
                        break
                    alpha = min(-1.0, (alpha - 1.0) / 2.0)
            if cand is None:  # plain EM: p -> p1 -> p2
                p3, ll2 = self._em_step(p2)
                n_e += 1
                history += [ll1, ll2]
                new = (p2, ll2, p3)
            else:
                history += [ll1, cand[1]]
                new = cand
            gain = new[1] - ll
            p, ll, p1 = new
            if gain < tol:
                converged = True
                break
        return p, float(ll), n_e, converged, np.array(history)
