"""Unconstrained coordinates of the lifecycle HMM's parameters (polish and standard errors)."""

from __future__ import annotations

import math

import numpy as np

from sim.fitting import _hmm
from sim.fitting.lifecycle.em import q_exit_shape
from sim.fitting.lifecycle.params import (
    ENDED,
    EXIT_SHAPE_BOUNDS,
    IS_EXIT,
    ORDER,
    ROW_EDGES,
    SHAPE_BOUNDS,
    SUPPORT_BOUNDS,
    LifecycleParams,
    edge_weights,
)

__all__ = ["Coords"]


class Coords:
    """Unconstrained coordinates of :class:`LifecycleParams` around a reference point ``p``.

    ``theta`` = [class log-odds against class 0 (C-1)] + per class and live state the
    log-odds of every allowed destination (stay included) against the row's largest one at
    ``p`` (the reference, left out) + per class the log rates (``rates="free"``: the 4
    stages, the order as linear inequalities; ``"blocks"``: one per block of stages pooled at
    ``p``) + log entry rates + [log r] + [log s of a gamma exit frailty] + [the discrete
    frailty's weight log-odds and log support points]. With ``boundary``, destinations whose
    probability at ``p`` is below it are held at zero.
    """

    def __init__(self, model, p, rates="free", boundary=None, pool_rtol=1e-7):
        self.C = C = p.n_classes
        self.rate_het = model.heterogeneity is not None
        self.K = model.n_exit_points if model.exit_kind == "discrete" else 1
        self.exit_gamma = model.exit_kind == "gamma"
        self.n_exit_nodes = model.n_exit_nodes
        self.rows = []  # per class: (edges of the row, reference edge, free edges)
        self.zeroed = []
        for c in range(C):
            rows, zeroed = [], []
            for edges in ROW_EDGES:
                ref = max(edges, key=lambda e: p.transitions[c, _hmm.SRC[e], _hmm.DST[e]])
                free = []
                for e in edges:
                    if e == ref:
                        continue
                    if boundary is not None and p.transitions[c, _hmm.SRC[e], _hmm.DST[e]] < boundary:
                        zeroed.append((int(_hmm.SRC[e]), int(_hmm.DST[e])))
                    else:
                        free.append(e)
                rows.append((edges, ref, free))
            self.rows.append(rows)
            self.zeroed.append(zeroed)
        if rates == "free":
            self.blocks = [[(k,) for k in range(4)] for _ in range(C)]
        else:
            self.blocks = []
            for c in range(C):
                blocks = []
                for k in range(4):
                    for b in blocks:
                        if abs(p.rates[c, b[0]] - p.rates[c, k]) <= pool_rtol * max(p.rates[c, k], 1e-300):
                            b.append(k)
                            break
                    else:
                        blocks.append([k])
                self.blocks.append([tuple(b) for b in blocks])
        n_tr = sum(len(f) for rows in self.rows for _, _, f in rows)
        n_rate = sum(len(b) for b in self.blocks)
        self.o_rate = (C - 1) + n_tr
        self.size = self.o_rate + n_rate + C + self.rate_het + self.exit_gamma + 2 * (self.K - 1)
        lo, hi = math.log(SHAPE_BOUNDS[0]), math.log(SHAPE_BOUNDS[1])
        self.bounds = (
            [(-30.0, 30.0)] * (C - 1)
            + [(-40.0, 40.0)] * n_tr
            + [(-25.0, 5.0)] * (n_rate + C)
            + [(lo, hi)] * self.rate_het
            + [tuple(np.log(EXIT_SHAPE_BOUNDS))] * self.exit_gamma
            + [(-30.0, 30.0)] * (self.K - 1)
            + [tuple(np.log(SUPPORT_BOUNDS))] * (self.K - 1)
        )

    def theta(self, p):
        """The coordinates of ``p`` (clipped to :attr:`bounds`)."""
        t = list(np.log(np.maximum(p.class_probs[1:], 1e-300) / max(p.class_probs[0], 1e-300)))
        for c in range(self.C):
            A = p.transitions[c]
            for _, ref, free in self.rows[c]:
                for e in free:
                    t.append(
                        math.log(max(A[_hmm.SRC[e], _hmm.DST[e]], 1e-300) / A[_hmm.SRC[ref], _hmm.DST[ref]])
                    )
        for c in range(self.C):
            for b in self.blocks[c]:
                t.append(math.log(max(p.rates[c, b[0]], 1e-300)))
        t += list(np.log(np.maximum(p.entry_rates, 1e-300)))
        if self.rate_het:
            t.append(math.log(p.shape))
        if self.exit_gamma:
            t.append(math.log(p.exit_shape))
        if self.K > 1:
            t += list(np.log(np.maximum(p.exit_weights[1:], 1e-300) / max(p.exit_weights[0], 1e-300)))
            t += list(np.log(p.exit_support[1:]))
        return np.clip(np.array(t), [lo for lo, _ in self.bounds], [hi for _, hi in self.bounds])

    def params(self, th):
        """The parameters at coordinates ``th``."""
        C = self.C
        i = C - 1
        z = np.concatenate([[0.0], th[:i]])
        pi = np.exp(z - z.max())
        pi /= pi.sum()
        A = np.zeros((C, 5, 5))
        for c in range(C):
            for _, ref, free in self.rows[c]:
                vals = np.exp(np.asarray(th[i : i + len(free)]))
                i += len(free)
                tot = 1.0 + vals.sum()
                A[c, _hmm.SRC[ref], _hmm.DST[ref]] = 1.0 / tot
                for e, x in zip(free, vals):
                    A[c, _hmm.SRC[e], _hmm.DST[e]] = x / tot
            A[c, ENDED, ENDED] = 1.0
        rates = np.empty((C, 4))
        for c in range(C):
            for b in self.blocks[c]:
                rates[c, list(b)] = math.exp(th[i])
                i += 1
        entry_rates = np.exp(np.asarray(th[i : i + C]))
        i += C
        shape = support = weights = exit_shape = None
        if self.rate_het:
            shape = math.exp(th[i])
            i += 1
        if self.exit_gamma:
            exit_shape = math.exp(th[i])
            i += 1
        if self.K > 1:
            z = np.concatenate([[0.0], th[i : i + self.K - 1]])
            weights = np.exp(z - z.max())
            weights /= weights.sum()
            i += self.K - 1
            support = np.concatenate([[1.0], np.exp(np.asarray(th[i : i + self.K - 1]))])
        return LifecycleParams(pi, A, rates, entry_rates, shape, support, weights, exit_shape)

    def score(self, model, p, st, u, v):
        """Fisher's identity: the gradient of the expected complete-data log-likelihood."""
        C = self.C
        g = []
        post_c = st["post"].sum(axis=(1, 2))
        g += list(post_c[1:] - post_c.sum() * p.class_probs[1:])
        W = edge_weights(v)
        for c in range(C):
            A = p.transitions[c]
            n = st["trans"][c]  # (Qv, NE)
            for edges, _, free in self.rows[c]:
                e = list(edges)
                a = A[_hmm.SRC[e], _hmm.DST[e]]
                S = W[:, e] @ a  # (Qv,)
                N = n[:, e].sum(axis=1)
                for f in free:
                    g.append(n[:, f].sum() - np.sum(N * A[_hmm.SRC[f], _hmm.DST[f]] * W[:, f] / S))
        for c in range(C):
            N = st["ysum"][c, :, :4].sum(axis=0)
            E = (st["occ"][c, :, :4] * u[:, None]).sum(axis=0)
            for b in self.blocks[c]:
                g.append(sum(N[k] - p.rates[c, k] * E[k] for k in b))
        for c in range(C):
            g.append(st["ysum0"][c].sum() - p.entry_rates[c] * (st["post"][c].sum(axis=1) * u).sum())
        h = 1e-5
        if self.rate_het:
            lr = math.log(p.shape)
            f = lambda x: model._q_shape(math.exp(x), st, p.rates, p.entry_rates)  # noqa: E731
            g.append((f(lr + h) - f(lr - h)) / (2 * h))
        if self.exit_gamma:
            ls = math.log(p.exit_shape)
            f = lambda x: q_exit_shape(math.exp(x), st, p.transitions, self.n_exit_nodes)  # noqa: E731
            g.append((f(ls + h) - f(ls - h)) / (2 * h))
        if self.K > 1:
            post_m = st["post"].sum(axis=(0, 1))
            g += list(post_m[1:] - post_m.sum() * p.exit_weights[1:])
            for m in range(1, self.K):
                vm = p.exit_support[m]
                n = st["trans"][:, m, :]  # (C, NE)
                gm = 0.0
                for edges in ROW_EDGES:
                    e = list(edges)
                    a = p.transitions[:, _hmm.SRC[e], _hmm.DST[e]]  # (C, D)
                    w = np.where(IS_EXIT[e], vm, 1.0)
                    share = (a * np.where(IS_EXIT[e], w, 0.0)[None, :]).sum(axis=1) / (a @ w)  # exit mass
                    gm += np.sum(n[:, e][:, IS_EXIT[e]]) - np.sum(n[:, e].sum(axis=1) * share)
                g.append(gm)
        return np.array(g, dtype=float)

    def order_fun(self, th):
        """``log rate(high) - log rate(low) >= 0`` for every ordered pair (free rates only)."""
        out = []
        for c in range(self.C):
            o = self.o_rate + 4 * c
            for lo, hi in ORDER:
                out.append(th[o + hi] - th[o + lo])
        return np.array(out)

    def order_jac(self, th):
        """Jacobian of :meth:`order_fun`."""
        J = np.zeros((4 * self.C, len(th)))
        r = 0
        for c in range(self.C):
            o = self.o_rate + 4 * c
            for lo, hi in ORDER:
                J[r, o + hi] = 1.0
                J[r, o + lo] = -1.0
                r += 1
        return J
