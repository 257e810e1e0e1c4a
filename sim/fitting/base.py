"""Shared machinery of the customer-base models: one interface, a registry, the ML fit.

One interface
-------------
Every model is a :class:`CustomerBaseModel` with a short, stable ``name`` (``"bgnbd"``,
``"pnbd"``, ``"ggamma"``) whose ``fit(data)`` receives the WHOLE
:class:`sim.data.CustomerData` — the per-customer summary (frequency, recency, T, monetary)
and, built on demand, the customer × period panel with its grouped calibration sequences —
and returns a :class:`FittedModel` exposing ``parameters`` (DataFrame: parameter, estimate,
se), ``loglik``, ``n_parameters``, ``converged``, ``iterations``, ``message`` and
``seconds``.

* Transaction models return a :class:`TransactionModelFit`: ``p_alive(data)``,
  ``expected_conditional(data, t)``, ``expected_holdout_transactions(data)``,
  ``expected_unconditional(t)``, ``expected_cumulative(acquisition_times, times)``,
  ``expected_tracking(data)``, ``dert(data, discount_rate)`` and ``clv(...)``.
* Spend models return a :class:`SpendModelFit`: ``expected_spend(data)``.

A registry
----------
:func:`register_model` (a class decorator) adds a model under its name;
:func:`get_model` and :func:`model_names` look models up (loading the built-in modules
listed in :data:`BUILTIN_MODULES` on first use). A fourth model — e.g. a hidden-Markov
lifecycle model fitted by EM on ``data.panel.calibration_groups()`` — is one new module with
one decorated class: it overrides :meth:`CustomerBaseModel.fit` (EM instead of the
quasi-Newton fit of :class:`MaximumLikelihoodModel`) and returns a
:class:`TransactionModelFit` subclass implementing the three abstract predictions; tracking,
DERT, CLV and the evaluation tables then work unchanged.

Maximum likelihood
------------------
:class:`MaximumLikelihoodModel` maximises a model's log-likelihood over the logarithms of
its (positive) parameters with BFGS (:func:`scipy.optimize.minimize`) on central-difference
gradients, then polishes with Newton steps on a finite-difference Hessian
(:func:`sim.fitting.mle.maximize_loglik`). Standard errors come from the observed
information: the inverse of minus the Hessian of the log-likelihood in log-parameters,
carried back to the natural scale by the delta method, ``se(θ) = θ · se(log θ)``; the
reported ``se`` is on the natural scale. A fit that does not converge is returned with
``converged = False`` and a ``message`` — never raised.
"""

from __future__ import annotations

import importlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sim.data.customers import CustomerData
from sim.exceptions import DataError
from sim.fitting.mle import OptimizationResult, maximize_loglik, negative_definite

__all__ = [
    "BUILTIN_MODULES",
    "MODEL_REGISTRY",
    "CompressedCustomers",
    "CustomerBaseModel",
    "FittedModel",
    "MaximumLikelihoodModel",
    "OptimizationResult",
    "SpendModelFit",
    "TransactionModelFit",
    "compress_customers",
    "get_model",
    "maximize_loglik",
    "model_names",
    "register_model",
    "rfm_arrays",
]

#: Modules that define the built-in models (module name = model name); imported on the first
#: registry look-up.
BUILTIN_MODULES: tuple[str, ...] = (
    "sim.fitting.bgnbd",
    "sim.fitting.pnbd",
    "sim.fitting.ggamma",
    "sim.fitting.lifecycle",
)

#: Registered model classes by name.
MODEL_REGISTRY: dict[str, type[CustomerBaseModel]] = {}


def register_model(cls: type[CustomerBaseModel]) -> type[CustomerBaseModel]:
    """Class decorator: add a :class:`CustomerBaseModel` subclass to the registry.

    Parameters
    ----------
    cls : type
        A subclass with a ``name`` of 2–16 lowercase letters/digits.

    Returns
    -------
    type
        ``cls`` unchanged.

    Raises
    ------
    ValueError
        For a malformed name or one already taken by another class.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isalnum() or not name.islower() or not 2 <= len(name) <= 16:
        raise ValueError(f"model name {name!r} must be 2-16 lowercase letters or digits")
    existing = MODEL_REGISTRY.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(
            f"model name {name!r} is already registered by {existing.__module__}.{existing.__qualname__}"
        )
    MODEL_REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def model_names() -> tuple[str, ...]:
    """Names of the registered models (built-ins first).

    Returns
    -------
    tuple of str
    """
    _load_builtins()
    builtin = [module.rsplit(".", 1)[1] for module in BUILTIN_MODULES]
    first = [name for name in builtin if name in MODEL_REGISTRY]
    return tuple(first + [name for name in MODEL_REGISTRY if name not in first])


def get_model(name: str, **options: Any) -> CustomerBaseModel:
    """A model instance by name.

    Parameters
    ----------
    name : str
        A registered name, e.g. ``"bgnbd"``, ``"pnbd"``, ``"ggamma"``.
    **options
        Passed to the model's constructor.

    Returns
    -------
    CustomerBaseModel

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    names = model_names()
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(repr(n) for n in names)}")
    return MODEL_REGISTRY[name](**options)


