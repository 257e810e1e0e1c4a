"""The spend optimiser (sim.experiments.optimize) against a case with a known exact optimum, and
``sim optimize`` on the baseline model.

The known case ("referral case", :func:`sim.experiments.referral_case.referral_case_clv`): the
Markov-reducible setting of sim.analytic.lifecycle_chain (spend does not change the stage
process) with word of mouth on and fixed expectations. Spend then buys only a better
satisfaction type, i.e. expected referral value (C5), at its own cost; the expected CLV is
the Pfeifer-Carraway chain value plus, per stage, the discounted stage occupancy times
``rho(a) - a`` with ``rho`` a closed form in normal CDFs of the care response (M1). Its
maximiser per stage is found to 1e-10 by a 1-D search on the exact function.

Tolerance of the optimiser. The CRN objective is a sum of indicator functions of the spend
(a customer-period turns "highly satisfied" when its disconfirmation crosses the
tolerance), so its argmax converges like N^(-1/3), as for maximum-score estimators (Kim &
Pollard 1990), not like N^(-1/2). Over 12 seeds at N = N_TEST = 8,192 customers (36-60 periods) the
largest error of a coordinate was 0.16 money units; we allow 0.3 (about 10 % of the optimal
spends, 2.5-3.1). A search that never left its coarse grid would miss by more (the test
checks that the nearest grid point is farther than the tolerance), and the exact CLV lost
at the found spend must be below 0.1 money units (0.03 % of the CLV of 291; measured 0.004-0.05).
"""

import json
import tomllib

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, markov_reducible

import sim
import sim.cli.optimize
from sim.experiments.optimize import optimize_spend, optimum_policy_toml
from sim.experiments.referral_case import referral_case_clv, referral_case_optimum
from sim.experiments.spend_search import CRNObjective, SpendLayout, search_spend

#: Customers of every search of the known case. The tolerances below were measured at this
#: size (module docstring: argmax error ~ N^(-1/3)); change the three together.
N_TEST = 8192
SPEND_TOLERANCE = 0.3
LOSS_TOLERANCE = 0.1


def referral_case(**optimize):
    """The documented known-optimum case: 36 monthly periods, referrals worth ±10 per
    dissatisfied / highly satisfied period, stage effectiveness 0.5 / 1.0 / 0.7 / 0.9.
    """
    settings = {"max_spend": 14.0, "spend_tolerance": 0.02, "grid_points": 9, "max_cycles": 2}
    settings.update(optimize)
    return markov_reducible(
        dynamics={
            "expectation_adaptation": 0.0,
            "annoyance": 0.06,
            "performance_fit_sd": 0.2,
            "performance_noise": 0.3,
            "stage_effectiveness": {"exploration": 0.5, "formation": 1.0, "stability": 0.7, "decline": 0.9},
            "satisfaction_tolerance": 0.2,
        },
        word_of_mouth={
            "talk_probability": 1.0,
            "people_told": {"dissatisfied": 10.0, "satisfied": 0.0, "highly_satisfied": 10.0},
            "influence": {"dissatisfied": -0.1, "satisfied": 0.0, "highly_satisfied": 0.1},
            "referral_value": 10.0,
        },
        run={"horizon": 36, "replications": 1},
        optimize=settings,
    )


def test_spend_layout_maps_coordinates_onto_the_spend_table():
    config = sim.config_from_dict(
        {"optimize": {"stages": ["formation", "decline"], "start": {"stability": 1.5}}}
    )
    layout = SpendLayout.from_config(config)
    assert layout.coordinates == [("formation", "all"), ("decline", "all")]
    np.testing.assert_array_equal(layout.table([4.0, 3.0]), [[0, 0], [4, 4], [1.5, 1.5], [3, 3]])
    per_segment = SpendLayout.from_config(config.with_overrides(optimize={"per_segment": True}))
    assert per_segment.names() == [
        "formation.relationship",
        "formation.transactional",
        "decline.relationship",
        "decline.transactional",
    ]
    np.testing.assert_array_equal(per_segment.table([1, 2, 3, 4]), [[0, 0], [1, 2], [1.5, 1.5], [3, 4]])
    policy = sim.config_from_dict({"policies": [per_segment.policy("p", [1, 2, 3, 4])]}).policies[0]
    assert policy.relationship.as_tuple() == (0.0, 1.0, 1.5, 3.0)
    assert policy.transactional.as_tuple() == (0.0, 2.0, 1.5, 4.0)


