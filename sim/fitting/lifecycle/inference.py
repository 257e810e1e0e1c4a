"""Inference for the lifecycle HMM: exact score, direct polish, standard errors, quadrature checks.

A mixin of :class:`sim.fitting.lifecycle.LifecycleHMM`. The score of the marginal
log-likelihood is exact (Fisher's identity: the gradient of the expected complete-data
log-likelihood at the current parameters, from the E-step statistics); the observed
information is its central difference; both live in the unconstrained coordinates of
:class:`~sim.fitting.lifecycle.coords.Coords`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import optimize

from sim.fitting import _hmm
from sim.fitting.lifecycle.coords import Coords
from sim.fitting.lifecycle.params import ALLOWED, ENDED, ORDER

__all__ = ["InferenceMixin"]


class InferenceMixin:
    """Score, polish, standard errors, diagnostics and quadrature checks of the lifecycle HMM."""

    def score(self, params, coords):
        """Exact score of the marginal log-likelihood in the coordinates ``coords``
        (:class:`Coords`), by Fisher's identity: ``d log L / d theta = E[d log L_c / d theta |
        y]`` at theta, from the E-step statistics (the shapes' terms by central differences of
        the smooth one-dimensional expected complete-data log-likelihoods). Returns
        (score, loglik).
        """
        st, a = self._estep(params)
        return coords.score(self, params, st, a["u"], a["v"]), float(st["loglik"])

    def polish(self, params, max_iter=300):
        """Direct maximisation of the marginal log-likelihood from an EM solution.

        EM creeps along the flat ridges of this likelihood; from EM's point SLSQP, with the
        exact score as gradient, maximises it over all coordinates of :class:`Coords` (the
        rate order as linear inequalities on the log rates, moves as bounded log-odds against
        the row's largest one). The result is kept only if its log-likelihood is higher.

        Returns (params, loglik, evaluations).
        """
        coords = Coords(self, params, rates="free")
        th0 = coords.theta(params)
        n = self.data_.n_customers
        cache = {}

        def fg(th):
            key = th.tobytes()
            if key not in cache:
                try:
                    with np.errstate(all="ignore"):
                        g, ll = self.score(coords.params(th), coords)
                except (ValueError, ZeroDivisionError, FloatingPointError):
                    g, ll = np.zeros_like(th), -np.inf
                if not np.isfinite(ll) or not np.all(np.isfinite(g)):
                    g, ll = np.zeros_like(th), -1e300
                cache.clear()
                cache[key] = (-ll / n, -g / n)
            return cache[key]

        cons = [dict(type="ineq", fun=coords.order_fun, jac=coords.order_jac)]
        ll0 = self.loglik(params)
        best_p, best_ll, n_eval = params, ll0, 1
        try:
            res = optimize.minimize(
                lambda t: fg(t)[0],
                th0,
                jac=lambda t: fg(t)[1],
                method="SLSQP",
                bounds=coords.bounds,
                constraints=cons,
                options=dict(maxiter=max_iter, ftol=1e-13),
            )
            n_eval += int(res.nfev)
            q = self._project(coords.params(np.asarray(res.x)))
            ll_q = self.loglik(q)
            n_eval += 1
            if ll_q > best_ll:
                best_p, best_ll = q, ll_q
        except (ValueError, np.linalg.LinAlgError):
            pass
        return best_p, best_ll, n_eval

    @staticmethod
    def _project(p):
        """Enforce the rate order exactly (SLSQP satisfies it to rounding)."""
        rates = p.rates.copy()
        for c in range(p.n_classes):
            for _ in range(4):
                for lo, hi in ORDER:
                    if rates[c, lo] > rates[c, hi]:
                        rates[c, lo] = rates[c, hi] = math.sqrt(rates[c, lo] * rates[c, hi])
        return replace(p, rates=rates)

    def standard_errors(self, step=1e-4, boundary=1e-6):
        """Observed-information standard errors at the fitted parameters.

        Coordinates (:class:`Coords`): class log-odds, log-odds of each move against the
        row's largest, log rates of the pooled blocks of stages (a binding order constraint
        pools its stages; the SE is conditional on that), log entry rates, log shapes. Moves
        with probability below ``boundary`` lie on the boundary of the parameter space and
        are held at zero (no SE). The Hessian is the central difference of the exact score,
        symmetrised; ``cov = (-H)^{-1}``, carried to the natural parameters by the delta
        method.

        Sets and returns ``se_`` (dict with the parameters' shapes; NaN where not estimated),
        and ``cov_theta_``, ``hessian_``, ``hessian_eigenvalues_`` (of the identified
        coordinates), ``identified_`` (coordinates with information; the others — e.g. the
        rate of a stage nobody occupies — are held fixed and their parameters get NaN),
        ``score_at_optimum_``, ``coords_``.
        """
        p = self.params_
        coords = Coords(self, p, rates="blocks", boundary=boundary)
        th = coords.theta(p)
        g0, _ = self.score(coords.params(th), coords)
        n = len(th)
        Hm = np.empty((n, n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = step
            gp, _ = self.score(coords.params(th + e), coords)
            gm, _ = self.score(coords.params(th - e), coords)
            Hm[:, j] = (gp - gm) / (2 * step)
        Hm = 0.5 * (Hm + Hm.T)
        # coordinates without information (e.g. the rate of a stage nobody occupies) are not
        # identified: held fixed, and every natural parameter that depends on them gets NaN
        diag = np.abs(np.diag(Hm))
        keep = diag > 1e-9 * max(diag.max(), 1e-300)
        Hk = Hm[np.ix_(keep, keep)]
        eig = np.linalg.eigvalsh(-Hk)
        cov = np.zeros((n, n))
        cov[np.ix_(keep, keep)] = np.linalg.pinv(-Hk) if eig.min() <= 0 else np.linalg.inv(-Hk)
        C = p.n_classes

        def natural(t):
            q = coords.params(t)
            ex = [] if q.exit_support is None else list(q.exit_weights) + list(q.exit_support)
            return np.concatenate(
                [
                    q.class_probs,
                    q.transitions.ravel(),
                    q.rates.ravel(),
                    q.entry_rates,
                    [np.nan if q.shape is None else q.shape],
                    [np.nan if q.exit_shape is None else q.exit_shape],
                    ex,
                ]
            )

        J = np.empty((len(natural(th)), n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = 1e-6
            J[:, j] = (natural(th + e) - natural(th - e)) / 2e-6
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, cov, J), 0.0))
        se[np.any(np.abs(J[:, ~keep]) > 1e-8, axis=1)] = np.nan
        i = 0
        out = {"class_probs": se[i : i + C]}
        i += C
        tr = se[i : i + 25 * C].reshape(C, 5, 5).copy()
        tr[:, ~ALLOWED] = np.nan
        tr[:, ENDED, ENDED] = np.nan
        for c in range(C):
            for k, d in coords.zeroed[c]:
                tr[c, k, d] = np.nan
            for edges, ref, free in coords.rows[c]:
                if not free:  # every other move on the boundary: the row is fixed, no SE
                    tr[c, _hmm.SRC[ref], _hmm.DST[ref]] = np.nan
        out["transitions"] = tr
        i += 25 * C
        out["rates"] = se[i : i + 4 * C].reshape(C, 4)
        i += 4 * C
        out["entry_rates"] = se[i : i + C]
        i += C
        out["shape"] = float(se[i]) if self.heterogeneity else None
        i += 1
        out["exit_shape"] = float(se[i]) if self.exit_kind == "gamma" else None
        i += 1
        K = self.n_exit_points
        discrete = self.exit_kind == "discrete"
        out["exit_weights"] = se[i : i + K] if discrete else None
        out["exit_support"] = se[i + K : i + 2 * K] if discrete else None
        self.se_ = out
        self.cov_theta_ = cov
        self.hessian_ = Hm
        self.hessian_eigenvalues_ = eig
        self.identified_ = keep
        self.score_at_optimum_ = g0
        self.coords_ = coords
        return out

    def diagnostics(self):
        """Convergence diagnostics of the fit.

        Returns
        -------
        dict
            Best log-likelihood; final starts within 0.01 and within 3 of it; how many
            converged; E-steps and seconds; the quadrature errors (:meth:`quadrature_check`:
            ``quadrature_loglik_change`` for the rate multiplier, ``exit_quadrature_loglik_change``
            for a gamma exit frailty) and the node counts; and, after
            :meth:`standard_errors`, the largest |score| at the optimum (in the coordinates of
            the SEs) and the smallest eigenvalue of the observed information (positive at a
            strict local maximum).
        """
        final = np.array([r.loglik for r in self.starts_ if np.isfinite(r.loglik)])
        out = dict(
            loglik=self.loglik_,
            n_starts=len(self.starts_),
            n_final=len(final),
            n_at_best=self.n_at_best_,
            n_within_3=int(np.sum(final >= self.loglik_ - 3.0)),
            n_converged=int(sum(r.converged for r in self.starts_ if np.isfinite(r.loglik))),
            final_logliks=np.sort(final)[::-1],
            screen_logliks=np.sort([r.screen_loglik for r in self.starts_])[::-1],
            n_estep=self.n_estep_,
            fit_seconds=self.fit_seconds_,
            n_nodes=self.n_nodes,
            n_exit_nodes=self.n_exit_nodes,
        )
        change = self.quadrature_check()
        if change["rate"] is not None:
            out["quadrature_loglik_change"] = change["rate"]
        if change["exit"] is not None:
            out["exit_quadrature_loglik_change"] = change["exit"]
        if hasattr(self, "score_at_optimum_"):
            out["max_abs_score"] = float(np.max(np.abs(self.score_at_optimum_)))
            out["min_information_eigenvalue"] = float(self.hessian_eigenvalues_.min())
        return out

    def loglik_with_nodes(self, n_nodes=None, n_exit_nodes=None, params=None):
        """Log-likelihood with other quadrature node counts (the parameters unchanged).

        Parameters
        ----------
        n_nodes, n_exit_nodes : int, optional
            Nodes of the rate multiplier and of the gamma exit frailty (default: the fit's).
        params : LifecycleParams, optional
            Default: the fitted parameters.

        Returns
        -------
        float
        """
        keep = (self.n_nodes, self.n_exit_nodes)
        try:
            if n_nodes is not None and self.heterogeneity:
                self.n_nodes = int(n_nodes)
            if n_exit_nodes is not None and self.exit_kind == "gamma":
                self.n_exit_nodes = int(n_exit_nodes)
            return self.loglik(params)
        finally:
            self.n_nodes, self.n_exit_nodes = keep

    def quadrature_check(self, factor=2):
        """Change of the log-likelihood at the fitted parameters when each quadrature gets
        ``factor`` times more nodes (the other kept): the quadrature errors of the fit.

        Parameters
        ----------
        factor : int, default 2
            Node multiplier.

        Returns
        -------
        dict
            ``rate`` (the gamma rate multiplier's change) and ``exit`` (the gamma exit
            frailty's), None for a quadrature the specification does not have.
        """
        self._check_fitted()
        base = self.loglik(self.params_)
        rate = exit_ = None
        if self.heterogeneity:
            rate = self.loglik_with_nodes(n_nodes=factor * self.n_nodes) - base
        if self.exit_kind == "gamma":
            exit_ = self.loglik_with_nodes(n_exit_nodes=factor * self.n_exit_nodes) - base
        return {"rate": rate, "exit": exit_}
