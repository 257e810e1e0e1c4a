"""Bad input fails before any work, with one line per problem naming field, value and what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest

import sim
from sim.config import ConfigError, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]

# (what is wrong, config, text every message must contain)
BAD_CONFIGS = [
    ("unknown section", {"populaton": {}}, ["populaton", "unknown key", "did you mean 'population'"]),
    ("unknown key", {"population": {"custmers": 10}}, ["population.custmers", "did you mean 'customers'"]),
    ("probability above 1", {"population": {"relationship_share": 1.4}}, ["population.relationship_share = 1.4", "<= 1", "probability"]),
    ("negative probability", {"economics": {"margin": {"formation": -0.1}}}, ["economics.margin.formation = -0.1", ">= 0"]),
    ("wrong type (string)", {"run": {"horizon": "ten"}}, ["run.horizon = 'ten'", "integer"]),
    ("wrong type (bool)", {"run": {"replications": True}}, ["run.replications = True", "integer"]),
    ("float where int", {"population": {"customers": 10.5}}, ["population.customers = 10.5", "integer"]),
    ("zero horizon", {"run": {"horizon": 0}}, ["run.horizon = 0", ">= 1"]),
    ("zero customers", {"population": {"customers": 0}}, ["population.customers = 0", ">= 1"]),
    ("competing moves above 1", {"transitions": {"churn": 0.9, "win_back": 0.3}}, ["transitions", "churn + win_back = 1.2", "<= 1"]),
    ("advance + exit above 1", {"transitions": {"advance": {"exploration": 0.8}, "exit": {"exploration": 0.5}}}, ["advance.exploration + exit.exploration", "<= 1"]),
    ("loyalty zones out of order", {"loyalty": {"defection_threshold": 0.8}}, ["loyalty", "defection_threshold (0.8)", "affection_threshold"]),
    ("advance out of stability", {"transitions": {"advance": {"stability": 0.1}}}, ["transitions.advance", "must be 0"]),
    ("unknown policy kind", {"policies": [{"name": "x", "kind": "stag"}]}, ["policies[0] ('x').kind", "'stag'", "stage"]),
    ("policy without kind", {"policies": [{"name": "x"}]}, ["policies[0] ('x')", "needs 'kind'"]),
    ("typo in a policy stage", {"policies": [{"name": "x", "kind": "stage", "spend": {"exploraton": 1}}]}, ["policies[0] ('x').spend.exploraton", "did you mean 'exploration'"]),
    ("negative spend", {"policies": [{"name": "u", "kind": "uniform", "spend": -1.0}]}, ["policies[0] ('u').spend = -1.0", ">= 0"]),
    ("duplicate policy names", {"policies": [{"name": "a", "kind": "none"}, {"name": "a", "kind": "none"}]}, ["policies", "unique", "'a'"]),
    ("value policy missing a tier", {"policies": [{"name": "v", "kind": "value", "tier_spend": {"A": 1.0}}]}, ["tier_spend", "missing"]),
    ("chunk not a block multiple", {"run": {"chunk_customers": 5000}}, ["run.chunk_customers = 5000", "multiple of 4096"]),
    ("infinite number", {"population": {"wallet_median": float("inf")}}, ["population.wallet_median", "inf"]),
    ("unsafe experiment name", {"name": "../escape"}, ["name = '../escape'", "pattern"]),
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


def test_config_is_frozen_and_defaults_are_the_baseline(baseline_config):
    with pytest.raises(Exception):
        baseline_config.run.seed = 3  # frozen
    defaults = config_from_dict({"name": "baseline", "description": baseline_config.description, "run": {"replications": 4}})
    assert defaults == baseline_config  # the TOML documents the defaults, value for value


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "is empty"),
        (b"name = ", "not valid TOML"),
        (b"\xff\xfe name = 'x'", "not UTF-8"),
    ],
    ids=["empty", "malformed", "not-utf8"],
)
def test_unreadable_files_get_one_clear_line(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_overrides_are_validated_too(baseline_config):
    with pytest.raises(ConfigError, match="run.replications = 0"):
        sim.project(baseline_config, replications=0)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


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
    args = ("run", str(REPO / "experiments" / "baseline.toml"), "--out", str(out), "--customers", "4096",
            "--replications", "1", "--horizon", "24", "--no-progress")
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
    pd.testing.assert_series_equal(summary["clv_mean"], direct.summary["clv_mean"], check_exact=False, rtol=1e-12)
    # a complete result is never overwritten silently
    again = _cli(*args, cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
    forced = _cli(*args, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
