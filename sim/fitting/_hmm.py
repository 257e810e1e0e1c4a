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

The body runs over the sequence's *purchase periods* only (:func:`event_lists`, computed
once per data set): the zero runs between them are jumped with the matrix powers of
:func:`run_tables`. Between the entry period and the last purchase a customer cannot have
ended (a purchase follows), so the body's forward and backward messages live on the four
live states, and the jumped matrices on the 13 pairs of live states between which they can
be non-zero (:data:`PAIR_SRC`, :data:`PAIR_DST`: exploration is only reached from
exploration) — exact, not an approximation; the ended state enters in the tail only.

Determinism: the E-step (the only kernel run at every iteration, parallel over blocks of
sequences with ``prange``) processes sequences in blocks of a fixed size; each block writes
its own partial sums, added in block order afterwards, and no reduction is reassociated (no
fastmath), so its results are bitwise identical for any number of threads. The other
kernels compute each sequence's values independently (parallel over blocks, or serial: they
run once per fit).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

N_STATES = 5
ENDED = 4
#: Live states (exploration, formation, stability, decline).
LIVE = 4
#: Allowed moves (source, destination), stays included: exploration -> formation / ended,
#: formation -> stability / decline, stability -> decline, decline -> formation / ended.
SRC = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4], dtype=np.int64)
DST = np.array([0, 1, 4, 1, 2, 3, 2, 3, 3, 1, 4, 4], dtype=np.int64)
NE = 12
#: The pairs (i, m) of live states with ``(M^R)[i, m]`` or ``(M^R A)[i, m]`` possibly non-zero
#: (exploration is reached from exploration only); the tables of the body are kept on them.
PAIR_SRC = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], dtype=np.int64)
PAIR_DST = np.array([0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3], dtype=np.int64)
NP = 13


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
def event_lists(entry, last, counts):
    """The purchase periods of every sequence as flat lists (once per data set).

    Parameters
    ----------
    entry, last : int64 (S,)
        Entry period and last period with a purchase (``last >= entry``).
    counts : int32 (S, T)
        Purchases per period.

    Returns
    -------
    ptr : int64 (S+1,)
        The events of sequence ``s`` are ``ptr[s] .. ptr[s+1]-1``: its entry period first,
        then every later period up to ``last[s]`` with a purchase.
    gap : int64 (E,)
        Zero periods between an event and the previous one (0 for the entry period).
    count : int64 (E,)
        Purchases in the event's period (the entry period's may be 0).
    """
    S = entry.shape[0]
    ptr = np.zeros(S + 1, dtype=np.int64)
    for s in range(S):
        n = 1
        for t in range(entry[s] + 1, last[s] + 1):
            if counts[s, t] > 0:
                n += 1
        ptr[s + 1] = ptr[s] + n
    gap = np.zeros(ptr[S], dtype=np.int64)
    count = np.zeros(ptr[S], dtype=np.int64)
    for s in range(S):
        i = ptr[s]
        count[i] = counts[s, entry[s]]
        prev = entry[s]
        for t in range(entry[s] + 1, last[s] + 1):
            if counts[s, t] > 0:
                i += 1
                gap[i] = t - prev - 1
                count[i] = counts[s, t]
                prev = t
    return ptr, gap, count


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
def run_tables(Aj, emis_zero, R_max):
    """Tables for the runs of zero-purchase periods between two purchase periods.

    With ``M = A diag(emis_zero)`` (one zero period) and ``R`` zero periods between a purchase
    period ``t_a`` and the next one ``t_b = t_a + R + 1``:

    * ``M^R``; ``M^R A``: the forward message jumps the run, ``alpha_b = (alpha_a M^R A) *
      e(y_b)``; the backward one ``beta_a = M^R beta'``;
    * ``Occ[R, i, k, m] = sum_{l=1..R} (M^l)[i, k] (M^{R-l})[k, m]``: with ``beta'`` the
      backward message entering the run (``A e(y_b) beta_b / c_b``), the expected occupancy
      of state k over the run is ``sum_{i,m} alpha_a[i] Occ[R, i, k, m] beta'[m]``;
    * ``Xi[R, i, e, m] = sum_{l=0..R-1} (M^l)[i, src] M[src, dst] (M^{R-1-l})[dst, m]``: the
      same for the moves along edge e that land inside the run.

    Recursions: ``Occ_R = M Occ_{R-1} + M[i, k] M^{R-1}[k, m]``, ``Xi_R = M Xi_{R-1} +
    delta_{i, src} M[e] M^{R-1}[dst, m]``. Every table is returned on the pairs (i, m) of
    live states of :data:`PAIR_SRC` / :data:`PAIR_DST` (the runs of the body start and end
    alive, so no other pair is needed).

    Returns
    -------
    Mpow, KR : float64 (R_max+1, NP, J)
        ``M^R`` and ``M^R A`` on the pairs.
    Occ : float64 (R_max+1, NP, 5, J)
    Xi : float64 (R_max+1, NP, NE, J)
    """
    J = Aj.shape[1]
    P = np.zeros((N_STATES, N_STATES, J))
    Pn = np.zeros((N_STATES, N_STATES, J))
    Oc = np.zeros((N_STATES, N_STATES, N_STATES, J))
    On = np.zeros((N_STATES, N_STATES, N_STATES, J))
    X = np.zeros((N_STATES, NE, N_STATES, J))
    Xn = np.zeros((N_STATES, NE, N_STATES, J))
    Mpow = np.zeros((R_max + 1, NP, J))
    KR = np.zeros((R_max + 1, NP, J))
    Occ = np.zeros((R_max + 1, NP, N_STATES, J))
    Xi = np.zeros((R_max + 1, NP, NE, J))
    M = np.empty((NE, J))
    for e in range(NE):
        for j in range(J):
            M[e, j] = Aj[e, j] * emis_zero[DST[e], j]
    for k in range(N_STATES):
        for j in range(J):
            P[k, k, j] = 1.0
    for R in range(R_max + 1):
        if R > 0:
            Pn[:] = 0.0
            On[:] = 0.0
            Xn[:] = 0.0
            for e in range(NE):
                i = SRC[e]
                n = DST[e]
                for m in range(N_STATES):
                    for j in range(J):
                        Pn[i, m, j] += M[e, j] * P[n, m, j]
                for k in range(N_STATES):
                    for m in range(N_STATES):
                        for j in range(J):
                            On[i, k, m, j] += M[e, j] * Oc[n, k, m, j]
                for e2 in range(NE):
                    for m in range(N_STATES):
                        for j in range(J):
                            Xn[i, e2, m, j] += M[e, j] * X[n, e2, m, j]
                # l = 1 term of Occ (k = n): M[i, n] M^{R-1}[n, m]
                for m in range(N_STATES):
                    for j in range(J):
                        On[i, n, m, j] += M[e, j] * P[n, m, j]
                # l = 0 term of Xi (i = src of e): M[e] M^{R-1}[dst, m]
                for m in range(N_STATES):
                    for j in range(J):
                        Xn[i, e, m, j] += M[e, j] * P[n, m, j]
            P, Pn = Pn, P
            Oc, On = On, Oc
            X, Xn = Xn, X
        for p in range(NP):
            i = PAIR_SRC[p]
            m = PAIR_DST[p]
            for j in range(J):
                Mpow[R, p, j] = P[i, m, j]
            for e in range(NE):
                if DST[e] == m:
                    for j in range(J):
                        KR[R, p, j] += P[i, SRC[e], j] * Aj[e, j]
            for k in range(N_STATES):
                for j in range(J):
                    Occ[R, p, k, j] = Oc[i, k, m, j]
            for e in range(NE):
                for j in range(J):
                    Xi[R, p, e, j] = X[i, e, m, j]
    return Mpow, KR, Occ, Xi


