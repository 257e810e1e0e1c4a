"""Beta-heterogeneous churn (M8): the sampler, the sBG survival it must produce, and the oracle."""

import numpy as np
import pytest
from numba import njit
from scipy import stats

import sim
from sim.analytic.sbg import sbg_survival
from sim.engines.core import simulate_chunk
from sim.engines.reference import simulate_reference
from sim.model import streams
from sim.model.arrays import model_arrays
from sim.model.policies import policy_tables


@njit(cache=True)
def _beta_draws(alpha, beta, n):
    out = np.empty(n)
    s0, s1 = streams.seed_stream(99, 0, 0, 5)
    for i in range(n):
        out[i], s0, s1 = streams.next_beta(alpha, beta, s0, s1)
    return out


@pytest.mark.parametrize("alpha, beta", [(0.704, 1.182), (3.8, 0.67), (0.1, 0.2), (5.0, 5.0), (50.0, 100.0)])
def test_beta_sampler_matches_the_beta_distribution(alpha, beta):
    """Mean within 4 SE (SE = sd/sqrt(n), n = 200,000) and a KS test p > 1e-4 (both shapes
    below and above 1 exercise the two branches of the Marsaglia-Tsang gamma).
    """
    n = 200_000
    draws = _beta_draws(alpha, beta, n)
    mean = alpha / (alpha + beta)
    sd = np.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1)))
    assert abs(draws.mean() - mean) < 4 * sd / np.sqrt(n)
    assert stats.kstest(draws, stats.beta(alpha, beta).cdf).pvalue > 1e-4
    assert ((draws >= 0) & (draws <= 1)).all()


def _sbg_config(alpha, beta, horizon=24):
    return sim.config_from_dict(
        {
            "population": {"churn_propensity": {"alpha": alpha, "beta": beta}},
            "transitions": {"exit": {"exploration": 0.0, "formation": 0.0, "stability": 0.0}, "churn": 0.0},
            "run": {"horizon": horizon, "replications": 1},
            "policies": [
                {"name": "none", "kind": "none"},
                {"name": "uniform", "kind": "uniform", "spend": 3.0},
            ],
        }
    )


def test_cohort_survival_is_shifted_beta_geometric():
    """With stage exits off, S(t) = share active at the start of period t must equal
    B(a, b+t)/B(a, b) (Fader & Hardie 2007). Tolerance 4 SE, SE = sqrt(S(1-S)/n), n = 100,000,
    at every t = 1..24; the retention curve S(t)/S(t-1) rises with t (the effect of heterogeneity).
    """
    alpha, beta, n = 0.704, 1.182, 100_000
    config = _sbg_config(alpha, beta)
    result = sim.project(config, customers=n)
    ended = result.stages[(result.stages["policy"] == "none") & (result.stages["stage"] == "ended")]
    survival = 1.0 - ended.set_index("period")["share"]
    t = np.arange(1, 25)
    exact = sbg_survival(alpha, beta, t)
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(survival.loc[t].to_numpy() - exact) < 4 * se)
    retention = survival.loc[t].to_numpy() / survival.loc[t - 1].to_numpy()
    # exact retention rises from 0.63 (t=1) to 0.95 (t=24); sampling noise in one period's
    # ratio is below 0.01 here, so compare early and late periods rather than neighbours
    assert retention[:3].max() + 0.1 < retention[-6:].min()
    # spend does not change who churns for this reason: same survival under both policies (CRN)
    other = result.stages[(result.stages["policy"] == "uniform") & (result.stages["stage"] == "ended")]
    np.testing.assert_array_equal(other["share"].to_numpy(), ended["share"].to_numpy())


def test_reference_matches_core_with_beta_churn():
    config = sim.config_from_dict(
        {"population": {"churn_propensity": {"alpha": 2.0, "beta": 30.0}}, "run": {"horizon": 60}}
    )
    core = simulate_chunk(model_arrays(config), policy_tables(config), config.run.seed, 0, 0, 3000, 60)
    reference = simulate_reference(config, customers=3000, horizon=60)
    np.testing.assert_allclose(reference["clv"], core.clv, rtol=1e-9, atol=1e-9)
    baseline = sim.config_from_dict({"run": {"horizon": 60}})
    plain = simulate_chunk(model_arrays(baseline), policy_tables(baseline), baseline.run.seed, 0, 0, 3000, 60)
    assert (core.clv.mean(axis=1) < plain.clv.mean(axis=1)).all()  # extra churn costs value


def test_beta_churn_config_is_validated():
    with pytest.raises(sim.ConfigError, match="population.churn_propensity.alpha = 0.0"):
        sim.config_from_dict({"population": {"churn_propensity": {"alpha": 0.0, "beta": 1.0}}})
    with pytest.raises(sim.ConfigError, match="population.churn_propensity.beta"):
        sim.config_from_dict({"population": {"churn_propensity": {"alpha": 1.0}}})
