"""Pfeifer & Carraway (2000): customer relationships as Markov chains.

:func:`~sim.analytic.markov_clv` values a chain of customer states with rewards, discounted over a finite
or infinite horizon; :func:`~sim.analytic.recency_chain` builds the recency chain of a repeat-purchase
customer, and :func:`~sim.analytic.prune_negative_states` finds the states the firm should stop serving.

Conventions (every closed form of :mod:`sim.analytic`): period ``t`` runs from time ``t`` to
``t + 1``; ``discount`` is a per-period rate ``d``, the factor ``delta = 1/(1 + d)``; each
docstring states when cash flows are received.

Pfeifer, P. E., & Carraway, R. L. (2000). Modeling customer relationships as Markov chains.
Journal of Interactive Marketing, 14(2), 43-55.
"""

from __future__ import annotations

import numpy as np

from sim.analytic._checks import (
    _check_discount,
    _check_horizon,
    _check_range,
    _check_rewards,
    _check_timing,
    _check_transition_matrix,
    _float_array,
    _scalar,
)

__all__ = ["markov_clv", "recency_chain", "prune_negative_states"]


# ---------------------------------------------------------------------------
# Pfeifer & Carraway (2000): customer migration as a Markov chain
# ---------------------------------------------------------------------------


def _bellman(P: np.ndarray, R: np.ndarray, V: np.ndarray, delta: float, timing: str) -> np.ndarray:
    """One step of the value recursion: value of one more period in front of V."""
    if timing == "end":
        return delta * (R + P @ V)
    return R + delta * (P @ V)


def _recurrent_states(P: np.ndarray) -> np.ndarray:
    """Boolean mask of recurrent states (members of closed communicating classes)."""
    n_states = P.shape[0]
    reachable = (P > 0) | np.eye(n_states, dtype=bool)
    while True:  # transitive closure by repeated squaring: at most log2(k) steps
        extended = reachable | ((reachable.astype(np.int64) @ reachable.astype(np.int64)) > 0)
        if np.array_equal(extended, reachable):
            break
        reachable = extended
    # i is recurrent iff every state reachable from i can reach i back.
    return np.all(~reachable | reachable.T, axis=1)


