"""``sim figures``: every figure's CSV holds exactly the numbers of the tables it claims to plot.

One ``sim figures --quick`` run (through the CLI) makes every figure; each test then recomputes
the figure's data independently — through ``sim.project`` / ``sim.simulate_market`` with the
same config and seed, through closed forms, or through a second table that the simulator fills
from different accumulators — and compares it with the CSV. Exact equality (CSV floats
round-trip) unless a tolerance is stated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
import sim.plotting.gallery.make
from sim.cli.main import main
from sim.engines.market.engine import simulate_market
from sim.plotting import gallery as figures

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "experiments" / "figures"
Z95 = 1.959963984540054
#: The 11 figures of issue 8 and the two CDNOW figures of the transaction-log issue, by number.
EXPECTED = {
    1: "lifecycle_curve",
    2: "stage_occupancy",
    3: "lifecycle_patterns",
    4: "satisfaction_loyalty",
    5: "satisfaction_trap",
    6: "spend_response",
    7: "policy_comparison",
    8: "clv_decomposition",
    9: "value_concentration",
    10: "validation",
    11: "agent_effects",
    # figures of data, not simulations (tests/plotting/test_plotting_fit_figures.py checks them)
    12: "cdnow_tracking",
    13: "cdnow_conditional",
    14: "cdnow_lifecycle",
}


#: The caption facts of every figure of the quick run, by name (filled by ``quick_run``).
BUILT_FACTS: dict = {}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Run ``sim figures --quick`` once; returns the output folder (and records the caption
    facts each figure's data provided in :data:`BUILT_FACTS`).
    """
    out = tmp_path_factory.mktemp("figures")
    build = figures.figure_data

    def recording(spec, **kwargs):
        data = build(spec, **kwargs)
        BUILT_FACTS[spec.name] = dict(data.facts)
        return data

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "figure_data", recording)
        assert main(["figures", "--quick", "--out", str(out), "--configs", str(CONFIGS)]) == 0
    return out


def _spec(name):
    return figures.load_figure_spec(CONFIGS / f"{name}.toml")


def _csv(out, name, panel=None):
    table = pd.read_csv(out / f"{name}.csv")
    if panel is not None:
        table = (
            table[table["panel"] == panel]
            .drop(columns="panel")
            .dropna(axis=1, how="all")
            .reset_index(drop=True)
        )
    return table


def _assert_columns_equal(csv: pd.DataFrame, table: pd.DataFrame, columns, **tolerance):
    for column in columns:
        left, right = csv[column].to_numpy(), table[column].to_numpy()
        if left.dtype.kind in "fc" or right.dtype.kind in "fc":
            np.testing.assert_allclose(
                left.astype(float),
                right.astype(float),
                err_msg=column,
                **(tolerance or {"rtol": 0, "atol": 0}),
            )
        else:
            np.testing.assert_array_equal(left, right, err_msg=column)


# ----------------------------------------------------------------------------- the files


