"""Maximum likelihood over log-parameters: BFGS, then Newton polishing.

:func:`maximize_loglik` is the optimiser behind every :class:`sim.fitting.base.MaximumLikelihoodModel`:
it maximises a log-likelihood of the logarithms of positive parameters with BFGS
(:func:`scipy.optimize.minimize`) on central-difference gradients, then polishes the estimate
with Newton steps on a finite-difference Hessian, and reports — never raises — a fit that
does not converge (``converged`` False and a ``message``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

__all__ = ["OptimizationResult", "maximize_loglik", "negative_definite"]


@dataclass
class OptimizationResult:
    """Outcome of :func:`maximize_loglik`.

    Attributes
    ----------
    log_params : ndarray
        Maximiser, log-parameters.
    loglik : float
        Log-likelihood there.
    gradient : ndarray
        Its gradient (finite differences) in log-parameters.
    hessian : ndarray
        Its Hessian (finite differences) in log-parameters.
    converged : bool
        Finite log-likelihood, small gradient and a negative-definite Hessian.
    iterations : int
        Quasi-Newton plus Newton iterations.
    evaluations : int
        Log-likelihood evaluations.
    message : str
        What happened, in words.
    """

    log_params: np.ndarray
    loglik: float
    gradient: np.ndarray
    hessian: np.ndarray
    converged: bool
    iterations: int
    evaluations: int
    message: str


class _Counted:
    def __init__(self, function: Callable[[np.ndarray], float], bound: float):
        self.function = function
        self.calls = 0
        self.bound = bound

    def __call__(self, theta: np.ndarray) -> float:
        self.calls += 1
        if not np.all(np.isfinite(theta)) or np.any(np.abs(theta) > self.bound):
            return -np.inf
        with np.errstate(all="ignore"):
            try:
                value = float(self.function(np.asarray(theta, dtype=float)))
            except (FloatingPointError, OverflowError, ZeroDivisionError):
                return -np.inf
        return value if math.isfinite(value) else -np.inf


def _gradient(f: Callable[[np.ndarray], float], theta: np.ndarray, step: float = 1e-5) -> np.ndarray:
    grad = np.empty_like(theta)
    for i in range(len(theta)):
        up = theta.copy()
        down = theta.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (f(up) - f(down)) / (2.0 * step)
    return grad


def _hessian(
    f: Callable[[np.ndarray], float], theta: np.ndarray, step: float = 1e-4, centre: float | None = None
) -> np.ndarray:
    k = len(theta)
    f0 = f(theta) if centre is None else centre
    hess = np.empty((k, k))
    for i in range(k):
        up = theta.copy()
        down = theta.copy()
        up[i] += step
        down[i] -= step
        hess[i, i] = (f(up) - 2.0 * f0 + f(down)) / step**2
        for j in range(i):
            pp = theta.copy()
            pp[i] += step
            pp[j] += step
            pm = theta.copy()
            pm[i] += step
            pm[j] -= step
            mp = theta.copy()
            mp[i] -= step
            mp[j] += step
            mm = theta.copy()
            mm[i] -= step
            mm[j] -= step
            hess[i, j] = hess[j, i] = (f(pp) - f(pm) - f(mp) + f(mm)) / (4.0 * step**2)
    return hess


def negative_definite(matrix: np.ndarray) -> bool:
    """Whether a symmetric matrix is finite and negative definite (Cholesky of its negative).

    Parameters
    ----------
    matrix : ndarray

    Returns
    -------
    bool
    """
    if not np.all(np.isfinite(matrix)):
        return False
    try:
        np.linalg.cholesky(-matrix)
    except np.linalg.LinAlgError:
        return False
    return True


def maximize_loglik(
    loglik: Callable[[np.ndarray], float],
    start: Sequence[float],
    *,
    n_observations: float,
    max_iterations: int = 1000,
    gradient_tolerance: float = 1e-6,
    bound: float = 30.0,
) -> OptimizationResult:
    """Maximise a log-likelihood of log-parameters: BFGS, then Newton polishing.

    Parameters
    ----------
    loglik : callable
        ``loglik(log_params) -> float``, the total log-likelihood.
    start : sequence of float
        Starting log-parameters.
    n_observations : float
        Number of customers (the objective is the log-likelihood per customer, so that
        tolerances do not depend on the data's size).
    max_iterations : int, default 1000
        Cap on BFGS iterations.
    gradient_tolerance : float, default 1e-6
        Convergence: the largest component of the gradient of the log-likelihood PER
        CUSTOMER (log-parameters) must be below this.
    bound : float, default 30
        Log-parameters beyond ``±bound`` count as an infinitely bad fit (guards overflow).

    Returns
    -------
    OptimizationResult

    Notes
    -----
    Gradients are central differences (step 1e-5 in log-parameters), the Hessian a
    second-order finite difference (step 1e-4). After BFGS, up to 20 Newton steps
    ``θ ← θ - H⁻¹ g`` (halved until the log-likelihood does not decrease) polish the
    estimate, so that flat directions of the likelihood (e.g. the Pareto/NBD's β on CDNOW)
    are located to the precision of the published estimates.
    """
    counted = _Counted(loglik, bound)
    scale = max(float(n_observations), 1.0)

    def objective(theta):
        value = counted(theta)
        return -value / scale if math.isfinite(value) else np.inf

    def jacobian(theta):
        return -_gradient(counted, np.asarray(theta, float)) / scale

    theta = np.asarray(start, dtype=float)
    messages = []
    iterations = 0
    if not math.isfinite(counted(theta)):
        return OptimizationResult(
            theta,
            -np.inf,
            np.full(len(theta), np.nan),
            np.full((len(theta),) * 2, np.nan),
            False,
            0,
            counted.calls,
            "the log-likelihood is not finite at the starting values",
        )
    try:
        result = optimize.minimize(
            objective,
            theta,
            jac=jacobian,
            method="BFGS",
            options={"gtol": gradient_tolerance * 0.1, "maxiter": max_iterations},
        )
        if np.isfinite(result.fun):
            theta = np.asarray(result.x, float)
        iterations += int(result.nit)
        if not result.success:
            messages.append(f"BFGS: {result.message}")
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:  # pragma: no cover - defensive
        messages.append(f"BFGS failed: {error}")

    value = counted(theta)
    gradient = _gradient(counted, theta)
    hessian = _hessian(counted, theta, centre=value)
    for _ in range(20):
        if np.max(np.abs(gradient)) / scale < gradient_tolerance * 1e-3 or not negative_definite(hessian):
            break
        step = -np.linalg.solve(hessian, gradient)
        length = 1.0
        improved = False
        while length > 1e-6:
            candidate = theta + length * step
            candidate_value = counted(candidate)
            if math.isfinite(candidate_value) and candidate_value >= value - 1e-12 * abs(value):
                improved = True
                break
            length *= 0.5
        if not improved:
            break
        theta, value = candidate, candidate_value
        iterations += 1
        gradient = _gradient(counted, theta)
        hessian = _hessian(counted, theta, centre=value)
        if np.max(np.abs(length * step)) < 1e-12:
            break

    largest = float(np.max(np.abs(gradient)) / scale) if gradient.size else 0.0
    definite = negative_definite(hessian)
    converged = math.isfinite(value) and largest < gradient_tolerance and definite
    if not math.isfinite(value):
        messages.append("the log-likelihood is not finite at the estimate")
    if largest >= gradient_tolerance:
        messages.append(f"the gradient per customer is {largest:.2e} (tolerance {gradient_tolerance:.0e})")
    if not definite:
        edge = [i for i in range(len(theta)) if abs(theta[i]) > bound * 0.5]
        hint = " (a parameter runs to 0 or infinity: the data cannot identify it)" if edge else ""
        messages.append(f"the Hessian is not negative definite at the estimate{hint}")
    if converged:
        messages = ["converged"] + [m for m in messages if m.startswith("BFGS")]
    return OptimizationResult(
        theta, value, gradient, hessian, bool(converged), iterations, counted.calls, "; ".join(messages)
    )
