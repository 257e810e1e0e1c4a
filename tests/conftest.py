"""Shared fixtures: small, fixed-seed runs reused across test modules (compiled once)."""

from pathlib import Path

import pytest

import sim

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "experiments" / "baseline.toml"


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
        "economics": {"share_of_wallet_growth": 0.0, "cross_sell_share": {}, "cost_to_serve_floor": 1.0,
                      "price_premium": {}},
        "word_of_mouth": {"talk_probability": 0.0},
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return sim.config_from_dict(data)