def test_referral_case_closed_form_matches_the_simulation():
    """The exact CLV of the referral case against the simulated mean at three spend tables
    (|mean - exact| < 4 SE, SE = sd/sqrt(n) over n = 60,000 customers), and the exact
    difference between two tables against the simulated PAIRED difference (< 4 paired SE,
    a far tighter check of the referral part: its SE is some 20x smaller).
    """
    config = referral_case()
    layout = SpendLayout.from_config(config)
    tables = {"zero": np.zeros(4), "moderate": np.array([2.0, 3.0, 3.0, 3.0]), "heavy": np.full(4, 8.0)}
    policies = [layout.policy(name, x) for name, x in tables.items()]
    result = sim.project(config.with_overrides(policies=policies), customers=60_000)
    summary = result.summary.set_index("policy")
    exact = {name: referral_case_clv(config, layout.table(x)) for name, x in tables.items()}
    for name in tables:
        assert abs(summary.loc[name, "clv_mean"] - exact[name]) < 4 * summary.loc[name, "clv_se"], name
    comparison = result.comparison.set_index(["policy", "reference"])
    for policy, reference in (("moderate", "zero"), ("heavy", "moderate")):
        row = comparison.loc[(policy, reference)]
        assert abs(row["delta_clv"] - (exact[policy] - exact[reference])) < 4 * row["se"], (policy, reference)
        assert row["se"] < 0.1 * abs(exact[policy] - exact[reference])  # power: the effect is > 10 paired SE


def _check_found(config, search, optimum):
    layout = search.layout
    exact_spend = optimum["spend"].to_numpy()
    grid = np.linspace(0.0, config.optimize.max_spend, config.optimize.grid_points)
    nearest_grid = np.abs(grid[None, :] - exact_spend[:, None]).min(axis=1)
    assert (nearest_grid > SPEND_TOLERANCE).all()  # staying on the grid would fail
    error = search.x - exact_spend
    assert np.all(np.abs(error) < SPEND_TOLERANCE), error
    loss = optimum["clv"].iloc[0] - referral_case_clv(config, layout.table(search.x))
    assert 0 <= loss < LOSS_TOLERANCE, loss
    # on its own (CRN) objective the optimiser's point is at least as good as the exact optimum
    objective = CRNObjective(config, layout, customers=N_TEST, replications=1, seed=config.run.seed)
    assert objective(search.x) >= objective(exact_spend) - 1e-9


def test_coordinate_search_finds_the_exact_optimum():
    config = referral_case()
    optimum = referral_case_optimum(config)
    spends = optimum.set_index("stage")["spend"]
    assert 2.4 < spends.min() and spends.max() < 3.3 and (optimum["curvature"] < 0).all()  # interior maxima
    search = search_spend(config, customers=N_TEST)
    _check_found(config, search, optimum)
    assert search.evaluations == len(search.trace) and search.kernel_calls < search.evaluations


def test_powell_search_finds_the_exact_optimum():
    config = referral_case(
        method="powell", stages=["formation", "stability"], start={"exploration": 1.0, "decline": 2.0}
    )
    optimum = referral_case_optimum(config)
    search = search_spend(config, customers=N_TEST)
    _check_found(config, search, optimum)
    # the stages not searched kept their start spends
    np.testing.assert_array_equal(search.layout.table(search.x)[[0, 3]], [[1.0, 1.0], [2.0, 2.0]])


