"""Each model's expectations against a Monte Carlo simulation of the same model, and parameter
recovery from simulated data.

Monte Carlo checks: customers are simulated with known parameters (``simulate`` of each
model module), and each prediction is compared with the simulated truth in groups of
customers. The standard error of a group's mean difference is the sample standard deviation
of (truth - prediction) over sqrt(n) (for P(alive): sqrt(sum p(1-p)) / n, the binomial SE);
every comparison must be within 4 SE. With 200,000 customers a wrong term in a formula moves a
group by many SE (e.g. dropping a/(b+x-1) from the BG/NBD's P(alive) moves it by > 50 SE).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.data import CustomerData
from sim.fitting import bgnbd, ggamma, pnbd
from sim.fitting.base import get_model

N = 200_000
HOLDOUT = 39.0
BGNBD_TRUE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PNBD_TRUE = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
GG_TRUE = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def customer_data(simulated: pd.DataFrame) -> CustomerData:
    return CustomerData.from_summary(
        simulated[["frequency", "recency", "T", "holdout_frequency"]],
        unit="week",
        holdout_length=HOLDOUT,
        source="simulated customers",
    )


def fit_at(model: str, params: dict):
    """A fitted-model object at given parameters (no fitting)."""
    cls = get_model(model).fitted_class
    return cls(model=model, params=dict(params), se={}, loglik=np.nan, n_customers=0, converged=True)


def assert_within_4_se(
    truth: np.ndarray,
    predicted: np.ndarray,
    groups: np.ndarray,
    *,
    binomial: bool = False,
    min_size: int = 300,
) -> int:
    checked = 0
    for label in np.unique(groups):
        inside = groups == label
        n = int(inside.sum())
        if n < min_size:
            continue
        difference = float(np.mean(truth[inside] - predicted[inside]))
        if binomial:
            se = float(np.sqrt(np.sum(predicted[inside] * (1 - predicted[inside])))) / n
        else:
            se = float(np.std(truth[inside] - predicted[inside], ddof=1)) / np.sqrt(n)
        assert abs(difference) < 4 * se + 1e-12, (
            f"group {label!r}: n = {n}, difference {difference:.4g}, SE {se:.3g}"
        )
        checked += 1
    return checked


def frequency_groups(frequency: np.ndarray) -> np.ndarray:
    return np.digitize(frequency, [1, 2, 3, 5, 10])  # 0 | 1 | 2 | 3-4 | 5-9 | 10+


def p_alive_groups(p: np.ndarray, frequency: np.ndarray) -> np.ndarray:
    # x = 0, then quintiles of the predicted P(alive) among repeat buyers
    edges = np.quantile(p[frequency > 0], [0.2, 0.4, 0.6, 0.8])
    return np.where(frequency > 0, 1 + np.digitize(p, edges), 0)


@pytest.fixture(scope="module", params=["bgnbd", "pnbd"])
def simulated(request):
    rng = np.random.default_rng(20240601)
    T = rng.uniform(27.0, 39.0, N)  # acquired over 12 weeks, as CDNOW's cohort
    if request.param == "bgnbd":
        frame = bgnbd.simulate(*BGNBD_TRUE.values(), T, holdout=HOLDOUT, rng=rng)
        params = BGNBD_TRUE
    else:
        frame = pnbd.simulate(*PNBD_TRUE.values(), T, holdout=HOLDOUT, rng=rng)
        params = PNBD_TRUE
    return request.param, frame, fit_at(request.param, params)


def test_unconditional_expectation_matches_simulation(simulated):
    name, frame, fit = simulated
    expected = fit.expected_unconditional(frame["T"].to_numpy())
    truth = frame["frequency"].to_numpy(dtype=float)
    assert assert_within_4_se(truth, expected, np.zeros(N)) == 1
    # and at a fixed age of 78 weeks, from a fresh simulation
    rng = np.random.default_rng(7)
    module = bgnbd if name == "bgnbd" else pnbd
    long = module.simulate(*fit.params.values(), np.full(N, 78.0), rng=rng)["frequency"].to_numpy(dtype=float)
    se = long.std(ddof=1) / np.sqrt(N)
    assert abs(long.mean() - fit.expected_unconditional(78.0)) < 4 * se


def test_p_alive_matches_simulation(simulated):
    name, frame, fit = simulated
    data = customer_data(frame)
    p = fit.p_alive(data)
    alive = frame["alive"].to_numpy(dtype=float)
    x = frame["frequency"].to_numpy()
    if name == "bgnbd":
        # a BG/NBD customer can only drop out after a repeat purchase
        assert np.all(p[x == 0] == 1.0) and np.all(alive[x == 0] == 1.0)
    checked = assert_within_4_se(alive, p, p_alive_groups(p, x), binomial=True)
    checked += assert_within_4_se(alive, p, frequency_groups(x), binomial=True)
    assert checked >= 10


def test_conditional_expectation_matches_simulation(simulated):
    _, frame, fit = simulated
    data = customer_data(frame)
    expected = fit.expected_holdout_transactions(data)
    truth = frame["holdout_frequency"].to_numpy(dtype=float)
    x = frame["frequency"].to_numpy()
    checked = assert_within_4_se(truth, expected, frequency_groups(x))
    recency_share = np.where(x > 0, frame["recency"] / frame["T"], -1.0)
    checked += assert_within_4_se(truth, expected, np.digitize(recency_share, [0.0, 0.5, 0.8, 0.95]))
    assert checked >= 8


def test_gamma_gamma_expected_spend_matches_simulation():
    rng = np.random.default_rng(11)
    x = 1 + rng.poisson(2.0, N)
    frame = ggamma.simulate(*GG_TRUE.values(), x, rng=rng)
    fit = fit_at("ggamma", GG_TRUE)
    data = CustomerData.from_summary(
        pd.DataFrame(
            {"frequency": x, "recency": np.ones(N), "T": np.full(N, 2.0), "monetary": frame["monetary"]}
        )
    )
    expected = fit.expected_spend(data)
    truth = frame["next_value"].to_numpy()
    checked = assert_within_4_se(truth, expected, np.minimum(x, 6))
    checked += assert_within_4_se(
        truth, expected, np.digitize(frame["monetary"], np.quantile(frame["monetary"], [0.2, 0.4, 0.6, 0.8]))
    )
    assert checked >= 10
    # a customer without repeat transactions is expected to spend the population mean p gamma / (q - 1)
    assert ggamma.expected_spend(*GG_TRUE.values(), 0, np.nan) == pytest.approx(6.25 * 15.44 / 2.74)


# --------------------------------------------------------------------------- parameter recovery


@pytest.mark.parametrize(
    "name, truth, module, n",
    [
        ("bgnbd", BGNBD_TRUE, bgnbd, 8000),
        ("pnbd", PNBD_TRUE, pnbd, 8000),
    ],
)
def test_transaction_model_recovers_its_parameters(name, truth, module, n):
    rng = np.random.default_rng(3)
    frame = module.simulate(*truth.values(), rng.uniform(20.0, 39.0, n), rng=rng)
    fit = get_model(name).fit(customer_data(frame.assign(holdout_frequency=0)))
    assert fit.converged, fit.message
    for parameter, value in truth.items():
        assert abs(fit.params[parameter] - value) < 3 * fit.se[parameter], (
            parameter,
            fit.params[parameter],
            fit.se[parameter],
        )


def test_gamma_gamma_recovers_its_parameters():
    rng = np.random.default_rng(4)
    x = 1 + rng.poisson(2.0, 5000)
    frame = ggamma.simulate(*GG_TRUE.values(), x, rng=rng)
    data = CustomerData.from_summary(
        pd.DataFrame(
            {
                "frequency": x,
                "recency": np.ones(len(x)),
                "T": np.full(len(x), 2.0),
                "monetary": frame["monetary"],
            }
        )
    )
    fit = get_model("ggamma").fit(data)
    assert fit.converged, fit.message
    for parameter, value in GG_TRUE.items():
        assert abs(fit.params[parameter] - value) < 3 * fit.se[parameter], (
            parameter,
            fit.params[parameter],
            fit.se[parameter],
        )
