"""The NaN guard of the result tables: only the documented empty groups may be NaN; any other NaN or
infinity is an error naming its table, column and row (or policy and customer).
"""

from pathlib import Path

import numpy as np
import pytest

import sim
from sim.engines.core import simulate_chunk
from sim.exceptions import NonFiniteResultError
from sim.model.arrays import model_arrays
from sim.model.policies import policy_tables
from sim.model.sections import MAX_MAGNITUDE
from sim.tables.partials import M_CLV3
from sim.tables.result import NAN_WHEN_EMPTY, ProjectionResult

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


# ----------------------------------------------------------------------------- NaN guard


def test_documented_empty_groups_are_the_only_nans(small_run):
    """One customer for one period: stages other than exploration are never visited,
    patterns III/IV are empty, groups A and B of the value table hold nobody, and one
    policy has no comparison — these NaN (and only these, per NAN_WHEN_EMPTY) pass the guard.
    """
    config, partials = small_run
    result = ProjectionResult.from_partials(config, [partials])
    seen = set()
    for name in result.TABLES:
        frame = result.table(name)
        numeric = frame.select_dtypes("number")
        assert not np.isinf(numeric.to_numpy(dtype=float)).any(), name
        for column in numeric.columns:
            if frame[column].isna().any():
                seen.add((name, column))
                assert column in NAN_WHEN_EMPTY.get(name, {}), (name, column)
    assert ("by_stage", "profit_mean") in seen and ("patterns", "clv_mean") in seen
    assert ("value_concentration", "negative_share") in seen
    assert result.summary.notna().all().all() and result.stages.notna().all().all()


@pytest.mark.parametrize(
    "inject, expected",
    [
        (lambda p: p.money.__setitem__((0, 0, M_CLV3), np.nan), ["summary.clv3", "nan", "policy 'u'"]),
        (lambda p: p.money.__setitem__((0, 0, M_CLV3), np.inf), ["summary.clv3", "inf"]),
        (
            lambda p: p.clv.__setitem__((0, 0), -np.inf),
            ["CLV of policy 'u'", "-inf", "replication 0, customer 0"],
        ),
        (
            lambda p: p.stage_sums.__setitem__((0, 0, 0, 1), np.nan),
            ["by_stage.satisfaction_mean", "stage 'exploration'"],
        ),
        (
            lambda p: p.period_sums.__setitem__((0, 0, 0, 0), np.inf),
            ["trajectory.profit_mean", "inf", "period 0"],
        ),
    ],
    ids=["nan-part", "inf-part", "inf-customer", "nan-stage-mean", "inf-period-mean"],
)
def test_a_nan_or_inf_in_a_result_is_an_error_naming_its_origin(small_run, inject, expected):
    """A NaN or inf where the model guarantees a finite number is never silent: from_partials
    raises NonFiniteResultError naming the table and column (or policy and customer).
    """
    config, partials = small_run
    broken = simulate_chunk(model_arrays(config), policy_tables(config), 1, 0, 0, 1, 1)
    inject(broken)
    with pytest.raises(NonFiniteResultError) as caught:
        ProjectionResult.from_partials(config, [broken])
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_project_and_save_never_see_a_nan_silently(small_run, tmp_path, monkeypatch):
    """End to end: a kernel that returned NaN makes sim.project raise before anything is saved."""
    import sim.runs.projection as projection

    real = projection.simulate_chunk

    def broken(*args, **kwargs):
        partials = real(*args, **kwargs)
        partials.money[:] = np.nan
        return partials

    monkeypatch.setattr(projection, "simulate_chunk", broken)
    config, _ = small_run
    with pytest.raises(NonFiniteResultError):
        sim.project(config)
