"""Transitions and share of wallet per segment (``transitions.by_segment``,
``economics.share_of_wallet_by_segment``): the form a fitted lifecycle model's classes take
in a config. Every engine reads them; given equal for both segments they change no number;
given different, the simulated CLV matches the Markov-reducible closed form segment by segment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import markov_reducible

import sim
from sim.analytic.lifecycle_chain import lifecycle_chain, lifecycle_markov_clv, markov_reducible_problems
from sim.engines.reference import simulate_reference

RELATIONSHIP = {
    "advance": {"exploration": 0.30, "formation": 0.12, "decline": 0.08},
    "exit": {"exploration": 0.05, "formation": 0.02, "stability": 0.01, "decline": 0.15},
}
TRANSACTIONAL = {
    "advance": {"exploration": 0.15, "formation": 0.05, "decline": 0.02},
    "exit": {"exploration": 0.20, "formation": 0.08, "stability": 0.04, "decline": 0.40},
}
SHARE_OF_WALLET = {
    "relationship": {"exploration": 0.10, "formation": 0.30, "stability": 0.55, "decline": 0.20},
    "transactional": {"exploration": 0.05, "formation": 0.15, "stability": 0.25, "decline": 0.05},
}


def _by_segment(relationship, transactional, share_of_wallet=None):
    sections = {"transitions": {"by_segment": {"relationship": relationship, "transactional": transactional}}}
    if share_of_wallet is not None:
        sections["economics"] = {"share_of_wallet_by_segment": share_of_wallet}
    return sections


def test_equal_segments_change_no_number(baseline_config):
    """The stage-level transitions and share of wallet written per segment, the same for both:
    every table and every CLV bitwise the stage-level run's.
    """
    tr, eco = baseline_config.transitions, baseline_config.economics
    same = {
        "advance": {
            "exploration": tr.advance.exploration,
            "formation": tr.advance.formation,
            "decline": tr.win_back,
        },
        "exit": {
            "exploration": tr.exit.exploration,
            "formation": tr.exit.formation,
            "stability": tr.exit.stability,
            "decline": tr.churn,
        },
    }
    sow = eco.share_of_wallet.model_dump()
    config = baseline_config.with_overrides(
        **_by_segment(same, same, {"relationship": sow, "transactional": sow})
    )
    a = sim.project(baseline_config, customers=5000, replications=1, keep_clv=True)
    b = sim.project(config, customers=5000, replications=1, keep_clv=True)
    for name in a.TABLES:
        pd.testing.assert_frame_equal(a.table(name), b.table(name), check_exact=True)
    for policy in a.clv:
        np.testing.assert_array_equal(a.clv[policy], b.clv[policy])


def test_segment_transitions_are_the_chain_of_each_segment():
    """The closed form's chain of each segment holds that segment's probabilities (exit odds 1)."""
    sections = _by_segment(RELATIONSHIP, TRANSACTIONAL)
    sections["transitions"]["exit_odds"] = {"relationship": 1.0, "transactional": 1.0}
    config = markov_reducible(**sections)
    P, _ = lifecycle_chain(config, config.policy_names[0], "transactional")
    assert P[0, 1] == 0.15 and P[0, 4] == 0.20 and P[3, 1] == 0.02 and P[3, 4] == 0.40
    P, _ = lifecycle_chain(config, config.policy_names[0], "relationship")
    assert P[1, 2] == 0.12 and P[1, 3] == 0.02 and P[2, 3] == 0.01
    np.testing.assert_allclose(P.sum(axis=1), 1.0)


def test_segments_match_the_markov_closed_form():
    """Different transitions and share of wallet per segment, Markov-reducible setting: the mean
    CLV of 200,000 customers within 4 SE of Pfeifer & Carraway's value, mixed over segments.
    """
    config = markov_reducible(
        **_by_segment(RELATIONSHIP, TRANSACTIONAL, SHARE_OF_WALLET),
        run={"horizon": 60, "replications": 1},
        policies=[
            {"name": "none", "kind": "none"},
            {
                "name": "stage",
                "kind": "stage",
                "spend": {"exploration": 1, "formation": 3, "stability": 2, "decline": 5},
            },
        ],
    )
    assert markov_reducible_problems(config) == []
    result = sim.project(config, customers=200_000)
    for row in result.summary.itertuples():
        exact = lifecycle_markov_clv(config, row.policy)
        assert abs(row.clv_mean - exact) < 4 * row.clv_se, (row.policy, row.clv_mean, exact, row.clv_se)
        assert row.clv_se < 0.01 * abs(exact)


def test_every_engine_reads_the_segment_tables(baseline_config):
    """With per-segment tables, the NumPy reference agrees with the core customer for customer
    (rtol 1e-12) and the agent engine equals it bit for bit.
    """
    config = baseline_config.with_overrides(
        **_by_segment(RELATIONSHIP, TRANSACTIONAL, SHARE_OF_WALLET), run={"horizon": 48, "replications": 1}
    )
    core = sim.project(config, customers=3000, keep_clv=True)
    reference = simulate_reference(config, customers=3000, horizon=48)
    for index, name in enumerate(config.policy_names):
        np.testing.assert_allclose(reference["clv"][index], core.clv[name], rtol=1e-12, atol=1e-9)
    market = sim.simulate_market(config, customers=3000, horizon=48, replications=1)
    for name in config.policy_names:
        np.testing.assert_array_equal(market.clv[name], core.clv[name])
    # and the segments do differ: the transactional customers end sooner
    baseline = sim.project(
        baseline_config.with_overrides(run={"horizon": 48, "replications": 1}), customers=3000
    )
    assert not np.array_equal(baseline.stages["share"].to_numpy(), core.stages["share"].to_numpy())
