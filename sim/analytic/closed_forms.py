"""Classic closed-form customer-lifetime-value (CLV) models.

Pure NumPy/SciPy reference implementations of four textbook models, used to
check the simulator against known analytic answers:

* Pfeifer & Carraway (2000) customer-migration (Markov chain) model:
  :func:`markov_clv`, :func:`recency_chain`, :func:`prune_negative_states`.
* Gupta & Lehmann (2003, 2005) retention-based margin multiple:
  :func:`margin_multiple`.
* Fader & Hardie (2007, 2010) shifted-beta-geometric (sBG) contractual
  retention model: :class:`SBGFit`, :func:`sbg_survival`,
  :func:`sbg_retention`, :func:`sbg_churn_probability`, :func:`sbg_fit`,
  :func:`sbg_del`, :func:`sbg_derl`.
* Blattberg & Deighton (1996) customer-equity test: :func:`bd_response_rate`,
  :func:`bd_calibrate`, :func:`bd_customer_equity`, :func:`bd_optimal_spend`.

Conventions shared by every function
------------------------------------
* Time is measured in whole periods.  Period ``t`` (``t = 0, 1, ...``) runs
  from time ``t`` to time ``t + 1``; "now" is time 0.
* ``discount`` is always a per-period discount *rate* ``d >= 0``; the
  per-period discount *factor* is ``delta = 1 / (1 + d)``.  An amount received
  at time ``t`` is worth ``delta**t`` now.
* Each function's docstring states exactly when cash flows are received; the
  two conventions in common use differ by one period of discounting (and, for
  retention models, by one period of survival).
* Invalid arguments raise :class:`ValueError` with a message naming the
  argument, the offending value and what is allowed.

References
----------
Blattberg, R. C., & Deighton, J. (1996). Manage marketing by the customer
equity test. Harvard Business Review, 74(4), 136-144.

Fader, P. S., & Hardie, B. G. S. (2007). How to project customer retention.
Journal of Interactive Marketing, 21(1), 76-90.

Fader, P. S., & Hardie, B. G. S. (2010). Customer-base valuation in a
contractual setting: The perils of ignoring heterogeneity. Marketing Science,
29(1), 85-93.

Gupta, S., & Lehmann, D. R. (2003). Customers as assets. Journal of
Interactive Marketing, 17(1), 9-24.

Gupta, S., & Lehmann, D. R. (2005). Managing Customers as Investments.
Wharton School Publishing.

Pfeifer, P. E., & Carraway, R. L. (2000). Modeling customer relationships as
Markov chains. Journal of Interactive Marketing, 14(2), 43-55.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

__all__ = [
    # Pfeifer & Carraway (2000) customer migration model
    "markov_clv",
    "recency_chain",
    "prune_negative_states",
    # Gupta & Lehmann (2003, 2005)
    "margin_multiple",
    # Fader & Hardie shifted-beta-geometric model
    "SBGFit",
    "sbg_survival",
    "sbg_retention",
    "sbg_churn_probability",
    "sbg_fit",
    "sbg_del",
    "sbg_derl",
    # Blattberg & Deighton (1996) customer equity
    "BDOptimum",
    "bd_response_rate",
    "bd_calibrate",
    "bd_customer_equity",
    "bd_optimal_spend",
]

_TIMINGS = ("end", "start")
_ROW_SUM_TOLERANCE = 1e-9


# ---------------------------------------------------------------------------
# Input validation helpers
# ---------------------------------------------------------------------------


def _short(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, to keep error messages readable."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _float_array(value, name: str) -> np.ndarray:
    """Convert ``value`` to a float array and require every entry finite."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric, got {_short(value)}") from error
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {_short(value)}")
    return array