def test_every_figure_is_made_with_its_files_and_index(quick_run):
    specs = figures.load_figure_specs(CONFIGS)
    assert {spec.number: spec.name for spec in specs} == EXPECTED
    manifest = json.loads((quick_run / "manifest.json").read_text())
    entries = {entry["name"]: entry for entry in manifest["figures"]}
    readme = (quick_run / "README.md").read_text()
    for number, name in EXPECTED.items():
        entry = entries[name]
        assert entry["number"] == number and entry["quick"] is True
        assert f"sim figures --quick --only {name}" in entry["command"]
        assert entry["command"] in readme
        caption = (quick_run / f"{name}.txt").read_text()
        assert "{" not in caption and "}" not in caption, caption  # every placeholder filled
        assert entry["status"] == "ok"
        for suffix in ("png", "svg", "csv", "txt"):
            assert f"{name}.{suffix}" in entry["files"]
        assert (quick_run / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (quick_run / f"{name}.svg").read_bytes()[:2000]
        assert f"![{entry['title']}]({name}.png)" in readme
        assert len(pd.read_csv(quick_run / f"{name}.csv")) > 0


def _type_of(value):
    if value is None or isinstance(value, str):
        return type(value)
    return int if isinstance(value, (int, np.integer)) else float


def test_caption_facts_known_before_work_are_those_the_figures_provide(quick_run):
    """load_figure_spec checks each caption against the facts a figure will provide, known
    from its config alone (:func:`sim.plotting.gallery.kinds._check_caption`); those must be exactly the
    names, with the types, that the built figures provide, or a good caption could be
    refused or a bad one pass.
    """
    for spec in figures.load_figure_specs(CONFIGS):
        if spec.name not in BUILT_FACTS or not BUILT_FACTS[spec.name]:  # a skipped figure has none
            continue
        parameters = spec.parameters(quick=True)
        configs = {label: spec.config(label, quick=True) for label in spec.experiments}
        declared = figures.FIGURE_KINDS[spec.kind].facts(spec, parameters, configs)
        built = BUILT_FACTS[spec.name]
        assert set(declared) == set(built), spec.name
        for name, value in built.items():
            assert _type_of(declared[name]) == _type_of(value), (spec.name, name, declared[name], value)


def test_same_config_and_seed_give_identical_files(quick_run, tmp_path):
    """Rerunning a figure reproduces its data byte for byte, and its PNG and SVG too
    (creation dates are left out of the files).
    """
    assert (
        main(
            [
                "figures",
                "--quick",
                "--only",
                "clv_decomposition",
                "--out",
                str(tmp_path),
                "--configs",
                str(CONFIGS),
            ]
        )
        == 0
    )
    for suffix in ("csv", "png", "svg", "txt"):
        assert (tmp_path / f"clv_decomposition.{suffix}").read_bytes() == (
            quick_run / f"clv_decomposition.{suffix}"
        ).read_bytes(), suffix
    # --only keeps the index of the other figures when writing into an existing folder
    assert (
        main(
            [
                "figures",
                "--quick",
                "--only",
                "clv_decomposition",
                "--out",
                str(quick_run),
                "--configs",
                str(CONFIGS),
            ]
        )
        == 0
    )
    names = [entry["name"] for entry in json.loads((quick_run / "manifest.json").read_text())["figures"]]
    assert names == list(EXPECTED.values())


# ----------------------------------------------------------------------------- data vs tables


def test_stage_occupancy_is_the_stages_table(quick_run):
    spec = _spec("stage_occupancy")
    result = sim.project(spec.config(quick=True))
    csv = _csv(quick_run, "stage_occupancy")
    assert list(csv.columns) == ["policy", "period", "stage", "share"]
    _assert_columns_equal(csv, result.stages.reset_index(drop=True), ["policy", "period", "stage", "share"])


def test_lifecycle_patterns_is_the_patterns_table(quick_run):
    result = sim.project(_spec("lifecycle_patterns").config(quick=True))
    csv = _csv(quick_run, "lifecycle_patterns")
    _assert_columns_equal(csv, result.patterns, ["policy", "pattern", "customers", "share", "clv_mean"])
    assert set(csv["policy"]) == {"none", "uniform", "stage_based", "max_satisfaction"}


def test_clv_decomposition_is_the_summary_and_adds_up(quick_run):
    result = sim.project(_spec("clv_decomposition").config(quick=True))
    csv = _csv(quick_run, "clv_decomposition")
    columns = (
        ["policy"]
        + [f"clv{i}" for i in range(1, 7)]
        + ["retention_spend", "acquisition_cost", "clv_mean", "clv_se"]
    )
    _assert_columns_equal(csv, result.summary, columns)
    # what the stacked bars show adds up to the net CLV drawn as a diamond (sums of N means: 1e-12 relative)
    parts = (
        csv[[f"clv{i}" for i in range(1, 7)]].sum(axis=1) - csv["retention_spend"] - csv["acquisition_cost"]
    )
    np.testing.assert_allclose(parts, csv["clv_mean"], rtol=1e-12, atol=1e-9)


def test_satisfaction_trap_is_the_trajectory_and_summary(quick_run):
    result = sim.project(_spec("satisfaction_trap").config(quick=True))
    trajectory = _csv(quick_run, "satisfaction_trap", "trajectory")
    _assert_columns_equal(
        trajectory, result.trajectory, ["policy", "period", "active_share", "satisfaction_mean"]
    )
    values = _csv(quick_run, "satisfaction_trap", "value")
    summary = (
        result.summary.set_index("policy").loc[["none", "stage_based", "max_satisfaction"]].reset_index()
    )
    _assert_columns_equal(
        values, summary, ["policy", "clv_mean", "clv_se", "retention_spend", "satisfaction_mean"]
    )
    np.testing.assert_allclose(values["ci_high"] - values["clv_mean"], Z95 * values["clv_se"], rtol=1e-12)
    # the trap itself (a property of the model at these settings, not of the plot): maximising
    # satisfaction buys more satisfaction with more spend than stage-targeted spend
    by_policy = values.set_index("policy")
    assert (
        by_policy.loc["max_satisfaction", "satisfaction_mean"]
        > by_policy.loc["stage_based", "satisfaction_mean"]
    )
    assert (
        by_policy.loc["max_satisfaction", "retention_spend"] > by_policy.loc["stage_based", "retention_spend"]
    )


def test_satisfaction_loyalty_model_curve_and_simulated_retention(quick_run):
    spec = _spec("satisfaction_loyalty")
    config = spec.config(quick=True)
    model = _csv(quick_run, "satisfaction_loyalty", "model")
    loy = config.loyalty
    # an independent evaluation of (M6): linear interpolation through its four knots
    knots_x = [0.0, loy.defection_threshold, loy.affection_threshold, 1.0]
    knots_y = [0.0, loy.indifference_low, loy.indifference_high, 1.0]
    np.testing.assert_allclose(
        model["loyalty"], np.interp(model["satisfaction"], knots_x, knots_y), rtol=0, atol=1e-12
    )
    assert {loy.defection_threshold, loy.affection_threshold} <= set(model["satisfaction"])
    zone = np.where(
        model["satisfaction"] < loy.defection_threshold,
        "defection",
        np.where(model["satisfaction"] < loy.affection_threshold, "indifference", "affection"),
    )
    np.testing.assert_array_equal(model["zone"], zone)
    simulated = _csv(quick_run, "satisfaction_loyalty", "simulated")
    params = spec.parameters(quick=True)
    table = sim.project(config).satisfaction_retention
    table = table[
        (table["policy"] == params.policy)
        & table["stage"].isin(params.stages)
        & (table["customer_periods"] >= params.min_customer_periods)
    ].reset_index(drop=True)
    _assert_columns_equal(
        simulated,
        table,
        ["policy", "stage", "satisfaction_low", "satisfaction_high", "customer_periods", "retention"],
    )


def test_lifecycle_curve_matches_the_per_period_tables(quick_run):
    """The per-tenure, per-stage table comes from differences of ``by_stage`` over nested
    horizons; check it against two tables the simulator fills from other accumulators: the
    stage counts per period (``stages``) and the per-period means over all active customers
    (``trajectory``), of one run with the full horizon.
    """
    spec = _spec("lifecycle_curve")
    config = spec.config(quick=True)
    params = spec.parameters(quick=True)
    result = sim.project(config)
    n_total = config.population.customers * config.run.replications
    csv = _csv(quick_run, "lifecycle_curve")
    assert set(csv["policy"]) == {params.policy}
    assert (csv["customer_periods"] >= params.min_customer_periods).all()
    stages = result.stages[result.stages["policy"] == params.policy].pivot(
        index="period", columns="stage", values="share"
    )
    trajectory = result.trajectory[result.trajectory["policy"] == params.policy].set_index("period")
    for row in csv.itertuples():
        periods = range(row.tenure_start, row.tenure_end)
        if row.stage == "all":
            active = trajectory.loc[periods, "active_share"] * n_total
            assert row.customer_periods == round(active.sum())
            for column in ("loyalty_mean", "profit_mean"):
                expected = (trajectory.loc[periods, column] * active).sum() / active.sum()
                assert getattr(row, column) == pytest.approx(expected, rel=1e-9), (row, column)
        else:
            assert row.customer_periods == round((stages.loc[periods, row.stage] * n_total).sum())
    # the first bin is a plain run with horizon = tenure_step: by_stage itself, no differencing
    first = sim.project(config, horizon=params.tenure_step).by_stage
    first = first[first["policy"] == params.policy].set_index("stage")
    rows = csv[csv["tenure_start"] == 0].set_index("stage")
    for stage in rows.index.drop("all"):
        for column in ("customer_periods", "loyalty_mean", "profit_mean"):
            assert rows.loc[stage, column] == pytest.approx(first.loc[stage, column], rel=1e-12)
    assert set(csv["stage"]) >= {"formation", "stability", "all"}


def test_spend_response_is_a_common_random_numbers_sweep(quick_run):
    """Rebuild the sweep's policies here (base policy with one stage's spend replaced), run
    them, and compare the CLVs and the paired differences to the base.
    """
    spec = _spec("spend_response")
    config = spec.config(quick=True)
    params = spec.parameters(quick=True)
    base_policy = next(policy for policy in config.policies if policy.name == params.base_policy)
    assert base_policy.kind == "stage"
    base = dict(zip(sim.STAGES, base_policy.spend.as_tuple()))  # the base policy's spend in the spec's config
    assert len(set(base.values())) > 1  # a stage-dependent spend: replacing the wrong stage would show
    dumped = base_policy.model_dump(mode="python")  # same segment multipliers
    policies = [dumped]
    for stage in params.stages:
        for spend in params.spends:
            policies.append({**dumped, "name": f"{stage}_{spend:g}", "spend": {**base, stage: spend}})
    result = sim.project(config.with_overrides(policies=policies))
    summary = result.summary.set_index("policy")
    comparison = result.comparison[result.comparison["reference"] == params.base_policy].set_index("policy")
    csv = _csv(quick_run, "spend_response")
    assert len(csv) == len(params.stages) * len(params.spends)
    for row in csv.itertuples():
        name = f"{row.stage}_{row.spend:g}"
        assert row.clv_mean == summary.loc[name, "clv_mean"]
        assert row.retention_spend == summary.loc[name, "retention_spend"]
        assert row.delta_clv == comparison.loc[name, "delta_clv"]
        assert row.delta_se == comparison.loc[name, "se"]
        assert (row.ci_low, row.ci_high) == (comparison.loc[name, "ci_low"], comparison.loc[name, "ci_high"])
        # common random numbers: the base spend reproduces the base policy exactly
        assert row.is_base == (row.spend == base[row.stage])
        if row.is_base:
            assert row.delta_clv == 0.0 and row.clv_mean == summary.loc[params.base_policy, "clv_mean"]
    for stage, group in csv.groupby("stage"):
        assert group["is_optimum"].sum() == 1
        assert group.loc[group["is_optimum"], "clv_mean"].iloc[0] == group["clv_mean"].max()
    from sim.model.equations import best_care_spend

    dyn = config.dynamics
    assert (csv["care_peak_spend"] == best_care_spend(dyn.care_gain, dyn.care_scale, dyn.annoyance)).all()


def test_policy_comparison_forest_and_frontier(quick_run):
    spec = _spec("policy_comparison")
    params = spec.parameters(quick=True)
    result = sim.project(spec.config(quick=True))
    forest = _csv(quick_run, "policy_comparison", "forest")
    expected = result.comparison[result.comparison["reference"] == params.reference].reset_index(drop=True)
    _assert_columns_equal(
        forest, expected, ["policy", "reference", "delta_clv", "se", "ci_low", "ci_high", "delta_spend"]
    )
    frontier = _csv(quick_run, "policy_comparison", "frontier").set_index("policy")
    summary = result.summary.set_index("policy")
    assert set(frontier.index) == set(summary.index)
    for column in ("retention_spend", "clv_mean", "clv_se"):
        np.testing.assert_array_equal(frontier[column], summary.loc[frontier.index, column], err_msg=column)
    # the 95 % CIs of the mean CLV drawn on the frontier (normal quantile written out here)
    mean, se = (
        summary.loc[frontier.index, "clv_mean"].to_numpy(),
        summary.loc[frontier.index, "clv_se"].to_numpy(),
    )
    np.testing.assert_array_equal(frontier["ci_low"], mean - Z95 * se, err_msg="ci_low")
    np.testing.assert_array_equal(frontier["ci_high"], mean + Z95 * se, err_msg="ci_high")
    # efficient = not dominated (brute force over all pairs)
    for policy, row in frontier.iterrows():
        dominated = any(
            (other["retention_spend"] <= row["retention_spend"])
            and (other["clv_mean"] >= row["clv_mean"])
            and ((other["retention_spend"] < row["retention_spend"]) or (other["clv_mean"] > row["clv_mean"]))
            for name, other in summary.iterrows()
            if name != policy
        )
        assert bool(row["efficient"]) == (not dominated), policy
    assert frontier.loc["none", "efficient"]  # nothing spends less than nothing


def test_value_concentration_lorenz_from_per_customer_clv(quick_run):
    spec = _spec("value_concentration")
    result = sim.project(spec.config(quick=True))
    lorenz = _csv(quick_run, "value_concentration", "lorenz")
    for policy, rows in lorenz.groupby("policy", sort=False):
        values = np.sort(result.clv[policy])[::-1]
        n = values.size
        expected = [values[: int(round(q * n))].sum() / values.sum() for q in rows["customer_share"]]
        np.testing.assert_allclose(rows["value_share"], expected, rtol=1e-12, atol=1e-12, err_msg=policy)
        # at 5 % and 20 % of customers it meets the ABC groups of the value_concentration table
        # (filled by the projection's own code): A, then A + B
        groups = result.value_concentration[result.value_concentration["policy"] == policy].set_index("group")
        at = rows.set_index("customer_share")["value_share"]
        assert at.loc[0.05] == pytest.approx(groups.loc["A", "value_share"], rel=1e-12)
        assert at.loc[0.2] == pytest.approx(
            groups.loc["A", "value_share"] + groups.loc["B", "value_share"], rel=1e-12
        )
    abc = _csv(quick_run, "value_concentration", "abc")
    _assert_columns_equal(
        abc,
        result.value_concentration.reset_index(drop=True),
        ["policy", "group", "customer_share", "value_share", "negative_share"],
    )
    reference = _csv(quick_run, "value_concentration", "reference")
    np.testing.assert_allclose(reference["customer_share"], [0, 0.05, 0.20, 1.0])
    np.testing.assert_allclose(reference["value_share"], [0, 0.50, 0.80, 1.0])


def test_validation_markov_and_sbg_panels(quick_run):
    from sim.analytic.lifecycle_chain import lifecycle_markov_clv
    from sim.analytic.sbg import sbg_fit, sbg_survival

    spec = _spec("validation")
    params = spec.parameters(quick=True)
    markov = spec.config("markov", quick=True)
    exact = _csv(quick_run, "validation", "markov_exact")
    assert set(exact["horizon"]) == set(range(1, max(params.horizons) + 1))
    for horizon in (1, 7, max(params.horizons)):
        for policy in markov.policy_names:
            value = exact[(exact["policy"] == policy) & (exact["horizon"] == horizon)]["exact_clv"].iloc[0]
            assert value == pytest.approx(
                lifecycle_markov_clv(markov.with_overrides(run={"horizon": horizon}), policy), rel=1e-12
            )
    simulated = _csv(quick_run, "validation", "markov_simulated")
    assert sorted(set(simulated["horizon"])) == list(params.horizons)
    for horizon in params.horizons:
        summary = sim.project(markov, horizon=horizon).summary.set_index("policy")
        rows = simulated[simulated["horizon"] == horizon].set_index("policy")
        np.testing.assert_array_equal(rows["simulated_clv"], summary.loc[rows.index, "clv_mean"])
        np.testing.assert_array_equal(rows["simulated_se"], summary.loc[rows.index, "clv_se"])
    # the validation itself: simulated within 4 SE of the closed form (SE = clv_se, the sample
    # sd over the n = customers x replications independent customers / sqrt(n))
    assert (simulated["z"].abs() < 4).all(), simulated
    # sBG panel: the published cohort (Fader & Hardie 2007, regular, years 0-12)
    survival = _csv(quick_run, "validation", "survival")
    published = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]
    np.testing.assert_array_equal(survival["observed_survivors"], published)
    assert list(survival["observed_role"]) == ["fit"] * 8 + ["holdout"] * 5
    fit = sbg_fit(published[:8])
    assert abs(fit.alpha - 0.704) < 0.0015 and abs(fit.beta - 1.182) < 0.0015  # the paper's 3 decimals
    np.testing.assert_allclose(
        survival["fitted_survival"], sbg_survival(fit.alpha, fit.beta, np.arange(13)), rtol=1e-12
    )
    cohort = spec.config("cohort", quick=True).with_overrides(
        population={"churn_propensity": {"alpha": float(fit.alpha), "beta": float(fit.beta)}},
        run={"horizon": 12},
    )
    result = sim.project(cohort)
    ended = result.stages[(result.stages["policy"] == "none") & (result.stages["stage"] == "ended")]
    np.testing.assert_array_equal(survival["simulated_survival"], 1.0 - ended["share"].to_numpy())
    n = cohort.population.customers * cohort.run.replications
    se = np.sqrt(survival["fitted_survival"] * (1 - survival["fitted_survival"]) / n)
    # simulated survival within 4 binomial SEs of the sBG curve at every period (t = 0 exact)
    assert (np.abs(survival["simulated_survival"] - survival["fitted_survival"]) <= 4 * se + 1e-12).all()