# --------------------------------------------------------------------------- compression


@dataclass(frozen=True)
class CompressedCustomers:
    """Customers with identical sufficient statistics collapsed into weighted rows.

    Attributes
    ----------
    columns : dict of str to ndarray
        One array per statistic (e.g. ``frequency``, ``recency``, ``T``), one entry per
        distinct row.
    weight : ndarray of float
        Customers per distinct row.
    inverse : ndarray of int
        Row of each customer: ``row_values[inverse]`` expands back to customers.
    note : str
        A remark the fit reports in its ``message`` (e.g. customers left out).
    """

    columns: dict[str, np.ndarray]
    weight: np.ndarray
    inverse: np.ndarray
    note: str = ""

    @property
    def n_rows(self) -> int:
        """Distinct rows."""
        return len(self.weight)

    @property
    def n_customers(self) -> int:
        """Customers represented."""
        return len(self.inverse)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


def compress_customers(**columns: np.ndarray) -> CompressedCustomers:
    """Collapse customers with identical values of all ``columns`` into weighted rows.

    Parameters
    ----------
    **columns : ndarray
        Equal-length numeric arrays (e.g. ``frequency=..., recency=..., T=...``).

    Returns
    -------
    CompressedCustomers

    Notes
    -----
    One ``np.lexsort`` over the columns, ``O(n log n)``; on CDNOW-like data (dates in days,
    a few weeks of acquisition) a million customers collapse to a few tens of thousands of
    rows, and the likelihood is evaluated once per row.
    """
    names = list(columns)
    arrays = [
        np.ravel(a) for a in np.broadcast_arrays(*(np.asarray(columns[name], dtype=float) for name in names))
    ]
    n = len(arrays[0])
    order = np.lexsort(arrays[::-1])
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
    for array in arrays:
        sorted_values = array[order]
        new[1:] |= sorted_values[1:] != sorted_values[:-1]
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group
    weight = np.diff(np.append(starts, n)).astype(float)
    return CompressedCustomers(
        {name: array[order][starts] for name, array in zip(names, arrays)}, weight, inverse
    )


# --------------------------------------------------------------------------- fitted models