@njit(cache=True, error_model="numpy")
def _forward_live(s, ptr, gap, count, prior, emis, emis0, KR, alpha, scale):
    """Scaled forward pass of sequence ``s`` over its purchase periods (:func:`event_lists`),
    on the live states, the zero runs jumped with ``KR`` (``M^R A`` on the pairs). Fills
    ``alpha[q]`` (normalised over (k, j)) and ``scale[q]`` for the events q; returns (log of
    the product of scales, number of events).
    """
    J = prior.shape[0]
    p0 = ptr[s]
    n_ev = ptr[s + 1] - p0
    y0 = count[p0]
    for k in range(LIVE):
        for j in range(J):
            alpha[0, k, j] = 0.0
    tot = 0.0
    for j in range(J):
        v = prior[j] * emis0[y0, j]
        alpha[0, 0, j] = v
        tot += v
    scale[0] = tot
    inv = 1.0 / tot
    for j in range(J):
        alpha[0, 0, j] *= inv
    ll = np.log(tot)
    part = np.empty(J)
    for q in range(1, n_ev):
        K = KR[gap[p0 + q]]
        em = emis[count[p0 + q]]
        ap = alpha[q - 1]
        an = alpha[q]
        for j in range(J):
            a0 = ap[0, j]
            a1 = ap[1, j]
            a2 = ap[2, j]
            a3 = ap[3, j]
            n0 = a0 * K[0, j] * em[0, j]
            n1 = (a0 * K[1, j] + a1 * K[4, j] + a2 * K[7, j] + a3 * K[10, j]) * em[1, j]
            n2 = (a0 * K[2, j] + a1 * K[5, j] + a2 * K[8, j] + a3 * K[11, j]) * em[2, j]
            n3 = (a0 * K[3, j] + a1 * K[6, j] + a2 * K[9, j] + a3 * K[12, j]) * em[3, j]
            an[0, j] = n0
            an[1, j] = n1
            an[2, j] = n2
            an[3, j] = n3
            part[j] = (n0 + n1) + (n2 + n3)
        tot = 0.0
        for j in range(J):
            tot += part[j]
        scale[q] = tot
        inv = 1.0 / tot
        for k in range(LIVE):
            for j in range(J):
                an[k, j] *= inv
        ll += np.log(tot)
    return ll, n_ev


