"""Policy experiments on top of runs: paired comparisons and precision control, sweeps over a
parameter grid, and the search for the spend that maximises CLV.

May import: :mod:`sim.runs` and everything below it, :mod:`sim.analytic`.
"""
