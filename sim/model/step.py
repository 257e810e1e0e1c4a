r"""The period's accounting, written once for every engine (``docs/model.md`` §5, §6).

The cohort core (:mod:`sim.engines.core`), the agent engine (:mod:`sim.engines.market`) and
the NumPy reference (:mod:`sim.engines.reference`) all close a customer's period with
:func:`account_period`: the period's cash flows (C1)-(C6), received at the end of the period
and so discounted by one more period (:math:`\delta^{t+1}`), added to the customer's
discounted :class:`Accounts`, and the undiscounted profit of the period. They also draw a
customer's attributes with :func:`customer_attributes`, from the customer's own stream.

Every function is numba-compiled and takes scalars (the core and the agent engine call it
per customer); the bodies use only arithmetic, NumPy ufuncs and
:func:`sim.model.equations.select`, so the reference calls the same functions on arrays of
customers through ``.py_func``. :class:`Accounts` and :class:`CashParameters` are named
tuples: inside a kernel they live in registers, so the named fields cost nothing.
"""

from __future__ import annotations

from collections import namedtuple

from numba import njit

from sim.model.arrays import (
    S_CHURN_ALPHA,
    S_CHURN_BETA,
    S_COST_FLOOR,
    S_COST_TO_SERVE,
    S_CROSS_SELL_MARGIN,
    S_DISCOUNT_FACTOR,
    S_FIT_SD,
    S_INDIFFERENCE_HIGH,
    S_RELATIONSHIP_SHARE,
    S_SOW_GROWTH,
    S_TIER_A_WALLET,
    S_TIER_B_WALLET,
    S_WALLET_MEDIAN,
    S_WALLET_SIGMA,
)
from sim.model.equations import (
    customer_segment,
    customer_wallet,
    period_profit,
    ramped_cash_flows,
    select,
    value_tier,
)
from sim.model.streams import COMPONENT_ATTRIBUTES, next_beta, next_normal, next_uniform, seed_stream

__all__ = [
    "Accounts",
    "CashParameters",
    "opening_accounts",
    "cash_parameters",
    "account_period",
    "customer_attributes",
]

#: A customer's discounted accounts so far: the discount factor of the last period closed
#: (``delta**(t+1)`` after period ``t``; 1 before the first), the present values of the parts
#: CLV1 ... CLV6 and of the retention spend.
Accounts = namedtuple("Accounts", ("discount", "clv1", "clv2", "clv3", "clv4", "clv5", "clv6", "spend"))

#: The constants of (C1)-(C6) and the per-period discount factor, taken from the model's
#: scalars once per kernel call (:func:`cash_parameters`).
CashParameters = namedtuple(
    "CashParameters",
    (
        "indifference_high",
        "sow_growth",
        "cross_sell_margin",
        "cost_to_serve",
        "cost_floor",
        "discount_factor",
    ),
)


@njit(cache=True, error_model="numpy", forceinline=True)
def opening_accounts(zero):
    """The accounts of a customer before her first period: discount factor 1, every part 0.

    ``zero`` is ``0.0`` for one customer or an array of zeros for many (the reference).
    Jit-compiled.
    """
    return Accounts(
        zero + 1.0, zero + 0.0, zero + 0.0, zero + 0.0, zero + 0.0, zero + 0.0, zero + 0.0, zero + 0.0
    )


@njit(cache=True, error_model="numpy", forceinline=True)
def cash_parameters(scalars):
    """The :class:`CashParameters` of the model's scalar vector
    (:class:`sim.model.arrays.ModelArrays`). Jit-compiled.
    """
    return CashParameters(
        scalars[S_INDIFFERENCE_HIGH],
        scalars[S_SOW_GROWTH],
        scalars[S_CROSS_SELL_MARGIN],
        scalars[S_COST_TO_SERVE],
        scalars[S_COST_FLOOR],
        scalars[S_DISCOUNT_FACTOR],
    )


