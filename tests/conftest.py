"""Shared fixtures: small, fixed-seed runs reused across test modules (compiled once)."""

from pathlib import Path

import pytest

import sim

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "experiments" / "baseline.toml"

# --- hypothesis profiles (tests/test_properties.py) -------------------------------------
# "ci" (the default): a fixed, reproducible set of examples (derandomize, no example
# database), enough to cover the extremes. "long": a thorough randomised search, run as
#   HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py
import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
# -----------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fake home folder (Path.home() follows $HOME on POSIX)."""
    folder = tmp_path / "home" / "researcher"
    folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(folder))
    return folder


@pytest.fixture(scope="session")
def small_run():
    """One customer, one period, one policy: every documented empty-group NaN appears."""
    from sim.engines.core import simulate_chunk
    from sim.model.arrays import model_arrays
    from sim.model.policies import policy_tables

    config = sim.config_from_dict(
        {
            "population": {"customers": 1},
            "run": {"horizon": 1, "replications": 1},
            "policies": [{"name": "u", "kind": "uniform", "spend": 0.0}],
        }
    )
    partials = simulate_chunk(model_arrays(config), policy_tables(config), 1, 0, 0, 1, 1)
    return config, partials


@pytest.fixture(scope="session")
def baseline_config():
    """The shipped baseline experiment."""
    return sim.load_config(BASELINE)


@pytest.fixture(scope="session")
def baseline_result(baseline_config):
    """A modest baseline run: 30,000 customers x 2 replications x 120 periods, 3 policies."""
    return sim.project(baseline_config, customers=30_000, replications=2)


def markov_reducible(**overrides):
    """The baseline with satisfaction feedback and tenure/loyalty cash effects switched off."""
    data = {
        "transitions": {"loyalty_effect_advance": 0.0, "loyalty_effect_exit": 0.0},
        "economics": {
            "share_of_wallet_growth": 0.0,
            "cross_sell_share": {},
            "cost_to_serve_floor": 1.0,
            "price_premium": {},
        },
        "word_of_mouth": {"talk_probability": 0.0},
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return sim.config_from_dict(data)
