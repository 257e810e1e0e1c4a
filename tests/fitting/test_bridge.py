"""From a fitted lifecycle model to the simulator (sim.fitting.bridge, docs/model.md §13).

The bridge is checked against the fitted model itself, with models of known parameters (no
estimation: the claim under test is that the config and snapshot reproduce *the fit*, whatever
its parameters):

* the config holds the fitted transitions, rates and class shares exactly;
* the snapshot's stage mix is the filtered distribution moved one period on (4 SE of the
  Poisson-binomial counts);
* the simulated margin per period of the snapshot equals the fit's conditional forecast (its
  own ``expected_conditional``) within 4 SE over independent snapshot draws, with feedback off
  and, under the reference policy, with feedback on; a new cohort's equals the fit's
  unconditional curve within 4 SE;
* ``sim fit --models lifecycle,...`` then ``sim run fitted_config.toml`` compares the policies.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sim.cli.main import main
from sim.data import split_transactions
from sim.fitting.bridge import COMPONENT_SNAPSHOT, FITTED_CONFIG, SNAPSHOT, fitted_customer_base
from sim.fitting.lifecycle import LifecycleFit, LifecycleHMM, LifecycleParams, simulate_lifecycle
from sim.fitting.lifecycle import registry as lifecycle_registry
from sim.fitting.lifecycle.registry import panel_sequences
from sim.model.config import load_config
from sim.model.equations import loyalty_from_satisfaction
from sim.model.streams import COMPONENT_TRANSACTION_DAY
from sim.runs.projection import project
from sim.runs.snapshot import check_snapshot, project_from

START = np.datetime64("2020-01-06")  # a Monday: week t covers days 7t .. 7t+6
CAL_WEEKS = 24
MARGIN = 0.5

#: Two classes: a relationship class that reaches stability, a transactional one that churns.
TWO_CLASSES = LifecycleParams(
    np.array([0.4, 0.6]),
    np.array(
        [
            [
                [0.3, 0.65, 0, 0, 0.05],
                [0, 0.8, 0.14, 0.06, 0],
                [0, 0, 0.95, 0.05, 0],
                [0, 0.08, 0, 0.86, 0.06],
                [0, 0, 0, 0, 1],
            ],
            [
                [0.4, 0.45, 0, 0, 0.15],
                [0, 0.78, 0.04, 0.18, 0],
                [0, 0, 0.9, 0.1, 0],
                [0, 0.03, 0, 0.82, 0.15],
                [0, 0, 0, 0, 1],
            ],
        ]
    ),
    np.array([[0.05, 0.35, 0.8, 0.1], [0.04, 0.25, 0.6, 0.06]]),
    np.array([0.2, 0.15]),
    1.5,
)


def one_class(**frailty) -> LifecycleParams:
    """The relationship class alone (rate multiplier shape 1.5), with an optional exit frailty."""
    p = TWO_CLASSES
    return LifecycleParams(
        np.array([1.0]),
        p.transitions[:1].copy(),
        p.rates[:1].copy(),
        p.entry_rates[:1].copy(),
        1.5,
        **frailty,
    )


@pytest.fixture(scope="module")
def data():
    """A weekly log without amounts simulated from the two classes (6,000 customers)."""
    rng = np.random.default_rng(COMPONENT_TRANSACTION_DAY)
    n = 6_000
    entry = rng.integers(0, 8, n)
    counts = simulate_lifecycle(TWO_CLASSES, entry, CAL_WEEKS, rng)
    counts[np.arange(n), entry] += 1  # the first purchase
    customer, week = np.nonzero(counts)
    # one purchase per day: a week's purchases on distinct days (same-day rows would merge)
    reps = np.minimum(counts[customer, week], 7)
    customer, week = np.repeat(customer, reps), np.repeat(week, reps)
    day_in_week = np.concatenate([np.arange(k) for k in reps])
    log = pd.DataFrame({"customer_id": customer + 1, "date": START + 7 * week + day_in_week})
    return split_transactions(
        log.sort_values("date"), str(START + 7 * CAL_WEEKS - 1), unit="week", amount_column=None
    )


def known_fit(params: LifecycleParams, data, **settings) -> LifecycleFit:
    """A LifecycleFit holding ``params`` (as if fitted) on ``data``'s calibration sequences."""
    exit_heterogeneity = (
        ("gamma" if params.exit_shape is not None else None)
        if params.exit_support is None
        else len(params.exit_support)
    )
    hmm = LifecycleHMM(
        n_classes=params.n_classes,
        heterogeneity="gamma" if params.shape is not None else None,
        exit_heterogeneity=exit_heterogeneity,
        n_nodes=settings.get("n_nodes", 16),
        n_exit_nodes=12,
    )
    hmm.set_data(*panel_sequences(data))
    hmm.params_ = params
    return LifecycleFit(
        model="lifecycle",
        params={},
        se={},
        loglik=float("nan"),
        n_customers=data.n_customers,
        converged=True,
        hmm=hmm,
        _data=data,
    )