@njit(cache=True)
def _tail_factor(alpha_last, bz_L):
    """``sum_{k,j} alpha_last[k, j] bz_L[k, j]`` over the states of ``alpha_last``."""
    J = alpha_last.shape[1]
    Z = 0.0
    for k in range(alpha_last.shape[0]):
        for j in range(J):
            Z += alpha_last[k, j] * bz_L[k, j]
    return Z


def estep(ptr, gap, count, tail, weight, prior, Aj, emis, emis0, bz, G, H, Mpow, KR, Occ, Xi, block):
    """E-step of Baum-Welch over weighted distinct sequences: :func:`estep_blocks` over every
    block, reduced by :func:`estep_reduce`.

    The blocks may as well be computed in pieces elsewhere (a Dask cluster: see
    :mod:`sim.fitting.lifecycle.distributed`) and their partial sums concatenated in block
    order before the reduction: the result is the same bits.

    Parameters and returns as :func:`estep_blocks` (without the block range) and
    :func:`estep_reduce`.
    """
    n_blocks = (tail.shape[0] + block - 1) // block
    partial, runs = estep_blocks(
        ptr, gap, count, tail, weight, prior, Aj, emis, emis0, bz, G, H, Mpow, KR, Occ, Xi, block, 0, n_blocks
    )
    return estep_reduce(partial, runs, Occ, Xi)