def _check_range(
    array: np.ndarray,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ValueError unless every entry of ``array`` lies in the range."""
    bad = np.zeros(array.shape, dtype=bool)
    if low is not None:
        bad |= (array < low) if low_inclusive else (array <= low)
    if high is not None:
        bad |= (array > high) if high_inclusive else (array >= high)
    if np.any(bad):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        allowed = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        offending = array[bad].ravel()[:5].tolist()
        raise ValueError(f"{name} must lie in {allowed}, got {offending} (first offending values)")


def _scalar(value, name: str) -> float:
    """A finite real scalar."""
    array = _float_array(value, name)
    if array.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {array.shape}")
    return float(array)


def _check_discount(discount, name: str = "discount") -> float:
    """A scalar per-period discount rate ``d >= 0``."""
    value = _scalar(discount, name)
    if value < 0:
        raise ValueError(f"{name} must be a discount rate >= 0, got {value!r}")
    return value


def _check_horizon(horizon) -> int | None:
    """``None`` (infinite horizon) or a non-negative integer number of periods."""
    if horizon is None:
        return None
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral):
        raise ValueError(
            f"horizon must be None (infinite horizon) or a non-negative int, got {horizon!r}"
        )
    if horizon < 0:
        raise ValueError(f"horizon must be a non-negative int, got {horizon!r}")
    return int(horizon)


def _check_timing(timing) -> str:
    if not isinstance(timing, str) or timing not in _TIMINGS:
        raise ValueError(f"timing must be one of {_TIMINGS}, got {_short(timing)}")
    return timing


def _check_transition_matrix(P, name: str = "P") -> np.ndarray:
    """A square, row-stochastic matrix (rows sum to 1 within 1e-9)."""
    matrix = _float_array(P, name)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square (k, k) matrix, got shape {matrix.shape}")
    _check_range(matrix, name, 0.0, 1.0)
    row_sums = matrix.sum(axis=1)
    bad_rows = np.flatnonzero(np.abs(row_sums - 1.0) > _ROW_SUM_TOLERANCE)
    if bad_rows.size:
        raise ValueError(
            f"{name} must be row-stochastic (each row sums to 1 within {_ROW_SUM_TOLERANCE}); "
            f"rows {bad_rows[:5].tolist()} sum to {row_sums[bad_rows[:5]].tolist()}"
        )
    return matrix


def _check_rewards(R, n_states: int, name: str = "R") -> np.ndarray:
    rewards = _float_array(R, name)
    if rewards.shape != (n_states,):
        raise ValueError(
            f"{name} must have shape ({n_states},) to match the transition matrix, got shape {rewards.shape}"
        )
    return rewards


def _check_whole_periods(t, name: str, minimum: int) -> np.ndarray:
    """Integer-valued period indices ``>= minimum``, returned as floats."""
    periods = _float_array(t, name)
    if np.any(periods != np.round(periods)):
        raise ValueError(f"{name} must hold whole numbers of periods, got {_short(t)}")
    _check_range(periods, name, float(minimum))
    return periods


def _check_sbg_parameters(alpha, beta) -> tuple[np.ndarray, np.ndarray]:
    a = _float_array(alpha, "alpha")
    b = _float_array(beta, "beta")
    _check_range(a, "alpha", 0.0, low_inclusive=False)
    _check_range(b, "beta", 0.0, low_inclusive=False)
    return a, b


def _scalar_or_array(value: np.ndarray):
    """Return a Python float for 0-d results, the array otherwise."""
    value = np.asarray(value, dtype=float)
    return float(value) if value.ndim == 0 else value


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


# ---------------------------------------------------------------------------
# Gupta & Lehmann (2003, 2005): retention-based margin multiple
# ---------------------------------------------------------------------------


def margin_multiple(retention, discount, horizon=None, timing="end"):
    """Customer lifetime value per unit of per-period margin (Gupta & Lehmann).

    A customer is retained from one period to the next with constant
    probability ``r`` and yields margin ``m`` in every period she is active;
    CLV = ``m * margin_multiple(r, d)``.  With ``q = r / (1 + d)``:

    ``timing="end"`` (Gupta & Lehmann's convention): margins arrive at the
    end of each period from customers retained through it; the first margin
    arrives after one period, there is no initial margin::

        infinite:  sum_{t=1}^{inf} r**t / (1+d)**t = r / (1 + d - r)
        finite H:  sum_{t=1}^{H}   r**t / (1+d)**t = q (1 - q**H) / (1 - q)

    ``timing="start"``: an initial margin is received now (time 0) and one at
    the start of every later period the customer is still active::

        infinite:  sum_{t=0}^{inf} r**t / (1+d)**t = (1 + d) / (1 + d - r)
        finite H:  sum_{t=0}^{H-1} r**t / (1+d)**t = (1 - q**H) / (1 - q)

    The conventions are related by ``end = q * start`` (every horizon), and
    ``start_inf = 1 + end_inf``, ``start_H = 1 + end_{H-1}``.

    Parameters
    ----------
    retention : float or array_like
        Per-period retention probability ``r`` in [0, 1].
    discount : float or array_like
        Per-period discount rate ``d >= 0``; broadcast against ``retention``.
    horizon : int or None, default None
        Number of margins counted (``H``); ``None`` for the infinite horizon,
        which requires ``r < 1 + d`` (i.e. not ``r == 1`` with ``d == 0``).
    timing : {"end", "start"}, default "end"

    Returns
    -------
    float or numpy.ndarray
        The multiple, broadcast over ``retention`` and ``discount`` (a float
        when both are scalars).

    References
    ----------
    Gupta, S., & Lehmann, D. R. (2003). Customers as assets. Journal of
    Interactive Marketing, 17(1), 9-24.
    Gupta, S., & Lehmann, D. R. (2005). Managing Customers as Investments.
    Wharton School Publishing.
    """
    r = _float_array(retention, "retention")
    d = _float_array(discount, "discount")
    _check_range(r, "retention", 0.0, 1.0)
    _check_range(d, "discount", 0.0)
    horizon = _check_horizon(horizon)
    timing = _check_timing(timing)
    try:
        r, d = np.broadcast_arrays(r, d)
    except ValueError as error:
        raise ValueError(
            f"retention (shape {r.shape}) and discount (shape {d.shape}) must broadcast together"
        ) from error

    gap = 1.0 + d - r  # = (1 + d)(1 - q) >= 0
    if horizon is None:
        if np.any(gap <= 0):
            raise ValueError(
                "retention must be < 1 + discount for the infinite horizon "
                "(retention == 1 with discount == 0 never stops paying); use a finite horizon"
            )
        multiple = r / gap if timing == "end" else (1.0 + d) / gap
        return _scalar_or_array(multiple)

    if horizon == 0:
        return _scalar_or_array(np.zeros(r.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.log(r) - np.log1p(d)  # -inf where r == 0
        one_minus_q_to_h = -np.expm1(horizon * log_q)  # 1 - q**H, accurate as q -> 1
        start = np.where(gap > 0, one_minus_q_to_h * (1.0 + d) / gap, float(horizon))
    multiple = start if timing == "start" else (r / (1.0 + d)) * start
    return _scalar_or_array(multiple)


# ---------------------------------------------------------------------------
# Fader & Hardie (2007, 2010): shifted-beta-geometric (sBG) model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SBGFit:
    """Maximum-likelihood fit of the shifted-beta-geometric model to one cohort.

    Each customer's per-period churn probability ``theta`` is drawn from a
    ``Beta(alpha, beta)`` distribution and stays fixed; her lifetime ``T``
    (the period in which she churns, ``T = 1, 2, ...``) is geometric given
    ``theta`` (Fader & Hardie 2007).

    Attributes
    ----------
    alpha, beta : float
        Maximum-likelihood estimates of the beta-distribution parameters.
    loglik : float
        Maximised log-likelihood (natural log, full cohort, no constant
        dropped; see :func:`sbg_fit`).
    n_periods : int
        Number of observed periods ``n`` (``len(survivors) - 1``).
    cohort_size : int
        Size of the cohort at time 0 (``survivors[0]``).
    converged : bool
        True when the optimiser reported success and the estimate is an
        interior point of the search box ``exp(+-20)``.
    """

    alpha: float
    beta: float
    loglik: float
    n_periods: int
    cohort_size: int
    converged: bool


def sbg_survival(alpha, beta, t):
    """sBG survival function ``S(t) = P(T > t) = B(alpha, beta + t) / B(alpha, beta)``.

    ``S(t)`` is the expected fraction of a cohort still active after ``t``
    periods, i.e. that renewed at each of the first ``t`` renewal
    opportunities (Fader & Hardie 2007); ``S(0) = 1``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive parameters of the beta mixing distribution.
    t : int or array_like of int
        Periods ``t = 0, 1, 2, ...``; broadcast against ``alpha`` and ``beta``.

    Returns
    -------
    float or numpy.ndarray
        Computed as ``exp(betaln(alpha, beta + t) - betaln(alpha, beta))``
        for numerical stability.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    periods = _check_whole_periods(t, "t", 0)
    return _scalar_or_array(np.exp(special.betaln(a, b + periods) - special.betaln(a, b)))


def sbg_retention(alpha, beta, t):
    """sBG retention rate ``r_t = P(T > t | T > t - 1) = (beta + t - 1) / (alpha + beta + t - 1)``.

    The fraction of customers active in period ``t - 1`` who renew into
    period ``t`` (Fader & Hardie 2007), ``t = 1, 2, ...``; it rises
    with ``t`` because high-churn customers leave first.  ``S(t)`` is the
    product ``r_1 r_2 ... r_t``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive parameters of the beta mixing distribution.
    t : int or array_like of int
        Periods ``t >= 1``; broadcast against ``alpha`` and ``beta``.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    periods = _check_whole_periods(t, "t", 1)
    return _scalar_or_array((b + periods - 1.0) / (a + b + periods - 1.0))


def sbg_churn_probability(alpha, beta, t):
    """sBG lifetime distribution ``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)``.

    The probability that a newly acquired customer churns in period ``t``,
    i.e. fails to renew at the end of period ``t`` (Fader & Hardie
    2007), ``t = 1, 2, ...``; ``P(T = t) = S(t - 1) - S(t)``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive parameters of the beta mixing distribution.
    t : int or array_like of int
        Periods ``t >= 1``; broadcast against ``alpha`` and ``beta``.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    periods = _check_whole_periods(t, "t", 1)
    return _scalar_or_array(np.exp(special.betaln(a + 1.0, b + periods - 1.0) - special.betaln(a, b)))


def _check_survivors(survivors) -> np.ndarray:
    counts = _float_array(survivors, "survivors")
    if counts.ndim != 1 or counts.size < 2:
        raise ValueError(
            f"survivors must be a 1-d sequence of at least 2 counts (cohort size and one period), got {_short(survivors)}"
        )
    if np.any(counts != np.round(counts)):
        raise ValueError(f"survivors must hold whole numbers of customers, got {_short(survivors)}")
    _check_range(counts, "survivors", 0.0)
    if counts[0] <= 0:
        raise ValueError(f"survivors[0] (the cohort size) must be positive, got {counts[0]:g}")
    if np.any(np.diff(counts) > 0):
        raise ValueError(f"survivors must be non-increasing (customers cannot return), got {_short(survivors)}")
    if counts[-1] == counts[0]:
        raise ValueError(
            f"survivors shows no churn ({_short(survivors)}); the sBG likelihood then increases "
            "without bound and has no maximum"
        )
    return counts


def _sbg_negative_loglik(log_params: np.ndarray, churned: np.ndarray, still_active: float, periods: np.ndarray):
    """Negative log-likelihood and its gradient in (log alpha, log beta)."""
    a, b = np.exp(log_params)
    n = periods[-1]
    log_b_ab = special.betaln(a, b)
    log_churn = special.betaln(a + 1.0, b + periods - 1.0) - log_b_ab
    log_survival = special.betaln(a, b + n) - log_b_ab
    loglik = np.dot(churned, log_churn) + still_active * log_survival

    psi = special.digamma
    psi_ab = psi(a + b)
    d_churn_da = psi(a + 1.0) - psi(a + b + periods) - psi(a) + psi_ab
    d_churn_db = psi(b + periods - 1.0) - psi(a + b + periods) - psi(b) + psi_ab
    d_survival_da = psi_ab - psi(a + b + n)
    d_survival_db = psi(b + n) - psi(a + b + n) - psi(b) + psi_ab
    gradient = np.array(
        [
            a * (np.dot(churned, d_churn_da) + still_active * d_survival_da),
            b * (np.dot(churned, d_churn_db) + still_active * d_survival_db),
        ]
    )
    return -loglik, -gradient


def sbg_fit(survivors) -> SBGFit:
    """Fit the sBG model to one cohort's survivor counts by maximum likelihood.

    Parameters
    ----------
    survivors : array_like of int, shape (n + 1,)
        ``survivors[0]`` is the cohort size at acquisition and
        ``survivors[t]`` the number of customers still active after ``t``
        periods (having renewed ``t`` times); non-negative whole numbers,
        non-increasing, ``n >= 1``, with at least one customer lost.

    Returns
    -------
    SBGFit

    Notes
    -----
    The log-likelihood (Fader & Hardie 2007) is::

        LL(alpha, beta) = sum_{t=1}^{n} (survivors[t-1] - survivors[t]) * log P(T = t)
                          + survivors[n] * log S(n)

    It is maximised over ``(log alpha, log beta)`` with L-BFGS-B and an
    analytic (digamma) gradient, starting from the best point of a coarse
    grid.  A cohort whose churn is exactly homogeneous (constant retention)
    has its supremum at ``alpha, beta -> inf``; the fit then stops at the
    search box and reports ``converged=False``.

    References
    ----------
    Fader, P. S., & Hardie, B. G. S. (2007). How to project customer
    retention. Journal of Interactive Marketing, 21(1), 76-90.
    """
    counts = _check_survivors(survivors)
    n_periods = counts.size - 1
    periods = np.arange(1, n_periods + 1, dtype=float)
    churned = counts[:-1] - counts[1:]
    still_active = counts[-1]
    # Per-customer scaling keeps the objective O(1) for any cohort size.
    scale = 1.0 / float(counts[0])
    args = (churned * scale, still_active * scale, periods)

    grid = np.linspace(-3.0, 4.0, 15)
    start = min(
        ((la, lb) for la in grid for lb in grid),
        key=lambda point: _sbg_negative_loglik(np.array(point), *args)[0],
    )
    log_bound = 20.0
    result = optimize.minimize(
        _sbg_negative_loglik,
        np.array(start),
        args=args,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-log_bound, log_bound)] * 2,
        options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2000},
    )
    interior = bool(np.all(np.abs(result.x) < log_bound - 1e-6))
    alpha, beta = np.exp(result.x)
    loglik = -float(result.fun) * float(counts[0])
    return SBGFit(
        alpha=float(alpha),
        beta=float(beta),
        loglik=loglik,
        n_periods=int(n_periods),
        cohort_size=int(counts[0]),
        converged=bool(result.success) and interior and bool(np.isfinite(loglik)),
    )


