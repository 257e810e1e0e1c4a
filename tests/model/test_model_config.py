"""Bad input fails before any work, with one line per problem naming field, value and what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest

import sim
from sim.exceptions import ConfigError
from sim.model.config import config_from_dict, load_config

REPO = Path(__file__).resolve().parents[2]

# (what is wrong, config, text every message must contain)
BAD_CONFIGS = [
    ("unknown section", {"populaton": {}}, ["populaton", "unknown key", "did you mean 'population'"]),
    ("unknown key", {"population": {"custmers": 10}}, ["population.custmers", "did you mean 'customers'"]),
    (
        "probability above 1",
        {"population": {"relationship_share": 1.4}},
        ["population.relationship_share = 1.4", "<= 1", "probability"],
    ),
    (
        "negative probability",
        {"economics": {"margin": {"formation": -0.1}}},
        ["economics.margin.formation = -0.1", ">= 0"],
    ),
    ("wrong type (string)", {"run": {"horizon": "ten"}}, ["run.horizon = 'ten'", "integer"]),
    ("wrong type (bool)", {"run": {"replications": True}}, ["run.replications = True", "integer"]),
    ("float where int", {"population": {"customers": 10.5}}, ["population.customers = 10.5", "integer"]),
    ("zero horizon", {"run": {"horizon": 0}}, ["run.horizon = 0", ">= 1"]),
    ("zero customers", {"population": {"customers": 0}}, ["population.customers = 0", ">= 1"]),
    (
        "competing moves above 1",
        {"transitions": {"churn": 0.9, "win_back": 0.3}},
        ["transitions", "churn + win_back = 1.2", "<= 1"],
    ),
    (
        "advance + exit above 1",
        {"transitions": {"advance": {"exploration": 0.8}, "exit": {"exploration": 0.5}}},
        ["advance.exploration + exit.exploration", "<= 1"],
    ),
    (
        "loyalty zones out of order",
        {"loyalty": {"defection_threshold": 0.8}},
        ["loyalty", "defection_threshold (0.8)", "affection_threshold"],
    ),
    (
        "advance out of stability",
        {"transitions": {"advance": {"stability": 0.1}}},
        ["transitions.advance", "must be 0"],
    ),
    (
        "unknown policy kind",
        {"policies": [{"name": "x", "kind": "stag"}]},
        ["policies[0] ('x').kind", "'stag'", "stage"],
    ),
    ("policy without kind", {"policies": [{"name": "x"}]}, ["policies[0] ('x')", "needs 'kind'"]),
    (
        "typo in a policy stage",
        {"policies": [{"name": "x", "kind": "stage", "spend": {"exploraton": 1}}]},
        ["policies[0] ('x').spend.exploraton", "did you mean 'exploration'"],
    ),
    (
        "negative spend",
        {"policies": [{"name": "u", "kind": "uniform", "spend": -1.0}]},
        ["policies[0] ('u').spend = -1.0", ">= 0"],
    ),
    (
        "duplicate policy names",
        {"policies": [{"name": "a", "kind": "none"}, {"name": "a", "kind": "none"}]},
        ["policies", "unique", "'a'"],
    ),
    (
        "value policy missing a tier",
        {"policies": [{"name": "v", "kind": "value", "tier_spend": {"A": 1.0}}]},
        ["tier_spend", "missing"],
    ),
    (
        "chunk not a block multiple",
        {"run": {"chunk_customers": 5000}},
        ["run.chunk_customers = 5000", "multiple of 4096"],
    ),
    ("infinite number", {"population": {"wallet_median": float("inf")}}, ["population.wallet_median", "inf"]),
    (
        "unsafe experiment name",
        {"name": "../escape"},
        ["name = '../escape'", "letters, digits, '_' and '-' only", "no '/'"],
    ),
    # --- issue 7: every field typed and ranged, every section audited ---
    (
        "not a number (nan)",
        {"population": {"relationship_share": float("nan")}},
        ["population.relationship_share = nan", "finite number"],
    ),
    (
        "minus infinity",
        {"dynamics": {"initial_expectation": float("-inf")}},
        ["dynamics.initial_expectation = -inf", "finite number"],
    ),
    (
        "huge spend",
        {"policies": [{"name": "u", "kind": "uniform", "spend": 1e300}]},
        ["policies[0] ('u').spend = 1e+300", "<= 1e+12", "largest magnitude"],
    ),
    ("huge wallet", {"population": {"wallet_median": 1e13}}, ["population.wallet_median", "<= 1e+12"]),
    (
        "huge negative influence",
        {"word_of_mouth": {"influence": {"satisfied": -1e13}}},
        ["word_of_mouth.influence.satisfied", ">= -1e+12"],
    ),
    (
        "care scale too small",
        {"dynamics": {"care_scale": 1e-12}},
        ["dynamics.care_scale = 1e-12", ">= 1e-09"],
    ),
    (
        "integer beyond any float",
        {"transitions": {"long_term_periods": 10**400}},
        ["transitions.long_term_periods", "<= 1000000"],
    ),
    (
        "number too large to read",
        {"population": {"wallet_median": 10**400}},
        ["population.wallet_median", "valid number"],
    ),
    ("section is not a table", {"population": 3}, ["population = 3", "must be a table"]),
    (
        "[policies] instead of [[policies]]",
        {"policies": {"name": "x", "kind": "none"}},
        ["policies = {", "[[policies]]", "double brackets"],
    ),
    ("no policies", {"policies": []}, ["policies = []", "at least 1 item"]),
    (
        "too many policies",
        {"policies": [{"name": f"p{i}", "kind": "none"} for i in range(65)]},
        ["policies", "at most 64 items"],
    ),
    ("policy is not a table", {"policies": [3]}, ["policies[0] = 3", "must be a table"]),
    (
        "unknown value tier",
        {
            "policies": [
                {"name": "v", "kind": "value", "tier_spend": {"A": 1.0, "B": 1.0, "C": 1.0, "D": 2.0}}
            ]
        },
        ["policies[0] ('v').tier_spend.D", "unknown key", "'A', 'B' or 'C'"],
    ),
    (
        "policy name with a slash",
        {"policies": [{"name": "a/b", "kind": "none"}]},
        ["policies[0] ('a/b').name = 'a/b'", "no '/'"],
    ),
    ("empty experiment name", {"name": ""}, ["name = ''", "must not be empty"]),
    (
        "reactive trigger of 0",
        {"policies": [{"name": "r", "kind": "reactive", "spend": 1.0, "satisfaction_drop": 0.0}]},
        ["satisfaction_drop = 0.0", "> 0"],
    ),
    (
        "churn propensity half given",
        {"population": {"churn_propensity": {"alpha": 0.0}}},
        ["churn_propensity.alpha = 0.0", "> 0", "churn_propensity.beta: is required"],
    ),
    (
        "comparison names no policy",
        {"comparison": {"reference": "unifrom"}},
        ["comparison.reference = 'unifrom'", "no such policy", "did you mean 'uniform'"],
    ),
    (
        "optimize names no policy",
        {"optimize": {"reference": "stage"}},
        ["optimize.reference = 'stage'", "did you mean 'stage_based'"],
    ),
    (
        "optimize stage typo",
        {"optimize": {"stages": ["stabilty"]}},
        ["1 problem", "optimize.stages[0] = 'stabilty'", "'stability'"],
    ),
    (
        "optimize stages not a list",
        {"optimize": {"stages": "stability"}},
        ["optimize.stages = 'stability'", "must be a list"],
    ),
    (
        "optimize start above max_spend",
        {"optimize": {"max_spend": 5.0, "start": {"formation": 6.0}}},
        ["optimize", "start.formation = 6", "max_spend = 5"],
    ),
    (
        "precision with one policy",
        {"precision": {"target_ci_halfwidth": 1.0}, "policies": [{"name": "a", "kind": "none"}]},
        ["precision.target_ci_halfwidth", "at least two policies"],
    ),
    (
        "precision cap below replications",
        {"precision": {"target_ci_halfwidth": 1.0, "max_replications": 1}, "run": {"replications": 2}},
        ["precision.max_replications = 1", ">= run.replications = 2"],
    ),
    (
        "sweep over an unknown path",
        {"sweep": {"economics": {"anual_discount_rate": [0.1]}}},
        ["sweep point 1 of 1", "did you mean 'annual_discount_rate'"],
    ),
    (
        "sweep value out of range",
        {"sweep": {"economics": {"annual_discount_rate": [0.1, 2.0]}}},
        ["sweep point 2 of 2", "annual_discount_rate = 2.0", "<= 1"],
    ),
    (
        "sweep value not a list",
        {"sweep": {"economics": {"annual_discount_rate": 0.1}}},
        ["economics.annual_discount_rate", "non-empty list"],
    ),
    ("sweeping the optimizer", {"sweep": {"optimize": {"max_spend": [1.0]}}}, ["cannot be swept"]),
    ("unknown engine", {"engine": "abm2"}, ["engine = 'abm2'", "'core' or 'abm'"]),
    (
        "competitor leaves before entering",
        {"market": {"competitor": {"enters_at": 10, "leaves_at": 5}}},
        ["market.competitor", "leaves_at (5) must be > enters_at (10)"],
    ),
    (
        "budget priority not a permutation",
        {"market": {"budget": {"stage_priority": ["decline", "decline"]}}},
        ["market.budget.stage_priority", "exactly once"],
    ),
    (
        "zero purchase rate",
        {"market": {"purchase_rate": {"exploration": 0.0}}},
        ["market.purchase_rate", "> 0", "exploration"],
    ),
    (
        "[[population]] instead of [population]",
        {"population": [{}]},
        ["population = [{}]", "must be a table"],
    ),
    (
        "typo in a segment",
        {
            "policies": [
                {"name": "s", "kind": "stage", "spend": {}, "segment_multiplier": {"relationshp": 2.0}}
            ]
        },
        ["policies[0] ('s').segment_multiplier.relationshp", "did you mean 'relationship'"],
    ),
    (
        "typo in a table policy's segment",
        {"policies": [{"name": "t", "kind": "table", "relationship": {}, "transactionl": {}}]},
        [
            "policies[0] ('t').transactionl",
            "did you mean 'transactional'",
            "policies[0] ('t').transactional: is required",
        ],
    ),
    # --- bad-input probe: the agent engine's sizes and arrival counts are checked at load ---
    (
        "agent cohort above max_customers",
        {"engine": "abm", "population": {"customers": 1_000_000_000}},
        ["population.customers = 1000000000", "<= market.max_customers = 1000000", "agent engine"],
    ),
    (
        "capacity buys infinitely many servers",
        {"market": {"capacity": {"enabled": True, "spend_per_customer": 1e12, "server_cost": 1e-300}}},
        [
            "market.capacity",
            "= inf servers must be <= market.max_customers = 1000000",
            "server_cost = 1e-300",
        ],
    ),
    (
        "more servers than customers",
        {"market": {"capacity": {"enabled": True, "servers_per_1000": 1e9}}},
        ["market.capacity", "servers must be <= market.max_customers", "servers_per_1000 = 1e+09"],
    ),
    (
        "word of mouth beyond the arrivals bound",
        {
            "word_of_mouth": {"people_told": {"satisfied": 1e12}},
            "market": {"word_of_mouth": {"enabled": True}},
        },
        ["word_of_mouth.people_told.satisfied", "= 1e+12 * 0.005 = 5e+09 prospects per talk must be <= 1000"],
    ),
    (
        "negative discount rate",
        {"economics": {"annual_discount_rate": -1.0}},
        ["economics.annual_discount_rate = -1.0", ">= 0", "a yearly discount rate in [0, 1]"],
    ),
]


@pytest.mark.parametrize("label, data, expected", BAD_CONFIGS, ids=[case[0] for case in BAD_CONFIGS])
def test_bad_config_is_rejected_with_a_clear_message(label, data, expected):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, f"{label}: {fragment!r} not in:\n{message}"
    assert "Traceback" not in message and "pydantic" not in message.lower()


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"population": {"customers": 0, "relationship_share": 2.0}, "run": {"horizon": -1}})
    paths = [path for path, _ in caught.value.problems]
    assert len(paths) == 3
    assert any("population.customers" in p for p in paths) and any("run.horizon" in p for p in paths)


def test_field_and_reference_problems_are_reported_together():
    """Problems of different kinds come in one message: field ranges, cross-field checks and a
    comparison reference to a policy that does not exist.
    """
    with pytest.raises(ConfigError) as caught:
        config_from_dict(
            {
                "population": {"customers": 0},
                "loyalty": {"defection_threshold": 0.9},
                "policies": [{"name": "a", "kind": "uniform", "spend": -1.0}],
                "comparison": {"reference": "b"},
            }
        )
    paths = [path for path, _ in caught.value.problems]
    assert len(paths) == 4, paths
    assert any(p.startswith("population.customers") for p in paths) and any(p == "loyalty" for p in paths)
    assert any(p.startswith("policies[0] ('a').spend") for p in paths)
    assert any(p.startswith("comparison.reference") for p in paths)


def test_config_is_frozen_and_defaults_are_the_baseline(baseline_config):
    with pytest.raises(Exception):
        baseline_config.run.seed = 3  # frozen
    defaults = config_from_dict(
        {"name": "baseline", "description": baseline_config.description, "run": {"replications": 4}}
    )
    assert defaults == baseline_config  # the TOML documents the defaults, value for value


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "is empty"),
        (b"name = ", "not valid TOML"),
        (b"\xff\xfe name = 'x'", "not UTF-8"),
        (b"  \n\t\n", "is empty"),
        (b"name = 'x'\nname = 'y'\n", "not valid TOML: Cannot overwrite a value"),
        (
            b"[population]\ncustomers = 1_000\nwallet_median = nan\n",
            "population.wallet_median = nan: must be a finite number",
        ),
        (b"# only a comment\n\n", "is empty"),
    ],
    ids=["empty", "malformed", "not-utf8", "whitespace-only", "duplicate-key", "toml-nan", "comment-only"],
)
def test_unreadable_files_get_one_clear_line(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_a_byte_order_mark_is_accepted_and_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    """Some editors save UTF-8 with a byte-order mark: it is ignored. A file that cannot be
    read (no permission, an I/O error) is one line, not a traceback.
    """
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfname = 'with_bom'\n")
    assert load_config(path).name == "with_bom"

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ConfigError, match="cannot read .*bom.toml: Permission denied"):
        load_config(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_overrides_are_validated_too(baseline_config):
    with pytest.raises(ConfigError, match="run.replications = 0"):
        sim.project(baseline_config, replications=0)


def test_overrides_update_sections_but_replace_the_sweep():
    """A section override keeps the section's other fields; ``sweep`` is replaced whole, so
    ``sweep={}`` removes it and a new grid does not keep the old swept paths.
    """
    config = sim.load_config(REPO / "experiments" / "sweep_discount.toml")
    assert len(config.sweep) == 2
    assert config.with_overrides(sweep={}).sweep == {}
    narrowed = config.with_overrides(sweep={"population.relationship_share": [0.2, 0.8]})
    assert narrowed.sweep == {"population.relationship_share": (0.2, 0.8)}
    seeded = config.with_overrides(run={"seed": 5})
    assert seeded.run.seed == 5 and seeded.run.horizon == config.run.horizon and seeded.sweep == config.sweep


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_bad_config_exits_2_without_traceback(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('name = "x"\n[population]\nrelationship_share = 1.5\ncustmers = 3\n')
    completed = _cli("run", str(config), "--out", str(tmp_path / "out"), cwd=REPO)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "population.relationship_share = 1.5" in completed.stderr
    assert "did you mean 'customers'" in completed.stderr
    assert not (tmp_path / "out").exists()  # nothing started


def test_cli_run_writes_tables_figure_manifest_and_refuses_overwrite(tmp_path):
    import json

    import pandas as pd

    out = tmp_path / "run"
    args = (
        "run",
        str(REPO / "experiments" / "baseline.toml"),
        "--out",
        str(out),
        "--customers",
        "4096",
        "--replications",
        "1",
        "--horizon",
        "24",
        "--no-progress",
    )
    completed = _cli(*args, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["seed"] == 20261122
    assert manifest["config"]["population"]["customers"] == 4096
    assert {"numpy", "numba", "python"} <= set(manifest["versions"])
    assert "--customers 4096" in manifest["command"]
    for name in sim.ProjectionResult.TABLES:
        assert f"{name}.csv" in manifest["files"]
    assert (out / "overview.png").stat().st_size > 10_000
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["policy"]) == ["none", "uniform", "stage_based"]
    # the written numbers are the API's numbers
    config = sim.load_config(REPO / "experiments" / "baseline.toml")
    direct = sim.project(config, customers=4096, replications=1, horizon=24)
    pd.testing.assert_series_equal(
        summary["clv_mean"], direct.summary["clv_mean"], check_exact=False, rtol=1e-12
    )
    # a complete result is never overwritten silently
    again = _cli(*args, cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
    forced = _cli(*args, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr


# (arguments, exit status, text the error output must contain): bad command lines get one
# clear message and status 2 — from argparse for malformed arguments, from the config
# validation for values out of range — and never a traceback.
BAD_COMMAND_LINES = [
    (["run", "{config}", "--seed", "abc"], ["argument --seed: 'abc' is not a whole number"]),
    (["run", "{config}", "--seed", "-1"], ["argument --seed: -1 must be >= 0"]),
    (
        ["run", "{config}", "--seed", str(2**64)],
        ["run.seed = 18446744073709551616", "<= 9223372036854775807"],
    ),
    (["run", "{config}", "--customers", "0"], ["argument --customers: 0 must be >= 1"]),
    (["run", "{config}", "--customers", "2e9"], ["argument --customers: '2e9' is not a whole number"]),
    (
        ["run", "{config}", "--customers", "2000000000"],
        ["population.customers = 2000000000", "<= 1000000000"],
    ),
    (["run", "{config}", "--replications", "1.5"], ["argument --replications: '1.5' is not a whole number"]),
    (["run", "{config}", "--horizon", "0"], ["argument --horizon: 0 must be >= 1"]),
    (["run", "{config}", "--threads", "5000"], ["run.threads = 5000", "<= 1024"]),
    (["run", "{config}", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["run"], ["the following arguments are required: config"]),
    (["rn", "{config}"], ["invalid choice: 'rn'"]),
    ([], ["the following arguments are required: COMMAND"]),
    (["run", "{missing}"], ["no such file:", "missing.toml"]),
    (["run", "{folder}"], ["is a directory, not a TOML file"]),
]


@pytest.mark.parametrize(
    "argv, expected", BAD_COMMAND_LINES, ids=[" ".join(case[0]) or "(nothing)" for case in BAD_COMMAND_LINES]
)
def test_bad_command_lines_exit_2_with_one_clear_message(argv, expected, tmp_path, capsys):
    from sim.cli.main import main

    config = tmp_path / "ok.toml"
    config.write_text('name = "ok"\n[population]\ncustomers = 64\n[run]\nhorizon = 2\nreplications = 1\n')
    argv = [a.format(config=config, missing=tmp_path / "missing.toml", folder=tmp_path) for a in argv]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse exits by itself
        status = exit_.code
    assert status == 2
    error = capsys.readouterr().err
    for fragment in expected:
        assert fragment in error, (fragment, error)
    assert "Traceback" not in error
    assert not (tmp_path / "results").exists()  # nothing written


def test_a_discount_rate_is_not_called_a_probability():
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"economics": {"annual_discount_rate": 1.5}})
    message = str(caught.value)
    assert (
        "economics.annual_discount_rate = 1.5: must be <= 1" in message and "yearly discount rate" in message
    )
    assert "probability" not in message


def test_an_empty_file_and_a_comment_only_file_get_the_same_message(tmp_path):
    messages = []
    for content in ("", "# an experiment\n# (nothing set yet)\n"):
        path = tmp_path / "x.toml"
        path.write_text(content)
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "needs at least a name" in messages[0]


def test_core_engine_file_with_market_interactions_is_refused(tmp_path):
    """The core engine ignores [market]: a file that switches an interaction on without
    engine = "abm" is refused at load, naming the section; with engine = "abm" it loads.
    """
    path = tmp_path / "m.toml"
    text = (
        'name = "m"\n{engine}[[policies]]\nname = "a"\nkind = "uniform"\nspend = 2.0\n'
        "[market.budget]\nenabled = true\n"
    )
    for engine in ('engine = "core"\n', ""):
        path.write_text(text.format(engine=engine))
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        message = str(caught.value)
        assert "market.budget.enabled = true" in message and 'engine = "abm"' in message
    path.write_text(text.format(engine='engine = "abm"\n'))
    assert load_config(path).market.interactions == ("budget",)
    path.write_text('name = "s"\n[sweep]\n"market.budget.per_customer" = [1.0, 2.0]\n')
    with pytest.raises(ConfigError, match=r"sweep.'market.budget.per_customer'.*agent engine"):
        load_config(path)
    for name in (
        "baseline",
        "policy_comparison",
        "sweep_discount",
        "optimize",
        "abm_budget",
        "abm_capacity",
        "abm_competitor",
        "abm_word_of_mouth",
    ):
        load_config(REPO / "experiments" / f"{name}.toml")  # the shipped configs are unaffected


def test_cli_agent_cohort_too_large_exits_2_before_any_folder(tmp_path):
    out = tmp_path / "out"
    completed = _cli(
        "run",
        str(REPO / "experiments" / "abm_budget.toml"),
        "--customers",
        "1000000000",
        "--out",
        str(out),
        cwd=REPO,
    )
    assert completed.returncode == 2, completed.stderr
    assert (
        "population.customers = 1000000000" in completed.stderr and "market.max_customers" in completed.stderr
    )
    assert "Traceback" not in completed.stderr and "MemoryError" not in completed.stderr
    assert not out.exists()
