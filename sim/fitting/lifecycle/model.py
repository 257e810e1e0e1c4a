"""The lifecycle HMM class: settings, data, kernel arrays, the E-step and the fit with its starts.

:class:`LifecycleHMM` assembles the mixins of :mod:`~sim.fitting.lifecycle.em` (M-step,
SQUAREM), :mod:`~sim.fitting.lifecycle.inference` (score, polish, standard errors,
quadrature checks), :mod:`~sim.fitting.lifecycle.forecast` (filtering, forecasts, stage
occupancy) and :mod:`~sim.fitting.lifecycle.spend` (spend per purchase by stage). The model
is described in :mod:`sim.fitting.lifecycle`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from sim.fitting import _hmm
from sim.fitting.lifecycle.distributed import DaskEStep
from sim.fitting.lifecycle.em import EMMixin
from sim.fitting.lifecycle.forecast import ForecastMixin
from sim.fitting.lifecycle.inference import InferenceMixin
from sim.fitting.lifecycle.params import (
    LifecycleParams,
    frailty_edges,
    gamma_probability_quadrature,
    gamma_quadrature,
    poisson_table,
    simulate_lifecycle,
)
from sim.fitting.lifecycle.spend import SpendMixin

__all__ = ["LifecycleHMM", "StartRecord"]


@dataclass
class SequenceData:
    """Calibration data of the kernels: distinct sequences and their multiplicities, and each
    sequence's purchase periods as flat lists (:func:`sim.fitting._hmm.event_lists`).
    """

    entry: np.ndarray  # int64 (S,)
    last: np.ndarray  # int64 (S,)
    counts: np.ndarray  # int32 (S, T)
    weight: np.ndarray  # float64 (S,)
    customer_sequence: np.ndarray  # int64 (n,)
    T: int
    y_max: int
    ptr: np.ndarray = field(init=False, repr=False)  # int64 (S+1,)
    gap: np.ndarray = field(init=False, repr=False)  # int64 (E,)
    count: np.ndarray = field(init=False, repr=False)  # int64 (E,)
    tail: np.ndarray = field(init=False, repr=False)  # int64 (S,)

    def __post_init__(self):
        self.ptr, self.gap, self.count = _hmm.event_lists(self.entry, self.last, self.counts)
        self.tail = (self.T - 1 - self.last).astype(np.int64)

    @property
    def n_customers(self):
        """Customers represented (sum of the multiplicities)."""
        return float(self.weight.sum())


@dataclass
class StartRecord:
    """One random start: the log-likelihood after the screening E-steps, and, if it was one
    of the best ``n_final``, after EM to convergence and the polish (else NaN); E-steps used,
    whether EM converged (gain per SQUAREM cycle below ``tol``), seconds and parameters.
    """

    start: int
    screen_loglik: float
    loglik: float
    iterations: int
    converged: bool
    seconds: float
    params: LifecycleParams = field(repr=False)


class LifecycleHMM(EMMixin, InferenceMixin, ForecastMixin, SpendMixin):
    """Hidden-Markov lifecycle model of repeat-purchase counts, fitted by EM.

    Parameters
    ----------
    n_classes : int
        Latent classes ``C`` (2 = the simulator's relationship and transactional segments).
    heterogeneity : {"gamma", None}
        A customer-level gamma purchase-rate multiplier, or none.
    exit_heterogeneity : {"gamma", None} or int
        A customer-level frailty on the odds of the exits, eq. (1): ``"gamma"`` (``v ~
        Gamma(s, s)``, integrated by :func:`gamma_probability_quadrature`), an integer K >= 2
        (K support points), or None.
    n_nodes : int
        Gauss-Laguerre nodes of the rate multiplier (the starting count of the node rule).
    n_exit_nodes : int
        Probability-scale Gauss-Legendre nodes of a gamma exit frailty (starting count).
    node_rule : bool
        After the fit, double each quadrature's nodes while that changes the log-likelihood
        at the fitted parameters by ``node_tol`` or more (at most ``max_nodes``), refitting
        the final stage from the optimum after each doubling; the checks are kept in
        ``node_history_``. A fixed rule, the same for every log.
    node_tol : float
        See ``node_rule`` (log-likelihood units).
    max_nodes : int
        Cap of the node rule, per quadrature.
    screen_nodes : int or None
        Nodes of each quadrature during the screening of the random starts (at most the
        fitted count; None: the fitted count). Screening only ranks the starts, so a coarse
        quadrature does (default 4: the screening E-steps cost a quarter or less).
    n_starts : int
        Random starts; each runs ``screen_iter`` E-steps of accelerated EM. May be 0 when
        :meth:`fit` gets a ``start``.
    n_final : int
        The best starts after screening that run to convergence and are polished.
    screen_sample : int or None
        Customers in the random sample the starts are screened on when the log has more
        (None: screen on all).
    screen_iter : int
        E-steps per start in the screening stage.
    max_iter : int
        E-steps per final start.
    tol : float
        Convergence of EM: a SQUAREM cycle raises the log-likelihood by less than ``tol``.
    polish : bool or int
        Finish each final start by direct maximisation (:meth:`polish`); an integer caps its
        iterations (True: 200).
    seed : int
        Seed of the starting values.
    block : int
        Sequences per block of the E-step's fixed-order reduction (changes the last bits only).
    executor : sim.runs.executors.DaskExecutor, optional
        An entered Dask executor: the E-steps on the whole calibration data run as its tasks
        (:class:`sim.fitting.lifecycle.distributed.DaskEStep`), with bitwise the same results
        as in this process. Not part of :meth:`settings` (it does not change the fit).
    """

    def __init__(
        self,
        n_classes=2,
        heterogeneity="gamma",
        exit_heterogeneity=None,
        n_nodes=8,
        n_exit_nodes=6,
        node_rule=False,
        node_tol=0.1,
        max_nodes=48,
        screen_nodes=4,
        n_starts=20,
        n_final=4,
        screen_sample=5000,
        screen_iter=40,
        max_iter=100,
        tol=1e-5,
        polish=200,
        seed=0,
        block=64,
        executor=None,
    ):
        if int(n_classes) < 1:
            raise ValueError(f"n_classes = {n_classes}: must be >= 1")
        if heterogeneity not in ("gamma", None):
            raise ValueError(f"heterogeneity = {heterogeneity!r}: must be 'gamma' or None")
        if exit_heterogeneity not in (None, "gamma") and (
            isinstance(exit_heterogeneity, (bool, str)) or int(exit_heterogeneity) < 2
        ):
            raise ValueError(
                f"exit_heterogeneity = {exit_heterogeneity!r}: must be None, 'gamma' or an integer >= 2"
            )
        if heterogeneity == "gamma" and int(n_nodes) < 2:
            raise ValueError("a gamma multiplier needs at least 2 quadrature nodes")
        if exit_heterogeneity == "gamma" and int(n_exit_nodes) < 2:
            raise ValueError("a gamma exit frailty needs at least 2 quadrature nodes")
        if (
            min(int(n_final), int(screen_iter), int(max_iter), int(block)) < 1
            or int(n_starts) < 0
            or not tol > 0
            or not node_tol > 0
        ):
            raise ValueError(
                "n_final, screen_iter, max_iter and block must be >= 1, n_starts >= 0, tol and node_tol > 0"
            )
        self.n_classes = int(n_classes)
        self.heterogeneity = heterogeneity
        if exit_heterogeneity is None:
            self.exit_kind, self.exit_heterogeneity = None, None
        elif exit_heterogeneity == "gamma":
            self.exit_kind, self.exit_heterogeneity = "gamma", "gamma"
        else:
            self.exit_kind, self.exit_heterogeneity = "discrete", int(exit_heterogeneity)
        self.n_nodes = int(n_nodes) if heterogeneity == "gamma" else 1
        self.n_exit_nodes = int(n_exit_nodes) if self.exit_kind == "gamma" else 1
        self.node_rule = bool(node_rule)
        self.node_tol = float(node_tol)
        self.max_nodes = int(max_nodes)
        self.screen_nodes = None if screen_nodes is None else int(screen_nodes)
        self.n_starts = int(n_starts)
        self.n_final = int(n_final)
        self.screen_sample = None if screen_sample is None else int(screen_sample)
        self.screen_iter = int(screen_iter)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.polish_fit = int(200 if polish is True else polish)
        self.seed = int(seed)
        self.block = int(block)
        self.executor = executor
        self._remote = None
        self.params_ = None

    @property
    def n_exit_points(self):
        """Frailty nodes of the chain: K support points, the gamma frailty's nodes, or 1."""
        if self.exit_kind == "discrete":
            return self.exit_heterogeneity
        return self.n_exit_nodes if self.exit_kind == "gamma" else 1

    @property
    def name(self):
        """Short description of the specification, e.g. ``C1+rate+exitG`` (G: gamma frailty)."""
        exit_part = ""
        if self.exit_kind == "discrete":
            exit_part = f"+exit{self.exit_heterogeneity}"
        elif self.exit_kind == "gamma":
            exit_part = "+exitG"
        return f"C{self.n_classes}" + ("+rate" if self.heterogeneity else "") + exit_part

    def settings(self):
        """The constructor's arguments (to build a model of the same specification)."""
        return dict(
            n_classes=self.n_classes,
            heterogeneity=self.heterogeneity,
            exit_heterogeneity=self.exit_heterogeneity,
            n_nodes=max(self.n_nodes, 2),
            n_exit_nodes=max(self.n_exit_nodes, 2),
            node_rule=self.node_rule,
            node_tol=self.node_tol,
            max_nodes=self.max_nodes,
            screen_nodes=self.screen_nodes,
            n_starts=self.n_starts,
            n_final=self.n_final,
            screen_sample=self.screen_sample,
            screen_iter=self.screen_iter,
            max_iter=self.max_iter,
            tol=self.tol,
            polish=self.polish_fit,
            seed=self.seed,
            block=self.block,
        )

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

        Returns
        -------
        LifecycleHMM
            ``self``.
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
        if counts.max() > 10_000:
            raise ValueError("counts above 10,000 in one period: choose a shorter period")
        if np.any(counts[np.arange(T)[None, :] < entry[:, None]] != 0):
            raise ValueError("counts before a sequence's entry period must be 0")
        weight = np.ones(S) if multiplicity is None else np.asarray(multiplicity, dtype=np.float64)
        if weight.shape != (S,) or np.any(weight < 0) or not np.all(np.isfinite(weight)):
            raise ValueError("multiplicity must be (S,), finite and >= 0")
        cs = np.arange(S) if customer_sequence is None else np.asarray(customer_sequence)
        if (
            cs.ndim != 1
            or not np.issubdtype(cs.dtype, np.integer)
            or (cs.size and (cs.min() < 0 or cs.max() >= S))
        ):
            raise ValueError("customer_sequence must be integers indexing the sequences")
        if customer_sequence is not None and not np.array_equal(np.bincount(cs, minlength=S), weight):
            raise ValueError("multiplicity must equal the number of customers of each sequence")
        entry = entry.astype(np.int64)
        counts = np.ascontiguousarray(counts, dtype=np.int32)
        t_idx = np.where(counts > 0, np.arange(T)[None, :], -1).max(axis=1)
        last = np.maximum(t_idx, entry).astype(np.int64)
        self.data_ = SequenceData(entry, last, counts, weight, cs.astype(np.int64), T, int(counts.max()))
        self._remote = None  # the E-step on the executor's cluster, for these data (not a sample)
        if self.executor is not None:
            self._remote = DaskEStep(self.executor, self.data_)
        return self

    # ---------------- parameter <-> kernel arrays ----------------
    def _nodes(self, p):
        u, wu = gamma_quadrature(p.shape, self.n_nodes) if self.heterogeneity else (np.ones(1), np.ones(1))
        if self.exit_kind == "discrete":
            v, wv = np.asarray(p.exit_support, float), np.asarray(p.exit_weights, float)
        elif self.exit_kind == "gamma":
            v, wv = gamma_probability_quadrature(p.exit_shape, self.n_exit_nodes)
        else:
            v, wv = np.ones(1), np.ones(1)
        return u, wu, v, wv

    def _arrays(self, p, data=None):
        """Kernel arrays; block ``j = (c * Qu + q) * Qv + m`` last: prior (J,), Aj (NE, J), emis
        (Y, 5, J), emis0 (Y, J), rates (5, J), the tail and run tables, and the nodes.
        """
        data = self.data_ if data is None else data
        u, wu, v, wv = self._nodes(p)
        C, Qu, Qv = p.n_classes, len(u), len(v)
        J = C * Qu * Qv
        prior = (p.class_probs[:, None, None] * wu[None, :, None] * wv[None, None, :]).ravel()
        rates = np.zeros((5, C, Qu, Qv))
        rates[:4] = (p.rates.T[:, :, None] * u[None, None, :])[..., None]
        rates = rates.reshape(5, J)
        emis = np.ascontiguousarray(np.moveaxis(poisson_table(rates, data.y_max), -1, 0))
        r0 = np.broadcast_to((p.entry_rates[:, None] * u[None, :])[..., None], (C, Qu, Qv)).ravel()
        emis0 = np.ascontiguousarray(poisson_table(r0, data.y_max).T)
        E = frailty_edges(p.transitions, v)  # (C, Qv, NE)
        Aj = np.ascontiguousarray(
            np.broadcast_to(E[:, None, :, :], (C, Qu, Qv, _hmm.NE)).reshape(J, _hmm.NE).T
        )
        bz, G, H = _hmm.tail_tables(Aj, np.ascontiguousarray(emis[0]), data.T)
        Mpow, KR, Occ, Xi = _hmm.run_tables(Aj, np.ascontiguousarray(emis[0]), max(data.T - 2, 0))
        return dict(
            prior=prior,
            Aj=Aj,
            emis=emis,
            emis0=emis0,
            bz=bz,
            G=G,
            H=H,
            Mpow=Mpow,
            KR=KR,
            Occ=Occ,
            Xi=Xi,
            u=u,
            wu=wu,
            v=v,
            wv=wv,
            rates=rates,
            dims=(C, Qu, Qv),
        )

    def _block(self, n_sequences, n_table=0):
        """Sequences per block of the E-step: ``block``, raised so that there are at most 64
        blocks, and fewer when each block's run accumulator (``n_table`` doubles) is large
        (at most about 8 million doubles in all); depends on the data and the quadrature
        only, never on the number of threads.
        """
        n_blocks = int(min(64, max(1, 8_000_000 // max(n_table, 1))))
        return max(self.block, -(-n_sequences // n_blocks))

    def _kernel_args(self, a, data=None):
        d = self.data_ if data is None else data
        return (
            d.entry,
            d.last,
            d.counts,
            d.ptr,
            d.gap,
            d.count,
            d.T,
            a["prior"],
            a["Aj"],
            a["emis"],
            a["emis0"],
            a["bz"],
            a["KR"],
        )

    def _estep_raw(self, p, data=None):
        """The E-step's flat statistics vector (layout of the kernels' ``stats_layout``) and the arrays."""
        d = self.data_ if data is None else data
        a = self._arrays(p, d)
        block = self._block(len(d.entry), a["KR"].size)
        if self._remote is not None and self._remote.data is d and self._remote.active():
            return self._remote(a, block), a
        out = _hmm.estep(
            d.ptr,
            d.gap,
            d.count,
            d.tail,
            d.weight,
            a["prior"],
            a["Aj"],
            a["emis"],
            a["emis0"],
            a["bz"],
            a["G"],
            a["H"],
            a["Mpow"],
            a["KR"],
            a["Occ"],
            a["Xi"],
            block,
        )
        return out, a

    def _estep(self, p, data=None):
        out, a = self._estep_raw(p, data)
        return self._unpack(out, *a["dims"]), a

    @staticmethod
    def _unpack(out, C, Qu, Qv):
        """Statistics: post (C, Qu, Qv); trans (C, Qv, NE) (summed over rate nodes); occ and
        ysum (C, Qu, 5) and ysum0 (C, Qu) (summed over frailty nodes).
        """
        o_post, o_trans, o_occ, o_ysum, o_y0, size = _hmm.stats_layout(1, C * Qu * Qv)
        return dict(
            loglik=out[0],
            post=out[o_post:o_trans].reshape(C, Qu, Qv),
            trans=np.moveaxis(out[o_trans:o_occ].reshape(_hmm.NE, C, Qu, Qv).sum(axis=2), 0, -1),
            occ=np.moveaxis(out[o_occ:o_ysum].reshape(5, C, Qu, Qv).sum(axis=3), 0, -1),
            ysum=np.moveaxis(out[o_ysum:o_y0].reshape(5, C, Qu, Qv).sum(axis=3), 0, -1),
            ysum0=out[o_y0:size].reshape(C, Qu, Qv).sum(axis=2),
        )

    def loglik(self, params=None):
        """Log-likelihood of the calibration data (sum over customers).

        Parameters
        ----------
        params : LifecycleParams, optional
            Default: the fitted parameters.

        Returns
        -------
        float
        """
        p = self.params_ if params is None else params
        a = self._arrays(p)
        return float(np.dot(self.data_.weight, _hmm.loglik_sequences(*self._kernel_args(a))))

    # ---------------- the fit ----------------
    def _sample(self, full):
        """A random sample of ``screen_sample`` customers (multinomial over the sequences)."""
        draw = np.random.default_rng([self.seed, 1]).multinomial(
            self.screen_sample, full.weight / full.weight.sum()
        )
        keep = draw > 0
        return SequenceData(
            full.entry[keep],
            full.last[keep],
            full.counts[keep],
            draw[keep].astype(float),
            np.arange(int(keep.sum())),
            full.T,
            full.y_max,
        )

    def fit(self, entry, counts, multiplicity=None, customer_sequence=None, start=None):
        """Fit from ``n_starts`` random starts (plus ``start`` if given); keep the best.

        Two stages (as in latent-class software): every start runs ``screen_iter`` E-steps of
        accelerated EM (on a random sample of ``screen_sample`` customers when the log is
        larger, with ``screen_nodes`` quadrature nodes); the ``n_final`` best continue on all
        the data to convergence (:meth:`run_em`, at most ``max_iter`` E-steps) and are
        polished (:meth:`polish`). The best final log-likelihood wins — chosen on the
        calibration data only. With ``node_rule`` the quadratures are then refined
        (:meth:`refine_nodes`).

        Parameters
        ----------
        entry, counts, multiplicity, customer_sequence
            As :meth:`set_data`.
        start : LifecycleParams or list of them, optional
            Starts tried besides the random ones (e.g. the optimum of a nested specification).

        Returns
        -------
        LifecycleHMM
            ``self``, with ``params_``, ``loglik_``, ``starts_`` (a :class:`StartRecord` per
            start), ``n_at_best_`` (final starts within 0.01 of the best), ``n_params_``,
            ``bic_`` (``-2 LL + n_params log(n customers)``), ``aic_``, ``fit_seconds_`` and
            ``n_estep_`` (E-steps in all).
        """
        self.set_data(entry, counts, multiplicity, customer_sequence)
        rng = np.random.default_rng(self.seed)
        starts = [self._random_start(rng) for _ in range(self.n_starts)]
        given = [] if start is None else [start] if isinstance(start, LifecycleParams) else list(start)
        starts = [self._conform(s.check()) for s in given] + starts
        if not starts:
            raise ValueError("n_starts = 0 needs a start")
        t0 = time.perf_counter()
        records = []
        n_estep = 0
        full = self.data_
        nodes = (self.n_nodes, self.n_exit_nodes)
        if self.screen_sample and full.n_customers > self.screen_sample:
            self.data_ = self._sample(full)
        if self.screen_nodes is not None:
            self.n_nodes = min(self.n_nodes, max(self.screen_nodes, 2)) if self.heterogeneity else 1
            self.n_exit_nodes = (
                min(self.n_exit_nodes, max(self.screen_nodes, 2)) if self.exit_kind == "gamma" else 1
            )
        try:
            for i, s in enumerate(starts):
                t1 = time.perf_counter()
                p, ll, it, conv, _ = self.run_em(s, max_iter=self.screen_iter)
                n_estep += it
                records.append(StartRecord(i, ll, np.nan, it, conv, time.perf_counter() - t1, p))
        finally:
            self.data_ = full
            self.n_nodes, self.n_exit_nodes = nodes
        order = sorted(range(len(records)), key=lambda i: -records[i].screen_loglik)
        for i in order[: self.n_final]:
            r = records[i]
            t1 = time.perf_counter()
            p, ll, it, conv, _ = self.run_em(r.params, max_iter=self.max_iter)
            n_estep += it
            if self.polish_fit:
                p, ll, nev = self.polish(p, max_iter=self.polish_fit)
                n_estep += nev
            records[i] = StartRecord(
                i, r.screen_loglik, ll, r.iterations + it, conv, r.seconds + time.perf_counter() - t1, p
            )
        self.starts_ = records
        final = [r for r in records if np.isfinite(r.loglik)]
        best = max(final, key=lambda r: r.loglik)
        self.params_ = self._label_classes(best.params)
        self.loglik_ = best.loglik
        self.n_at_best_ = sum(r.loglik >= best.loglik - 0.01 for r in final)
        self.node_history_ = []
        if self.node_rule:
            n_estep += self.refine_nodes()
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_estep_ = n_estep
        self.n_params_ = self.n_parameters()
        self.bic_ = -2 * self.loglik_ + self.n_params_ * math.log(self.data_.n_customers)
        self.aic_ = -2 * self.loglik_ + 2 * self.n_params_
        return self

    def refine_nodes(self):
        """The node rule: double a quadrature's nodes while that changes the log-likelihood at
        the fitted parameters by ``node_tol`` or more (up to ``max_nodes``), refitting from the
        optimum after each doubling (at most 5 E-steps of EM, then the polish: the start is
        already near the optimum).

        Returns
        -------
        int
            E-steps used; the checks are appended to ``node_history_`` (dicts of
            ``n_nodes``, ``n_exit_nodes``, ``loglik``, ``rate_change``, ``exit_change``).
        """
        n_estep = 0
        while True:
            change = self.quadrature_check(factor=2)
            self.node_history_.append(
                dict(
                    n_nodes=self.n_nodes,
                    n_exit_nodes=self.n_exit_nodes,
                    loglik=self.loglik_,
                    rate_change=change["rate"],
                    exit_change=change["exit"],
                )
            )
            grow_rate = change["rate"] is not None and abs(change["rate"]) >= self.node_tol
            grow_exit = change["exit"] is not None and abs(change["exit"]) >= self.node_tol
            grow_rate &= 2 * self.n_nodes <= self.max_nodes
            grow_exit &= 2 * self.n_exit_nodes <= self.max_nodes
            if not (grow_rate or grow_exit):
                return n_estep
            self.n_nodes *= 2 if grow_rate else 1
            self.n_exit_nodes *= 2 if grow_exit else 1
            p, ll, it, _, _ = self.run_em(self.params_, max_iter=min(self.max_iter, 5))
            n_estep += it
            if self.polish_fit:
                p, ll, nev = self.polish(p, max_iter=self.polish_fit)
                n_estep += nev
            self.params_, self.loglik_ = self._label_classes(p), ll

    def _conform(self, p):
        """A given start adapted to this specification (missing random effects added at
        near-homogeneous values, extra ones dropped).
        """
        shape = (p.shape if p.shape is not None else 20.0) if self.heterogeneity else None
        support = weights = exit_shape = None
        if self.exit_kind == "gamma":
            exit_shape = p.exit_shape if p.exit_shape is not None else 5.0
        elif self.exit_kind == "discrete":
            K = self.exit_heterogeneity
            if p.exit_support is not None and len(p.exit_support) == K:
                support, weights = p.exit_support, p.exit_weights
            else:
                support = np.concatenate([[1.0], np.geomspace(0.1, 3.0, K - 1)])
                weights = np.concatenate([[0.8], np.full(K - 1, 0.2 / (K - 1))])
        return replace(p, shape=shape, exit_support=support, exit_weights=weights, exit_shape=exit_shape)

    def n_parameters(self):
        """Free parameters.

        Returns
        -------
        int
            C-1 class probabilities; per class 7 moves, 4 stage rates and the entry rate; the
            shape of the rate multiplier; the gamma exit frailty's shape, or K-1 weights and
            K-1 support points of a discrete one.
        """
        C = self.n_classes
        exit_part = {None: 0, "gamma": 1, "discrete": 2 * (self.n_exit_points - 1)}[self.exit_kind]
        return (C - 1) + C * (7 + 4 + 1) + (self.heterogeneity is not None) + exit_part

    @staticmethod
    def _label_classes(p):
        """Order the classes by the probability of reaching stability from exploration (the
        relationship class first) — a naming of classes; the stages are never relabelled.
        """
        score = np.empty(p.n_classes)
        for c in range(p.n_classes):
            A = p.transitions[c]
            pf = A[0, 1] / max(A[0, 1] + A[0, 4], 1e-300)
            ps = A[1, 2] / max(A[1, 2] + A[1, 3], 1e-300)
            score[c] = pf * ps
        o = np.argsort(-score, kind="stable")
        return replace(
            p,
            class_probs=p.class_probs[o],
            transitions=p.transitions[o],
            rates=p.rates[o],
            entry_rates=p.entry_rates[o],
        )

    def _check_fitted(self):
        if self.params_ is None:
            raise RuntimeError("fit the model first")

    def simulate(self, entry, n_periods, rng, params=None, return_states=False):
        """Simulate repeat-purchase counts (see :func:`simulate_lifecycle`).

        Parameters
        ----------
        entry : int array (n,)
            Entry periods.
        n_periods : int
            Periods to simulate.
        rng : numpy.random.Generator
            Random generator.
        params : LifecycleParams, optional
            Default: the fitted parameters.
        return_states : bool, default False
            Also return states and classes.

        Returns
        -------
        ndarray or tuple
            As :func:`simulate_lifecycle`.
        """
        p = self.params_ if params is None else params
        return simulate_lifecycle(p, entry, n_periods, rng, return_states)