@njit(cache=True, parallel=True, error_model="numpy")
def estep_blocks(
    ptr,
    gap,
    count,
    tail,
    weight,
    prior,
    Aj,
    emis,
    emis0,
    bz,
    G,
    H,
    Mpow,
    KR,
    Occ,
    Xi,
    block,
    first_block,
    end_block,
):
    """The E-step's partial sums of the blocks ``first_block .. end_block - 1`` of sequences.

    The forward-backward runs over the purchase periods of each sequence only, on the live
    states: the zero runs between them are jumped with :func:`run_tables` (their occupancies
    and moves are accumulated as outer products ``alpha_a beta'`` per run length and pair of
    live states, and contracted with the tables once, after the reduction), and the zero
    tail after the last purchase is summarised by :func:`tail_tables`. Exact, not an
    approximation. Each sequence's backward messages carry its multiplicity, so its
    statistics are added pre-weighted.

    Parameters
    ----------
    ptr, gap, count : int64
        The purchase periods of the sequences (:func:`event_lists`).
    tail : int64 (S,)
        Periods after each sequence's last purchase (``T - 1 - last``).
    weight : float64 (S,)
        Multiplicity of each distinct sequence.
    prior : float64 (J,)
        ``pi_c w_q omega_m`` of each block.
    Aj : float64 (NE, J)
    emis : float64 (Y, 5, J)
    emis0 : float64 (Y, J)
        Emission table of the entry period (the state there is exploration).
    bz, G, H
        Tail tables from :func:`tail_tables` (``L_max >= max(tail)``).
    Mpow, KR, Occ, Xi
        Run tables from :func:`run_tables` (``R_max >= max(gap)``).
    block : int
        Sequences per block (fixes the order of the reduction).
    first_block, end_block : int
        The blocks computed: sequences ``first_block * block`` to ``end_block * block - 1``
        (the last block may be shorter).

    Returns
    -------
    partial : float64 (end_block - first_block, size)
        Each block's weighted sums, laid out by :func:`stats_layout`.
    runs : float64 (end_block - first_block, R_max + 1, NP, J)
        Each block's outer products ``alpha_a beta'`` of its zero runs, by run length and pair
        of live states (contracted with the run tables by :func:`estep_reduce`).
    """
    S = tail.shape[0]
    first_sequence = first_block * block
    end_sequence = min(S, end_block * block)
    J = prior.shape[0]
    o_post = 1
    o_trans = o_post + J
    o_occ = o_trans + NE * J
    o_ysum = o_occ + N_STATES * J
    o_y0 = o_ysum + N_STATES * J
    size = o_y0 + J
    R_max = KR.shape[0] - 1
    n_max = 1
    for s in range(first_sequence, end_sequence):
        n_max = max(n_max, ptr[s + 1] - ptr[s])
    n_blocks = end_block - first_block
    partial = np.zeros((n_blocks, size))
    runs = np.zeros((n_blocks, R_max + 1, NP, J))
    for ib in prange(n_blocks):
        b = first_block + ib
        alpha = np.empty((n_max, LIVE, J))
        scale = np.empty(n_max)
        beta = np.empty((LIVE, J))
        bprime = np.empty((LIVE, J))
        wgt = np.empty((LIVE, J))
        part = np.empty(J)
        post = np.zeros(J)
        y0sum = np.zeros(J)
        occ = np.zeros((N_STATES, J))
        ysum = np.zeros((LIVE, J))
        trans = np.zeros((NE, J))
        run = runs[ib]
        ll_sum = 0.0
        for s in range(b * block, min(S, (b + 1) * block)):
            w_s = weight[s]
            p0 = ptr[s]
            ll, n_ev = _forward_live(s, ptr, gap, count, prior, emis, emis0, KR, alpha, scale)
            L = tail[s]
            ql = n_ev - 1
            al = alpha[ql]
            bzL = bz[L]
            for j in range(J):
                part[j] = (al[0, j] * bzL[0, j] + al[1, j] * bzL[1, j]) + (
                    al[2, j] * bzL[2, j] + al[3, j] * bzL[3, j]
                )
            Z = 0.0
            for j in range(J):
                Z += part[j]
            ll_sum += w_s * (ll + np.log(Z))
            f = w_s / Z
            for k in range(LIVE):
                for j in range(J):
                    beta[k, j] = bzL[k, j] * f
            # tail: occupancies and moves over periods last+1 .. T-1 (linear in alpha_last)
            if L > 0:
                GL = G[L]
                HL = H[L]
                for i in range(LIVE):
                    for j in range(J):
                        wgt[i, j] = al[i, j] * f
                for k in range(N_STATES):
                    for j in range(J):
                        occ[k, j] += (wgt[0, j] * GL[0, k, j] + wgt[1, j] * GL[1, k, j]) + (
                            wgt[2, j] * GL[2, k, j] + wgt[3, j] * GL[3, k, j]
                        )
                for e in range(NE):
                    for j in range(J):
                        trans[e, j] += (wgt[0, j] * HL[0, e, j] + wgt[1, j] * HL[1, e, j]) + (
                            wgt[2, j] * HL[2, e, j] + wgt[3, j] * HL[3, e, j]
                        )
            # backward over the purchase periods (Rabiner eqs. 27, 37 across jumps)
            for q in range(ql, 0, -1):
                y = count[p0 + q]
                R = gap[p0 + q]
                aq = alpha[q]
                ap = alpha[q - 1]
                em = emis[y]
                Mp = Mpow[R]
                inv_s = 1.0 / scale[q]
                fy = float(y)
                for k in range(LIVE):
                    for j in range(J):
                        g = aq[k, j] * beta[k, j]
                        occ[k, j] += g
                        ysum[k, j] += g * fy
                for k in range(LIVE):
                    for j in range(J):
                        wgt[k, j] = em[k, j] * beta[k, j] * inv_s
                # u = alpha_{q-1} M^R (the state entering the last step), the moves of the
                # last step (u A w) and beta' = A w (the backward message entering it)
                for j in range(J):
                    a0 = ap[0, j]
                    a1 = ap[1, j]
                    a2 = ap[2, j]
                    a3 = ap[3, j]
                    u0 = a0 * Mp[0, j]
                    u1 = a0 * Mp[1, j] + a1 * Mp[4, j] + a2 * Mp[7, j] + a3 * Mp[10, j]
                    u2 = a0 * Mp[2, j] + a1 * Mp[5, j] + a2 * Mp[8, j] + a3 * Mp[11, j]
                    u3 = a0 * Mp[3, j] + a1 * Mp[6, j] + a2 * Mp[9, j] + a3 * Mp[12, j]
                    w0 = wgt[0, j]
                    w1 = wgt[1, j]
                    w2 = wgt[2, j]
                    w3 = wgt[3, j]
                    trans[0, j] += u0 * Aj[0, j] * w0
                    trans[1, j] += u0 * Aj[1, j] * w1
                    trans[3, j] += u1 * Aj[3, j] * w1
                    trans[4, j] += u1 * Aj[4, j] * w2
                    trans[5, j] += u1 * Aj[5, j] * w3
                    trans[6, j] += u2 * Aj[6, j] * w2
                    trans[7, j] += u2 * Aj[7, j] * w3
                    trans[8, j] += u3 * Aj[8, j] * w3
                    trans[9, j] += u3 * Aj[9, j] * w1
                    bprime[0, j] = Aj[0, j] * w0 + Aj[1, j] * w1
                    bprime[1, j] = Aj[3, j] * w1 + Aj[4, j] * w2 + Aj[5, j] * w3
                    bprime[2, j] = Aj[6, j] * w2 + Aj[7, j] * w3
                    bprime[3, j] = Aj[8, j] * w3 + Aj[9, j] * w1
                if R > 0:  # the run's statistics: outer product alpha_{q-1} beta', by R
                    rr = run[R]
                    for j in range(J):
                        a0 = ap[0, j]
                        a1 = ap[1, j]
                        a2 = ap[2, j]
                        a3 = ap[3, j]
                        b1 = bprime[1, j]
                        b2 = bprime[2, j]
                        b3 = bprime[3, j]
                        rr[0, j] += a0 * bprime[0, j]
                        rr[1, j] += a0 * b1
                        rr[2, j] += a0 * b2
                        rr[3, j] += a0 * b3
                        rr[4, j] += a1 * b1
                        rr[5, j] += a1 * b2
                        rr[6, j] += a1 * b3
                        rr[7, j] += a2 * b1
                        rr[8, j] += a2 * b2
                        rr[9, j] += a2 * b3
                        rr[10, j] += a3 * b1
                        rr[11, j] += a3 * b2
                        rr[12, j] += a3 * b3
                # beta at the previous purchase period: M^R beta'
                for j in range(J):
                    b0 = bprime[0, j]
                    b1 = bprime[1, j]
                    b2 = bprime[2, j]
                    b3 = bprime[3, j]
                    beta[0, j] = Mp[0, j] * b0 + Mp[1, j] * b1 + Mp[2, j] * b2 + Mp[3, j] * b3
                    beta[1, j] = Mp[4, j] * b1 + Mp[5, j] * b2 + Mp[6, j] * b3
                    beta[2, j] = Mp[7, j] * b1 + Mp[8, j] * b2 + Mp[9, j] * b3
                    beta[3, j] = Mp[10, j] * b1 + Mp[11, j] * b2 + Mp[12, j] * b3
            fy0 = float(count[p0])
            for j in range(J):
                g = alpha[0, 0, j] * beta[0, j]
                post[j] += g
                y0sum[j] += g * fy0
        out = partial[ib]
        out[0] = ll_sum
        for j in range(J):
            out[o_post + j] = post[j]
            out[o_y0 + j] = y0sum[j]
        for e in range(NE):
            for j in range(J):
                out[o_trans + e * J + j] = trans[e, j]
        for k in range(N_STATES):
            for j in range(J):
                out[o_occ + k * J + j] = occ[k, j]
        for k in range(LIVE):
            for j in range(J):
                out[o_ysum + k * J + j] = ysum[k, j]
    return partial, runs


