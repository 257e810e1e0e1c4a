"""Smoothing and forecasting kernels of the lifecycle HMM (run once per fit, serial).

The smoothed state probabilities per period (:func:`posterior_states`, a plain scaled
forward-backward over every period of the body and the tail) and the forecast tables
(:func:`forecast_tables`, :func:`forecast_counts`), in the notation of
:mod:`sim.fitting._hmm`. They take the arguments of the filtering kernels of
:mod:`sim.fitting._hmm` (``LifecycleHMM._kernel_args``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sim.fitting._hmm import DST, ENDED, N_STATES, NE, SRC, _tail_factor

__all__ = ["forecast_counts", "forecast_tables", "posterior_states"]


@njit(cache=True)
def _forward_body(s, entry, last, counts, prior, Aj, emis, emis0, alpha, scale):
    """Scaled forward pass over periods entry..last of sequence ``s``; fills ``alpha[t-entry]``
    (normalised over all (k, j)) and ``scale``; returns the log of the product of scales.
    """
    CQ = prior.shape[0]
    e0 = entry[s]
    y = counts[s, e0]
    for k in range(N_STATES):
        for j in range(CQ):
            alpha[0, k, j] = 0.0
    for j in range(CQ):
        alpha[0, 0, j] = prior[j] * emis0[y, j]
    tot = 0.0
    for j in range(CQ):
        tot += alpha[0, 0, j]
    scale[0] = tot
    inv = 1.0 / tot
    for j in range(CQ):
        alpha[0, 0, j] *= inv
    ll = np.log(tot)
    n_body = last[s] - e0 + 1
    part = np.empty(CQ)
    for i in range(1, n_body):
        y = counts[s, e0 + i]
        ap = alpha[i - 1]
        an = alpha[i]
        em = emis[y]
        for j in range(CQ):
            a0 = ap[0, j]
            a1 = ap[1, j]
            a2 = ap[2, j]
            a3 = ap[3, j]
            a4 = ap[4, j]
            an[0, j] = (a0 * Aj[0, j]) * em[0, j]
            an[1, j] = (a0 * Aj[1, j] + a1 * Aj[3, j] + a3 * Aj[9, j]) * em[1, j]
            an[2, j] = (a1 * Aj[4, j] + a2 * Aj[6, j]) * em[2, j]
            an[3, j] = (a1 * Aj[5, j] + a2 * Aj[7, j] + a3 * Aj[8, j]) * em[3, j]
            an[4, j] = (a0 * Aj[2, j] + a3 * Aj[10, j] + a4 * Aj[11, j]) * em[4, j]
            part[j] = an[0, j] + an[1, j] + an[2, j] + an[3, j] + an[4, j]
        tot = 0.0
        for j in range(CQ):
            tot += part[j]
        scale[i] = tot
        inv = 1.0 / tot
        for k in range(N_STATES):
            for j in range(CQ):
                an[k, j] *= inv
        ll += np.log(tot)
    return ll


@njit(cache=True)
def posterior_states(entry, last, counts, ptr, gap, count, T, prior, Aj, emis, emis0, bz, KR):
    """Smoothed state probabilities ``P(state at t | y_{entry..T-1})``, marginal over (c, q).

    Returns
    -------
    gamma : float64 (S, T, 5)
        Zero before the entry period. Used for the stage occupancy over calendar time and
        for the spend model.
    """
    S = entry.shape[0]
    CQ = prior.shape[0]
    out = np.zeros((S, T, N_STATES))
    for s in range(S):
        e0 = entry[s]
        n_body = last[s] - e0 + 1
        alpha = np.empty((n_body, N_STATES, CQ))
        scale = np.empty(n_body)
        _forward_body(s, entry, last, counts, prior, Aj, emis, emis0, alpha, scale)
        L = T - 1 - last[s]
        i_last = n_body - 1
        Z = _tail_factor(alpha[i_last], bz[L])
        beta = np.empty((N_STATES, CQ))
        bn = np.empty((N_STATES, CQ))
        for k in range(N_STATES):
            for j in range(CQ):
                beta[k, j] = bz[L, k, j] / Z
        # tail: propagate the unnormalised state forward, combine with bz of the rest
        cur = np.empty((N_STATES, CQ))
        nxt = np.empty((N_STATES, CQ))
        for k in range(N_STATES):
            for j in range(CQ):
                cur[k, j] = alpha[i_last, k, j] / Z
        em0 = emis[0]
        for h in range(1, L + 1):
            for k in range(N_STATES):
                for j in range(CQ):
                    nxt[k, j] = 0.0
            for e in range(NE):
                for j in range(CQ):
                    nxt[DST[e], j] += cur[SRC[e], j] * Aj[e, j]
            for k in range(N_STATES):
                acc = 0.0
                for j in range(CQ):
                    cur[k, j] = nxt[k, j] * em0[k, j]
                    acc += cur[k, j] * bz[L - h, k, j]
                out[s, last[s] + h, k] = acc
        for i in range(i_last, -1, -1):
            t = e0 + i
            for k in range(N_STATES):
                acc = 0.0
                for j in range(CQ):
                    acc += alpha[i, k, j] * beta[k, j]
                out[s, t, k] = acc
            if i > 0:
                y = counts[s, t]
                inv_s = 1.0 / scale[i]
                em = emis[y]
                for k in range(N_STATES):
                    for j in range(CQ):
                        bn[k, j] = 0.0
                for e in range(NE):
                    for j in range(CQ):
                        bn[SRC[e], j] += Aj[e, j] * em[DST[e], j] * beta[DST[e], j] * inv_s
                for k in range(N_STATES):
                    for j in range(CQ):
                        beta[k, j] = bn[k, j]
    return out


@njit(cache=True)
def forecast_tables(Aj, rates, H):
    """``W[h, k, j]`` = expected purchases in the (h+1)-th period ahead (h = 0..H-1) of a
    customer in state k of block j now: ``(A_j^{h+1} m_j)_k`` with ``m_j[k] = rates[k, j]``
    (0 when ended); ``P[h, k, j]`` = P(not ended after h+1 periods | state k).
    """
    CQ = Aj.shape[1]
    W = np.zeros((H, N_STATES, CQ))
    P = np.zeros((H, N_STATES, CQ))
    v = np.empty((N_STATES, CQ))
    a = np.empty((N_STATES, CQ))
    for k in range(N_STATES):
        for j in range(CQ):
            v[k, j] = rates[k, j]
            a[k, j] = 1.0 if k != ENDED else 0.0
    for h in range(H):
        for e in range(NE):
            for j in range(CQ):
                W[h, SRC[e], j] += Aj[e, j] * v[DST[e], j]
                P[h, SRC[e], j] += Aj[e, j] * a[DST[e], j]
        for k in range(N_STATES):
            for j in range(CQ):
                v[k, j] = W[h, k, j]
                a[k, j] = P[h, k, j]
    return W, P


@njit(cache=True)
def forecast_counts(p_end, W):
    """Expected purchases in each of the next H periods per sequence:
    ``E[s, h] = sum_{k,j} p_end[s, k, j] W[h, k, j]``.
    """
    S = p_end.shape[0]
    CQ = p_end.shape[2]
    H = W.shape[0]
    out = np.zeros((S, H))
    for s in range(S):
        for h in range(H):
            acc = 0.0
            for k in range(N_STATES):
                for j in range(CQ):
                    acc += p_end[s, k, j] * W[h, k, j]
            out[s, h] = acc
    return out
