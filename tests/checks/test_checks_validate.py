"""sim validate: closed forms vs the jitted core, and the closed forms themselves.

The closed forms used by the validation are checked here against brute-force sums and
against the model's own transition function; the Monte Carlo checks are held within 4 SE
(SE stated per check in sim.checks.validate: sample sd / sqrt(n) for mean CLV, binomial for
shares), and shown to have the power to reject a wrong timing convention.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special

import sim.plotting
from sim.analytic.margin import margin_multiple
from sim.analytic.markov import markov_clv
from sim.analytic.sbg import sbg_survival
from sim.checks import validate
from sim.cli import validate as validate_command
from sim.cli.main import main
from sim.model.equations import transition_probabilities


@pytest.fixture(scope="module")
def checks():
    """The quick validation run (40,000 customers per scenario; ~3 s once compiled)."""
    return validate.run_checks(quick=True)


def brute_force_periods(alpha, beta, discount, horizon):
    """sum_{t<H} S(t) delta^(t+1), S(t) = B(alpha, beta + t)/B(alpha, beta), term by term."""
    t = np.arange(horizon, dtype=float)
    terms = np.exp(
        special.betaln(alpha, beta + t) - special.betaln(alpha, beta) - (t + 1) * math.log1p(discount)
    )
    return math.fsum(terms)


# ----------------------------------------------------------------------------- the closed forms


@pytest.mark.parametrize("alpha, beta", [(0.8, 2.5), (0.704, 1.182), (3.8, 0.67), (50.0, 200.0)])
@pytest.mark.parametrize("discount", [0.0079741, 0.05, 0.5])
@pytest.mark.parametrize("horizon", [0, 1, 2, 12, 120])
def test_sbg_discounted_periods_matches_the_term_by_term_sum(alpha, beta, discount, horizon):
    exact = validate.sbg_discounted_periods(alpha, beta, discount, horizon)
    assert exact == pytest.approx(brute_force_periods(alpha, beta, discount, horizon), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("alpha, beta, discount", [(0.8, 2.5, 0.01), (3.8, 0.67, 0.1), (1.5, 1.0, 0.2)])
def test_sbg_discounted_periods_infinite_horizon_is_the_limit(alpha, beta, discount):
    """L_inf = delta DEL(d): the finite sum with the tail below 1e-15 must agree."""
    horizon = int(math.log(1e-17) / -math.log1p(discount)) + 10
    infinite = validate.sbg_discounted_periods(alpha, beta, discount, None)
    assert infinite == pytest.approx(brute_force_periods(alpha, beta, discount, horizon), rel=1e-10)


def test_sbg_discounted_periods_undiscounted():
    assert validate.sbg_discounted_periods(2.0, 3.0, 0.0, 7) == pytest.approx(
        brute_force_periods(2.0, 3.0, 0.0, 7)
    )
    # expected lifetime (alpha + beta - 1)/(alpha - 1) for alpha > 1
    assert validate.sbg_discounted_periods(2.0, 3.0, 0.0, None) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="alpha"):
        validate.sbg_discounted_periods(-1.0, 3.0, 0.1, 5)
    with pytest.raises(ValueError, match="horizon"):
        validate.sbg_discounted_periods(1.0, 3.0, 0.1, -5)


@pytest.mark.parametrize(
    "retention, discount, horizon", [(0.9, 0.0079741, 60), (0.5, 0.1, 1), (0.99, 0.0, 30), (1.0, 0.02, 10)]
)
def test_constant_retention_clv_matches_sums_and_the_two_state_chain(retention, discount, horizon):
    """R sum_{t<H} r^t delta^(t+1) - acq, by brute force and by markov_clv(timing='end')."""
    reward, acquisition = 7.5, 20.0
    brute = reward * math.fsum(retention**t / (1 + discount) ** (t + 1) for t in range(horizon)) - acquisition
    value = validate.constant_retention_clv(reward, retention, discount, horizon, acquisition)
    assert value == pytest.approx(brute, rel=1e-12)
    chain = np.array([[retention, 1 - retention], [0.0, 1.0]])
    assert markov_clv(chain, [reward, 0.0], discount, horizon, "end")[0] - acquisition == pytest.approx(
        brute, rel=1e-12
    )
    # the same thing through Gupta & Lehmann's end-of-period multiple: R / r times it
    if retention > 0:
        assert reward / retention * margin_multiple(
            retention, discount, horizon, "end"
        ) - acquisition == pytest.approx(brute, rel=1e-12)


@pytest.mark.parametrize("base, odds", [(0.1, 1.0), (0.05, 2.0), (0.3, 0.5), (0.0, 3.0)])
def test_exit_probability_is_the_models_at_neutral_loyalty(base, odds):
    """The hand-written odds formula against sim.model.equations.transition_probabilities (M7)."""
    neutral = 0.4
    _, leave = transition_probabilities(0, neutral, neutral, 0.0, base, 0.0, 0.0, odds)
    assert validate.exit_probability(base, odds) == pytest.approx(leave, rel=1e-14, abs=1e-300)


# ----------------------------------------------------------------------------- Monte Carlo checks


def test_quick_validation_passes_within_four_standard_errors(checks):
    """Every check within 4 SE; each SE is positive and small enough for the check to bite
    (mean-CLV SEs under 2.5 % of |exact|, share SEs under 0.003).
    """
    assert set(checks["group"]) == {"markov", "constant_retention", "beta_heterogeneous"}
    assert len(checks) >= 30
    assert (checks["customers"] == validate.QUICK_CUSTOMERS).all()
    assert np.isfinite(checks[["exact", "simulated", "se", "z"]].to_numpy()).all()
    assert (checks["se"] > 0).all()
    clv = checks["check"].str.contains("mean CLV")
    assert (checks.loc[clv, "se"] < 0.025 * checks.loc[clv, "exact"].abs()).all()
    assert (checks.loc[~clv, "se"] < 0.003).all()
    np.testing.assert_allclose(
        checks["z"], (checks["simulated"] - checks["exact"]) / checks["se"], rtol=1e-12
    )
    bad = checks[checks["z"].abs() >= validate.Z_LIMIT]
    assert bad.empty, bad[["check", "exact", "simulated", "se", "z"]].to_string()
    assert checks["passed"].all()


def test_checks_reject_plausible_timing_mistakes(checks):
    """The CLV checks have power against the two usual timing mistakes:

    * period 0 not counted (survival shifted by one period, ``S(t+1)`` in place of ``S(t)``):
      rejected by every constant-retention and sBG CLV check (|z| > 4);
    * cash at the START of each period (``delta^t``, the value times ``1 + d``): rejected by the
      quarterly checks (d = 3.6 % per period). With monthly periods (d = 0.8 %) the shift is
      below 4 SE at 40,000 customers (clv_se is about 1 % of the value), so those checks alone
      cannot tell the two conventions apart; the exact, noise-free timing test is
      tests/test_core.py::test_timing_convention_cash_at_end_of_period.
    """
    clv = checks[
        checks["check"].str.contains("mean CLV")
        & checks["group"].isin(["constant_retention", "beta_heterogeneous"])
    ]
    assert len(clv) >= 10
    configs = validate.scenarios()
    for row in clv.itertuples():
        config = configs[row.scenario]
        d = config.economics.period_discount_rate
        horizon = config.run.horizon
        share = config.population.relationship_share
        assert share in (0.0, 1.0)  # one segment, so the acquisition cost is known exactly
        acquisition = config.economics.acquisition_cost.as_tuple()[0 if share == 1.0 else 1]
        t = np.arange(horizon)
        if config.population.churn_propensity is None:
            r = 1.0 - validate.exit_probability(
                config.transitions.exit.exploration,
                config.transitions.exit_odds.as_tuple()[0 if share == 1.0 else 1],
            )
            survival, shifted = r**t, r ** (t + 1)
        else:
            a, b = config.population.churn_propensity.alpha, config.population.churn_propensity.beta
            survival, shifted = sbg_survival(a, b, t), sbg_survival(a, b, t + 1)
        weights = (1 + d) ** -(t + 1.0)
        reward = (row.exact + acquisition) / np.dot(survival, weights)
        assert row.exact == pytest.approx(reward * np.dot(survival, weights) - acquisition)
        period_zero_skipped = reward * np.dot(shifted, weights) - acquisition
        assert abs(row.simulated - period_zero_skipped) / row.se > 4, row.check
        if config.economics.period_months == 3.0:
            cash_at_start = (row.exact + acquisition) * (1 + d) - acquisition
            assert abs(row.simulated - cash_at_start) / row.se > 4, row.check


def test_run_checks_is_reproducible_and_seed_dependent():
    small = dict(quick=True, customers=4096)
    first = validate.run_checks(**small)
    again = validate.run_checks(**small, threads=1)
    pd.testing.assert_frame_equal(first, again)
    other = validate.run_checks(**small, seed=1)
    assert not np.array_equal(first["simulated"].to_numpy(), other["simulated"].to_numpy())
    np.testing.assert_array_equal(first["exact"].to_numpy(), other["exact"].to_numpy())


# ----------------------------------------------------------------------------- command line


def test_cli_prints_the_table_and_exits_0(monkeypatch, checks, capsys, tmp_path):
    monkeypatch.setattr(validate_command, "run_checks", lambda **kwargs: checks)
    out = tmp_path / "checks.csv"
    assert main(["validate", "--quick", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(checks)} of {len(checks)} checks within 4 SE" in printed
    assert "sbg_survival" in printed and "lifecycle_markov_clv" in printed
    pd.testing.assert_frame_equal(pd.read_csv(out), checks, check_exact=False, rtol=1e-12)


def test_cli_exits_nonzero_when_a_check_is_off(monkeypatch, checks, capsys):
    broken = checks.copy()
    broken.loc[0, "simulated"] = broken.loc[0, "exact"] + 5 * broken.loc[0, "se"]
    broken.loc[0, "z"] = 5.0
    broken.loc[0, "passed"] = False
    monkeypatch.setattr(validate_command, "run_checks", lambda **kwargs: broken)
    assert main(["validate", "--quick"]) == 1
    captured = capsys.readouterr()
    assert f"{len(checks) - 1} of {len(checks)} checks within 4 SE" in captured.out
    assert broken.loc[0, "check"] in captured.err


def test_plot_checks_draws_one_bar_per_check(checks):
    import matplotlib

    matplotlib.use("Agg")
    ax = sim.plotting.plot_checks(checks)
    heights = sorted(patch.get_width() for patch in ax.patches)
    np.testing.assert_allclose(heights, sorted(checks["z"].clip(-8, 8)))
    assert len(ax.get_yticklabels()) == len(checks)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (
            ["--seed", "99999999999999999999999"],
            "run.seed = 99999999999999999999999: must be <= 9223372036854775807",
        ),
        (["--threads", "5000"], "run.threads = 5000: must be <= 1024"),
        (["--csv", "{existing}"], "already exists; choose another file or pass --force"),
        (["--csv", "{folder}"], "is a directory"),
        (["--csv", "{folder}/missing/table.csv"], "does not exist"),
    ],
)
def test_bad_validate_command_lines_exit_2_in_one_message(tmp_path, capsys, extra, needle):
    """Bad ``sim validate`` options: exit 2, the message names the option and the value, no
    traceback, and an existing --csv file is left untouched.
    """
    from sim.cli.main import main

    existing = tmp_path / "existing.csv"
    existing.write_text("a reader's table\n")
    extra = [part.format(existing=existing, folder=tmp_path) for part in extra]
    assert main(["validate", "--quick", *extra]) == 2
    error = capsys.readouterr().err
    assert needle in error and "Traceback" not in error
    assert existing.read_text() == "a reader's table\n"


def test_validate_csv_force_overwrites(tmp_path, capsys):
    from sim.cli.main import main

    existing = tmp_path / "existing.csv"
    existing.write_text("old\n")
    assert main(["validate", "--quick", "--csv", str(existing), "--force"]) == 0
    table = pd.read_csv(existing)
    assert len(table) > 0 and table["passed"].all()
