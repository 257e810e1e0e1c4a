"""Where the chunks of a projection run: in this process, or as tasks on a Dask cluster.

A projection (:func:`sim.project`) is a list of deterministic **work items**
``(replication, first_customer, n_customers)`` (:func:`plan_work`). Each item is simulated
by :func:`simulate_work_item`, a pure function of the config's plain data and the item,
which returns a :class:`ChunkResult`: the chunk's partial sums per block of
:data:`sim.core.BLOCK` customers, a :class:`sim.sketch.ClvSketch` of its CLVs and, for small
runs, the CLVs themselves. A :class:`ChunkReducer` adds chunk results **in work-item
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
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np

from .core import ChunkPartials, simulate_chunk
from .sketch import ClvSketch

__all__ = [
    "EXECUTORS",
    "CLV_KEEP_LIMIT",
    "WorkItem",
    "ChunkResult",
    "ChunkReducer",
    "LocalExecutor",
    "DaskExecutor",
    "ExecutorError",
    "plan_work",
    "exact_clv_tables",
    "keep_clv_default",
    "simulate_work_item",
    "make_executor",
    "run_ordered",
]

#: Names accepted by ``sim run --executor`` and :func:`make_executor`.
EXECUTORS = ("local", "dask")

#: Up to this many customers x replications, the CLV quantiles and the value-concentration
#: table are computed from every customer's CLV, which :attr:`sim.ProjectionResult.clv`
#: keeps (8 bytes per value and policy); above it they come from the
#: :class:`sim.sketch.ClvSketch` (error bounds in :mod:`sim.sketch`) and ``clv`` is empty
#: unless asked for.
CLV_KEEP_LIMIT = 1 << 21


class ExecutorError(RuntimeError):
    """An executor could not be started or lost its work (e.g. no Dask installed, the
    scheduler unreachable, a task failed on every retry)."""


class WorkItem(NamedTuple):
    """One chunk of work: ``n_customers`` customers from ``first_customer`` (a multiple of
    :data:`sim.core.BLOCK`) of replication ``replication``."""

    replication: int
    first_customer: int
    n_customers: int

    @property
    def name(self) -> str:
        """File-name stem of the item, e.g. ``rep3_first262144``."""
        return f"rep{self.replication}_first{self.first_customer}"


def plan_work(config) -> list[WorkItem]:
    """The work items of ``config`` in reduction order: replications, then chunks of
    ``run.chunk_customers`` customers."""
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
    or None where that cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def chunk_bytes(config) -> int:
    """Peak bytes of the arrays of one chunk in flight (:class:`sim.core.ChunkPartials` of
    ``run.chunk_customers`` customers and their per-customer CLVs), counted twice (the
    kernel's arrays and the copy a result holds), plus the run's exact per-customer CLVs
    when they are kept (``customers x replications <= CLV_KEEP_LIMIT``)."""
    from .core import BLOCK, N_MONEY, N_PERIOD_SUMS, N_STAGES, SATISFACTION_BINS

    customers = min(config.population.customers, config.run.chunk_customers)
    blocks = -(-customers // BLOCK)
    p, horizon = len(config.policy_names), config.run.horizon
    per_block = p * (N_MONEY + N_STAGES * (N_PERIOD_SUMS + 1) + horizon * N_PERIOD_SUMS
                     + (horizon + 1) * (N_STAGES + 1) + 8 + 3 * p + N_STAGES * SATISFACTION_BINS * 2)
    chunk = 2 * 8 * (blocks * per_block + p * customers)
    kept = 8 * p * config.population.customers * config.run.replications if exact_clv_tables(config) else 0
    return chunk + kept


def run_size_problems(config) -> list[tuple[str, str]]:
    """Why a run of ``config`` cannot be done on this machine, checked before any work:
    too many work items (:data:`MAX_WORK_ITEMS`; with ``[precision]``, at its
    ``max_replications``), or one chunk needing more memory than is available. ``(field path, message)`` pairs, as :class:`sim.config.ConfigError` takes."""
    problems = []
    customers, size = config.population.customers, config.run.chunk_customers
    replications, field = config.run.replications, "run.replications"
    if config.precision.target_ci_halfwidth is not None:  # [precision] may add replications up to its cap
        replications, field = max(replications, config.precision.max_replications), "precision.max_replications"
    items = replications * -(-customers // size)
    if items > MAX_WORK_ITEMS:
        problems.append((field, (
            f"{replications:,} replications ({field}) x {-(-customers // size):,} chunks of run.chunk_customers = "
            f"{size:,} (population.customers = {customers:,}) = {items:,} work items; at most {MAX_WORK_ITEMS:,}: "
            "fewer replications or customers, or larger chunks")))
    needed, available = chunk_bytes(config), _available_memory()
    if available is not None and needed > available:
        problems.append(("run.chunk_customers", (
            f"one chunk of {min(customers, size):,} customers x {len(config.policy_names)} policies x run.horizon = "
            f"{config.run.horizon:,} periods needs about {needed / 2**30:,.1f} GiB, more than the "
            f"{available / 2**30:,.1f} GiB available: a smaller run.chunk_customers or run.horizon")))
    return problems


def check_run_size(config) -> None:
    """Raise :class:`sim.config.ConfigError` with :func:`run_size_problems`, if any."""
    from .config import ConfigError

    problems = run_size_problems(config)
    if problems:
        raise ConfigError(problems)


def exact_clv_tables(config) -> bool:
    """Whether the CLV quantiles and the value-concentration table of ``config`` are computed
    from every customer's CLV (``customers x replications <= CLV_KEEP_LIMIT``; then the
    CLVs are also kept by default) rather than from the sketch. Depends on the config only,
    so every executor, chunking and resumed run uses the same method."""
    return config.population.customers * config.run.replications <= CLV_KEEP_LIMIT


#: Whether :func:`sim.project` keeps the per-customer CLVs by default: the same rule.
keep_clv_default = exact_clv_tables


# ----------------------------------------------------------------------------- chunk results


@dataclass
class ChunkResult:
    """What one work item produced.

    Attributes
    ----------
    item : WorkItem
    partials : dict of str to ndarray
        The arrays of :attr:`sim.core.ChunkPartials.FIELDS`, block first.
    sketch : ClvSketch
        Sketch of the chunk's CLVs, per policy.
    clv : ndarray or None
        ``clv[policy, customer]`` when kept, else None.
    """

    item: WorkItem
    partials: dict
    sketch: ClvSketch
    clv: np.ndarray | None = None

    @classmethod
    def from_partials(cls, item: WorkItem, partials: ChunkPartials, keep_clv: bool = True) -> "ChunkResult":
        """Wrap a :class:`sim.core.ChunkPartials` (sketching its CLVs)."""
        return cls(
            item=WorkItem(*item),
            partials={name: getattr(partials, name) for name in ChunkPartials.FIELDS},
            sketch=ClvSketch.from_values(partials.clv),
            clv=partials.clv if keep_clv else None,
        )

    def to_arrays(self) -> dict:
        """Every array of the result, flat names (for a ``.npz`` chunk file)."""
        arrays = {f"partial_{name}": value for name, value in self.partials.items()}
        arrays.update(self.sketch.to_arrays())
        arrays["item"] = np.array(self.item, dtype=np.int64)
        if self.clv is not None:
            arrays["clv"] = self.clv
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> "ChunkResult":
        """Inverse of :meth:`to_arrays` (``arrays`` may be an open ``.npz``)."""
        names = set(arrays.keys()) if hasattr(arrays, "keys") else set(arrays.files)
        return cls(
            item=WorkItem(*(int(value) for value in arrays["item"])),
            partials={name: np.asarray(arrays[f"partial_{name}"]) for name in ChunkPartials.FIELDS},
            sketch=ClvSketch.from_arrays({key: arrays[key] for key in
                                          ("sketch_policies", "sketch_policy", "sketch_keys", "sketch_counts")}),
            clv=np.asarray(arrays["clv"]) if "clv" in names else None,
        )


def _check_finite_chunk(config, item: WorkItem, clv: np.ndarray) -> None:
    """Every CLV of the chunk finite, else :class:`sim.projection.NonFiniteResultError`
    naming the policy, replication and customer of the first bad one."""
    bad = ~np.isfinite(clv)
    if bad.any():
        from .projection import _NONFINITE_HINT, NonFiniteResultError

        policy, local = (int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteResultError(
            f"CLV of policy {config.policy_names[policy]!r} is {clv[policy, local]} for replication "
            f"{item.replication}, customer {item.first_customer + local} ({int(bad.sum())} of {clv.size} "
            f"customer-policies of that chunk non-finite); {_NONFINITE_HINT}"
        )


@functools.lru_cache(maxsize=8)
def _config_from_json(text: str):
    from .config import config_from_dict
    from .model import model_arrays
    from .policies import policy_tables

    config = config_from_dict(json.loads(text))
    return config, model_arrays(config), policy_tables(config)


def config_data(config) -> str:
    """The config as canonical JSON text: what travels to workers (and what
    :func:`simulate_work_item` validates again)."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def simulate_work_item(config_json: str, item, keep_clv: bool = False, threads: int | None = None,
                       simulate: Callable | None = None) -> ChunkResult:
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
        The chunk kernel, default :func:`sim.core.simulate_chunk` (same arguments).

    Raises
    ------
    sim.projection.NonFiniteResultError
        If a CLV is NaN or infinite (named by policy, replication and customer).
    """
    config, arrays, tables = _config_from_json(config_json)
    item = WorkItem(*(int(value) for value in item))
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(int(threads) or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS)))
    partials = (simulate or simulate_chunk)(arrays, tables, config.run.seed, item.replication, item.first_customer,
                                            item.n_customers, config.run.horizon)
    _check_finite_chunk(config, item, partials.clv)
    return ChunkResult.from_partials(item, partials, keep_clv=keep_clv)


# ----------------------------------------------------------------------------- reduction


class ChunkReducer:
    """Adds chunk results in work-item order into running totals.

    Every float partial is summed block by block, in (replication, block) order, starting
    from a copy of the first block (exactly what ``np.concatenate(blocks).sum(axis=0)``
    does), so the totals do not depend on the chunk size or on which executor produced
    the chunks. Integer partials and the :class:`ClvSketch` add exactly in any order.
    Memory: the totals (O(policies x horizon)), the merged sketch and, when kept, the CLVs.

    Parameters
    ----------
    n_policies : int
    keep_clv : bool
        Also concatenate the per-customer CLVs (chunks must then carry them).
    """

    def __init__(self, n_policies: int, keep_clv: bool = False):
        self.totals: dict[str, np.ndarray] = {}
        self.sketch = ClvSketch(n_policies)
        self.keep_clv = keep_clv
        self._clv: list[np.ndarray] = []
        self.n_chunks = 0
        self.n_blocks = 0

    def add(self, chunk) -> None:
        """Add the next chunk (a :class:`ChunkResult` or a :class:`sim.core.ChunkPartials`)."""
        if isinstance(chunk, ChunkPartials):
            chunk = ChunkResult.from_partials(WorkItem(-1, -1, chunk.clv.shape[1]), chunk, keep_clv=self.keep_clv)
        for name in ChunkPartials.FIELDS:
            blocks = chunk.partials[name]
            start = 0
            if name not in self.totals:
                self.totals[name] = blocks[0].copy()
                start = 1
            total = self.totals[name]
            for block in range(start, blocks.shape[0]):
                total += blocks[block]
        self.sketch.merge(chunk.sketch)
        if self.keep_clv:
            if chunk.clv is None:
                raise ValueError(f"chunk {chunk.item.name} carries no CLVs but the reducer keeps them")
            self._clv.append(chunk.clv)
        self.n_chunks += 1
        self.n_blocks += chunk.partials[ChunkPartials.FIELDS[0]].shape[0]

    def drop_clv(self) -> None:
        """Stop keeping per-customer CLVs and free those kept so far (the tables then come
        from the sketch, :meth:`sim.ProjectionResult.from_reducer`)."""
        self.keep_clv = False
        self._clv = []

    def clv(self, names) -> dict:
        """Per-customer CLVs by policy name, chunks concatenated in order (empty dict when
        not kept)."""
        if not self.keep_clv:
            return {}
        return {name: np.concatenate([part[index] for part in self._clv]) if self._clv else np.zeros(0)
                for index, name in enumerate(names)}


def run_ordered(results: Iterable[tuple[int, ChunkResult]], n_items: int,
                consume: Callable[[int, ChunkResult], None]) -> None:
    """Feed ``(index, result)`` pairs arriving in any order to ``consume`` in index order
    ``0 .. n_items - 1``, holding early arrivals until their turn."""
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

    def map(self, config_json: str, items: list[tuple[int, WorkItem]], keep_clv: bool,
            threads: int | None = None) -> Iterator[tuple[int, ChunkResult]]:
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
    returns a :class:`ChunkResult`; :meth:`map` keeps at most twice the cluster's worker
    threads of tasks in flight, takes results in work-item order and releases each future
    once its result is taken (memory O(window x chunk)); the client reduces in work-item
    order, so the numbers are bitwise those of :class:`LocalExecutor`. A worker that dies takes its
    running tasks with it; the scheduler runs them again elsewhere (up to its
    ``distributed.scheduler.allowed-failures`` deaths per task).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, *, n_workers: int | None = None, threads: int | None = None,
                 processes: bool = True, retries: int = 3, n_items: int | None = None):
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
            raise ExecutorError('the Dask executor needs dask.distributed: pip install -e ".[dask]"') from error
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
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=self.processes,
                                            dashboard_address=None, silence_logs=40)
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

    def map(self, config_json: str, items: list[tuple[int, WorkItem]], keep_clv: bool,
            threads: int | None = None) -> Iterator[tuple[int, ChunkResult]]:
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
            future = self.client.submit(simulate_work_item, shared, tuple(item), keep_clv, task_threads,
                                        key=f"sim-chunk-{token}-{WorkItem(*item).name}-{int(keep_clv)}",
                                        retries=self.retries, pure=False)
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
            raise ValueError(f"scheduler = {scheduler!r} needs executor = 'dask' (the local executor has no scheduler)")
        return LocalExecutor()
    return DaskExecutor(scheduler, n_items=n_items)
