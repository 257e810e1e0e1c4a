"""Parameters and building blocks of the lifecycle hidden-Markov model.

The states, the allowed moves and the rate order (:data:`STATES`, :data:`ORDER`,
:data:`ROW_EDGES`, :data:`EXIT_EDGES`), the parameter object :class:`LifecycleParams`, the
quadratures of the two customer-level random effects (:func:`gamma_quadrature` for the
purchase-rate multiplier, :func:`gamma_probability_quadrature` for the exit frailty), the
order-constrained rate M-step (:func:`isotonic_rates`), grouping of identical sequences
(:func:`group_sequences`) and simulation from the model (:func:`simulate_lifecycle`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from sim.fitting import _hmm

__all__ = [
    "DECLINE",
    "ENDED",
    "EXIT_EDGES",
    "EXPLORATION",
    "FORMATION",
    "MOVES",
    "ORDER",
    "ROW_EDGES",
    "STABILITY",
    "STATES",
    "LifecycleParams",
    "gamma_probability_quadrature",
    "gamma_quadrature",
    "group_sequences",
    "isotonic_rates",
    "simulate_lifecycle",
]

#: Hidden states, in the order of :mod:`sim.model` (0..3 live stages, 4 ended).
STATES = ("exploration", "formation", "stability", "decline", "ended")
EXPLORATION, FORMATION, STABILITY, DECLINE, ENDED = range(5)
#: Rate order imposed within each class: pairs (low, high) with lambda_low <= lambda_high.
ORDER = ((EXPLORATION, FORMATION), (EXPLORATION, DECLINE), (FORMATION, STABILITY), (DECLINE, STABILITY))
#: Edges (indices into the kernels' SRC/DST) of each live state's row, and the exits.
ROW_EDGES = ((0, 1, 2), (3, 4, 5), (6, 7), (8, 9, 10))
#: The exit moves: exploration -> ended, formation -> decline, stability -> decline, decline -> ended.
EXIT_EDGES = (2, 5, 7, 10)
#: The allowed moves as (from, to) state pairs, stays included, in edge order.
MOVES = tuple((STATES[s], STATES[d]) for s, d in zip(_hmm.SRC, _hmm.DST))
IS_EXIT = np.zeros(_hmm.NE, dtype=bool)
IS_EXIT[list(EXIT_EDGES)] = True
ALLOWED = np.zeros((5, 5), dtype=bool)
ALLOWED[_hmm.SRC, _hmm.DST] = True
#: Bounds of the gamma rate shape r. The upper bound is large enough that a specification
#: without the rate multiplier, its limit r -> infinity, is within about 0.03 log-likelihood
#: units of the nested one at the bound on a 3,000-customer panel
#: (tests/fitting/test_lifecycle_select.py); :func:`gamma_quadrature` stays finite there.
SHAPE_BOUNDS = (0.02, 1e4)
EXIT_SHAPE_BOUNDS = (0.01, 500.0)
SUPPORT_BOUNDS = (1e-5, 1e4)
#: Smallest exit-frailty node (a quantile that underflows is held here: no exits, finite logs).
TINY = 1e-300


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
    top = max(int(counts.max(initial=0)), int(entry.max(initial=0)))
    dtype = np.int8 if top < 2**7 else np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64
    key = np.ascontiguousarray(np.concatenate([entry[:, None], counts], axis=1).astype(dtype))
    view = key.view(np.dtype((np.void, key.dtype.itemsize * key.shape[1]))).ravel()
    _, first, inverse, mult = np.unique(view, return_index=True, return_inverse=True, return_counts=True)
    return (
        entry[first].copy(),
        counts[first].astype(np.int32),
        mult.astype(np.float64),
        inverse.ravel().astype(np.int64),
    )


def gamma_quadrature(shape, n_nodes):
    """Nodes and weights of ``E[f(x)]`` for ``x ~ Gamma(shape, rate=shape)`` (mean 1).

    Parameters
    ----------
    shape : float
        Gamma shape ``r > 0``.
    n_nodes : int
        Nodes (1: the point mass at 1).

    Returns
    -------
    nodes, weights : ndarray
        Generalised Gauss-Laguerre with ``alpha = shape - 1`` (Golub-Welsch):
        ``x_q = t_q / shape``, ``w_q = omega_q / Gamma(shape)`` (renormalised to sum 1); exact
        for polynomials of degree ``< 2 n_nodes``. Suited to the purchase-rate multiplier,
        whose likelihood ``u^y exp(-lambda u)`` is a polynomial times an exponential.
        Above a shape of about 170 SciPy's weights overflow (they carry ``Gamma(shape)``); the
        nodes and normalised weights are then taken from the eigen-decomposition of the
        Jacobi matrix of the generalised Laguerre polynomials (Golub & Welsch 1969: nodes =
        eigenvalues, normalised weights = squared first components of the eigenvectors),
        which never forms ``Gamma(shape)``.
    """
    if n_nodes == 1:
        return np.ones(1), np.ones(1)
    t, w = special.roots_genlaguerre(n_nodes, shape - 1.0)
    total = w.sum()
    if not (np.all(np.isfinite(w)) and np.isfinite(total) and total > 0):
        t, w = _genlaguerre_normalised(n_nodes, shape - 1.0)
        total = w.sum()
    return t / shape, w / total


def _genlaguerre_normalised(n_nodes, alpha):
    """Gauss-Laguerre nodes and weights summing to 1 for the weight ``x^alpha e^-x`` (Golub-Welsch)."""
    from scipy.linalg import eigh_tridiagonal

    k = np.arange(n_nodes, dtype=float)
    diagonal = 2.0 * k + alpha + 1.0
    off = np.sqrt(k[1:] * (k[1:] + alpha))
    nodes, vectors = eigh_tridiagonal(diagonal, off)
    return nodes, vectors[0] ** 2


def gamma_probability_quadrature(shape, n_nodes):
    """Nodes and weights of ``E[f(v)]`` for ``v ~ Gamma(shape, rate=shape)`` on its probability scale.

    Parameters
    ----------
    shape : float
        Gamma shape ``s > 0``.
    n_nodes : int
        Nodes (1: the point mass at 1).

    Returns
    -------
    nodes, weights : ndarray
        ``E[f(v)] = int_0^1 f(F^-1(x)) dx`` by Gauss-Legendre on (0, 1): nodes
        ``v_m = F^-1(x_m)`` (``scipy.special.gammaincinv(s, x_m) / s``; a quantile that
        underflows is held at 1e-300), weights the Legendre weights / 2 (sum 1; positive, so
        EM stays EM).

    Notes
    -----
    Why not Gauss-Laguerre: the likelihood of a customer's exits as a function of the frailty
    behaves like ``(1 + c v)^-t`` — for a long quiet history a sharp peak at ``v = 0`` that a
    polynomial in ``v`` cannot follow, and Gauss-Laguerre's nodes miss it for small shapes
    (measured on CDNOW: the log-likelihood moved by 16 units from 6 to 24 nodes). On the
    probability scale the same function is a smooth step in ``x`` whose width is comparable
    to its position (``v`` changes by a factor ``10`` when ``x`` changes by ``10^s``), and the
    Legendre nodes cluster at both ends where the quantile function is steep.
    """
    if n_nodes == 1:
        return np.ones(1), np.ones(1)
    x, w = np.polynomial.legendre.leggauss(int(n_nodes))
    v = special.gammaincinv(shape, 0.5 * (x + 1.0)) / shape
    return np.maximum(v, TINY), w / w.sum()


def _set_partitions(items):
    if len(items) == 1:
        yield [items]
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1 :]
        yield [[first]] + part


PARTITIONS = [tuple(tuple(sorted(b)) for b in p) for p in _set_partitions([0, 1, 2, 3])]


def isotonic_rates(N, E, order=ORDER, fallback=None):
    """Maximise ``sum_k N_k log(lambda_k) - E_k lambda_k`` subject to the partial order.

    The constrained maximum is the isotonic regression of ``N/E`` with weights ``E``
    (Robertson, Wright & Dykstra 1988, Thm 1.5.2): its level sets are blocks whose value is
    the pooled rate ``sum N / sum E``. With four stages every partition into blocks (15) is
    tried and the best one that satisfies the order is returned — exact, no iteration.

    Parameters
    ----------
    N, E : float arrays (4,)
        Expected purchases and exposures by stage (``E >= 0``).
    order : pairs (low, high)
        The partial order.
    fallback : float array (4,), optional
        Values for stages without exposure (projected onto the order).

    Returns
    -------
    lam : float64 (4,)
    blocks : tuple of tuples
        The pooled stages.
    """
    N = np.asarray(N, dtype=float)
    E = np.asarray(E, dtype=float)
    raw = np.divide(N, E, out=np.full(4, np.nan), where=E > 0)
    if np.all(E > 0) and all(raw[a] <= raw[b] for a, b in order):
        return raw, tuple((k,) for k in range(4))
    best, best_val, best_blocks = None, -np.inf, None
    for part in PARTITIONS:
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
    if best is None:  # a stage without exposure: keep the fallback, projected onto the order
        lam = np.where(E > 0, raw, np.nan if fallback is None else np.asarray(fallback, float))
        lam = np.where(np.isnan(lam), np.nanmean(lam) if np.any(~np.isnan(lam)) else 1.0, lam)
        for _ in range(4):
            for a, b in order:
                if lam[a] > lam[b]:
                    lam[a] = lam[b] = 0.5 * (lam[a] + lam[b])
        return lam, tuple((k,) for k in range(4))
    return best, tuple(sorted(best_blocks))


def poisson_table(rate, y_max):
    """P(y) for y = 0..y_max, Poisson(rate) (rate array of any shape; last axis added)."""
    y = np.arange(y_max + 1)
    rate = np.asarray(rate, dtype=float)[..., None]
    pos = rate > 0
    logp = np.where(
        pos,
        y * np.log(np.where(pos, rate, 1.0)) - rate - special.gammaln(y + 1),
        np.where(y == 0, 0.0, -np.inf),
    )
    return np.exp(logp)


def edge_weights(v):
    """(Qv, NE): the factor of each edge at each frailty node (v on the exits, else 1)."""
    W = np.ones((len(v), _hmm.NE))
    W[:, IS_EXIT] = np.asarray(v, float)[:, None]
    return W


def frailty_edges(transitions, v):
    """Edge probabilities (C, Qv, NE): the exits of ``transitions`` (C, 5, 5) re-weighted by
    each frailty node ``v`` and the rows renormalised (eq. 1 of :mod:`sim.fitting.lifecycle`).
    """
    num = transitions[:, _hmm.SRC, _hmm.DST][:, None, :] * edge_weights(v)[None, :, :]
    rows = np.zeros(num.shape[:2] + (5,))
    np.add.at(rows, (slice(None), slice(None), _hmm.SRC), num)
    return num / rows[:, :, _hmm.SRC]


@dataclass(frozen=True)
class LifecycleParams:
    """Parameters of the lifecycle HMM (period = the time unit of the counts).

    Attributes
    ----------
    class_probs : ndarray (C,)
        ``pi_c``.
    transitions : ndarray (C, 5, 5)
        Row-stochastic ``A_c`` over :data:`STATES` of a customer with exit frailty 1; zero
        outside the allowed moves.
    rates : ndarray (C, 4)
        Purchase rate per period in exploration, formation, stability, decline (multiplier
        1); ordered as in :data:`ORDER`.
    entry_rates : ndarray (C,)
        Rate of repeat purchases in the (partial) entry period.
    shape : float or None
        Shape ``r`` of the gamma purchase-rate multiplier (mean 1, variance 1/r); None = none.
    exit_support, exit_weights : ndarray (K,) or None
        Support points ``v_m`` (``v_1 = 1``) and probabilities ``omega_m`` of a discrete exit
        frailty; None = none.
    exit_shape : float or None
        Shape ``s`` of a gamma exit frailty ``v ~ Gamma(s, s)`` (mean 1, variance 1/s); None =
        none. At most one of the discrete and the gamma frailty.
    """

    class_probs: np.ndarray
    transitions: np.ndarray
    rates: np.ndarray
    entry_rates: np.ndarray
    shape: float | None = None
    exit_support: np.ndarray | None = None
    exit_weights: np.ndarray | None = None
    exit_shape: float | None = None

    @property
    def n_classes(self):
        """Number of latent classes C."""
        return len(self.class_probs)

    def transitions_at(self, frailty):
        """Transition matrices (C, 5, 5) of a customer with exit frailty ``frailty``, eq. (1)."""
        E = frailty_edges(self.transitions, np.array([float(frailty)]))[:, 0, :]
        A = np.zeros_like(self.transitions)
        A[:, _hmm.SRC, _hmm.DST] = E
        return A

    def mean_stay(self):
        """Expected periods per visit to each live stage at frailty 1, ``1 / (1 - A[k, k])``, (C, 4)."""
        d = np.diagonal(self.transitions, axis1=1, axis2=2)[:, :4]
        return 1.0 / np.maximum(1.0 - d, 1e-300)

    def check(self):
        """Raise ValueError unless the parameters define a valid model; return self."""
        C = self.n_classes
        if (
            self.transitions.shape != (C, 5, 5)
            or self.rates.shape != (C, 4)
            or self.entry_rates.shape != (C,)
        ):
            raise ValueError("inconsistent parameter shapes")
        if np.any(self.transitions[:, ~ALLOWED] != 0):
            raise ValueError("transitions outside the allowed moves must be 0")
        if not np.allclose(self.transitions.sum(axis=2), 1.0) or np.any(self.transitions < 0):
            raise ValueError("transition rows must be probability vectors")
        if np.any(self.rates < 0) or np.any(self.entry_rates < 0):
            raise ValueError("rates must be >= 0")
        if not np.isclose(self.class_probs.sum(), 1.0) or np.any(self.class_probs < 0):
            raise ValueError("class_probs must be a probability vector")
        if self.shape is not None and not self.shape > 0:
            raise ValueError("shape must be > 0")
        if self.exit_shape is not None and not self.exit_shape > 0:
            raise ValueError("exit_shape must be > 0")
        if (self.exit_support is None) != (self.exit_weights is None):
            raise ValueError("exit_support and exit_weights go together")
        if self.exit_support is not None:
            if self.exit_shape is not None:
                raise ValueError("a discrete or a gamma exit frailty, not both")
            v, w = np.asarray(self.exit_support), np.asarray(self.exit_weights)
            if v.shape != w.shape or v.ndim != 1 or v[0] != 1.0 or np.any(v <= 0):
                raise ValueError("exit_support must be (K,), > 0, with exit_support[0] = 1")
            if not np.isclose(w.sum(), 1.0) or np.any(w < 0):
                raise ValueError("exit_weights must be a probability vector")
        return self


def simulate_lifecycle(params, entry, n_periods, rng, return_states=False):
    """Simulate repeat-purchase counts of customers entering at ``entry`` from the model.

    Parameters
    ----------
    params : LifecycleParams
        The rate multiplier is drawn from its gamma law, the exit frailty from its support
        points or its gamma law.
    entry : int array (n,)
        Entry period of each customer.
    n_periods : int
        Periods simulated (calendar periods 0 .. n_periods-1).
    rng : numpy.random.Generator
        Random generator.
    return_states : bool, default False
        Also return the states, classes, multipliers and frailties.

    Returns
    -------
    counts : int32 (n, n_periods)
        Repeat purchases (the entry period's exclude the first purchase).
    states : int8 (n, n_periods)
        -1 before entry (if ``return_states``).
    classes : int64 (n,)
        (if ``return_states``)
    """
    p = params
    entry = np.asarray(entry, dtype=np.int64)
    n = len(entry)
    C = p.n_classes
    cls = rng.choice(C, size=n, p=p.class_probs)
    u = rng.gamma(p.shape, 1.0 / p.shape, size=n) if p.shape is not None else np.ones(n)
    if p.exit_support is not None:
        v = np.asarray(p.exit_support)[rng.choice(len(p.exit_weights), size=n, p=p.exit_weights)]
    elif p.exit_shape is not None:
        v = rng.gamma(p.exit_shape, 1.0 / p.exit_shape, size=n)
    else:
        v = np.ones(n)
    counts = np.zeros((n, n_periods), dtype=np.int32)
    states = np.full((n, n_periods), -1, dtype=np.int8)
    state = np.zeros(n, dtype=np.int64)
    exit_to = np.array([ENDED, DECLINE, DECLINE, ENDED, ENDED])
    rates5 = np.concatenate([p.rates, np.zeros((C, 1))], axis=1)
    for t in range(n_periods):
        active = entry <= t
        entering = entry == t
        moving = np.flatnonzero(active & ~entering)
        if moving.size:
            rows = p.transitions[cls[moving], state[moving]].copy()  # (m, 5)
            live = state[moving] < ENDED
            idx = np.flatnonzero(live)
            rows[idx, exit_to[state[moving][idx]]] *= v[moving][idx]
            rows /= rows.sum(axis=1, keepdims=True)
            r = rng.random(moving.size)
            state[moving] = np.minimum((r[:, None] > np.cumsum(rows, axis=1)).sum(axis=1), ENDED)
        lam = np.where(entering, p.entry_rates[cls], rates5[cls, state]) * u
        counts[:, t] = np.where(active, rng.poisson(np.where(active, lam, 0.0)), 0)
        states[active, t] = state[active]
    if return_states:
        return counts, states, cls
    return counts
