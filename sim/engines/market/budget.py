"""What the firm observes about a customer at its review, the budget's priority rule, and
Poisson counts by inversion (agent engine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from sim.model.names import STAGES

__all__ = [
    "CustomerState",
    "allocate_budget",
    "poisson_count",
]


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What the firm observes about one live customer at its review (docs/model.md §7.2); the
    argument of a user-defined policy function ``fn(state) -> spend``.

    Attributes
    ----------
    customer : int
        Customer id (its random streams' index).
    segment : int
        0 relationship, 1 transactional.
    tier : int
        ABC value tier from the predicted value: 0 (A, top 5 %), 1 (B), 2 (C).
    wallet : float
        The customer's wallet per period (the predicted value behind the tier).
    stage : int
        0 exploration, 1 formation, 2 stability, 3 decline.
    satisfaction : float
        Satisfaction after the last period (1/2 for a new customer), (M4).
    previous_satisfaction : float
        Satisfaction one period before that.
    tenure : int
        Periods since acquisition (0 in the first period).
    period : int
        The calendar period being reviewed.
    """

    customer: int
    segment: int
    tier: int
    wallet: float
    stage: int
    satisfaction: float
    previous_satisfaction: float
    tenure: int
    period: int


def allocate_budget(
    wishes,
    tier,
    stage,
    satisfaction,
    budget: float,
    stage_priority: Iterable[str] = ("decline", "formation", "exploration", "stability"),
) -> np.ndarray:
    """Grant retention-spend wishes within a budget by a fixed priority rule.

    If the wishes add up to at most ``budget`` every wish is granted in full (the same
    array values). Otherwise customers are served in priority order — value tier first
    (A = 0 before B before C), then stage in ``stage_priority`` order, then lowest
    satisfaction first, then lowest position — each getting its full wish until the budget
    runs out; the marginal customer gets the remainder and the rest nothing.

    Parameters
    ----------
    wishes, tier, stage, satisfaction : array_like, shape (n,)
        The policy's spend per customer, ABC tier (0-2), stage (0-3), last satisfaction.
    budget : float
        Money available this period (>= 0).
    stage_priority : sequence of str
        The four stage names, most urgent first.

    Returns
    -------
    ndarray, shape (n,)
        Granted spend, ``0 <= granted <= wishes``, summing to ``min(budget, sum(wishes))``
        (up to rounding of the running sum).
    """
    wishes = np.asarray(wishes, dtype=float)
    if not budget >= 0.0:
        raise ValueError(f"budget = {budget!r}: must be a number >= 0")
    if wishes.sum() <= budget:
        return wishes.copy()
    order_of_stage = list(stage_priority)
    if sorted(order_of_stage) != sorted(STAGES):
        raise ValueError(f"stage_priority = {order_of_stage}: must list each of {list(STAGES)} once")
    rank = np.empty(len(STAGES), dtype=np.int64)
    rank[[STAGES.index(name) for name in order_of_stage]] = np.arange(len(STAGES))
    position = np.arange(len(wishes))
    # np.lexsort: the last key is the primary one
    order = np.lexsort(
        (position, np.asarray(satisfaction, dtype=float), rank[np.asarray(stage)], np.asarray(tier))
    )
    sorted_wishes = wishes[order]
    before = np.zeros_like(sorted_wishes)  # what the customers ahead in the queue got (exclusive running sum)
    np.cumsum(sorted_wishes[:-1], out=before[1:])
    granted = np.empty_like(wishes)
    granted[order] = np.minimum(sorted_wishes, np.maximum(budget - before, 0.0))
    return granted


#: Largest Poisson mean drawn by one inversion in :func:`poisson_count` (exp(-mean) is then
#: far from underflow: exp(-500) ~ 7e-218).
_POISSON_CHUNK = 500.0


def poisson_count(mean: float, uniform: Callable[[], float]) -> int:
    """A Poisson(``mean``) count by inversion of the distribution function, one uniform
    from ``uniform()`` per inversion.

    A mean up to :data:`_POISSON_CHUNK` takes one inversion (one uniform). A larger mean
    is split into ``k = ceil(mean / 500)`` equal parts and the count is the sum of ``k``
    Poisson(``mean / k``) inversions, ``k`` uniforms: exact in distribution (a sum of
    independent Poisson counts is Poisson with the summed mean), where one inversion
    would start from ``exp(-mean)``, which underflows to 0 above a mean of about 745.
    """
    if mean <= _POISSON_CHUNK:
        return _poisson_inversion(mean, uniform())
    parts = math.ceil(mean / _POISSON_CHUNK)
    part = mean / parts
    return sum(_poisson_inversion(part, uniform()) for _ in range(parts))


def _poisson_inversion(mean: float, uniform: float) -> int:
    """A Poisson(``mean``) count from one uniform by inversion (``mean <= 500``)."""
    probability = math.exp(-mean)
    cumulative = probability
    count = 0
    while uniform >= cumulative:
        count += 1
        probability *= mean / count
        cumulative += probability
        if probability == 0.0:
            break
    return count


# --------------------------------------------------------------------------- one market
