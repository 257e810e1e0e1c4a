"""The core kernel at the corners of the allowed config ranges: every result finite."""

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.model.config import config_from_dict
from sim.model.names import STAGES
from sim.model.sections import MAX_MAGNITUDE, MIN_CARE_SCALE

SIM = Path(sim.__file__).resolve().parent
M = MAX_MAGNITUDE
TINY = 5e-324  # the smallest positive float64
INF = float("inf")

# Both builds of every equation: the numba-compiled one (scalars, as the kernels call it) and
# the plain Python body on NumPy arrays (as the vectorised reference calls it).
BUILDS = ["jit", "py_func"]


def _grid(*axes):
    """Every combination of the given values, as one flat float64 array per axis."""
    mesh = np.meshgrid(*[np.asarray(axis, dtype=float) for axis in axes], indexing="ij")
    return [m.ravel() for m in mesh]


def _evaluate(function, build, *arrays):
    """``function`` on every combination (one call per element for the jitted build, one
    vectorised call for ``.py_func``); NumPy may overflow to ±inf in an intermediate, but
    never perform an invalid operation (inf - inf, 0 * inf), which is what makes a NaN.
    """
    if build == "py_func":
        with np.errstate(invalid="raise", over="ignore", divide="ignore", under="ignore"):
            out = function.py_func(*arrays)
        return (
            tuple(np.asarray(o, dtype=float) for o in out)
            if isinstance(out, tuple)
            else np.asarray(out, dtype=float)
        )
    results = [function(*(float(a[i]) for a in arrays)) for i in range(len(arrays[0]))]
    if isinstance(results[0], tuple):
        return tuple(np.array(column, dtype=float) for column in zip(*results))
    return np.array(results, dtype=float)


# ----------------------------------------------------------------------------- the kernel at the corners


def _corner_config(annoyance, care_scale, satisfaction_scale, tenure_scale):
    """Every magnitude at its largest allowed value at once (money, multipliers, effects),
    probabilities at 0 or 1, thresholds as close to the ends as allowed.
    """
    stages = {stage: M for stage in STAGES}
    ones = {stage: 1.0 for stage in STAGES}
    return config_from_dict(
        {
            "population": {
                "customers": 64,
                "wallet_median": M,
                "wallet_sigma": 4.0,
                "relationship_share": 0.5,
            },
            "dynamics": {
                "base_performance": {"relationship": M, "transactional": 0.0},
                "performance_fit_sd": M,
                "performance_noise": M,
                "initial_expectation": -M,
                "satisfaction_scale": satisfaction_scale,
                "satisfaction_tolerance": M,
                "care_gain": M,
                "care_scale": care_scale,
                "annoyance": annoyance,
                "stage_effectiveness": stages,
            },
            "loyalty": {
                "defection_threshold": TINY,
                "affection_threshold": 1.0 - 2.0**-53,
                "indifference_low": 0.0,
                "indifference_high": 1.0,
            },
            "transitions": {
                "loyalty_effect_advance": M,
                "loyalty_effect_exit": M,
                "exit_odds": {"relationship": M, "transactional": 0.0},
                "long_term_periods": 1_000_000,
            },
            "word_of_mouth": {
                "people_told": {"dissatisfied": M, "satisfied": M, "highly_satisfied": M},
                "influence": {"dissatisfied": -M, "satisfied": M, "highly_satisfied": M},
                "talk_probability": 1.0,
                "referral_value": M,
            },
            "economics": {
                "annual_discount_rate": 0.0,
                "share_of_wallet_growth": M,
                "tenure_scale": tenure_scale,
                "cost_to_serve": M,
                "margin": ones,
                "share_of_wallet": ones,
                "cross_sell_share": ones,
                "cross_sell_margin": 1.0,
                "price_premium": {"relationship": M, "transactional": M},
                "acquisition_cost": {"relationship": M, "transactional": M},
            },
            "policies": [
                {
                    "name": "stage",
                    "kind": "stage",
                    "spend": stages,
                    "segment_multiplier": {"relationship": M, "transactional": M},
                },
                {
                    "name": "value",
                    "kind": "value",
                    "tier_spend": {"A": M, "B": M, "C": M},
                    "stage_multiplier": stages,
                },
                {"name": "max_satisfaction", "kind": "max_satisfaction"},
                {"name": "reactive", "kind": "reactive", "spend": M, "satisfaction_drop": TINY},
                {"name": "none", "kind": "none"},
            ],
            "run": {"horizon": 24, "replications": 1},
        }
    )


@pytest.mark.parametrize(
    "annoyance, care_scale, satisfaction_scale, tenure_scale",
    list(itertools.product([0.0, M], [MIN_CARE_SCALE, M], [TINY, M], [TINY, M])),
)
def test_kernel_stays_finite_at_the_corners_of_the_allowed_ranges(
    annoyance, care_scale, satisfaction_scale, tenure_scale
):
    """The bounds of sim.model.config (MAX_MAGNITUDE, MIN_CARE_SCALE) are chosen so that nothing
    overflows: with every magnitude at its maximum at once, the projection's per-customer
    CLVs and every table are finite (the NaN guard of from_partials would raise otherwise)
    and the invariants hold.
    """
    config = _corner_config(annoyance, care_scale, satisfaction_scale, tenure_scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even an overflow warning in the reductions
        result = sim.project(config)
    for values in result.clv.values():
        assert np.isfinite(values).all()
    summary = result.summary
    assert np.isfinite(summary.select_dtypes("number").to_numpy()).all()
    parts = (
        summary[[f"clv{i}" for i in range(1, 7)]].sum(axis=1)
        - summary["retention_spend"]
        - summary["acquisition_cost"]
    )
    scale = (
        summary[[f"clv{i}" for i in range(1, 7)] + ["retention_spend", "acquisition_cost"]].abs().sum(axis=1)
    )
    assert (abs(parts - summary["clv_mean"]) <= 1e-12 * scale).all()
    assert (summary["retention_spend"] >= 0.0).all()
    shares = result.stages.groupby(["policy", "period"])["share"].sum()
    np.testing.assert_allclose(shares, 1.0, atol=1e-12)
