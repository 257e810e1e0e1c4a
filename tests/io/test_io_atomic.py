"""Atomic writes (sim.io.results): a failed write leaves the old file and no temporary; a crash while
saving leaves an incomplete folder that can be run again.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.io.results import MANIFEST, atomic_write_bytes, save_result
from sim.model.sections import MAX_MAGNITUDE
from sim.tables.result import ProjectionResult

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


# ----------------------------------------------------------------------------- atomic writes


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    atomic_write_bytes(target, b"old complete content")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old complete content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_crash_while_saving_leaves_an_incomplete_folder_that_can_be_rerun(small_run, tmp_path, monkeypatch):
    """The manifest is written last: a crash after some tables leaves no manifest (so the
    folder reads as incomplete, not as a result), and a plain rerun then completes it.
    """
    import sim.io.results as results

    config, partials = small_run
    result = ProjectionResult.from_partials(config, [partials])
    real = results.atomic_write_text
    written = []

    def crash_on_third(path, text):
        if len(written) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of saving
        written.append(Path(path).name)
        return real(path, text)

    monkeypatch.setattr(results, "atomic_write_text", crash_on_third)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        save_result(result, out)
    assert not (out / MANIFEST).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(results, "atomic_write_text", real)
    order = []
    monkeypatch.setattr(
        results, "atomic_write_text", lambda path, text: (order.append(Path(path).name), real(path, text))[1]
    )
    save_result(result, out)  # no --force needed: nothing complete was there
    assert order[-1] == MANIFEST and set(json.loads((out / MANIFEST).read_text())["files"]) == {
        f"{name}.csv" for name in result.TABLES
    }
