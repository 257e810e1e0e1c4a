"""Argument checks shared by the closed forms: each raises ValueError naming the argument, the
value and what is allowed.
"""

from __future__ import annotations

import numbers

import numpy as np

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
        raise ValueError(f"horizon must be None (infinite horizon) or a non-negative int, got {horizon!r}")
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
