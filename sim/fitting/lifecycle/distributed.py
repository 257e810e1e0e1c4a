"""The lifecycle HMM's E-step on a Dask cluster, with the same numbers as in this process.

The E-step is a sum over distinct sequences, computed in blocks of a fixed size
(:func:`sim.fitting._hmm.estep_blocks`; the block size depends on the data and the
quadrature only). :class:`DaskEStep` sends the sequences to the cluster's workers once, then
at every E-step the model's tables once, and submits one task per contiguous range of blocks;
the blocks' partial sums come back, are put in block order and reduced here by
:func:`sim.fitting._hmm.estep_reduce` — the reduction :func:`sim.fitting._hmm.estep` does in
this process. So the statistics, and with them the whole fit, are the same bits whatever the
cluster, the number of tasks or the order in which they finish.

Used through ``LifecycleHMM(executor=...)`` with an entered
:class:`sim.runs.executors.DaskExecutor`; the other kernels (the log-likelihood of the node
rule, the filter, the smoothing) run once or a few times per fit and stay in this process.
"""

from __future__ import annotations

import numpy as np

from sim.fitting import _hmm

__all__ = ["DaskEStep"]

#: Names of the model's tables a task needs (``LifecycleHMM._arrays``), in the kernel's order.
TABLES = ("prior", "Aj", "emis", "emis0", "bz", "G", "H", "Mpow", "KR")


def _estep_task(sequences, tables, block, first_block, end_block, threads):
    """One task: the partial sums of blocks ``first_block .. end_block - 1`` (on a worker)."""
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    ptr, gap, count, tail, weight = sequences
    empty = np.zeros((1, _hmm.NP, 1, 1))  # the run tables enter the reduction only
    return _hmm.estep_blocks(
        ptr, gap, count, tail, weight, *tables, empty, empty, block, first_block, end_block
    )


class DaskEStep:
    """The E-step of one data set on a Dask cluster (see the module docstring).

    Parameters
    ----------
    executor : sim.runs.executors.DaskExecutor
        An entered executor (its ``client`` is used; its ``threads`` are the numba threads of
        each task).
    data : SequenceData
        The model's calibration sequences (sent to every worker once).
    tasks : int, optional
        Tasks per E-step (default: the executor's window, twice the cluster's worker threads).

    Attributes
    ----------
    calls, tasks_run : int
        E-steps computed on the cluster, and their tasks.
    """

    def __init__(self, executor, data, tasks: int | None = None):
        client = getattr(executor, "client", None)
        if client is None:
            raise ValueError("executor: give an entered sim.runs.executors.DaskExecutor (with executor: ...)")
        self.executor = executor
        self.client = client
        self.data = data
        self.tasks = int(tasks) if tasks is not None else int(executor.window())
        if self.tasks < 1:
            raise ValueError(f"tasks = {tasks}: must be >= 1")
        self.calls = 0
        self.tasks_run = 0
        sequences = (data.ptr, data.gap, data.count, data.tail, data.weight)
        self._sequences = client.scatter([sequences], broadcast=True, hash=False)[0]

    def active(self) -> bool:
        """Whether the executor's client is still connected (the fit may outlive the cluster;
        the model then runs its E-steps in this process, with the same bits).
        """
        return getattr(self.client, "status", None) == "running"

    def plan(self, n_blocks: int) -> list[tuple[int, int]]:
        """Contiguous block ranges ``(first, end)`` of the tasks, in block order."""
        pieces = max(1, min(self.tasks, n_blocks))
        edges = np.linspace(0, n_blocks, pieces + 1).round().astype(int)
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    def __call__(self, arrays: dict, block: int) -> np.ndarray:
        """The E-step's statistics (as :func:`sim.fitting._hmm.estep`) at the model's tables.

        Parameters
        ----------
        arrays : dict
            ``LifecycleHMM._arrays`` of the parameters.
        block : int
            Sequences per block.

        Returns
        -------
        ndarray, float64
            The flat statistics vector (layout of :func:`sim.fitting._hmm.stats_layout`).
        """
        n_blocks = -(-len(self.data.tail) // block)
        tables = self.client.scatter([tuple(arrays[name] for name in TABLES)], broadcast=True, hash=False)[0]
        futures = [
            self.client.submit(
                _estep_task,
                self._sequences,
                tables,
                block,
                first,
                end,
                self.executor.threads,
                pure=False,
                retries=getattr(self.executor, "retries", 0),
            )
            for first, end in self.plan(n_blocks)
        ]
        try:
            pieces = [future.result() for future in futures]  # block order
        finally:
            for future in futures:
                future.release()
            tables.release()
        self.calls += 1
        self.tasks_run += len(pieces)
        partial = np.concatenate([piece[0] for piece in pieces])
        runs = np.concatenate([piece[1] for piece in pieces])
        return _hmm.estep_reduce(partial, runs, arrays["Occ"], arrays["Xi"])