@njit(cache=True, error_model="numpy", forceinline=True)
def account_period(
    accounts,
    parameters,
    first_period,
    wallet,
    ramp,
    sow_stage,
    margin_stage,
    cross_sell_stage,
    referral_value,
    premium_rate,
    loyalty,
    spend,
    purchase_factor,
):
    r"""Close one period of one customer: (C1)-(C6), discounting and accumulation.

    The period's cash-flow parts come from :func:`sim.model.equations.ramped_cash_flows`
    (the purchases scaled by ``purchase_factor``: 1 in the cohort core, the realised over
    the expected purchases under the agent engine's event timing); they are received at
    the END of the period, so the discount factor grows by one period first,
    :math:`\delta^{t+1} = \delta^{t}\cdot\delta`, and every part and the spend are added at
    that factor. The purchases are CLV1 in the customer's first period
    (``first_period``: tenure 0) and CLV2 afterwards.

    Parameters
    ----------
    accounts : Accounts
        The customer's accounts before the period (:func:`opening_accounts` at first).
    parameters : CashParameters
        :func:`cash_parameters` of the model.
    first_period : bool
        Whether this is the customer's first period (tenure 0).
    wallet, ramp : float
        The customer's wallet and the tenure ramp :math:`\rho(\tau)` of the period.
    sow_stage, margin_stage, cross_sell_stage : float
        The share of wallet, margin and cross-sell share of the customer's stage.
    referral_value : float
        The expected referral value of the period's satisfaction type (C5); 0 when the
        referrals are simulated as customers.
    premium_rate : float
        The price premium of the customer's segment (C6).
    loyalty, spend : float
        The period's loyalty (M6) and retention spend.
    purchase_factor : float
        Multiplies the purchase cash flow (C1/C2).

    Returns
    -------
    accounts : Accounts
        The accounts after the period.
    profit : float
        The period's undiscounted profit net of the spend
        (:func:`sim.model.equations.period_profit`).

    Notes
    -----
    Jit-compiled; works on arrays of customers through ``.py_func`` (``first_period`` may
    then be an array too). The bits are those of adding each discounted part in turn, as
    every engine did before this function existed: the part a period does not book is
    added as ``+0.0``, which leaves every number but ``-0.0`` unchanged, and no account
    can be ``-0.0`` (each starts at ``+0.0``).
    """
    purchases, cross_sell, cost_saving, referral, premium = ramped_cash_flows(
        wallet,
        ramp,
        sow_stage,
        margin_stage,
        cross_sell_stage,
        referral_value,
        premium_rate,
        loyalty,
        parameters.indifference_high,
        parameters.sow_growth,
        parameters.cross_sell_margin,
        parameters.cost_to_serve,
        parameters.cost_floor,
    )
    purchases = purchases * purchase_factor
    discount = accounts.discount * parameters.discount_factor
    booked = discount * purchases
    updated = Accounts(
        discount,
        accounts.clv1 + select(first_period, booked, 0.0),
        accounts.clv2 + select(first_period, 0.0, booked),
        accounts.clv3 + discount * cross_sell,
        accounts.clv4 + discount * cost_saving,
        accounts.clv5 + discount * referral,
        accounts.clv6 + discount * premium,
        accounts.spend + discount * spend,
    )
    return updated, period_profit(purchases, cross_sell, cost_saving, referral, premium, spend)


@njit(cache=True, error_model="numpy", forceinline=True)
def customer_attributes(seed, replication, customer, scalars):
    """Segment (0 relationship, 1 transactional), wallet, fit, ABC tier and churn propensity of
    one customer, (A1)-(A3) and (M8) of ``docs/model.md`` §4, from the customer's attribute
    stream (:data:`sim.model.streams.COMPONENT_ATTRIBUTES`): a uniform, two normals, then
    (only when Beta churn is on) the Beta draw. Jit-compiled; every engine draws a
    customer's attributes with it.
    """
    s0, s1 = seed_stream(seed, replication, customer, COMPONENT_ATTRIBUTES)
    u, s0, s1 = next_uniform(s0, s1)
    segment = customer_segment(u, scalars[S_RELATIONSHIP_SHARE])
    z, s0, s1 = next_normal(s0, s1)
    wallet = customer_wallet(z, scalars[S_WALLET_MEDIAN], scalars[S_WALLET_SIGMA])
    z, s0, s1 = next_normal(s0, s1)
    fit = scalars[S_FIT_SD] * z
    tier = value_tier(wallet, scalars[S_TIER_A_WALLET], scalars[S_TIER_B_WALLET])
    propensity = 0.0
    if scalars[S_CHURN_ALPHA] > 0.0:
        propensity, s0, s1 = next_beta(scalars[S_CHURN_ALPHA], scalars[S_CHURN_BETA], s0, s1)
    return segment, wallet, fit, tier, propensity
