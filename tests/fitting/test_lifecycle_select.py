"""The specification rule (:func:`sim.fitting.lifecycle.select_lifecycle`): on panels simulated
from a known specification, BIC on the calibration data chooses that specification among
candidates that nest it or are nested in it, and the table reports what it compared.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.fitting.lifecycle import LifecycleParams, group_sequences, select_lifecycle, simulate_lifecycle

TRANSITIONS = np.array(
    [
        [
            [0.5, 0.4, 0, 0, 0.1],
            [0, 0.8, 0.15, 0.05, 0],
            [0, 0, 0.95, 0.05, 0],
            [0, 0.1, 0, 0.8, 0.1],
            [0, 0, 0, 0, 1],
        ]
    ]
)
RATES = np.array([[0.1, 0.4, 0.9, 0.2]])
CANDIDATES = ((1, None, None), (1, "gamma", None))
SETTINGS = dict(n_starts=3, n_final=1, screen_iter=10, max_iter=60, polish=60, seed=3)


def _panel(shape, n=3000, T=30, seed=11):
    params = LifecycleParams(np.array([1.0]), TRANSITIONS, RATES, np.array([0.2]), shape)
    rng = np.random.default_rng(seed)
    entry = rng.integers(0, 6, n)
    return group_sequences(entry, simulate_lifecycle(params, entry, T, rng))


@pytest.mark.parametrize(("shape", "expected"), [(0.7, "C1+rate"), (None, "C1")])
def test_bic_chooses_the_generating_specification(shape, expected):
    best, table = select_lifecycle(*_panel(shape), candidates=CANDIDATES, criterion="bic", **SETTINGS)
    assert best.name == expected
    assert [row["spec"] for row in table] == ["C1", "C1+rate"]
    n = best.data_.n_customers
    for row in table:
        assert row["bic"] == pytest.approx(-2 * row["loglik"] + row["n_params"] * math.log(n), rel=1e-12)
    # the richer candidate starts from the nested optimum, so its likelihood is not below it,
    # up to the cost of the shape's upper bound when the nested model (r = infinity) is the
    # truth: about 0.03 here (it was 2.7 with the former bound of 200)
    assert table[1]["loglik"] >= table[0]["loglik"] - 0.1
    chosen = min(table, key=lambda row: row["bic"])
    assert chosen["spec"] == expected


def test_an_unknown_criterion_is_refused():
    with pytest.raises(ValueError, match="criterion"):
        select_lifecycle(*_panel(None, n=50), candidates=CANDIDATES, criterion="holdout")