@pytest.mark.slow
def test_per_segment_search_finds_the_exact_optimum():
    """Per stage and segment (8 coordinates), with base performance differing by segment so
    that the optima differ by segment (by about 1 money unit).
    """
    config = referral_case(per_segment=True).with_overrides(
        dynamics={"base_performance": {"relationship": 0.4, "transactional": 0.1}}
    )
    optimum = referral_case_optimum(config)
    by_segment = optimum.pivot(index="stage", columns="segment", values="spend")
    assert (by_segment["transactional"] - by_segment["relationship"] > 0.5).all()
    search = search_spend(config, customers=N_TEST)
    error = search.x - optimum["spend"].to_numpy()
    assert np.all(np.abs(error) < 2 * SPEND_TOLERANCE), (
        error
    )  # flatter per-segment terms: twice the tolerance
    assert optimum["clv"].iloc[0] - referral_case_clv(config, search.layout.table(search.x)) < LOSS_TOLERANCE


def test_sim_optimize_on_the_baseline_model(tmp_path, baseline_config):
    """`sim optimize` on the baseline model, small: formation and decline spends searched.
    The response curve of formation rises, peaks and falls (docs/model.md §5.4): the paired ΔCLV to
    the optimum at spend 0 and at the largest spend is below -4 paired SE. The optimum is
    re-evaluated on a fresh seed and compared with the reference, paired.
    """
    from sim.cli.main import main

    config_path = tmp_path / "opt.toml"
    config_path.write_text(
        'name = "opt"\n'
        '[[policies]]\nname = "none"\nkind = "none"\n'
        '[[policies]]\nname = "stage_based"\nkind = "stage"\n'
        "spend = { exploration = 1.0, formation = 4.0, stability = 1.0, decline = 3.0 }\n"
        '[comparison]\nreference = "stage_based"\n'
        '[optimize]\nstages = ["formation", "decline"]\nstart = { exploration = 1.0, stability = 1.0 }\n'
        "max_spend = 16.0\nmax_cycles = 2\nspend_tolerance = 0.1\nresponse_points = 9\n"
        "[population]\ncustomers = 8192\n[run]\nreplications = 1\nhorizon = 60\n"
    )
    out = tmp_path / "out"
    assert main(["optimize", str(config_path), "--out", str(out), "--no-figure"]) == 0
    for name in ("optimum", "evaluation", "comparison", "frontier", "response", "trace"):
        assert (out / f"{name}.csv").exists(), name
    manifest = json.loads((out / "manifest.json").read_text())["optimize"]
    assert manifest["evaluation"]["seed"] == manifest["objective"]["seed"] + 1
    optimum = pd.read_csv(out / "optimum.csv").set_index("stage")["spend"]
    assert list(optimum.index) == ["formation", "decline"] and ((optimum > 0) & (optimum < 16)).all()
    evaluation = pd.read_csv(out / "evaluation.csv").set_index("policy")
    assert set(evaluation.index) == {"none", "stage_based", "optimized"}
    assert (
        evaluation.loc["optimized", "ci_low"]
        < evaluation.loc["optimized", "clv_mean"]
        < evaluation.loc["optimized", "ci_high"]
    )
    trace = pd.read_csv(out / "trace.csv")
    assert manifest["in_sample_clv"] == pytest.approx(
        trace["clv_mean"].max(), rel=1e-12
    )  # it kept the best it saw
    comparison = pd.read_csv(out / "comparison.csv").set_index("policy")
    assert set(comparison["reference"]) == {"stage_based"}
    assert comparison.loc["none", "ci_high"] < 0  # no spend loses to stage-based spend
    response = pd.read_csv(out / "response.csv")
    assert set(response["stage"]) == {"formation", "decline"} and response["is_optimum"].sum() == 2
    formation = response[(response["stage"] == "formation") & ~response["is_optimum"]].sort_values("spend")
    assert len(formation) == 9
    for row in (formation.iloc[0], formation.iloc[-1]):  # spend 0 and spend 16 both lose to the optimum
        assert row["delta_clv"] < -4 * row["delta_se"], row
    frontier = pd.read_csv(out / "frontier.csv")
    assert set(frontier["policy"]) == {"none", "stage_based", "optimized"}


