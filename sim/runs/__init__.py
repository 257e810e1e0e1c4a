"""Running an experiment: splitting it into work items, executing them locally or on Dask,
checkpointing chunks for resume, and projecting a cohort (:func:`sim.project`) or a
snapshot of live customers (:func:`sim.project_from`).

May import: :mod:`sim.engines`, :mod:`sim.tables`, :mod:`sim.model`, :mod:`sim.exceptions`,
:mod:`sim.io`.
"""
