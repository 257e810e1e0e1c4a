"""Chunks of work and their order-fixed reduction.

A run is a list of deterministic work items ``(replication, first_customer, n_customers)``;
each produces a :class:`ChunkResult` (the chunk's :class:`sim.tables.partials.ChunkPartials`,
a sketch of its CLVs and, for small runs, the CLVs). :class:`ChunkReducer` adds them in
work-item order, block by block, so the totals are the same bits whatever ran the items,
in whatever order, with whatever chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sim.tables.partials import ChunkPartials
from sim.tables.sketch import ClvSketch

__all__ = [
    "CLV_KEEP_LIMIT",
    "WorkItem",
    "exact_clv_tables",
    "ChunkResult",
    "ChunkReducer",
]

#: Up to this many customers x replications, the CLV quantiles and the value-concentration
#: table are computed from every customer's CLV, which :attr:`sim.ProjectionResult.clv`
#: keeps (8 bytes per value and policy); above it they come from the
#: :class:`sim.tables.sketch.ClvSketch` (error bounds in :mod:`sim.tables.sketch`) and ``clv`` is empty
#: unless asked for.
CLV_KEEP_LIMIT = 1 << 21


class WorkItem(NamedTuple):
    """One chunk of work: ``n_customers`` customers from ``first_customer`` (a multiple of
    :data:`sim.tables.partials.BLOCK`) of replication ``replication``.
    """

    replication: int
    first_customer: int
    n_customers: int

    @property
    def name(self) -> str:
        """File-name stem of the item, e.g. ``rep3_first262144``."""
        return f"rep{self.replication}_first{self.first_customer}"


def exact_clv_tables(config) -> bool:
    """Whether the CLV quantiles and the value-concentration table of ``config`` are computed
    from every customer's CLV (``customers x replications <= CLV_KEEP_LIMIT``; then the
    CLVs are also kept by default) rather than from the sketch. Depends on the config only,
    so every executor, chunking and resumed run uses the same method.
    """
    return config.population.customers * config.run.replications <= CLV_KEEP_LIMIT


#: Whether :func:`sim.project` keeps the per-customer CLVs by default: the same rule.
keep_clv_default = exact_clv_tables


@dataclass
class ChunkResult:
    """What one work item produced.

    Attributes
    ----------
    item : WorkItem
    partials : dict of str to ndarray
        The arrays of :attr:`sim.tables.partials.ChunkPartials.FIELDS`, block first.
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
        """Wrap a :class:`sim.tables.partials.ChunkPartials` (sketching its CLVs)."""
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
            sketch=ClvSketch.from_arrays(
                {
                    key: arrays[key]
                    for key in ("sketch_policies", "sketch_policy", "sketch_keys", "sketch_counts")
                }
            ),
            clv=np.asarray(arrays["clv"]) if "clv" in names else None,
        )


class ChunkReducer:
    """Adds chunk results in work-item order into running totals.

    Every float partial is summed block by block, in (replication, block) order, starting
    from a copy of the first block (exactly what ``np.concatenate(blocks).sum(axis=0)``
    does), so the totals do not depend on the chunk size or on which executor produced
    the chunks. Integer partials and the :class:`~sim.tables.sketch.ClvSketch` add exactly in any order.
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
        """Add the next chunk (a :class:`ChunkResult` or a :class:`sim.tables.partials.ChunkPartials`)."""
        if isinstance(chunk, ChunkPartials):
            chunk = ChunkResult.from_partials(
                WorkItem(-1, -1, chunk.clv.shape[1]), chunk, keep_clv=self.keep_clv
            )
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
        from the sketch, :meth:`sim.ProjectionResult.from_reducer`).
        """
        self.keep_clv = False
        self._clv = []

    def clv(self, names) -> dict:
        """Per-customer CLVs by policy name, chunks concatenated in order (empty dict when
        not kept).
        """
        if not self.keep_clv:
            return {}
        return {
            name: np.concatenate([part[index] for part in self._clv]) if self._clv else np.zeros(0)
            for index, name in enumerate(names)
        }