def test_optimize_spend_api_matches_the_cli_conventions(baseline_config):
    """The optimum's evaluation row, the comparison row and the manifest agree (and a
    [sweep] in the config, which the optimiser would ignore, is refused before any work, as
    by sim optimize).
    """
    config = baseline_config.with_overrides(
        population={"customers": 4096},
        run={"replications": 1, "horizon": 36},
        policies=[{"name": "none", "kind": "none"}, {"name": "uniform", "kind": "uniform", "spend": 1.0}],
        optimize={
            "stages": ["formation"],
            "max_cycles": 1,
            "response_points": 3,
            "grid_points": 5,
            "spend_tolerance": 0.5,
        },
    )
    with pytest.raises(sim.ConfigError, match=r"sweep \(1 swept path\).*remove the \[sweep\] section"):
        optimize_spend(config.with_overrides(sweep={"policies.uniform.spend": [1.0, 2.0]}))
    result = optimize_spend(config)
    extra = result.manifest_extra()["optimize"]
    row = result.evaluation.set_index("policy").loc["optimized"]
    assert extra["clv_mean"] == row["clv_mean"] and extra["reference"] == "none"
    versus = result.comparison.set_index("policy").loc["optimized"]
    assert extra["delta_vs_reference"]["delta_clv"] == versus["delta_clv"]
    assert versus["delta_clv"] == pytest.approx(
        row["clv_mean"] - result.evaluation.set_index("policy").loc["none", "clv_mean"], rel=1e-9
    )
    # the response row at the optimum's own spend is the optimum itself (same seed and size here)
    at_optimum = result.response[result.response["is_optimum"]].iloc[0]
    assert (
        at_optimum["clv_mean"] == row["clv_mean"] and at_optimum["spend"] == result.optimum["spend"].iloc[0]
    )
    # the optimum as a TOML policy reads back as the same spend table (4 significant digits)
    policy = sim.config_from_dict(tomllib.loads(optimum_policy_toml(result, name="best"))).policies[0]
    table = np.array([policy.relationship.as_tuple(), policy.transactional.as_tuple()]).T
    np.testing.assert_allclose(table, result.search.layout.table(result.search.x), rtol=1e-3)


