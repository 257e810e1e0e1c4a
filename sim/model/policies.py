"""Relationship-investment policies as spend tables the kernels can read (docs/model.md §7.1).

Every config policy becomes a spend table ``spend[stage, segment, tier]`` (money units per
active customer per period) plus a reactive threshold: when ``satisfaction_drop > 0`` the
table's spend is paid only to customers in decline or whose satisfaction fell by more than
that since the previous period. Zero means "always pay the table".
"""

from __future__ import annotations

import numpy as np

from sim.model.config import ExperimentConfig
from sim.model.equations import best_care_spend
from sim.model.names import SEGMENTS, STAGES, TIERS
from sim.model.sections import (
    MaxSatisfactionPolicy,
    NonePolicy,
    ReactivePolicy,
    StagePolicy,
    TablePolicy,
    UniformPolicy,
    ValuePolicy,
)

__all__ = ["PolicyTables", "policy_tables", "spend_table"]


class PolicyTables:
    """Spend tables for all policies of an experiment.

    Attributes
    ----------
    names : tuple of str
        Policy names, in config order.
    spend : ndarray, shape (n_policies, 4, 2, 3)
        Spend per period by policy, stage, segment and ABC tier.
    reactive_drop : ndarray, shape (n_policies,)
        Satisfaction drop that triggers spend outside decline (0: not reactive).
    """

    __slots__ = ("names", "spend", "reactive_drop")

    def __init__(self, names: tuple[str, ...], spend: np.ndarray, reactive_drop: np.ndarray):
        self.names = names
        self.spend = spend
        self.reactive_drop = reactive_drop


def spend_table(policy, config: ExperimentConfig) -> tuple[np.ndarray, float]:
    """The ``(spend[stage, segment, tier], reactive_drop)`` pair for one config policy."""
    table = np.zeros((len(STAGES), len(SEGMENTS), len(TIERS)))
    drop = 0.0
    if isinstance(policy, NonePolicy):
        pass
    elif isinstance(policy, UniformPolicy):
        table[:] = policy.spend
    elif isinstance(policy, StagePolicy):
        for segment_index, multiplier in enumerate(policy.segment_multiplier.as_tuple()):
            table[:, segment_index, :] = np.asarray(policy.spend.as_tuple())[:, None] * multiplier
    elif isinstance(policy, TablePolicy):
        table[:, 0, :] = np.asarray(policy.relationship.as_tuple())[:, None]
        table[:, 1, :] = np.asarray(policy.transactional.as_tuple())[:, None]
    elif isinstance(policy, ValuePolicy):
        tiers = np.array([policy.tier_spend[tier] for tier in TIERS])
        stages = np.asarray(policy.stage_multiplier.as_tuple())
        table[:] = stages[:, None, None] * tiers[None, None, :]
    elif isinstance(policy, MaxSatisfactionPolicy):
        dyn = config.dynamics
        table[:] = best_care_spend(dyn.care_gain, dyn.care_scale, dyn.annoyance)
    elif isinstance(policy, ReactivePolicy):
        table[:] = policy.spend
        drop = policy.satisfaction_drop
    else:  # pragma: no cover - the config union lists every kind
        raise TypeError(f"unknown policy kind {policy!r}")
    return table, drop


def policy_tables(config: ExperimentConfig) -> PolicyTables:
    """Spend tables for every policy of ``config``, in config order."""
    tables, drops = zip(*(spend_table(policy, config) for policy in config.policies))
    return PolicyTables(
        config.policy_names, np.ascontiguousarray(np.stack(tables)), np.asarray(drops, dtype=np.float64)
    )
