"""Where the chunks of a projection run: in this process, or as tasks on a Dask cluster.

A projection (:func:`sim.project`) is a list of deterministic **work items**
``(replication, first_customer, n_customers)`` (:func:`plan_work`). Each item is simulated
by :func:`simulate_work_item`, a pure function of the config's plain data and the item,
which returns a :class:`~sim.tables.chunks.ChunkResult`: the chunk's partial sums per block of
:data:`sim.tables.partials.BLOCK` customers, a :class:`sim.tables.sketch.ClvSketch` of its CLVs and, for small
runs, the CLVs themselves. A :class:`~sim.tables.chunks.ChunkReducer` adds chunk results **in work-item
order** (buffering those that arrive early), block by block, so the reduced sums are the
same bits whatever ran the items, in whatever order, with whatever chunk size:

* :class:`LocalExecutor` runs the items one after another in this process (numba's threads
  work inside each chunk);
* :class:`DaskExecutor` submits them as tasks to a ``distributed`` cluster (a
  ``LocalCluster`` when no scheduler address is given). Tasks are pure, so a task whose
  worker dies is simply run again (``retries``, and the scheduler's rescheduling of the
  tasks of lost workers) and the result cannot change.

Dask is optional (``pip install -e ".[dask]"``); it is imported only when a
:class:`DaskExecutor` starts.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Callable, Iterable, Iterator

import numpy as np

from sim.engines.core import simulate_chunk
from sim.exceptions import ExecutorError
from sim.tables.chunks import ChunkResult, WorkItem, exact_clv_tables

__all__ = [
    "EXECUTORS",
    "LocalExecutor",
    "DaskExecutor",
    "plan_work",
    "simulate_work_item",
    "make_executor",
    "run_ordered",
]

#: Names accepted by ``sim run --executor`` and :func:`make_executor`.
EXECUTORS = ("local", "dask")


def plan_work(config) -> list[WorkItem]:
    """The work items of ``config`` in reduction order: replications, then chunks of
    ``run.chunk_customers`` customers.
    """
    n_customers = config.population.customers
    size = config.run.chunk_customers
    return [
        WorkItem(replication, start, min(size, n_customers - start))
        for replication in range(config.run.replications)
        for start in range(0, n_customers, size)
    ]


#: Most work items (replications x chunks) one run may have: each is a task and a chunk file.
MAX_WORK_ITEMS = 1_000_000


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo),
    or None where that cannot be read.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def chunk_bytes(config) -> int:
    """Peak bytes of the arrays of one chunk in flight (:class:`sim.engines.core.ChunkPartials` of
    ``run.chunk_customers`` customers and their per-customer CLVs), counted twice (the
    kernel's arrays and the copy a result holds), plus the run's exact per-customer CLVs
    when they are kept (``customers x replications <= CLV_KEEP_LIMIT``).
    """
    from sim.model.names import N_STAGES
    from sim.tables.partials import BLOCK, N_MONEY, N_PERIOD_SUMS, SATISFACTION_BINS

    customers = min(config.population.customers, config.run.chunk_customers)
    blocks = -(-customers // BLOCK)
    p, horizon = len(config.policy_names), config.run.horizon
    per_block = p * (
        N_MONEY
        + N_STAGES * (N_PERIOD_SUMS + 1)
        + horizon * N_PERIOD_SUMS
        + (horizon + 1) * (N_STAGES + 1)
        + 8
        + 3 * p
        + N_STAGES * SATISFACTION_BINS * 2
    )
    chunk = 2 * 8 * (blocks * per_block + p * customers)
    kept = 8 * p * config.population.customers * config.run.replications if exact_clv_tables(config) else 0
    return chunk + kept


def run_size_problems(config) -> list[tuple[str, str]]:
    """Why a run of ``config`` cannot be done on this machine, checked before any work:
    too many work items (:data:`MAX_WORK_ITEMS`; with ``[precision]``, at its
    ``max_replications``), or one chunk needing more memory than is available. ``(field path, message)``
    pairs, as :class:`sim.exceptions.ConfigError` takes.
    """
    problems = []
    customers, size = config.population.customers, config.run.chunk_customers
    replications, field = config.run.replications, "run.replications"
    if config.precision.target_ci_halfwidth is not None:  # [precision] may add replications up to its cap
        replications, field = (
            max(replications, config.precision.max_replications),
            "precision.max_replications",
        )
    items = replications * -(-customers // size)
    if items > MAX_WORK_ITEMS:
        problems.append(
            (
                field,
                (
                    f"{replications:,} replications ({field}) x {-(-customers // size):,} chunks of "
                    "run.chunk_customers = "
                    f"{size:,} (population.customers = {customers:,}) = {items:,} work items; at most "
                    f"{MAX_WORK_ITEMS:,}: "
                    "fewer replications or customers, or larger chunks"
                ),
            )
        )
    needed, available = chunk_bytes(config), _available_memory()
    if available is not None and needed > available:
        problems.append(
            (
                "run.chunk_customers",
                (
                    f"one chunk of {min(customers, size):,} customers x {len(config.policy_names)} policies "
                    "x run.horizon = "
                    f"{config.run.horizon:,} periods needs about {needed / 2**30:,.1f} GiB, more than the "
                    f"{available / 2**30:,.1f} GiB available: a smaller run.chunk_customers or run.horizon"
                ),
            )
        )
    return problems


def check_run_size(config) -> None:
    """Raise :class:`sim.exceptions.ConfigError` with :func:`run_size_problems`, if any."""
    from sim.exceptions import ConfigError

    problems = run_size_problems(config)
    if problems:
        raise ConfigError(problems)


# ----------------------------------------------------------------------------- chunk results


def _check_finite_chunk(config, item: WorkItem, clv: np.ndarray) -> None:
    """Every CLV of the chunk finite, else :class:`sim.exceptions.NonFiniteResultError`
    naming the policy, replication and customer of the first bad one.
    """
    bad = ~np.isfinite(clv)
    if bad.any():
        from sim.exceptions import NonFiniteResultError
        from sim.tables.result import NONFINITE_HINT

        policy, local = (int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteResultError(
            f"CLV of policy {config.policy_names[policy]!r} is {clv[policy, local]} for replication "
            f"{item.replication}, customer {item.first_customer + local} ({int(bad.sum())} of {clv.size} "
            f"customer-policies of that chunk non-finite); {NONFINITE_HINT}"
        )


@functools.lru_cache(maxsize=8)
def _config_from_json(text: str):
    from sim.model.arrays import model_arrays
    from sim.model.config import config_from_dict
    from sim.model.policies import policy_tables

    config = config_from_dict(json.loads(text))
    return config, model_arrays(config), policy_tables(config)


def config_data(config) -> str:
    """The config as canonical JSON text: what travels to workers (and what
    :func:`simulate_work_item` validates again).
    """
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def simulate_work_item(
    config_json: str,
    item,
    keep_clv: bool = False,
    threads: int | None = None,
    simulate: Callable | None = None,
) -> ChunkResult:
    """Simulate one work item: a pure function of the config (canonical JSON,
    :func:`config_data`) and the item, so it may run anywhere and be run again.

    Parameters
    ----------
    config_json : str
        The resolved experiment config (:func:`config_data`).
    item : WorkItem or tuple
        ``(replication, first_customer, n_customers)``.
    keep_clv : bool
        Return the per-customer CLVs too.
    threads : int, optional
        numba threads for this chunk (capped at the machine's); default: leave as is.
    simulate : callable, optional
        The chunk kernel, default :func:`sim.engines.core.simulate_chunk` (same arguments).

    Raises
    ------
    sim.exceptions.NonFiniteResultError
        If a CLV is NaN or infinite (named by policy, replication and customer).
    """
    config, arrays, tables = _config_from_json(config_json)
    item = WorkItem(*(int(value) for value in item))
    if threads is not None:
        import numba

        numba.set_num_threads(
            max(1, min(int(threads) or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS))
        )
    partials = (simulate or simulate_chunk)(
        arrays,
        tables,
        config.run.seed,
        item.replication,
        item.first_customer,
        item.n_customers,
        config.run.horizon,
    )
    _check_finite_chunk(config, item, partials.clv)
    return ChunkResult.from_partials(item, partials, keep_clv=keep_clv)


# ----------------------------------------------------------------------------- reduction


def run_ordered(
    results: Iterable[tuple[int, ChunkResult]], n_items: int, consume: Callable[[int, ChunkResult], None]
) -> None:
    """Feed ``(index, result)`` pairs arriving in any order to ``consume`` in index order
    (``0`` to ``n_items - 1``), holding early arrivals until their turn.
    """
    waiting: dict[int, ChunkResult] = {}
    following = 0
    for index, result in results:
        waiting[index] = result
        del result  # only ``waiting`` holds chunks not reduced yet
        while following in waiting:
            consume(following, waiting.pop(following))
            following += 1
    if following != n_items:
        missing = sorted(set(range(following, n_items)) - set(waiting))
        raise ExecutorError(f"work items {missing[:5]}{'...' if len(missing) > 5 else ''} never completed")


# ----------------------------------------------------------------------------- executors


class LocalExecutor:
    """Runs work items one after another in this process (numba threads inside each chunk)."""

    name = "local"

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def describe(self) -> dict:
        """What ran the work (for the manifest)."""
        return {"executor": "local"}

    def map(
        self, config_json: str, items: list[tuple[int, WorkItem]], keep_clv: bool, threads: int | None = None
    ) -> Iterator[tuple[int, ChunkResult]]:
        """Yield ``(index, result)`` for every ``(index, item)``, in the given order."""
        for index, item in items:
            yield index, simulate_work_item(config_json, item, keep_clv)


class DaskExecutor:
    """Runs work items as tasks on a Dask ``distributed`` cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) or the path of a scheduler
        file (``scheduler.json``). Without one a ``LocalCluster`` is started on this
        machine and closed afterwards.
    n_workers : int, optional
        Workers of the local cluster (default: one per core, at most one per work item).
    threads : int, optional
        numba threads per task. Default for a local cluster: cores / workers; for a
        remote scheduler: the config's ``run.threads`` (0 = all cores of the worker).
    processes : bool
        Local cluster of processes (default) or of threads in this process.
    retries : int
        Extra attempts of a task that raised (tasks are pure, so retrying is safe).

    Notes
    -----
    Each task gets the config as JSON text (sent once, ``scatter``) and a work item, and
    returns a :class:`~sim.tables.chunks.ChunkResult`; :meth:`map` keeps at most twice the cluster's worker
    threads of tasks in flight, takes results in work-item order and releases each future
    once its result is taken (memory O(window x chunk)); the client reduces in work-item
    order, so the numbers are bitwise those of :class:`LocalExecutor`. A worker that dies takes its
    running tasks with it; the scheduler runs them again elsewhere (up to its
    ``distributed.scheduler.allowed-failures`` deaths per task).
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        n_workers: int | None = None,
        threads: int | None = None,
        processes: bool = True,
        retries: int = 3,
        n_items: int | None = None,
    ):
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.threads = threads
        self.processes = processes
        self.retries = retries
        self.n_items = n_items
        self.client = None
        self.cluster = None

    def __enter__(self) -> "DaskExecutor":
        try:
            from distributed import Client, LocalCluster
        except ImportError as error:  # pragma: no cover - depends on the installation
            raise ExecutorError(
                'the Dask executor needs dask.distributed: pip install -e ".[dask]"'
            ) from error
        try:
            if self.scheduler:
                if os.path.exists(self.scheduler):
                    self.client = Client(scheduler_file=self.scheduler, timeout="30s")
                else:
                    self.client = Client(self.scheduler, timeout="30s")
            else:
                cores = os.cpu_count() or 1
                workers = self.n_workers or max(1, min(cores, self.n_items or cores))
                if self.threads is None:
                    self.threads = max(1, cores // workers)
                self.cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=self.processes,
                    dashboard_address=None,
                    silence_logs=40,
                )
                self.client = Client(self.cluster)
        except (OSError, TimeoutError) as error:
            self.__exit__(None, None, None)
            raise ExecutorError(f"cannot reach the Dask scheduler {self.scheduler!r}: {error}") from error
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def describe(self) -> dict:
        """What ran the work (for the manifest)."""
        info = self.client.scheduler_info() if self.client is not None else {}
        return {
            "executor": "dask",
            "scheduler": self.scheduler or "LocalCluster",
            "workers": len(info.get("workers", {})),
            "threads_per_task": self.threads,
        }

    def map(
        self, config_json: str, items: list[tuple[int, WorkItem]], keep_clv: bool, threads: int | None = None
    ) -> Iterator[tuple[int, ChunkResult]]:
        """Yield ``(index, result)`` for every ``(index, item)``, in the given (work-item) order.

        At most :meth:`window` tasks are in flight (submitted, result not yet taken); each
        future is released as soon as its result is taken, and the next item is submitted
        then, so neither the cluster nor this client holds more than the window's results.
        """
        from collections import deque

        if not items:
            return
        task_threads = self.threads if self.threads is not None else threads
        shared = self.client.scatter(config_json, broadcast=True, hash=False)
        token = _token(config_json)
        queue = iter(items)
        in_flight = deque()  # (index, future), in submission order

        def submit_next() -> bool:
            pair = next(queue, None)
            if pair is None:
                return False
            index, item = pair
            future = self.client.submit(
                simulate_work_item,
                shared,
                tuple(item),
                keep_clv,
                task_threads,
                key=f"sim-chunk-{token}-{WorkItem(*item).name}-{int(keep_clv)}",
                retries=self.retries,
                pure=False,
            )
            in_flight.append((index, future))
            return True

        limit = self.window()
        try:
            while len(in_flight) < limit and submit_next():
                pass
            while in_flight:
                index, future = in_flight[0]
                result = future.result()
                in_flight.popleft()
                future.release()
                del future
                submit_next()
                yield index, result
                del result
        finally:
            for _, future in in_flight:
                future.release()
            in_flight.clear()

    def window(self) -> int:
        """Tasks in flight at most: twice the cluster's worker threads (at least 2)."""
        try:
            workers = self.client.scheduler_info().get("workers", {})
            slots = sum(int(info.get("nthreads", 1)) for info in workers.values())
        except Exception:  # noqa: BLE001 - an unknown cluster size falls back to the minimum
            slots = 1
        return max(2, 2 * slots)


def _token(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def make_executor(executor="local", scheduler: str | None = None, n_items: int | None = None):
    """An executor from its name (``"local"``/``"dask"``) or an executor object (returned
    as is). ``scheduler`` is the Dask scheduler address (only with ``"dask"``).

    Raises
    ------
    ValueError
        For an unknown name, or a scheduler given with the local executor.
    """
    if not isinstance(executor, str):
        return executor
    if executor not in EXECUTORS:
        raise ValueError(f"executor = {executor!r}: allowed are {', '.join(map(repr, EXECUTORS))}")
    if executor == "local":
        if scheduler:
            raise ValueError(
                f"scheduler = {scheduler!r} needs executor = 'dask' (the local executor has no scheduler)"
            )
        return LocalExecutor()
    return DaskExecutor(scheduler, n_items=n_items)