@dataclass
class FittedModel:
    """A fitted customer-base model: estimates, standard errors, fit statistics.

    Attributes
    ----------
    model : str
        Registry name of the model.
    params : dict of str to float
        Estimates by parameter name (natural scale).
    se : dict of str to float
        Standard errors, natural scale, by the delta method from the observed information
        in log-parameters (NaN if the Hessian is not negative definite).
    loglik : float
        Maximised log-likelihood.
    n_customers : int
        Customers whose data entered the likelihood.
    converged : bool
        Whether the optimiser converged (see :func:`sim.fitting.mle.maximize_loglik`).
    iterations : int
        Optimiser iterations.
    message : str
        The optimiser's account of the fit.
    seconds : float
        Wall-clock time of the fit.
    covariance : ndarray or None
        Covariance matrix of the log-parameters.
    """

    model: str
    params: dict[str, float]
    se: dict[str, float]
    loglik: float
    n_customers: int
    converged: bool
    iterations: int = 0
    message: str = ""
    seconds: float = 0.0
    covariance: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """Registry name (same as ``model``)."""
        return self.model

    @property
    def n_parameters(self) -> int:
        """Number of estimated parameters."""
        return len(self.params)

    @property
    def aic(self) -> float:
        """Akaike's information criterion, ``2k - 2 LL``."""
        return 2.0 * self.n_parameters - 2.0 * self.loglik

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``k log n - 2 LL`` with n = customers in the fit."""
        return self.n_parameters * math.log(max(self.n_customers, 1)) - 2.0 * self.loglik

    @property
    def parameters(self) -> pd.DataFrame:
        """Tidy table: ``parameter``, ``estimate``, ``se`` (natural scale)."""
        names = list(self.params)
        return pd.DataFrame(
            {
                "parameter": names,
                "estimate": [self.params[n] for n in names],
                "se": [self.se.get(n, np.nan) for n in names],
            }
        )

    def summary_row(self) -> dict[str, Any]:
        """One row of the fit table: model, loglik, n_parameters, aic, bic, customers, seconds, converged."""
        return {
            "model": self.model,
            "loglik": self.loglik,
            "n_parameters": self.n_parameters,
            "aic": self.aic,
            "bic": self.bic,
            "customers": self.n_customers,
            "seconds": self.seconds,
            "converged": self.converged,
            "iterations": self.iterations,
            "message": self.message,
        }


class TransactionModelFit(FittedModel, ABC):
    """A fitted model of the transaction process: who is alive, how many purchases to come.

    Subclasses implement :meth:`p_alive`, :meth:`expected_conditional` and
    :meth:`expected_unconditional`; everything else is derived from them here (and may be
    overridden by a faster or closed-form version).
    """

    @abstractmethod
    def p_alive(self, data: CustomerData) -> np.ndarray:
        """Probability that each customer is alive at the calibration end.

        Parameters
        ----------
        data : CustomerData

        Returns
        -------
        ndarray, shape (n_customers,)
        """

    @abstractmethod
    def expected_conditional(self, data: CustomerData, t: float) -> np.ndarray:
        """Expected transactions of each customer in ``(T, T + t]``, given her history.

        Parameters
        ----------
        data : CustomerData
        t : float
            Length of the future period in the data's unit.

        Returns
        -------
        ndarray, shape (n_customers,)
        """

    @abstractmethod
    def expected_unconditional(self, t: np.ndarray | float) -> np.ndarray:
        """``E[X(t)]``: expected repeat transactions in ``(0, t]`` of a customer acquired at 0.

        Parameters
        ----------
        t : array_like
            Ages, ``t >= 0``, in the unit of the fit.

        Returns
        -------
        ndarray
        """

    def expected_holdout_transactions(self, data: CustomerData) -> np.ndarray:
        """Expected transactions of each customer in the holdout period.

        Parameters
        ----------
        data : CustomerData
            With ``holdout_length``.

        Returns
        -------
        ndarray, shape (n_customers,)

        Raises
        ------
        DataError
            If the data have no holdout period.
        """
        if data.holdout_length is None:
            raise DataError(
                "no holdout period: give holdout_end to split_transactions (or holdout_length to "
                "from_summary)"
            )
        return self.expected_conditional(data, float(data.holdout_length))

    def expected_cumulative(self, acquisition_times: np.ndarray, times: np.ndarray) -> np.ndarray:
        """A cohort's expected cumulative repeat transactions over calendar time.

        Parameters
        ----------
        acquisition_times : array_like, shape (n_customers,)
            Each customer's first purchase, in units since a common origin.
        times : array_like, shape (n_times,)
            Calendar times, same origin and unit.

        Returns
        -------
        ndarray, shape (n_times,)
            ``sum_i E[X(t - s_i)]`` over customers acquired before ``t`` (Fader, Hardie & Lee
            2005, "Counting your customers the easy way", section 4's tracking of cumulative
            repeat transactions for customers acquired on different days).

        Notes
        -----
        Customers acquired at the same time share one evaluation of ``E[X(·)]``: the cost is
        ``distinct acquisition times × len(times)``, not customers × times.
        """
        starts, counts = np.unique(np.asarray(acquisition_times, dtype=float), return_counts=True)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        ages = times[:, None] - starts[None, :]
        values = np.zeros_like(ages)
        positive = ages > 0
        if positive.any():
            values[positive] = self.expected_unconditional(ages[positive])
        return (values * counts.astype(float)).sum(axis=1)

    def expected_tracking(self, data: CustomerData) -> np.ndarray:
        """Expected cumulative repeat transactions of the cohort at the end of each period.

        Parameters
        ----------
        data : CustomerData
            Split from a transaction log (it holds the period grid).

        Returns
        -------
        ndarray, shape (data.n_periods,)
            Comparable with ``data.tracking_actual()["cumulative"]``.
        """
        return self.expected_cumulative(data.acquisition_times, data.period_end_times)

    def dert(
        self,
        data: CustomerData,
        discount_rate: float,
        *,
        horizon: float | None = None,
        tolerance: float = 1e-4,
    ) -> np.ndarray:
        """Discounted expected residual transactions of each customer after the calibration end.

        Parameters
        ----------
        data : CustomerData
        discount_rate : float
            Continuously compounded discount rate per unit ``δ > 0`` (e.g. 15 % a year in
            weeks: ``log(1.15) / 52``).
        horizon : float, optional
            Units to sum over; by default until the discount factor falls below
            ``tolerance``.
        tolerance : float, default 1e-4
            Discount factor at which the default horizon stops.

        Returns
        -------
        ndarray, shape (n_customers,)

        Notes
        -----
        Generic version: sums the expected transactions of each future period
        ``k = 1, 2, ..., K`` (increments of :meth:`expected_conditional`) discounted at
        mid-period, ``sum_k e^(-δ(k - 1/2)) [E(Y(k)) - E(Y(k - 1))]``, which approximates the
        continuous ``∫ e^(-δt) dE[Y(t)]`` to ``O(δ²)``. Models with a closed form override it.
        """
        rate = _check_rate(discount_rate)
        horizon_units = _horizon(rate, horizon, tolerance)
        total = np.zeros(data.n_customers)
        previous = np.zeros(data.n_customers)
        for k in range(1, horizon_units + 1):
            current = self.expected_conditional(data, float(k))
            total += math.exp(-rate * (k - 0.5)) * (current - previous)
            previous = current
        return total

    def clv(
        self,
        data: CustomerData,
        spend: SpendModelFit,
        *,
        discount_rate: float,
        margin: float = 1.0,
        horizon: float | None = None,
    ) -> np.ndarray:
        """Residual customer lifetime value: DERT × expected spend per transaction × margin.

        Parameters
        ----------
        data : CustomerData
        spend : SpendModelFit
            A fitted spend model (e.g. Gamma-Gamma) for the expected value per transaction.
        discount_rate : float
            Continuously compounded discount rate per unit.
        margin : float, default 1
            Profit margin applied to the spend.
        horizon : float, optional
            Passed to :meth:`dert`.

        Returns
        -------
        ndarray, shape (n_customers,)
            Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base
            analysis", JMR 42(4): CLV = margin × E(spend) × DERT, spend and transactions being
            independent in the Gamma-Gamma/Pareto-NBD setting.
        """
        return self.dert(data, discount_rate, horizon=horizon) * spend.expected_spend(data) * float(margin)


class SpendModelFit(FittedModel, ABC):
    """A fitted model of the value per transaction."""

    @abstractmethod
    def expected_spend(self, data: CustomerData) -> np.ndarray:
        """Expected value of each customer's future transactions, given her history.

        Parameters
        ----------
        data : CustomerData

        Returns
        -------
        ndarray, shape (n_customers,)
        """


def _check_rate(discount_rate: float) -> float:
    rate = float(discount_rate)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(
            f"discount_rate = {discount_rate!r} must be a number > 0 (continuously compounded, per unit)"
        )
    return rate


def _horizon(rate: float, horizon: float | None, tolerance: float) -> int:
    if horizon is None:
        return max(1, math.ceil(-math.log(tolerance) / rate))
    if not math.isfinite(float(horizon)) or horizon <= 0:
        raise ValueError(f"horizon = {horizon!r} must be a number of units > 0")
    return max(1, math.ceil(float(horizon)))


# --------------------------------------------------------------------------- models


class CustomerBaseModel(ABC):
    """A customer-base model: a name, parameter names, and ``fit(data) -> FittedModel``.

    Attributes
    ----------
    name : str
        Short, stable registry name (``"bgnbd"``).
    title : str
        Name in words (``"BG/NBD"``).
    kind : {"transactions", "spend"}
        Whether the model predicts transactions (:class:`TransactionModelFit`) or their value
        (:class:`SpendModelFit`).
    parameter_names : tuple of str
        In the order of the estimates.
    reference : str
        The source of the model's equations.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    kind: ClassVar[str] = "transactions"
    parameter_names: ClassVar[tuple[str, ...]] = ()
    reference: ClassVar[str] = ""

    @abstractmethod
    def fit(self, data: CustomerData, **options: Any) -> FittedModel:
        """Fit the model to a calibration cohort.

        Parameters
        ----------
        data : CustomerData
            The whole data object: summary (frequency, recency, T, monetary) and, for period
            models, ``data.panel``.
        **options
            Model-specific (e.g. ``start``).

        Returns
        -------
        FittedModel
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class MaximumLikelihoodModel(CustomerBaseModel):
    """A model fitted by maximum likelihood on the logarithms of its positive parameters.

    Subclasses define ``fitted_class``, :meth:`prepare` (the data the likelihood needs,
    compressed into weighted rows), :meth:`loglik` (the total log-likelihood of prepared data
    at natural-scale parameters) and :meth:`start_values`.
    """

    fitted_class: ClassVar[type[FittedModel]]

    @abstractmethod
    def prepare(self, data: CustomerData) -> Any:
        """The likelihood's inputs, compressed (must offer ``n_customers``).

        Parameters
        ----------
        data : CustomerData

        Returns
        -------
        object
        """

    @abstractmethod
    def loglik(self, params: np.ndarray, prepared: Any) -> float:
        """Total log-likelihood of prepared data.

        Parameters
        ----------
        params : ndarray
            Natural-scale parameters in the order of ``parameter_names``.
        prepared : object
            From :meth:`prepare`.

        Returns
        -------
        float
        """

    @abstractmethod
    def start_values(self, prepared: Any) -> np.ndarray:
        """Natural-scale starting values.

        Parameters
        ----------
        prepared : object

        Returns
        -------
        ndarray
        """

    def fit(
        self,
        data: CustomerData,
        *,
        start: Mapping[str, float] | Sequence[float] | None = None,
        max_iterations: int = 1000,
    ) -> FittedModel:
        """Maximum-likelihood fit (see :func:`sim.fitting.mle.maximize_loglik`).

        Parameters
        ----------
        data : CustomerData
        start : mapping or sequence, optional
            Starting values (natural scale) by name or in ``parameter_names`` order.
        max_iterations : int, default 1000
            Cap on BFGS iterations.

        Returns
        -------
        FittedModel
            Of type ``fitted_class``; ``converged`` False (with ``message``) when the optimiser
            did not converge.
        """
        began = time.perf_counter()
        prepared = self.prepare(data)
        if start is None:
            start_values = np.asarray(self.start_values(prepared), dtype=float)
        elif isinstance(start, Mapping):
            unknown = set(start) - set(self.parameter_names)
            if unknown:
                raise ValueError(
                    f"unknown parameter(s) {sorted(unknown)} in start; {self.name} has {self.parameter_names}"
                )
            defaults = np.asarray(self.start_values(prepared), dtype=float)
            start_values = np.array([float(start.get(n, d)) for n, d in zip(self.parameter_names, defaults)])
        else:
            start_values = np.asarray(start, dtype=float)
        if (
            start_values.shape != (len(self.parameter_names),)
            or np.any(~np.isfinite(start_values))
            or np.any(start_values <= 0)
        ):
            raise ValueError(
                f"start values {start_values.tolist()} must be {len(self.parameter_names)} positive numbers"
            )
        result = maximize_loglik(
            lambda theta: self.loglik(np.exp(theta), prepared),
            np.log(start_values),
            n_observations=prepared.n_customers,
            max_iterations=max_iterations,
        )
        estimate = np.exp(result.log_params)
        covariance = None
        se = np.full(len(estimate), np.nan)
        if negative_definite(result.hessian):
            covariance = np.linalg.inv(-result.hessian)
            se = estimate * np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        return self.fitted_class(
            model=self.name,
            params={n: float(v) for n, v in zip(self.parameter_names, estimate)},
            se={n: float(v) for n, v in zip(self.parameter_names, se)},
            loglik=float(result.loglik),
            n_customers=int(prepared.n_customers),
            converged=result.converged,
            iterations=result.iterations,
            message="; ".join(part for part in (result.message, getattr(prepared, "note", "")) if part),
            seconds=time.perf_counter() - began,
            covariance=covariance,
        )


def rfm_arrays(data: CustomerData) -> CompressedCustomers:
    """The transaction models' sufficient statistics (frequency, recency, T), compressed.

    Parameters
    ----------
    data : CustomerData

    Returns
    -------
    CompressedCustomers
        Columns ``frequency``, ``recency``, ``T``.
    """
    return compress_customers(frequency=data.frequency, recency=data.recency, T=data.T)
