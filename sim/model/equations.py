r"""The lifecycle model's equations: one set, shared by every engine.

Each equation is a small numba-compiled function of scalars. The cohort core calls them
inside its kernels; the SimPy agent engine and the NumPy reference call the same
functions (the NumPy reference through ``.py_func`` on arrays, which works because the
bodies use only arithmetic and NumPy ufuncs). There is no second copy of the model.

Every ``exp`` below is :func:`sim.model.exponential.exp`: ``np.exp`` on arrays and, inside the
kernels, a branch-free twin of glibc's ``exp`` (same bits) that LLVM can vectorise.

Notation (per customer *i*, period *t* = 0, 1, ..., one period = ``period_months``):
stage :math:`k_t` (0 exploration, 1 formation, 2 stability, 3 decline, 4 ended), segment
:math:`g` (0 relationship, 1 transactional), wallet :math:`W`, retention spend
:math:`a_t`, expectation :math:`Q0_t`, perceived performance :math:`Q1_t`, satisfaction
:math:`s_t \in [0, 1]`, loyalty :math:`\ell_t \in [0, 1]`, tenure :math:`\tau = t`.

(M1) Care response, diminishing returns and over-contact annoyance (seed 004):
     :math:`g(a) = G\,(1 - e^{-a/c}) - \eta\,(a/c)^2`. It rises, peaks at the spend that
     solves :math:`(G/c) e^{-a/c} = 2\eta a / c^2`, and falls ("too frequent care annoys").
(M2) Perceived performance: :math:`Q1_t = b_g + f_i + e_{k_t}\,g(a_t) + \sigma\,\varepsilon_t`,
     with base performance :math:`b_g`, the customer's persistent fit
     :math:`f_i \sim N(0, \sigma_f^2)`, stage effectiveness :math:`e_k` ("each stage has
     its own drivers") and noise :math:`\varepsilon_t \sim N(0, 1)`.
(M3) Disconfirmation :math:`d_t = Q1_t - Q0_t`; satisfaction type: dissatisfied if
     :math:`d_t < -\tau_s`, highly satisfied if :math:`d_t > \tau_s`, else satisfied.
(M4) Satisfaction: :math:`s_t = m\,s_{t-1} + (1-m)\,\Lambda(d_t/\kappa)`, :math:`\Lambda`
     the logistic function, :math:`s_{-1} = 1/2`.
(M5) Expectations adapt to experience (bought satisfaction fades unless spend keeps
     rising): :math:`Q0_{t+1} = Q0_t + \alpha\,[(1-w)\,Q1_t + w\,Q0_{init} - Q0_t]`, with
     anchor weight :math:`w` (``w = 0``: full adaptation).
(M6) Loyalty: the Jones & Sasser curve, piecewise linear through (0, 0),
     (:math:`s_D`, :math:`\ell_L`), (:math:`s_A`, :math:`\ell_H`), (1, 1): zones of
     defection, indifference (flat: the satisfaction trap) and affection.
(M7) Transitions (no skipping). With neutral loyalty :math:`\ell^* = \ell(1/2)` and base
     probability :math:`p_0`:
     forward moves (exploration→formation, formation→stability, decline→formation
     win-back): :math:`\mathrm{odds}(p) = \mathrm{odds}(p_0)\,e^{\beta_F(\ell - \ell^*)}`;
     exits (exploration→ended, formation→decline, stability→decline, decline→ended):
     :math:`\mathrm{odds}(p) = \mathrm{odds}(p_0)\,\omega_g\,e^{-\beta_X(\ell - \ell^*)}`
     with segment odds :math:`\omega_g`. If the two competing probabilities of a stage sum
     above 1 they are scaled down proportionally. One uniform draw decides the move.
(M8) Optional Beta-heterogeneous churn (``population.churn_propensity``): the customer's
     propensity :math:`\theta_i \sim \mathrm{Beta}(a, b)` ends the relationship with
     probability :math:`\theta_i` each period, after the period's cash flows and before
     (M7); so with stage exits at 0 survival is shifted-beta-geometric.

Customer attributes, drawn once: (A1) segment from a uniform, (A2) lognormal wallet,
(A3) ABC tier from the wallet's quantiles, the fit :math:`f_i = \sigma_f z`, and
:math:`\theta_i` when (M8) is on.

Cash flows of period *t* (stage :math:`k = k_t`, the stage at the start of the period),
received at the END of the period and discounted by :math:`\delta^{t+1}`,
:math:`\delta = 1/(1+r)`, with ramp :math:`\rho(\tau) = 1 - e^{-\tau/T}` (seed 004's six parts):

(C1/C2) purchases net of the new-customer cost to serve,
     :math:`W\,\mathrm{sow}_t\,\mathrm{margin}_k - c_0`, with
     :math:`\mathrm{sow}_t = \min(1, \mathrm{sow}_k (1 + \gamma \rho(\tau)))`; counted as
     CLV1 (initial purchase) in period 0 and CLV2 (repeat purchases, growing share of
     wallet) afterwards;
(C3) cross-selling:
     :math:`W\,x_k\,\rho(\tau)\,m_x`;
(C4) lower cost to serve:
     :math:`c_0 (1 - \phi)\,\rho(\tau)`;
(C5) referrals (expected value of word of mouth):
     :math:`\pi_{talk}\,n_{type}\,v_{type}\,V_{ref}` (negative when dissatisfied);
(C6) price premium of loyal customers:
     :math:`W\,\mathrm{sow}_t\,\theta_g\,\max(0, \ell_t - \ell_H)/(1 - \ell_H)` (earned
     only in the zone of affection);

minus retention spend :math:`a_t` (discounted like the parts) and the acquisition cost,
paid at period 0 and not discounted. CLV = CLV1 + ... + CLV6 - spend - acquisition, summed
in exactly that order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from sim.model.exponential import exp, exp_moderate
from sim.model.names import DECLINE, ENDED, EXPLORATION, FORMATION, STABILITY

__all__ = [
    "customer_segment",
    "customer_wallet",
    "value_tier",
    "propensity_ends_relationship",
    "care_response",
    "best_care_spend",
    "perceived_performance",
    "satisfaction_type",
    "update_satisfaction",
    "update_expectation",
    "loyalty_from_satisfaction",
    "adjusted_probability",
    "transition_probabilities",
    "exit_log_odds",
    "competing_probabilities",
    "next_stage",
    "period_cash_flows",
    "tenure_ramp",
    "ramped_cash_flows",
    "period_profit",
    "customer_clv",
    "lifecycle_pattern",
]


# --------------------------------------------------------------------------- equations


def select(condition, if_true, if_false):
    """``np.where`` that stays a scalar inside jitted code.

    On NumPy arrays (the vectorised reference) this is ``np.where``; inside numba kernels,
    where the model runs on scalars, it compiles to a plain conditional expression.
    """
    return np.where(condition, if_true, if_false)


@overload(select)
def _select_scalar(condition, if_true, if_false):
    if isinstance(condition, types.Boolean):

        def impl(condition, if_true, if_false):
            return if_true if condition else if_false

        return impl
    if isinstance(condition, types.Array):
        # an equation compiled for arrays: the reference calls an equation's .py_func on arrays,
        # and that calls the next equation (a dispatcher) with them

        def impl(condition, if_true, if_false):
            return np.where(condition, if_true, if_false)

        return impl
    return None


@njit(cache=True, error_model="numpy", forceinline=True)
def customer_segment(uniform, relationship_share):
    """(A1) Segment from one uniform draw: 0 relationship if ``u < relationship_share``, else 1."""
    return select(uniform < relationship_share, 0, 1)


@njit(cache=True, error_model="numpy", forceinline=True)
def customer_wallet(normal, median, sigma):
    """(A2) Lognormal wallet per period: ``median * exp(sigma * z)``."""
    return median * exp(sigma * normal)


@njit(cache=True, error_model="numpy", forceinline=True)
def value_tier(wallet, tier_a_wallet, tier_b_wallet):
    """(A3) ABC value tier from the predicted value (wallet): 0 = A (top 5 %), 1 = B (next
    15 %), 2 = C; the thresholds are the wallet distribution's 95 % and 80 % quantiles.
    """
    return select(wallet >= tier_a_wallet, 0, select(wallet >= tier_b_wallet, 1, 2))


@njit(cache=True, error_model="numpy", forceinline=True)
def propensity_ends_relationship(propensity, uniform):
    """(M8) Beta-heterogeneous churn: the relationship ends this period if ``u < theta``
    (Fader & Hardie 2007); ``theta = 0`` never ends it.
    """
    return uniform < propensity


@njit(cache=True, error_model="numpy", forceinline=True)
def care_response(spend, gain, scale, annoyance):
    """(M1) Gain in perceived performance from retention spend ``spend`` per period:
    ``gain * (1 - exp(-spend/scale)) - annoyance * (spend/scale)**2``. Jit-compiled.
    """
    ratio = spend / scale
    return gain * (1.0 - exp(-ratio)) - annoyance * ratio * ratio


def best_care_spend(gain: float, scale: float, annoyance: float) -> float:
    """The spend that maximises (M1): the root of ``(gain/scale) e^{-a/scale} = 2 annoyance a / scale^2``.

    With ``annoyance == 0`` the response never turns down; the spend reaching 99 % of the
    gain, ``scale * ln(100)``, is returned instead.
    """
    if gain <= 0.0:
        return 0.0
    if annoyance <= 0.0:
        return scale * math.log(100.0)
    from scipy.optimize import brentq

    # in units of x = a/scale: gain * e^{-x} = 2 annoyance x
    upper = gain / (2.0 * annoyance) + 1.0  # e^{-x} <= 1 puts the root below gain / (2 annoyance)
    if not upper <= 1e6:
        # tiny annoyance: that bracket is astronomically wide (or infinite) and brentq would not
        # converge; the root also lies below max(1, ln(gain / (2 annoyance))), since f is
        # decreasing and f(max(1, L)) <= 0 there. Computed with logs, so it cannot overflow.
        upper = max(1.0, math.log(gain) - math.log(2.0) - math.log(annoyance))
    root = brentq(lambda x: gain * math.exp(-x) - 2.0 * annoyance * x, 0.0, upper)
    return float(root * scale)


@njit(cache=True, error_model="numpy", forceinline=True)
def perceived_performance(base, fit, effectiveness, care, noise_sd, noise):
    """(M2) ``Q1 = base + fit + effectiveness * care + noise_sd * noise``. Jit-compiled."""
    return base + fit + effectiveness * care + noise_sd * noise


@njit(cache=True, error_model="numpy", forceinline=True)
def satisfaction_type(disconfirmation, tolerance):
    """(M3) 0 dissatisfied (d < -tolerance), 2 highly satisfied (d > tolerance), else 1."""
    return select(disconfirmation < -tolerance, 0, select(disconfirmation > tolerance, 2, 1))


@njit(cache=True, error_model="numpy", forceinline=True)
def update_satisfaction(previous, disconfirmation, memory, scale):
    """(M4) ``s_t = memory * s_{t-1} + (1 - memory) / (1 + exp(-d/scale))``. Jit-compiled.

    The logistic ``Λ(x)``, ``x = d/scale``, is evaluated from ``e = exp(-|x|)``, which lies in
    [0, 1] and cannot overflow: ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` below, so
    ``x = ±inf`` gives exactly 1 and 0. (One ``exp`` instead of ``tanh``: glibc's ``tanh``
    goes through ``expm1`` and cost about a third of the kernel's time; see
    ``benchmarks/NOTES.md``. Values agree with the ``tanh`` form to a few ulp.)
    """
    x = disconfirmation / scale
    e = exp(-np.abs(x))
    q = 1.0 / (1.0 + e)
    return memory * previous + (1.0 - memory) * select(x >= 0.0, q, e * q)


@njit(cache=True, error_model="numpy", forceinline=True)
def update_expectation(expectation, performance, initial, adaptation, anchor):
    """(M5) ``Q0 + adaptation * ((1 - anchor) * Q1 + anchor * Q0_init - Q0)``. Jit-compiled."""
    return expectation + adaptation * ((1.0 - anchor) * performance + anchor * initial - expectation)


@njit(cache=True, error_model="numpy", forceinline=True)
def loyalty_from_satisfaction(satisfaction, defection, affection, low, high):
    """(M6) The satisfaction→loyalty curve (Jones & Sasser 1995 zones), piecewise linear
    through (0, 0), (defection, low), (affection, high), (1, 1). Jit-compiled.
    """
    s = np.minimum(np.maximum(satisfaction, 0.0), 1.0)
    in_defection = s < defection
    in_indifference = s < affection
    # the zone's line: start + rise / run, with one division (the zone's terms are selected
    # first; each zone's value is computed exactly as written out: low*s/defection,
    # low + (high-low)(s-defection)/(affection-defection), high + (1-high)(s-affection)/(1-affection))
    rise = select(
        in_defection,
        low * s,
        select(in_indifference, (high - low) * (s - defection), (1.0 - high) * (s - affection)),
    )
    run = select(in_defection, defection, select(in_indifference, affection - defection, 1.0 - affection))
    slope_part = rise / run
    return select(in_defection, slope_part, select(in_indifference, low + slope_part, high + slope_part))


@njit(cache=True, error_model="numpy", forceinline=True)
def adjusted_probability(base, log_odds_shift):
    """(M7) ``p`` with ``odds(p) = odds(base) * exp(log_odds_shift)``; 0 and 1 stay fixed.

    Written as ``base / (base + (1 - base) * exp(-shift))`` so that no odds is ever
    infinite; the shift is clipped to [-60, 60] so ``exp`` cannot overflow (and needs none of
    its special cases: :func:`sim.model.exponential.exp_moderate`). Jit-compiled.
    """
    shift = np.minimum(np.maximum(log_odds_shift, -60.0), 60.0)
    return base / (base + (1.0 - base) * exp_moderate(-shift))


@njit(cache=True, error_model="numpy", forceinline=True)
def transition_probabilities(
    stage, loyalty, neutral_loyalty, base_forward, base_exit, beta_forward, beta_exit, exit_odds
):
    """(M7) The probabilities ``(forward, exit)`` of the two competing moves out of ``stage``.

    ``base_forward``/``base_exit`` are the stage's base probabilities (for decline: win-back
    and churn). Forward moves gain ``beta_forward * (loyalty - neutral)`` log-odds, exits
    lose ``beta_exit * (loyalty - neutral)`` and gain ``log(exit_odds)``. A sum above 1 is
    scaled down to 1. Jit-compiled. The same as :func:`competing_probabilities` of the gap
    ``loyalty - neutral_loyalty`` and :func:`exit_log_odds` ``(exit_odds)``.
    """
    return competing_probabilities(
        loyalty - neutral_loyalty, base_forward, base_exit, beta_forward, beta_exit, exit_log_odds(exit_odds)
    )


@njit(cache=True, error_model="numpy", forceinline=True)
def exit_log_odds(exit_odds):
    """(M7) The log-odds that a segment's exit odds add to every exit: ``log(exit_odds)``, the
    odds floored at 1e-300. A constant of the segment, so the cohort core takes it once per
    customer. Jit-compiled.
    """
    return np.log(np.maximum(exit_odds, 1e-300))


@njit(cache=True, error_model="numpy", forceinline=True)
def competing_probabilities(gap, base_forward, base_exit, beta_forward, beta_exit, log_exit_odds):
    """(M7) :func:`transition_probabilities` given the loyalty gap ``loyalty - neutral_loyalty``
    and the segment's :func:`exit_log_odds`: ``(forward, exit)``, scaled down to sum to 1 when
    they sum above 1. Jit-compiled.
    """
    forward = adjusted_probability(base_forward, beta_forward * gap)
    leave = adjusted_probability(base_exit, log_exit_odds - beta_exit * gap)
    total = forward + leave
    scale = select(total > 1.0, 1.0 / np.maximum(total, 1.0), 1.0)
    return forward * scale, leave * scale


@njit(cache=True, error_model="numpy", forceinline=True)
def next_stage(stage, forward, leave, uniform):
    """(M7) The stage after one period, from one uniform draw: ``u < forward`` moves forward
    (decline's forward move is win-back to formation), ``u < forward + leave`` exits
    (exploration and decline exit to ENDED, formation and stability to DECLINE).
    """
    forward_to = select(stage == DECLINE, FORMATION, select(stage == STABILITY, STABILITY, stage + 1))
    exit_to = select((stage == EXPLORATION) | (stage == DECLINE), ENDED, DECLINE)
    return select(uniform < forward, forward_to, select(uniform < forward + leave, exit_to, stage))


@njit(cache=True, error_model="numpy", forceinline=True)
def period_cash_flows(
    wallet,
    tenure,
    sow_stage,
    margin_stage,
    cross_sell_stage,
    referral_of_type,
    premium_segment,
    loyalty,
    indifference_high,
    sow_growth,
    tenure_scale,
    cross_sell_margin,
    cost_to_serve,
    cost_floor,
):
    """(C1-C6) One period's undiscounted cash-flow parts for an active customer.

    Returns ``(purchases, cross_sell, cost_saving, referral, premium)``: purchases net of
    the new-customer cost to serve (CLV1 in period 0, CLV2 later), CLV3, CLV4, CLV5, CLV6.
    Jit-compiled; also works on NumPy arrays through ``.py_func``. The same as
    :func:`ramped_cash_flows` at ``ramp = tenure_ramp(tenure, tenure_scale)``.
    """
    return ramped_cash_flows(
        wallet,
        tenure_ramp(tenure, tenure_scale),
        sow_stage,
        margin_stage,
        cross_sell_stage,
        referral_of_type,
        premium_segment,
        loyalty,
        indifference_high,
        sow_growth,
        cross_sell_margin,
        cost_to_serve,
        cost_floor,
    )


@njit(cache=True, error_model="numpy", forceinline=True)
def tenure_ramp(tenure, tenure_scale):
    """The tenure ramp ``rho(tau) = 1 - exp(-tau / T)`` of (C2)-(C4). Jit-compiled.

    It depends on the period only, so the cohort core tabulates it once per chunk
    (with this function) instead of calling ``exp`` every customer-period.
    """
    return 1.0 - exp(-tenure / tenure_scale)


@njit(cache=True, error_model="numpy", forceinline=True)
def ramped_cash_flows(
    wallet,
    ramp,
    sow_stage,
    margin_stage,
    cross_sell_stage,
    referral_of_type,
    premium_segment,
    loyalty,
    indifference_high,
    sow_growth,
    cross_sell_margin,
    cost_to_serve,
    cost_floor,
):
    """(C1-C6) :func:`period_cash_flows` given the tenure ramp ``ramp = tenure_ramp(tenure,
    tenure_scale)`` instead of the tenure. Jit-compiled; works on NumPy arrays through
    ``.py_func``.
    """
    sow = np.minimum(1.0, sow_stage * (1.0 + sow_growth * ramp))
    purchases = wallet * sow * margin_stage - cost_to_serve
    cross_sell = wallet * cross_sell_stage * ramp * cross_sell_margin
    cost_saving = cost_to_serve * (1.0 - cost_floor) * ramp
    affection = np.maximum(loyalty - indifference_high, 0.0) / np.maximum(1.0 - indifference_high, 1e-12)
    premium = wallet * sow * premium_segment * affection
    return purchases, cross_sell, cost_saving, referral_of_type, premium


@njit(cache=True, error_model="numpy", forceinline=True)
def period_profit(purchases, cross_sell, cost_saving, referral_value, premium, spend):
    """Undiscounted profit of one customer-period: the parts (C1/C2)-(C6) less the retention
    spend, summed in this order (the per-stage and per-period profit of every engine).
    Jit-compiled; works on NumPy arrays through ``.py_func``.
    """
    return purchases + cross_sell + cost_saving + referral_value + premium - spend


@njit(cache=True, error_model="numpy", forceinline=True)
def customer_clv(clv1, clv2, clv3, clv4, clv5, clv6, spend, acquisition):
    """A customer's lifetime value: CLV1 + ... + CLV6 - discounted spend - acquisition cost,
    summed in exactly this order so that every engine gives the same value bit for bit.
    Jit-compiled; works on NumPy arrays through ``.py_func``.
    """
    return clv1 + clv2 + clv3 + clv4 + clv5 + clv6 - spend - acquisition


@njit(cache=True, error_model="numpy", forceinline=True)
def lifecycle_pattern(highest_stage, end_period, start_tenure, long_term):
    """The lifecycle pattern 0..3 (I..IV) of a relationship from the highest stage it reached
    and when it ended: I ended in exploration, II in formation (the highest stage itself);
    III reached stability and ended before ``long_term`` periods of tenure; IV reached
    stability and lasted (still active at the horizon, ``end_period < 0``, or ended at a tenure
    of at least ``long_term``). Tenure at the end is ``start_tenure + end_period``.
    Jit-compiled; works on NumPy arrays through ``.py_func``.
    """
    left_early = (end_period >= 0) & (start_tenure + end_period < long_term)
    return select(highest_stage < STABILITY, highest_stage, select(left_early, 2, 3))