def margin_per_period(result, customers: int, policy: str = "none") -> np.ndarray:
    """Simulated margin per period summed over the cohort (profit + spend, so any policy)."""
    rows = result.trajectory[result.trajectory.policy == policy]
    per_active = (rows.profit_mean + rows.spend_mean).fillna(0.0).to_numpy()
    return per_active * rows.active_share.to_numpy() * customers


def test_the_config_holds_the_fitted_dynamics_and_cash(data):
    fit = known_fit(TWO_CLASSES, data)
    base = fitted_customer_base(fit, data, margin=MARGIN)
    config = base.config
    assert base.exact and config.population.snapshot == SNAPSHOT
    assert config.economics.period_months == pytest.approx(7 / (365.25 / 12), rel=1e-15)
    assert config.population.relationship_share == pytest.approx(0.4, abs=1e-15)
    for segment, matrix in zip(config.transitions.by_segment.segments(), TWO_CLASSES.transitions):
        assert segment.advance.as_tuple() == (matrix[0, 1], matrix[1, 2], 0.0, matrix[3, 1])
        assert segment.exit.as_tuple() == (matrix[0, 4], matrix[1, 3], matrix[2, 3], matrix[3, 4])
    assert config.transitions.exit_odds.as_tuple() == (1.0, 1.0)
    # wallet * share of wallet = purchase rate (no amounts: spend per purchase 1)
    for shares, rates in zip(config.economics.share_of_wallet_by_segment.segments(), TWO_CLASSES.rates):
        np.testing.assert_allclose(base.wallet_scale * np.array(shares.as_tuple()), rates, rtol=1e-14)
    # the new cohort's wallet has the rate multiplier's mean and variance (times the scale)
    population = config.population
    mean = population.wallet_median * math.exp(population.wallet_sigma**2 / 2)
    assert mean == pytest.approx(base.wallet_scale, rel=1e-14)
    assert math.exp(population.wallet_sigma**2) - 1 == pytest.approx(1 / 1.5, rel=1e-14)
    # nothing the log cannot show: no other cash part
    economics = config.economics
    assert economics.cost_to_serve == 0 and economics.share_of_wallet_growth == 0
    assert economics.price_premium.as_tuple() == (0, 0) and economics.acquisition_cost.as_tuple() == (0, 0)
    assert max(economics.cross_sell_share.as_tuple()) == 0 and config.word_of_mouth.talk_probability == 0
    assert economics.margin.as_tuple() == (MARGIN,) * 4
    # the neutral point
    dynamics = config.dynamics
    assert dynamics.performance_noise == 0 and dynamics.performance_fit_sd == 0
    assert dynamics.base_performance.as_tuple() == (dynamics.initial_expectation,) * 2
    # the written files load back as the same config and snapshot
    snapshot = check_snapshot(base.snapshot, config)
    assert set(snapshot["stage"]) <= {0, 1, 2, 3}
    assert (snapshot["tenure"] >= 1).all()


