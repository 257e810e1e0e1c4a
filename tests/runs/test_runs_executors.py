"""Executors (sim.runs.executors): the local loop and a Dask cluster give bitwise the same
results; so do chunks arriving in any order, and a run whose Dask worker is killed mid-run
(issue 6 item 4, issue 7 item 5).

The Dask tests share one LocalCluster of 2 worker processes (1 thread each, numba 1 thread
per task), started once for the module (a few seconds on 2 cores).
"""

import os
import random
import signal
import time

import numpy as np
import pandas as pd
import pytest

import sim
from sim.cli.main import main
from sim.exceptions import ExecutorError
from sim.runs.executors import (
    DaskExecutor,
    config_data,
    make_executor,
    plan_work,
    run_ordered,
    simulate_work_item,
)
from sim.tables.chunks import ChunkReducer, ChunkResult, WorkItem
from sim.tables.partials import ChunkPartials


def _config(customers=24_576, replications=2, horizon=48, chunk=8192):
    return sim.config_from_dict(
        {
            "population": {"customers": customers},
            "run": {"replications": replications, "horizon": horizon, "chunk_customers": chunk, "seed": 77},
        }
    )


def assert_same_result(a, b):
    for name in a.TABLES:
        pd.testing.assert_frame_equal(a.table(name), b.table(name), check_exact=True)
    assert a.clv.keys() == b.clv.keys()
    for policy in a.clv:
        assert np.array_equal(a.clv[policy], b.clv[policy])


# ----------------------------------------------------------------------------- without Dask


def test_plan_covers_every_customer_once_in_reduction_order():
    config = _config(customers=20_000, replications=3, chunk=8192)
    items = plan_work(config)
    assert items[:3] == [WorkItem(0, 0, 8192), WorkItem(0, 8192, 8192), WorkItem(0, 16384, 3616)]
    assert len(items) == 9 and [item.replication for item in items] == [0] * 3 + [1] * 3 + [2] * 3
    assert sum(item.n_customers for item in items) == 60_000


def test_reducer_equals_concatenated_sums_and_any_arrival_order():
    """ChunkReducer's block-by-block running sums are the bits of np.concatenate(...).sum(axis=0)
    (the reduction sim.project always used), and run_ordered makes the arrival order irrelevant.
    """
    config = _config(customers=20_000, replications=2, horizon=30, chunk=4096)
    text = config_data(config)
    items = plan_work(config)
    results = [simulate_work_item(text, item, keep_clv=True) for item in items]
    in_order = ChunkReducer(3, keep_clv=True)
    for result in results:
        in_order.add(result)
    for name in ChunkPartials.FIELDS:
        concatenated = np.concatenate([result.partials[name] for result in results]).sum(axis=0)
        assert np.array_equal(in_order.totals[name], concatenated), name
    shuffled = list(enumerate(results))
    random.Random(3).shuffle(shuffled)
    late = ChunkReducer(3, keep_clv=True)
    run_ordered(iter(shuffled), len(items), lambda index, result: late.add(result))
    for name in ChunkPartials.FIELDS:
        assert np.array_equal(late.totals[name], in_order.totals[name]), name
    for policy in range(3):
        assert np.array_equal(late.sketch.counts[policy], in_order.sketch.counts[policy])
    names = config.policy_names
    assert all(np.array_equal(late.clv(names)[n], in_order.clv(names)[n]) for n in names)
    with pytest.raises(ExecutorError, match="never completed"):
        run_ordered(iter(shuffled[:-1]), len(items), lambda index, result: None)


def test_a_chunk_result_survives_its_array_form():
    config = _config(customers=5000, replications=1, horizon=12)
    result = simulate_work_item(config_data(config), (0, 0, 5000), keep_clv=True)
    again = ChunkResult.from_arrays(result.to_arrays())
    assert again.item == result.item == WorkItem(0, 0, 5000)
    assert all(np.array_equal(again.partials[n], result.partials[n]) for n in ChunkPartials.FIELDS)
    assert np.array_equal(again.clv, result.clv)
    assert all(np.array_equal(a, b) for a, b in zip(again.sketch.counts, result.sketch.counts))


