"""Cohort CLV projection with the jitted core: :func:`~sim.runs.projection.project` and
:class:`~sim.ProjectionResult`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numba

from sim.engines.core import simulate_chunk
from sim.exceptions import ConfigError
from sim.model.config import ExperimentConfig, with_run_overrides
from sim.runs.executors import check_run_size, make_executor, plan_work, run_ordered, simulate_work_item
from sim.tables.chunks import ChunkReducer, exact_clv_tables
from sim.tables.result import ProjectionResult

__all__ = [
    "project",
]


def _chunks(n_customers: int, chunk_customers: int) -> list[tuple[int, int]]:
    return [
        (start, min(chunk_customers, n_customers - start)) for start in range(0, n_customers, chunk_customers)
    ]


def set_threads(threads: int) -> int:
    available = numba.config.NUMBA_NUM_THREADS
    wanted = available if threads == 0 else min(threads, available)
    numba.set_num_threads(wanted)
    return wanted


def project(
    config: ExperimentConfig,
    *,
    customers: int | None = None,
    replications: int | None = None,
    horizon: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: bool = False,
    executor="local",
    scheduler: str | None = None,
    checkpoint=None,
    resume: bool = False,
    keep_clv: bool | None = None,
) -> "ProjectionResult":
    """Project the cohort CLV of every policy in ``config`` with the numba core.

    Each of ``customers`` customers is acquired at period 0 and simulated for ``horizon``
    periods under every policy, with common random numbers across policies, in each of
    ``replications`` independent replications. The model is :mod:`sim.model.equations`.

    Parameters
    ----------
    config
        A validated experiment (:func:`sim.load_config`).
    customers, replications, horizon, seed, threads
        Override the config's values (validated like the config).
    progress
        Show a progress bar over chunks of work.
    executor : {"local", "dask"} or executor object
        What runs the chunks (:mod:`sim.runs.executors`): this process, or tasks on a Dask
        cluster. Never changes a number.
    scheduler : str, optional
        Dask scheduler address or scheduler-file path (``executor="dask"``); default: a
        ``LocalCluster`` on this machine.
    checkpoint : path, optional
        A result folder: each completed chunk is written to ``<checkpoint>/.chunks/``
        (:mod:`sim.runs.checkpoint`) so that an interrupted run can resume.
    resume : bool
        With ``checkpoint``: reuse the valid chunk files found there (others are recomputed);
        without it any old chunk files are deleted first.
    keep_clv : bool, optional
        Keep every customer's CLV in :attr:`ProjectionResult.clv`; default: only when
        ``customers x replications <= sim.tables.chunks.CLV_KEEP_LIMIT``. Never changes a table
        (see Notes).

    Returns
    -------
    ProjectionResult
        Tidy tables (``summary``, ``stages``, ``by_stage``, ``patterns``, ``trajectory``,
        ``satisfaction_retention``, ``value_concentration``, ``comparison``) and, when kept,
        the per-customer CLVs.

    Raises
    ------
    ValueError
        For an unknown ``executor`` or a ``scheduler`` without the Dask executor.
    sim.exceptions.ExecutorError
        If the Dask executor cannot start or loses work beyond its retries.

    Notes
    -----
    Results are bitwise identical for any ``threads``, any ``run.chunk_customers``, either
    executor, and a resumed or uninterrupted run: chunks are reduced in work-item order
    (:class:`sim.tables.chunks.ChunkReducer`). The CLV quantiles and the value-concentration
    table are computed from every customer's CLV when ``customers x replications <=
    sim.tables.chunks.CLV_KEEP_LIMIT`` (2^21), and above it from a :class:`sim.tables.sketch.ClvSketch`
    (quantiles within 2^-10 relative, group sums within 2^-10 of the group's sum of
    ``|CLV|``); which one depends on the config only. Memory is O(policies x horizon) for the
    aggregates plus the chunks in flight and the sketch, plus 8 bytes per customer,
    replication and policy only below that size or when ``keep_clv``.
    """
    config = with_run_overrides(config, customers, replications, horizon, seed, threads)
    if config.population.snapshot is not None:
        raise ConfigError(
            [
                (
                    f"population.snapshot = {config.population.snapshot!r}",
                    "the config projects a snapshot of live customers, not a new cohort: use "
                    "sim.project_from(sim.runs.snapshot.read_snapshot(path), config), or sim run",
                )
            ]
        )
    if not isinstance(resume, bool):
        raise ValueError(f"resume = {resume!r}: must be True or False")
    if resume and checkpoint is None:
        raise ValueError("resume = True needs checkpoint = <result folder> (where the chunk files are)")
    check_run_size(config)  # before any allocation: work items and the memory of one chunk
    items = plan_work(config)
    exact = exact_clv_tables(config)
    expose = exact if keep_clv is None else bool(keep_clv)
    keep = exact or expose  # collect the per-customer CLVs (for exact tables or for the caller)
    runner = make_executor(executor, scheduler, n_items=len(items))  # checks the arguments first
    used_threads = set_threads(config.run.threads)
    store = None
    trusted = []  # indices whose chunk file is trusted; each is read again only when the reducer needs it
    resumed = [0]
    if checkpoint is not None:
        from sim.runs.checkpoint import ChunkStore

        store = ChunkStore(Path(checkpoint), config)
        if resume:
            store.discard_temporaries()  # left by a write that was killed; never a chunk
            for index, item in enumerate(items):
                if store.load(item, keep) is not None:  # checked, then dropped: memory stays O(chunk)
                    trusted.append(index)
        else:
            store.remove()
    trusted_set = set(trusted)
    pending = [(index, item) for index, item in enumerate(items) if index not in trusted_set]
    config_json = _config_json(config)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(items), initial=len(trusted), desc=f"{config.name}: chunks", unit="chunk", leave=False
        )
    reducer = ChunkReducer(len(config.policy_names), keep_clv=keep)
    started = time.perf_counter()
    described = {"executor": getattr(runner, "name", type(runner).__name__)}
    waiting = list(reversed(trusted))  # trusted indices still to load, next one last
    delivered = set()  # indices yielded so far
    following = [0]  # the lowest index not yielded yet

    def in_turn():
        """Load the trusted chunks whose turn has come (every lower index delivered), one at a
        time in work-item order, so that no loaded chunk waits for a computed one.
        """
        while True:
            while following[0] in delivered:
                delivered.discard(following[0])
                following[0] += 1
            if not waiting or waiting[-1] != following[0]:
                return
            index = waiting.pop()
            loaded = store.load(items[index], keep)
            if loaded is None:  # the file changed since it was checked: recompute it here
                loaded = simulate_work_item(config_json, items[index], keep, simulate=_kernel)
                store.save(loaded)
            else:
                resumed[0] += 1
            delivered.add(index)
            yield index, loaded
            del loaded

    def completed():
        yield from in_turn()
        if not pending:
            return
        with runner as active:
            described.update(active.describe())
            if isinstance(executor, str) and executor == "local":
                # the local path calls this module's simulate_chunk (tests may replace it)
                results = (
                    (index, simulate_work_item(config_json, item, keep, simulate=_kernel))
                    for index, item in pending
                )
            else:
                results = active.map(config_json, pending, keep, threads=config.run.threads)
            for index, result in results:
                if store is not None:
                    store.save(result)
                if bar is not None:
                    bar.update(1)
                delivered.add(index)
                yield index, result
                del result  # hold no finished chunk while the next one runs
                yield from in_turn()

    try:
        run_ordered(completed(), len(items), lambda index, result: reducer.add(result))
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    result = ProjectionResult.from_reducer(config, reducer, wall_seconds=elapsed, threads=used_threads)
    if not expose:
        result.clv = {}
    result.timings.update(described)
    result.timings["chunks"] = len(items)
    if store is not None:
        result.timings["chunks_resumed"] = resumed[0]
        result.timings["chunk_files_rejected"] = [f"{path.name}: {reason}" for path, reason in store.rejected]
    return result


def _kernel(*args):
    """:func:`sim.engines.core.simulate_chunk`, looked up in this module at call time."""
    return simulate_chunk(*args)


def _config_json(config) -> str:
    from sim.runs.executors import config_data

    return config_data(config)