def test_the_written_config_loads_back(data, tmp_path):
    base = fitted_customer_base(known_fit(TWO_CLASSES, data), data, margin=MARGIN)
    path = base.save(tmp_path)
    loaded = load_config(path)
    assert loaded.population.snapshot == str((tmp_path / SNAPSHOT).resolve())
    assert loaded.with_overrides(population={"snapshot": SNAPSHOT}) == base.config
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / SNAPSHOT), base.snapshot, check_dtype=False)
    with pytest.raises(FileExistsError, match="already holds"):
        base.save(tmp_path)


def test_the_snapshot_stage_mix_is_the_filtered_distribution_one_period_on(data):
    """One class: P(stage at T) = P(stage at T-1 | data) A, summed over customers; the drawn
    counts are Poisson-binomial, so 4 SE of sqrt(sum p (1 - p)).
    """
    params = one_class()
    fit = known_fit(params, data)
    base = fitted_customer_base(fit, data, seed=5)
    at_end = fit.filtered(data)["stage_probs"] @ params.transitions[0]  # (n, 5)
    drawn = np.bincount(base.snapshot["stage"], minlength=5)
    drawn[4] = data.n_customers - len(base.snapshot)
    se = np.sqrt((at_end * (1 - at_end)).sum(axis=0))
    assert np.all(np.abs(drawn - at_end.sum(axis=0)) < 4 * se), (drawn, at_end.sum(axis=0), se)
    # p_alive is the fit's, the snapshot's customers are the live draws with their tenure
    np.testing.assert_allclose(base.snapshot["p_alive"], 1 - at_end[base.snapshot["customer"], 4], rtol=1e-12)
    tenure = CAL_WEEKS - data.panel.entry_period[base.snapshot["customer"]]
    np.testing.assert_array_equal(base.snapshot["tenure"], tenure)
    # drawn from the customers' own streams: the same seed gives the same snapshot
    pd.testing.assert_frame_equal(fitted_customer_base(fit, data, seed=5).snapshot, base.snapshot)
    assert COMPONENT_SNAPSHOT not in (COMPONENT_TRANSACTION_DAY,)


@pytest.fixture(scope="module")
def snapshot_runs(data):
    """Independent snapshot draws of the two-class fit, each projected once (feedback off and on)."""
    fit = known_fit(TWO_CLASSES, data)
    horizon, draws = 16, 12
    runs = []
    for seed in range(draws):
        off = fitted_customer_base(fit, data, margin=MARGIN, feedback=False, seed=seed, horizon=horizon)
        on = fitted_customer_base(fit, data, margin=MARGIN, feedback=True, seed=seed, horizon=horizon)
        runs.append(
            (
                off,
                project_from(off.snapshot, off.config, replications=1),
                on,
                project_from(on.snapshot, on.config, replications=1),
            )
        )
    expected_cumulative = [fit.expected_conditional(data, t).sum() for t in range(horizon + 1)]
    return fit, runs, MARGIN * np.diff(expected_cumulative)


@pytest.mark.parametrize("feedback", [False, True])
def test_the_snapshot_projection_reproduces_the_fitted_forecast(snapshot_runs, feedback):
    """Sum over the snapshot of the simulated margin per period against the fit's own forecast
    (margin x expected purchases of every calibration customer: the ended draws count 0), in
    two windows; 4 SE over the independent snapshot draws.
    """
    _, runs, expected = snapshot_runs
    simulated = np.array(
        [
            margin_per_period(result, len(base.snapshot))
            for base, result in ((r[2], r[3]) if feedback else (r[0], r[1]) for r in runs)
        ]
    )
    for window in (slice(0, 4), slice(4, 16)):
        totals = simulated[:, window].sum(axis=1)
        se = totals.std(ddof=1) / math.sqrt(len(totals))
        assert abs(totals.mean() - expected[window].sum()) < 4 * se, (
            window,
            totals.mean(),
            expected[window].sum(),
            se,
        )
    # the fit's forecast as the bridge computes it (a second implementation) is the same
    np.testing.assert_allclose(runs[0][0].fitted_margin_by_period, expected, rtol=1e-10)