def test_bad_executor_arguments_are_refused_before_work(capsys, tmp_path):
    with pytest.raises(ValueError, match="executor = 'spark'"):
        make_executor("spark")
    with pytest.raises(ValueError, match="needs executor = 'dask'"):
        sim.project(_config(), scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="resume = True needs checkpoint"):
        sim.project(_config(), resume=True)
    config = tmp_path / "c.toml"
    config.write_text('name = "c"\n[population]\ncustomers = 10\n')
    assert main(["run", str(config), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler tcp://127.0.0.1:1 needs --executor dask" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- with Dask

import distributed  # noqa: E402  (a dev dependency: the Dask executor is tested in CI)


@pytest.fixture(scope="module")
def cluster():
    local = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    )
    yield local
    local.close()


@pytest.fixture(scope="module")
def local_result():
    return sim.project(_config(), threads=1, keep_clv=True)


def test_dask_cluster_gives_the_local_numbers_bitwise(cluster, local_result):
    executor = DaskExecutor(cluster.scheduler_address, threads=1)
    result = sim.project(_config(), executor=executor, keep_clv=True)
    assert result.timings["executor"] == "dask" and result.timings["workers"] == 2
    assert_same_result(local_result, result)


class _KillingExecutor(DaskExecutor):
    """Kills (SIGKILL) a worker process that holds tasks as soon as the first result is in."""

    killed = None

    def map(self, config_json, items, keep_clv, threads=None):
        for count, pair in enumerate(super().map(config_json, items, keep_clv, threads)):
            if count == 0:
                self.killed = _kill_a_busy_worker(self.client)
            yield pair


def _kill_a_busy_worker(client, wait=10.0):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        busy = [address for address, keys in client.processing().items() if keys]
        if busy:
            address = busy[0]
            pid = client.run(os.getpid, workers=[address])[address]
            keys = list(client.processing()[address])
            os.kill(pid, signal.SIGKILL)
            return address, pid, keys
        time.sleep(0.01)
    return None


def test_a_worker_killed_mid_run_changes_nothing(cluster, local_result):
    """SIGKILL one of the two worker processes while it holds tasks: the scheduler runs them
    again on the other (or the restarted) worker; tasks are pure, so the numbers are the
    local ones, bit for bit.
    """
    executor = _KillingExecutor(cluster.scheduler_address, threads=1)
    result = sim.project(_config(), executor=executor, keep_clv=True)
    assert executor.killed is not None, "no worker held a task to kill"
    address, pid, keys = executor.killed
    assert keys and all(key.startswith("sim-chunk-") for key in keys)
    assert_same_result(local_result, result)
    with distributed.Client(cluster) as client:  # the killed process is gone (its nanny started a new one)
        assert pid not in set(client.run(os.getpid).values())


class _WatchingExecutor(DaskExecutor):
    """Records, as each result is handed on, the work item and how many chunk futures are
    submitted and not yet released (``released``: keys whose future's ``release`` ran).
    """

    released: set = set()  # noqa: RUF012 - shared with the patched Future.release of the test

    def map(self, config_json, items, keep_clv, threads=None):
        self.seen = []
        submitted = []
        submit = self.client.submit

        def counting_submit(*args, **kwargs):
            future = submit(*args, **kwargs)
            submitted.append(future.key)
            return future

        self.client.submit = counting_submit
        for index, result in super().map(config_json, items, keep_clv, threads):
            self.seen.append((index, len(set(submitted) - self.released)))
            yield index, result
        self.submitted = submitted


def test_dask_map_bounds_tasks_in_flight_and_releases_each_future(cluster, monkeypatch):
    """12 work items on 2 single-thread workers: at most 2 x 2 = 4 futures are held at any time
    (each released once its result is taken), results come in work-item order, and the
    numbers are the local ones bitwise.
    """
    release = distributed.Future.release

    def recording_release(future, *args, **kwargs):
        _WatchingExecutor.released.add(future.key)
        return release(future, *args, **kwargs)

    monkeypatch.setattr(distributed.Future, "release", recording_release)
    config = _config(chunk=4096)
    items = plan_work(config)
    assert len(items) == 12
    executor = _WatchingExecutor(cluster.scheduler_address, threads=1)
    result = sim.project(config, executor=executor, keep_clv=True)
    assert [index for index, _ in executor.seen] == list(range(12))
    assert len(set(executor.submitted)) == 12
    # when result k is handed on, its own future is already released: <= 4 held
    assert max(held for _, held in executor.seen) <= 4
    assert set(executor.submitted) <= _WatchingExecutor.released
    assert_same_result(sim.project(config, threads=1, keep_clv=True), result)
