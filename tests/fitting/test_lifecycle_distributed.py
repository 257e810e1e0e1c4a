"""The lifecycle HMM's E-step in pieces and on a Dask cluster gives the same bits as in this
process (:mod:`sim.fitting.lifecycle.distributed`):

* the blocks' partial sums computed in any split into contiguous ranges and reduced in block
  order equal the one-piece E-step exactly;
* a whole fit (random starts on a sample, final EM, polish, standard errors) with the E-steps
  on a LocalCluster of 2 worker processes equals the fit in this process bit for bit, and so
  do the tables ``sim fit --executor dask`` writes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sim.cli.main import main
from sim.fitting import _hmm
from sim.fitting.lifecycle import LifecycleHMM, LifecycleParams, group_sequences, simulate_lifecycle
from sim.fitting.lifecycle import registry as lifecycle_registry
from sim.fitting.lifecycle.distributed import DaskEStep
from sim.runs.executors import DaskExecutor

PARAMS = LifecycleParams(
    np.array([1.0]),
    np.array(
        [
            [
                [0.5, 0.4, 0, 0, 0.1],
                [0, 0.8, 0.15, 0.05, 0],
                [0, 0, 0.95, 0.05, 0],
                [0, 0.1, 0, 0.8, 0.1],
                [0, 0, 0, 0, 1],
            ]
        ]
    ),
    np.array([[0.1, 0.4, 0.9, 0.2]]),
    np.array([0.2]),
    1.5,
    exit_shape=0.8,
)


def _sequences(n=900, T=18, seed=3):
    rng = np.random.default_rng(seed)
    entry = rng.integers(0, 6, n)
    return group_sequences(entry, simulate_lifecycle(PARAMS, entry, T, rng))


def _model(**settings):
    return LifecycleHMM(
        n_classes=1,
        heterogeneity="gamma",
        exit_heterogeneity="gamma",
        n_nodes=4,
        n_exit_nodes=3,
        block=16,
        **settings,
    )


@pytest.mark.parametrize("cuts", [(0,), (0, 1), (0, 5, 6, 17), (0, 3, 9, 10, 30)])
def test_estep_in_pieces_equals_the_one_piece_estep_bitwise(cuts):
    m = _model()
    m.set_data(*_sequences())
    a = m._arrays(PARAMS)
    d = m.data_
    block = 16
    n_blocks = -(-len(d.tail) // block)
    edges = [c for c in cuts if c < n_blocks] + [n_blocks]
    head = (d.ptr, d.gap, d.count, d.tail, d.weight, a["prior"], a["Aj"], a["emis"], a["emis0"])
    tables = (a["bz"], a["G"], a["H"], a["Mpow"], a["KR"], a["Occ"], a["Xi"])
    pieces = [_hmm.estep_blocks(*head, *tables, block, lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
    assert sum(len(p[0]) for p in pieces) == n_blocks
    reduced = _hmm.estep_reduce(
        np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]), a["Occ"], a["Xi"]
    )
    whole = _hmm.estep(*head, *tables, block)
    assert np.array_equal(reduced, whole)
    # and the reduction is the model's statistics: its log-likelihood is the forward pass's
    assert reduced[0] == pytest.approx(m.loglik(PARAMS), rel=1e-12)


def test_dask_estep_refuses_an_executor_that_is_not_entered():
    m = _model()
    m.set_data(*_sequences(n=50))
    with pytest.raises(ValueError, match="entered"):
        DaskEStep(DaskExecutor(), m.data_)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    local = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    )
    yield local
    local.close()


def test_fit_on_a_dask_cluster_equals_the_local_fit_bitwise(cluster):
    settings = dict(n_starts=3, n_final=1, screen_sample=300, screen_iter=5, max_iter=15, polish=15, seed=4)
    sequences = _sequences()
    local = _model(**settings).fit(*sequences)
    local.standard_errors()
    with DaskExecutor(cluster.scheduler_address, threads=1) as executor:
        remote = _model(executor=executor, **settings)
        remote.fit(*sequences)
        remote.standard_errors()
        calls, tasks = remote._remote.calls, remote._remote.tasks_run
    # the full-data E-steps ran on the cluster, in several tasks each
    assert calls >= 15 and tasks >= 2 * calls
    assert remote.loglik_ == local.loglik_ and remote.n_estep_ == local.n_estep_
    for name in ("class_probs", "transitions", "rates", "entry_rates"):
        assert np.array_equal(getattr(remote.params_, name), getattr(local.params_, name)), name
    assert remote.params_.shape == local.params_.shape
    assert remote.params_.exit_shape == local.params_.exit_shape
    assert local.se_.keys() == remote.se_.keys()
    for name, value in local.se_.items():
        if value is None:
            assert remote.se_[name] is None, name
        else:
            assert np.array_equal(np.asarray(remote.se_[name]), np.asarray(value), equal_nan=True), name


def _log_file(path, n=400, weeks=26, seed=5):
    """A transaction log of customers simulated from PARAMS (first purchase in the entry week)."""
    rng = np.random.default_rng(seed)
    entry = rng.integers(0, 5, n)
    counts = simulate_lifecycle(PARAMS, entry, weeks, rng)
    counts[np.arange(n), entry] += 1
    customer, week = np.nonzero(counts)
    reps = np.minimum(counts[customer, week], 7)
    customer, week = np.repeat(customer, reps), np.repeat(week, reps)
    day = np.datetime64("2021-01-04") + 7 * week + np.concatenate([np.arange(k) for k in reps])
    pd.DataFrame({"customer_id": customer + 1, "date": day.astype(str), "amount": 10.0}).to_csv(
        path, index=False
    )
    return path


def test_sim_fit_on_a_dask_cluster_writes_the_local_tables(tmp_path, cluster, monkeypatch, capsys):
    monkeypatch.setattr(lifecycle_registry, "DEFAULT_CANDIDATES", ((1, "gamma", "gamma"),))
    settings = dict(n_starts=2, n_final=1, screen_iter=5, max_iter=15, polish=15, seed=2, node_rule=False)
    monkeypatch.setattr(lifecycle_registry, "REGISTRY_SETTINGS", settings)
    log = _log_file(tmp_path / "log.csv")
    argv = ["fit", str(log), "--calibration-end", "2021-04-04", "--models", "lifecycle", "--no-figure"]
    assert main([*argv, "--out", str(tmp_path / "local")]) == 0
    dask_options = ["--executor", "dask", "--scheduler", cluster.scheduler_address]
    assert main([*argv, *dask_options, "--out", str(tmp_path / "dask")]) == 0
    capsys.readouterr()
    for table in ("parameters", "customers", "stages", "stage_occupancy"):
        assert (tmp_path / "dask" / f"{table}.csv").read_bytes() == (
            tmp_path / "local" / f"{table}.csv"
        ).read_bytes(), table
    manifest = json.loads((tmp_path / "dask" / "manifest.json").read_text())
    assert manifest["executor"]["executor"] == "dask" and manifest["executor"]["workers"] == 2
    local_manifest = json.loads((tmp_path / "local" / "manifest.json").read_text())
    assert local_manifest["executor"] == {"executor": "local"}