def _undiscounted_value(P: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Total undiscounted reward sum_t P^t R; finite only if recurrent rewards are 0."""
    recurrent = _recurrent_states(P)
    earning = recurrent & (R != 0)
    if np.any(earning):
        raise ValueError(
            "discount=0 with horizon=None gives an infinite value: recurrent states "
            f"{np.flatnonzero(earning)[:5].tolist()} have non-zero reward R; "
            "use discount > 0 or a finite horizon"
        )
    value = np.zeros_like(R)
    transient = ~recurrent
    if np.any(transient):
        Q = P[np.ix_(transient, transient)]
        value[transient] = np.linalg.solve(np.eye(Q.shape[0]) - Q, R[transient])
    return value


def _policy_value(P: np.ndarray, R: np.ndarray, delta: float, horizon: int | None, timing: str) -> np.ndarray:
    """Value of every starting state for validated inputs (see :func:`markov_clv`)."""
    if horizon is None:
        if delta == 1.0:
            return _undiscounted_value(P, R)  # both timings coincide when delta == 1
        system = np.eye(P.shape[0]) - delta * P
        right_hand_side = delta * R if timing == "end" else R
        return np.linalg.solve(system, right_hand_side)
    value = np.zeros_like(R)
    for _ in range(horizon):
        value = _bellman(P, R, value, delta, timing)
    return value


def markov_clv(P, R, discount, horizon=None, timing="end") -> np.ndarray:
    """Expected discounted value of every starting state of a customer-migration chain.

    Pfeifer & Carraway (2000) model a customer relationship as a Markov chain:
    a customer in state ``x`` during a period earns the reward ``R[x]`` for
    that period and then moves to state ``y`` with probability ``P[x, y]``.

    Parameters
    ----------
    P : array_like, shape (k, k)
        Row-stochastic transition matrix: entries in [0, 1], each row summing
        to 1 within 1e-9.  Absorbing states (``P[x, x] == 1``) are allowed.
    R : array_like, shape (k,)
        Reward earned in each state per period (margin minus marketing cost).
    discount : float
        Per-period discount rate ``d >= 0``; discount factor
        ``delta = 1 / (1 + d)``.
    horizon : int or None, default None
        Number of periods ``H`` valued (periods ``0, ..., H - 1``); ``None``
        for the infinite horizon.
    timing : {"end", "start"}, default "end"
        When each period's reward is received.

        ``"end"``: the reward of period ``t`` (``t = 0, 1, ...``), earned by a
        customer in state ``x`` at the start of the period, is received at the
        END of the period and discounted by ``delta**(t + 1)``::

            V   = sum_{t>=0} delta**(t+1) P**t R = (I - delta P)^{-1} delta R
            V_H = delta R + delta P V_{H-1},   V_0 = 0

        ``"start"``: the reward of period ``t`` is received at its start and
        discounted by ``delta**t`` (the current period is undiscounted)::

            V   = sum_{t>=0} delta**t P**t R = (I - delta P)^{-1} R
            V_H = R + delta P V_{H-1},         V_0 = 0

        The two are related by ``V_end = delta * V_start``.  Pfeifer &
        Carraway (2000) write ``V = [I - (1 + d)^{-1} P]^{-1} R``, i.e. the
        ``"start"`` convention; their finite-horizon ``V^T`` (terms
        ``t = 0, ..., T``) equals ``horizon=T + 1`` here.

    Returns
    -------
    numpy.ndarray, shape (k,)
        ``V[x]``: expected present value (at time 0) of a customer starting
        in state ``x``.

    Raises
    ------
    ValueError
        For a malformed ``P`` or ``R``, a negative ``discount``, a horizon
        that is not ``None`` or a non-negative int, an unknown ``timing``, or
        ``discount == 0`` with ``horizon=None`` when some recurrent state
        (a state of a closed class, e.g. an absorbing state) has a non-zero
        reward, so that the undiscounted value is infinite.  With
        ``discount == 0``, ``horizon=None`` and zero rewards in every
        recurrent state, the (finite) expected total reward is returned.

    Notes
    -----
    The infinite-horizon system is solved with :func:`numpy.linalg.solve`
    (``I - delta P`` is non-singular for ``delta < 1``).  The finite-horizon
    value is the backward recursion above, vectorised over states
    (``H`` matrix-vector products).
    """
    P = _check_transition_matrix(P, "P")
    R = _check_rewards(R, P.shape[0], "R")
    d = _check_discount(discount)
    horizon = _check_horizon(horizon)
    timing = _check_timing(timing)
    return _policy_value(P, R, 1.0 / (1.0 + d), horizon, timing)


def recency_chain(purchase_probability, margin, contact_cost=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Transition matrix and rewards of the Pfeifer & Carraway (2000) recency model.

    A customer's state is the number of periods since her last purchase
    ("recency").  States ``0, ..., k-1`` of the returned chain are recency
    ``1, ..., k``; state ``k`` is an absorbing "lost" state.

    In every period a customer in recency ``i`` (array index ``i - 1``) is
    contacted at cost ``contact_cost`` and buys with probability
    ``purchase_probability[i - 1]``, earning ``margin``.  A buyer returns to
    recency 1 for the next period; a non-buyer moves to recency ``i + 1``,
    and a non-buyer in the last recency state ``k`` moves to "lost", which
    is absorbing, is no longer contacted and earns nothing.

    Parameters
    ----------
    purchase_probability : array_like, shape (k,)
        Purchase probability in each recency state, each in [0, 1], k >= 1.
    margin : float
        Margin earned on a purchase.
    contact_cost : float, default 0.0
        Marketing cost per contacted customer per period, ``>= 0``.

    Returns
    -------
    P : numpy.ndarray, shape (k + 1, k + 1)
        ``P[i, 0] = p_i``, ``P[i, i + 1] = 1 - p_i`` (for ``i = k - 1`` the
        next state is "lost"), ``P[k, k] = 1``.
    R : numpy.ndarray, shape (k + 1,)
        Expected reward of the coming period,
        ``R[i] = purchase_probability[i] * margin - contact_cost``, and
        ``R[k] = 0`` for the lost state.

    Notes
    -----
    Reward convention: the reward of a state is the *expected* net cash flow
    of the period the customer spends in it (purchase during the period), so
    the chain can be valued directly with :func:`markov_clv` under either
    timing.  Pfeifer & Carraway (2000) attach the margin to the state reached
    after a purchase instead; their reward vector can be passed to
    :func:`markov_clv` unchanged if that convention is wanted.

    References
    ----------
    Pfeifer, P. E., & Carraway, R. L. (2000). Modeling customer relationships
    as Markov chains. Journal of Interactive Marketing, 14(2), 43-55.
    """
    p = _float_array(purchase_probability, "purchase_probability")
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"purchase_probability must be a non-empty 1-d array, got shape {p.shape}")
    _check_range(p, "purchase_probability", 0.0, 1.0)
    m = _scalar(margin, "margin")
    cost = _scalar(contact_cost, "contact_cost")
    if cost < 0:
        raise ValueError(f"contact_cost must be >= 0, got {cost!r}")

    k = p.size
    lost = k
    P = np.zeros((k + 1, k + 1))
    recency = np.arange(k)
    P[recency, 0] += p
    P[recency, recency + 1] += 1.0 - p
    P[lost, lost] = 1.0
    R = np.append(p * m - cost, 0.0)
    return P, R


