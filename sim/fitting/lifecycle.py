"""The lifecycle model: a hidden-Markov model of customer transactions whose hidden states are
the package's relationship stages.

Each customer-period is in one of the states exploration, formation, stability, decline and
ended (absorbing), the states of :mod:`sim.model`, with exactly the simulator's moves
(exploration -> formation or ended; formation -> stability or decline; stability -> decline;
decline -> formation (win-back) or ended; or stay). This is the hidden-Markov model of
customer relationships of Netzer, Lattin & Srinivasan (2008, "A hidden Markov model of
customer relationship dynamics", Marketing Science 27(2), 185-204; NLS below) with the
states fixed to the package's stages instead of being ordered only by their purchase
propensity, and with the purchase counts of a transaction log as emissions.

Model (period = the time unit of the counts, e.g. a week)
----------------------------------------------------------
For customer ``i`` in latent class ``c`` (``P(c) = pi_c``; the simulator's two segments,
relationship and transactional, are ``C = 2``) with purchase-rate multiplier ``u_i`` ::

    u_i ~ Gamma(shape r, rate r)                    (mean 1; omitted when heterogeneity=None)
    S_{i,e_i} = exploration                          (entry period e_i = first purchase)
    P(S_{i,t+1} = k' | S_{i,t} = k, c) = A_c[k, k'] (structural zeros outside the moves)
    y_{i,e_i} | c, u ~ Poisson(lambda0_c u)          (repeat purchases of the entry period)
    y_{i,t} | S_{i,t} = k, c, u ~ Poisson(lambda_{c,k} u),  t > e_i;  lambda_{c,ended} = 0

(NLS eqs. 1-3 with a Poisson instead of a binary-logit emission and a random effect on the
rate). The **first purchase is not an emission**: as in BG/NBD and Pareto/NBD only repeat
purchases are modelled, and the first purchase only marks the entry period. The entry period
is *partial* (the customer arrived during it), so its repeat purchases have their own rate
``lambda0_c``; without this, EM turns exploration into a one-period state that absorbs the
entry period. The multiplier is integrated out by generalised Gauss-Laguerre ("Gauss-gamma")
quadrature with ``Q`` nodes, which makes ``(c, q)`` a finite latent class with prior
``pi_c w_q(r)`` and rate ``lambda_{c,k} u_q(r)``.

**The stages mean what the package says.** Within every class the rates obey
``lambda_E <= lambda_F <= lambda_S`` and ``lambda_E <= lambda_D <= lambda_S`` (lowest in
exploration, highest in stability, decline below stability; formation and decline are not
ordered between themselves). The order is imposed in the M-step: the Poisson rates that
maximise the expected complete-data log-likelihood under the order are the weighted isotonic
regression of the unconstrained rates ``N_k / E_k`` (expected purchases over expected
exposure) with weights ``E_k`` (Robertson, Wright & Dykstra 1988, Thm 1.5.2 for exponential
families), computed exactly by pooling (:func:`isotonic_rates`). Spend per purchase
(:meth:`LifecycleHMM.fit_spend`) is lognormal by stage with the same order on its location.

Estimation
----------
EM (Baum-Welch; Baum, Petrie, Soules & Weiss 1970; Rabiner 1989 eqs. 40a-c) over *distinct*
calibration sequences weighted by their multiplicity, with the scaled forward-backward
recursions of :mod:`sim.fitting._hmm`. The M-step is closed form for ``pi``, ``A`` (expected
transition counts along the allowed moves, so structural zeros stay zero) and the rates given
``r``; ``r`` is updated by a one-dimensional maximisation of the expected complete-data
log-likelihood; the rate and ``r`` updates alternate and each may only increase it, so every
iteration increases the likelihood (a generalised EM, Dempster, Laird & Rubin 1977).
Several random starts are run to convergence; the best is kept (the surface has many near
equal optima). Standard errors come from the observed information of the marginal
likelihood: the score is exact (Fisher's identity: the gradient of the expected
complete-data log-likelihood at the current parameters, from the E-step statistics), the
Hessian its central difference, in an unconstrained parametrisation (log-odds of the moves
against staying, log-odds of the classes, log rates, log r). A rate order that binds at the
optimum pools those stages into one parameter (the SE is then conditional on the pooling).

Inputs are plain arrays, so that a registry can wire the model to any transaction log: per
distinct sequence the entry period, the counts per period and the multiplicity; per
customer the index of its sequence (:func:`group_sequences` builds them).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import optimize, special, stats

from . import _hmm

__all__ = [
    "STATES",
    "LifecycleParams",
    "LifecycleHMM",
    "group_sequences",
    "isotonic_rates",
    "gamma_quadrature",
    "select_lifecycle",
]

#: Hidden states, in the order of :mod:`sim.model` (0..3 live stages, 4 ended).
STATES = ("exploration", "formation", "stability", "decline", "ended")
EXPLORATION, FORMATION, STABILITY, DECLINE, ENDED = range(5)
#: Rate order imposed within each class: pairs (low, high) with lambda_low <= lambda_high.
ORDER = ((EXPLORATION, FORMATION), (EXPLORATION, DECLINE), (FORMATION, STABILITY), (DECLINE, STABILITY))
#: Free moves of each live state (besides staying), in the order of the unconstrained parameters.
MOVES = ((EXPLORATION, (FORMATION, ENDED)), (FORMATION, (STABILITY, DECLINE)),
         (STABILITY, (DECLINE,)), (DECLINE, (FORMATION, ENDED)))
_ALLOWED = np.zeros((5, 5), dtype=bool)
_ALLOWED[_hmm.SRC, _hmm.DST] = True


# --------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------
def group_sequences(entry, counts):
    """Distinct (entry period, counts per period) sequences and each customer's index.

    Parameters
    ----------
    entry : int array (n,)
        Period of each customer's first purchase (0 <= entry < T).
    counts : int array (n, T)
        Repeat purchases per period (the entry period's count excludes the first purchase;
        periods before entry must be 0).

    Returns
    -------
    seq_entry : int64 (S,)
    seq_counts : int32 (S, T)
    multiplicity : float64 (S,)
    customer_sequence : int64 (n,)
        ``seq_*[customer_sequence[i]]`` is customer i's sequence.
    """
    entry = np.asarray(entry, dtype=np.int64)
    counts = np.asarray(counts)
    if counts.ndim != 2 or entry.shape != (counts.shape[0],):
        raise ValueError(f"counts must be (n, T) and entry (n,); got {counts.shape} and {entry.shape}")
    key = np.ascontiguousarray(np.concatenate([entry[:, None], counts.astype(np.int64)], axis=1))
    view = key.view(np.dtype((np.void, key.dtype.itemsize * key.shape[1]))).ravel()
    _, first, inverse, mult = np.unique(view, return_index=True, return_inverse=True, return_counts=True)
    return (entry[first].copy(), counts[first].astype(np.int32), mult.astype(np.float64),
            inverse.ravel().astype(np.int64))


def gamma_quadrature(shape, n_nodes):
    """Nodes and weights of ``E[f(u)]`` for ``u ~ Gamma(shape, rate=shape)`` (mean 1).

    Generalised Gauss-Laguerre with ``alpha = shape - 1`` (Golub-Welsch): ``u_q = x_q / shape``,
    ``w_q = omega_q / Gamma(shape)``; exact for polynomials in ``u`` of degree ``< 2 n_nodes``.
    """
    if n_nodes == 1:
        return np.ones(1), np.ones(1)
    x, w = special.roots_genlaguerre(n_nodes, shape - 1.0)
    w = w / math.gamma(shape) if shape < 170 else w / w.sum()
    return x / shape, w / w.sum()


_PARTITIONS = None


def _set_partitions(items):
    if len(items) == 1:
        yield [items]
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]
        yield [[first]] + part


def isotonic_rates(N, E, order=ORDER, fallback=None):
    """Maximise ``sum_k N_k log(lambda_k) - E_k lambda_k`` subject to the partial order.

    The constrained maximum is the isotonic regression of ``N/E`` with weights ``E``
    (Robertson, Wright & Dykstra 1988): its level sets are blocks whose value is the pooled
    rate ``sum N / sum E``. With four stages every partition into blocks (15) is tried and the
    best one that satisfies the order is returned — exact, no iteration. Also used for the
    spend locations (weighted means: pass ``N = sum of log amounts * weights``, ``E`` =
    weights; the objective is then the weighted least squares one, see ``objective``).

    Parameters
    ----------
    N, E : float arrays (4,)
        Expected purchases and exposures by stage (``E >= 0``).
    order : pairs (low, high)
    fallback : float array (4,), optional
        Values for stages with no exposure at all (kept if feasible, else clipped).

    Returns
    -------
    lam : float64 (4,)
    blocks : tuple of tuples
        The pooled stages.
    """
    global _PARTITIONS
    if _PARTITIONS is None:
        _PARTITIONS = [tuple(tuple(sorted(b)) for b in p) for p in _set_partitions([0, 1, 2, 3])]
    N = np.asarray(N, dtype=float)
    E = np.asarray(E, dtype=float)
    raw = np.divide(N, E, out=np.full(4, np.nan), where=E > 0)
    if np.all(E > 0) and all(raw[a] <= raw[b] for a, b in order):
        return raw, tuple((k,) for k in range(4))
    best, best_val, best_blocks = None, -np.inf, None
    for part in _PARTITIONS:
        lam = np.empty(4)
        ok = True
        for b in part:
            eb = E[list(b)].sum()
            if eb <= 0:
                ok = False
                break
            lam[list(b)] = N[list(b)].sum() / eb
        if not ok or any(lam[a] > lam[b] for a, b in order):
            continue
        val = np.sum(np.where(N > 0, N * np.log(np.maximum(lam, 1e-300)), 0.0) - E * lam)
        if val > best_val:
            best, best_val, best_blocks = lam, val, part
    if best is None:  # stages without exposure: keep the fallback, projected onto the order
        lam = np.where(E > 0, raw, np.nan if fallback is None else np.asarray(fallback, float))
        lam = np.where(np.isnan(lam), np.nanmean(lam) if np.any(~np.isnan(lam)) else 1.0, lam)
        for _ in range(4):
            for a, b in order:
                if lam[a] > lam[b]:
                    lam[a] = lam[b] = 0.5 * (lam[a] + lam[b])
        return lam, tuple((k,) for k in range(4))
    return best, tuple(sorted(best_blocks))


def _poisson_table(rate, y_max):
    """P(y) for y = 0..y_max, Poisson(rate) (rate array of any shape; last axis added)."""
    y = np.arange(y_max + 1)
    rate = np.asarray(rate, dtype=float)[..., None]
    with np.errstate(divide="ignore"):
        logp = np.where(rate > 0, y * np.log(np.where(rate > 0, rate, 1.0)) - rate - special.gammaln(y + 1),
                        np.where(y == 0, 0.0, -np.inf))
    return np.exp(logp)


@dataclass(frozen=True)
class LifecycleParams:
    """Parameters of the lifecycle HMM (period = the time unit of the counts).

    Attributes
    ----------
    class_probs : (C,)
        ``pi_c``.
    transitions : (C, 5, 5)
        Row-stochastic ``A_c`` over :data:`STATES`; zero outside the allowed moves.
    rates : (C, 4)
        Purchase rate per period in exploration, formation, stability, decline (a customer
        with multiplier 1); ordered as in :data:`ORDER`.
    entry_rates : (C,)
        Rate of repeat purchases in the (partial) entry period.
    shape : float or None
        Shape ``r`` of the gamma multiplier (mean 1, variance 1/r); None = no multiplier.
    """

    class_probs: np.ndarray
    transitions: np.ndarray
    rates: np.ndarray
    entry_rates: np.ndarray
    shape: float | None = None

    @property
    def n_classes(self):
        return len(self.class_probs)

    def mean_stay(self):
        """Expected periods per visit to each live stage, ``1 / (1 - A_c[k, k])`` (C, 4)."""
        d = np.diagonal(self.transitions, axis1=1, axis2=2)[:, :4]
        return 1.0 / np.maximum(1.0 - d, 1e-300)

    def check(self):
        """Raise ValueError unless the parameters define a valid model."""
        C = self.n_classes
        if self.transitions.shape != (C, 5, 5) or self.rates.shape != (C, 4) or self.entry_rates.shape != (C,):
            raise ValueError("inconsistent parameter shapes")
        if np.any(self.transitions[:, ~_ALLOWED] != 0):
            raise ValueError("transitions outside the allowed moves must be 0")
        if not np.allclose(self.transitions.sum(axis=2), 1.0) or np.any(self.transitions < 0):
            raise ValueError("transition rows must be probability vectors")
        if np.any(self.rates < 0) or np.any(self.entry_rates < 0):
            raise ValueError("rates must be >= 0")
        if not np.isclose(self.class_probs.sum(), 1.0) or np.any(self.class_probs < 0):
            raise ValueError("class_probs must be a probability vector")
        if self.shape is not None and not self.shape > 0:
            raise ValueError("shape must be > 0")
        return self


@dataclass
class _Data:
    entry: np.ndarray  # int64 (S,)
    last: np.ndarray  # int64 (S,)
    counts: np.ndarray  # int32 (S, T)
    weight: np.ndarray  # float64 (S,)
    customer_sequence: np.ndarray  # int64 (n,)
    T: int
    y_max: int

    @property
    def n_customers(self):
        return float(self.weight.sum())


@dataclass
class StartRecord:
    """One random start: its final log-likelihood, iterations and whether it converged."""

    start: int
    loglik: float
    iterations: int
    converged: bool
    seconds: float
    params: LifecycleParams = field(repr=False)


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
class LifecycleHMM:
    """Hidden-Markov lifecycle model of repeat-purchase counts, fitted by EM.

    Parameters
    ----------
    n_classes : int
        Latent classes ``C`` (2 = the simulator's relationship and transactional segments).
    heterogeneity : {"gamma", None}
        A customer-level gamma rate multiplier integrated by quadrature, or none.
    n_nodes : int
        Quadrature nodes ``Q`` of the multiplier (ignored without heterogeneity).
    n_starts : int
        Random starts of EM; each runs to convergence.
    max_iter : int
        EM iterations per start.
    tol : float
        Convergence: stop when an iteration raises the log-likelihood by less than ``tol``.
    seed : int
        Seed of the starting values.
    block : int
        Sequences per block of the E-step's fixed-order reduction (changes the last bits only).
    """

    def __init__(self, n_classes=2, heterogeneity="gamma", n_nodes=8, n_starts=20, max_iter=3000,
                 tol=1e-6, seed=0, block=64):
        if int(n_classes) < 1:
            raise ValueError(f"n_classes = {n_classes}: must be >= 1")
        if heterogeneity not in ("gamma", None):
            raise ValueError(f"heterogeneity = {heterogeneity!r}: must be 'gamma' or None")
        if heterogeneity == "gamma" and int(n_nodes) < 2:
            raise ValueError("n_nodes must be >= 2 with a gamma multiplier")
        if int(n_starts) < 1 or int(max_iter) < 1 or not tol > 0 or int(block) < 1:
            raise ValueError("n_starts, max_iter, block must be >= 1 and tol > 0")
        self.n_classes = int(n_classes)
        self.heterogeneity = heterogeneity
        self.n_nodes = int(n_nodes) if heterogeneity == "gamma" else 1
        self.n_starts = int(n_starts)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.seed = int(seed)
        self.block = int(block)
        self.params_ = None

    # ---------------- data ----------------
    def set_data(self, entry, counts, multiplicity=None, customer_sequence=None):
        """Check and store the calibration data (distinct sequences, see :func:`group_sequences`).

        Parameters
        ----------
        entry : int (S,)
            Entry period of each sequence (``0 <= entry < T``).
        counts : int (S, T)
            Repeat purchases per period; zero before the entry period.
        multiplicity : float (S,), optional
            Customers with each sequence (default 1).
        customer_sequence : int (n,), optional
            Sequence index of each customer (default: customer i has sequence i).
        """
        entry = np.asarray(entry)
        counts = np.asarray(counts)
        if counts.ndim != 2:
            raise ValueError(f"counts must be 2-D (sequences, periods); got shape {counts.shape}")
        S, T = counts.shape
        if entry.shape != (S,):
            raise ValueError(f"entry must have shape ({S},); got {entry.shape}")
        if not (np.issubdtype(entry.dtype, np.integer) and np.issubdtype(counts.dtype, np.integer)):
            raise ValueError("entry and counts must be integer arrays")
        if S == 0 or T == 0:
            raise ValueError("no data")
        if entry.min() < 0 or entry.max() >= T:
            raise ValueError(f"entry periods must be in 0..{T - 1}")
        if counts.min() < 0:
            raise ValueError("counts must be >= 0")
        if np.any(counts[np.arange(T)[None, :] < entry[:, None]] != 0):
            raise ValueError("counts before a sequence's entry period must be 0")
        weight = np.ones(S) if multiplicity is None else np.asarray(multiplicity, dtype=np.float64)
        if weight.shape != (S,) or np.any(weight < 0) or not np.all(np.isfinite(weight)):
            raise ValueError("multiplicity must be (S,), finite and >= 0")
        cs = np.arange(S) if customer_sequence is None else np.asarray(customer_sequence)
        if cs.ndim != 1 or (cs.size and (cs.min() < 0 or cs.max() >= S)):
            raise ValueError("customer_sequence must index the sequences")
        if customer_sequence is not None and not np.array_equal(np.bincount(cs, minlength=S), weight):
            raise ValueError("multiplicity must equal the number of customers of each sequence")
        entry = entry.astype(np.int64)
        counts = np.ascontiguousarray(counts, dtype=np.int32)
        t_idx = np.where(counts > 0, np.arange(T)[None, :], -1).max(axis=1)
        last = np.maximum(t_idx, entry).astype(np.int64)
        self.data_ = _Data(entry, last, counts, weight, cs.astype(np.int64), T, int(counts.max()))
        return self

    # ---------------- parameter <-> kernel arrays ----------------
    def _nodes(self, shape):
        if self.heterogeneity is None:
            return np.ones(1), np.ones(1)
        return gamma_quadrature(shape, self.n_nodes)

    def _arrays(self, p, data=None, L_max=None):
        data = self.data_ if data is None else data
        u, w = self._nodes(p.shape)
        C, Q = p.n_classes, len(u)
        prior = p.class_probs[:, None] * w[None, :]
        rates = np.zeros((C, Q, 5))
        rates[:, :, :4] = p.rates[:, None, :] * u[None, :, None]
        emis = _poisson_table(rates, data.y_max).reshape(C * Q, 5, data.y_max + 1)
        emis0 = _poisson_table(p.entry_rates[:, None] * u[None, :], data.y_max).reshape(C * Q, data.y_max + 1)
        A = np.ascontiguousarray(p.transitions)
        L_max = data.T if L_max is None else L_max
        bz, G, H = _hmm.tail_tables(A, np.ascontiguousarray(emis[:, :, 0]), Q, L_max)
        return dict(prior=prior, A=A, emis=emis, emis0=emis0, bz=bz, G=G, H=H, u=u, w=w,
                    rates=rates.reshape(C * Q, 5))

    def _estep(self, p, data=None):
        d = self.data_ if data is None else data
        a = self._arrays(p, d)
        out = _hmm.estep(d.entry, d.last, d.counts, d.weight, d.T, a["prior"], a["A"], a["emis"],
                         a["emis0"], a["bz"], a["G"], a["H"], self.block)
        return self._unpack(out, p.n_classes, len(a["u"])), a

    @staticmethod
    def _unpack(out, C, Q):
        o_post, o_trans, o_occ, o_ysum, o_y0, size = _hmm.stats_layout(C, Q)
        return dict(
            loglik=out[0],
            post=out[o_post:o_trans].reshape(C, Q),
            trans=out[o_trans:o_occ].reshape(C, _hmm.NE),
            occ=out[o_occ:o_ysum].reshape(C, Q, 5),
            ysum=out[o_ysum:o_y0].reshape(C, Q, 5),
            ysum0=out[o_y0:size].reshape(C, Q),
        )

    def loglik(self, params=None):
        """Log-likelihood of the calibration data (sum over customers)."""
        p = self.params_ if params is None else params
        return float(self._estep(p)[0]["loglik"])

    # ---------------- M-step ----------------
    def _q_shape(self, shape, st, rates, entry_rates):
        """Expected complete-data log-likelihood as a function of the gamma shape (rates fixed)."""
        u, w = gamma_quadrature(shape, self.n_nodes)
        logu = np.log(u)
        val = np.sum(st["post"] * np.log(np.maximum(w, 1e-300))[None, :])
        val += np.sum(st["ysum"][:, :, :4].sum(axis=2) * logu[None, :])
        val -= np.sum(st["occ"][:, :, :4] * rates[:, None, :] * u[None, :, None])
        val += np.sum(st["ysum0"] * logu[None, :]) - np.sum(st["post"] * entry_rates[:, None] * u[None, :])
        return val

    def _rates_given_u(self, st, u, old):
        C = st["post"].shape[0]
        rates = np.empty((C, 4))
        blocks = []
        for c in range(C):
            N = st["ysum"][c, :, :4].sum(axis=0)
            E = (st["occ"][c, :, :4] * u[:, None]).sum(axis=0)
            rates[c], b = isotonic_rates(N, E, fallback=old.rates[c])
            blocks.append(b)
        E0 = (st["post"] * u[None, :]).sum(axis=1)
        entry_rates = np.where(E0 > 0, st["ysum0"].sum(axis=1) / np.where(E0 > 0, E0, 1.0), old.entry_rates)
        return rates, entry_rates, blocks

    def _mstep(self, p, st, u):
        """Constrained M-step (closed form for pi, A and the ordered rates; 1-D search for r)."""
        C = p.n_classes
        post_c = st["post"].sum(axis=1)
        class_probs = post_c / post_c.sum()
        A = np.zeros((C, 5, 5))
        for c in range(C):
            np.add.at(A[c], (_hmm.SRC, _hmm.DST), st["trans"][c])
            rows = A[c].sum(axis=1)
            for k in range(5):
                if rows[k] > 0:
                    A[c, k] /= rows[k]
                else:
                    A[c, k] = p.transitions[c, k]
        A[:, ENDED] = 0.0
        A[:, ENDED, ENDED] = 1.0
        rates, entry_rates, _ = self._rates_given_u(st, u, p)
        shape = p.shape
        if self.heterogeneity == "gamma":
            for _ in range(4):  # coordinate ascent: shape | rates, then rates | shape
                q_old = self._q_shape(shape, st, rates, entry_rates)
                res = optimize.minimize_scalar(lambda lr: -self._q_shape(math.exp(lr), st, rates, entry_rates),
                                               bounds=(math.log(0.02), math.log(200.0)), method="bounded",
                                               options={"xatol": 1e-7})
                if -res.fun > q_old:
                    shape = math.exp(res.x)
                u_new, _ = gamma_quadrature(shape, self.n_nodes)
                rates, entry_rates, _ = self._rates_given_u(st, u_new, p)
                if abs(-res.fun - q_old) < 1e-10:
                    break
        return LifecycleParams(class_probs, A, rates, entry_rates, shape)

    # ---------------- starts and EM ----------------
    def _random_start(self, rng):
        C = self.n_classes
        d = self.data_
        base = max(float((d.counts.sum(axis=1) * d.weight).sum() / max((d.weight * (d.T - d.entry)).sum(), 1.0)),
                   1e-3)
        A = np.zeros((C, 5, 5))
        for c in range(C):
            for k, moves in MOVES:
                stay = rng.uniform(0.7, 0.97)
                split = rng.dirichlet(np.ones(len(moves)))
                A[c, k, k] = stay
                A[c, k, list(moves)] = (1 - stay) * split
            A[c, ENDED, ENDED] = 1.0
        rates = np.empty((C, 4))
        for c in range(C):
            v = np.sort(base * np.exp(rng.uniform(-2.5, 2.0, 4)))
            mid = rng.permutation(v[1:3])
            rates[c] = [v[0], mid[0], v[3], mid[1]]
        entry_rates = base * np.exp(rng.uniform(-1, 1, C))
        shape = float(np.exp(rng.uniform(np.log(0.3), np.log(5.0)))) if self.heterogeneity == "gamma" else None
        return LifecycleParams(rng.dirichlet(2 * np.ones(C)), A, rates, entry_rates, shape)

    def run_em(self, start, max_iter=None, tol=None, record=False):
        """EM from ``start``. Returns (params, loglik, iterations, converged, history)."""
        max_iter = self.max_iter if max_iter is None else max_iter
        tol = self.tol if tol is None else tol
        p = start
        history = []
        prev = -np.inf
        converged = False
        it = 0
        for it in range(1, max_iter + 1):
            st, a = self._estep(p)
            ll = st["loglik"]
            if record:
                history.append(ll)
            if ll - prev < tol and np.isfinite(prev):
                converged = True
                break
            prev = ll
            p = self._mstep(p, st, a["u"])
        else:
            ll = self.loglik(p)
            if record:
                history.append(ll)
        return p, float(ll), it, converged, np.array(history)

    def fit(self, entry, counts, multiplicity=None, customer_sequence=None, start=None):
        """Fit by EM from ``n_starts`` random starts (plus ``start`` if given); keep the best.

        Sets ``params_``, ``loglik_``, ``starts_`` (a :class:`StartRecord` per start),
        ``n_at_best_`` (starts within 0.01 of the best log-likelihood), ``n_params_``,
        ``bic_`` (``-2 LL + n_params log(n customers)``), ``aic_``, ``fit_seconds_``.
        """
        self.set_data(entry, counts, multiplicity, customer_sequence)
        rng = np.random.default_rng(self.seed)
        starts = [self._random_start(rng) for _ in range(self.n_starts)]
        if start is not None:
            starts = [start.check()] + starts
        t0 = time.perf_counter()
        self.starts_ = []
        for i, s in enumerate(starts):
            t1 = time.perf_counter()
            p, ll, it, conv, _ = self.run_em(s)
            self.starts_.append(StartRecord(i, ll, it, conv, time.perf_counter() - t1, p))
        self.fit_seconds_ = time.perf_counter() - t0
        best = max(self.starts_, key=lambda r: r.loglik)
        self.params_ = self._label_classes(best.params)
        self.loglik_ = best.loglik
        self.n_at_best_ = sum(r.loglik >= best.loglik - 0.01 for r in self.starts_)
        self.n_params_ = self.n_parameters()
        self.bic_ = -2 * self.loglik_ + self.n_params_ * math.log(self.data_.n_customers)
        self.aic_ = -2 * self.loglik_ + 2 * self.n_params_
        return self

    def n_parameters(self):
        """Free parameters: C-1 class probabilities, 7 moves, 4 stage rates and 1 entry rate per
        class, and the gamma shape."""
        C = self.n_classes
        return (C - 1) + C * (7 + 4 + 1) + (1 if self.heterogeneity == "gamma" else 0)

    @staticmethod
    def _label_classes(p):
        """Order the classes by the probability of reaching stability from exploration (the
        relationship class first) — a naming of classes, the stages are never relabelled."""
        C = p.n_classes
        score = np.empty(C)
        for c in range(C):
            A = p.transitions[c]
            # P(reach formation) * P(formation -> stability before decline)
            pf = A[0, 1] / max(A[0, 1] + A[0, 4], 1e-300)
            ps = A[1, 2] / max(A[1, 2] + A[1, 3], 1e-300)
            score[c] = pf * ps
        o = np.argsort(-score, kind="stable")
        return LifecycleParams(p.class_probs[o], p.transitions[o], p.rates[o], p.entry_rates[o], p.shape)

    # ---------------- standard errors ----------------
    def _blocks(self, p, rtol=1e-9):
        """Pooled rate blocks per class at ``p`` (stages whose rates are equal)."""
        out = []
        for c in range(p.n_classes):
            blocks = []
            for k in range(4):
                for b in blocks:
                    if abs(p.rates[c, b[0]] - p.rates[c, k]) <= rtol * max(p.rates[c, k], 1e-300):
                        b.append(k)
                        break
                else:
                    blocks.append([k])
            out.append([tuple(b) for b in blocks])
        return out

    def _theta(self, p, blocks):
        C = p.n_classes
        th = [np.log(p.class_probs[1:] / p.class_probs[0])]
        for c in range(C):
            A = p.transitions[c]
            for k, moves in MOVES:
                th.append(np.log(A[k, list(moves)] / A[k, k]))
        for c in range(C):
            th.append(np.log([p.rates[c, b[0]] for b in blocks[c]]))
            th.append([np.log(p.entry_rates[c])])
        if self.heterogeneity == "gamma":
            th.append([np.log(p.shape)])
        return np.concatenate([np.atleast_1d(np.asarray(x, float)) for x in th])

    def _from_theta(self, th, blocks, C):
        i = 0
        z = np.concatenate([[0.0], th[i:i + C - 1]])
        i += C - 1
        pi = np.exp(z - z.max())
        pi /= pi.sum()
        A = np.zeros((C, 5, 5))
        for c in range(C):
            for k, moves in MOVES:
                v = np.exp(th[i:i + len(moves)])
                i += len(moves)
                A[c, k, k] = 1.0 / (1.0 + v.sum())
                A[c, k, list(moves)] = v / (1.0 + v.sum())
            A[c, ENDED, ENDED] = 1.0
        rates = np.empty((C, 4))
        entry_rates = np.empty(C)
        for c in range(C):
            for b in blocks[c]:
                rates[c, list(b)] = math.exp(th[i])
                i += 1
            entry_rates[c] = math.exp(th[i])
            i += 1
        shape = math.exp(th[i]) if self.heterogeneity == "gamma" else None
        return LifecycleParams(pi, A, rates, entry_rates, shape)

    def score(self, params, blocks):
        """Exact score of the marginal log-likelihood in the unconstrained parametrisation,
        by Fisher's identity: ``d log L / d theta = E[d log L_complete / d theta | y]`` at theta,
        from the E-step statistics (the shape's term by a central difference of the smooth
        one-dimensional expected complete-data log-likelihood)."""
        p = params
        C = p.n_classes
        st, a = self._estep(p)
        u = a["u"]
        g = []
        post_c = st["post"].sum(axis=1)
        g.append(post_c[1:] - post_c.sum() * p.class_probs[1:])
        for c in range(C):
            n = np.zeros((5, 5))
            np.add.at(n, (_hmm.SRC, _hmm.DST), st["trans"][c])
            for k, moves in MOVES:
                g.append(n[k, list(moves)] - n[k].sum() * p.transitions[c, k, list(moves)])
        for c in range(C):
            N = st["ysum"][c, :, :4].sum(axis=0)
            E = (st["occ"][c, :, :4] * u[:, None]).sum(axis=0)
            g.append([sum(N[k] - p.rates[c, k] * E[k] for k in b) for b in blocks[c]])
            g.append([st["ysum0"][c].sum() - p.entry_rates[c] * (st["post"][c] * u).sum()])
        if self.heterogeneity == "gamma":
            h = 1e-5
            lr = math.log(p.shape)
            f = lambda x: self._q_shape(math.exp(x), st, p.rates, p.entry_rates)  # noqa: E731
            g.append([(f(lr + h) - f(lr - h)) / (2 * h)])
        return np.concatenate([np.atleast_1d(np.asarray(x, float)) for x in g]), st["loglik"]

    def standard_errors(self, step=1e-4):
        """Observed-information standard errors at the fitted parameters.

        The Hessian of the marginal log-likelihood in the unconstrained parametrisation
        (:meth:`score`) is the central difference of the exact score, symmetrised; its
        inverse negative is the covariance of theta, mapped to the natural parameters by
        the delta method (numerical Jacobian). Sets and returns ``se_`` (dict of arrays with
        the shapes of the parameters, NaN for structural zeros), ``cov_theta_``,
        ``hessian_``, ``score_at_optimum_`` and ``blocks_``.
        """
        p = self.params_
        blocks = self._blocks(p)
        th = self._theta(p, blocks)
        C = p.n_classes
        g0, _ = self.score(self._from_theta(th, blocks, C), blocks)
        n = len(th)
        Hm = np.empty((n, n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = step
            gp, _ = self.score(self._from_theta(th + e, blocks, C), blocks)
            gm, _ = self.score(self._from_theta(th - e, blocks, C), blocks)
            Hm[:, j] = (gp - gm) / (2 * step)
        Hm = 0.5 * (Hm + Hm.T)
        eig = np.linalg.eigvalsh(-Hm)
        cov = np.linalg.pinv(-Hm) if eig.min() <= 0 else np.linalg.inv(-Hm)

        def natural(t):
            q = self._from_theta(t, blocks, C)
            return np.concatenate([q.class_probs, q.transitions.ravel(), q.rates.ravel(), q.entry_rates,
                                   [q.shape if q.shape is not None else np.nan]])

        J = np.empty((len(natural(th)), n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = 1e-6
            J[:, j] = (natural(th + e) - natural(th - e)) / 2e-6
        var = np.einsum("ij,jk,ik->i", J, cov, J)
        se = np.sqrt(np.maximum(var, 0.0))
        i = 0
        out = {}
        out["class_probs"] = se[i:i + C]
        i += C
        tr = se[i:i + 25 * C].reshape(C, 5, 5).copy()
        tr[:, ~_ALLOWED] = np.nan
        out["transitions"] = tr
        i += 25 * C
        out["rates"] = se[i:i + 4 * C].reshape(C, 4)
        i += 4 * C
        out["entry_rates"] = se[i:i + C]
        i += C
        out["shape"] = float(se[i]) if self.heterogeneity == "gamma" else None
        self.se_ = out
        self.cov_theta_ = cov
        self.hessian_ = Hm
        self.hessian_eigenvalues_ = eig
        self.score_at_optimum_ = g0
        self.blocks_ = blocks
        self.theta_ = th
        return out

    def diagnostics(self):
        """Convergence diagnostics of the fit: best log-likelihood, starts within 0.01 of it,
        spread of the start optima, iterations, the largest |score| at the optimum and the
        smallest eigenvalue of the observed information (positive at a strict local maximum)."""
        lls = np.array([r.loglik for r in self.starts_])
        out = dict(loglik=self.loglik_, n_starts=len(self.starts_), n_at_best=self.n_at_best_,
                   n_within_3=int(np.sum(lls >= self.loglik_ - 3.0)),
                   n_converged=int(sum(r.converged for r in self.starts_)),
                   iterations=[r.iterations for r in self.starts_], start_logliks=lls,
                   fit_seconds=self.fit_seconds_)
        if hasattr(self, "score_at_optimum_"):
            out["max_abs_score"] = float(np.max(np.abs(self.score_at_optimum_)))
            out["min_information_eigenvalue"] = float(self.hessian_eigenvalues_.min())
        return out

    # ---------------- filtering and forecasting ----------------
    def _check_fitted(self):
        if self.params_ is None:
            raise RuntimeError("fit the model first")

    def filter(self):
        """Filtered state at the end of the calibration period, per customer.

        Returns
        -------
        dict with
            ``stage_probs`` (n, 5): P(state at T-1 | data), states :data:`STATES`;
            ``p_alive`` (n,): 1 - P(ended);
            ``class_probs`` (n, C): posterior class probabilities;
            ``joint`` (S, C*Q, 5): per distinct sequence, P(class, node, state);
            ``loglik_sequence`` (S,).
        """
        self._check_fitted()
        d, p = self.data_, self.params_
        a = self._arrays(p)
        joint, ll = _hmm.filter_end(d.entry, d.last, d.counts, d.T, a["prior"], a["A"], a["emis"], a["emis0"], a["bz"])
        C, Q = p.n_classes, len(a["u"])
        stage = joint.sum(axis=1)
        cls = joint.reshape(-1, C, Q, 5).sum(axis=(2, 3))
        cs = d.customer_sequence
        return dict(stage_probs=stage[cs], p_alive=1.0 - stage[cs, ENDED], class_probs=cls[cs], joint=joint,
                    loglik_sequence=ll)

    def expected_counts(self, horizon):
        """Expected repeat purchases in each of the ``horizon`` periods after calibration.

        Propagates each customer's filtered (class, node, state) distribution through the
        chain: ``E[y_{T-1+h}] = sum p_end(c,q,k) (A_c^h m_{cq})_k`` with ``m_{cq,k} = lambda_{c,k}
        u_q`` (NLS section 4.2's forecast with the random effect integrated).

        Returns
        -------
        float64 (n, horizon)
        """
        self._check_fitted()
        f = self.filter()
        a = self._arrays(self.params_)
        W, _ = _hmm.forecast_tables(a["A"], a["rates"], len(a["u"]), int(horizon))
        E = _hmm.forecast_counts(f["joint"], W)
        return E[self.data_.customer_sequence]

    def predict(self, horizon):
        """Expected repeat purchases over the next ``horizon`` periods, per customer (n,)."""
        return self.expected_counts(horizon).sum(axis=1)

    def unconditional_counts(self, entry, n_periods):
        """Expected repeat purchases per calendar period of customers entering at ``entry``,
        from the model alone (no purchase history): the tracking curve.

        Returns
        -------
        float64 (n_periods,): summed over the customers.
        """
        self._check_fitted()
        p = self.params_
        u, w = self._nodes(p.shape)
        C, Q = p.n_classes, len(u)
        entry = np.asarray(entry, dtype=np.int64)
        out = np.zeros(n_periods)
        per_entry = np.bincount(entry, minlength=n_periods)[:n_periods]
        # expected purchases h periods after entry (h = 0: entry period)
        rates = np.zeros((C, Q, 5))
        rates[:, :, :4] = p.rates[:, None, :] * u[None, :, None]
        W, _ = _hmm.forecast_tables(np.ascontiguousarray(p.transitions), rates.reshape(C * Q, 5), Q, n_periods)
        prior = (p.class_probs[:, None] * w[None, :]).ravel()
        curve = np.empty(n_periods)
        curve[0] = np.sum(p.class_probs * p.entry_rates)  # E[u] = 1
        curve[1:] = (prior[:, None] * W[:, : n_periods - 1, EXPLORATION]).sum(axis=0)
        for e, m in enumerate(per_entry):
            if m:
                out[e:] += m * curve[: n_periods - e]
        return out

    def stage_occupancy(self, horizon=0):
        """Expected customers in each state per calendar period inferred from the data:
        smoothed P(state at t | calibration data) summed over customers for t < T, then the
        filtered state at T-1 propagated through the chain for ``horizon`` more periods.

        Returns
        -------
        float64 (T + horizon, 5); rows before a customer's entry do not count her.
        """
        self._check_fitted()
        d, p = self.data_, self.params_
        a = self._arrays(p)
        g = _hmm.posterior_states(d.entry, d.last, d.counts, d.T, a["prior"], a["A"], a["emis"], a["emis0"], a["bz"])
        occ = np.einsum("s,stk->tk", d.weight, g)
        if horizon <= 0:
            return occ
        f = self.filter()
        C, Q = p.n_classes, len(a["u"])
        cur = np.einsum("s,sjk->jk", d.weight, f["joint"])  # (CQ, 5)
        fut = np.empty((horizon, 5))
        for h in range(horizon):
            cur = np.einsum("jk,jkl->jl", cur, a["A"][np.arange(C * Q) // Q])
            fut[h] = cur.sum(axis=0)
        return np.vstack([occ, fut])

    # ---------------- spend ----------------
    def fit_spend(self, txn_sequence, txn_period, txn_amount):
        """Lognormal spend per purchase by stage, ordered like the rates, given the count model.

        A second estimation step on the fitted count model (the stage of a purchase is
        weighted by the smoothed P(state at t | counts)): ``log amount ~ Normal(mu_k,
        sigma^2)`` with ``mu_E <= mu_F, mu_D <= mu_S`` (weighted isotonic regression of the
        stage means, then the common ``sigma``). The first purchase counts as exploration
        spend. Mean spend per purchase in stage k is ``exp(mu_k + sigma^2 / 2)``.

        Parameters
        ----------
        txn_sequence : int (m,)
            Sequence index of the customer of each transaction (``customer_sequence[i]``).
        txn_period : int (m,)
            Period of each transaction (< T).
        txn_amount : float (m,)
            Amount (> 0).

        Returns
        -------
        dict: ``mu`` (4,), ``sigma``, ``mean_spend`` (4,), ``weights`` (4,) (expected purchases
        per stage), ``blocks``.
        """
        self._check_fitted()
        d, p = self.data_, self.params_
        txn_sequence = np.asarray(txn_sequence, np.int64)
        txn_period = np.asarray(txn_period, np.int64)
        x = np.log(np.asarray(txn_amount, float))
        if not (txn_sequence.shape == txn_period.shape == x.shape):
            raise ValueError("transaction arrays must have the same length")
        if np.any(~np.isfinite(x)):
            raise ValueError("amounts must be > 0")
        if np.any(txn_period >= d.T) or np.any(txn_period < d.entry[txn_sequence]):
            raise ValueError("transaction periods must be in entry..T-1 of their sequence")
        a = self._arrays(p)
        g = _hmm.posterior_states(d.entry, d.last, d.counts, d.T, a["prior"], a["A"], a["emis"], a["emis0"], a["bz"])
        wts = g[txn_sequence, txn_period, :4]  # (m, 4)
        W = wts.sum(axis=0)
        Sx = (wts * x[:, None]).sum(axis=0)
        # weighted least squares = Poisson-like pooling objective replaced by the normal one
        mu, blocks = _isotonic_means(Sx, W)
        resid = (wts * (x[:, None] - mu[None, :]) ** 2).sum()
        sigma = math.sqrt(resid / W.sum())
        self.spend_ = dict(mu=mu, sigma=sigma, mean_spend=np.exp(mu + sigma ** 2 / 2), weights=W, blocks=blocks)
        return self.spend_

    # ---------------- simulation ----------------
    def simulate(self, entry, n_periods, rng, params=None, return_states=False):
        """Simulate repeat-purchase counts of customers entering at ``entry`` (the multiplier
        drawn from the continuous gamma, not the quadrature).

        Returns
        -------
        counts : int32 (n, n_periods); states : int8 (n, n_periods) if ``return_states``
        (-1 before entry); classes : int64 (n,) if ``return_states``.
        """
        p = self.params_ if params is None else params
        return simulate_lifecycle(p, entry, n_periods, rng, return_states)


def _isotonic_means(Sx, W, order=ORDER):
    """Weighted isotonic regression of means Sx/W under the partial order (exact pooling)."""
    best, best_val, best_blocks = None, np.inf, None
    m = np.divide(Sx, W, out=np.zeros(4), where=W > 0)
    for part in [tuple(tuple(sorted(b)) for b in q) for q in _set_partitions([0, 1, 2, 3])]:
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


def simulate_lifecycle(params, entry, n_periods, rng, return_states=False):
    """Simulate counts from :class:`LifecycleParams` (see :meth:`LifecycleHMM.simulate`)."""
    p = params
    entry = np.asarray(entry, dtype=np.int64)
    n = len(entry)
    C = p.n_classes
    cls = rng.choice(C, size=n, p=p.class_probs)
    u = rng.gamma(p.shape, 1.0 / p.shape, size=n) if p.shape is not None else np.ones(n)
    counts = np.zeros((n, n_periods), dtype=np.int32)
    states = np.full((n, n_periods), -1, dtype=np.int8)
    state = np.zeros(n, dtype=np.int64)
    cum = np.cumsum(p.transitions, axis=2)
    rates5 = np.concatenate([p.rates, np.zeros((C, 1))], axis=1)
    for t in range(n_periods):
        active = entry <= t
        entering = entry == t
        moving = active & ~entering
        if moving.any():
            r = rng.random(moving.sum())
            cs = cum[cls[moving], state[moving]]
            state[moving] = np.minimum((r[:, None] > cs).sum(axis=1), 4)
        lam = np.where(entering, p.entry_rates[cls], rates5[cls, state]) * u
        counts[:, t] = np.where(active, rng.poisson(np.where(active, lam, 0.0)), 0)
        states[active, t] = state[active]
    if return_states:
        return counts, states, cls
    return counts


def select_lifecycle(entry, counts, multiplicity=None, customer_sequence=None,
                     candidates=((1, None), (2, None), (3, None), (1, "gamma"), (2, "gamma"), (3, "gamma")),
                     criterion="bic", **kwargs):
    """Fit every candidate ``(n_classes, heterogeneity)`` and keep the one with the lowest BIC.

    The rule uses the calibration data only (BIC = -2 LL + n_params log n, n = customers) and
    is the same for every log. ``kwargs`` go to :class:`LifecycleHMM`.

    Returns
    -------
    best : LifecycleHMM
    table : list of dict
        One row per candidate: n_classes, heterogeneity, loglik, n_params, bic, aic,
        n_at_best, n_starts, seconds.
    """
    if criterion not in ("bic", "aic"):
        raise ValueError("criterion must be 'bic' or 'aic'")
    fits, table = [], []
    for C, het in candidates:
        m = LifecycleHMM(n_classes=C, heterogeneity=het, **kwargs)
        m.fit(entry, counts, multiplicity, customer_sequence)
        fits.append(m)
        table.append(dict(n_classes=C, heterogeneity=het, loglik=m.loglik_, n_params=m.n_params_, bic=m.bic_,
                          aic=m.aic_, n_at_best=m.n_at_best_, n_starts=len(m.starts_), seconds=m.fit_seconds_))
    key = "bic_" if criterion == "bic" else "aic_"
    best = min(fits, key=lambda m: getattr(m, key))
    return best, table