@njit(cache=True, error_model="numpy")
def estep_reduce(partial, runs, Occ, Xi):
    """The E-step's statistics from the blocks' partial sums (:func:`estep_blocks`), added in
    block order, the zero runs contracted with the run tables once, after the sum.

    Returns
    -------
    stats : float64 (size,)
        Weighted sums, laid out by :func:`stats_layout`: log-likelihood; posterior mass of
        each block j; expected moves along each edge per block; expected post-entry periods
        in each (state, j) (``occ``) and expected purchases there (``ysum``); expected
        entry-period purchases per j (``ysum0``). The entry period enters ``post`` (its
        exposure) and ``ysum0`` only.
    """
    n_blocks, size = partial.shape
    R_max = runs.shape[1] - 1
    J = runs.shape[3]
    o_trans = 1 + J
    o_occ = o_trans + NE * J
    tot = np.zeros(size)
    run = np.zeros((R_max + 1, NP, J))
    for b in range(n_blocks):
        for r in range(size):
            tot[r] += partial[b, r]
        for R in range(1, R_max + 1):
            for p in range(NP):
                for j in range(J):
                    run[R, p, j] += runs[b, R, p, j]
    # contract the runs' outer products with the run tables
    for R in range(1, R_max + 1):
        for p in range(NP):
            for j in range(J):
                c = run[R, p, j]
                if c == 0.0:
                    continue
                for k in range(N_STATES):
                    tot[o_occ + k * J + j] += c * Occ[R, p, k, j]
                for e in range(NE):
                    tot[o_trans + e * J + j] += c * Xi[R, p, e, j]
    return tot


