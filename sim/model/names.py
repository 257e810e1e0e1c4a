"""The model's vocabulary: the names of stages, segments, value tiers, satisfaction types and
lifecycle patterns, and the integer codes the kernels use for the stages (``docs/model.md`` §1).

Imports nothing from the package.
"""

from __future__ import annotations

__all__ = [
    "STAGES",
    "SEGMENTS",
    "TIERS",
    "SATISFACTION_TYPES",
    "PATTERNS",
    "EXPLORATION",
    "FORMATION",
    "STABILITY",
    "DECLINE",
    "ENDED",
    "N_STAGES",
]

#: The four lifecycle stages, in the only order a relationship may pass them (docs/model.md §1).
STAGES: tuple[str, ...] = ("exploration", "formation", "stability", "decline")


#: The customer segments (docs/model.md §4.1).
SEGMENTS: tuple[str, ...] = ("relationship", "transactional")


#: ABC value tiers, from the predicted value (wallet size): top 5 %, next 15 %, bottom 80 %.
TIERS: tuple[str, ...] = ("A", "B", "C")


#: Satisfaction types from the comparison of perceived performance Q1 with expectation Q0.
SATISFACTION_TYPES: tuple[str, ...] = ("dissatisfied", "satisfied", "highly_satisfied")


#: Lifecycle patterns of a finished trajectory (docs/model.md §1.3).
PATTERNS: tuple[str, ...] = ("I", "II", "III", "IV")


EXPLORATION, FORMATION, STABILITY, DECLINE, ENDED = 0, 1, 2, 3, 4


N_STAGES = 4  # live stages; ENDED is the absorbing fifth state