def test_the_neutral_point_reproduces_the_fitted_dynamics(snapshot_runs):
    """Feedback on, policy none: satisfaction stays at 1/2 and loyalty at its neutral value, so
    the run is the feedback-off run number for number; spend moves it (feedback on) or only
    costs (feedback off: the margin is the same, number for number).
    """
    _, runs, _ = snapshot_runs
    off_base, off, on_base, on = runs[0]
    none_on = on.trajectory[on.trajectory.policy == "none"]
    neutral = loyalty_from_satisfaction.py_func(0.5, *(on_base.config.loyalty.model_dump().values()))
    assert (none_on.satisfaction_mean.dropna() == 0.5).all()
    np.testing.assert_allclose(none_on.loyalty_mean.dropna(), neutral, rtol=0, atol=1e-15)
    pd.testing.assert_frame_equal(
        on.trajectory[on.trajectory.policy == "none"].reset_index(drop=True),
        off.trajectory[off.trajectory.policy == "none"].reset_index(drop=True),
    )
    n = len(off_base.snapshot)
    spending = [name for name in off_base.config.policy_names if name != "none"]
    assert spending
    for name in spending:
        np.testing.assert_allclose(
            margin_per_period(off, n, name), margin_per_period(off, n, "none"), rtol=1e-12
        )
        assert not np.allclose(margin_per_period(on, n, name), margin_per_period(on, n, "none"), rtol=1e-3)


def test_a_new_cohort_of_the_fitted_config_follows_the_fitted_curve(data):
    """A cohort acquired at period 0 (no snapshot): margin per acquired customer in periods
    1.. against ``margin x`` the fit's purchases of a new customer per period since entry
    (period 0, the first purchase's, is not modelled); 4 SE over independent seeds.
    """
    fit = known_fit(TWO_CLASSES, data)
    base = fitted_customer_base(fit, data, margin=MARGIN, feedback=False, horizon=12)
    config = base.config.with_overrides(population={"snapshot": None, "customers": 20_000})
    curve = MARGIN * np.diff(fit.expected_unconditional(np.arange(13.0)))  # periods since entry 0..11
    simulated = np.array(
        [margin_per_period(project(config, replications=1, seed=seed), 20_000) / 20_000 for seed in range(8)]
    )
    for window in (slice(1, 4), slice(4, 12)):
        totals = simulated[:, window].sum(axis=1)
        se = totals.std(ddof=1) / math.sqrt(len(totals))
        assert abs(totals.mean() - curve[window].sum()) < 4 * se, (
            window,
            totals.mean(),
            curve[window].sum(),
            se,
        )


def test_exit_frailties_and_what_the_two_segments_cannot_hold(data):
    two_point = one_class(exit_support=np.array([1.0, 0.3]), exit_weights=np.array([0.7, 0.3]))
    base = fitted_customer_base(known_fit(two_point, data), data)
    assert base.exact
    low, high = base.config.transitions.by_segment.segments()  # the low frailty first: relationship
    expected = known_fit(two_point, data).transitions_at(0.3)[0]
    assert low.exit.as_tuple() == (expected[0, 4], expected[1, 3], expected[2, 3], expected[3, 4])
    assert base.config.population.relationship_share == pytest.approx(0.3, abs=1e-15)
    gamma = fitted_customer_base(known_fit(one_class(exit_shape=0.8), data), data)
    assert not gamma.exact and "two-point Gauss quadrature" in gamma.notes[0]
    three = LifecycleParams(
        np.full(3, 1 / 3),
        np.repeat(TWO_CLASSES.transitions[:1], 3, axis=0),
        np.repeat(TWO_CLASSES.rates[:1], 3, axis=0),
        np.full(3, 0.2),
        None,
    )
    with pytest.raises(ValueError, match="3 classes; the simulator has two segments"):
        fitted_customer_base(known_fit(three, data), data)
    with pytest.raises(ValueError, match=r"margin.exploration = 1.5: must be in \(0, 1\]"):
        fitted_customer_base(known_fit(one_class(), data), data, margin=1.5)
    with pytest.raises(TypeError, match="fit must be a LifecycleFit"):
        fitted_customer_base(object(), data)