@njit(cache=True, parallel=True, error_model="numpy")
def filter_end(entry, last, counts, ptr, gap, count, T, prior, Aj, emis, emis0, bz, KR):
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
    n_blocks = (S + 63) // 64
    for b in prange(n_blocks):
        alpha = np.empty((T, LIVE, J))
        scale = np.empty(T)
        cur = np.empty((N_STATES, J))
        nxt = np.empty((N_STATES, J))
        em = emis[0]
        for s in range(b * 64, min(S, (b + 1) * 64)):
            ll, n_ev = _forward_live(s, ptr, gap, count, prior, emis, emis0, KR, alpha, scale)
            L = T - 1 - last[s]
            loglik[s] = ll + np.log(_tail_factor(alpha[n_ev - 1], bz[L]))
            # propagate the filtered distribution through the L zero periods of the tail
            for k in range(N_STATES):
                for j in range(J):
                    cur[k, j] = alpha[n_ev - 1, k, j] if k < LIVE else 0.0
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


@njit(cache=True, parallel=True, error_model="numpy")
def loglik_sequences(entry, last, counts, ptr, gap, count, T, prior, Aj, emis, emis0, bz, KR):
    """Log-likelihood of each sequence (forward pass over the purchase periods, zero runs
    jumped with ``KR``, the tail by ``bz``); each sequence's value is computed on its own, so
    the result does not depend on the number of threads.
    """
    S = entry.shape[0]
    J = prior.shape[0]
    out = np.zeros(S)
    n_blocks = (S + 63) // 64
    for b in prange(n_blocks):
        alpha = np.empty((T, LIVE, J))
        scale = np.empty(T)
        for s in range(b * 64, min(S, (b + 1) * 64)):
            ll, n_ev = _forward_live(s, ptr, gap, count, prior, emis, emis0, KR, alpha, scale)
            out[s] = ll + np.log(_tail_factor(alpha[n_ev - 1], bz[T - 1 - last[s]]))
    return out
