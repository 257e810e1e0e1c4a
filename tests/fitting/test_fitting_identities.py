"""Identities and limits of the models, DERT/CLV, and the registry's one interface."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from sim.data import CustomerData
from sim.fitting import base, bgnbd, ggamma, pnbd
from sim.fitting.base import (
    MODEL_REGISTRY,
    TransactionModelFit,
    get_model,
    model_names,
    register_model,
)

BG = (0.243, 4.414, 0.793, 2.426)
PN = (0.553, 10.578, 0.606, 11.669)


def fit_at(model: str, params: dict):
    cls = get_model(model).fitted_class
    return cls(model=model, params=dict(params), se={}, loglik=np.nan, n_customers=0, converged=True)


def small_data(holdout_length=39.0):
    summary = pd.DataFrame(
        {
            "frequency": [0, 1, 2, 7, 0],
            "recency": [0.0, 5.0, 30.43, 29.0, 0.0],
            "T": [38.86, 38.86, 38.86, 30.0, 10.0],
            "monetary": [np.nan, 12.0, 22.345, 70.0, np.nan],
        }
    )
    return CustomerData.from_summary(summary, holdout_length=holdout_length)


def test_bgnbd_p_alive_is_one_without_repeat_purchases():
    T = np.array([0.5, 10.0, 38.86, 500.0])
    assert np.all(bgnbd.p_alive(*BG, np.zeros(4), np.zeros(4), T) == 1.0)
    # ... and below one with them, decreasing in the time since the last purchase
    alive = bgnbd.p_alive(*BG, np.full(4, 2.0), np.array([38.0, 30.0, 20.0, 10.0]), np.full(4, 38.86))
    assert np.all(alive < 1) and np.all(np.diff(alive) < 0)


def test_pnbd_p_alive_decreases_with_silence_and_is_below_one():
    alive = pnbd.p_alive(*PN, np.full(4, 2.0), np.array([38.0, 30.0, 20.0, 10.0]), np.full(4, 38.86))
    assert np.all((alive > 0) & (alive < 1)) and np.all(np.diff(alive) < 0)
    # a customer just acquired (T = 0) is alive
    assert pnbd.p_alive(*PN, 0, 0.0, 0.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("module, params", [(bgnbd, BG), (pnbd, PN)])
def test_unconditional_expectation_limits(module, params):
    r, alpha = params[0], params[1]
    assert module.expected_transactions(*params, 0.0) == pytest.approx(0.0, abs=1e-15)
    # at first, purchases come at the mean rate r / alpha
    assert module.expected_transactions(*params, 1e-6) / 1e-6 == pytest.approx(r / alpha, rel=1e-4)
    t = np.array([1.0, 10.0, 100.0, 1e4])
    values = module.expected_transactions(*params, t)
    assert np.all(np.diff(values) > 0) and np.all(values < r / alpha * t)
    # a customer acquired at T = 0 with no history: the conditional expectation is E[X(t)]
    assert module.conditional_expected_transactions(
        *params, t, np.zeros(4), np.zeros(4), np.zeros(4)
    ) == pytest.approx(values, rel=1e-10)


def test_long_run_limits():
    # BG/NBD with a > 1: E[X(t)] -> (a + b - 1) / (a - 1) = E[number of purchases before dropout]
    r, alpha, a, b = 0.5, 3.0, 2.5, 4.0
    assert bgnbd.expected_transactions(r, alpha, a, b, 1e12) == pytest.approx((a + b - 1) / (a - 1), rel=1e-4)
    # Pareto/NBD with s > 1: E[X(t)] -> r beta / (alpha (s - 1))
    r, alpha, s, beta = 0.5, 3.0, 2.5, 4.0
    assert pnbd.expected_transactions(r, alpha, s, beta, 1e12) == pytest.approx(
        r * beta / (alpha * (s - 1)), rel=1e-4
    )
    # ... and at s = 1 the expression is continuous: (r beta / alpha) log(1 + t / beta)
    at_one = pnbd.expected_transactions(0.5, 3.0, 1.0, 4.0, 50.0)
    assert at_one == pytest.approx(0.5 * 4.0 / 3.0 * math.log1p(50.0 / 4.0), rel=1e-12)
    assert pnbd.expected_transactions(0.5, 3.0, 1.0 + 1e-9, 4.0, 50.0) == pytest.approx(at_one, rel=1e-8)
    # BG/NBD is continuous through a = 1
    at_a1 = bgnbd.expected_transactions(0.5, 3.0, 1.0, 4.0, 50.0)
    assert bgnbd.expected_transactions(0.5, 3.0, 1.0 + 1e-4, 4.0, 50.0) == pytest.approx(at_a1, rel=1e-4)


def test_cumulative_expectation_sums_over_acquisition_times():
    fit = fit_at("pnbd", dict(zip(("r", "alpha", "s", "beta"), PN)))
    acquired = np.array([0.0, 0.0, 2.0, 5.5])
    times = np.array([1.0, 3.0, 10.0])
    want = [sum(fit.expected_unconditional(max(t - s, 0.0)) for s in acquired) for t in times]
    assert fit.expected_cumulative(acquired, times) == pytest.approx(want, rel=1e-12)


def test_pnbd_dert_closed_form_equals_the_discounted_sum():
    data = small_data()
    fit = fit_at("pnbd", dict(zip(("r", "alpha", "s", "beta"), PN)))
    rate = math.log(1.15) / 52  # 15 % a year, continuously compounded per week
    closed = fit.dert(data, rate)
    summed = TransactionModelFit.dert(fit, data, rate, tolerance=1e-6)
    assert closed == pytest.approx(summed, rel=2e-4)
    # FHL (2005b): DERT of a customer with x = 2, t_x = 30.43, T = 38.86 is finite and larger than
    # that of a customer with the same x but a longer silence
    assert closed[2] > closed[1] > 0


def test_bgnbd_dert_sum_approximates_the_continuous_integral():
    # DERT = P(alive) E[λ / (δ + λ p)], λ ~ Gamma(r+x, α+T), p ~ Beta(a, b+x) given alive at T
    r, alpha, a, b = BG
    rate = 0.01
    x, t_x, T = 2.0, 30.43, 38.86

    def inner(p):
        def over_lambda(lam):
            log_density = (
                (r + x) * math.log(alpha + T)
                + (r + x - 1) * math.log(lam)
                - (alpha + T) * lam
                - math.lgamma(r + x)
            )
            return lam / (rate + lam * p) * math.exp(log_density)

        value, _ = integrate.quad(over_lambda, 0.0, np.inf, epsrel=1e-10, limit=200)
        return value * math.exp(
            (a - 1) * math.log(p) + (b + x - 1) * math.log1p(-p) - special.betaln(a, b + x)
        )

    continuous, _ = integrate.quad(inner, 0.0, 1.0, epsrel=1e-9, limit=200, points=[1e-4, 1e-2])
    continuous *= float(bgnbd.p_alive(r, alpha, a, b, x, t_x, T))
    summed = float(bgnbd.dert(r, alpha, a, b, rate, x, t_x, T, tolerance=1e-7)[0])
    assert summed == pytest.approx(continuous, rel=1e-3)


def test_clv_is_dert_times_spend_times_margin():
    data = small_data()
    transactions = fit_at("pnbd", dict(zip(("r", "alpha", "s", "beta"), PN)))
    spend = fit_at("ggamma", {"p": 6.25, "q": 3.74, "gamma": 15.44})
    rate = 0.0027
    clv = transactions.clv(data, spend, discount_rate=rate, margin=0.3)
    assert clv == pytest.approx(transactions.dert(data, rate) * spend.expected_spend(data) * 0.3)
    assert spend.population_mean == pytest.approx(6.25 * 15.44 / 2.74)
    with pytest.raises(ValueError, match="discount_rate"):
        transactions.dert(data, 0.0)


# --------------------------------------------------------------------------- registry


def test_registry_lists_the_models_and_rejects_unknown_names():
    assert {"bgnbd", "pnbd", "ggamma"} <= set(model_names())
    assert get_model("pnbd").title == "Pareto/NBD" and get_model("ggamma").kind == "spend"
    with pytest.raises(ValueError, match="unknown model 'hmm'; choose from 'bgnbd', 'pnbd', 'ggamma'"):
        get_model("hmm")
    with pytest.raises(ValueError, match="lowercase"):
        register_model(
            type("Bad", (base.CustomerBaseModel,), {"name": "Bad Name", "fit": lambda self, data: None})
        )
    with pytest.raises(ValueError, match="already registered"):
        register_model(
            type("Other", (base.CustomerBaseModel,), {"name": "bgnbd", "fit": lambda self, data: None})
        )


class NBDFit(TransactionModelFit):
    """The NBD (no dropout): a fourth model written against the one interface only."""

    def p_alive(self, data):
        return np.ones(data.n_customers)

    def expected_conditional(self, data, t):
        return (self.params["r"] + data.frequency) / (self.params["alpha"] + data.T) * t

    def expected_unconditional(self, t):
        return self.params["r"] / self.params["alpha"] * np.asarray(t, dtype=float)


class NBDTest(base.MaximumLikelihoodModel):
    name = "nbdtest"
    title = "NBD"
    parameter_names = ("r", "alpha")
    fitted_class = NBDFit

    def prepare(self, data):
        return base.rfm_arrays(data)

    def loglik(self, params, prepared):
        r, alpha = params
        x, T = prepared["frequency"], prepared["T"]
        return float(
            prepared.weight
            @ (special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + T))
        )

    def start_values(self, prepared):
        return np.array([1.0, 10.0])


@pytest.fixture()
def fourth_model():
    register_model(NBDTest)
    yield NBDTest
    MODEL_REGISTRY.pop("nbdtest", None)


def test_a_fourth_model_plugs_in_with_one_registry_entry(fourth_model):
    from sim.data import CDNOW_CALIBRATION_END, CDNOW_HOLDOUT_END, load_cdnow_sample
    from sim.fitting.evaluation import fit_transactions

    result = fit_transactions(
        load_cdnow_sample(), CDNOW_CALIBRATION_END, CDNOW_HOLDOUT_END, models=("bgnbd", "nbdtest")
    )
    assert result.fit["model"].tolist() == ["bgnbd", "nbdtest"] and result.fit["converged"].all()
    nbd = result.fits["nbdtest"]
    # the NBD's MLE has a closed-form check: E[λ] = r / α fits the mean rate... its score in α is zero:
    x, T = result.data.frequency, result.data.T
    r, alpha = nbd.params["r"], nbd.params["alpha"]
    assert np.sum(r / alpha - (r + x) / (alpha + T)) == pytest.approx(0.0, abs=1e-3)
    for column in ("expected_nbdtest", "p_alive_nbdtest"):
        assert column in result.customers.columns
    assert "expected_nbdtest" in result.tracking.columns and "expected_nbdtest" in result.by_frequency.columns
    assert set(result.evaluation["model"]) == {"bgnbd", "nbdtest"}
    assert result.parameters.query("model == 'nbdtest'")["parameter"].tolist() == ["r", "alpha"]


def test_a_fit_that_does_not_converge_is_reported_not_raised():
    # every customer spends exactly the same: the Gamma-Gamma's p and q run to infinity
    summary = pd.DataFrame({"frequency": [1, 2, 3, 1, 2] * 20, "recency": 1.0, "T": 2.0, "monetary": 10.0})
    fit = get_model("ggamma").fit(CustomerData.from_summary(summary))
    assert fit.converged is False
    assert "Hessian is not negative definite" in fit.message
    assert np.isnan(fit.se["p"])
    assert fit.parameters.columns.tolist() == ["parameter", "estimate", "se"]


def test_ggamma_needs_amounts():
    summary = pd.DataFrame({"frequency": [0, 2, 1], "recency": [0.0, 1.0, 1.0], "T": 2.0})
    from sim.exceptions import DataError

    with pytest.raises(DataError, match="needs transaction amounts"):
        get_model("ggamma").fit(CustomerData.from_summary(summary))
    assert ggamma.GammaGamma.parameter_names == ("p", "q", "gamma")


def test_gamma_gamma_leaves_out_zero_value_buyers_and_says_so():
    rng = np.random.default_rng(5)
    x = 1 + rng.poisson(2.0, 400)
    money = ggamma.simulate(6.25, 3.74, 15.44, x, rng=rng)["monetary"].to_numpy().copy()
    money[:3] = 0.0
    summary = pd.DataFrame({"frequency": x, "recency": 1.0, "T": 2.0, "monetary": money})
    fit = get_model("ggamma").fit(CustomerData.from_summary(summary))
    # a mean of 0 has zero density under the gamma model: those buyers are left out, and the fit says so
    assert fit.n_customers == 397
    assert "3 repeat buyers whose repeat transactions are all worth 0 were left out" in fit.message
    assert fit.converged
