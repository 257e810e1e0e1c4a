"""Policy experiments: paired comparisons (common random numbers), the satisfaction trap,
precision control, sweeps and the shipped experiment configs (sim.experiments).
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from scipy import stats

import sim
from sim.exceptions import ConfigError
from sim.experiments.comparison import (
    ExperimentResult,
    frontier_table,
    project_to_precision,
    restrict_comparison,
    run_experiment,
    with_unpaired_se,
)
from sim.experiments.sweep import run_sweep
from sim.model.config import apply_overrides, sweep_grid
from sim.model.equations import best_care_spend

POLICY_COMPARISON = REPO / "experiments" / "policy_comparison.toml"
SWEEP_DISCOUNT = REPO / "experiments" / "sweep_discount.toml"
MODEL_SECTIONS = ("population", "dynamics", "loyalty", "transitions", "word_of_mouth", "economics")


def _small(config, customers=4096, replications=1, horizon=36, **sections):
    """The config at a small size (and without precision control unless given)."""
    sections.setdefault("precision", {"target_ci_halfwidth": None})
    return config.with_overrides(
        population={"customers": customers},
        run={"replications": replications, "horizon": horizon},
        **sections,
    )


# ----------------------------------------------------------------------------- comparisons


def test_comparison_reference_restricts_to_rows_against_the_reference(baseline_config):
    config = _small(baseline_config)
    every_pair = sim.project(config)
    against = sim.project(config.with_overrides(comparison={"reference": "none"}))
    assert len(every_pair.comparison) == 3 * 2
    assert list(against.comparison["reference"]) == ["none", "none"]
    assert list(against.comparison["policy"]) == ["uniform", "stage_based"]
    # the same numbers as the matching rows of the all-pairs table, and the same helper result
    expected = restrict_comparison(every_pair.comparison, "none")
    pd.testing.assert_frame_equal(against.comparison, expected, check_exact=True)
    with pytest.raises(ValueError, match="'nobody' is not in the comparison table"):
        restrict_comparison(every_pair.comparison, "nobody")


def test_paired_se_is_the_sd_of_per_customer_differences(baseline_result):
    """The kernel's accumulated paired SE equals sd(CLV_A - CLV_B)/sqrt(n) computed from the
    per-customer CLVs (an independent computation), to rounding.
    """
    comparison = baseline_result.comparison.set_index(["policy", "reference"])
    for (policy, reference), row in comparison.iterrows():
        difference = baseline_result.clv[policy] - baseline_result.clv[reference]
        assert row["delta_clv"] == pytest.approx(difference.mean(), rel=1e-9)
        assert row["se"] == pytest.approx(difference.std(ddof=1) / math.sqrt(difference.size), rel=1e-7)
        assert row["p_better"] == pytest.approx(np.mean(difference > 0), abs=1e-12)


def test_common_random_numbers_shrink_the_se_several_times(baseline_result):
    """On the baseline (60,000 customers), the paired SE of ΔCLV is several times smaller than
    the unpaired sqrt(se_A^2 + se_B^2) two independent samples would give: at least 2x for
    every pair and more than 3x for the two spending policies (measured: 2.3x and 3.35x).
    The run is seeded, so the check is deterministic; the SEs come from 60,000 customers each
    (a few per cent relative precision), and the measured factors sit 10 % or more above the
    thresholds.
    """
    table = with_unpaired_se(baseline_result.comparison, baseline_result.summary).set_index(
        ["policy", "reference"]
    )
    summary = baseline_result.summary.set_index("policy")
    row = table.loc[("stage_based", "uniform")]
    assert row["se_unpaired"] == pytest.approx(
        math.hypot(summary.loc["stage_based", "clv_se"], summary.loc["uniform", "clv_se"])
    )
    assert (table["se_ratio"] > 2.0).all(), table["se_ratio"]
    assert row["se_ratio"] > 3.0
    # and the paired interval is the one that resolves the difference
    assert row["ci_low"] > 0 and row["delta_clv"] - 1.96 * row["se_unpaired"] < row["ci_low"]


def test_frontier_marks_the_pareto_set_exactly():
    summary = pd.DataFrame(
        {
            "policy": ["none", "cheap_good", "dear_better", "dear_worse", "tie"],
            "retention_spend": [0.0, 10.0, 30.0, 40.0, 10.0],
            "clv_mean": [100.0, 150.0, 160.0, 120.0, 150.0],
            "clv_se": [1.0] * 5,
        }
    )
    frontier = frontier_table(summary, cohort_customers=1000).set_index("policy")
    assert frontier["efficient"].to_dict() == {
        "none": True,
        "cheap_good": True,
        "tie": True,
        "dear_better": True,
        "dear_worse": False,
    }
    assert frontier.loc["dear_better", "total_clv"] == 160_000.0
    assert frontier.loc["dear_better", "total_spend"] == 30_000.0
    assert list(frontier["retention_spend"]) == sorted(frontier["retention_spend"])


# ----------------------------------------------------------------------------- the satisfaction trap


def test_satisfaction_trap_stage_targeting_beats_max_satisfaction(baseline_config):
    """docs/model.md §2.1: on the baseline, stage-targeted spend (the baseline's stage_based policy)
    earns more net CLV than 'maximise satisfaction for all' (the spend at the peak of the care
    response for everyone), while the latter buys higher mean satisfaction.

    Four independent seeds x 8,192 customers. ΔCLV: the mean of the four paired estimates with
    SE = sqrt(sum se_i^2)/4 (independent seeds); its 95 % CI must exclude 0 (and the effect
    must exceed 4 SE). Satisfaction: batch means over the seeds, a t interval with 3 degrees
    of freedom (99 %) must exclude 0.
    """
    stage_based = next(p for p in baseline_config.policies if p.name == "stage_based").model_dump()
    config = _small(
        baseline_config,
        customers=8192,
        horizon=120,
        policies=[stage_based, {"name": "max_satisfaction", "kind": "max_satisfaction"}],
        comparison={"reference": "max_satisfaction"},
    )
    deltas, ses, satisfaction_gaps, spend_ratio = [], [], [], []
    for seed in (101, 102, 103, 104):
        result = sim.project(config, seed=seed)
        row = result.comparison.iloc[0]
        assert (row["policy"], row["reference"]) == ("stage_based", "max_satisfaction")
        deltas.append(row["delta_clv"])
        ses.append(row["se"])
        summary = result.summary.set_index("policy")
        satisfaction_gaps.append(
            summary.loc["max_satisfaction", "satisfaction_mean"]
            - summary.loc["stage_based", "satisfaction_mean"]
        )
        spend_ratio.append(
            summary.loc["max_satisfaction", "retention_spend"] / summary.loc["stage_based", "retention_spend"]
        )
    delta = np.mean(deltas)
    se = math.sqrt(np.sum(np.square(ses))) / len(ses)
    assert delta - 1.96 * se > 0, (delta, se)  # the 95 % CI excludes zero ...
    assert delta > 4 * se  # ... by a wide margin (measured: 39.4 ± 5.7, i.e. 6.9 SE)
    gap = np.mean(satisfaction_gaps)
    gap_se = np.std(satisfaction_gaps, ddof=1) / math.sqrt(len(satisfaction_gaps))
    assert gap - stats.t.ppf(0.995, df=3) * gap_se > 0, (gap, gap_se)  # measured: 0.048 ± 0.0003
    assert min(spend_ratio) > 3  # the trap is expensive: several times the spend


# ----------------------------------------------------------------------------- precision control


def _two_policy_config(baseline_config):
    return _small(
        baseline_config,
        customers=4096,
        horizon=36,
        policies=[{"name": "none", "kind": "none"}, {"name": "uniform", "kind": "uniform", "spend": 2.0}],
        comparison={"reference": "none"},
    )


def test_precision_control_adds_replications_until_the_target(baseline_config):
    config = _two_policy_config(baseline_config)
    one = sim.project(config)
    halfwidth_one = 1.959963984540054 * one.comparison["se"].max()
    target = halfwidth_one / 2  # needs about four times the customers
    controlled = config.with_overrides(precision={"target_ci_halfwidth": target, "max_replications": 20})
    result, record = project_to_precision(controlled)
    replications = record["replications"]
    assert record["met"] and record["reached_ci_halfwidth"] <= target
    assert 2 <= replications <= 20
    assert record["rounds"][0] == {"replications": 1, "ci_halfwidth": pytest.approx(halfwidth_one, rel=1e-12)}
    assert all(
        r["ci_halfwidth"] > target for r in record["rounds"][:-1]
    )  # it stopped at the first round below
    # the reached half-width is the comparison's, and the numbers are those of sim.project with R replications
    assert record["reached_ci_halfwidth"] == pytest.approx(
        (result.comparison["ci_high"] - result.comparison["ci_low"]).max() / 2, rel=1e-12
    )
    direct = sim.project(config, replications=replications)
    assert result.config.run.replications == replications
    for name in direct.TABLES:
        pd.testing.assert_frame_equal(result.table(name), direct.table(name), check_exact=True)


@pytest.mark.parametrize("keep_limit", [None, 2 * 4096], ids=["below-limit", "crosses-limit"])
def test_precision_control_keeps_clvs_exactly_as_sim_project(baseline_config, monkeypatch, keep_limit):
    """The cap x customers is far above sim.tables.chunks.CLV_KEEP_LIMIT, but the run stops at
    a few replications: the quantiles and value concentration come from the per-customer
    CLVs exactly when sim.project with the reached replications computes them so, and the
    tables are bitwise those of sim.project. With the limit lowered to two replications
    (``crosses-limit``) the CLVs kept in the first rounds are dropped for the sketch.
    """
    import sim.tables.chunks

    if keep_limit is not None:
        monkeypatch.setattr(sim.tables.chunks, "CLV_KEEP_LIMIT", keep_limit)
    config = _two_policy_config(baseline_config)
    cap = 1000
    assert cap * config.population.customers > sim.tables.chunks.CLV_KEEP_LIMIT
    halfwidth_one = 1.959963984540054 * sim.project(config).comparison["se"].max()
    controlled = config.with_overrides(
        precision={"target_ci_halfwidth": halfwidth_one / 2, "max_replications": cap}
    )
    result, record = project_to_precision(controlled)
    replications = record["replications"]
    assert record["met"] and 2 <= replications < 20
    exact = replications * config.population.customers <= sim.tables.chunks.CLV_KEEP_LIMIT
    assert exact == (keep_limit is None)  # each case takes the branch it is named for
    direct = sim.project(config, replications=replications)
    for name in ("summary", "value_concentration", *direct.TABLES):
        pd.testing.assert_frame_equal(result.table(name), direct.table(name), check_exact=True)
    assert sorted(result.clv) == sorted(direct.clv) == (sorted(config.policy_names) if exact else [])
    for name in direct.clv:
        np.testing.assert_array_equal(result.clv[name], direct.clv[name])


def test_precision_control_stops_at_the_cap(baseline_config):
    config = _two_policy_config(baseline_config).with_overrides(
        precision={"target_ci_halfwidth": 0.01, "max_replications": 3}
    )
    result = run_experiment(config)
    assert isinstance(result, ExperimentResult)
    assert result.precision["replications"] == 3 and not result.precision["met"]
    assert result.precision["reached_ci_halfwidth"] > 0.01
    assert result.manifest_extra()["precision"]["max_replications"] == 3


def test_precision_config_is_checked_before_work(baseline_config):
    with pytest.raises(ConfigError, match=r"precision.max_replications = 1: must be >= run.replications = 4"):
        baseline_config.with_overrides(precision={"target_ci_halfwidth": 1.0, "max_replications": 1})
    with pytest.raises(ConfigError, match="at least two policies"):
        baseline_config.with_overrides(
            precision={"target_ci_halfwidth": 1.0}, policies=[{"name": "none", "kind": "none"}]
        )
    with pytest.raises(
        ConfigError, match=r"comparison.reference = 'unifrom': no such policy \(did you mean 'uniform'\?\)"
    ):
        baseline_config.with_overrides(comparison={"reference": "unifrom"})


# ----------------------------------------------------------------------------- sweeps


def test_sweep_gives_one_row_per_point_and_policy_and_really_changes_the_model(baseline_config):
    """A 3 x 2 grid over the discount rate and the uniform policy's spend: 6 points x 3
    policies = 18 rows. With common random numbers the customers and shocks are the same at
    every point, so the checks are exact: CLV falls strictly with the discount rate for every
    policy; 'none' and 'stage_based' do not depend on the uniform spend at all (bitwise); the
    uniform policy's spend rises with its spend level; and a point equals sim.project of the
    config with that value set.
    """
    config = _small(
        baseline_config,
        horizon=60,
        sweep={
            "economics.annual_discount_rate": [0.05, 0.1, 0.2],
            "policies": {"uniform": {"spend": [1.0, 4.0]}},
        },
    )
    assert len(sweep_grid(config)) == 6
    result = run_sweep(config)
    sweep = result.sweep
    assert len(sweep) == 6 * 3
    assert result.parameters == ("economics.annual_discount_rate", "policies.uniform.spend")
    assert sweep.groupby(["economics.annual_discount_rate", "policies.uniform.spend"]).size().eq(3).all()
    assert list(sweep["point"].unique()) == [1, 2, 3, 4, 5, 6]
    for (policy, spend), rows in sweep.groupby(["policy", "policies.uniform.spend"]):
        clv = rows.sort_values("economics.annual_discount_rate")["clv_mean"].to_numpy()
        assert (np.diff(clv) < 0).all(), (policy, spend, clv)
    wide = sweep.pivot_table(
        index=["economics.annual_discount_rate", "policy"],
        columns="policies.uniform.spend",
        values="clv_mean",
    )
    for policy in ("none", "stage_based"):
        assert (wide.xs(policy, level="policy")[1.0] == wide.xs(policy, level="policy")[4.0]).all()
    uniform = sweep[sweep["policy"] == "uniform"].pivot(
        index="economics.annual_discount_rate", columns="policies.uniform.spend", values="retention_spend"
    )
    assert (uniform[4.0] > 3 * uniform[1.0]).all()
    direct = sim.project(
        apply_overrides(
            config.model_copy(update={"sweep": {}}),
            {"economics.annual_discount_rate": 0.2, "policies.uniform.spend": 4.0},
        )
    )
    point = sweep[sweep["point"] == 6].drop(columns=["point", *result.parameters]).reset_index(drop=True)
    pd.testing.assert_frame_equal(point, direct.summary, check_exact=True)
    assert (
        len(result.sweep_comparison) == 6 * 3 * 2
    )  # comparison.reference unset: every ordered pair per point


def test_sweep_over_the_segment_share_changes_the_customers(baseline_config):
    """relationship_share 0 or 1 makes every customer transactional or relationship: the
    mean acquisition cost is then exactly that segment's.
    """
    config = _small(
        baseline_config,
        sweep={"population.relationship_share": [0.0, 1.0]},
        policies=[{"name": "none", "kind": "none"}],
    )
    sweep = run_sweep(config).sweep.set_index("population.relationship_share")
    acquisition = baseline_config.economics.acquisition_cost
    assert sweep.loc[0.0, "acquisition_cost"] == acquisition.transactional
    assert sweep.loc[1.0, "acquisition_cost"] == acquisition.relationship


def test_every_sweep_point_is_validated_when_the_config_is_loaded():
    with pytest.raises(ConfigError) as caught:
        sim.config_from_dict(
            {"sweep": {"economics.annual_discount_rate": [0.1, 1.5], "policies.uniform.spend": [1.0, -1.0]}}
        )
    text = str(caught.value)
    assert "sweep point 2 of 4 (economics.annual_discount_rate = 0.1, policies.uniform.spend = -1.0)" in text
    assert "economics.annual_discount_rate = 1.5: must be <= 1.0" in text
    with pytest.raises(
        ConfigError,
        match=r"sweep.'policies.unifrm.spend': no policy named 'unifrm' \(did you mean 'uniform'\?\)",
    ):
        sim.config_from_dict({"sweep": {"policies.unifrm.spend": [1.0]}})
    with pytest.raises(ConfigError, match="must be a non-empty list"):
        sim.config_from_dict({"sweep": {"economics.annual_discount_rate": 0.1}})
    with pytest.raises(ConfigError, match="cannot be swept"):
        sim.config_from_dict({"sweep": {"sweep.x": [1]}})


# ----------------------------------------------------------------------------- shipped experiment configs


def test_policy_comparison_config_runs_on_the_baseline_model(baseline_config):
    """experiments/policy_comparison.toml: the baseline model, seven policies of every kind,
    compared against 'none'. Run small through the API; check what the numbers must be.
    """
    config = sim.load_config(POLICY_COMPARISON)
    for section in MODEL_SECTIONS:
        assert getattr(config, section) == getattr(baseline_config, section), section
    kinds = {policy.kind for policy in config.policies}
    assert kinds == {"none", "uniform", "stage", "value", "max_satisfaction", "reactive", "table"}
    assert config.comparison.reference == "none" and config.precision.target_ci_halfwidth is not None
    result = run_experiment(_small(config, customers=8192, horizon=120))
    comparison = result.comparison.set_index("policy")
    assert list(result.comparison["reference"].unique()) == ["none"] and len(comparison) == 6
    summary = result.summary.set_index("policy")
    np.testing.assert_allclose(
        comparison["delta_spend"], summary.loc[comparison.index, "retention_spend"], rtol=1e-12
    )
    by_stage = result.by_stage.set_index(["policy", "stage"])["spend_mean"]
    peak = best_care_spend(config.dynamics.care_gain, config.dynamics.care_scale, config.dynamics.annoyance)
    np.testing.assert_allclose(
        by_stage.loc["max_satisfaction"], peak, rtol=1e-12
    )  # the peak of (M1) everywhere
    assert by_stage.loc[("reactive", "decline")] == 4.0  # reactive pays its spend in decline ...
    assert 0 < by_stage.loc[("reactive", "stability")] < 4.0  # ... and elsewhere only after a drop
    # every spending policy beats none here, and the trap policy is off the frontier
    assert (comparison["ci_low"] > 0).all()
    frontier = result.frontier.set_index("policy")
    assert frontier.loc["none", "efficient"] and not frontier.loc["max_satisfaction", "efficient"]
    assert (result.comparison["se_ratio"] > 1.5).all()


def test_sim_run_writes_comparison_frontier_and_precision(tmp_path, baseline_config):
    """`sim run` on a small comparison with precision control: tables, figure, manifest."""
    from sim.cli.main import main

    config_path = tmp_path / "small.toml"
    config_path.write_text(
        'name = "small"\n'
        '[[policies]]\nname = "none"\nkind = "none"\n'
        '[[policies]]\nname = "stage_based"\nkind = "stage"\nspend = { formation = 4.0, decline = 3.0 }\n'
        '[[policies]]\nname = "max_satisfaction"\nkind = "max_satisfaction"\n'
        '[comparison]\nreference = "max_satisfaction"\n'
        "[precision]\ntarget_ci_halfwidth = 20.0\nmax_replications = 6\n"
        "[population]\ncustomers = 4096\n[run]\nreplications = 1\nhorizon = 60\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(config_path), "--out", str(out), "--no-progress"]) == 0
    comparison = pd.read_csv(out / "comparison.csv")
    assert set(comparison["reference"]) == {"max_satisfaction"} and len(comparison) == 2
    frontier = pd.read_csv(out / "frontier.csv")
    assert set(frontier["policy"]) == {"none", "stage_based", "max_satisfaction"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["comparison_reference"] == "max_satisfaction"
    precision = manifest["precision"]
    assert precision["target_ci_halfwidth"] == 20.0
    assert precision["met"] and precision["reached_ci_halfwidth"] <= 20.0
    assert (
        len(precision["rounds"]) > 1 and precision["rounds"][0]["ci_halfwidth"] > 20.0
    )  # it had to add replications
    assert (
        precision["replications"]
        == manifest["config"]["run"]["replications"]
        == pd.read_csv(out / "summary.csv")["replications"].iloc[0]
    )
    assert (comparison["ci_high"] - comparison["ci_low"]).max() / 2 == pytest.approx(
        precision["reached_ci_halfwidth"], rel=1e-9
    )
    assert (out / "comparison.png").stat().st_size > 0 and "comparison.png" in manifest["files"]


def test_sweep_config_runs_and_sim_run_writes_the_sweep(tmp_path):
    """experiments/sweep_discount.toml: 5 discount rates x 3 segment shares; run tiny through
    `sim run`: one row per point x policy, CLV falling with the discount rate.
    """
    from sim.cli.main import main

    config = sim.load_config(SWEEP_DISCOUNT)
    assert len(sweep_grid(config)) == 15
    out = tmp_path / "sweep"
    code = main(
        [
            "run",
            str(SWEEP_DISCOUNT),
            "--out",
            str(out),
            "--customers",
            "1024",
            "--replications",
            "1",
            "--horizon",
            "24",
            "--no-progress",
            "--no-figure",
        ]
    )
    assert code == 0
    sweep = pd.read_csv(out / "sweep.csv")
    assert len(sweep) == 15 * len(config.policies)
    for _, rows in sweep.groupby(["policy", "population.relationship_share"]):
        clv = rows.sort_values("economics.annual_discount_rate")["clv_mean"].to_numpy()
        assert (np.diff(clv) < 0).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sweep"] == {
        "parameters": ["economics.annual_discount_rate", "population.relationship_share"],
        "points": 15,
    }
    comparison = pd.read_csv(out / "sweep_comparison.csv")
    assert len(comparison) == 15 * (len(config.policies) - 1)  # every policy against "none"


def test_sim_run_rejects_a_bad_sweep_before_any_work(tmp_path, capsys):
    from sim.cli.main import main

    config_path = tmp_path / "bad.toml"
    config_path.write_text('[sweep]\n"economics.annual_discount_rate" = [0.1, 2.0]\n')
    assert main(["run", str(config_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "sweep point 2 of 2" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()
