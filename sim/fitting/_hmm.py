"""Private numba kernels of the lifecycle hidden-Markov model (:mod:`sim.fitting.lifecycle`).

Array-only: every kernel takes and returns NumPy arrays; the model class builds the
parameter arrays and reads the statistics back. Notation (Rabiner 1989, "A tutorial on
hidden Markov models and selected applications in speech recognition", Proc. IEEE 77(2),
section V.A for the scaling; Netzer, Lattin & Srinivasan 2008, Marketing Science 27(2),
eqs. (1)-(6) for an HMM of customer relationships):

* a customer belongs to latent class ``c`` (prior ``pi_c``) and has a purchase-rate
  multiplier ``u_q`` (quadrature node ``q``, weight ``w_q``); ``(c, q)`` is fixed over time,
  so the chain is block-diagonal with one 5-state block per ``j = c * Q + q`` (``CQ`` blocks);
  every array keeps ``j`` as its LAST (contiguous) axis so that the loops over it vectorise;
* the hidden state ``k`` is 0 exploration, 1 formation, 2 stability, 3 decline, 4 ended
  (the order of :mod:`sim.model`); the only moves are the ``NE = 12`` edges
  ``SRC[e] -> DST[e]`` (stays included); ``Aj[e, j]`` is the probability of edge ``e`` in
  block ``j`` (the class's transition matrix, repeated over the nodes);
* a distinct calibration sequence ``s`` enters in period ``e_s`` (state exploration; emission
  of the entry period from ``emis0[y, j]``), is observed in periods ``e_s .. T-1`` with
  counts ``y_{s,t}``, and its last period with a purchase is ``l_s >= e_s``; periods
  ``l_s+1 .. T-1`` are zeros (the *tail*);
* emissions ``emis[y, k, j] = P(y purchases in a period | block j, state k)``; any count
  distribution works (Poisson, negative binomial); ``emis[y, 4, j] = [y == 0]``.

The forward recursion (Rabiner eqs. 19-20, 91-92) on the body ``e_s .. l_s`` is scaled:
``alpha_hat_t = alpha_t / prod_{tau<=t} c_tau`` with ``c_t`` the sum of the unnormalised
``alpha_t`` over (k, j). The tail is not iterated but summarised by tables depending only on
its length ``L = T-1-l_s`` (:func:`tail_tables`): ``bz[L, k, j]`` = P(L zero periods | state
k), and the expected occupancies ``G`` and transition counts ``H`` over the tail as linear
maps of the state at ``l_s``. The likelihood of a sequence is ``prod_t c_t * sum_{k,j}
alpha_hat_l(k, j) bz[L, k, j]`` (Rabiner eq. 103). The backward variables are scaled by the
same ``c_t`` (eqs. 94-95), so ``gamma_t = alpha_hat_t * beta_hat_t`` (eq. 27) and ``xi_t =
alpha_hat_{t-1} A e(y_t) beta_hat_t / c_t`` (eq. 37) are posterior probabilities; the
expected sufficient statistics of Baum-Welch (eqs. 40a-c) are their sums, weighted by the
multiplicity of each distinct sequence.

Determinism: the E-step (the only kernel run at every iteration, parallel over blocks of
sequences with ``prange``) processes sequences in blocks of a fixed size; each block writes
its own partial sums, added in block order afterwards, and no reduction is reassociated (no
fastmath), so its results are bitwise identical for any number of threads. The filtering,
smoothing and forecasting kernels run once per fit and are serial (they cost a fraction of
one E-step; keeping them serial keeps the compile time down).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

N_STATES = 5
ENDED = 4
#: Allowed moves (source, destination), stays included: exploration -> formation / ended,
#: formation -> stability / decline, stability -> decline, decline -> formation / ended.
SRC = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4], dtype=np.int64)
DST = np.array([0, 1, 4, 1, 2, 3, 2, 3, 3, 1, 4, 4], dtype=np.int64)
NE = 12


def stats_layout(C, Q):
    """Offsets in the flat statistics vector of :func:`estep`:
    ``[loglik | post (CQ) | trans (NE, CQ) | occ (5, CQ) | ysum (5, CQ) | ysum0 (CQ)]``.
    Returns (o_post, o_trans, o_occ, o_ysum, o_y0, size).
    """
    CQ = C * Q
    o_post = 1
    o_trans = o_post + CQ
    o_occ = o_trans + NE * CQ
    o_ysum = o_occ + N_STATES * CQ
    o_y0 = o_ysum + N_STATES * CQ
    return o_post, o_trans, o_occ, o_ysum, o_y0, o_y0 + CQ


@njit(cache=True)
def tail_tables(Aj, emis_zero, L_max):
    """Tables summarising runs of zero-purchase periods after a sequence's last purchase.

    Parameters
    ----------
    Aj : float64 (NE, CQ)
        Edge probabilities per block.
    emis_zero : float64 (5, CQ)
        P(0 purchases | state, block).
    L_max : int
        Longest tail.

    Returns
    -------
    bz : float64 (L_max+1, 5, CQ)
        ``bz[L, k]`` = P(zeros in the next L periods | state k now) (the unscaled backward
        variable of a zero run; ``bz[0] = 1``): ``bz_L[i] = sum_m M[i, m] bz_{L-1}[m]`` with
        ``M = A diag(emis_zero)``.
    G : float64 (L_max+1, 5, 5, CQ)
        ``G[L, i, k] = sum_{l=1..L} (e_i M^l)_k bz[L-l, k]``: for a state distribution ``a``
        at the last purchase, ``a G[L] / (a bz[L])`` is the expected number of tail periods
        in each state. ``G_L[i, k] = sum_m M[i, m] (delta_mk bz_{L-1}[k] + G_{L-1}[m, k])``.
    H : float64 (L_max+1, 5, NE, CQ)
        Same for the expected moves along each edge ``e = (k, k')`` over the tail:
        ``H_L[i, e] = delta_{i,k} M[k, k'] bz_{L-1}[k'] + sum_m M[i, m] H_{L-1}[m, e]``.
    """
    CQ = Aj.shape[1]
    bz = np.zeros((L_max + 1, N_STATES, CQ))
    G = np.zeros((L_max + 1, N_STATES, N_STATES, CQ))
    H = np.zeros((L_max + 1, N_STATES, NE, CQ))
    M = np.empty((NE, CQ))
    for e in range(NE):
        for j in range(CQ):
            M[e, j] = Aj[e, j] * emis_zero[DST[e], j]
    for k in range(N_STATES):
        for j in range(CQ):
            bz[0, k, j] = 1.0
    for L in range(1, L_max + 1):
        for e in range(NE):
            i = SRC[e]
            m = DST[e]
            for j in range(CQ):
                bz[L, i, j] += M[e, j] * bz[L - 1, m, j]
            for j in range(CQ):
                G[L, i, m, j] += M[e, j] * bz[L - 1, m, j]
            for k in range(N_STATES):
                for j in range(CQ):
                    G[L, i, k, j] += M[e, j] * G[L - 1, m, k, j]
            for e2 in range(NE):
                for j in range(CQ):
                    H[L, i, e2, j] += M[e, j] * H[L - 1, m, e2, j]
            for j in range(CQ):
                H[L, i, e, j] += M[e, j] * bz[L - 1, m, j]
    return bz, G, H


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
def _tail_factor(alpha_last, bz_L):
    CQ = alpha_last.shape[1]
    Z = 0.0
    for k in range(N_STATES):
        for j in range(CQ):
            Z += alpha_last[k, j] * bz_L[k, j]
    return Z


@njit(cache=True)
def run_tables(Aj, emis_zero, R_max):
    """Tables for the runs of zero-purchase periods between two purchase periods.

    With ``M = A diag(emis_zero)`` (one zero period) and ``R`` zero periods between a purchase
    period ``t_a`` and the next one ``t_b = t_a + R + 1``:

    * ``Mpow[R] = M^R``; ``KR[R] = M^R A``: the forward message jumps the run,
      ``alpha_b = (alpha_a KR[R]) * e(y_b)``;
    * ``Occ[R, i, k, m] = sum_{l=1..R} (M^l)[i, k] (M^{R-l})[k, m]``: with ``beta'`` the
      backward message entering the run (``A e(y_b) beta_b / c_b``), the expected occupancy
      of state k over the run is ``sum_{i,m} alpha_a[i] Occ[R, i, k, m] beta'[m]``;
    * ``Xi[R, i, e, m] = sum_{l=0..R-1} (M^l)[i, src] M[src, dst] (M^{R-1-l})[dst, m]``: the
      same for the moves along edge e that land inside the run.

    Recursions: ``Occ_R = M Occ_{R-1} + M[i, k] M^{R-1}[k, m]``, ``Xi_R = M Xi_{R-1} +
    delta_{i, src} M[e] M^{R-1}[dst, m]``.

    Returns
    -------
    Mpow, KR : float64 (R_max+1, 5, 5, J)
    Occ : float64 (R_max+1, 5, 5, 5, J)
    Xi : float64 (R_max+1, 5, NE, 5, J)
    """
    J = Aj.shape[1]
    Mpow = np.zeros((R_max + 1, N_STATES, N_STATES, J))
    KR = np.zeros((R_max + 1, N_STATES, N_STATES, J))
    Occ = np.zeros((R_max + 1, N_STATES, N_STATES, N_STATES, J))
    Xi = np.zeros((R_max + 1, N_STATES, NE, N_STATES, J))
    M = np.empty((NE, J))
    for e in range(NE):
        for j in range(J):
            M[e, j] = Aj[e, j] * emis_zero[DST[e], j]
    for k in range(N_STATES):
        for j in range(J):
            Mpow[0, k, k, j] = 1.0
    for R in range(R_max + 1):
        if R > 0:
            for e in range(NE):
                i = SRC[e]
                n = DST[e]
                for m in range(N_STATES):
                    for j in range(J):
                        Mpow[R, i, m, j] += M[e, j] * Mpow[R - 1, n, m, j]
                for k in range(N_STATES):
                    for m in range(N_STATES):
                        for j in range(J):
                            Occ[R, i, k, m, j] += M[e, j] * Occ[R - 1, n, k, m, j]
                for e2 in range(NE):
                    for m in range(N_STATES):
                        for j in range(J):
                            Xi[R, i, e2, m, j] += M[e, j] * Xi[R - 1, n, e2, m, j]
                # l = 1 term of Occ (k = n): M[i, n] M^{R-1}[n, m]
                for m in range(N_STATES):
                    for j in range(J):
                        Occ[R, i, n, m, j] += M[e, j] * Mpow[R - 1, n, m, j]
                # l = 0 term of Xi (i = src of e): M[e] M^{R-1}[dst, m]
                for m in range(N_STATES):
                    for j in range(J):
                        Xi[R, i, e, m, j] += M[e, j] * Mpow[R - 1, n, m, j]
        for e in range(NE):
            for i in range(N_STATES):
                for j in range(J):
                    KR[R, i, DST[e], j] += Mpow[R, i, SRC[e], j] * Aj[e, j]
    return Mpow, KR, Occ, Xi


@njit(cache=True)
def _forward_events(s, entry, last, counts, prior, emis, emis0, KR, alpha, scale, events):
    """Scaled forward pass over the purchase periods of sequence ``s`` (the entry period and
    every later period with a purchase, up to ``last``), jumping the zero runs between them
    with ``KR``. Fills ``events`` (their periods), ``alpha`` (normalised over (k, j)) and
    ``scale``; returns (log of the product of scales, number of events).
    """
    J = prior.shape[0]
    e0 = entry[s]
    n_ev = 0
    events[n_ev] = e0
    n_ev += 1
    for t in range(e0 + 1, last[s] + 1):
        if counts[s, t] > 0:
            events[n_ev] = t
            n_ev += 1
    y = counts[s, e0]
    for k in range(N_STATES):
        for j in range(J):
            alpha[0, k, j] = 0.0
    tot = 0.0
    for j in range(J):
        alpha[0, 0, j] = prior[j] * emis0[y, j]
        tot += alpha[0, 0, j]
    scale[0] = tot
    inv = 1.0 / tot
    for j in range(J):
        alpha[0, 0, j] *= inv
    ll = np.log(tot)
    part = np.empty(J)
    for q in range(1, n_ev):
        R = events[q] - events[q - 1] - 1
        em = emis[counts[s, events[q]]]
        ap = alpha[q - 1]
        an = alpha[q]
        K = KR[R]
        for m in range(N_STATES):
            for j in range(J):
                an[m, j] = (
                    ap[0, j] * K[0, m, j]
                    + ap[1, j] * K[1, m, j]
                    + ap[2, j] * K[2, m, j]
                    + ap[3, j] * K[3, m, j]
                    + ap[4, j] * K[4, m, j]
                ) * em[m, j]
        for j in range(J):
            part[j] = an[0, j] + an[1, j] + an[2, j] + an[3, j] + an[4, j]
        tot = 0.0
        for j in range(J):
            tot += part[j]
        scale[q] = tot
        inv = 1.0 / tot
        for k in range(N_STATES):
            for j in range(J):
                an[k, j] *= inv
        ll += np.log(tot)
    return ll, n_ev


@njit(cache=True, parallel=True)
def estep(entry, last, counts, weight, T, prior, Aj, emis, emis0, bz, G, H, Mpow, KR, Occ, Xi, block):
    """E-step of Baum-Welch over weighted distinct sequences.

    The forward-backward runs over the purchase periods of each sequence only: the zero runs
    between them are jumped with :func:`run_tables` (their occupancies and moves are
    accumulated as outer products ``alpha_a beta'`` per run length and contracted with the
    tables once, after the reduction), and the zero tail after the last purchase is
    summarised by :func:`tail_tables`. Exact, not an approximation.

    Parameters
    ----------
    entry, last : int64 (S,)
        Entry period and last period with a purchase (``last >= entry``; ``entry`` if none).
    counts : int32 (S, T)
        Purchases per period (only ``entry .. last`` are read; the entry period's count
        excludes the first purchase).
    weight : float64 (S,)
        Multiplicity of each distinct sequence.
    T : int
        Number of calibration periods (every sequence ends at period T-1).
    prior : float64 (J,)
        ``pi_c w_q omega_m`` of each block.
    Aj : float64 (NE, J)
    emis : float64 (Y, 5, J)
    emis0 : float64 (Y, J)
        Emission table of the entry period (the state there is exploration).
    bz, G, H
        Tail tables from :func:`tail_tables` (``L_max >= T - 1``).
    Mpow, KR, Occ, Xi
        Run tables from :func:`run_tables` (``R_max >= T - 2``).
    block : int
        Sequences per block (fixes the order of the reduction).

    Returns
    -------
    stats : float64 (size,)
        Weighted sums, laid out by :func:`stats_layout`: log-likelihood; posterior mass of
        each block j; expected moves along each edge per block; expected post-entry periods
        in each (state, j) (``occ``) and expected purchases there (``ysum``); expected
        entry-period purchases per j (``ysum0``). The entry period enters ``post`` (its
        exposure) and ``ysum0`` only.
    """
    S = entry.shape[0]
    J = prior.shape[0]
    o_post = 1
    o_trans = o_post + J
    o_occ = o_trans + NE * J
    o_ysum = o_occ + N_STATES * J
    o_y0 = o_ysum + N_STATES * J
    size = o_y0 + J
    R_max = KR.shape[0] - 1
    n_run = (R_max + 1) * N_STATES * N_STATES * J
    n_blocks = (S + block - 1) // block
    partial = np.zeros((n_blocks, size + n_run))
    for b in prange(n_blocks):
        alpha = np.empty((T, N_STATES, J))
        beta = np.empty((N_STATES, J))
        bprime = np.empty((N_STATES, J))
        u = np.empty((N_STATES, J))
        wgt = np.empty((N_STATES, J))
        scale = np.empty(T)
        events = np.empty(T, dtype=np.int64)
        acc = np.zeros(size + n_run)
        loc = np.zeros(size)
        for s in range(b * block, min(S, (b + 1) * block)):
            for r in range(size):
                loc[r] = 0.0
            w_s = weight[s]
            ll, n_ev = _forward_events(s, entry, last, counts, prior, emis, emis0, KR, alpha, scale, events)
            L = T - 1 - last[s]
            q_last = n_ev - 1
            Z = _tail_factor(alpha[q_last], bz[L])
            ll += np.log(Z)
            invZ = 1.0 / Z
            for k in range(N_STATES):
                for j in range(J):
                    beta[k, j] = bz[L, k, j] * invZ
            # tail: occupancies and moves over periods last+1 .. T-1 (linear in alpha_last)
            if L > 0:
                for i in range(N_STATES):
                    for j in range(J):
                        wgt[i, j] = alpha[q_last, i, j] * invZ
                for i in range(N_STATES):
                    for k in range(N_STATES):
                        o = o_occ + k * J
                        for j in range(J):
                            loc[o + j] += wgt[i, j] * G[L, i, k, j]
                    for e in range(NE):
                        o = o_trans + e * J
                        for j in range(J):
                            loc[o + j] += wgt[i, j] * H[L, i, e, j]
            # backward over the purchase periods (Rabiner eqs. 27, 37 across jumps)
            for q in range(q_last, 0, -1):
                y = counts[s, events[q]]
                R = events[q] - events[q - 1] - 1
                aq = alpha[q]
                ap = alpha[q - 1]
                em = emis[y]
                inv_s = 1.0 / scale[q]
                for k in range(N_STATES):
                    oo = o_occ + k * J
                    oy = o_ysum + k * J
                    for j in range(J):
                        g = aq[k, j] * beta[k, j]
                        loc[oo + j] += g
                        loc[oy + j] += g * y
                for k in range(N_STATES):
                    for j in range(J):
                        wgt[k, j] = em[k, j] * beta[k, j] * inv_s
                # u = alpha_{q-1} M^R: the state distribution entering the last step
                Mp = Mpow[R]
                for m in range(N_STATES):
                    for j in range(J):
                        u[m, j] = (
                            ap[0, j] * Mp[0, m, j]
                            + ap[1, j] * Mp[1, m, j]
                            + ap[2, j] * Mp[2, m, j]
                            + ap[3, j] * Mp[3, m, j]
                            + ap[4, j] * Mp[4, m, j]
                        )
                for e in range(NE):
                    o = o_trans + e * J
                    src = SRC[e]
                    dst = DST[e]
                    for j in range(J):
                        loc[o + j] += u[src, j] * Aj[e, j] * wgt[dst, j]
                # beta' = A w: the backward message entering the last step
                for j in range(J):
                    w0 = wgt[0, j]
                    w1 = wgt[1, j]
                    w2 = wgt[2, j]
                    w3 = wgt[3, j]
                    w4 = wgt[4, j]
                    bprime[0, j] = Aj[0, j] * w0 + Aj[1, j] * w1 + Aj[2, j] * w4
                    bprime[1, j] = Aj[3, j] * w1 + Aj[4, j] * w2 + Aj[5, j] * w3
                    bprime[2, j] = Aj[6, j] * w2 + Aj[7, j] * w3
                    bprime[3, j] = Aj[8, j] * w3 + Aj[9, j] * w1 + Aj[10, j] * w4
                    bprime[4, j] = Aj[11, j] * w4
                if R > 0:  # the run's statistics: outer product alpha_{q-1} beta', by R
                    base = size + R * N_STATES * N_STATES * J
                    for i in range(N_STATES):
                        for m in range(N_STATES):
                            o = base + (i * N_STATES + m) * J
                            for j in range(J):
                                acc[o + j] += w_s * ap[i, j] * bprime[m, j]
                # beta at the previous purchase period: M^R beta'
                for i in range(N_STATES):
                    for j in range(J):
                        beta[i, j] = (
                            Mp[i, 0, j] * bprime[0, j]
                            + Mp[i, 1, j] * bprime[1, j]
                            + Mp[i, 2, j] * bprime[2, j]
                            + Mp[i, 3, j] * bprime[3, j]
                            + Mp[i, 4, j] * bprime[4, j]
                        )
            y = counts[s, entry[s]]
            for j in range(J):
                g = alpha[0, 0, j] * beta[0, j]
                loc[o_post + j] += g
                loc[o_y0 + j] += g * y
            loc[0] = ll
            for r in range(size):
                acc[r] += w_s * loc[r]
        for r in range(size + n_run):
            partial[b, r] = acc[r]
    tot = np.zeros(size + n_run)
    for b in range(n_blocks):
        for r in range(size + n_run):
            tot[r] += partial[b, r]
    out = tot[:size].copy()
    # contract the runs' outer products with the run tables
    for R in range(1, R_max + 1):
        base = size + R * N_STATES * N_STATES * J
        for i in range(N_STATES):
            for m in range(N_STATES):
                o = base + (i * N_STATES + m) * J
                for j in range(J):
                    c = tot[o + j]
                    if c == 0.0:
                        continue
                    for k in range(N_STATES):
                        out[o_occ + k * J + j] += c * Occ[R, i, k, m, j]
                    for e in range(NE):
                        out[o_trans + e * J + j] += c * Xi[R, i, e, m, j]
    return out


@njit(cache=True)
def filter_end(entry, last, counts, T, prior, Aj, emis, emis0, bz, KR):
    """Filtered joint probabilities of (state, block) at the end of period T-1.

    Returns
    -------
    p_end : float64 (S, 5, J)
        ``P(state at T-1, block j | y_{entry..T-1})`` (sums to 1 per sequence).
    loglik : float64 (S,)
        Log-likelihood of each sequence (unweighted).
    """
    S = entry.shape[0]
    J = prior.shape[0]
    p_end = np.zeros((S, N_STATES, J))
    loglik = np.zeros(S)
    for s in range(S):
        alpha = np.empty((T, N_STATES, J))
        scale = np.empty(T)
        events = np.empty(T, dtype=np.int64)
        ll, n_ev = _forward_events(s, entry, last, counts, prior, emis, emis0, KR, alpha, scale, events)
        L = T - 1 - last[s]
        loglik[s] = ll + np.log(_tail_factor(alpha[n_ev - 1], bz[L]))
        # propagate the filtered distribution through the L zero periods of the tail
        cur = alpha[n_ev - 1].copy()
        nxt = np.empty((N_STATES, J))
        em = emis[0]
        for _ in range(L):
            for k in range(N_STATES):
                for j in range(J):
                    nxt[k, j] = 0.0
            for e in range(NE):
                for j in range(J):
                    nxt[DST[e], j] += cur[SRC[e], j] * Aj[e, j]
            tot = 0.0
            for k in range(N_STATES):
                for j in range(J):
                    nxt[k, j] *= em[k, j]
                    tot += nxt[k, j]
            for k in range(N_STATES):
                for j in range(J):
                    cur[k, j] = nxt[k, j] / tot
        p_end[s] = cur
    return p_end, loglik


@njit(cache=True)
def loglik_sequences(entry, last, counts, T, prior, Aj, emis, emis0, bz, KR):
    """Log-likelihood of each sequence (forward pass over the purchase periods, zero runs
    jumped with ``KR``, the tail by ``bz``).
    """
    S = entry.shape[0]
    J = prior.shape[0]
    out = np.zeros(S)
    for s in range(S):
        alpha = np.empty((T, N_STATES, J))
        scale = np.empty(T)
        events = np.empty(T, dtype=np.int64)
        ll, n_ev = _forward_events(s, entry, last, counts, prior, emis, emis0, KR, alpha, scale, events)
        out[s] = ll + np.log(_tail_factor(alpha[n_ev - 1], bz[T - 1 - last[s]]))
    return out


@njit(cache=True)
def posterior_states(entry, last, counts, T, prior, Aj, emis, emis0, bz, KR):
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