# ------------------------------------------------------------------ the two commands


def _log_file(tmp_path, data_seed=7):
    rng = np.random.default_rng(data_seed)
    n = 500
    entry = rng.integers(0, 6, n)
    counts = simulate_lifecycle(one_class(), entry, 30, rng)
    counts[np.arange(n), entry] += 1
    customer, week = np.nonzero(counts)
    reps = np.minimum(counts[customer, week], 7)
    customer, week = np.repeat(customer, reps), np.repeat(week, reps)
    day = START + 7 * week + np.concatenate([np.arange(k) for k in reps])
    amount = np.round(np.exp(3.3 + 0.4 * rng.standard_normal(day.size)), 2)
    path = tmp_path / "log.csv"
    pd.DataFrame(
        {"customer_id": customer + 1, "date": pd.to_datetime(day).strftime("%Y-%m-%d"), "amount": amount}
    ).to_csv(path, index=False)
    return path


@pytest.fixture
def small_lifecycle(monkeypatch):
    monkeypatch.setattr(lifecycle_registry, "DEFAULT_CANDIDATES", ((1, "gamma", None),))
    settings = dict(n_starts=3, n_final=1, screen_iter=8, max_iter=40, polish=30, seed=1)
    monkeypatch.setattr(lifecycle_registry, "REGISTRY_SETTINGS", {"node_rule": True, **settings})


def test_sim_fit_then_sim_run_compares_policies_on_the_fitted_base(tmp_path, small_lifecycle, capsys):
    log = _log_file(tmp_path)
    out = tmp_path / "fit"
    cal_end, hold_end = str(START + 7 * 20 - 1), str(START + 7 * 30 - 1)
    argv = [
        "fit",
        str(log),
        "--calibration-end",
        cal_end,
        "--holdout-end",
        hold_end,
        "--models",
        "lifecycle,bgnbd",
    ]
    assert main([*argv, "--out", str(out), "--margin", "0.3", "--no-figure"]) == 0
    printed = capsys.readouterr().out
    assert f"sim run {out / FITTED_CONFIG}" in printed
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert {FITTED_CONFIG, SNAPSHOT} <= set(manifest["files"])
    assert manifest["fitted_config"]["exact"] is True
    config = load_config(out / FITTED_CONFIG)
    assert config.economics.margin.as_tuple() == (0.3,) * 4
    run_out = tmp_path / "run"
    assert main(["run", str(out / FITTED_CONFIG), "--out", str(run_out), "--no-figure"]) == 0
    comparison = pd.read_csv(run_out / "comparison.csv")
    assert set(comparison.reference) == {"none"} and set(comparison.policy) == {"uniform", "stage_based"}
    summary = pd.read_csv(run_out / "summary.csv")
    assert (summary.customers == manifest["fitted_config"]["snapshot_customers"]).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--margin", "1.5"], "must be in (0, 1]"),
        (["--margin", "abc"], "is not a number"),
        (["--seed", "-1"], "-1"),
    ],
)
def test_bad_bridge_option_values_are_usage_errors(tmp_path, capsys, extra, message):
    out = tmp_path / "fit"
    argv = ["fit", str(tmp_path / "log.csv"), "--calibration-end", "2020-05-24", "--models", "lifecycle"]
    with pytest.raises(SystemExit) as stop:
        main([*argv, *extra, "--out", str(out)])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--base-config", "missing.toml"], "no such file"),
        (["--models", "bgnbd", "--margin", "0.3"], "add lifecycle to --models"),
    ],
)
def test_bad_bridge_options_fail_before_any_work(tmp_path, capsys, extra, message):
    out = tmp_path / "fit"
    log = _log_file(tmp_path)
    argv = ["fit", str(log), "--calibration-end", "2020-05-24", "--models", "lifecycle"]
    assert main([*argv, *extra, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not out.exists()