def _evaluate_with_lookahead(
    marketed: np.ndarray,
    P_spend: np.ndarray,
    R_spend: np.ndarray,
    P_no_spend: np.ndarray,
    R_no_spend: np.ndarray,
    delta: float,
    horizon: int | None,
    timing: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Value of the policy ``marketed`` and where dropping spend cannot hurt.

    Returns ``(V, dropping_helps)``: ``dropping_helps[x]`` is True when the
    one-period look-ahead value of not spending in ``x`` is at least that of
    spending, given the policy's own continuation values (at every remaining
    horizon ``h = 1..H`` for a finite horizon).
    """
    P_policy = np.where(marketed[:, None], P_spend, P_no_spend)
    R_policy = np.where(marketed, R_spend, R_no_spend)
    if horizon is None:
        value = _policy_value(P_policy, R_policy, delta, None, timing)
        with_spend = _bellman(P_spend, R_spend, value, delta, timing)
        without_spend = _bellman(P_no_spend, R_no_spend, value, delta, timing)
        tolerance = 1e-12 * max(1.0, float(np.max(np.abs(value))))
        return value, without_spend >= with_spend - tolerance
    value = np.zeros_like(R_policy)
    dropping_helps = np.ones(marketed.shape, dtype=bool)
    for _ in range(horizon):
        with_spend = _bellman(P_spend, R_spend, value, delta, timing)
        without_spend = _bellman(P_no_spend, R_no_spend, value, delta, timing)
        tolerance = 1e-12 * max(1.0, float(np.max(np.abs(with_spend))))
        dropping_helps &= without_spend >= with_spend - tolerance
        value = np.where(marketed, with_spend, without_spend)
    return value, dropping_helps


def prune_negative_states(
    P_spend, R_spend, P_no_spend, R_no_spend, discount, horizon=None, timing="end"
) -> tuple[np.ndarray, np.ndarray]:
    """Stop marketing to customer states whose value is negative (policy iteration).

    The policy rule discussed by Pfeifer & Carraway (2000): a state whose expected customer
    value is negative should stop receiving marketing spend.  Dropping the
    spend changes that state's row of the chain: its reward becomes
    ``R_no_spend[x]`` (typically ``R_spend[x]`` plus the cost no longer paid,
    less the margin on purchases the spend would have caused) and its
    transitions become ``P_no_spend[x]``.

    Algorithm (policy iteration, starting with every state marketed):

    1. value the current policy with :func:`markov_clv`'s recursion;
    2. drop the spend in every marketed state ``x`` with ``V[x] < 0`` for
       which not spending is at least as good one step ahead,
       ``Q_no_spend[x] >= Q_spend[x]``, where ``Q = delta (R + P V)``
       (``timing="end"``) or ``R + delta P V`` (``timing="start"``) with the
       current ``V``; for a finite horizon the comparison must hold with the
       current policy's value ``V_{h-1}`` at every remaining horizon
       ``h = 1..H``;
    3. repeat until no state is dropped.

    Parameters
    ----------
    P_spend, R_spend : array_like, shapes (k, k) and (k,)
        Chain and rewards when the state receives marketing spend.
    P_no_spend, R_no_spend : array_like, shapes (k, k) and (k,)
        Chain and rewards of each state when it receives no spend.
    discount : float
        Per-period discount rate ``d >= 0``.
    horizon : int or None, default None
        Number of periods valued; ``None`` for the infinite horizon.
    timing : {"end", "start"}, default "end"
        Reward timing, as in :func:`markov_clv`.

    Returns
    -------
    V : numpy.ndarray, shape (k,)
        Value of every starting state under the final policy.
    marketed : numpy.ndarray of bool, shape (k,)
        True for states that still receive marketing spend.

    Notes
    -----
    Termination: a state, once dropped, is never re-marketed and every
    iteration that does not stop drops at least one state, so at most
    ``k + 1`` policy evaluations are made.

    Improvement: the look-ahead check in step 2 makes every step a policy
    improvement step (Howard's policy-improvement theorem; for a finite
    horizon by induction on ``h``, using that the value recursion is
    monotone), so the final ``V`` is elementwise ``>=`` the value of
    marketing to every state.  Without the check the plain "negative value"
    rule can *lower* values, e.g. when not marketing a state sends its
    customers somewhere worse; with the check such a state keeps its spend
    even though its value is negative.  The final policy is not guaranteed
    to be the optimal stationary policy (states are only ever switched off).
    """
    P_spend = _check_transition_matrix(P_spend, "P_spend")
    n_states = P_spend.shape[0]
    P_no_spend = _check_transition_matrix(P_no_spend, "P_no_spend")
    if P_no_spend.shape != P_spend.shape:
        raise ValueError(f"P_no_spend must have the shape of P_spend {P_spend.shape}, got {P_no_spend.shape}")
    R_spend = _check_rewards(R_spend, n_states, "R_spend")
    R_no_spend = _check_rewards(R_no_spend, n_states, "R_no_spend")
    delta = 1.0 / (1.0 + _check_discount(discount))
    horizon = _check_horizon(horizon)
    timing = _check_timing(timing)

    marketed = np.ones(n_states, dtype=bool)
    for _ in range(n_states + 1):
        value, dropping_helps = _evaluate_with_lookahead(
            marketed, P_spend, R_spend, P_no_spend, R_no_spend, delta, horizon, timing
        )
        drop = marketed & (value < 0) & dropping_helps
        if not np.any(drop):
            break
        marketed &= ~drop
    return value, marketed
