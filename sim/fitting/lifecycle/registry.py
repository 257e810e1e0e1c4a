"""The lifecycle HMM in the customer-base model registry (name ``"lifecycle"``).

:class:`LifecycleModel` fits the lifecycle HMM to ``data.panel.calibration_groups()`` (the
distinct calibration sequences and their multiplicities, in the unit of the data), choosing
the specification among :data:`~sim.fitting.lifecycle.select.DEFAULT_CANDIDATES` by BIC on
the calibration data (the rule is fixed, the same for every log; no holdout enters), and
returns a :class:`LifecycleFit` — a :class:`sim.fitting.base.TransactionModelFit`, so
``fit_transactions`` fills the standard tables — that also gives the lifecycle-specific
outputs: the stage table, the filtered stage and class probabilities per customer, the
cohort's stage occupancy over calendar periods and the table of candidates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sim.data.customers import CustomerData
from sim.exceptions import DataError
from sim.fitting import _hmm
from sim.fitting.base import CustomerBaseModel, TransactionModelFit, _check_rate, _horizon, register_model
from sim.fitting.lifecycle.model import LifecycleHMM
from sim.fitting.lifecycle.params import ALLOWED, DECLINE, ENDED, FORMATION, ROW_EDGES, STATES
from sim.fitting.lifecycle.select import DEFAULT_CANDIDATES, select_lifecycle

__all__ = ["LifecycleFit", "LifecycleModel", "panel_sequences"]

#: Settings of :class:`LifecycleHMM` used by the registry model unless overridden.
REGISTRY_SETTINGS: dict[str, Any] = {"node_rule": True}


def panel_sequences(data: CustomerData):
    """The distinct calibration sequences of a split log, as the lifecycle HMM takes them.

    Parameters
    ----------
    data : CustomerData
        From :func:`sim.data.split_transactions` (the panel needs the log).

    Returns
    -------
    entry : int64 (S,)
        Entry period of each distinct sequence.
    counts : int32 (S, T)
        Repeat purchases per calibration period (the first purchase removed from the entry
        period's count: it is no emission).
    multiplicity : float64 (S,)
        Customers per sequence.
    customer_sequence : int64 (n,)
        Each customer's sequence, in the order of ``data.summary``.
    """
    if not data.has_period_grid:
        raise DataError(
            f"the lifecycle model needs the purchases per period: this customer data was built from a "
            f"summary ({data.source}); use split_transactions on the transaction log"
        )
    groups = data.panel.calibration_groups()
    entry = groups.entry_period.astype(np.int64)
    counts = groups.counts.astype(np.int32)
    counts[np.arange(len(entry)), entry] -= 1
    if counts.min() < 0:  # cannot happen for a panel built from the log
        raise DataError("a customer has no purchase in her entry period")
    return entry, counts, groups.multiplicity.astype(np.float64), groups.group_of_customer.astype(np.int64)


def _free_parameters(p, se):
    """Names, estimates and SEs of the free parameters (classes 1..C; moves other than the stays)."""
    rows = []
    C = p.n_classes
    for c in range(1, C):
        rows.append((f"class_prob[c{c + 1}]", p.class_probs[c], se["class_probs"][c]))
    for c in range(C):
        for edges in ROW_EDGES:
            for e in edges:
                s, d = _src_dst(e)
                if s == d:
                    continue
                rows.append(
                    (
                        f"move[c{c + 1},{STATES[s]}->{STATES[d]}]",
                        p.transitions[c, s, d],
                        se["transitions"][c, s, d],
                    )
                )
        for k in range(4):
            rows.append((f"rate[c{c + 1},{STATES[k]}]", p.rates[c, k], se["rates"][c, k]))
        rows.append((f"entry_rate[c{c + 1}]", p.entry_rates[c], se["entry_rates"][c]))
    if p.shape is not None:
        rows.append(("rate_shape", p.shape, se["shape"]))
    if p.exit_shape is not None:
        rows.append(("exit_shape", p.exit_shape, se["exit_shape"]))
    if p.exit_support is not None:
        for m in range(1, len(p.exit_support)):
            rows.append((f"exit_weight[{m + 1}]", p.exit_weights[m], se["exit_weights"][m]))
        for m in range(1, len(p.exit_support)):
            rows.append((f"exit_support[{m + 1}]", p.exit_support[m], se["exit_support"][m]))
    return rows


def _src_dst(edge):
    return int(_hmm.SRC[edge]), int(_hmm.DST[edge])


@dataclass
class LifecycleFit(TransactionModelFit):
    """A fitted lifecycle HMM in the registry's interface (see :mod:`sim.fitting.lifecycle.registry`).

    Attributes
    ----------
    hmm : LifecycleHMM
        The chosen specification, fitted (``hmm.params_``: :class:`LifecycleParams`;
        ``hmm.se_``: their standard errors).
    selection : DataFrame
        One row per candidate specification: spec, n_parameters, loglik, bic, aic, chosen,
        starts at the best, node counts, seconds.
    spend : dict or None
        Spend per purchase by stage (:meth:`LifecycleHMM.fit_spend`), when the log has amounts.
    diagnostics : dict
        Of the chosen fit (:meth:`LifecycleHMM.diagnostics`).
    candidates : list of LifecycleHMM
        Every fitted candidate, in the order of ``selection``.

    Notes
    -----
    What a simulator needs (per period of the data's unit; classes ordered by the
    probability of reaching stability, the relationship class first):
    :attr:`class_shares` (C,), :attr:`transition_matrices` (C, 5, 5) over
    exploration, formation, stability, decline, ended (at exit frailty 1;
    :meth:`transitions_at` for another), :attr:`purchase_rates` (C, 4) and
    :attr:`entry_rates` (C,), :attr:`rate_shape` (the gamma purchase-rate multiplier's shape
    r; mean 1, variance 1/r), :attr:`exit_shape` (the gamma exit frailty's), and
    :attr:`spend_per_purchase` (4,); per customer, :meth:`filtered` gives the filtered stage
    probabilities, class posterior and posterior mean rate multiplier and exit frailty at the
    calibration end.
    """

    hmm: LifecycleHMM | None = field(default=None, repr=False)
    selection: pd.DataFrame | None = field(default=None, repr=False)
    spend: dict | None = field(default=None, repr=False)
    diagnostics: dict = field(default_factory=dict, repr=False)
    candidates: list = field(default_factory=list, repr=False)
    _data: CustomerData | None = field(default=None, repr=False)
    _sequence_of_customer: np.ndarray | None = field(default=None, repr=False)

    # ---- the fitted quantities the simulator needs
    @property
    def lifecycle_params(self):
        """The fitted :class:`~sim.fitting.lifecycle.LifecycleParams` (class shares, transitions
        per class, rates, entry rates, the rate multiplier's shape, the exit frailty).
        """
        return self.hmm.params_

    @property
    def entry_rates(self) -> np.ndarray:
        """Per class, the rate of repeat purchases in the (partial) entry period (C,)."""
        return self.hmm.params_.entry_rates.copy()

    @property
    def exit_shape(self) -> float | None:
        """Shape s of the gamma exit frailty ``v ~ Gamma(s, s)`` on the odds of the exit moves
        (None: none, or a discrete frailty in ``lifecycle_params.exit_support``/``exit_weights``).
        """
        return self.hmm.params_.exit_shape

    def transitions_at(self, frailty: float) -> np.ndarray:
        """Per class, the (5, 5) transition probabilities of a customer with exit frailty ``frailty``."""
        return self.hmm.params_.transitions_at(frailty)

    @property
    def transition_matrices(self) -> np.ndarray:
        """Per class, the (5, 5) transition probabilities over :data:`STATES` (frailty 1)."""
        return self.hmm.params_.transitions.copy()

    @property
    def purchase_rates(self) -> np.ndarray:
        """Per class, the purchase rate per period in each live stage (C, 4), multiplier 1."""
        return self.hmm.params_.rates.copy()

    @property
    def class_shares(self) -> np.ndarray:
        """The classes' shares of customers (C,)."""
        return self.hmm.params_.class_probs.copy()

    @property
    def rate_shape(self) -> float | None:
        """Shape r of the gamma purchase-rate multiplier (None: no multiplier)."""
        return self.hmm.params_.shape

    def decline_outcomes(self) -> pd.DataFrame:
        """How a visit to decline ends, per class, for a customer of exit frailty 1.

        Decline is left only by a win-back (decline -> formation) or by churn (decline ->
        ended), so a visit lasts ``1 / (win_back + churn)`` periods on average and ends in a
        win-back with probability ``win_back / (win_back + churn)`` (the absorption
        probability of the chain with formation and ended absorbing).

        Returns
        -------
        DataFrame
            ``class``, ``class_share``, ``win_back`` and ``churn`` (per period),
            ``eventually_won_back`` and ``periods_in_decline``.
        """
        p = self.hmm.params_
        win_back = p.transitions[:, DECLINE, FORMATION]
        churn = p.transitions[:, DECLINE, ENDED]
        leave = win_back + churn
        return pd.DataFrame(
            {
                "class": np.arange(1, len(win_back) + 1),
                "class_share": p.class_probs,
                "win_back": win_back,
                "churn": churn,
                "eventually_won_back": win_back / leave,
                "periods_in_decline": p.mean_stay()[:, DECLINE],
            }
        )

    @property
    def spend_per_purchase(self) -> np.ndarray | None:
        """Mean spend per purchase in each live stage (4,), or None without amounts."""
        return None if self.spend is None else np.asarray(self.spend["mean_spend"]).copy()

    # ---- per-customer quantities
    def _model_for(self, data: CustomerData):
        """The fitted HMM on ``data``'s sequences and each customer's sequence index."""
        if data is self._data:
            return self.hmm
        entry, counts, mult, cs = panel_sequences(data)
        model = LifecycleHMM(**self.hmm.settings())
        model.n_nodes, model.n_exit_nodes = self.hmm.n_nodes, self.hmm.n_exit_nodes
        model.set_data(entry, counts, mult, cs)
        model.params_ = self.hmm.params_
        return model

    def filtered(self, data: CustomerData) -> dict:
        """Filtered quantities at the calibration end per customer (:meth:`LifecycleHMM.filter`).

        Parameters
        ----------
        data : CustomerData

        Returns
        -------
        dict
            ``stage_probs`` (n, 5), ``p_alive`` (n,), ``class_probs`` (n, C),
            ``rate_multiplier`` (n,) (posterior mean), ``exit_frailty`` (n,) (posterior mean).
        """
        f = self._model_for(data).filter()
        return {k: f[k] for k in ("stage_probs", "p_alive", "class_probs", "rate_multiplier", "exit_frailty")}

    def p_alive(self, data: CustomerData) -> np.ndarray:
        """1 - P(ended at the calibration end | the customer's purchases)."""
        return np.clip(self.filtered(data)["p_alive"], 0.0, 1.0)

    def _period_weights(self, t: float) -> np.ndarray:
        t = float(t)
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"t = {t!r} must be a number of periods >= 0")
        whole = int(math.floor(t + 1e-9))
        weights = np.ones(whole + 1)
        weights[whole] = max(t - whole, 0.0)
        return weights

    def expected_conditional(self, data: CustomerData, t: float) -> np.ndarray:
        """Expected repeat purchases in the next ``t`` periods of each customer, given her history.

        The filtered state at the calibration end propagated through the chain, period by
        period; a fractional last period counts in proportion.
        """
        return self._model_for(data).weighted_forecast(self._period_weights(t))

    def expected_unconditional(self, t) -> np.ndarray:
        """``E[X(t)]`` of a new customer: the cumulative expected repeat purchases of the model's
        periods since entry (the entry period first), linear within a period.
        """
        t = np.asarray(t, dtype=float)
        top = int(math.ceil(float(np.max(t, initial=0.0)))) + 1
        cum = np.concatenate([[0.0], np.cumsum(self.hmm.unconditional_curve(top))])
        return np.interp(t, np.arange(top + 1, dtype=float), cum)

    def expected_tracking(self, data: CustomerData) -> np.ndarray:
        """Cohort's expected cumulative repeat purchases at the end of each period of the grid
        (every customer from her entry period, the model alone; exact on the period grid).
        """
        panel = data.panel
        per_period = self.hmm.unconditional_counts(panel.entry_period, panel.n_periods)
        return np.cumsum(per_period)

    def dert(self, data, discount_rate, *, horizon=None, tolerance=1e-4):
        """Discounted expected residual transactions, by summing the discounted forecast of
        every future period (discounted at mid-period, as the generic version).
        """
        rate = _check_rate(discount_rate)
        periods = _horizon(rate, horizon, tolerance)
        weights = np.exp(-rate * (np.arange(1, periods + 1) - 0.5))
        return self._model_for(data).weighted_forecast(weights)

    # ---- tables
    def summary_row(self) -> dict[str, Any]:
        """The fit table's row, with the lifecycle diagnostics after the standard columns."""
        row = super().summary_row()
        d = self.diagnostics
        row.update(
            {
                "spec": self.hmm.name,
                "n_at_best": d.get("n_at_best"),
                "n_final": d.get("n_final"),
                "max_abs_score": d.get("max_abs_score"),
                "min_information_eigenvalue": d.get("min_information_eigenvalue"),
                "rate_nodes": self.hmm.n_nodes if self.hmm.heterogeneity else None,
                "exit_nodes": self.hmm.n_exit_nodes if self.hmm.exit_kind == "gamma" else None,
                "rate_quadrature_change": d.get("quadrature_loglik_change"),
                "exit_quadrature_change": d.get("exit_quadrature_loglik_change"),
            }
        )
        return row

    def customer_columns(self, data: CustomerData) -> dict[str, np.ndarray]:
        """Extra ``customers`` columns: filtered stage probabilities (``p_<stage>_lifecycle``),
        class posterior (``p_class<c>_lifecycle``), posterior mean rate multiplier and exit
        frailty, at the calibration end.
        """
        f = self.filtered(data)
        out = {f"p_{stage}_{self.model}": f["stage_probs"][:, k] for k, stage in enumerate(STATES)}
        for c in range(f["class_probs"].shape[1]):
            out[f"p_class{c + 1}_{self.model}"] = f["class_probs"][:, c]
        out[f"rate_multiplier_{self.model}"] = f["rate_multiplier"]
        out[f"exit_frailty_{self.model}"] = f["exit_frailty"]
        return out

    def stage_table(self) -> pd.DataFrame:
        """Per class and live stage: purchase rate, spend per purchase, transition probabilities
        (one column per destination; structural zeros are 0), expected time in the stage.

        Returns
        -------
        DataFrame
            ``model, class, class_share, stage, rate, rate_se, spend_per_purchase, p_<state>``
            for every state, ``se_p_<state>``, ``mean_stay`` (periods per visit, ``1 / (1 -
            p_stay)``, at exit frailty 1) and ``customers_at_end`` (expected customers of the
            class in the stage at the calibration end).
        """
        p, se = self.hmm.params_, self.hmm.se_
        f = self.hmm.filter()
        joint = f["joint"]  # (S, 5, J)
        C = p.n_classes
        per_class = joint.reshape(joint.shape[0], 5, C, -1).sum(axis=3)  # (S, 5, C)
        at_end = np.einsum("s,skc->ck", self.hmm.data_.weight, per_class)
        stay = p.mean_stay()
        rows = []
        for c in range(C):
            for k in range(4):
                row = {
                    "model": self.model,
                    "class": c + 1,
                    "class_share": p.class_probs[c],
                    "stage": STATES[k],
                    "rate": p.rates[c, k],
                    "rate_se": se["rates"][c, k],
                    "spend_per_purchase": np.nan if self.spend is None else self.spend["mean_spend"][k],
                }
                for d, name in enumerate(STATES):
                    row[f"p_{name}"] = p.transitions[c, k, d]
                for d, name in enumerate(STATES):
                    row[f"se_p_{name}"] = se["transitions"][c, k, d] if ALLOWED[k, d] else np.nan
                row["mean_stay"] = stay[c, k]
                row["customers_at_end"] = at_end[c, k]
                rows.append(row)
            rows.append(
                {"model": self.model, "class": c + 1, "class_share": p.class_probs[c], "stage": "ended"}
                | {f"p_{name}": float(d == ENDED) for d, name in enumerate(STATES)}
                | {"customers_at_end": at_end[c, ENDED]}
            )
        return pd.DataFrame(rows)

    def occupancy_table(self, data: CustomerData) -> pd.DataFrame:
        """The cohort's stage occupancy per calendar period of the grid: the smoothed posterior
        in the calibration periods, the forecast (filtered state propagated) after them.

        Returns
        -------
        DataFrame
            ``model, period, period_end, holdout, kind`` ("smoothed" or "forecast") and the
            expected customers in each state.
        """
        model = self._model_for(data)
        n_cal = model.data_.T
        panel = data.panel
        occupancy = model.stage_occupancy(horizon=panel.n_periods - n_cal)
        table = pd.DataFrame(occupancy, columns=list(STATES))
        table.insert(0, "kind", np.where(np.arange(len(table)) < n_cal, "smoothed", "forecast"))
        table.insert(0, "holdout", np.arange(len(table)) >= n_cal)
        table.insert(0, "period_end", panel.period_end[: len(table)])
        table.insert(0, "period", np.arange(1, len(table) + 1))
        table.insert(0, "model", self.model)
        return table

    def candidate_table(self, data: CustomerData | None = None) -> pd.DataFrame:
        """The candidates of the selection; with a holdout, each candidate's holdout numbers
        beside (``expected_total``, ``mae``, ``rmse``, ``corr`` — reported, never used to choose).
        """
        table = self.selection.copy()
        if data is None or not data.has_holdout or data is not self._data:
            return table
        actual = data.holdout_frequency
        totals, maes, rmses, corrs = [], [], [], []
        for model in self.candidates:
            fit = LifecycleFit(
                model=self.model,
                params={},
                se={},
                loglik=model.loglik_,
                n_customers=self.n_customers,
                converged=True,
                hmm=model,
                _data=data,
            )
            expected = fit.expected_holdout_transactions(data)
            error = expected - actual
            totals.append(float(expected.sum()))
            maes.append(float(np.mean(np.abs(error))))
            rmses.append(float(np.sqrt(np.mean(error**2))))
            corrs.append(float(np.corrcoef(expected, actual)[0, 1]) if np.std(expected) > 0 else np.nan)
        table["holdout_expected_total"] = totals
        table["holdout_actual_total"] = float(actual.sum())
        table["holdout_mae"] = maes
        table["holdout_rmse"] = rmses
        table["holdout_corr"] = corrs
        return table

    def extra_tables(self, data: CustomerData) -> dict[str, pd.DataFrame]:
        """The lifecycle tables: ``stages``, ``stage_occupancy`` and ``lifecycle_candidates``."""
        return {
            "stages": self.stage_table(),
            "stage_occupancy": self.occupancy_table(data),
            "lifecycle_candidates": self.candidate_table(data),
        }


@register_model
class LifecycleModel(CustomerBaseModel):
    """The lifecycle HMM, registry name ``"lifecycle"``: stages as hidden states, chosen by BIC.

    Parameters
    ----------
    candidates : sequence of (classes, rate heterogeneity, exit heterogeneity), optional
        Specifications compared (default
        :data:`sim.fitting.lifecycle.select.DEFAULT_CANDIDATES`).
    criterion : {"bic", "aic", "split"}, default "bic"
        The selection rule, on the calibration data only.
    **settings
        Passed to :class:`LifecycleHMM` (e.g. ``n_starts``, ``seed``); default
        ``node_rule=True``.
    """

    name = "lifecycle"
    title = "Lifecycle HMM"
    kind = "transactions"
    parameter_names: ClassVar[tuple[str, ...]] = ()
    reference = "Netzer, Lattin & Srinivasan (2008), Marketing Science 27(2), 185-204"

    def __init__(self, candidates=None, criterion="bic", **settings):
        self.candidates = tuple(DEFAULT_CANDIDATES if candidates is None else candidates)
        self.criterion = criterion
        self.settings = {**REGISTRY_SETTINGS, **settings}

    def fit(self, data: CustomerData, **options: Any) -> LifecycleFit:
        """Select and fit the lifecycle HMM on the calibration sequences of ``data``.

        Parameters
        ----------
        data : CustomerData
            Split from a transaction log (the fit uses ``data.panel.calibration_groups()``).
        **options
            ``candidates``, ``criterion``, or settings of :class:`LifecycleHMM`, overriding
            the constructor's.

        Returns
        -------
        LifecycleFit
            ``converged`` when the largest absolute score at the chosen optimum is below 0.01.
        """
        began = time.perf_counter()
        candidates = tuple(options.pop("candidates", self.candidates))
        criterion = options.pop("criterion", self.criterion)
        settings = {**self.settings, **options}
        entry, counts, mult, cs = panel_sequences(data)
        best, rows = select_lifecycle(
            entry, counts, mult, cs, candidates=candidates, criterion=criterion, **settings
        )
        best.standard_errors()
        diagnostics = best.diagnostics()
        spend = None
        panel = data.panel
        if panel.amounts is not None:
            spend = _fit_spend(best, panel, cs)
        se = best.se_
        free = _free_parameters(best.params_, se)
        models = [row.pop("model") for row in rows]
        selection = pd.DataFrame(rows)
        selection.insert(len(selection.columns), "chosen", [m is best for m in models])
        score = diagnostics.get("max_abs_score", np.inf)
        converged = bool(score < 0.01)
        message = (
            f"{best.name} chosen by {criterion.upper()} among {len(candidates)} candidates; "
            f"{best.n_at_best_} of {diagnostics['n_final']} final starts at the best; "
            f"max |score| {score:.1e}; "
            f"smallest information eigenvalue {diagnostics.get('min_information_eigenvalue', np.nan):.3g}"
        )
        return LifecycleFit(
            model=self.name,
            params={name: float(value) for name, value, _ in free},
            se={name: float(value) for name, _, value in free},
            loglik=float(best.loglik_),
            n_customers=int(round(best.data_.n_customers)),
            converged=converged,
            iterations=int(best.n_estep_),
            message=message,
            seconds=time.perf_counter() - began,
            hmm=best,
            selection=selection,
            spend=spend,
            diagnostics=diagnostics,
            candidates=models,
            _data=data,
            _sequence_of_customer=cs,
        )


def _fit_spend(model: LifecycleHMM, panel, customer_sequence) -> dict | None:
    """Spend per purchase by stage from the panel's amounts per customer-period (calibration
    periods, first purchases included; a period with several purchases contributes its mean
    amount once per purchase; periods with a zero total are left out).
    """
    n_cal = panel.n_calibration_periods
    counts = panel.counts[:, :n_cal]
    amounts = panel.amounts[:, :n_cal]
    customer, period = np.nonzero((counts > 0) & (amounts > 0))
    if customer.size == 0:
        return None
    n = counts[customer, period]
    mean = amounts[customer, period] / n
    customer, period, mean = np.repeat(customer, n), np.repeat(period, n), np.repeat(mean, n)
    return model.fit_spend(customer.astype(np.int64), period.astype(np.int64), mean)
