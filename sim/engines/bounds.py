"""How fast the cohort core's parts run alone: the bounds ``sim bench`` compares the core with.

:func:`kernel_bounds` times, on one thread, a full group of :data:`sim.engines.lanes.GROUP`
new customers of the given model:

* **arithmetic**: the vector pass :func:`sim.engines.lanes.advance_period` alone -- the
  model's step body, every column active, the random draws already in place (no generator,
  no partial sums, no masked columns, no compaction). Customer-steps per second; no kernel
  that evaluates the same equations in the same lanes can step customers faster.
* **random numbers**: the draw windows alone (:func:`sim.engines.block._draw_window`: one
  normal and one uniform per customer-period from the customer's own xoroshiro128+ streams,
  plus the tenure ramp), in customer-periods per second; each drawn customer-period serves
  one step of every policy, so ``draws * n_policies`` customer-steps per second is the rate
  the generator alone would allow.

A step needs both, one after the other on the same core, so ``1 / (1/arithmetic + 1/rng)``
bounds the core's single-thread rate; what the core loses beyond it goes to the scalar pass
(partial sums, satisfaction bins, stage changes, ends), masked columns and compaction.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from sim.engines.block import _draw_window, _start_group
from sim.engines.core import _care_table, _ramp_table, new_customers
from sim.engines.lanes import (
    C_CHURN,
    C_NOISE,
    C_RAMP,
    C_UNIFORM,
    GROUP,
    N_CUSTOMER_FLOATS,
    N_CUSTOMER_INTS,
    N_POLICY_FLOATS,
    N_POLICY_INTS,
    ROW,
    WINDOW,
    advance_period,
)
from sim.model.arrays import S_ANNOYANCE, S_CARE_GAIN, S_CARE_SCALE, S_CHURN_ALPHA, S_TENURE_SCALE
from sim.model.equations import care_response

__all__ = ["kernel_bounds"]


@njit(cache=True, error_model="numpy")
def _arithmetic_rounds(
    rounds,
    n,
    policy_floats,
    policy_ints,
    start_floats,
    customer_floats,
    customer_ints,
    stage_table,
    referral,
    scalars,
    reactive_drop,
    care_without_spend,
):
    """``rounds`` times: every policy's vector pass over the periods of one draw window, from
    the group's start state (restored each round, so the state stays the model's).
    """
    g = ROW
    n_policies = policy_floats.shape[0]
    for _ in range(rounds):
        policy_floats[:, :] = start_floats
        for window in range(WINDOW):
            for policy in range(n_policies):
                advance_period(
                    n,
                    window,
                    policy_floats[policy],
                    policy_ints[policy],
                    customer_floats,
                    customer_ints,
                    customer_floats[(C_NOISE + window) * g : (C_NOISE + window + 1) * g],
                    customer_floats[(C_UNIFORM + window) * g : (C_UNIFORM + window + 1) * g],
                    customer_floats[(C_CHURN + window) * g : (C_CHURN + window + 1) * g],
                    customer_floats[(C_RAMP + window) * g : (C_RAMP + window + 1) * g],
                    stage_table,
                    referral,
                    scalars,
                    reactive_drop[policy],
                    care_without_spend,
                )
    return rounds * WINDOW * n_policies * n


@njit(cache=True, error_model="numpy")
def _draw_rounds(rounds, n, customer_floats, customer_ints, streams, ramps, tenure_scale, beta_churn):
    """``rounds`` draw windows of ``n`` customers; returns the customer-periods drawn."""
    for _ in range(rounds):
        _draw_window(
            n, 0, WINDOW, 0, customer_floats, customer_ints, streams, ramps, tenure_scale, beta_churn
        )
    return rounds * WINDOW * n


def _rate(run, seconds: float) -> float:
    """Units per second of ``run(rounds) -> units``, doubling ``rounds`` until a call lasts
    ``seconds``; the best of three calls at that size.
    """
    rounds = 1
    run(1)
    while True:
        started = time.perf_counter()
        units = run(rounds)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds or rounds >= 1 << 24:
            break
        rounds *= 2
    best = elapsed
    for _ in range(2):
        started = time.perf_counter()
        run(rounds)
        best = min(best, time.perf_counter() - started)
    return units / best


def kernel_bounds(arrays, tables, seed: int = 0, seconds: float = 0.3) -> dict:
    """Single-thread rates of the core's parts alone on one group of new customers of the
    model (``arrays``, ``tables``: :func:`sim.model.arrays.model_arrays`,
    :func:`sim.model.policies.policy_tables`); see the module docstring.

    Returns
    -------
    dict
        ``arithmetic_steps_per_s``, ``draws_customer_periods_per_s``, ``rng_steps_per_s``
        (``draws * n_policies``) and ``combined_steps_per_s`` (both parts, one after the
        other), all per second of one thread.
    """
    scalars = arrays.scalars
    n_policies = len(tables.names)
    attributes, start = new_customers(arrays, seed, 0, 0, GROUP)
    gain, scale, annoyance = scalars[S_CARE_GAIN], scalars[S_CARE_SCALE], scalars[S_ANNOYANCE]
    care_tables = _care_table(tables.spend, gain, scale, annoyance)
    customer_floats = np.zeros(N_CUSTOMER_FLOATS * ROW)
    customer_ints = np.zeros(N_CUSTOMER_INTS * ROW, dtype=np.int64)
    policy_floats = np.zeros((n_policies, N_POLICY_FLOATS * ROW))
    policy_ints = np.zeros((n_policies, N_POLICY_INTS * ROW), dtype=np.int64)
    streams = np.zeros((GROUP, 6), dtype=np.uint64)
    _start_group(
        0,
        GROUP,
        np.uint64(seed),
        np.uint64(0),
        np.arange(GROUP, dtype=np.int64),
        attributes,
        start,
        arrays.segment,
        tables.spend,
        care_tables,
        customer_floats,
        customer_ints,
        policy_floats,
        policy_ints,
        streams,
    )
    ramps = _ramp_table(WINDOW, scalars[S_TENURE_SCALE])
    beta_churn = bool(scalars[S_CHURN_ALPHA] > 0.0)
    args = (customer_floats, customer_ints, streams, ramps, scalars[S_TENURE_SCALE], beta_churn)
    draws = _rate(lambda rounds: _draw_rounds(rounds, GROUP, *args), seconds)
    start_floats = policy_floats.copy()
    arithmetic = _rate(
        lambda rounds: _arithmetic_rounds(
            rounds,
            GROUP,
            policy_floats,
            policy_ints,
            start_floats,
            customer_floats,
            customer_ints,
            arrays.stage,
            arrays.referral,
            scalars,
            tables.reactive_drop,
            care_response(0.0, gain, scale, annoyance),
        ),
        seconds,
    )
    rng = draws * n_policies
    return {
        "arithmetic_steps_per_s": arithmetic,
        "draws_customer_periods_per_s": draws,
        "rng_steps_per_s": rng,
        "combined_steps_per_s": 1.0 / (1.0 / arithmetic + 1.0 / rng),
    }
