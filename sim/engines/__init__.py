"""The engines that simulate customers: the numba cohort core (:mod:`sim.engines.core`),
the vectorised NumPy reference (:mod:`sim.engines.reference`) and the SimPy agent-based
market (:mod:`sim.engines.market`).

Each engine runs the equations of :mod:`sim.model` and writes the partial aggregates of
:mod:`sim.tables`; none of them decides how a run is split or saved (that is
:mod:`sim.runs`).

May import: :mod:`sim.model`, :mod:`sim.tables`, :mod:`sim.exceptions`, :mod:`sim.io`.
"""