def _unit_hyp2f1_series(b: float, c: float, z: float) -> float:
    """``2F1(1, b; c; z) = sum_k (b)_k / (c)_k z**k`` for 0 < b < c, 0 < z < 1, summed directly.

    Term ratios ``z (b + k) / (c + k)`` are below ``z``, so the tail after
    the last summed term ``u_K`` is at most ``u_K z / (1 - z)``; summation
    stops once that bound is below 1e-17 of the total.
    """
    chunk = 4096
    total = 0.0
    log_term = 0.0  # log of the first term of the current chunk
    k0 = 0
    while True:
        k = np.arange(k0, k0 + chunk, dtype=float)
        log_ratio = math.log(z) + np.log1p(-(c - b) / (c + k))
        log_terms = log_term + np.concatenate(([0.0], np.cumsum(log_ratio[:-1])))
        total += float(np.sum(np.exp(log_terms)))
        log_term = float(log_terms[-1] + log_ratio[-1])
        k0 += chunk
        if math.exp(log_term) / (1.0 - z) <= 1e-17 * total:
            return total


def _unit_hyp2f1(b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``2F1(1, b; c; z)`` for 0 < b < c and 0 < z < 1, elementwise.

    Uses :func:`scipy.special.hyp2f1`; where it returns a non-finite value or
    one outside the bounds ``1 <= 2F1 <= 1 / (1 - z)`` (scipy 1.17 returns
    nan/inf in parts of this domain, e.g. ``b > 200`` with ``c - b < 0.1``
    and ``z = 1/1.001``), the series is summed directly instead.
    """
    b, c, z = np.broadcast_arrays(b, c, z)
    value = np.array(special.hyp2f1(1.0, b, c, z), dtype=float)
    suspect = ~np.isfinite(value) | (value < 1.0 - 1e-12) | (value * (1.0 - z) > 1.0 + 1e-12)
    for index in zip(*np.nonzero(suspect)):
        value[index] = _unit_hyp2f1_series(float(b[index]), float(c[index]), float(z[index]))
    return value


def sbg_del(alpha, beta, discount):
    """Discounted expected lifetime of a newly acquired customer (sBG model).

    Fader & Hardie (2010)::

        DEL(d) = sum_{t=0}^{inf} S(t) / (1 + d)**t = 2F1(1, beta; alpha + beta; 1 / (1 + d))

    Convention: one unit is received at the start of each period the
    customer is active, the first at acquisition (time 0, undiscounted,
    ``S(0) = 1``) and the one at time ``t`` only if she renewed ``t`` times.
    Multiply by the per-period margin for the expected CLV of a new customer.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive sBG parameters.
    discount : float or array_like
        Per-period discount rate ``d >= 0``; broadcast against the
        parameters.  For ``d == 0`` the expected lifetime
        ``(alpha + beta - 1) / (alpha - 1)`` is returned, which requires
        ``alpha > 1`` (it is infinite otherwise).

    Notes
    -----
    Computed with :func:`scipy.special.hyp2f1`, falling back to direct
    summation of the hypergeometric series (with a rigorous tail bound)
    where scipy returns a non-finite or out-of-bounds value.  In a scan of
    alpha in [0.01, 1000], beta in [0.01, 5000], d in [0.001, 10] against
    brute-force sums, scipy 1.17's finite values were within 3e-8 relative
    error (within 1e-10 for typical parameters such as alpha, beta ~ 0.5-15,
    d >= 0.01); the same applies to :func:`sbg_derl`.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    d = _float_array(discount, "discount")
    _check_range(d, "discount", 0.0)
    a, b, d = np.broadcast_arrays(a, b, d)
    undiscounted = d == 0
    if np.any(undiscounted & (a <= 1)):
        raise ValueError(
            "discount=0 requires alpha > 1: the undiscounted expected lifetime is infinite for alpha <= 1"
        )
    value = np.empty(a.shape)
    value[undiscounted] = (a[undiscounted] + b[undiscounted] - 1.0) / (a[undiscounted] - 1.0)
    discounted = ~undiscounted
    value[discounted] = _unit_hyp2f1(b[discounted], a[discounted] + b[discounted], 1.0 / (1.0 + d[discounted]))
    return _scalar_or_array(value)


def sbg_derl(alpha, beta, discount, renewals):
    """Discounted expected residual lifetime of a customer who has renewed ``n`` times.

    Fader & Hardie (2010), eq. 6::

        DERL(d | n) = (beta + n) / (alpha + beta + n) * 2F1(1, beta + n + 1; alpha + beta + n + 1; 1 / (1 + d))
                    = sum_{t=n+1}^{inf} [S(t) / S(n)] / (1 + d)**(t - n - 1)

    Convention (read off the series): the customer is active after ``n``
    renewals (``T > n``) and is valued at her next renewal opportunity,
    just before she decides.  The unit paid at that (``n + 1``-th) renewal
    counts with probability ``S(n+1)/S(n)`` and is *not* discounted; the
    unit at the ``(n + 1 + j)``-th renewal is discounted by ``(1 + d)**-j``.
    The unit already paid for the current period is not included.
    Valuing instead at the moment of the ``n``-th renewal (after its payment)
    multiplies this by ``1 / (1 + d)``; in particular
    ``DEL(d) = 1 + DERL(d | 0) / (1 + d)``.

    Parameters
    ----------
    alpha, beta : float or array_like
        Positive sBG parameters.
    discount : float or array_like
        Per-period discount rate ``d >= 0``.  For ``d == 0`` the expected
        residual lifetime ``(beta + n) / (alpha - 1)`` is returned, which
        requires ``alpha > 1``.
    renewals : int or array_like of int
        Number of renewals made so far, ``n >= 0``.  All arguments broadcast.

    References
    ----------
    Fader, P. S., & Hardie, B. G. S. (2010). Customer-base valuation in a
    contractual setting: The perils of ignoring heterogeneity. Marketing
    Science, 29(1), 85-93.
    """
    a, b = _check_sbg_parameters(alpha, beta)
    d = _float_array(discount, "discount")
    _check_range(d, "discount", 0.0)
    n = _check_whole_periods(renewals, "renewals", 0)
    a, b, d, n = np.broadcast_arrays(a, b, d, n)
    undiscounted = d == 0
    if np.any(undiscounted & (a <= 1)):
        raise ValueError(
            "discount=0 requires alpha > 1: the undiscounted expected residual lifetime is infinite for alpha <= 1"
        )
    renewal_probability = (b + n) / (a + b + n)
    value = np.empty(a.shape)
    value[undiscounted] = (b[undiscounted] + n[undiscounted]) / (a[undiscounted] - 1.0)
    discounted = ~undiscounted
    bn = b[discounted] + n[discounted]
    value[discounted] = renewal_probability[discounted] * _unit_hyp2f1(
        bn + 1.0, a[discounted] + bn + 1.0, 1.0 / (1.0 + d[discounted])
    )
    return _scalar_or_array(value)


# ---------------------------------------------------------------------------
# Blattberg & Deighton (1996): customer equity test
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BDOptimum:
    """Equity-maximising spends of the Blattberg & Deighton (1996) model.

    Attributes
    ----------
    acquisition_spend : float
        Acquisition spend per prospect ``A*``.
    retention_spend : float
        Retention spend per customer per period ``R*``.
    equity : float
        Customer equity per prospect at the optimum.
    acquisition_rate, retention_rate : float
        Response rates ``a(A*)`` and ``r(R*)`` at the optimum.
    """

    acquisition_spend: float
    retention_spend: float
    equity: float
    acquisition_rate: float
    retention_rate: float


def _check_response_curve(ceiling, k, ceiling_name: str, k_name: str) -> tuple[np.ndarray, np.ndarray]:
    ceiling = _float_array(ceiling, ceiling_name)
    _check_range(ceiling, ceiling_name, 0.0, 1.0, low_inclusive=False)
    k = _float_array(k, k_name)
    _check_range(k, k_name, 0.0, low_inclusive=False)
    return ceiling, k


def bd_response_rate(ceiling, k, spend):
    """Blattberg & Deighton response curve ``rate = ceiling * (1 - exp(-k * spend))``.

    Used for both the acquisition rate (spend per prospect) and the
    retention rate (spend per customer per period).

    Parameters
    ----------
    ceiling : float or array_like
        Highest attainable rate, in (0, 1].
    k : float or array_like
        Positive response coefficient.
    spend : float or array_like
        Spend ``>= 0``.  All arguments broadcast.
    """
    ceiling, k = _check_response_curve(ceiling, k, "ceiling", "k")
    spend = _float_array(spend, "spend")
    _check_range(spend, "spend", 0.0)
    return _scalar_or_array(ceiling * -np.expm1(-k * spend))


def bd_calibrate(ceiling, spend, observed_rate):
    """Response coefficient ``k`` of a Blattberg & Deighton curve through one observation.

    Solves ``observed_rate = ceiling * (1 - exp(-k * spend))``:
    ``k = -ln(1 - observed_rate / ceiling) / spend``.

    Parameters
    ----------
    ceiling : float or array_like
        Ceiling rate in (0, 1].
    spend : float or array_like
        Current spend, ``> 0``.
    observed_rate : float or array_like
        Rate observed at that spend, ``0 < observed_rate < ceiling``.
    """
    ceiling = _float_array(ceiling, "ceiling")
    _check_range(ceiling, "ceiling", 0.0, 1.0, low_inclusive=False)
    spend = _float_array(spend, "spend")
    _check_range(spend, "spend", 0.0, low_inclusive=False)
    rate = _float_array(observed_rate, "observed_rate")
    _check_range(rate, "observed_rate", 0.0, low_inclusive=False)
    if np.any(rate >= ceiling):
        raise ValueError(
            f"observed_rate must be below ceiling, got observed_rate={rate.tolist()}, ceiling={ceiling.tolist()}"
        )
    return _scalar_or_array(-np.log1p(-rate / ceiling) / spend)


def bd_customer_equity(acq_spend, ret_spend, margin, discount, ceiling_a, k_a, ceiling_r, k_r):
    """Blattberg & Deighton (1996) customer equity per prospect.

    ::

        CE = a m - A + a (m - R / r) * r' / (1 - r'),   r' = r / (1 + d)
           = a m - A + a (m r - R) / (1 + d - r)

    with ``a = ceiling_a (1 - exp(-k_a A))`` and
    ``r = ceiling_r (1 - exp(-k_r R))`` (the second form is the same
    expression without the ``0/0`` at ``R = 0``).

    Timing convention: at time 0 the firm spends ``A`` on a prospect, who
    is acquired with probability ``a`` and yields margin ``m`` at once
    (undiscounted).  In each later period ``t = 1, 2, ...`` the firm spends
    ``R`` on every customer still active at the start of the period (count
    ``a r**(t-1)``) and earns ``m`` from each retained one (count
    ``a r**t``), both discounted by ``(1 + d)**-t``:
    ``a * sum_{t>=1} (m r**t - R r**(t-1)) / (1 + d)**t``.

    Parameters
    ----------
    acq_spend : float or array_like
        Acquisition spend per prospect ``A >= 0``.
    ret_spend : float or array_like
        Retention spend per customer per period ``R >= 0``.
    margin : float or array_like
        Margin per customer per period ``m``.
    discount : float or array_like
        Per-period discount rate ``d >= 0``.
    ceiling_a, k_a : float or array_like
        Acquisition response curve: ceiling in (0, 1], ``k_a > 0``.
    ceiling_r, k_r : float or array_like
        Retention response curve: ceiling in (0, 1], ``k_r > 0``.
        All arguments broadcast.

    Returns
    -------
    float or numpy.ndarray
        Customer equity per prospect.

    References
    ----------
    Blattberg, R. C., & Deighton, J. (1996). Manage marketing by the
    customer equity test. Harvard Business Review, 74(4), 136-144.
    """
    ceiling_a, k_a = _check_response_curve(ceiling_a, k_a, "ceiling_a", "k_a")
    ceiling_r, k_r = _check_response_curve(ceiling_r, k_r, "ceiling_r", "k_r")
    A = _float_array(acq_spend, "acq_spend")
    _check_range(A, "acq_spend", 0.0)
    R = _float_array(ret_spend, "ret_spend")
    _check_range(R, "ret_spend", 0.0)
    m = _float_array(margin, "margin")
    d = _float_array(discount, "discount")
    _check_range(d, "discount", 0.0)
    acquisition = ceiling_a * -np.expm1(-k_a * A)
    retention = ceiling_r * -np.expm1(-k_r * R)
    gap = 1.0 + d - retention
    if np.any(gap <= 0):
        raise ValueError("retention rate must be < 1 + discount (retention 1 with discount 0 never ends)")
    return _scalar_or_array(acquisition * m - A + acquisition * (m * retention - R) / gap)


def bd_optimal_spend(margin, discount, ceiling_a, k_a, ceiling_r, k_r) -> BDOptimum:
    """Acquisition and retention spends that maximise Blattberg & Deighton customer equity.

    Derivation.  Write the equity of :func:`bd_customer_equity` as
    ``CE(A, R) = a(A) * [m + f(R)] - A`` with
    ``f(R) = (m r(R) - R) / (1 + d - r(R))``, the value of the retention
    stream of an acquired customer.  For ``A > 0``, ``a(A) > 0``, so the
    best ``R`` maximises ``f`` whatever ``A`` is: the retention optimum is a
    1-D problem independent of acquisition spend.

    *Retention.*  ``f'(R) = g(R) / (1 + d - r)**2`` with
    ``g(R) = r'(R) (m (1 + d) - R) - (1 + d - r(R))``.  Since
    ``g'(R) = r''(R) (m (1 + d) - R) < 0`` for ``R < m (1 + d)`` and
    ``g(R) < 0`` for ``R >= m (1 + d)``, ``f`` has a unique maximum:
    ``R* = 0`` if ``g(0) = (1 + d)(ceiling_r k_r m - 1) <= 0``, otherwise
    the root of ``g`` in ``(0, m (1 + d))``, found with
    :func:`scipy.optimize.brentq`.

    *Acquisition.*  With ``v = m + f(R*)`` (value of an acquired customer),
    ``a(A) v - A`` is concave in ``A``; its maximiser is
    ``A* = ln(ceiling_a k_a v) / k_a`` when ``ceiling_a k_a v > 1``, else
    ``A* = 0``.

    Parameters
    ----------
    margin : float
        Margin per customer per period ``m``.
    discount : float
        Per-period discount rate ``d >= 0``.
    ceiling_a, k_a, ceiling_r, k_r : float
        Response-curve parameters, as in :func:`bd_customer_equity`.

    Returns
    -------
    BDOptimum
    """
    m = _scalar(margin, "margin")
    d = _check_discount(discount)
    c_a, k_a, c_r, k_r = (
        _scalar(value, name)
        for name, value in (("ceiling_a", ceiling_a), ("k_a", k_a), ("ceiling_r", ceiling_r), ("k_r", k_r))
    )
    _check_response_curve(c_a, k_a, "ceiling_a", "k_a")
    _check_response_curve(c_r, k_r, "ceiling_r", "k_r")

    def retention_rate(R: float) -> float:
        return c_r * -math.expm1(-k_r * R)

    def first_order_condition(R: float) -> float:  # g(R), same sign as f'(R)
        slope = c_r * k_r * math.exp(-k_r * R)
        return slope * (m * (1.0 + d) - R) - (1.0 + d - retention_rate(R))

    if c_r * k_r * m <= 1.0:
        R_star = 0.0
    else:
        R_star = optimize.brentq(first_order_condition, 0.0, m * (1.0 + d), xtol=1e-14, rtol=4 * np.finfo(float).eps)
    r_star = retention_rate(R_star)
    customer_value = m + (m * r_star - R_star) / (1.0 + d - r_star)

    if c_a * k_a * customer_value > 1.0:
        A_star = math.log(c_a * k_a * customer_value) / k_a
    else:
        A_star = 0.0
    a_star = c_a * -math.expm1(-k_a * A_star)
    equity = a_star * customer_value - A_star
    return BDOptimum(
        acquisition_spend=A_star,
        retention_spend=R_star,
        equity=equity,
        acquisition_rate=a_star,
        retention_rate=r_star,
    )


# The lifecycle model's own chain (Markov-reducible setting), built from a config.
from sim.analytic.lifecycle_chain import (  # noqa: E402  (placed last: it uses markov_clv above)
    LIFECYCLE_STATES,
    lifecycle_chain,
    lifecycle_markov_clv,
    markov_reducible_problems,
)

__all__ += ["LIFECYCLE_STATES", "lifecycle_chain", "lifecycle_markov_clv", "markov_reducible_problems"]
