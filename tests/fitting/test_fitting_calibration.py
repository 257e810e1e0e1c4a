"""Calibration to observed retention (sim.fitting.calibration): fits, written configs, transaction logs.

Statistical tolerances are stated per test and tied to the sample size: parameter estimates
within 4 asymptotic standard errors from the expected Fisher information of the sBG
likelihood (checked itself against a numerical Hessian below); simulated shares within
4 binomial SEs.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import sim
from sim.analytic.sbg import sbg_survival
from sim.checks.validate import markov_reducible_config
from sim.cli import EXIT_BAD_INPUT
from sim.cli.main import main
from sim.fitting import calibration as cal
from sim.fitting import cohort as log_calibration
from sim.fitting import synthetic
from sim.model import config as config_module

DATA = Path(__file__).resolve().parents[1] / "data"
LOG = DATA / "synthetic_log.csv"
LOG_CONFIG = DATA / "synthetic_log.toml"
# how tests/data/synthetic_log.csv was generated (see tests/data/README.md)
LOG_CUSTOMERS, LOG_LATE, LOG_SEED = 300, 40, 7
LOG_ALPHA, LOG_BETA = 1.2, 3.5

EXITS_OFF = {"exit": {"exploration": 0.0, "formation": 0.0, "stability": 0.0}, "churn": 0.0}


def sbg_config(alpha, beta, horizon, **sections):
    """The baseline lifecycle model with Beta churn as the only way a relationship ends."""
    data = {
        "population": {"churn_propensity": {"alpha": alpha, "beta": beta}},
        "transitions": dict(EXITS_OFF),
        "run": {"horizon": horizon, "replications": 1},
        "policies": [{"name": "none", "kind": "none"}],
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return sim.config_from_dict(data)


def simulated_survivors(config, customers, seed):
    """Customers active at the start of periods 0..H in a toolkit run (first policy)."""
    result = sim.project(config, customers=customers, seed=seed, replications=1)
    stages = result.stages
    ended = stages[(stages["policy"] == config.policy_names[0]) & (stages["stage"] == "ended")].sort_values(
        "period"
    )
    return np.rint(customers * (1.0 - ended["share"].to_numpy())).astype(np.int64)


# ----------------------------------------------------------------------------- survivor counts: bad input


@pytest.mark.parametrize(
    "values, expected",
    [
        ([], ["survivors is empty"]),
        ([1000], ["at least 2 counts"]),
        ([1000, 900, 950], ["survivors[2] = 950 > survivors[1] = 900", "non-increasing"]),
        ([1000, -5], ["survivors[1] = -5", ">= 0"]),
        ([1000, 800.5], ["survivors[1] = 800.5", "whole number"]),
        ([0, 0], ["survivors[0] = 0", "cohort size"]),
        ([1000, 1000, 1000], ["no customer was lost"]),
        ([1000, "x"], ["survivors[1] = 'x'", "whole number"]),
    ],
)
def test_check_survivors_names_the_entry_and_the_rule(values, expected):
    with pytest.raises(ValueError) as error:
        cal.check_survivors(values)
    for text in expected:
        assert text in str(error.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "--survivors is empty"),
        ("   ", "--survivors is empty"),
        ("1000,abc,700", "--survivors entry 1 = 'abc' is not a whole number"),
        ("1000,,700", "--survivors entry 1 = '' is not a whole number"),
        ("1000;900", "--survivors entry 0 = '1000;900'"),
        ("1000,900.5", "entry 1 = '900.5'"),
        ("1000,-3", "--survivors[1] = -3: must be >= 0"),
        ("1000,1100", "--survivors[1] = 1100 > --survivors[0] = 1000"),
        ("99999999999999999999999,1", "--survivors[0] = 99999999999999999999999: must be <= 1e+12 customers"),
    ],
)
def test_parse_survivors_errors(text, expected):
    with pytest.raises(ValueError, match=None) as error:
        cal.parse_survivors(text)
    assert expected in str(error.value)


def test_parse_survivors_accepts_spaces():
    np.testing.assert_array_equal(cal.parse_survivors(" 1000, 869 ,743"), [1000, 869, 743])


# ----------------------------------------------------------------------------- Fisher information


def _expected_loglik(alpha, beta, expected_counts, n_periods):
    """sum_k n_k log p_k over the outcomes T = 1..n and T > n, written directly with betaln."""
    t = np.arange(1, n_periods + 1)
    log_p = [special.betaln(alpha + 1, beta + k - 1) - special.betaln(alpha, beta) for k in t]
    log_p.append(special.betaln(alpha, beta + n_periods) - special.betaln(alpha, beta))
    return float(np.dot(expected_counts, log_p))


@pytest.mark.parametrize("alpha, beta, n_periods", [(0.7, 2.0, 10), (3.8, 0.67, 5), (1.2, 3.5, 23)])
def test_fisher_information_equals_minus_hessian_of_expected_loglik(alpha, beta, n_periods):
    """For multinomial data the expected information is minus the Hessian of the
    log-likelihood evaluated at the expected counts (the second-derivative terms of the
    probabilities sum to zero). Numerical Hessian by central differences, step 1e-4:
    truncation error ~1e-8 relative, so compare at rtol 1e-5.
    """
    t = np.arange(1, n_periods + 1)
    probabilities = np.append(
        np.exp(special.betaln(alpha + 1, beta + t - 1) - special.betaln(alpha, beta)),
        sbg_survival(alpha, beta, n_periods),
    )
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    h = 1e-4
    point = np.array([alpha, beta])
    hessian = np.empty((2, 2))
    for i in range(2):
        for j in range(2):

            def f(di, dj):
                x = point.copy()
                x[i] += di
                x[j] += dj
                return _expected_loglik(x[0], x[1], probabilities, n_periods)

            hessian[i, j] = (f(h, h) - f(h, -h) - f(-h, h) + f(-h, -h)) / (4 * h * h)
    np.testing.assert_allclose(
        sim.analytic.sbg_fisher_information(alpha, beta, n_periods), -hessian, rtol=1e-5
    )


def test_standard_errors_scale_with_one_over_root_n():
    se_small = sim.analytic.sbg_standard_errors(0.7, 2.0, 1000, 8)
    se_large = sim.analytic.sbg_standard_errors(0.7, 2.0, 4000, 8)
    np.testing.assert_allclose(np.array(se_small) / np.array(se_large), 2.0, rtol=1e-12)


# ----------------------------------------------------------------------------- round trip through the toolkit


def test_calibration_round_trip_through_the_toolkit(tmp_path):
    """Simulate a cohort from known (alpha, beta) with the jitted core under the full
    lifecycle dynamics, calibrate on its survivor counts, and:

    1. recover alpha and beta within 4 asymptotic SEs (expected Fisher information for
       N = 20,000 customers observed for 12 periods: SE(alpha) ~ 0.03, SE(beta) ~ 0.12);
    2. write the config, load it back and re-simulate with another seed: the survival at every
       period t = 1..12 lies within 4 SE of the observed one, SE = sqrt(S(1-S)(1/N_obs + 1/N_sim))
       (the two runs are independent; the fitted curve only pulls the observed values closer), and
       within 4 SE = sqrt(S(1-S)/N_sim) of the fitted sBG curve.
    """
    alpha, beta, n_obs, periods = 0.9, 2.4, 20_000, 12
    truth = sbg_config(alpha, beta, periods)
    survivors = simulated_survivors(truth, n_obs, seed=11)
    assert survivors[0] == n_obs and survivors.size == periods + 1
    base = sim.config_from_dict({})
    calibration = cal.calibrate_survival(survivors, base, name="round_trip")
    alpha_se, beta_se = sim.analytic.sbg_standard_errors(alpha, beta, n_obs, periods)
    assert 0.01 < alpha_se < 0.1 and 0.05 < beta_se < 0.3  # the tolerance is informative
    assert abs(calibration.fit.alpha - alpha) < 4 * alpha_se
    assert abs(calibration.fit.beta - beta) < 4 * beta_se
    assert calibration.fit.converged

    path = calibration.write(tmp_path / "calibrated.toml")
    config = sim.load_config(path)
    assert config == calibration.config
    assert config.population.churn_propensity.alpha == calibration.fit.alpha
    assert config.population.churn_propensity.beta == calibration.fit.beta
    assert config.transitions.exit.as_tuple() == (0.0, 0.0, 0.0, 0.0) and config.transitions.churn == 0.0
    # everything else is the base config's
    assert (
        config.dynamics == base.dynamics
        and config.economics == base.economics
        and config.policies == base.policies
    )
    assert config.run.horizon == base.run.horizon

    n_sim = 20_000
    resimulated = simulated_survivors(config.with_overrides(run={"horizon": periods}), n_sim, seed=12345)
    t = np.arange(1, periods + 1)
    observed = survivors[t] / n_obs
    again = resimulated[t] / n_sim
    fitted = sbg_survival(calibration.fit.alpha, calibration.fit.beta, t)
    se_pair = np.sqrt(fitted * (1 - fitted) * (1 / n_obs + 1 / n_sim))
    assert np.all(np.abs(again - observed) < 4 * se_pair), np.abs(again - observed) / se_pair
    assert np.all(np.abs(again - fitted) < 4 * np.sqrt(fitted * (1 - fitted) / n_sim))


def test_fit_table_and_known_published_cohort():
    """Fader & Hardie's (2007) 'regular' customers, 7 years: their published MLE is
    alpha = 0.704, beta = 1.182. The table's columns follow their definitions exactly.
    """
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    calibration = cal.calibrate_survival(survivors)
    assert calibration.fit.alpha == pytest.approx(0.704, abs=0.001)
    assert calibration.fit.beta == pytest.approx(1.182, abs=0.001)
    table = calibration.table
    assert list(table["period"]) == list(range(8))
    np.testing.assert_allclose(table["observed_survival"], np.array(survivors) / 1000)
    np.testing.assert_allclose(
        table["fitted_survival"], sbg_survival(calibration.alpha, calibration.beta, np.arange(8))
    )
    np.testing.assert_allclose(
        table["observed_retention"].iloc[1:], np.array(survivors[1:]) / np.array(survivors[:-1])
    )
    fitted_survival = table["fitted_survival"].to_numpy()
    np.testing.assert_allclose(
        table["fitted_retention"].iloc[1:], fitted_survival[1:] / fitted_survival[:-1], rtol=1e-12
    )
    np.testing.assert_allclose(table["expected_survivors"], 1000 * fitted_survival)


def test_homogeneous_cohort_is_written_at_the_bound_keeping_the_mean():
    """Exactly geometric survival (constant retention 0.8) has its likelihood supremum at
    alpha, beta -> infinity: the optimiser stops far out on the flat ridge (not converged);
    the config gets parameters within the allowed range with the same mean churn propensity
    0.2, and the header says so.
    """
    survivors = [100_000, 80_000, 64_000, 51_200, 40_960]
    calibration = cal.calibrate_survival(survivors)
    alpha, beta = (
        calibration.config.population.churn_propensity.alpha,
        calibration.config.population.churn_propensity.beta,
    )
    assert max(alpha, beta) <= cal.MAX_BETA_PARAMETER
    assert not calibration.fit.converged and min(calibration.fit.alpha, calibration.fit.beta) > 1000
    assert alpha / (alpha + beta) == pytest.approx(0.2, abs=1e-4)
    assert any("boundary" in note for note in calibration.notes)
    np.testing.assert_allclose(calibration.table["fitted_survival"], 0.8 ** np.arange(5), rtol=1e-4)


def test_calibrating_another_base_keeps_it_and_raises_a_short_horizon():
    base = markov_reducible_config(name="short", run={"horizon": 3}, economics={"period_months": 3.0})
    calibration = cal.calibrate_survival([500, 400, 330, 280, 250, 230], base, name="quarterly")
    config = calibration.config
    assert config.name == "quarterly"
    assert config.run.horizon == 5  # raised to the observed periods
    assert config.economics == base.economics and config.dynamics == base.dynamics
    assert config.transitions.loyalty_effect_exit == 0.0  # the base's, untouched


# ----------------------------------------------------------------------------- TOML writer


def test_every_policy_kind_and_odd_text_survive_the_toml_round_trip(tmp_path):
    config = sim.config_from_dict(
        {
            "name": "odd-text_1",
            "description": 'quotes " and \\ backslash,\ttab, new\nline, unicode 满意度 ✓, '
            "del \x7f, bell \x07",
            "population": {"churn_propensity": {"alpha": 1e-7, "beta": 123456.789}, "wallet_median": 1e-300},
            "policies": [
                {"name": "none", "kind": "none", "description": "nothing"},
                {"name": "uniform", "kind": "uniform", "spend": 0.1 + 0.2},
                {
                    "name": "stage",
                    "kind": "stage",
                    "spend": {"formation": 4.0},
                    "segment_multiplier": {"relationship": 2.0},
                },
                {
                    "name": "table",
                    "kind": "table",
                    "relationship": {"stability": 1.0},
                    "transactional": {"decline": 3.0},
                },
                {"name": "value", "kind": "value", "tier_spend": {"A": 5.0, "B": 2.0, "C": 0.0}},
                {"name": "max", "kind": "max_satisfaction"},
                {"name": "react", "kind": "reactive", "spend": 3.0, "satisfaction_drop": 0.07},
            ],
            "run": {"seed": 2**63 - 1},
        }
    )
    text = config_module.config_to_toml(config, header=["line one", "line # two"])
    assert text.startswith("# line one\n# line # two\n")
    assert sim.config_from_dict(tomllib.loads(text)) == config
    path = config_module.write_config(config, tmp_path / "sub" / "odd.toml", header=["h"])
    assert sim.load_config(path) == config
    assert path.read_text(encoding="utf-8") == config_module.config_to_toml(config, header=["h"])


def test_baseline_experiment_round_trips(baseline_config):
    assert (
        sim.config_from_dict(tomllib.loads(config_module.config_to_toml(baseline_config))) == baseline_config
    )


def test_write_config_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("keep me")
    config = sim.config_from_dict({})
    with pytest.raises(FileExistsError, match="--force"):
        config_module.write_config(config, path)
    assert path.read_text() == "keep me"
    config_module.write_config(config, path, force=True)
    assert sim.load_config(path) == config


# ----------------------------------------------------------------------------- transaction logs


def _log_frame(rows):
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"])


def test_cohort_survival_definition_on_a_hand_built_quarterly_log():
    """Quarterly periods from the first month with a transaction (2023-11): period 0 =
    Nov-Jan, 1 = Feb-Apr, 2 = May-Jul, 3 = Aug-Oct. Cohort = first transaction in period 0
    (A, B, C, E; D joins in period 1). Alive in t = transacts in t or later: last periods
    A 0, B 2, C 0, E 3 -> survivors [4, 2, 2, 1]; the revenue level is the cohort's amount
    over its 9 alive customer-periods.
    """
    log = _log_frame(
        [
            ("A", "2023-11-05", 10.0),
            ("A", "2024-01-31", 5.0),
            ("B", "2023-12-20", 20.0),
            ("B", "2024-07-02", 7.0),
            ("C", "2024-01-01", 3.0),
            ("D", "2024-02-01", 100.0),
            ("D", "2024-10-01", 100.0),
            ("E", "2023-11-30", 1.0),
            ("E", "2024-10-31", 2.0),
        ]
    )
    summary = log_calibration.cohort_survival(log, period_months=3)
    np.testing.assert_array_equal(summary.survivors, [4, 2, 2, 1])
    assert summary.first_month == "2023-11" and summary.n_periods == 4
    assert summary.cohort_customers == 4 and summary.log_customers == 5 and summary.transactions == 9
    assert summary.revenue == pytest.approx(48.0)
    assert summary.active_periods == 9
    assert summary.revenue_per_active_period == pytest.approx(48.0 / 9)
    # delta-method SE from the per-customer (revenue, alive periods): A (15, 1), B (27, 3), C (3, 1), E (3, 4)
    y, x = np.array([15.0, 27.0, 3.0, 3.0]), np.array([1.0, 3.0, 1.0, 4.0])
    ratio = y.sum() / x.sum()
    expected_se = math.sqrt(np.sum((y - ratio * x) ** 2) / (4 * 3)) / x.mean()
    assert summary.revenue_per_active_period_se == pytest.approx(expected_se)
    # monthly: cohort = first transaction in Nov 2023 (A, E); A last buys in Jan 2024 (period 2), E in Oct
    # 2024 (11)
    monthly = log_calibration.cohort_survival(log, period_months=1)
    np.testing.assert_array_equal(monthly.survivors, [2, 2, 2] + [1] * 9)


def test_synthetic_log_survival_is_the_simulators_exactly():
    """The log is generated by the same kernel, seed and customers as sim.project, so the
    cohort survivor counts derived from it (transacts in t or later) equal the simulator's
    counts of customers active at the start of each period, integer for integer; customers
    acquired a period later are left out of the cohort.
    """
    config = sbg_config(0.9, 2.0, 18)
    log = synthetic.synthetic_transaction_log(config, 5000, seed=3, late_customers=700)
    summary = log_calibration.cohort_survival(log)
    np.testing.assert_array_equal(summary.survivors, simulated_survivors(config, 5000, seed=3)[:18])
    assert summary.cohort_customers == 5000 and summary.log_customers == 5700
    # one transaction per customer per active period, dated inside its calendar month
    months = log.assign(month=log["date"].dt.to_period("M"))
    assert not months.duplicated(["customer_id", "month"]).any()
    assert summary.transactions == len(log)


def test_wallet_level_is_recovered_exactly_when_revenue_is_deterministic():
    """With wallet_sigma = 0 and customers who stay in exploration with no tenure growth,
    every transaction is wallet_median * sow_exploration exactly; calibrating a base with
    wallet_median 100 on a log made with 250 must give 250 (to rounding), and the calibrated
    config reproduces the observed revenue per active customer-period.
    """

    def make(wallet_median):
        return markov_reducible_config(
            population={
                "wallet_sigma": 0.0,
                "wallet_median": wallet_median,
                "churn_propensity": {"alpha": 1.0, "beta": 3.0},
            },
            transitions={**EXITS_OFF, "advance": {"exploration": 0.0, "formation": 0.1}},
            run={"horizon": 12, "replications": 1},
            policies=[{"name": "none", "kind": "none"}],
        )

    log = synthetic.synthetic_transaction_log(make(250.0), 2000, seed=5)
    assert set(log["amount"]) == {25.0}  # 250 * sow 0.10
    calibration = log_calibration.calibrate_transactions(log, 1, make(100.0), pilot_customers=8192)
    assert calibration.config.population.wallet_median == pytest.approx(250.0, rel=1e-12)
    assert calibration.details["cohort"].revenue_per_active_period == pytest.approx(25.0, rel=1e-12)
    assert calibration.details["gross_margin_per_active_period"] == pytest.approx(25.0 * 0.15, rel=1e-12)


def test_transactions_round_trip_under_full_dynamics():
    """4,000 customers under the baseline lifecycle dynamics with sBG churn (alpha 0.8, beta
    2.2, wallet_median 150): alpha and beta within 4 Fisher SEs; the wallet level within 4 SE
    of 150, SE = relative SE of the observed revenue per active period (delta method) inflated
    by sqrt(1 + 4,000/50,000) for the pilot run's own sampling error; and with the pilot's seed
    the calibrated config reproduces the observed revenue level exactly (it is linear in the
    wallet level).
    """
    truth = sbg_config(
        0.8, 2.2, 18, population={"wallet_median": 150.0, "churn_propensity": {"alpha": 0.8, "beta": 2.2}}
    )
    log = synthetic.synthetic_transaction_log(truth, 4000, seed=21, late_customers=500)
    base = truth.with_overrides(population={"wallet_median": 100.0, "churn_propensity": None})
    calibration = log_calibration.calibrate_transactions(log, 1, base)
    cohort = calibration.details["cohort"]
    alpha_se, beta_se = sim.analytic.sbg_standard_errors(0.8, 2.2, 4000, cohort.n_periods - 1)
    assert abs(calibration.alpha - 0.8) < 4 * alpha_se
    assert abs(calibration.beta - 2.2) < 4 * beta_se
    relative_se = cohort.revenue_per_active_period_se / cohort.revenue_per_active_period
    assert 0.005 < relative_se < 0.05
    wallet = calibration.config.population.wallet_median
    assert abs(wallet / 150.0 - 1) < 4 * relative_se * math.sqrt(1 + 4000 / log_calibration.PILOT_CUSTOMERS)
    again = log_calibration.simulated_revenue_per_active_period(calibration.config, horizon=cohort.n_periods)
    assert again == pytest.approx(cohort.revenue_per_active_period, rel=1e-9)


def test_committed_synthetic_log_regenerates_byte_for_byte():
    config = sim.load_config(LOG_CONFIG)
    log = synthetic.synthetic_transaction_log(config, LOG_CUSTOMERS, LOG_SEED, late_customers=LOG_LATE)
    assert synthetic.transaction_log_csv(log) == LOG.read_text(encoding="utf-8")


def test_committed_synthetic_log_calibrates_to_its_source():
    """300 cohort customers, 23 observed periods: alpha and beta within 4 Fisher SEs of the
    generating (1.2, 3.5) (SE about 0.25 and 1.1), the wallet level within 4 relative SEs of 100.
    """
    log = log_calibration.read_transaction_log(LOG)
    assert len(log) == len(LOG.read_text().splitlines()) - 1
    calibration = log_calibration.calibrate_transactions(
        log, 1, sim.load_config(LOG_CONFIG).with_overrides(population={"churn_propensity": None})
    )
    cohort = calibration.details["cohort"]
    assert cohort.cohort_customers == LOG_CUSTOMERS and cohort.log_customers == LOG_CUSTOMERS + LOG_LATE
    alpha_se, beta_se = sim.analytic.sbg_standard_errors(
        LOG_ALPHA, LOG_BETA, LOG_CUSTOMERS, cohort.n_periods - 1
    )
    assert abs(calibration.alpha - LOG_ALPHA) < 4 * alpha_se
    assert abs(calibration.beta - LOG_BETA) < 4 * beta_se
    relative_se = cohort.revenue_per_active_period_se / cohort.revenue_per_active_period
    assert abs(calibration.config.population.wallet_median / 100.0 - 1) < 4 * relative_se * math.sqrt(1.01)


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        ("", "is empty"),
        ("customer_id,date,amount\n", "has a header but no rows"),
        ("customer,date,amount\nA,2024-01-01,1\n", "missing column(s) customer_id"),
        (
            "customer_id,date,amount\nA,2024-01-01,1\nB,2024-13-01,2\n",
            "line 3: date = '2024-13-01' is not a calendar date (month must be in 1..12)",
        ),
        ("customer_id,date,amount\nA,01/02/2024,1\n", "line 2: date = '01/02/2024'"),
        ("customer_id,date,amount\nA,2024-01-01,ten\n", "line 2: amount = 'ten' is not a number"),
        (
            "customer_id,date,amount\nA,2024-01-01,-4\n",
            "line 2: amount = '-4' is negative; amounts must be >= 0",
        ),
        ("customer_id,date,amount\nA,2024-01-01,nan\n", "line 2: amount = 'nan' is not a number"),
        ("customer_id,date,amount\nA,2024-01-01\n", "line 2: amount is empty"),  # a short row
        ("customer_id,date,amount\n,2024-01-01,3\n", "line 2: customer_id is missing (empty)"),
        ("Customer_ID,Date,Amount\nA,2024-01-01,x\nB,2024-01-02,1\n", "line 2: Amount = 'x' is not a number"),
        ('customer_id,date,amount\n"A,2024-01-01,3\n', "not valid CSV"),
    ],
)
def test_malformed_logs_give_clear_errors(tmp_path, content, expected):
    path = tmp_path / "log.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as error:
        log_calibration.read_transaction_log(path)
    assert expected in str(error.value)
    assert str(path) in str(error.value)


def test_logs_that_cannot_be_fitted_say_why():
    one_period = _log_frame([("A", "2024-01-03", 1.0), ("B", "2024-01-20", 2.0)])
    with pytest.raises(ValueError, match="spans only 1 period"):
        log_calibration.cohort_survival(one_period)
    nobody_leaves = _log_frame([("A", "2024-01-03", 1.0), ("A", "2024-02-03", 1.0)])
    with pytest.raises(ValueError, match="no customer was lost"):
        log_calibration.calibrate_transactions(nobody_leaves)
    with pytest.raises(ValueError, match="period_months = 0: must be a whole number of months from 1 to 12"):
        log_calibration.cohort_survival(nobody_leaves, 0)
    with pytest.raises(ValueError, match="period_months = 1.5"):
        log_calibration.cohort_survival(nobody_leaves, 1.5)
    with pytest.raises(ValueError, match="policy = 'nope': no such policy"):
        log_calibration.calibrate_transactions(nobody_leaves, 1, sim.config_from_dict({}), policy="nope")


def test_synthetic_log_rejects_bad_arguments():
    config = sbg_config(1.0, 2.0, 6)
    with pytest.raises(ValueError, match="customers = 0"):
        synthetic.synthetic_transaction_log(config, 0, 1)
    with pytest.raises(ValueError, match="seed = -1"):
        synthetic.synthetic_transaction_log(config, 10, -1)
    with pytest.raises(ValueError, match="start = '2024-1'"):
        synthetic.synthetic_transaction_log(config, 10, 1, start="2024-1")
    with pytest.raises(ValueError, match="economics.period_months = 1.5"):
        synthetic.synthetic_transaction_log(config.with_overrides(economics={"period_months": 1.5}), 10, 1)


def test_synthetic_log_dates_and_size_are_bounded_before_simulation(tmp_path):
    """Every date of a synthetic log lies in SYNTHETIC_FIRST_YEAR..SYNTHETIC_LAST_YEAR, so the
    log reader (pandas dates) reads back what was written: the last accepted start round-trips
    through CSV exactly, one month later and year 0 are refused; so is a log of more than
    MAX_SYNTHETIC_CUSTOMER_PERIODS customer-periods (before anything is simulated).
    """
    config = sbg_config(1.0, 2.0, 6)  # 6 periods of one month (+1 for a late cohort)
    last_start = f"{synthetic.SYNTHETIC_LAST_YEAR}-06"  # periods up to 2261-12 (2262-01 for the +1)
    log = synthetic.synthetic_transaction_log(config, 20, 3, start=last_start)
    path = synthetic.write_transaction_log(log, tmp_path / "log.csv")
    back = log_calibration.read_transaction_log(path)
    assert back["date"].max().year == synthetic.SYNTHETIC_LAST_YEAR and len(back) == len(log)
    # the reader orders by customer, then date (the synthetic log is ordered by date)
    order = ["customer_id", "date"]
    written = log.sort_values(order).reset_index(drop=True)
    back = back.sort_values(order).reset_index(drop=True)
    assert (back["date"].to_numpy() == written["date"].to_numpy().astype("datetime64[ns]")).all()
    assert (back["customer_id"].to_numpy() == written["customer_id"].to_numpy()).all()
    for start in (
        f"{synthetic.SYNTHETIC_LAST_YEAR}-07",
        "0000-01",
        f"{synthetic.SYNTHETIC_FIRST_YEAR - 1}-12",
    ):
        with pytest.raises(ValueError, match=rf"start = '{start}': .* must lie in the years 1900-2261"):
            synthetic.synthetic_transaction_log(config, 20, 3, start=start)
    synthetic.synthetic_transaction_log(
        config, 20, 3, start=f"{synthetic.SYNTHETIC_FIRST_YEAR}-01"
    )  # the first accepted month
    too_many = synthetic.MAX_SYNTHETIC_CUSTOMER_PERIODS // 6 + 1
    with pytest.raises(ValueError, match=rf"{too_many:,} x run.horizon = 6 = .* at most 20,000,000"):
        synthetic.synthetic_transaction_log(config, too_many, 3)


# ----------------------------------------------------------------------------- command line


def test_cli_survival_writes_a_runnable_config(tmp_path, capsys):
    out = tmp_path / "fitted.toml"
    code = main(
        ["calibrate", "survival", "--survivors", "1000,631,468,382,326,289,262,241", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "alpha = 0.704" in printed and "beta = 1.18" in printed and "log-likelihood" in printed
    assert "fitted_survival" in printed
    config = sim.load_config(out)
    assert config.name == "fitted"
    assert config.population.churn_propensity.alpha == pytest.approx(0.704, abs=0.001)
    text = out.read_text()
    assert text.startswith("# Calibrated experiment") and "survivor counts 1000,631" in text
    # refuses to overwrite, then --force does
    assert main(["calibrate", "survival", "--survivors", "10,5", "--out", str(out)]) == EXIT_BAD_INPUT
    assert "exists" in capsys.readouterr().err
    assert sim.load_config(out) == config
    assert main(["calibrate", "survival", "--survivors", "10,5", "--out", str(out), "--force"]) == 0
    assert sim.load_config(out).population.churn_propensity != config.population.churn_propensity
    # a folder as --out is named as such, with or without --force, before any fit
    capsys.readouterr()
    for force in ([], ["--force"]):
        assert (
            main(["calibrate", "survival", "--survivors", "10,5", "--out", str(tmp_path), *force])
            == EXIT_BAD_INPUT
        )
        captured = capsys.readouterr()
        assert (
            f"--out {tmp_path} is a folder; --out names the file to write" in captured.err
            and not captured.out
        )


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--survivors", "1000,1200"], "non-increasing"),
        (["--survivors", ""], "--survivors is empty"),
        (["--survivors", "1000,-1"], ">= 0"),
        (["--survivors", "1000,x"], "'x' is not a whole number"),
        (["--survivors", "1000,900", "--base", "does/not/exist.toml"], "no such file"),
    ],
)
def test_cli_survival_bad_input_exits_2_without_writing(tmp_path, capsys, arguments, expected):
    out = tmp_path / "never.toml"
    assert main(["calibrate", "survival", *arguments, "--out", str(out)]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error
    assert not out.exists()


def test_cli_transactions_and_synthetic_log(tmp_path, capsys):
    log_path = tmp_path / "log.csv"
    assert (
        main(
            [
                "calibrate",
                "synthetic-log",
                str(LOG_CONFIG),
                "--customers",
                str(LOG_CUSTOMERS),
                "--late-customers",
                str(LOG_LATE),
                "--seed",
                str(LOG_SEED),
                "--out",
                str(log_path),
            ]
        )
        == 0
    )
    assert log_path.read_bytes() == LOG.read_bytes()
    out = tmp_path / "from_log.toml"
    assert (
        main(["calibrate", "transactions", str(log_path), "--base", str(LOG_CONFIG), "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "cohort of 2024-01: 300 customers over 24 periods" in printed
    config = sim.load_config(out)
    assert config.economics.period_months == 1.0 and config.population.churn_propensity is not None
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,date,amount\nA,2024-01-01,-1\n")
    assert main(["calibrate", "transactions", str(bad), "--out", str(tmp_path / "x.toml")]) == EXIT_BAD_INPUT
    assert "amount = '-1'" in capsys.readouterr().err
    assert (
        main(
            [
                "calibrate",
                "transactions",
                str(log_path),
                "--period-months",
                "0",
                "--out",
                str(tmp_path / "y.toml"),
            ]
        )
        == EXIT_BAD_INPUT
    )
    assert "--period-months = 0" in capsys.readouterr().err
    assert not (tmp_path / "x.toml").exists() and not (tmp_path / "y.toml").exists()


def test_plot_survival_fit_draws_the_table():
    import matplotlib

    matplotlib.use("Agg")
    table = cal.calibrate_survival([1000, 631, 468, 382, 326]).table
    ax = sim.plotting.plot_survival_fit(table)
    fitted_line, observed_points = ax.get_lines()
    np.testing.assert_array_equal(fitted_line.get_ydata(), table["fitted_survival"])
    np.testing.assert_array_equal(observed_points.get_ydata(), table["observed_survival"])


@pytest.mark.parametrize(
    "content, expected",
    [
        # one mistyped year would make the calibration simulate ~96,000 periods
        (
            "customer_id,date,amount\nA,2020-01-05,10\nB,2020-02-01,5\nA,9999-12-01,3\n",
            "line 4: date = 9999-12-01 is outside the supported range 1677-09-22 to 2262-04-11",
        ),
        # ... or, within the dates pandas holds, ~2,200 periods
        (
            "customer_id,date,amount\nA,2020-01-05,10\nB,2020-02-01,5\nA,2200-12-01,3\n",
            "the log spans 2172 periods of 1 month(s), from 2020-01 to 2200-12; at most 1200 periods",
        ),
        (
            "customer_id,date,amount\nA,2020-01-05,1e308\nB,2020-02-01,5\n",
            "log amount values [1e+308] (rows [0], first offending): amounts must be finite, >= 0 and <= "
            "1e+12",
        ),
    ],
)
def test_implausible_logs_are_refused_before_any_simulation(tmp_path, capsys, monkeypatch, content, expected):
    """A log whose span or amounts cannot be right exits 2 naming what was found, before any
    simulation (the kernel is replaced by one that fails the test) and without an output.
    """
    import sim.engines.core as core
    from sim.cli.main import main

    def no_work(*args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("simulated before refusing the log")

    monkeypatch.setattr(core, "simulate_chunk", no_work)
    path = tmp_path / "log.csv"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "calibrated.toml"
    assert main(["calibrate", "transactions", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error
    assert not out.exists()
