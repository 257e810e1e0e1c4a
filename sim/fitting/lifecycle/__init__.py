"""The lifecycle model: a hidden-Markov model of customer transactions whose hidden states are
the package's relationship stages (registry name ``"lifecycle"``).

Each customer-period is in one of the states exploration, formation, stability, decline and
ended (absorbing), the states of :mod:`sim.model`, with exactly the simulator's moves
(exploration -> formation or ended; formation -> stability or decline; stability -> decline;
decline -> formation (win-back) or ended; or stay; docs/model.md §1.2). This is the
hidden-Markov model of customer relationships of Netzer, Lattin & Srinivasan (2008, "A hidden
Markov model of customer relationship dynamics", Marketing Science 27(2), 185-204; NLS
below), with the states fixed to the package's stages instead of being ordered only by their
purchase propensity, and with the purchase counts of a transaction log as emissions.

Model (period = the time unit of the data, e.g. a week)
-------------------------------------------------------
For customer ``i`` in latent class ``c`` (``P(c) = pi_c``; the simulator's two segments,
relationship and transactional, are ``C = 2``), with purchase-rate multiplier ``u_i`` and
exit frailty ``v_i``::

    u_i ~ Gamma(r, r)                         (mean 1; heterogeneity="gamma", else u_i = 1)
    v_i ~ Gamma(s, s)  or  P(v_i = v_m) = omega_m  (exit_heterogeneity="gamma" or K; else 1)
    S_{i,e_i} = exploration                   (entry period e_i = period of the first purchase)
    P(S_{t+1} = k' | S_t = k, c, v) = A_c[k, k'] v^[k->k' is an exit] / norm_k(v)    (1)
    y_{i,e_i} | c, u ~ Poisson(lambda0_c u)                                          (2)
    y_{i,t} | S_t = k, c, u ~ Poisson(lambda_{c,k} u),  t > e_i;  lambda_{c,ended} = 0 (3)

(NLS eqs. 1-3 with a Poisson emission in place of their binary logit and random effects on
the rate and on the exits.) The *exits* are the moves the simulator calls exits (exploration
-> ended, formation -> decline, stability -> decline, decline -> ended): in (1) their odds
against the other moves of the row are multiplied by ``v``, as the simulator multiplies them
by a segment's ``exit_odds`` (docs/model.md, M7); ``A_c`` is the matrix of a customer with
``v = 1`` (the mean of the gamma frailty). The frailty is the Pareto/NBD's heterogeneity in
dropout carried to the lifecycle chain: without it every customer of a class has the same
exit hazards, so the alive cohort decays geometrically once the early transients have
passed.

**Quadratures.** The rate multiplier is integrated by generalised Gauss-Laguerre
(:func:`gamma_quadrature`); the gamma exit frailty by Gauss-Legendre on the gamma's
probability scale (:func:`gamma_probability_quadrature`: nodes at the gamma quantiles of the
Legendre points, Legendre weights), which follows the frailty likelihood's ``(1 + c v)^-t``
peak at ``v = 0`` that defeats Gauss-Laguerre. Together they make ``(c, q, m)`` a finite
latent class with prior ``pi_c w_q(r) w_m`` (a product quadrature). With ``node_rule`` each
quadrature's nodes are doubled after the fit while that moves the log-likelihood at the
optimum by 0.1 or more (capped at 48), the fit being refined after each doubling.

**Entry convention.** The first purchase is not an emission: as in BG/NBD and Pareto/NBD
only repeat purchases are modelled, and the first purchase marks the entry period, spent in
exploration. That period is *partial* (the customer arrived during it), so its repeat
purchases have their own rate ``lambda0_c`` (2); transitions happen between periods, so
exploration can be left after the entry period.

**The stages mean what the package says.** Within every class the rates obey
``lambda_E <= lambda_F <= lambda_S`` and ``lambda_E <= lambda_D <= lambda_S`` (lowest in
exploration, highest in stability, decline below stability). The order is imposed in the
M-step (the weighted isotonic regression of the unconstrained rates, :func:`isotonic_rates`).
Spend per purchase (:meth:`LifecycleHMM.fit_spend`) is lognormal by stage with the same
order on its location.

Estimation
----------
EM (Baum-Welch) over *distinct* calibration sequences weighted by their multiplicity, with
the scaled forward-backward kernels of :mod:`sim.fitting._hmm`; a generalised M-step
(:mod:`~sim.fitting.lifecycle.em`), SQUAREM acceleration, many random starts screened and
the best run to convergence and polished by direct maximisation; standard errors from the
observed information (:mod:`~sim.fitting.lifecycle.inference`). The specification is chosen
by BIC on the calibration data (:func:`select_lifecycle`). The E-step runs on numba's threads,
or as tasks on a Dask cluster (``LifecycleHMM(executor=...)``, :class:`DaskEStep`) with the
same bits.

Modules
-------
:mod:`~sim.fitting.lifecycle.params` (parameters, quadratures, simulation),
:mod:`~sim.fitting.lifecycle.model` (:class:`LifecycleHMM`), ``em``, ``inference``,
``coords``, ``forecast``, ``smoothing``, ``spend``, ``distributed`` (:class:`DaskEStep`),
:mod:`~sim.fitting.lifecycle.select`, and
:mod:`~sim.fitting.lifecycle.registry` (the registry model :class:`LifecycleModel` and its
fitted form :class:`LifecycleFit`, with the stage tables).
"""

from sim.fitting.lifecycle.distributed import DaskEStep
from sim.fitting.lifecycle.model import LifecycleHMM, StartRecord
from sim.fitting.lifecycle.params import (
    EXIT_EDGES,
    MOVES,
    ORDER,
    STATES,
    LifecycleParams,
    gamma_probability_quadrature,
    gamma_quadrature,
    group_sequences,
    isotonic_rates,
    simulate_lifecycle,
)
from sim.fitting.lifecycle.registry import LifecycleFit, LifecycleModel, panel_sequences
from sim.fitting.lifecycle.select import CANDIDATES, DEFAULT_CANDIDATES, select_lifecycle, spec_name

__all__ = [
    "CANDIDATES",
    "DEFAULT_CANDIDATES",
    "EXIT_EDGES",
    "MOVES",
    "ORDER",
    "STATES",
    "DaskEStep",
    "LifecycleFit",
    "LifecycleHMM",
    "LifecycleModel",
    "LifecycleParams",
    "StartRecord",
    "gamma_probability_quadrature",
    "gamma_quadrature",
    "group_sequences",
    "isotonic_rates",
    "panel_sequences",
    "select_lifecycle",
    "simulate_lifecycle",
    "spec_name",
]