def test_agent_effects_are_the_market_tables(quick_run):
    spec = _spec("agent_effects")
    params = spec.parameters(quick=True)
    csv = _csv(quick_run, "agent_effects")
    assert list(dict.fromkeys(csv["scenario"])) == list(params.scenarios)
    series = {}
    for scenario in params.scenarios:
        config = spec.config(scenario, quick=True)
        config = config.with_overrides(
            policies=[p.model_dump() for p in config.policies if p.name == params.policy]
        )
        market = simulate_market(config).market
        n = config.population.customers
        by_period = market.groupby("period").sum(numeric_only=True)
        replications = market["replication"].nunique()
        rows = csv[csv["scenario"] == scenario].set_index("period")
        np.testing.assert_allclose(
            rows["live_per_cohort"], by_period["live"] / (replications * n), rtol=1e-12
        )
        np.testing.assert_allclose(
            rows["joined_word_of_mouth_per_1000"],
            1000 * by_period["joined_word_of_mouth"] / (replications * n),
            rtol=1e-12,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            np.testing.assert_allclose(
                rows["exit_rate_transactional"],
                by_period["exits_transactional"] / by_period["live_transactional"],
                rtol=1e-12,
            )
        np.testing.assert_allclose(
            rows["cash_value_cumulative"], np.cumsum(by_period["cash_value"]) / (replications * n), rtol=1e-12
        )
        series[scenario] = rows
    # common random numbers across markets: until the competitor enters, its market is the
    # market without interactions, period for period
    enters = spec.config("competitor", quick=True).market.competitor.enters_at
    before = series["competitor"].index < enters
    pd.testing.assert_frame_equal(
        series["competitor"].loc[before].drop(columns=["scenario", "competitor"]),
        series["no_interactions"].loc[before].drop(columns=["scenario", "competitor"]),
    )
    assert not series["competitor"].loc[before, "competitor"].any()
    assert series["competitor"].loc[~before, "competitor"].all()
    # word of mouth brings real customers into the market
    assert series["word_of_mouth"]["joined_word_of_mouth_per_1000"].sum() > 0
    assert series["no_interactions"]["joined_word_of_mouth_per_1000"].sum() == 0


# ----------------------------------------------------------------------------- bad input


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


GOOD = """
[figure]
number = 1
kind = "clv_decomposition"
title = "t"
caption = "c {customers}"
full = { customers = 100 }
quick = { customers = 50 }
[experiment]
name = "x"
"""


@pytest.mark.parametrize(
    "text, needle",
    [
        (GOOD.replace('kind = "clv_decomposition"', 'kind = "pie_chart"'), "figure.kind = 'pie_chart'"),
        (GOOD.replace("number = 1", "number = 1\ncolour = 3"), "figure.colour: unknown key"),
        (
            GOOD.replace("quick = { customers = 50 }", "quick = { customers = 0 }"),
            "figure.quick.customers = 0",
        ),
        (
            GOOD.replace('name = "x"', 'name = "x"\n[experiment.population]\nwallet_sigma = -1'),
            "population.wallet_sigma = -1",
        ),
        (
            GOOD.replace('kind = "clv_decomposition"', 'kind = "policy_comparison"').replace(
                "[experiment]", 'params = { reference = "nobody" }\n[experiment]'
            ),
            "reference = 'nobody'",
        ),
        (GOOD + "\n[other]\nx = 1\n", "other: unknown top-level key"),
        ("[figure\n", "is not valid TOML"),
        (
            GOOD.replace('caption = "c {customers}"', 'caption = "c {nobody}"'),
            "figure.caption: {nobody}: the figure does not provide it; available: customers, horizon, "
            "long_term",
        ),
        (
            GOOD.replace('caption = "c {customers}"', 'caption = "c {customers"'),
            "figure.caption: not a valid caption template",
        ),
        (
            GOOD.replace('caption = "c {customers}"', 'caption = "c {} customers"'),
            "Format string contains positional fields",
        ),
        (
            GOOD.replace('caption = "c {customers}"', 'caption = "c {customers:.2q}"'),
            "figure.caption: not a valid caption template: Unknown format code 'q'",
        ),
        (
            GOOD.replace('kind = "clv_decomposition"', 'kind = "spend_response"').replace(
                "[experiment]", 'params = { base_policy = "uniform", spends = [0.0, 1.0] }\n[experiment]'
            ),
            "figure.params: base_policy = 'uniform': must be a policy of kind 'stage', not 'uniform'",
        ),
        (
            GOOD.replace('kind = "clv_decomposition"', 'kind = "spend_response"')
            .replace(
                "quick = { customers = 50 }",
                "quick = { customers = 50, params = { spends = "
                + str([float(i) for i in range(20)])
                + " } }",
            )
            .replace(
                "[experiment]", 'params = { base_policy = "stage_based", spends = [0.0, 1.0] }\n[experiment]'
            ),
            "figure.params (quick sizes): 4 stages x 20 spends + 1 = 81 policies; at most 64",
        ),
        (
            GOOD.replace('kind = "clv_decomposition"', 'kind = "spend_response"')
            .replace('caption = "c {customers}"', 'caption = "c {optimum:.1f}"')
            .replace(
                "[experiment]", 'params = { base_policy = "stage_based", spends = [0.0, 1.0] }\n[experiment]'
            ),
            "figure.caption: not a valid caption template: Unknown format code 'f' for object of type 'str'",
        ),
    ],
)
def test_bad_figure_configs_are_refused_before_any_work(tmp_path, capsys, text, needle):
    configs = tmp_path / "configs"
    _write(configs, "broken", text)
    code = main(["figures", "--quick", "--configs", str(configs), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2
    assert needle in error, error
    assert "Traceback" not in error
    assert not (tmp_path / "out").exists()  # refused before any work


def test_an_error_while_making_figures_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    """Should a figure still fail with bad input after the checks, ``sim figures`` says so
    in one message and exits 2 (the checks above keep the known cases before any work).
    """

    def failing(spec, **kwargs):
        raise ValueError("figure.params.x = 1: a problem only the data shows")

    monkeypatch.setattr(sim.plotting.gallery.make, "figure_data", failing)
    code = main(
        [
            "figures",
            "--quick",
            "--only",
            "clv_decomposition",
            "--configs",
            str(CONFIGS),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2 and error.strip() == "sim: figure.params.x = 1: a problem only the data shows"


def test_unknown_figure_name_lists_the_figures(capsys):
    assert main(["figures", "--only", "lifecycle_curv", "--configs", str(CONFIGS)]) == 2
    error = capsys.readouterr().err
    assert "no figure 'lifecycle_curv' (did you mean 'lifecycle_curve'?)" in error
    assert "value_concentration" in error


def test_tenure_stage_table_rejects_bad_arguments(baseline_config):
    with pytest.raises(ValueError, match="tenure_step = 0"):
        figures.tenure_stage_table(baseline_config, 0)
    with pytest.raises(ValueError, match="not in the config"):
        figures.tenure_stage_table(baseline_config, 3, policies=["nobody"])
    with pytest.raises(ValueError, match="must be a policy of kind 'stage'"):
        figures.response_config(baseline_config, "uniform", ["formation"], [0.0, 1.0])
    with pytest.raises(ValueError, match="at most 64"):
        figures.response_config(baseline_config, "stage_based", list(sim.STAGES), list(range(20)))


def test_figures_refuse_an_output_folder_of_other_files(tmp_path, capsys):
    """``sim figures --out`` follows the rules of :mod:`sim.io.paths`: a folder holding files
    that are not a figure set is refused before any work, untouched; ``--force`` writes
    beside other files (here a .tex draft) but never over one a result could replace (here a
    reader's README.md, which the figure index would overwrite); the folder so made is
    accepted again without --force.
    """
    readme = tmp_path / "README.md"
    readme.write_text("a reader's file\n")
    arguments = [
        "figures",
        "--quick",
        "--only",
        "stage_occupancy",
        "--configs",
        str(CONFIGS),
        "--out",
        str(tmp_path),
    ]
    assert main(arguments) == 2
    message = capsys.readouterr().err
    assert str(tmp_path) in message and "README.md" in message and "--force" in message
    assert main(arguments + ["--force"]) == 2
    message = capsys.readouterr().err
    assert (
        "holds files a result could overwrite (README.md)" in message and "--force never replaces" in message
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["README.md"]
    assert readme.read_text() == "a reader's file\n"
    readme.rename(tmp_path / "draft.tex")
    assert main(arguments) == 2
    assert main(arguments + ["--force"]) == 0
    assert (tmp_path / "stage_occupancy.csv").is_file() and (tmp_path / "manifest.json").is_file()
    assert (tmp_path / "draft.tex").read_text() == "a reader's file\n"
    assert main(arguments) == 0  # now a figure folder (it has a manifest): remaking into it is allowed


def test_an_interrupted_figure_run_can_be_remade_into_its_folder(tmp_path, monkeypatch, capsys):
    """A sim figures run interrupted after its first figure (PNG, CSV and caption written, no
    manifest yet) left a folder marked as a sim folder, so the same command remakes it without
    --force (without the marker the folder would count as someone else's files).
    """
    import sim.plotting.style as style

    out = tmp_path / "figs"
    arguments = [
        "figures",
        "--quick",
        "--only",
        "stage_occupancy",
        "--only",
        "lifecycle_patterns",
        "--configs",
        str(CONFIGS),
        "--out",
        str(out),
    ]
    real_save, saved = style.save_figure, []

    def interrupted_at_the_second(*args, **kwargs):
        saved.append(1)
        if len(saved) > 1:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(
        style, "save_figure", interrupted_at_the_second
    )  # the gallery imports it when it draws
    assert main(arguments) == 130
    assert (out / "stage_occupancy.csv").is_file() and not (out / "manifest.json").exists()
    monkeypatch.undo()
    assert main(arguments) == 0 and (out / "manifest.json").is_file()
    capsys.readouterr()


# ----------------------------------------------------------------------------- bad-input probe


def test_figures_refuse_an_empty_name_and_bad_threads_before_any_folder(tmp_path, capsys):
    out = tmp_path / "figs"
    for only in ("", ",", "stage_occupancy,"):
        assert main(["figures", "--quick", "--only", only, "--configs", str(CONFIGS), "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert "--only" in error and "empty figure name" in error and "Traceback" not in error
    assert (
        main(
            [
                "figures",
                "--quick",
                "--only",
                "stage_occupancy",
                "--threads",
                "99999",
                "--configs",
                str(CONFIGS),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "--threads 99999: must be a whole number in [0, 1024]" in error and "Traceback" not in error
    assert not out.exists()
    with pytest.raises(ValueError, match="empty figure name|give one or more figure names"):
        figures.load_figure_specs(CONFIGS, [])
    with pytest.raises(ValueError, match=r"--threads 5000"):
        figures.make_figures(out, quick=True, only=["stage_occupancy"], config_dir=CONFIGS, threads=5000)
    assert not out.exists()


def test_figures_refuse_a_run_result_folder_without_force(tmp_path, capsys):
    """A folder whose manifest.json is a run's (experiment, files) is not a figure set: making
    figures there would replace the run's manifest, so it needs --force.
    """
    from sim.io.results import package_versions

    run_manifest = {
        "experiment": "baseline",
        "complete": True,
        "versions": package_versions(),
        "files": {"summary.csv": "0" * 64},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(run_manifest))
    (tmp_path / "summary.csv").write_text("policy\nnone\n")
    arguments = [
        "figures",
        "--quick",
        "--only",
        "stage_occupancy",
        "--configs",
        str(CONFIGS),
        "--out",
        str(tmp_path),
    ]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert "manifest.json is a result of sim run or sim optimize" in error and "--force" in error
    assert json.loads((tmp_path / "manifest.json").read_text()) == run_manifest  # untouched
    assert not (tmp_path / "stage_occupancy.csv").exists()
    assert main(arguments + ["--force"]) == 0
    assert "figures" in json.loads((tmp_path / "manifest.json").read_text())