def test_sim_optimize_bad_input_is_one_clear_message(tmp_path, capsys):
    from sim.cli.main import main

    bad = tmp_path / "bad.toml"
    bad.write_text('[[policies]]\nname = "optimized"\nkind = "none"\n')
    assert main(["optimize", str(bad), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "reserved for the optimised policy" in error and "Traceback" not in error
    assert main(["optimize", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad.write_text("[optimize]\nmax_spend = 5.0\nstart = { formation = 9.0 }\n")
    assert main(["optimize", str(bad)]) == 2
    assert "start.formation = 9 must be <= max_spend = 5" in capsys.readouterr().err


def _no_simulation(monkeypatch):
    """Make any simulation by sim optimize fail the test (the checks must come first)."""
    import sim.experiments.optimize

    def refuse(*args, **kwargs):
        raise AssertionError("a simulation ran before the configuration was refused")

    monkeypatch.setattr(sim.experiments.optimize, "project", refuse)
    monkeypatch.setattr(sim.experiments.optimize, "search_spend", refuse)


def test_evaluation_seed_equal_to_the_objective_seed_is_refused_before_work(
    tmp_path, capsys, monkeypatch, baseline_config
):
    _no_simulation(monkeypatch)
    config = baseline_config.with_overrides(run={"seed": 7}, optimize={"evaluation_seed": 7})
    with pytest.raises(
        sim.ConfigError, match=r"optimize\.evaluation_seed = 7: equals the search objective's seed, run\.seed"
    ):
        optimize_spend(config)
    with pytest.raises(sim.ConfigError, match=r"optimize\.evaluation_seed = 7: .*the seed argument = 7"):
        optimize_spend(config.with_overrides(run={"seed": 1}), seed=7)
    from sim.cli.main import main

    path = tmp_path / "seed.toml"
    path.write_text("[optimize]\nevaluation_seed = 7\n[run]\nseed = 1\n")
    out = tmp_path / "out"
    assert main(["optimize", str(path), "--seed", "7", "--out", str(out)]) == 2  # --seed makes them equal
    error = capsys.readouterr().err
    assert (
        "optimize.evaluation_seed = 7" in error
        and "run.seed (or --seed) = 7" in error
        and "Traceback" not in error
    )
    assert not out.exists()


def test_a_config_with_the_most_policies_is_refused_before_work(
    tmp_path, capsys, monkeypatch, baseline_config
):
    """Sim optimize adds the optimised policy: a config already holding the most policies
    allowed (64) is refused before the search, by the API and the command line.
    """
    from sim.model.config import MAX_POLICIES

    _no_simulation(monkeypatch)
    limit = MAX_POLICIES
    assert limit == 64
    policies = [{"name": f"p{i}", "kind": "uniform", "spend": i / 8} for i in range(limit)]
    config = baseline_config.with_overrides(policies=policies, comparison={"reference": "p0"})
    with pytest.raises(
        sim.ConfigError,
        match=r"policies \(64 policies\): sim optimize adds the policy 'optimized' "
        r"and a config holds at most 64, so at most 63 may be given; remove 1",
    ):
        optimize_spend(config)
    from sim.cli.main import main

    path = tmp_path / "many.toml"
    path.write_text("".join(f'[[policies]]\nname = "p{i}"\nkind = "none"\n' for i in range(limit)))
    out = tmp_path / "out"
    assert main(["optimize", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "at most 63 may be given" in error and "Traceback" not in error
    assert not out.exists()
    # one fewer passes the checks
    assert (
        sim.experiments.optimize.optimum_name(
            config.with_overrides(policies=policies[1:], comparison={"reference": "p1"})
        )
        == "optimized"
    )


def test_shipped_optimize_config_is_valid():
    config = sim.load_config(REPO / "experiments" / "optimize.toml")
    assert config.optimize.stages == ("exploration", "formation", "stability", "decline")
    assert config.comparison.reference in config.policy_names
    assert "optimized" not in config.policy_names


# ----------------------------------------------------------------------------- bad-input probe


@pytest.mark.parametrize(
    "text, fragments",
    [
        ('engine = "abm"\n', ["engine = 'abm'", "core engine"]),
        (
            '[sweep]\n"economics.annual_discount_rate" = [0.05, 0.1]\n',
            ["sweep (1 swept path)", "remove the [sweep] section"],
        ),
        ("[precision]\ntarget_ci_halfwidth = 5.0\n", ["precision:", "remove the [precision] section"]),
    ],
    ids=["abm", "sweep", "precision"],
)
def test_sim_optimize_refuses_sections_it_would_ignore(tmp_path, capsys, monkeypatch, text, fragments):
    from sim.cli.main import main

    _no_simulation(monkeypatch)
    path = tmp_path / "c.toml"
    path.write_text('name = "c"\n' + text)
    out = tmp_path / "out"
    assert main(["optimize", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert "Traceback" not in error and not out.exists()


def test_sim_optimize_force_removes_the_old_results_other_files(tmp_path, monkeypatch):
    """--force over an older result: the files its manifest lists, unchanged since (same
    SHA-256), are removed before the run (only those, and only inside the folder); files the
    manifest does not list, or that were edited since, stay.
    """
    import hashlib

    import sim.experiments.optimize
    from sim.cli.main import main
    from sim.io.results import package_versions, prepare_result_dir

    out = prepare_result_dir(tmp_path / "old")
    for name in ("summary.csv", "stages.csv", "optimum.csv", "overview.png", "notes.txt"):
        (out / name).write_text("old\n")
    listed = ["summary.csv", "stages.csv", "optimum.csv", "overview.png", "../outside.txt"]
    (tmp_path / "outside.txt").write_text("old\n")
    digest = hashlib.sha256(b"old\n").hexdigest()
    (out / "manifest.json").write_text(
        json.dumps(
            {"experiment": "old", "versions": package_versions(), "files": {name: digest for name in listed}}
        )
    )
    (out / "stages.csv").write_text("edited by hand since\n")

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(sim.cli.optimize, "optimize_spend", stop)
    path = tmp_path / "c.toml"
    path.write_text('name = "c"\n')
    with pytest.raises(Stop):
        main(["optimize", str(path), "--out", str(out), "--force"])
    remaining = sorted(path.name for path in out.iterdir() if not path.name.startswith("."))
    assert remaining == ["notes.txt", "stages.csv"]  # the old result is gone; the edited file is kept
    assert (tmp_path / "outside.txt").read_text() == "old\n"
