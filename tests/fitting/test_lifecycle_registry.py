"""The lifecycle HMM in the registry: ``fit_transactions(..., models=("lifecycle", ...))`` and
``sim fit --models lifecycle,...`` fill every table, consistently.

A small transaction log is simulated from known stage parameters (weekly purchases with
dates and amounts); the model is fitted with a reduced candidate set and few starts (the
full defaults are exercised on CDNOW outside the test suite).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.cli.main import main
from sim.data import split_transactions
from sim.exceptions import DataError
from sim.fitting import get_model, model_names
from sim.fitting.evaluation import FitResult, fit_transactions
from sim.fitting.lifecycle import STATES, LifecycleFit, LifecycleParams, simulate_lifecycle
from sim.fitting.lifecycle import registry as lifecycle_registry
from sim.plotting import plot_stage_occupancy_fit

TRUE = LifecycleParams(
    np.array([1.0]),
    np.array(
        [
            [
                [0.4, 0.5, 0, 0, 0.1],
                [0, 0.8, 0.12, 0.08, 0],
                [0, 0, 0.92, 0.08, 0],
                [0, 0.06, 0, 0.86, 0.08],
                [0, 0, 0, 0, 1],
            ]
        ]
    ),
    np.array([[0.05, 0.3, 0.7, 0.12]]),
    np.array([0.2]),
    1.5,
    exit_shape=1.0,
)
START = np.datetime64("2020-01-06")  # a Monday: week t covers days 7t .. 7t+6
CAL_WEEKS, ALL_WEEKS = 20, 32
SMALL = dict(
    candidates=[(1, "gamma", None), (1, "gamma", "gamma")],
    n_starts=3,
    n_final=1,
    screen_iter=8,
    max_iter=40,
    polish=30,
    seed=1,
)


def simulated_log(n=700, seed=3):
    """One row per purchase: customer_id, date, amount (lognormal, mean rising with the stage)."""
    rng = np.random.default_rng(seed)
    entry = rng.integers(0, 6, n)
    counts, states, _ = simulate_lifecycle(TRUE, entry, ALL_WEEKS, rng, return_states=True)
    counts[np.arange(n), entry] += 1  # the first purchase
    customer, week = np.nonzero(counts)
    reps = counts[customer, week]
    customer, week = np.repeat(customer, reps), np.repeat(week, reps)
    day = START + 7 * week + rng.integers(0, 7, week.size)
    log_mu = np.array([3.2, 3.4, 3.9, 3.3])[states[customer, week]]
    amount = np.round(np.exp(log_mu + 0.5 * rng.standard_normal(week.size)), 2)
    return pd.DataFrame({"customer_id": customer + 1, "date": day, "amount": amount}).sort_values("date")


CAL_END = str(START + 7 * CAL_WEEKS - 1)
HOLD_END = str(START + 7 * ALL_WEEKS - 1)


@pytest.fixture(scope="module")
def result():
    return fit_transactions(
        simulated_log(),
        CAL_END,
        HOLD_END,
        unit="week",
        models=("lifecycle", "bgnbd", "pnbd"),
        fit_options={"lifecycle": SMALL},
    )


def test_lifecycle_is_registered():
    assert "lifecycle" in model_names()
    model = get_model("lifecycle")
    assert model.kind == "transactions" and model.title == "Lifecycle HMM"


def test_every_table_is_filled(result: FitResult):
    tables = result.tables()
    assert list(tables) == list(FitResult.TABLES)
    for name, table in tables.items():
        assert len(table) > 0, name
    fitted = result.fits["lifecycle"]
    assert isinstance(fitted, LifecycleFit)
    fit = result.fit.set_index("model")
    assert fit.loc["lifecycle", "n_parameters"] == fitted.hmm.n_params_
    assert fit.loc["lifecycle", "bic"] == pytest.approx(fitted.hmm.bic_, rel=1e-12)
    assert fit.loc["lifecycle", "customers"] == result.data.n_customers
    assert {"spec", "n_at_best", "max_abs_score", "rate_nodes", "rate_quadrature_change"} <= set(fit.columns)
    parameters = result.parameters[result.parameters["model"] == "lifecycle"]
    assert len(parameters) == fitted.n_parameters == fitted.hmm.n_params_
    assert np.all(np.isfinite(parameters["estimate"]))
    assert np.isfinite(parameters["se"]).mean() > 0.7  # boundary moves and pooled rates may have none


def test_customer_columns(result: FitResult):
    c = result.customers
    p_alive = c["p_alive_lifecycle"].to_numpy()
    assert np.all((p_alive >= 0) & (p_alive <= 1))
    assert np.all(c["expected_lifecycle"] >= 0)
    stages = c[[f"p_{s}_lifecycle" for s in STATES]].to_numpy()
    np.testing.assert_allclose(stages.sum(axis=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(p_alive, 1.0 - c["p_ended_lifecycle"], atol=1e-12)
    classes = [col for col in c.columns if col.startswith("p_class")]
    np.testing.assert_allclose(c[classes].sum(axis=1), 1.0, rtol=1e-10)
    assert np.all(c["rate_multiplier_lifecycle"] > 0) and np.all(c["exit_frailty_lifecycle"] > 0)


def test_tables_agree_with_each_other(result: FitResult):
    data, fitted = result.data, result.fits["lifecycle"]
    c = result.customers
    evaluation = result.evaluation.set_index("model")
    assert evaluation.loc["lifecycle", "expected_total"] == pytest.approx(
        c["expected_lifecycle"].sum(), rel=1e-12
    )
    assert evaluation.loc["lifecycle", "actual_total"] == c["holdout_frequency"].sum()
    by = result.by_frequency.set_index("frequency")
    labels = np.where(c["frequency"] >= 7, "7+", c["frequency"].astype(str))
    for label, group in c.groupby(labels):
        assert by.loc[label, "expected_lifecycle"] == pytest.approx(
            group["expected_lifecycle"].mean(), rel=1e-10
        )
    # the forecast: 0 over no time, growing with the horizon, the holdout's at the holdout length
    np.testing.assert_array_equal(fitted.expected_conditional(data, 0.0), 0.0)
    e5, e10 = fitted.expected_conditional(data, 5.0), fitted.expected_conditional(data, 10.5)
    assert np.all(e10 >= e5) and np.all(e5 >= 0)
    np.testing.assert_allclose(
        fitted.expected_conditional(data, data.holdout_length), c["expected_lifecycle"]
    )
    assert fitted.expected_unconditional(0.0) == 0.0
    assert np.all(np.diff(fitted.expected_unconditional(np.linspace(0, 30, 61))) >= 0)
    dert = fitted.dert(data, np.log(1.15) / 52)
    assert np.all(dert >= 0) and np.all(dert <= fitted.expected_conditional(data, 5000) + 1e-9)
    # tracking: cumulative, and the model's cohort curve from the entry periods
    tracking = result.tracking
    assert np.all(np.diff(tracking["expected_lifecycle"]) >= 0)
    # stage occupancy: every entered customer is somewhere; the holdout rows are forecasts
    occ = result.stage_occupancy
    entered = np.array([(data.panel.entry_period <= t).sum() for t in range(len(occ))])
    np.testing.assert_allclose(occ[list(STATES)].sum(axis=1), entered, rtol=1e-9)
    assert (occ["kind"] == "forecast").tolist() == occ["holdout"].tolist()
    # at the calibration end the smoothed occupancy equals the filtered stage probabilities
    last = occ[~occ["holdout"]].iloc[-1]
    for s in STATES:
        assert last[s] == pytest.approx(c[f"p_{s}_lifecycle"].sum(), rel=1e-8)
    # the stage table: rows are probability vectors; customers at the end add up
    stages = result.stages
    np.testing.assert_allclose(stages[[f"p_{s}" for s in STATES]].sum(axis=1), 1.0, rtol=1e-12)
    assert stages["customers_at_end"].sum() == pytest.approx(data.n_customers, rel=1e-9)
    live = stages[stages["stage"] != "ended"]
    assert np.all(live["spend_per_purchase"] > 0) and np.all(live["mean_stay"] >= 1)
    # the candidates: one chosen, the lowest BIC
    candidates = result.lifecycle_candidates
    assert candidates["chosen"].sum() == 1
    assert candidates.loc[candidates["chosen"], "bic"].item() == candidates["bic"].min()
    assert candidates.loc[candidates["chosen"], "spec"].item() == fitted.hmm.name


def test_the_simulator_bridge_attributes(result: FitResult):
    fitted = result.fits["lifecycle"]
    C = len(fitted.class_shares)
    assert fitted.transition_matrices.shape == (C, 5, 5)
    np.testing.assert_allclose(fitted.transition_matrices.sum(axis=2), 1.0)
    assert fitted.purchase_rates.shape == (C, 4) and fitted.spend_per_purchase.shape == (4,)
    assert fitted.rate_shape is None or fitted.rate_shape > 0
    filtered = fitted.filtered(result.data)
    assert filtered["stage_probs"].shape == (result.data.n_customers, 5)
    assert filtered["rate_multiplier"].shape == (result.data.n_customers,)


def test_save_and_plot(result: FitResult, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_stage_occupancy_fit(result.stage_occupancy)
    assert len(ax.collections) == 5
    folder = result.save(tmp_path / "out")
    for name in FitResult.TABLES:
        assert (folder / f"{name}.csv").is_file(), name
    back = pd.read_csv(folder / "stages.csv")
    assert len(back) == len(result.stages)


def test_a_summary_without_the_log_is_refused():
    from sim.data import CustomerData

    data = CustomerData.from_summary(
        pd.DataFrame({"frequency": [0, 2, 1], "recency": [0, 3.0, 1.0], "T": [5.0] * 3})
    )
    with pytest.raises(DataError, match="lifecycle model needs the purchases per period"):
        get_model("lifecycle").fit(data)


def test_sim_fit_with_lifecycle_writes_the_stage_figure(tmp_path, monkeypatch, capsys):
    log = simulated_log(n=400, seed=5)
    path = tmp_path / "log.csv"
    log.assign(date=log["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    monkeypatch.setattr(lifecycle_registry, "DEFAULT_CANDIDATES", ((1, "gamma", None),))
    settings = {k: v for k, v in SMALL.items() if k != "candidates"}
    monkeypatch.setattr(lifecycle_registry, "REGISTRY_SETTINGS", {"node_rule": True, **settings})
    out = tmp_path / "fit"
    code = main(
        [
            "fit",
            str(path),
            "--calibration-end",
            CAL_END,
            "--holdout-end",
            HOLD_END,
            "--models",
            "lifecycle,bgnbd,pnbd",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "lifecycle stages of the chosen specification" in printed
    for name in ("stages.csv", "stage_occupancy.csv", "lifecycle_candidates.csv", "stage_occupancy.png"):
        assert (out / name).is_file(), name
    tracking = pd.read_csv(out / "tracking.csv")
    assert {"expected_lifecycle", "expected_bgnbd", "expected_pnbd"} <= set(tracking.columns)


def test_split_log_units(result: FitResult):
    """The fit is in the unit of the data: a monthly split gives monthly periods."""
    data = split_transactions(simulated_log(n=300, seed=6), CAL_END, HOLD_END, unit="month")
    fitted = get_model(
        "lifecycle", candidates=[(1, None, None)], n_starts=2, n_final=1, max_iter=20, polish=10
    ).fit(data)
    assert fitted.hmm.data_.T == data.n_calibration_periods
    assert np.all(fitted.expected_holdout_transactions(data) >= 0)


def test_decline_outcomes_are_the_chain_absorption_probabilities(result: FitResult):
    fit = result.fits["lifecycle"]
    table = fit.decline_outcomes()
    assert list(table["class"]) == list(range(1, len(fit.class_shares) + 1))
    for c, row in table.iterrows():
        A = fit.transition_matrices[c].copy()
        # make formation and ended absorbing and run the chain from decline to the end
        A[1] = np.eye(5)[1]
        state = np.eye(5)[3]
        expected_stay = 0.0
        for _ in range(20_000):
            expected_stay += state[3]
            state = state @ A
        assert row["eventually_won_back"] == pytest.approx(state[1], rel=1e-9)
        assert 1 - row["eventually_won_back"] == pytest.approx(state[4], rel=1e-9)
        assert row["periods_in_decline"] == pytest.approx(expected_stay, rel=1e-9)
        assert row["class_share"] == pytest.approx(fit.class_shares[c], rel=0)
